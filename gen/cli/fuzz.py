"""``qforge fuzz``: random instruction streams on the RTL of the programmable
accelerator against the golden machine (no hang, sticky error, memory, cycles)."""

from __future__ import annotations

import argparse
import sys

from qforge.gen.cli.common import (COUNT_MAXIMUM, SEED_MAXIMUM, add_config_arguments,
                                   config_from_arguments, real_number, uses_build_folder,
                                   whole_number)


def register(commands) -> None:
    """Add ``qforge fuzz`` to the subcommands ``commands``."""
    fuzz = commands.add_parser(
        "fuzz", help="random instruction streams against the RTL (no hang, sticky error)",
        description="Run random programs (valid and invalid instruction words, operands\n"
                    "in memory, GEMMs that read earlier results, accumulate and update\n"
                    "GEMMs) on the generated Verilog of the programmable accelerator and on\n"
                    "the golden machine. Checks that the hardware never hangs (a watchdog\n"
                    "on every port), raises its sticky error flag exactly for programs with\n"
                    "an invalid word, leaves memory bit-identical with the golden machine,\n"
                    "and, without stalls, takes exactly the cycles the cycle model predicts.\n"
                    "Exit status 1 on any failure.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge fuzz --preset tiny --programs 50 --stall 0.3")
    add_config_arguments(fuzz, default="tiny")
    fuzz.add_argument("--programs", type=whole_number(1, COUNT_MAXIMUM), default=20,
                      metavar="N", help=f"random programs to run, 1 .. {COUNT_MAXIMUM} "
                                        "(default 20)")
    fuzz.add_argument("--instructions", type=whole_number(1, COUNT_MAXIMUM), default=60,
                      metavar="N", help=f"words per program, about; 1 .. {COUNT_MAXIMUM} "
                                        "(default 60)")
    fuzz.add_argument("--invalid", type=real_number(0, 1), default=0.1, metavar="P",
                      help="share of invalid words, 0 .. 1 (default 0.1)")
    fuzz.add_argument("--stall", type=real_number(0, 1, below_maximum=True), default=0.0,
                      metavar="P",
                      help="probability of a stall on every port each cycle, 0 .. below 1 "
                           "(default 0: then the cycle counts are checked against the "
                           "model)")
    fuzz.add_argument("--seed", type=whole_number(0, SEED_MAXIMUM), default=1, metavar="N",
                      help=f"seed of the first program, 0 .. {SEED_MAXIMUM} (the next "
                           "ones count up from it; default 1)")
    uses_build_folder(fuzz)
    fuzz.set_defaults(handler=handle)


def handle(arguments) -> int:
    from qforge.sim.apps.fuzz import check_program
    from qforge.sim.progress import Progress
    from qforge.sim.runtime import BackendError, Runtime

    config = config_from_arguments(arguments)
    totals = {"words": 0, "invalid": 0, "gemms": 0, "error flags": 0}
    failures = []
    runtime = Runtime(config, "rtl", stall=arguments.stall,
                      log=lambda message: print(message, file=sys.stderr))
    bar = Progress(arguments.programs, f"fuzz {config.name}")
    try:
        for index in range(arguments.programs):
            seed = arguments.seed + index
            try:
                check = check_program(runtime, seed, instructions=arguments.instructions,
                                      invalid_fraction=arguments.invalid)
            except BackendError as error:               # a hang or a stream error
                failures.append(f"program seed {seed}: {error}")
                bar.advance()
                continue
            totals["words"] += check.words
            totals["invalid"] += check.invalid
            totals["gemms"] += check.gemms
            totals["error flags"] += int(check.error)
            problems = check.problems(check_cycles=not arguments.stall)
            if problems:
                failures.append(f"program seed {seed}: {'; '.join(problems)}")
            bar.advance(note=f"{len(failures)} failed")
    finally:
        bar.close()
        runtime.close()
    print(f"qforge fuzz on {config.name}: {arguments.programs} random programs "
          f"(seeds {arguments.seed} .. {arguments.seed + arguments.programs - 1}), "
          f"{totals['words']} words of which {totals['invalid']} invalid, "
          f"{totals['gemms']} GEMMs executed, stall probability {arguments.stall}")
    print(f"hangs: {sum('hung' in f for f in failures)}; sticky error raised by "
          f"{totals['error flags']} programs, exactly those with an invalid word: "
          f"{'yes' if not any('error flag' in f for f in failures) else 'NO'}; "
          f"memory bit-identical with the golden machine: "
          f"{'yes' if not any('memory' in f for f in failures) else 'NO'}"
          + ("" if arguments.stall else "; cycles equal to the cycle model: "
             + ("yes" if not any("cycles" in f for f in failures) else "NO")))
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0
