"""The ``qforge`` command line.

Subcommands: ``generate`` (Verilog + manifest), ``presets``, ``lint``, ``demo``
(generate, simulate random GEMMs in every precision mode, report) and ``bench``
(utilization, precision scaling and emulator speed as JSON). Every error a user can
cause (a bad spec, an unknown preset, a missing tool) prints one line naming the
problem and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qforge.gen.spec import SCHEMA, ConfigError, load_preset, load_spec, preset_names

__all__ = ["main"]

_EPILOG_SPEC = "spec keys (TOML sections):\n" + "\n".join(
    f"  {field.path:34s} {field.minimum} .. {field.maximum}: {field.help}"
    for field in SCHEMA)


def _add_config_arguments(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    group = parser.add_mutually_exclusive_group(required=default is None)
    group.add_argument("--preset", metavar="NAME", default=default,
                       help=f"a built-in configuration: {', '.join(preset_names())}"
                       + (f" (default: {default})" if default else ""))
    group.add_argument("--spec", metavar="FILE.toml", type=Path,
                       help="a TOML spec file (see `qforge presets --show default` for one)")


def _config(arguments):
    if getattr(arguments, "spec", None):
        return load_spec(arguments.spec)
    return load_preset(arguments.preset)


def _command_generate(arguments) -> int:
    from qforge.gen.generate import generate, lint

    config = _config(arguments)
    design = generate(config, arguments.output)
    print(f"wrote {design.verilog} and {design.manifest} "
          f"({config.rows}x{config.cols} array, {config.operand_width}-bit operands, "
          f"{config.blocks} blocks of {config.block_width} bits, "
          f"{config.block_multipliers} block multipliers per PE, "
          f"{config.accumulator_width}-bit accumulators)")
    if arguments.lint:
        return _report_lint(design.verilog)
    return 0


def _report_lint(verilog_path) -> int:
    from qforge.gen.generate import lint, lint_waivers

    messages = lint(verilog_path)
    if messages:
        print(f"verilator --lint-only -Wall: {len(messages)} warning(s) not waived:")
        for message in messages:
            print("  " + message)
        return 1
    print(f"verilator --lint-only -Wall: clean (waivers with reasons: {lint_waivers()})")
    return 0


def _command_lint(arguments) -> int:
    from qforge.gen.generate import generate

    if arguments.verilog:
        return _report_lint(arguments.verilog)
    config = _config(arguments)
    design = generate(config, Path("build") / "lint" / config.name)
    return _report_lint(design.verilog)


def _command_presets(arguments) -> int:
    if arguments.show:
        print(load_preset(arguments.show).to_toml(), end="")
        return 0
    for name in preset_names():
        config = load_preset(name)
        print(f"{name:8s} {config.rows}x{config.cols} array, W={config.operand_width} "
              f"K={config.block_width} (B={config.blocks}) P={config.block_multipliers}, "
              f"accumulator {config.accumulator_width} bits, buffers "
              f"2x{config.buffer_depth} words/bank, depth <= {config.max_reduction_depth}")
    return 0


def _command_demo(arguments) -> int:
    from qforge.sim.demo import format_report, run_demo

    config = _config(arguments)
    report = run_demo(config, per_mode=arguments.per_mode, seed=arguments.seed,
                      simulator=arguments.simulator, large=not arguments.no_large,
                      log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_report(report))
    print(f"\nreport written to build/demo/report.json and build/demo/report.md")
    return 0 if report["mismatched_beats"] == 0 and \
        report["stalled_run_mismatched_beats"] == 0 else 1


def _command_bench(arguments) -> int:
    from qforge.sim.benchmark import run_benchmark

    config = _config(arguments)
    result = run_benchmark(config, rtl=arguments.rtl,
                           log=lambda message: print(message, file=sys.stderr, flush=True))
    if arguments.plot:
        from qforge.sim.benchmark import plot_precision_scaling
        arguments.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_precision_scaling(result, arguments.plot)
        print(f"plot saved to {arguments.plot}", file=sys.stderr)
    if arguments.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{config.name} ({result['array']} array, P={config.block_multipliers}), "
          f"cycles from the {result['cycles_source']}")
    print(f"dense_utilization (128x128x128, exact): {result['dense_utilization']:.3f}")
    print(f"precision_speedup_vs_ideal (worst mode): {result['precision_speedup_vs_ideal']:.3f}")
    print(f"emulator_vs_float32 (256^3, exact): {result['emulator_vs_float32']:.2f}")
    print("\n| mode | q | cycles | ideal | utilization | MACs/PE/cycle | ideal P/q |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in result["modes"]:
        print(f"| {row['mode']} | {row['block_products']} | {row['cycles']} "
              f"| {row['ideal_cycles']:.0f} | {row['utilization']:.3f} "
              f"| {row['macs_per_pe_cycle']:.3f} | {row['ideal_macs_per_pe_cycle']:.3f} |")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qforge",
        description="Generate, verify and measure block-wise precision-reconfigurable "
                    "DNN training accelerators (Amaranth HDL -> Verilog).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `qforge COMMAND --help` for the options of each command.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="write Verilog and a JSON manifest for a configuration",
        description="Elaborate the accelerator for a configuration and write "
                    "DIR/qforge_top.v (one file, module qforge_top, clock `clk`, "
                    "synchronous reset `rst`) and DIR/manifest.json (the full "
                    "configuration, derived widths, generator version and the port map "
                    "with every stream's payload layout).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG_SPEC)
    _add_config_arguments(generate, default=None)
    generate.add_argument("-o", "--output", metavar="DIR", type=Path, required=True,
                          help="output folder (created if missing)")
    generate.add_argument("--lint", action="store_true",
                          help="also run `verilator --lint-only -Wall` (with the waivers "
                               "in gen/lint.vlt) and fail on any warning")
    generate.set_defaults(handler=_command_generate)

    presets = commands.add_parser("presets", help="list the built-in configurations",
                                  description="List the presets, or print one as TOML "
                                              "to start a custom spec from.")
    presets.add_argument("--show", metavar="NAME", help="print preset NAME as a TOML spec")
    presets.set_defaults(handler=_command_presets)

    lint = commands.add_parser(
        "lint", help="lint generated Verilog with verilator -Wall",
        description="Run `verilator --lint-only -Wall` with qforge's documented waivers "
                    "(gen/lint.vlt) on a configuration's Verilog (generated into "
                    "build/lint/NAME) or on a given file. Exit status 1 on any warning.")
    _add_config_arguments(lint, default="default")
    lint.add_argument("--verilog", type=Path, metavar="FILE",
                      help="lint this Verilog file instead of generating one")
    lint.set_defaults(handler=_command_lint)

    demo = commands.add_parser(
        "demo", help="generate, simulate random GEMMs in every mode, report",
        description="Generate the configuration's Verilog, compile it with Verilator "
                    "(once; cached under build/rtl), run random GEMMs in every standard "
                    "precision mode through the cocotb bench, compare every result with "
                    "the golden model and print cycles, utilization and MACs/cycle per "
                    "mode, then measure one 128x128x128 GEMM per mode on the RTL. Exit "
                    "status 1 if any result differs.")
    _add_config_arguments(demo, default="default")
    demo.add_argument("--per-mode", type=int, default=2, metavar="N",
                      help="random GEMMs per precision mode (default: 2)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    demo.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator",
                      help="simulator (default: verilator; icarus needs apt's iverilog)")
    demo.add_argument("--no-large", action="store_true",
                      help="skip the 128x128x128 GEMM per mode (about a minute on the "
                           "default preset)")
    demo.set_defaults(handler=_command_demo)

    bench = commands.add_parser(
        "bench", help="measure utilization, precision scaling and emulator speed",
        description="Measure, in one run: dense_utilization (ideal/measured cycles of a "
                    "128x128x128 exact GEMM), precision_speedup_vs_ideal (lowest ratio "
                    "over the precision modes of MACs/PE/cycle to the ideal P/q) and "
                    "emulator_vs_float32 (bit-exact emulated 256^3 GEMM time / float32 "
                    "numpy.matmul time). Cycles come from the cycle model, which the test "
                    "suite proves equal to the RTL; --rtl measures them in Verilator.")
    _add_config_arguments(bench, default="default")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--rtl", action="store_true",
                       help="measure cycles on the generated Verilog (slower)")
    bench.add_argument("--plot", type=Path, metavar="FILE.png",
                       help="also save a bar chart of MACs/PE/cycle vs the ideal P/q")
    bench.set_defaults(handler=_command_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except ConfigError as error:
        print(f"qforge: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - known user-facing failures below
        from qforge.sim.tools import ToolError
        if isinstance(error, (ToolError, ValueError, FileNotFoundError)):
            print(f"qforge: error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
