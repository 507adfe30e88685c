"""``qforge gemm``: one GEMM from NumPy files on the golden model or the RTL, the result
written as a .npy file (``--json``: cycles and shape on stdout).

The work is :func:`qforge.api.gemm`; this module turns options into its arguments and
names the option in every error: the golden model's checks report fields (``a.blocks``,
``output.shift``, ``a[2, 3]``), which :func:`option_of` maps to the options that set
them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from qforge.gen.cli.common import (OptionError, add_config_arguments, add_output_argument,
                                   config_from_arguments, log_to_stderr, require_file,
                                   uses_build_folder)
from qforge.sim.model.errors import shown

#: ``--rounding`` names -> :class:`qforge.sim.model.quantize.Rounding` member names.
ROUNDINGS = {"nearest-even": "NEAREST_EVEN", "truncate": "TRUNCATE",
             "stochastic": "STOCHASTIC"}

#: The output-stage options: (option, dest, OutputParameters field).
OUTPUT_OPTIONS = (("--shift", "shift", "shift"), ("--rounding", "rounding", "rounding"),
                  ("--relu", "relu", "relu"), ("--seed", "seed", "seed"),
                  ("--tensor", "tensor", "tensor"),
                  ("--vrq-exponent", "vrq_exponent", "vrq_exponent"),
                  ("--wide", "wide", "wide"))


def register(commands) -> None:
    """Add ``qforge gemm`` to the subcommands ``commands``."""
    gemm = commands.add_parser(
        "gemm", help="run one GEMM from .npy files on a backend (golden, rtl)",
        description="Compute C = A @ B (A: M x D, B: D x N integer matrices in .npy files)\n"
                    "as the configuration's accelerator does in one command, in the given\n"
                    "precision and through the output stage, on the golden model or on the\n"
                    "generated Verilog in Verilator (where the bench also checks every\n"
                    "result beat against the golden model), and write C as a .npy file of\n"
                    "int64. Operands must lie in the range of their precision\n"
                    "(docs/NUMERICS.md); without output-stage options C holds the raw\n"
                    "accumulators.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  qforge gemm --preset tiny --a a.npy --b b.npy -o c.npy --json\n"
               "  qforge gemm --preset default --a a.npy --b b.npy --b-blocks 2 --shift 4 "
               "--rounding stochastic --relu -o c.npy --backend rtl")
    add_config_arguments(gemm, default=None)
    gemm.add_argument("--a", type=Path, metavar="A.npy", required=True,
                      help="the left operand: an M x D integer matrix")
    gemm.add_argument("--b", type=Path, metavar="B.npy", required=True,
                      help="the right operand: a D x N integer matrix")
    add_output_argument(gemm, "-o", "--output", suffixes=(".npy",), metavar="C.npy",
                        required=True, help="where to write the M x N int64 result")
    gemm.add_argument("--backend", choices=("golden", "rtl"), default="golden",
                      help="golden: the golden model, cycles from the cycle model; rtl: "
                           "the generated Verilog in Verilator, cycles measured "
                           "(default: golden)")
    gemm.add_argument("--json", action="store_true",
                      help="print the shape, depth, cycles and where they came from as "
                           "one JSON object")
    gemm.add_argument("--skip-zeros", action="store_true",
                      help="skip zero A operands (zero-skipping configurations only)")
    precision = gemm.add_argument_group(
        "precision", "per operand (default: exact, all blocks kept)")
    for operand in ("a", "b"):
        upper = operand.upper()
        precision.add_argument(f"--{operand}-blocks", type=int, metavar="N",
                               help=f"blocks of {upper} (default: all of the operand's, "
                                    "or of the VRQ code's with --" + operand + "-vrq)")
        precision.add_argument(f"--{operand}-kept", type=int, metavar="L",
                               help=f"blocks of {upper} kept per value (default: "
                                    f"--{operand}-blocks, exact)")
        precision.add_argument(f"--{operand}-selection", choices=("static", "dynamic"),
                               default="static",
                               help="which blocks an approximate mode keeps: static = the "
                                    "top L, dynamic = L from each value's leading non-zero "
                                    "block (default: static)")
        precision.add_argument(f"--{operand}-vrq", action="store_true",
                               help=f"{upper} holds VRQ operand words (configurations "
                                    "with [vrq])")
        precision.add_argument(f"--{operand}-unsigned", action="store_true",
                               help=f"{upper} holds unsigned integers 0 .. 2**(N*K) - 1 "
                                    "(configurations with arithmetic.paired)")
    precision.add_argument("--paired", metavar="HIGH/LOW",
                           help="the paired mode (configurations with arithmetic.paired; "
                                "A exact, docs/NUMERICS.md \"Paired mode\"): pairs of A "
                                "operands along k share a slot; when both are non-zero "
                                "the larger keeps HIGH leading blocks and the other LOW "
                                "(HIGH alone: symmetric), 1 <= LOW <= HIGH, HIGH + LOW <= "
                                "the operand's blocks")
    precision.add_argument("--paired-rounding", choices=("raw", "round"), default="raw",
                           help="the bits below a paired window: raw = dropped, round = "
                                "to nearest, ties to even, saturating (default: raw)")
    stage = gemm.add_argument_group(
        "output stage", "any of these enables it (none: raw accumulators)")
    stage.add_argument("--shift", type=int, metavar="N",
                       help="divide by 2**N before rounding (default 0)")
    stage.add_argument("--rounding", choices=tuple(ROUNDINGS),
                       help="how the shifted-out bits round (default: nearest-even)")
    stage.add_argument("--relu", action="store_true", help="clamp negative results to 0")
    stage.add_argument("--seed", type=int, metavar="N",
                       help="stochastic rounding's seed (default 0)")
    stage.add_argument("--tensor", type=int, metavar="N",
                       help="stochastic rounding's tensor id (default 0)")
    stage.add_argument("--vrq-exponent", type=int, metavar="E",
                       help="emit VRQ operand words with tensor exponent E instead of "
                            "integers (configurations with [vrq]; --shift is not used)")
    stage.add_argument("--wide", action="store_true",
                       help="no saturation to the output width (integer outputs only)")
    uses_build_folder(gemm, lambda arguments: arguments.backend == "rtl")
    gemm.set_defaults(handler=handle)


def load_matrix(path: Path, option: str) -> np.ndarray:
    """The array in the .npy file ``path`` given to ``option`` (no pickles), or
    :class:`OptionError` naming the option and the file."""
    require_file(path, option)
    if path.suffix.lower() != ".npy":
        raise OptionError(f"{option} {path}: must be a .npy file (numpy.save)")
    try:
        with open(path, "rb") as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        # numpy reports a file that is not in the .npy format as ValueError.
        raise OptionError(f"{option} {path}: not a readable .npy file ({error})") from None


def option_of(message: str, arguments) -> str:
    """The options that set the field a golden-model error message starts with.

    >>> from types import SimpleNamespace
    >>> files = SimpleNamespace(a=Path("a.npy"), b=Path("b.npy"))
    >>> option_of("a.kept = 5: allowed range is 1 .. 4", files)
    '--a-kept'
    >>> option_of("output.shift = 40: allowed range is 0 .. 24", files)
    '--shift'
    >>> option_of("b[1, 0] = 300: out of range", files)
    '--b b.npy'
    >>> option_of("inner dimensions differ: a is 2 x 3, b is 4 x 2", files)
    '--a a.npy, --b b.npy'
    >>> option_of("paired kept_low = 3: at most kept_high = 2", files)
    '--paired'
    """
    field = message.split(" ", 1)[0].split("[", 1)[0].rstrip(":")
    operands = {"a": f"--a {arguments.a}", "b": f"--b {arguments.b}", "m": f"--a {arguments.a}",
                "n": f"--b {arguments.b}"}
    if field in operands:
        return operands[field]
    owner, _, name = field.partition(".")
    if field == "a.paired":
        return "--paired"
    if owner in ("a", "b") and name:
        return f"--{owner}-{name}"
    if owner == "output" and name:
        return "--" + name.replace("_", "-")
    if field == "skip_zeros":
        return "--skip-zeros"
    if field in ("paired", "a.paired"):
        return "--paired"
    return f"--a {arguments.a}, --b {arguments.b}"


def _precision(arguments, config):
    from qforge.api import OperandPrecision, Precision, Selection

    def operand(name):
        vrq = getattr(arguments, f"{name}_vrq")
        blocks = getattr(arguments, f"{name}_blocks")
        if blocks is None:
            blocks = config.vrq_code_blocks if vrq and config.vrq is not None \
                else config.blocks
        kept = getattr(arguments, f"{name}_kept")
        selection = Selection[getattr(arguments, f"{name}_selection").upper()]
        return OperandPrecision(blocks, blocks if kept is None else kept, selection, vrq,
                                unsigned=getattr(arguments, f"{name}_unsigned"),
                                paired=_paired(arguments) if name == "a" else None)

    return Precision(operand("a"), operand("b"))


def _paired(arguments):
    """``--paired HIGH/LOW`` (or ``HIGH``) and ``--paired-rounding`` as a
    :class:`~qforge.api.PairedPrecision`, or None; the windows' limits are the golden
    model's (checked with the precision)."""
    from qforge.api import PairedPrecision, WindowRounding

    if arguments.paired is None:
        if arguments.paired_rounding != "raw":
            raise OptionError("--paired-rounding: only with --paired")
        return None
    parts = arguments.paired.split("/")
    if len(parts) > 2 or not all(part.strip().isdigit() and len(part.strip()) <= 3
                                 for part in parts):
        raise OptionError(f"--paired {shown(arguments.paired)}: expected HIGH/LOW or HIGH "
                          f"(block counts, e.g. 2/2 or 3/1)")
    high = int(parts[0])
    low = int(parts[-1])
    return PairedPrecision(high, low, WindowRounding[arguments.paired_rounding.upper()])


