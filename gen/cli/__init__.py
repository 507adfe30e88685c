"""The ``qforge`` command line.

Subcommands: ``generate`` (Verilog + manifest), ``presets``, ``lint``, ``demo``
(generate, simulate random GEMMs in every precision mode, report), ``bench``
(utilization, precision scaling, zero skipping and emulator speed as JSON), ``train``
(train an MLP on scikit-learn's digits with the bit-exact emulator, per hardware
configuration), ``repro`` (results independent of the array shape), ``area`` (Yosys
cell counts of configurations side by side), ``build`` (bitstreams and resource/fmax
reports for the FPGA boards), ``host`` (talk to a board over its UART link) and ``asm``
(assemble a program into instruction words, docs/ISA.md). Every error a user can cause (a bad spec,
an unknown preset, a missing tool) prints one line naming the problem and exits with
status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from qforge.gen.cli.common import (FAMILY_NAMES, SPEC_EPILOG, AppendDesign,
                                   add_config_arguments, config_from_arguments, load_config)
from qforge.sim.model.spec import ConfigError, load_preset, preset_names

__all__ = ["main"]

def _command_generate(arguments) -> int:
    from qforge.gen.generate import generate

    config = config_from_arguments(arguments)
    design = generate(config, arguments.output, programmable=arguments.programmable)
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
    config = config_from_arguments(arguments)
    folder = config.name + ("-core" if arguments.programmable else "")
    design = generate(config, Path("build") / "lint" / folder,
                      programmable=arguments.programmable)
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
              f"2x{config.buffer_depth} words/bank, depth <= {config.max_reduction_depth}"
              + (", zero skipping" if config.zero_skipping else "")
              + (f", output stage {config.output_lanes} of {config.cols} columns per cycle"
                 if config.output_cycles_per_beat > 1 else ""))
    return 0


def _command_demo(arguments) -> int:
    from qforge.sim.apps.demo import format_report, run_demo

    config = config_from_arguments(arguments)
    if arguments.programs < 0:
        raise ValueError(f"--programs = {arguments.programs}: must be at least 0")
    output = arguments.output
    if output is not None:
        _make_folder(output, "--output", output)
    report = run_demo(config, per_mode=arguments.per_mode, seed=arguments.seed,
                      simulator=arguments.simulator, large=not arguments.no_large,
                      programs=arguments.programs, output=output,
                      log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_report(report))
    folder = output or Path("build") / "demo"
    print(f"\nreport written to {folder / 'report.json'} and {folder / 'report.md'}")
    programs = report.get("programs")
    programs_ok = programs is None or (
        programs["error_flags_match"] == programs["memory_matches"] == programs["programs"]
        and programs["cycles"] == programs["model_cycles"])
    return 0 if report["mismatched_beats"] == 0 and \
        report["stalled_run_mismatched_beats"] == 0 and programs_ok else 1


def _make_folder(folder: Path, option: str, given: Path) -> None:
    """Create ``folder`` for an output option, or fail with one line naming the option."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {given}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{option} {given}: cannot create folder {folder}: "
                         f"{error.strerror or error}") from None


def _plot_targets(arguments) -> list[tuple[str, Path, str]]:
    """``(kind, file, option)`` of every plot ``bench`` was asked to save; each folder is
    created (and checked) before the benchmark runs, so a bad path fails fast."""
    targets = []
    if arguments.plot_dir:
        _make_folder(arguments.plot_dir, "--plot-dir", arguments.plot_dir)
        targets += [("precision", arguments.plot_dir / "precision_scaling.png", "--plot-dir"),
                    ("sparse", arguments.plot_dir / "sparse_scaling.png", "--plot-dir")]
    for kind, path, option in (("precision", arguments.plot, "--plot"),
                               ("sparse", arguments.sparse_plot, "--sparse-plot")):
        if path is None:
            continue
        if path.suffix.lower() != ".png":
            raise ValueError(f"{option} {path}: the plot file must end in .png")
        if path.is_dir():
            raise ValueError(f"{option} {path}: is a folder, not a file")
        _make_folder(path.parent, option, path)
        targets.append((kind, path, option))
    return targets


