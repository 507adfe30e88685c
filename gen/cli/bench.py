"""``qforge bench``: utilization, precision scaling, zero skipping and emulator speed
(cycle model or RTL), as tables or JSON, with optional plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qforge.gen.cli.common import (OptionError, add_config_arguments, add_output_argument,
                                   config_from_arguments, log_to_stderr, prepare_output,
                                   uses_build_folder)


def register(commands) -> None:
    """Add ``qforge bench`` to the subcommands ``commands``."""
    bench = commands.add_parser(
        "bench", help="measure utilization, precision scaling, zero skipping, emulator speed",
        description="Measure, in one run: dense_utilization (ideal/measured cycles of a "
                    "128x128x128 exact GEMM), precision_speedup_vs_ideal (lowest ratio "
                    "over the precision modes of MACs/PE/cycle to the ideal P/q), "
                    "emulator_vs_float32 (bit-exact emulated 256^3 GEMM time / float32 "
                    "numpy.matmul time), and, on the same array built as the zero-skipping "
                    "array (itself if it already is one), sparse_speedup_50 (cycles with "
                    "skip_zeros off / on for the same 128x128x128 exact GEMM whose A is 50% "
                    "uniformly random zeros) and sparse_vs_ideal (lowest ratio over A "
                    "densities 10%..100% of ideal cycles, non-zero MACs / peak MACs per "
                    "cycle, to the skipping cycles), with a per-mode table at 50%; those "
                    "are reported as not applicable, with the reason (null in --json, "
                    "sparse_not_applicable the reason), where the configuration cannot be "
                    "built as the zero-skipping array: the PE designs that need the dense "
                    "systolic array (arithmetic.pe = \"shared_shift\" or \"fused\"). "
                    "paired_speedup: on the same array built with the paired mode "
                    "(arithmetic.paired; the paired preset for default), exact-mode cycles "
                    "/ paired-mode cycles of the same 128x128x128 GEMM (ideal 2.0; "
                    "paired_vs_ideal the ratio; not applicable, with the reason, where the "
                    "design cannot have it). "
                    "area_efficiency_exact and area_efficiency_4bit: MACs/cycle per PE "
                    "transistor (Yosys's CMOS estimate) against the fxp8 PE. Operands "
                    "are seeded: runs are reproducible. Cycles come from the cycle model, "
                    "which the test suite proves equal to the RTL; --rtl measures them in "
                    "Verilator (the JSON says where each figure's cycles came from).")
    add_config_arguments(bench, default="default")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--rtl", action="store_true",
                       help="measure cycles on the generated Verilog (slower: builds the "
                            "array and, where zero skipping applies, its zero-skipping "
                            "version; skipping cycles at 10%%, 50%% and 100%% density and "
                            "dense cycles at 50%% come from the RTL, the other densities "
                            "from the cycle model)")
    add_output_argument(bench, "--plot-dir", folder=True, metavar="DIR",
                       help="save both plots into DIR: precision_scaling.png (MACs/PE/cycle "
                            "vs the ideal P/q per mode) and sparse_scaling.png (cycles vs A "
                            "density: skip on, skip off, ideal; left out where zero "
                            "skipping does not apply)")
    add_output_argument(bench, "--plot", suffixes=(".png",), metavar="FILE.png",
                       help="save the bar chart of MACs/PE/cycle vs the ideal P/q here")
    add_output_argument(bench, "--sparse-plot", suffixes=(".png",), metavar="FILE.png",
                       help="save the plot of cycles vs A density (skip on, skip off, "
                            "ideal) here (an error where zero skipping does not apply)")
    uses_build_folder(bench, lambda arguments: arguments.rtl)
    bench.set_defaults(handler=handle)


def _plot_targets(arguments, not_applicable: str | None) -> list[tuple[str, Path, str]]:
    """``(kind, file, option)`` of every plot ``bench`` was asked to save. The options'
    paths were checked before the handler ran (:func:`prepare_outputs`); the two files
    --plot-dir will hold are checked here, before the benchmark. Where zero skipping does
    not apply (``not_applicable``, the reason), --plot-dir leaves the sparse plot out
    and --sparse-plot is an error."""
    if not_applicable is not None and arguments.sparse_plot is not None:
        raise OptionError(f"--sparse-plot {arguments.sparse_plot}: zero skipping does not "
                          f"apply to this configuration ({not_applicable})")
    targets = []
    if arguments.plot_dir:
        for kind, name in (("precision", "precision_scaling.png"),
                           ("sparse", "sparse_scaling.png")):
            if kind == "sparse" and not_applicable is not None:
                continue
            prepare_output(arguments.plot_dir / name, "--plot-dir")
            targets.append((kind, arguments.plot_dir / name, "--plot-dir"))
    for kind, path, option in (("precision", arguments.plot, "--plot"),
                               ("sparse", arguments.sparse_plot, "--sparse-plot")):
        if path is not None:
            targets.append((kind, path, option))
    return targets


def handle(arguments) -> int:
    from qforge.sim.apps.benchmark import (plot_precision_scaling, plot_sparse_scaling,
                                           run_benchmark, zero_skipping_not_applicable)

    config = config_from_arguments(arguments)
    not_applicable = zero_skipping_not_applicable(config)
    targets = _plot_targets(arguments, not_applicable)
    result = run_benchmark(config, rtl=arguments.rtl, log=log_to_stderr)
    if arguments.plot_dir and not_applicable is not None:
        print(f"sparse_scaling.png not saved: zero skipping does not apply ({not_applicable})",
              file=sys.stderr)
    for kind, path, option in targets:
        plot = plot_precision_scaling if kind == "precision" else plot_sparse_scaling
        try:
            plot(result, path)
        except OSError as error:
            raise OptionError(f"{option} {path}: cannot write: "
                             f"{error.strerror or error}") from None
        print(f"plot saved to {path}", file=sys.stderr)
    if arguments.json:
        print(json.dumps(result, indent=2))
        return 0
    sparse = result["sparse"]
    print(f"{config.name} ({result['array']} array, P={config.block_multipliers}), "
          f"cycles from the {result['cycles_source']}")
    print(f"dense_utilization (128x128x128, exact): {result['dense_utilization']:.3f}")
    print(f"precision_speedup_vs_ideal (worst mode): {result['precision_speedup_vs_ideal']:.3f}")
    print(f"emulator_vs_float32 (256^3, exact): {result['emulator_vs_float32']:.2f}")
    if sparse is None:
        print("sparse_speedup_50, sparse_vs_ideal: not applicable, no zero-skipping array "
              f"of this configuration ({result['sparse_not_applicable']})")
    else:
        print(f"sparse_speedup_50 ({sparse['hardware']}, 50% dense A, skip on vs off): "
              f"{result['sparse_speedup_50']:.3f}")
        print(f"sparse_vs_ideal (worst over 10..100% density, at "
              f"{sparse['vs_ideal_worst_density']:.0%}): {result['sparse_vs_ideal']:.3f}")
    paired = result["paired"]
    if paired is None:
        print("paired_speedup: not applicable, no paired-mode array of this configuration "
              f"({result['paired_not_applicable']})")
    else:
        print(f"paired_speedup ({paired['hardware']}, {paired['paired_mode']}, "
              f"{paired['exact_cycles']} / {paired['paired_cycles']} cycles, "
              f"{paired['cycles_source']}): {result['paired_speedup']:.3f} "
              f"(ideal 2.0: {result['paired_vs_ideal']:.3f})")
    area = result["area"]
    four_bit = ("none (no 4-bit mode)" if area["four_bit"] is None else
                f"{area['four_bit']:.2f} (q = {area['four_bit_block_products']})")
    print(f"area_efficiency_exact (MACs/cycle per PE transistor vs {area['baseline']}, "
          f"{area['pe_transistors']} vs {area['baseline_pe_transistors']} transistors): "
          f"{area['exact']:.2f}")
    print(f"area_efficiency_4bit (reduced mode, 4x4 bits): {four_bit}")
    print("\n| mode | q | cycles | ideal | utilization | MACs/PE/cycle | ideal P/q |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in result["modes"]:
        print(f"| {row['mode']} | {_q(row)} | {row['cycles']} "
              f"| {row['ideal_cycles']:.0f} | {row['utilization']:.3f} "
              f"| {row['macs_per_pe_cycle']:.3f} | {row['ideal_macs_per_pe_cycle']:.3f} |")
    if any(row["issued_block_products"] != row["block_products"] for row in result["modes"]):
        print("\nq = La * Lb; \"issues\": the block products the PE design issues per MAC, "
              "which the cycles and the ideal P/q use.")
    if sparse is not None:
        _print_sparse(sparse, config)
    return 0


def _q(row: dict) -> str:
    """A table row's q column: :func:`~qforge.sim.apps.benchmark.q_label`."""
    from qforge.sim.apps.benchmark import q_label

    return q_label(row["block_products"], row["issued_block_products"])


