"""The ``qforge`` command line: :func:`main` and the parser of every subcommand.

Each command lives in its own module of this package (``generate``, ``presets``,
``lint``, ``demo``, ``bench``, ``train``, ``tune``, ``repro``, ``area``, ``asm``, ``run``,
``gemm``, ``fuzz``), with ``register(commands)`` adding its subparser and handler; the
FPGA flow's commands (``build``, ``results``, ``host``) are added by their own modules.
Every error a user can cause (a bad spec, an unknown preset, a bad option value, a
missing file or tool) is a :class:`~qforge.sim.model.errors.QforgeError`: :func:`main`
prints it as one line naming the problem and exits with status 2. Any other exception
is a bug and keeps its traceback.

Before a command's handler runs, :func:`main` checks every output path it declared
(:func:`~qforge.gen.cli.common.prepare_outputs`), so a bad path fails before the work;
folders made for them are removed again if the command then fails with nothing in them.
Output piped into a reader that stops early (``qforge asm prog.qasm | head -1``) ends
the command quietly, as the Python documentation's recipe for SIGPIPE does.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from qforge.gen.cli import (area, asm, bench, demo, dse, fuzz, gemm, generate, lint,
                            presets, repro, run, train, tune)
from qforge.gen.cli.common import prepare_outputs, remove_empty_folders
from qforge.sim.model.errors import QforgeError

__all__ = ["main", "build_parser"]

#: The command modules, in the order ``qforge --help`` lists them.
COMMANDS = (generate, presets, lint, demo, bench, train, tune, dse, repro, area, asm, run, gemm,
            fuzz)


def build_parser() -> argparse.ArgumentParser:
    """The ``qforge`` parser: one subcommand per command module, then the FPGA flow's."""
    parser = argparse.ArgumentParser(
        prog="qforge",
        description="Generate, verify and measure block-wise precision-reconfigurable "
                    "DNN training accelerators (Amaranth HDL -> Verilog).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `qforge COMMAND --help` for the options of each command.")
    parser.add_argument("--version", action="version", version=f"qforge {_version()}",
                        help="print qforge's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)

    # The FPGA flow's commands (fpga/).
    from qforge.gen.cli import build, host, results
    build.register(commands)
    results.register(commands)
    host.register(commands)
    return parser


def _version() -> str:
    """The installed qforge distribution's version."""
    try:
        return metadata.version("qforge")
    except metadata.PackageNotFoundError:      # run from a tree that is not installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    """Run ``qforge ARGV``; return the exit status (2 after a one-line user error, 1
    when stdout's reader went away)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    created = []
    try:
        created = prepare_outputs(arguments)
        status = arguments.handler(arguments)
        sys.stdout.flush()       # a closed pipe shows here, not at interpreter exit
        return status
    except QforgeError as error:
        remove_empty_folders(created)     # made for outputs the command never wrote
        print(f"qforge: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what the closed
    pipe did not take raises nothing (the Python docs' recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):             # stdout is not a file (captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
