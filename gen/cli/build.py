"""``qforge build``: a bitstream for an FPGA board (:func:`qforge.fpga.flow.build`),
its utilization and timing report, and programming."""

from __future__ import annotations

import argparse
import json

from qforge.fpga import flow
from qforge.fpga.boards import BOARDS, board_named
from qforge.fpga.pll import format_mhz
from qforge.fpga.report import format_report
from qforge.gen.cli.common import (OptionError, add_config_arguments, add_output_argument,
                                   announce_generation, config_from_arguments,
                                   log_to_stderr, real_number, uses_build_folder,
                                   whole_number)
from qforge.hdl.link import uart_divisor

__all__ = ["register"]


def register(commands) -> argparse.ArgumentParser:
    """Add ``qforge build`` to the subcommands ``commands``; returns its parser."""
    boards = "\n".join(
        f"  {board.name:10s} {board.title}: {format_mhz(board.input_hz)} oscillator, "
        f"default clock {format_mhz(board.default_hz)}, programmer {board.programmer}"
        for board in BOARDS.values())
    parser = commands.add_parser(
        "build", help="build a bitstream for an FPGA board (and program it)",
        description="Build the accelerator with its UART host link for an FPGA board:\n"
                    "elaborate the board top (PLL, reset, UART pins, status LEDs) with\n"
                    "amaranth-boards, synthesize (YoWASP Yosys), place and route (YoWASP\n"
                    "nextpnr, fixed seed; a missed clock constraint is reported, not fatal)\n"
                    "and pack the bitstream, then print the utilization and timing that\n"
                    "nextpnr and Yosys report. DSP blocks: on the iCE40 the UP5K's 8 SB_MAC16\n"
                    "take the design's largest multipliers (block multipliers included,\n"
                    "whatever their width); on the ECP5 the MULT18X18D are used when all the\n"
                    "block multipliers fit. Everything (constraints, tool logs, report.json,\n"
                    "report.md, the bitstream) goes into the build folder; a failed build\n"
                    "still writes report.json and report.md. A few minutes for the tiny\n"
                    "preset. Exit status 1 if a clock misses its constraint, 2 on a usage\n"
                    "error (unknown board, unreachable clock, impossible baud rate) or a\n"
                    "failed build (the message says why, e.g. the design does not fit).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"boards:\n{boards}\n\nexamples:\n"
               "  qforge build --board icebreaker --preset tiny\n"
               "  qforge build --board ulx3s-85f --preset default --clock 40 --report-only\n"
               "  qforge build --board icebreaker --spec my.toml --program")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS),
                        help="the target board")
    add_config_arguments(parser, default=None)
    parser.add_argument("--clock", type=real_number(0, 10_000, above_minimum=True),
                        metavar="MHZ",
                        help="sync clock in MHz (default: the board's); the PLL makes the "
                             "nearest it can (within 1%%, else an error naming the "
                             "reachable range) and that achieved frequency is used")
    parser.add_argument("--baud", type=whole_number(1, 100_000_000), default=115200,
                        metavar="N",
                        help="UART baud rate (default: 115200); must be the clock divided "
                             "by a whole number of cycles (at least 4), within 2%%")
    parser.add_argument("--report-only", action="store_true",
                        help="synthesis and place and route only: no bitstream, no "
                             "programming")
    parser.add_argument("--program", action="store_true",
                        help="program the board after the build (iceprog for the "
                             "iCEBreaker, openFPGALoader for the ULX3S; on PATH or named "
                             "by $ICEPROG / $OPENFPGALOADER)")
    add_output_argument(parser, "--build-dir", folder=True, metavar="DIR",
                        help="build folder (default: build/board/BOARD-CONFIG)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON object (progress still goes to "
                             "stderr)")
    uses_build_folder(parser, lambda arguments: arguments.build_dir is None)
    parser.set_defaults(handler=_command_build)
    return parser


def _check_clock_and_baud(arguments) -> None:
    """:class:`OptionError` (with the PLL's or the UART's own message) unless the board's
    PLL makes ``--clock`` and the UART can divide that clock down to ``--baud``, as the
    board top will require."""
    board = board_named(arguments.board)
    try:
        pll = board.solve_pll(None if arguments.clock is None else arguments.clock * 1e6)
        uart_divisor(pll.output_hz, arguments.baud)
    except ValueError as error:
        raise OptionError(str(error)) from None


def _command_build(arguments) -> int:
    if arguments.program and arguments.report_only:
        raise OptionError("--program and --report-only: a report-only build makes no "
                          "bitstream to program")
    config = config_from_arguments(arguments)
    _check_clock_and_baud(arguments)
    announce_generation(config)
    # flow.build is looked up when called, so tests can stand in for it.
    report = flow.build(config, arguments.board, clock_mhz=arguments.clock,
                        baud_rate=arguments.baud, build_dir=arguments.build_dir,
                        program=arguments.program, report_only=arguments.report_only,
                        log=log_to_stderr)
    if arguments.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.timing_met else 1
