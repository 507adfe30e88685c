"""``qforge presets``: list the built-in configurations, or print one as TOML."""

from __future__ import annotations

from qforge.sim.model.spec import load_preset, preset_names


def register(commands) -> None:
    """Add ``qforge presets`` to the subcommands ``commands``."""
    presets = commands.add_parser("presets", help="list the built-in configurations",
                                  description="List the presets, or print one as TOML "
                                              "to start a custom spec from.")
    presets.add_argument("--show", metavar="NAME", help="print preset NAME as a TOML spec")
    presets.set_defaults(handler=handle)


def handle(arguments) -> int:
    if arguments.show:
        print(load_preset(arguments.show).to_toml(), end="")
        return 0
    for name in preset_names():
        config = load_preset(name)
        print(f"{name:8s} {config.rows}x{config.cols} array, W={config.operand_width} "
              f"K={config.block_width} (B={config.blocks}) P={config.block_multipliers}, "
              f"accumulator {config.accumulator_width} bits, buffers "
              f"2x{config.buffer_depth} words/bank, depth <= {config.max_reduction_depth}"
              + (", zero skipping" if config.zero_skipping else "")
              + (f", output stage {config.output_lanes} of {config.cols} columns per cycle"
                 if config.output_cycles_per_beat > 1 else ""))
    return 0