def _output(arguments):
    """The output stage's settings, or None (raw accumulators) when no option is given."""
    from qforge.api import OutputParameters, Rounding

    given = {field: getattr(arguments, dest) for _option, dest, field in OUTPUT_OPTIONS
             if getattr(arguments, dest) not in (None, False)}
    if not given:
        return None
    if "rounding" in given:
        given["rounding"] = Rounding[ROUNDINGS[given["rounding"]]]
    return OutputParameters(**given)


def handle(arguments) -> int:
    from qforge.api import OperandError, gemm

    config = config_from_arguments(arguments)
    a = load_matrix(arguments.a, "--a")
    b = load_matrix(arguments.b, "--b")
    output = _output(arguments)
    try:
        run = gemm(config, a, b, _precision(arguments, config), output=output,
                   skip_zeros=arguments.skip_zeros, backend=arguments.backend,
                   log=log_to_stderr)
    except OperandError as error:
        raise OptionError(f"{option_of(str(error), arguments)}: {error}") from None
    try:
        np.save(arguments.output, run.result)
    except OSError as error:
        raise OptionError(f"-o {arguments.output}: cannot write: "
                          f"{error.strerror or error}") from None
    m, n = run.result.shape
    if arguments.json:
        print(json.dumps({"config": config.name, "backend": run.backend,
                          "shape": [m, n], "depth": int(a.shape[1]),
                          "cycles": run.cycles, "cycles_source": run.cycles_source,
                          "output_stage": output is not None,
                          "output": str(arguments.output)}, indent=2))
        return 0
    source = "simulated" if run.cycles_source == "rtl" else "from the cycle model"
    print(f"wrote {arguments.output}: {m} x {n} int64 "
          f"({'output stage' if output is not None else 'raw accumulators'}), "
          f"depth {a.shape[1]}, on {run.backend} ({config.name}); "
          f"{run.cycles} cycles {source}")
    return 0