def _print_sparse(sparse: dict, config) -> None:
    """The zero-skipping tables of a ``run_benchmark`` result's ``sparse`` part."""
    print(f"\nZero skipping on {sparse['hardware']} ({sparse['array']}), exact mode, "
          f"cycles from the {sparse['cycles_source']}:\n")
    print("| A density | dense cycles | skipping cycles | ideal | speedup | ideal/skipping |")
    print("|---:|---:|---:|---:|---:|---:|")
    for point in sparse["points"]:
        print(f"| {point['target_density']:.0%} | {point['dense_cycles']} "
              f"| {point['sparse_cycles']} | {point['ideal_cycles']:.0f} "
              f"| {point['speedup']:.2f} | {point['vs_ideal']:.3f} |")
    print(f"\nEvery mode at 50% density (q < P={config.block_multipliers}: a word of P "
          "operands is skipped only when all of them are zero):\n")
    print("| mode | q | dense cycles | skipping cycles | speedup | ideal/skipping "
          "| all-zero words |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in sparse["modes"]:
        print(f"| {row['mode']} | {_q(row)} | {row['dense_cycles']} "
              f"| {row['sparse_cycles']} | {row['speedup']:.2f} | {row['vs_ideal']:.3f} "
              f"| {row['zero_words']:.3f} |")
