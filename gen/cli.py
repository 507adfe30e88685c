"""The ``qforge`` command line.

Subcommands: ``generate`` (Verilog + manifest), ``presets``, ``lint``, ``demo``
(generate, simulate random GEMMs in every precision mode, report), ``bench``
(utilization, precision scaling and emulator speed as JSON) and ``train`` (train an MLP
on scikit-learn's digits with the bit-exact emulator, per hardware configuration). Every
error a user can cause (a bad spec, an unknown preset, a missing tool) prints one line
naming the problem and exits with status 2; no traceback.
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


def _command_repro(arguments) -> int:
    from qforge.sim.repro import SHAPES, format_repro, run_repro

    shapes = SHAPES
    if arguments.shapes:
        shapes = []
        for text in arguments.shapes.split(","):
            try:
                rows, cols = (int(part) for part in text.lower().split("x"))
            except ValueError:
                raise ValueError(f"--shapes: {text!r} is not ROWSxCOLS (e.g. 2x2,4x8,8x8)")
            shapes.append((rows, cols))
        if len(shapes) < 2:
            raise ValueError("--shapes: give at least two shapes to compare")
    result = run_repro(tuple(shapes), seed=arguments.seed,
                       log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_repro(result))
    return 0 if result["vrq_reproducible"] else 1


def _command_train(arguments) -> int:
    if not arguments.emulate:
        print("qforge: error: train needs --emulate: the bit-exact emulator is the only "
              "backend for now (training on the generated RTL is a later issue)",
              file=sys.stderr)
        return 2
    import dataclasses
    import os

    from qforge.sim.training import (TrainConfigError, describe_schedule, format_table,
                                     load_train_config, plot_curves, train_all)

    train = load_train_config(arguments.config)
    if arguments.seed is not None:
        if not 0 <= arguments.seed <= 65535:
            raise TrainConfigError(f"--seed = {arguments.seed}: allowed range is 0 .. 65535")
        train = dataclasses.replace(train, seed=arguments.seed)
    if arguments.epochs is not None and arguments.epochs < 1:
        raise TrainConfigError(f"--epochs = {arguments.epochs}: must be at least 1")
    jobs = arguments.jobs if arguments.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise TrainConfigError(f"--jobs = {jobs}: must be at least 1")
    report = train_all(train, epochs=arguments.epochs, jobs=jobs,
                       log=lambda message: print(message, file=sys.stderr, flush=True))
    print(f"qforge train --emulate: {report['name']} ({report['source']}): MLP 64-"
          f"{report['hidden']}-10 on digits, {report['epochs']} epochs, batch "
          f"{report['batch_size']}, learning rate {describe_schedule(report)}, seed "
          f"{report['seed']}; {report['train_samples']} training / "
          f"{report['test_samples']} test samples\n")
    print(format_table(report))
    plot = arguments.plot or Path("build") / "train" / f"{report['name']}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(report, plot)
    print(f"\nplot saved to {plot}")
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {arguments.json}")
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

    train = commands.add_parser(
        "train", help="train an MLP on digits with emulated hardware arithmetic",
        description="Train an MLP (64 -> hidden -> 10, ReLU, softmax cross-entropy, SGD) on\n"
                    "scikit-learn's handwritten digits once per hardware configuration of a\n"
                    "training config. Every forward and backward GEMM runs on the bit-exact\n"
                    "emulator (the golden model) in the configured operand format (int,\n"
                    "value-range quantization or address-block; exact or approximate blocks;\n"
                    "nearest or stochastic rounding), and the weights live only in a fixed-\n"
                    "point weight format updated with nearest or stochastic rounding. A float32\n"
                    "run of the same network, initial weights, batches and epochs is the\n"
                    "reference. Prints progress to stderr and a Markdown table of the final\n"
                    "test accuracy and loss per configuration (with the difference to\n"
                    "float32) and saves a plot of the training curves. See docs/TRAINING.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="training config keys: name, hidden, epochs, batch_size, learning_rate, "
               "seed, split_seed,\n  test_fraction, train_samples, preset, and [[hardware]] "
               "tables with name, format\n  (float32 | int | vrq | address_block), bits, "
               "code_width, range_stride, ranges,\n  block, kept_blocks, selection, "
               "rounding, weight_bits, weight_range, update_rounding\n  (see "
               "gen/train/digits.toml and docs/TRAINING.md)")
    train.add_argument("--emulate", action="store_true",
                       help="use the bit-exact emulator (required: the only backend for "
                            "now; training on the RTL is a later issue)")
    train.add_argument("--config", metavar="FILE.toml", type=Path,
                       help="training config (default: the packaged comparison run "
                            "gen/train/digits.toml)")
    train.add_argument("--epochs", type=int, metavar="N",
                       help="override the config's epochs")
    train.add_argument("--seed", type=int, metavar="N",
                       help="override the config's seed (initial weights, batch order, "
                            "stochastic-rounding bits; 0 .. 65535)")
    train.add_argument("--plot", type=Path, metavar="FILE.png",
                       help="where to save the plot of test accuracy and training loss per "
                            "epoch (default: build/train/NAME.png)")
    train.add_argument("--json", type=Path, metavar="FILE.json",
                       help="also write every curve and final figure as JSON")
    train.add_argument("--jobs", type=int, metavar="N",
                       help="configurations trained in parallel worker processes "
                            "(default: the number of CPU cores; results do not depend "
                            "on it)")
    train.set_defaults(handler=_command_train)

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
    repro.add_argument("--seed", type=int, default=7, help="data and rounding seed")
    repro.set_defaults(handler=_command_repro)
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
