"""``qforge repro``: one two-layer VRQ workload on several array shapes, compared bit
for bit (and the address-block baseline, which changes with the shape)."""

from __future__ import annotations

from qforge.gen.cli.common import (SEED_MAXIMUM, OptionError, log_to_stderr,
                                   uses_build_folder, whole_number)


def register(commands) -> None:
    """Add ``qforge repro`` to the subcommands ``commands``."""
    repro = commands.add_parser(
        "repro", help="prove results do not depend on the array shape",
        description="Run one two-layer workload (VRQ operands, a VRQ-encoded hidden "
                    "layer with stochastic rounding and ReLU, a stochastically rounded "
                    "output) on the generated Verilog of several array shapes that share "
                    "their arithmetic, and compare the results bit for bit; run the same "
                    "workload with Cambricon-Q's address-block quantization (block = the "
                    "array's tile) to show that scheme changes with the hardware. Exit "
                    "status 1 if the VRQ results differ between shapes.")
    repro.add_argument("--shapes", metavar="RxC,...",
                       help="array shapes to compare (default: 2x2,4x8,8x8)")
    repro.add_argument("--seed", type=whole_number(0, SEED_MAXIMUM), default=7, metavar="N",
                       help=f"data and rounding seed, 0 .. {SEED_MAXIMUM} (default 7)")
    uses_build_folder(repro)
    repro.set_defaults(handler=handle)


def handle(arguments) -> int:
    from qforge.sim.apps.repro import SHAPES, format_repro, run_repro

    shapes = SHAPES
    if arguments.shapes:
        shapes = []
        for text in arguments.shapes.split(","):
            try:
                rows, cols = (int(part) for part in text.lower().split("x"))
            except ValueError:
                raise OptionError(f"--shapes: {text!r} is not ROWSxCOLS "
                                  "(e.g. 2x2,4x8,8x8)") from None
            shapes.append((rows, cols))
        if len(shapes) < 2:
            raise OptionError("--shapes: give at least two shapes to compare")
        repeated = next((shape for index, shape in enumerate(shapes)
                         if shape in shapes[:index]), None)
        if repeated is not None:
            raise OptionError(f"--shapes: {repeated[0]}x{repeated[1]} given twice (a shape "
                              "compared with itself proves nothing)")
    result = run_repro(tuple(shapes), seed=arguments.seed,
                       log=log_to_stderr)
    print(format_repro(result))
    return 0 if result["vrq_reproducible"] else 1