def _command_bench(arguments) -> int:
    from qforge.sim.apps.benchmark import (plot_precision_scaling, plot_sparse_scaling,
                                      run_benchmark)

    config = config_from_arguments(arguments)
    targets = _plot_targets(arguments)
    result = run_benchmark(config, rtl=arguments.rtl,
                           log=lambda message: print(message, file=sys.stderr, flush=True))
    for kind, path, option in targets:
        plot = plot_precision_scaling if kind == "precision" else plot_sparse_scaling
        try:
            plot(result, path)
        except OSError as error:
            raise ValueError(f"{option} {path}: cannot write: "
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
    print(f"sparse_speedup_50 ({sparse['hardware']}, 50% dense A, skip on vs off): "
          f"{result['sparse_speedup_50']:.3f}")
    print(f"sparse_vs_ideal (worst over 10..100% density, at "
          f"{sparse['vs_ideal_worst_density']:.0%}): {result['sparse_vs_ideal']:.3f}")
    print("\n| mode | q | cycles | ideal | utilization | MACs/PE/cycle | ideal P/q |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in result["modes"]:
        print(f"| {row['mode']} | {row['block_products']} | {row['cycles']} "
              f"| {row['ideal_cycles']:.0f} | {row['utilization']:.3f} "
              f"| {row['macs_per_pe_cycle']:.3f} | {row['ideal_macs_per_pe_cycle']:.3f} |")
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
        print(f"| {row['mode']} | {row['block_products']} | {row['dense_cycles']} "
              f"| {row['sparse_cycles']} | {row['speedup']:.2f} | {row['vs_ideal']:.3f} "
              f"| {row['zero_words']:.3f} |")
    return 0


def _command_area(arguments) -> int:
    from qforge.fpga.area import FAMILIES, config_area, count_instances, selector_area

    if arguments.jobs < 1:
        raise ValueError(f"--jobs = {arguments.jobs}: must be at least 1")
    configs = []
    for kind, value in arguments.designs or [("preset", "default"), ("preset", "sparse")]:
        config = load_config(kind, value)
        configs.append(config)
        if arguments.with_skipping and not config.zero_skipping:
            configs.append(config.with_zero_skipping())
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"--preset/--spec: configuration {duplicates[0]!r} given twice")
    family = FAMILIES[arguments.family]
    log = (lambda message: print(message, file=sys.stderr, flush=True))
    options = {"cache": not arguments.no_cache, "log": log}

    def measure(config):
        return config_area(config, family, flatten=not arguments.hierarchy,
                           keep=tuple(arguments.keep or ()), **options)

    started = time.monotonic()
    if arguments.jobs > 1 and len(configs) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(arguments.jobs) as pool:
            reports = list(pool.map(measure, configs))
    else:
        reports = [measure(config) for config in configs]
    selectors = None
    if arguments.selectors:
        from qforge.hdl.selector import BlockSelector
        from qforge.hdl.top import Accelerator
        selectors = []
        for config, report in zip(configs, reports):
            one = selector_area(config, family, **options)
            count = count_instances(Accelerator(config), BlockSelector)
            local = config.rows * config.cols if config.zero_skipping else 0
            selectors.append({"count": count, "pe_local_b": local, "one": one.summary,
                              "all_lut4": count * one.summary["lut4"],
                              "all_ff": count * one.summary["ff"],
                              "lut4_share": count * one.summary["lut4"]
                              / max(1, report.summary["lut4"]),
                              "pe_local_b_lut4_share": local * one.summary["lut4"]
                              / max(1, report.summary["lut4"])})
    wall = time.monotonic() - started

    if arguments.json:
        result = {"family": family.name, "synthesis": family.synth,
                  "yosys": reports[0].yosys, "seconds": wall,
                  "designs": [{"config": config.name, "zero_skipping": config.zero_skipping,
                               "array": f"{config.rows}x{config.cols}"} | report.to_dict()
                              for config, report in zip(configs, reports)]}
        if len(reports) > 1:
            base = reports[0].summary
            result["ratios_to_first"] = [
                {"config": config.name} | {key: (report.summary[key] / base[key]
                                                 if base[key] else None) for key in base}
                for config, report in zip(configs[1:], reports[1:])]
        if selectors is not None:
            for design, selector in zip(result["designs"], selectors):
                design["block_selectors"] = selector
        print(json.dumps(result, indent=2))
        return 0

    kept = ("; hierarchy kept: no optimization across modules" if arguments.hierarchy
            else f"; kept apart: {', '.join(arguments.keep)}" if arguments.keep else "")
    print(f"qforge area: {reports[0].yosys} `{family.synth}"
          f"{' -noflatten' if arguments.hierarchy else ''}` (YoWASP), cells after "
          f"synthesis of the whole design (no place and route){kept}\n")
    header = "| cells | " + " | ".join(names)
    rule = "|---|" + "---:|" * len(names)
    if len(names) > 1:
        header += " | " + " | ".join(f"{name}/{names[0]}" for name in names[1:])
        rule += "---:|" * (len(names) - 1)
    print(header + " |")
    print(rule)
    for key in reports[0].summary:
        values = [report.summary[key] for report in reports]
        if key == "other" and not any(values):
            continue
        label = family.label(key)
        row = f"| {label} | " + " | ".join(str(value) for value in values)
        for value in values[1:]:
            row += f" | {value / values[0]:.2f}" if values[0] else " | -"
        print(row + " |")
    for label, seconds in (("synthesis wall time", lambda report: report.seconds),
                           ("synthesis CPU time", lambda report: report.cpu_seconds)):
        times = [("cached" if report.cached else f"{seconds(report):.0f} s")
                 for report in reports]
        print(f"| {label} | " + " | ".join(times + [""] * (len(names) - 1)) + " |")
    for name, report in zip(names, reports):
        if report.workaround:
            print(f"\n{name}: the plain script failed (Yosys issue #4349, ABC9); counts are "
                  f"from the retry with `{report.workaround}` first (a few percent more LUTs)")
    if selectors is not None:
        print("\nBlock selectors: one synthesized alone, times the instances. An upper "
              "bound for the flattened design, where selectors fed the same precision and "
              "lane selections may share logic:\n")
        print("| design | selectors | of which PE-local B | LUT4 each | FF each | LUT4 all "
              "| share of design LUT4 | PE-local B share |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, selector in zip(names, selectors):
            print(f"| {name} | {selector['count']} | {selector['pe_local_b']} "
                  f"| {selector['one']['lut4']} | {selector['one']['ff']} "
                  f"| {selector['all_lut4']} | {selector['lut4_share']:.1%} "
                  f"| {selector['pe_local_b_lut4_share']:.1%} |")
    if arguments.hierarchy or arguments.keep:
        for name, report in zip(names, reports):
            if report.modules is None:
                print(f"\n{name}: no module matched --keep")
                continue
            groups = report.to_dict()["module_groups"]
            total = max(1, report.summary["lut4"])
            print(f"\n{name}: cells by module (own cells; `*` = any index):\n")
            print("| module | instances | LUT4 | carry | FF | block RAM | DSP | share of LUT4 |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for group, cells in sorted(groups.items(), key=lambda item: -item[1]["lut4"]):
                print(f"| {group} | {cells['instances']} | {cells['lut4']} | {cells['carry']} "
                      f"| {cells['ff']} | {cells['bram']} | {cells['dsp']} "
                      f"| {cells['lut4'] / total:.1%} |")
    print(f"\nwall time: {wall:.0f} s; folders: "
          + ", ".join(str(report.directory) for report in reports))
    return 0


def _command_repro(arguments) -> int:
    from qforge.sim.apps.repro import SHAPES, format_repro, run_repro

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
    if not arguments.emulate and arguments.backend is None:
        print("qforge: error: train needs --emulate (the bit-exact emulator) or --backend "
              "rtl|golden (programs on the generated Verilog or the golden machine)",
              file=sys.stderr)
        return 2
    if arguments.check and arguments.backend != "rtl":
        print("qforge: error: --check compares the rtl backend with the golden machine: "
              "use it with --backend rtl", file=sys.stderr)
        return 2
    import dataclasses
    import os

    from qforge.sim.training.emulated import (TrainConfigError, describe_schedule, format_table,
                                     format_program_table, load_train_config, plot_curves,
                                     rtl_config_path, train_all)

    config_path = arguments.config
    if config_path is None and arguments.backend is not None:
        config_path = rtl_config_path()
    train = load_train_config(config_path)
    if arguments.seed is not None:
        if not 0 <= arguments.seed <= 65535:
            raise TrainConfigError(f"--seed = {arguments.seed}: allowed range is 0 .. 65535")
        train = dataclasses.replace(train, seed=arguments.seed)
    if arguments.epochs is not None and arguments.epochs < 1:
        raise TrainConfigError(f"--epochs = {arguments.epochs}: must be at least 1")
    jobs = arguments.jobs if arguments.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise TrainConfigError(f"--jobs = {jobs}: must be at least 1")
    report = train_all(train, epochs=arguments.epochs, jobs=jobs, backend=arguments.backend,
                       check=arguments.check, progress=arguments.backend is not None,
                       log=lambda message: print(message, file=sys.stderr, flush=True))
    how = "--emulate" if arguments.emulate else f"--backend {arguments.backend}"
    print(f"qforge train {how}: {report['name']} ({report['source']}): MLP 64-"
          f"{report['hidden']}-10 on digits, {report['epochs']} "
          f"epoch{'' if report['epochs'] == 1 else 's'}, batch "
          f"{report['batch_size']}, learning rate {describe_schedule(report)}, seed "
          f"{report['seed']}; {report['train_samples']} training / "
          f"{report['test_samples']} test samples\n")
    print(format_table(report))
    programs = format_program_table(report)
    if programs:
        print("\nPer epoch, for the configurations that ran as programs (cycles of the "
              "training steps; the evaluation's apart):\n")
        print(programs)
    plot = arguments.plot or Path("build") / "train" / f"{report['name']}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(report, plot)
    print(f"\nplot saved to {plot}")
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {arguments.json}")
    return 0


def _assemble(arguments, config):
    """``arguments.file`` assembled for ``config``, or None after printing the error gcc
    style (FILE:LINE:COLUMN: error: MESSAGE, the source line and a caret) on stderr."""
    from qforge.gen.asm import AsmError, assemble_file

    try:
        return assemble_file(arguments.file, config)
    except AsmError as error:
        print(error.formatted(), file=sys.stderr)
        return None


def _command_run(arguments) -> int:
    import numpy as np

    from qforge.sim.model.cycles import program_cycles
    from qforge.sim.runtime import Runtime, BackendError

    config = config_from_arguments(arguments)
    program = _assemble(arguments, config)
    if program is None:
        return 2
    for option, names in (("--show", arguments.show), ("--random", arguments.random)):
        for name in names or ():
            if name not in program.regions:
                raise ValueError(f"{option} {name}: not a data label of {arguments.file}; "
                                 f"its data labels: {', '.join(program.regions) or 'none'}")
    memory = np.array(program.memory(), dtype=np.int64)
    rng = np.random.default_rng(arguments.seed)
    for name in arguments.random or ():
        address, size = program.regions[name]
        low, high = -(1 << (config.operand_width - 1)), 1 << (config.operand_width - 1)
        memory[address:address + size] = rng.integers(low, high, size=size)
    backends = [arguments.backend] + (["golden"] if arguments.compare
                                      and arguments.backend != "golden" else [])
    results = {}
    for backend in backends:
        options = {"log": lambda message: print(message, file=sys.stderr)} \
            if backend == "rtl" else {}
        try:
            with Runtime(config, backend, **options) as runtime:
                runtime.memory = memory.copy()
                report = runtime.run(program)
                results[backend] = (report, runtime.memory.copy())
        except BackendError as error:
            raise ValueError(f"{backend} backend: {error}") from None
    report, final = results[arguments.backend]
    model = program_cycles(config, program.words, memory)
    print(f"qforge run {arguments.file} on {arguments.backend} ({config.name}): "
          f"{len(program.words)} words, {report.gemms} GEMMs, error flag "
          f"{int(report.error)}")
    if report.cycles is not None:
        print(f"cycles: {report.cycles} simulated, {model.total} predicted by the cycle "
              f"model ({report.cycles / model.total:.4f})")
    else:
        print(f"cycles: {model.total} predicted by the cycle model")
    status = 0
    if "golden" in results and arguments.backend != "golden":
        golden = results["golden"][1]
        differing = [name for name, (address, size) in program.regions.items()
                     if not np.array_equal(final[address:address + size],
                                           golden[address:address + size])]
        same_error = results["golden"][0].error == report.error
        if np.array_equal(final, golden) and same_error:
            print(f"bit-identical with the golden machine: all {len(final)} memory "
                  f"elements and the error flag")
        else:
            print(f"DIFFERENT from the golden machine: {', '.join(differing) or 'memory'}"
                  f"{'' if same_error else '; error flag'}")
            status = 1
    for name in arguments.show or ():
        address, size = program.regions[name]
        print(f"{name} @ {address} ({size} elements): "
              f"{' '.join(str(int(v)) for v in final[address:address + size])}")
    return status


def _command_fuzz(arguments) -> int:
    from qforge.sim.apps.fuzz import check_program
    from qforge.sim.progress import Progress
    from qforge.sim.runtime import BackendError, Runtime

    config = config_from_arguments(arguments)
    checks = (("programs", arguments.programs, 1, 100000),
              ("instructions", arguments.instructions, 1, 100000))
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise ValueError(f"--{name} = {value}: allowed {low} .. {high}")
    if not 0 <= arguments.invalid <= 1 or not 0 <= arguments.stall < 1:
        raise ValueError("--invalid: allowed 0 .. 1; --stall: allowed 0 .. below 1")
    totals = {"words": 0, "invalid": 0, "gemms": 0, "error flags": 0}
    failures = []
    runtime = Runtime(config, "rtl", stall=arguments.stall,
                      log=lambda message: print(message, file=sys.stderr))
    bar = Progress(arguments.programs, f"fuzz {config.name}")
    try:
        for index in range(arguments.programs):
            seed = arguments.seed + index
            try:
                check = check_program(runtime, seed, instructions=arguments.instructions,
                                      invalid_fraction=arguments.invalid)
            except BackendError as error:               # a hang or a stream error
                failures.append(f"program seed {seed}: {error}")
                bar.advance()
                continue
            totals["words"] += check.words
            totals["invalid"] += check.invalid
            totals["gemms"] += check.gemms
            totals["error flags"] += int(check.error)
            problems = check.problems(check_cycles=not arguments.stall)
            if problems:
                failures.append(f"program seed {seed}: {'; '.join(problems)}")
            bar.advance(note=f"{len(failures)} failed")
    finally:
        bar.close()
        runtime.close()
    print(f"qforge fuzz on {config.name}: {arguments.programs} random programs "
          f"(seeds {arguments.seed} .. {arguments.seed + arguments.programs - 1}), "
          f"{totals['words']} words of which {totals['invalid']} invalid, "
          f"{totals['gemms']} GEMMs executed, stall probability {arguments.stall}")
    print(f"hangs: {sum('hung' in f for f in failures)}; sticky error raised by "
          f"{totals['error flags']} programs, exactly those with an invalid word: "
          f"{'yes' if not any('error flag' in f for f in failures) else 'NO'}; "
          f"memory bit-identical with the golden machine: "
          f"{'yes' if not any('memory' in f for f in failures) else 'NO'}"
          + ("" if arguments.stall else "; cycles equal to the cycle model: "
             + ("yes" if not any("cycles" in f for f in failures) else "NO")))
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


def _command_asm(arguments) -> int:
    config = config_from_arguments(arguments)
    program = _assemble(arguments, config)
    if program is None:
        return 2
    if arguments.output:
        try:
            arguments.output.write_bytes(program.to_bytes())
        except OSError as error:
            raise ValueError(f"-o {arguments.output}: cannot write: "
                             f"{error.strerror or error}") from None
        print(f"wrote {len(program.words)} words ({8 * len(program.words)} bytes) to "
              f"{arguments.output}; the data section reserves {program.memory_size} "
              f"elements", file=sys.stderr)
    if arguments.hex:
        for word in program.words:
            print(f"{word:016x}")
    if arguments.listing or not (arguments.output or arguments.hex):
        print(program.listing())
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
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SPEC_EPILOG)
    add_config_arguments(generate, default=None)
    generate.add_argument("-o", "--output", metavar="DIR", type=Path, required=True,
                          help="output folder (created if missing)")
    generate.add_argument("--lint", action="store_true",
                          help="also run `verilator --lint-only -Wall` (with the waivers "
                               "in gen/lint.vlt) and fail on any warning")
    generate.add_argument("--programmable", action="store_true",
                          help="the accelerator with its instruction decoder and addend "
                               "stage: DIR/qforge_core.v, module qforge_core, ports "
                               "instruction, a_in, b_in, addend, result (docs/ISA.md)")
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
    add_config_arguments(lint, default="default")
    lint.add_argument("--verilog", type=Path, metavar="FILE",
                      help="lint this Verilog file instead of generating one")
    lint.add_argument("--programmable", action="store_true",
                      help="lint the programmable top (qforge_core: decoder, accelerator, "
                           "addend stage) instead of qforge_top")
    lint.set_defaults(handler=_command_lint)

    demo = commands.add_parser(
        "demo", help="generate, simulate random GEMMs in every mode, report",
        description="Generate the configuration's Verilog, compile it with Verilator "
                    "(once; cached under build/rtl), run random GEMMs in every standard "
                    "precision mode through the cocotb bench, compare every result with "
                    "the golden model and print cycles, utilization and MACs/cycle per "
                    "mode, then measure one 128x128x128 GEMM per mode on the RTL; last, "
                    "run random instruction streams on the programmable top (qforge_core, "
                    "docs/ISA.md) against the golden machine. Exit status 1 if any result, "
                    "error flag or cycle count differs.")
    add_config_arguments(demo, default="default")
    demo.add_argument("--per-mode", type=int, default=2, metavar="N",
                      help="random GEMMs per precision mode (default: 2)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    demo.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator",
                      help="simulator (default: verilator; icarus needs apt's iverilog)")
    demo.add_argument("--no-large", action="store_true",
                      help="skip the 128x128x128 GEMM per mode (about a minute on the "
                           "default preset)")
    demo.add_argument("--output", type=Path, metavar="DIR",
                      help="where to write report.json and report.md (default: build/demo)")
    demo.add_argument("--programs", type=int, default=10, metavar="N",
                      help="random instruction streams on the programmable top (default "
                           "10; 0 skips it and its Verilator build)")
    demo.set_defaults(handler=_command_demo)

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
                    "cycle, to the skipping cycles), with a per-mode table at 50%. Operands "
                    "are seeded: runs are reproducible. Cycles come from the cycle model, "
                    "which the test suite proves equal to the RTL; --rtl measures them in "
                    "Verilator (the JSON says where each figure's cycles came from).")
    add_config_arguments(bench, default="default")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--rtl", action="store_true",
                       help="measure cycles on the generated Verilog (slower: builds the "
                            "array and its zero-skipping version; skipping cycles at 10%%, "
                            "50%% and 100%% density and dense cycles at 50%% come from "
                            "the RTL, the other densities from the cycle model)")
    bench.add_argument("--plot-dir", type=Path, metavar="DIR",
                       help="save both plots into DIR: precision_scaling.png (MACs/PE/cycle "
                            "vs the ideal P/q per mode) and sparse_scaling.png (cycles vs A "
                            "density: skip on, skip off, ideal)")
    bench.add_argument("--plot", type=Path, metavar="FILE.png",
                       help="save the bar chart of MACs/PE/cycle vs the ideal P/q here")
    bench.add_argument("--sparse-plot", type=Path, metavar="FILE.png",
                       help="save the plot of cycles vs A density (skip on, skip off, "
                            "ideal) here")
    bench.set_defaults(handler=_command_bench)

    train = commands.add_parser(
        "train", help="train an MLP on digits: emulated arithmetic, or programs on the RTL",
        description="Train an MLP (64 -> hidden -> 10, ReLU, softmax cross-entropy, SGD) on\n"
                    "scikit-learn's handwritten digits once per hardware configuration of a\n"
                    "training config, with a float32 run of the same network, initial\n"
                    "weights, batches and epochs as the reference.\n\n"
                    "--emulate: every forward and backward GEMM runs on the bit-exact\n"
                    "emulator (the golden model) in the configured operand format (int,\n"
                    "value-range quantization or address-block; exact or approximate blocks;\n"
                    "nearest or stochastic rounding), and the weights live only in a fixed-\n"
                    "point format updated with nearest or stochastic rounding. Configurations\n"
                    "with update = \"hardware\" run as instruction-set programs on the\n"
                    "golden machine instead (every GEMM and weight update a program).\n\n"
                    "--backend rtl: those programs run on the generated Verilog of the\n"
                    "programmable accelerator in Verilator (cocotb), bit-exact with\n"
                    "--emulate step by step (--check compares after every program); reports\n"
                    "accuracy and simulated cycles per epoch against the cycle model, with a\n"
                    "progress bar. Default config then: gen/train/rtl.toml.\n\n"
                    "Prints a Markdown table of the final test accuracy and loss per\n"
                    "configuration and saves a plot of the training curves. See\n"
                    "docs/TRAINING.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="training config keys: name, hidden, epochs, batch_size, learning_rate, "
               "seed, split_seed,\n  test_fraction, train_samples, preset, and [[hardware]] "
               "tables with name, format\n  (float32 | int | vrq | address_block), bits, "
               "code_width, range_stride, ranges,\n  block, kept_blocks, selection, "
               "rounding, weight_bits, weight_range, update_rounding,\n  update (float | "
               "hardware) (see gen/train/digits.toml, gen/train/rtl.toml and\n  "
               "docs/TRAINING.md)")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--emulate", action="store_true",
                       help="use the bit-exact emulator (programs on the golden machine for "
                            "update = \"hardware\" configurations)")
    where.add_argument("--backend", choices=("rtl", "golden"),
                       help="run update = \"hardware\" configurations as programs on this "
                            "runtime backend: rtl = the generated Verilog in Verilator, "
                            "golden = the golden machine (the same as --emulate)")
    train.add_argument("--check", action="store_true",
                       help="with --backend rtl: compare the memory with the golden "
                            "machine's after every program (stops at the first difference)")
    train.add_argument("--config", metavar="FILE.toml", type=Path,
                       help="training config (default: gen/train/digits.toml; with "
                            "--backend: gen/train/rtl.toml)")
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

    area = commands.add_parser(
        "area", help="synthesize configurations for an FPGA family and compare their cells",
        description="Synthesize each configuration's generated design (the top level that\n"
                    "`qforge generate` writes, straight from Amaranth's RTLIL) with YoWASP\n"
                    "Yosys (synth_ecp5 or synth_ice40: synthesis only, no place and route)\n"
                    "and print Yosys's own cell counts (`stat -json`) side by side: LUT4s,\n"
                    "carry cells, flip-flops, block RAMs (the operand banks and the\n"
                    "zero-skipping array's PE-local B banks), DSPs and the family's other\n"
                    "cells, with each configuration's ratio to the first. Runs are cached in\n"
                    "build/area/ by the design's hash. With no --preset/--spec: --preset\n"
                    "default --preset sparse (the default array without and with zero\n"
                    "skipping). An 8x8 array takes minutes per configuration.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge area --preset default --preset sparse --family ecp5\n"
               "  qforge area --preset tiny --with-skipping --family ice40 --json")
    area.add_argument("--preset", metavar="NAME", dest="designs", action=AppendDesign,
                      help=f"a built-in configuration ({', '.join(preset_names())}); "
                           "repeat to compare several")
    area.add_argument("--spec", metavar="FILE.toml", dest="designs", action=AppendDesign,
                      help="a TOML spec file; may be repeated and mixed with --preset (the "
                           "order given is the table's)")
    area.add_argument("--with-skipping", action="store_true",
                      help="also synthesize each configuration built as the zero-skipping "
                           "array (Config.with_zero_skipping), next to it")
    area.add_argument("--family", choices=sorted(FAMILY_NAMES), default="ecp5",
                      help="FPGA family: ecp5 (synth_ecp5: LUT4, CCU2C carries, DP16KD "
                           "block RAMs, MULT18X18D) or ice40 (synth_ice40: SB_LUT4, "
                           "SB_CARRY, SB_RAM40_4K; multipliers in LUTs) (default: ecp5)")
    area.add_argument("--selectors", action="store_true",
                      help="also synthesize one block selector of each configuration and "
                           "report the selectors' share of the LUTs (the zero-skipping "
                           "array has one per PE for its PE-local B banks)")
    area.add_argument("--hierarchy", action="store_true",
                      help="keep the design's hierarchy (synth -noflatten) and also print "
                           "the cells of each module group (PEs, selectors, loader, "
                           "scheduler, ...); totals run higher than flattened synthesis, "
                           "which optimizes across modules")
    area.add_argument("--keep", metavar="PATTERN", action="append",
                      help="keep the modules matching PATTERN (below the top, e.g. "
                           "'b_selector_*' or 'array.pe_*') apart and print their cells; the "
                           "rest is flattened as usual, so the total minus the usual total "
                           "is what optimizing across their boundaries saves (repeatable)")
    area.add_argument("--json", action="store_true", help="print one JSON object")
    area.add_argument("--jobs", type=int, default=1, metavar="N",
                      help="configurations synthesized at the same time (default: 1; each "
                           "Yosys run uses one core and about 1 GB of memory for an 8x8 "
                           "array)")
    area.add_argument("--no-cache", action="store_true",
                      help="synthesize again even if build/area/ holds a run of the same "
                           "design")
    area.set_defaults(handler=_command_area)

    asm = commands.add_parser(
        "asm", help="assemble a program into 64-bit instruction words",
        description="Assemble a qforge assembly program (.qasm) into instruction words for\n"
                    "the accelerator's decoder, checking every word against the hardware\n"
                    "configuration. One statement a line; ';' or '#' starts a comment.\n\n"
                    "  gemm 32, 64, 65                 instruction: mnemonic and operands\n"
                    "  load a, x, stride=K, transpose  positional, name=value and flags\n"
                    "  .const K = 4 * 16 + 1           constant (+ - * / % << >> ( ))\n"
                    "  loop:                           label (text: word index)\n"
                    "  .data / .text                   sections (default .text)\n"
                    "  x: .zero 64                     reserve host memory elements\n"
                    "  y: .word 1, 2, 3                reserve and initialise\n"
                    "  .inst 0x04                      a raw instruction word\n\n"
                    "Instructions: nop, precision, output, seed, gemm, fence, load, store.\n"
                    "Blocks (tiled to fit the configuration): matmul, linear_forward,\n"
                    "linear_backward, sgd_update. The language, the blocks and every\n"
                    "instruction's fields and rules: docs/ISA.md. An error prints\n"
                    "FILE:LINE:COLUMN: error: MESSAGE with the source line and exits 2.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  qforge asm gen/programs/example.qasm\n"
               "  qforge asm prog.qasm --preset tiny --hex\n"
               "  qforge asm prog.qasm -o prog.bin --listing")
    asm.add_argument("file", type=Path, metavar="FILE", help="the program (.qasm)")
    add_config_arguments(asm, default="default")
    asm.add_argument("-o", "--output", type=Path, metavar="OUT.bin",
                     help="write the words here, little-endian 64-bit each")
    asm.add_argument("--hex", action="store_true",
                     help="print the words in hex, one per line")
    asm.add_argument("--listing", action="store_true",
                     help="print the listing: index, hex word, disassembly, source line "
                          "(the default when neither -o nor --hex is given)")
    asm.set_defaults(handler=_command_asm)

    run = commands.add_parser(
        "run", help="assemble a program and run it on a backend (golden, rtl)",
        description="Assemble a .qasm program for a configuration, initialise host memory\n"
                    "from its data section (optionally random operands for chosen labels),\n"
                    "and run it with the runtime (qforge.sim.runtime) on the golden machine\n"
                    "or on the generated Verilog of the programmable accelerator in\n"
                    "Verilator. Reports GEMMs, the sticky error flag, the simulated cycles\n"
                    "against the cycle model, and, with --compare, whether the memory is\n"
                    "bit-identical with the golden machine's (exit 1 if not).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge run gen/programs/example.qasm --backend rtl --compare "
               "--random x --random wq --random dy --show y")
    run.add_argument("file", type=Path, metavar="FILE", help="the program (.qasm)")
    add_config_arguments(run, default="default")
    run.add_argument("--backend", choices=("golden", "rtl"), default="golden",
                     help="where the program runs (default: golden)")
    run.add_argument("--compare", action="store_true",
                     help="also run it on the golden machine and compare the memory")
    run.add_argument("--random", action="append", metavar="LABEL",
                     help="fill this data label with random operands first (repeatable)")
    run.add_argument("--seed", type=int, default=1, metavar="N",
                     help="seed of --random (default 1)")
    run.add_argument("--show", action="append", metavar="LABEL",
                     help="print this data label's elements after the run (repeatable)")
    run.set_defaults(handler=_command_run)

    fuzz = commands.add_parser(
        "fuzz", help="random instruction streams against the RTL (no hang, sticky error)",
        description="Run random programs (valid and invalid instruction words, operands\n"
                    "in memory, GEMMs that read earlier results, accumulate and update\n"
                    "GEMMs) on the generated Verilog of the programmable accelerator and on\n"
                    "the golden machine. Checks that the hardware never hangs (a watchdog\n"
                    "on every port), raises its sticky error flag exactly for programs with\n"
                    "an invalid word, leaves memory bit-identical with the golden machine,\n"
                    "and, without stalls, takes exactly the cycles the cycle model predicts.\n"
                    "Exit status 1 on any failure.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge fuzz --preset tiny --programs 50 --stall 0.3")
    add_config_arguments(fuzz, default="tiny")
    fuzz.add_argument("--programs", type=int, default=20, metavar="N",
                      help="random programs to run (default 20)")
    fuzz.add_argument("--instructions", type=int, default=60, metavar="N",
                      help="words per program, about (default 60)")
    fuzz.add_argument("--invalid", type=float, default=0.1, metavar="P",
                      help="share of invalid words (default 0.1)")
    fuzz.add_argument("--stall", type=float, default=0.0, metavar="P",
                      help="probability of a stall on every port each cycle (default 0: "
                           "then the cycle counts are checked against the model)")
    fuzz.add_argument("--seed", type=int, default=1, metavar="N",
                      help="seed of the first program (default 1)")
    fuzz.set_defaults(handler=_command_fuzz)

    # The FPGA flow's commands live with it (fpga/); imported here, not at the top,
    # because they import this module's config helpers.
    from qforge.fpga.build import add_build_command
    from qforge.fpga.host_cli import add_host_commands
    from qforge.fpga.results import add_results_command
    add_build_command(commands)
    add_results_command(commands)
    add_host_commands(commands)
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
        from qforge.gen.tools import ToolError
        if isinstance(error, (ToolError, ValueError, FileNotFoundError)):
            print(f"qforge: error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
