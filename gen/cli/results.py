"""``qforge results``: build every board x preset (or read their saved reports) and
write ``docs/RESULTS.md`` (:func:`qforge.fpga.results.results`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qforge.fpga.boards import BOARDS
from qforge.fpga.results import DEFAULT_PAIRS, results, select_pairs
from qforge.gen.cli.common import add_output_argument, log_to_stderr, uses_build_folder
from qforge.sim.model.spec import load_preset, preset_names

__all__ = ["register"]


def register(commands) -> argparse.ArgumentParser:
    """Add ``qforge results`` to the subcommands ``commands``; returns its parser."""
    pairs = "\n".join(f"  {board} x {preset}" for board, preset in DEFAULT_PAIRS)
    parser = commands.add_parser(
        "results", help="build every board x preset and write docs/RESULTS.md",
        description="Run `qforge build --board B --preset P --report-only` for each\n"
                    "(board, preset) pair in turn (or, with --reuse, read the report.json\n"
                    "each build left in build/board/B-P/) and write a Markdown report of\n"
                    "them: how it was made, utilization, LUTs per PE, fmax against the\n"
                    "constraint, the DSP decision, build times and the peak GOPS of every\n"
                    "precision mode. Builds that fail are reported with the tools' own\n"
                    "message. The default sweep takes about 80 minutes on 2 cores (the\n"
                    "16x16 ulx3s build half of it).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"default pairs:\n{pairs}\n--board / --preset pick from them; with both, "
               f"every given board x every given preset.\n\nexamples:\n"
               f"  qforge results --output docs/RESULTS.md\n"
               f"  qforge results --board icebreaker --preset tiny --output /tmp/r.md\n"
               f"  qforge results --reuse")
    parser.add_argument("--board", action="append", default=[], choices=sorted(BOARDS),
                        help="a board (repeat for more)")
    parser.add_argument("--preset", action="append", default=[], metavar="NAME",
                        help=f"a preset (repeat for more): {', '.join(preset_names())}")
    add_output_argument(parser, "--output", default=Path("docs/RESULTS.md"), metavar="FILE",
                        help="the Markdown file (default: docs/RESULTS.md)")
    parser.add_argument("--reuse", action="store_true",
                        help="build nothing: read each pair's report.json from its build "
                             "folder (an error if one is missing)")
    uses_build_folder(parser, lambda arguments: not arguments.reuse)
    parser.set_defaults(handler=_command_results)
    return parser


def _command_results(arguments) -> int:
    for preset in arguments.preset:
        load_preset(preset)                  # ConfigError (exit 2) for an unknown one
    pairs = select_pairs(arguments.board, arguments.preset)
    argv = ["qforge", "results"]
    for board in arguments.board:
        argv += ["--board", board]
    for preset in arguments.preset:
        argv += ["--preset", preset]
    argv += ["--output", str(arguments.output)] + (["--reuse"] if arguments.reuse else [])
    entries = results(pairs, arguments.output, reuse=arguments.reuse, log=log_to_stderr,
                      command=" ".join(argv))
    failed = [f"{entry.board} x {entry.preset}" for entry in entries if entry.failed]
    if failed:
        print(f"qforge results: failed builds (reported in {arguments.output}): "
              f"{', '.join(failed)}", file=sys.stderr)
    print(arguments.output)
    return 0
