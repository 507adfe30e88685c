"""``qforge host``: talk to a board over its serial link (:mod:`qforge.fpga.host`).

* ``qforge host status --port DEV --preset NAME``: the board's status, and whether it was
  built for the configuration.
* ``qforge host gemm --port DEV --preset NAME --m M --n N --depth D --mode MODE``: a GEMM
  of random operands on the board; ``--check`` compares it with the golden model. It
  connects first, which brings a board left busy by a host that stopped mid-GEMM back
  to idle (an ABORT, reported on stderr unless ``--quiet``).

``--port loopback`` talks to :class:`qforge.fpga.board_model.BoardModel` through a
simulated line (:class:`qforge.fpga.loopback.LoopbackTransport`) instead of a board, so
both commands can be tried anywhere.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from qforge.api import open_board
from qforge.fpga.host import DEFAULT_BAUD_RATE, HostError, identify_fingerprint
from qforge.gen.cli.common import (COUNT_MAXIMUM, SEED_MAXIMUM, add_config_arguments,
                                   config_from_arguments, real_number, whole_number)
from qforge.sim.bench.stimulus import operand_range
from qforge.sim.host.packing import GemmJob
from qforge.sim.model.capacity import gemm_capacity_error
from qforge.sim.model.numerics import standard_modes
from qforge.sim.model.quantize import OutputParameters, Rounding
from qforge.sim.model.spec import load_preset

__all__ = ["register", "LOOPBACK"]

#: The ``--port`` value that selects the simulated board.
LOOPBACK = "loopback"


def _mode_names() -> list[str]:
    return list(standard_modes(load_preset("tiny")))


def register(commands) -> argparse.ArgumentParser:
    """Add ``host`` (with ``status`` and ``gemm``) to the subcommands ``commands``; returns
    its parser. The handlers return the exit status and print one line per error (no
    traceback)."""
    host = commands.add_parser(
        "host", help="talk to a board over its serial link (status, GEMMs)",
        description="Talk to an FPGA board running the accelerator behind its UART host "
                    "link (framed, CRC-checked, stop-and-wait; see hdl/protocol.py). "
                    "--port loopback uses a simulated board (a pure-Python model of the "
                    "link and the golden model) so the commands can be tried without "
                    "hardware.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  qforge host status --port /dev/ttyUSB1 --preset tiny\n"
               "  qforge host gemm --port /dev/ttyUSB1 --preset tiny --m 8 --n 8 "
               "--depth 64 --mode exact --check\n"
               "  qforge host gemm --port loopback --preset default --m 16 --n 16 "
               "--depth 128 --mode mixed --check")
    subcommands = host.add_subparsers(dest="host_command", required=True, metavar="COMMAND")

    def common(parser):
        parser.add_argument("--port", required=True, metavar="DEV",
                            help=f"serial device of the board (/dev/ttyUSB1, COM3), or "
                                 f"'{LOOPBACK}' for the simulated board")
        parser.add_argument("--baud", type=whole_number(1, 100_000_000),
                            default=DEFAULT_BAUD_RATE, metavar="N",
                            help=f"baud rate the bitstream was built with (default: "
                                 f"{DEFAULT_BAUD_RATE})")
        add_config_arguments(parser, default=None)
        parser.add_argument("--timeout", type=real_number(0, 3600, above_minimum=True),
                            default=1.0, metavar="SECONDS",
                            help="wait this long for each reply before sending a request "
                                 "again (default: 1)")
        parser.add_argument("--retries", type=whole_number(0, 100), default=3, metavar="N",
                            help="send a request (or run a GEMM whose results were lost) "
                                 "at most 1 + N times (default: 3)")
        parser.add_argument("--quiet", action="store_true",
                            help="do not print retransmissions and progress to stderr")

    status = subcommands.add_parser(
        "status", help="print the board's status and check its configuration",
        description="Ask the board for its status: accelerator idle, the sticky "
                    "accelerator error (an invalid command was dropped), rejected frames "
                    "since the last status and in total, whether an ABORT reset the "
                    "accelerator since the last status, the last executed sequence number, "
                    "and the configuration fingerprint, compared with the configuration "
                    "given. Exit status 1 if the board was built for another "
                    "configuration, 2 if it does not answer.")
    common(status)
    status.set_defaults(handler=_command_status)

    modes = _mode_names()
    gemm = subcommands.add_parser(
        "gemm", help="run a GEMM of random operands on the board",
        description="Run one M x DEPTH by DEPTH x N GEMM of random operands (uniform over "
                    "the range of the mode's operand widths) on the board and print a "
                    "summary of the result. With --check, compare every element with the "
                    "golden model and exit with status 1 on any mismatch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="precision modes (qforge.sim.model.numerics.standard_modes):\n"
               "  exact             every block of both operands\n"
               "  reduced           half the blocks (narrower integers)\n"
               "  mixed             full-width A, half-width B\n"
               "  approx_static     full-width operands, the top half of the blocks kept\n"
               "  approx_dynamic    full-width operands, half the blocks kept from the "
               "leading non-zero one\n"
               "  approx_dynamic_1  full-width operands, one block kept (dynamic)")
    common(gemm)
    gemm.add_argument("--m", type=whole_number(1, COUNT_MAXIMUM), required=True,
                      help="rows of A and of the result (the board's buffers bound it: "
                           "checked before the operands are made)")
    gemm.add_argument("--n", type=whole_number(1, COUNT_MAXIMUM), required=True,
                      help="columns of B and of the result")
    gemm.add_argument("--depth", type=whole_number(1, COUNT_MAXIMUM), required=True,
                      help="columns of A = rows of B (the dot-product length)")
    gemm.add_argument("--mode", required=True, choices=modes, metavar="MODE",
                      help=f"precision mode: {', '.join(modes)}")
    gemm.add_argument("--seed", type=whole_number(0, SEED_MAXIMUM), default=1,
                      help="operand seed (default: 1)")
    gemm.add_argument("--shift", type=int, metavar="S",
                      help="use the output stage: shift accumulators right by S with "
                           "--rounding and saturate to output_width bits (default: raw "
                           "accumulators)")
    gemm.add_argument("--rounding", choices=["nearest_even", "truncate", "stochastic"],
                      default="nearest_even", help="output stage rounding (with --shift)")
    gemm.add_argument("--relu", action="store_true", help="output stage ReLU (with --shift)")
    gemm.add_argument("--skip-zeros", action="store_true",
                      help="skip zero A operands (zero-skipping configurations only)")
    gemm.add_argument("--check", action="store_true",
                      help="compare the result with the golden model (exit status 1 on a "
                           "mismatch)")
    gemm.add_argument("--print", action="store_true", dest="print_result",
                      help="print the result matrix")
    gemm.set_defaults(handler=_command_gemm)
    return host


def _board(arguments, config):
    log = None if arguments.quiet else (
        lambda message: print(f"host: {message}", file=sys.stderr, flush=True))
    return open_board(config, arguments.port, baud_rate=arguments.baud,
                      timeout=arguments.timeout, retries=arguments.retries, log=log)


def _error(message: str) -> int:
    print(f"qforge: error: {message}", file=sys.stderr)
    return 2


def _command_status(arguments) -> int:
    config = config_from_arguments(arguments)
    try:
        with _board(arguments, config) as board:
            status = board.status()
    except HostError as error:
        return _error(str(error))
    busy = ("busy (a GEMM in progress, or left half done by a host that stopped: the next "
            "connect, e.g. `qforge host gemm`, aborts it)")
    error = ("SET (an invalid command was dropped; the next connect clears it with an "
             "ABORT)")
    print(f"board on {arguments.port}: accelerator {'idle' if status.idle else busy}, "
          f"error flag {error if status.accelerator_error else 'clear'}"
          f"{', an ABORT since the last status' if status.aborted else ''}")
    print(f"  last_seq {status.last_seq}, rejected frames {status.rejected_frames}"
          f"{' (saturated)' if status.rejected_frames == 255 else ''}"
          f"{', one since the last status' if status.frame_rejected else ''}")
    if status.fingerprint == board.fingerprint:
        print(f"  fingerprint 0x{status.fingerprint:04x}: built for {config.name!r}")
        return 0
    matches = identify_fingerprint(status.fingerprint)
    known = f" (preset {', '.join(matches)})" if matches else ""
    print(f"  fingerprint 0x{status.fingerprint:04x}{known}: NOT built for {config.name!r} "
          f"(0x{board.fingerprint:04x})")
    return 1


def _command_gemm(arguments) -> int:
    config = config_from_arguments(arguments)
    if arguments.shift is None and (arguments.relu or arguments.rounding != "nearest_even"):
        return _error("--rounding/--relu set the output stage: give --shift too (0 for "
                      "none)")
    problem = gemm_capacity_error(config, arguments.m, arguments.n, arguments.depth)
    if problem:             # before the operands are made: they could fill the memory
        return _error(f"--m {arguments.m} --n {arguments.n} --depth {arguments.depth}: "
                      f"{problem}")
    precision = standard_modes(config)[arguments.mode]
    output = None
    if arguments.shift is not None:
        output = OutputParameters(shift=arguments.shift,
                                  rounding=Rounding[arguments.rounding.upper()],
                                  relu=arguments.relu, seed=arguments.seed & 0xFFFFFFFF)
    rng = np.random.default_rng(arguments.seed)
    low_a, high_a = operand_range(config, precision.a)
    low_b, high_b = operand_range(config, precision.b)
    a = rng.integers(low_a, high_a + 1, size=(arguments.m, arguments.depth))
    b = rng.integers(low_b, high_b + 1, size=(arguments.depth, arguments.n))
    try:
        job = GemmJob.build(config, a, b, precision, output=output,
                            skip_zeros=arguments.skip_zeros)
    except ValueError as error:
        return _error(str(error))
    try:
        with _board(arguments, config) as board:
            board.connect()
            result = board.run(job)
    except HostError as error:
        return _error(str(error))
    print(f"{arguments.m} x {arguments.depth} by {arguments.depth} x {arguments.n} GEMM, "
          f"{arguments.mode} ({precision.describe()}) on {arguments.port}: result "
          f"{result.shape[0]} x {result.shape[1]}, min {result.min()}, max {result.max()}, "
          f"sum {int(result.sum())}")
    if arguments.print_result:
        print(np.array2string(result, threshold=sys.maxsize, max_line_width=120))
    if not arguments.check:
        return 0
    differs = np.argwhere(result != job.expected)
    if len(differs) == 0:
        print(f"check: match: all {result.size} elements equal the golden model")
        return 0
    row, col = (int(i) for i in differs[0])
    print(f"check: MISMATCH: {len(differs)} of {result.size} elements differ from the golden "
          f"model; first at [{row}, {col}]: board {result[row, col]}, model "
          f"{job.expected[row, col]}")
    return 1
