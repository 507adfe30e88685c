"""``qforge generate``: write a configuration's Verilog and JSON manifest (optionally
linted)."""

from __future__ import annotations

import argparse

from qforge.gen.cli.common import (SPEC_EPILOG, add_config_arguments, add_output_argument,
                                   announce_generation, config_from_arguments,
                                   prepare_output)
from qforge.gen.cli.lint import report_lint


def register(commands) -> None:
    """Add ``qforge generate`` to the subcommands ``commands``."""
    generate = commands.add_parser(
        "generate", help="write Verilog and a JSON manifest for a configuration",
        description="Elaborate the accelerator for a configuration and write "
                    "DIR/qforge_top.v (one file, module qforge_top, clock `clk`, "
                    "synchronous reset `rst`) and DIR/manifest.json (the full "
                    "configuration, derived widths, generator version and the port map "
                    "with every stream's payload layout).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SPEC_EPILOG)
    add_config_arguments(generate, default=None)
    add_output_argument(generate, "-o", "--output", folder=True, metavar="DIR", required=True,
                        help="output folder (created if missing; checked before the "
                             "elaboration)")
    generate.add_argument("--lint", action="store_true",
                          help="also run `verilator --lint-only -Wall` (with the waivers "
                               "in gen/lint.vlt) and fail on any warning")
    generate.add_argument("--programmable", action="store_true",
                          help="the accelerator with its instruction decoder and addend "
                               "stage: DIR/qforge_core.v, module qforge_core, ports "
                               "instruction, a_in, b_in, addend, result (docs/ISA.md)")
    generate.set_defaults(handler=handle)


def handle(arguments) -> int:
    from qforge.gen.generate import CORE_TOP_NAME, TOP_NAME, generate

    config = config_from_arguments(arguments)
    top = CORE_TOP_NAME if arguments.programmable else TOP_NAME
    for name in (f"{top}.v", "manifest.json"):      # the folder was checked by main
        prepare_output(arguments.output / name, "-o")
    announce_generation(config)
    design = generate(config, arguments.output, programmable=arguments.programmable)
    print(f"wrote {design.verilog} and {design.manifest} ({design_summary(config)})")
    if arguments.lint:
        return report_lint(design.verilog)
    return 0


def design_summary(config) -> str:
    """The generated design in words, as ``qforge generate`` reports it.

    >>> from qforge.sim.model.spec import load_preset
    >>> design_summary(load_preset("default"))
    '8x8 array, 8-bit operands, 4 blocks of 2 bits, 4 block multipliers per PE, 27-bit accumulators'
    >>> design_summary(load_preset("fxp8"))
    '8x8 array, 8-bit operands, 1 block of 8 bits, 1 block multiplier per PE, 27-bit accumulators'
    """
    def count(number: int, noun: str) -> str:
        return f"{number} {noun}{'' if number == 1 else 's'}"

    return (f"{config.rows}x{config.cols} array, {config.operand_width}-bit operands, "
            f"{count(config.blocks, 'block')} of {config.block_width} bits, "
            f"{count(config.block_multipliers, 'block multiplier')} per PE, "
            f"{config.accumulator_width}-bit accumulators")
