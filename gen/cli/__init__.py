"""The ``qforge`` command line: :func:`main` and the parser of every subcommand.

Each command lives in its own module of this package (``generate``, ``presets``,
``lint``, ``demo``, ``bench``, ``train``, ``repro``, ``area``, ``asm``, ``run``,
``gemm``, ``fuzz``), with ``register(commands)`` adding its subparser and handler; the
FPGA flow's commands (``build``, ``results``, ``host``) are added by their own modules.
Every error a user can cause (a bad spec, an unknown preset, a bad option value, a
missing file or tool) is a :class:`~qforge.sim.model.errors.QforgeError`: :func:`main`
prints it as one line naming the problem and exits with status 2. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from qforge.gen.cli import (area, asm, bench, demo, fuzz, gemm, generate, lint, presets,
                            repro, run, train)
from qforge.sim.model.errors import QforgeError

__all__ = ["main", "build_parser"]

#: The command modules, in the order ``qforge --help`` lists them.
COMMANDS = (generate, presets, lint, demo, bench, train, repro, area, asm, run, gemm, fuzz)


def build_parser() -> argparse.ArgumentParser:
    """The ``qforge`` parser: one subcommand per command module, then the FPGA flow's."""
    parser = argparse.ArgumentParser(
        prog="qforge",
        description="Generate, verify and measure block-wise precision-reconfigurable "
                    "DNN training accelerators (Amaranth HDL -> Verilog).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `qforge COMMAND --help` for the options of each command.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)

    # The FPGA flow's commands (fpga/).
    from qforge.gen.cli import build, host, results
    build.register(commands)
    results.register(commands)
    host.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``qforge ARGV``; return the exit status (2 after a one-line user error)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except QforgeError as error:
        print(f"qforge: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
