"""``qforge train``: train an MLP on digits per hardware configuration, on the
bit-exact emulator or as programs on a runtime backend (golden machine, RTL)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qforge.gen.cli.common import (OptionError, add_output_argument, log_to_stderr,
                                   prepare_output, refuse_special_file, uses_build_folder,
                                   whole_number)
from qforge.sim.model.errors import shown_path


def register(commands) -> None:
    """Add ``qforge train`` to the subcommands ``commands``."""
    train = commands.add_parser(
        "train", help="train an MLP or a CNN on digits: emulated arithmetic, or programs on "
                      "the RTL",
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
                    "configuration and saves a plot of the training curves (--plot) and,\n"
                    "for the CNN, a second plot next to it (NAME_cycles.png) of the test\n"
                    "accuracy after the last epoch against the cycles per epoch of every\n"
                    "low-precision configuration, float32 as a line, the uniform exact\n"
                    "8-bit baseline starred and the Pareto front as a step line. See\n"
                    "docs/TRAINING.md.\n\n"
                    "model = \"cnn\" (gen/train/cnn.toml) trains a small CNN instead (conv\n"
                    "3x3 1->8, conv 3x3/2 8->16, fc 256->10), with per-layer precision\n"
                    "policies and the accelerator cycles per layer and pass; its update =\n"
                    "\"hardware\" entries (gen/train/cnn_rtl.toml) run as programs too, on\n"
                    "--emulate and --backend rtl alike.\n\n"
                    "--plot-from A.json B.json ... trains nothing: it reads the --json\n"
                    "reports of several seeds (qforge tune's --json reports too, for their\n"
                    "chosen policy), prints each configuration's accuracy per seed, their\n"
                    "mean and the cycles per epoch, and saves the accuracy vs cycles plot\n"
                    "of the means to --plot (default: build/train/NAME_cycles.png).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="training config keys: name, model (mlp | cnn), hidden, epochs, batch_size,\n"
               "  learning_rate, seed, split_seed, test_fraction, train_samples, preset, and\n"
               "  [[hardware]] "
               "tables with name, format\n  (float32 | int | vrq | address_block), bits, "
               "code_width, range_stride, ranges,\n  block, kept_blocks, selection, "
               "rounding, weight_bits, weight_range, update_rounding,\n  update (float | "
               "hardware), policy (cnn: [hardware.policy.LAYER] forward, gradient,\n  "
               "update), paired, paired_rounding, paired_passes, unsigned_activations\n  "
               "(cnn, a preset built with arithmetic.paired) (see gen/train/digits.toml,\n  "
               "gen/train/cnn.toml, gen/train/rtl.toml, gen/train/cnn_rtl.toml,\n  "
               "gen/train/cnn_paired.toml and docs/TRAINING.md)")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--emulate", action="store_true",
                       help="use the bit-exact emulator (programs on the golden machine for "
                            "update = \"hardware\" configurations)")
    where.add_argument("--backend", choices=("rtl", "golden"),
                       help="run update = \"hardware\" configurations as programs on this "
                            "runtime backend: rtl = the generated Verilog in Verilator, "
                            "golden = the golden machine (the same as --emulate)")
    where.add_argument("--plot-from", nargs="+", type=Path, metavar="FILE.json",
                       help="train nothing: plot test accuracy (mean over the reports' "
                            "seeds) against cycles per epoch from qforge train --json (or "
                            "qforge tune --json) reports of one config, and print their "
                            "table")
    train.add_argument("--check", action="store_true",
                       help="with --backend rtl: compare the memory with the golden "
                            "machine's after every program (stops at the first difference)")
    train.add_argument("--config", metavar="FILE.toml", type=Path,
                       help="training config (default: gen/train/digits.toml; with "
                            "--backend: gen/train/rtl.toml)")
    train.add_argument("--epochs", type=whole_number(1, 10_000), metavar="N",
                       help="override the config's epochs (1 .. 10000)")
    train.add_argument("--seed", type=whole_number(0, 65535), metavar="N",
                       help="override the config's seed (initial weights, batch order, "
                            "stochastic-rounding bits; 0 .. 65535)")
    add_output_argument(train, "--plot", suffixes=(".png",), metavar="FILE.png",
                        help="where to save the plot of test accuracy and training loss "
                             "per epoch (default: build/train/NAME.png); the CNN's accuracy "
                             "vs cycles plot goes next to it, as NAME_cycles.png (with "
                             "--plot-from: the accuracy vs cycles plot itself)")
    add_output_argument(train, "--json", suffixes=(".json",), metavar="FILE.json",
                        help="also write every curve and final figure as JSON")
    train.add_argument("--jobs", type=whole_number(1, 1024), metavar="N",
                       help="configurations trained in parallel worker processes, "
                            "1 .. 1024 (default: the number of CPU cores; results do not "
                            "depend on it)")
    uses_build_folder(train, lambda arguments: arguments.backend == "rtl")
    train.set_defaults(handler=handle)


def handle(arguments) -> int:
    if arguments.plot_from is not None:
        return _plot_from(arguments)
    if not arguments.emulate and arguments.backend is None:
        raise OptionError("train needs --emulate (the bit-exact emulator), --backend "
                          "rtl|golden (programs on the generated Verilog or the golden "
                          "machine) or --plot-from FILE.json ... (finished reports)")
    if arguments.check and arguments.backend != "rtl":
        raise OptionError("--check compares the rtl backend with the golden machine: "
                          "use it with --backend rtl")
    import dataclasses
    import os

    from qforge.sim.training import (describe_network, describe_schedule, format_layer_table,
                                     format_program_table, format_table, load_train_config,
                                     plot_curves, rtl_config_path, train_all)
    from qforge.sim.training.cycles_report import (accuracy_cycle_points,
                                                   cycles_plot_path, cycles_plot_title,
                                                   plot_accuracy_cycles)

    config_path = arguments.config
    if config_path is None and arguments.backend is not None:
        config_path = rtl_config_path()
    if config_path is not None:
        refuse_special_file(config_path, "--config")
    train = load_train_config(config_path)
    if arguments.seed is not None:
        train = dataclasses.replace(train, seed=arguments.seed)
    jobs = arguments.jobs if arguments.jobs is not None else (os.cpu_count() or 1)
    plot = arguments.plot or Path("build") / "train" / f"{train.name}.png"
    if arguments.plot is None:          # the default, checked before training as well
        prepare_output(plot, "--plot")
    cycles_plot = cycles_plot_path(plot) if train.model == "cnn" else None
    if cycles_plot is not None:
        prepare_output(cycles_plot, "--plot")
    report = train_all(train, epochs=arguments.epochs, jobs=jobs, backend=arguments.backend,
                       check=arguments.check,
                       progress=arguments.backend is not None or train.model == "cnn",
                       log=log_to_stderr,
                       # the Verilator build's "building ... / built ..." lines, on stdout
                       runtime_options={"log": print} if arguments.backend == "rtl" else None)
    how = "--emulate" if arguments.emulate else f"--backend {arguments.backend}"
    print(f"qforge train {how}: {report['name']} ({report['source']}): "
          f"{describe_network(report)} on {report['dataset']}, {report['epochs']} "
          f"epoch{'' if report['epochs'] == 1 else 's'}, batch "
          f"{report['batch_size']}, learning rate {describe_schedule(report)}, seed "
          f"{report['seed']}; {report['train_samples']} training / "
          f"{report['test_samples']} test samples\n")
    print(format_table(report))
    layers = format_layer_table(report)
    if layers:
        print("\nPer layer and pass, one epoch's training GEMMs and their cycles (cycle "
              "model; emulated runs update on the host, runs as programs count the fused "
              "sgd_update as the weight gradient):\n")
        print(layers)
    programs = format_program_table(report)
    if programs:
        print("\nPer epoch, for the configurations that ran as programs (cycles of the "
              "training steps; the evaluation's apart):\n")
        print(programs)
    report["baseline"] = _baseline_name(train)
    plot_curves(report, plot)
    print(f"\nplot saved to {plot}")
    points = accuracy_cycle_points([report])
    if cycles_plot is not None and any(point.cycles is not None for point in points):
        plot_accuracy_cycles(points, cycles_plot, baseline=report["baseline"],
                             title=cycles_plot_title(report))
        print(f"accuracy vs cycles per epoch saved to {cycles_plot}")
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {arguments.json}")
    return 0


def _baseline_name(train) -> str | None:
    """The configuration the cycles are compared with: uniform exact 8-bit on the default
    preset (:func:`qforge.sim.training.policy_search.baseline_entry`); None without one."""
    from qforge.sim.training.config import TrainConfigError
    from qforge.sim.training.policy_search import baseline_entry

    try:
        return baseline_entry(train).name
    except TrainConfigError:
        return None


#: Options that choose or change a training run: meaningless with --plot-from.
_TRAINING_OPTIONS = ("check", "config", "epochs", "seed", "json", "jobs")


def _plot_from(arguments) -> int:
    """``qforge train --plot-from A.json ...``: the seed table and the accuracy vs cycles
    plot of finished reports (train nothing)."""
    from qforge.sim.training.cycles_report import (accuracy_cycle_points,
                                                   cycles_plot_title, format_seed_table,
                                                   plot_accuracy_cycles)

    given = [f"--{name}" for name in _TRAINING_OPTIONS
             if getattr(arguments, name) not in (None, False)]
    if given:
        raise OptionError(f"--plot-from reads finished reports and trains nothing: "
                          f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not "
                          f"apply")
    reports, sources = [], []
    for path in arguments.plot_from:
        refuse_special_file(path, "--plot-from")
        source = shown_path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror \
                else str(error)
            raise OptionError(f"--plot-from {source}: cannot read it: {reason}") from None
        try:
            reports.append(json.loads(text))
        except json.JSONDecodeError as error:
            raise OptionError(f"--plot-from {source}: not JSON ({error})") from None
        sources.append(source)
    points = accuracy_cycle_points(reports, sources)
    # A train report names the network and the baseline; a tune report only the baseline.
    described = next((report for report in reports if "model" in report), None)
    baseline = next((report["baseline"] for report in reports if report.get("baseline")),
                    None)
    if baseline is None and any(point.name == "int8" for point in points):
        baseline = "int8"             # reports written before the baseline was recorded
    seeds = {seed for point in points for seed in point.seeds if seed is not None}
    title = (cycles_plot_title(described, seeds) if described is not None else
             f"qforge tune: {reports[0].get('source', '')}, seed"
             f"{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(str(seed) for seed in sorted(seeds))}\ntest accuracy against "
             f"the cycles of one epoch's training GEMMs")
    name = described["name"] if described is not None else "tune"
    plot = arguments.plot or Path("build") / "train" / f"{name}_cycles.png"
    if arguments.plot is None:
        prepare_output(plot, "--plot")
    plot_accuracy_cycles(points, plot, baseline=baseline, title=title)   # errors first
    print(f"qforge train --plot-from: {len(reports)} report"
          f"{'' if len(reports) == 1 else 's'} ({', '.join(sources)}); test accuracy "
          f"after the last epoch and cycles per epoch (cycle model)\n")
    print(format_seed_table(points, baseline))
    print(f"\naccuracy vs cycles per epoch saved to {plot}")
    return 0
