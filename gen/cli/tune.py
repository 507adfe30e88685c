"""``qforge tune``: choose a per-layer, per-tensor precision policy for the CNN under a
loss budget, train it, and compare it with float32 and uniform exact 8-bit
(:mod:`qforge.sim.training.policy_search`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qforge.gen.cli.common import (add_output_argument, real_number, refuse_special_file,
                                   whole_number)
from qforge.sim.model.errors import shown_path


def register(commands) -> None:
    """Add ``qforge tune`` to the subcommands ``commands``."""
    tune = commands.add_parser(
        "tune", help="choose a per-layer precision policy for the CNN under a loss budget",
        description="Measure each CNN layer's sensitivity to every low-precision mode of a\n"
                    "training config (its [[hardware]] entries) on calibration samples of the\n"
                    "training data, pick the cheapest mode per layer and tensor (forward\n"
                    "operands, output gradient) whose summed predicted loss increase stays\n"
                    "within --budget (cycles from the cycle model), train that policy on the\n"
                    "emulator and print it with its test accuracy against float32 and its\n"
                    "cycles per epoch against uniform exact 8-bit. See docs/TRAINING.md,\n"
                    "\"Automatic policy\".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge tune --config gen/train/cnn.toml --budget 0.02 "
               "--write-policy build/train/auto.toml")
    tune.add_argument("--config", metavar="FILE.toml", type=Path, required=True,
                      help="a training config with model = \"cnn\" (e.g. gen/train/cnn.toml)")
    tune.add_argument("--budget", type=real_number(0, 100), metavar="B", required=True,
                      help="allowed predicted increase of the mean cross-entropy on the "
                           "calibration samples, in nats (loss units), 0 .. 100")
    tune.add_argument("--seed", type=whole_number(0, 65535), metavar="N",
                      help="override the config's seed (0 .. 65535)")
    tune.add_argument("--epochs", type=whole_number(1, 10_000), metavar="N",
                      help="override the config's epochs of the final training (1 .. 10000)")
    tune.add_argument("--calibration-samples", type=whole_number(1, 1 << 20), metavar="N",
                      default=256, help="training samples the sensitivities are measured "
                                        "on (default: 256)")
    tune.add_argument("--calibration-epochs", type=whole_number(0, 1000), metavar="N",
                      default=2, help="float32 epochs before calibration (default: 2)")
    add_output_argument(tune, "--json", suffixes=(".json",), metavar="FILE.json",
                        help="also write the sensitivities, the policy and the results as "
                             "JSON")
    add_output_argument(tune, "--plot", suffixes=(".png",), metavar="FILE.png",
                        help="also save test accuracy against cycles per epoch of float32 "
                             "(a line), the baseline and the chosen policy, with their "
                             "Pareto front (qforge train --plot-from takes the --json "
                             "report too, next to qforge train's)")
    add_output_argument(tune, "--write-policy", suffixes=(".toml",), metavar="FILE.toml",
                        help="write a training config holding the chosen policy as its last "
                             "[[hardware]] entry (for qforge train --config)")
    tune.set_defaults(handler=handle)


def _sensitivity_table(report: dict) -> str:
    modes = list(report["modes"])
    lines = ["| layer | tensor | " + " | ".join(modes) + " |",
             "|---|---|" + "---:|" * len(modes)]
    values = {(s["layer"], s["tensor"], s["mode"]): s["loss_increase"]
              for s in report["sensitivity"]}
    for layer in report["policy"]:
        for tensor in ("forward", "gradient"):
            lines.append(f"| {layer} | {tensor} | " + " | ".join(
                f"{values[(layer, tensor, mode)]:+.4f}" for mode in modes) + " |")
    return "\n".join(lines)


def _policy_table(report: dict) -> str:
    modes = report["modes"]
    lines = ["| layer | forward | gradient | update |", "|---|---|---|---|"]
    for layer, tensors in report["policy"].items():
        lines.append(f"| {layer} | " + " | ".join(
            f"{name} ({modes[name]['kept_blocks']} blocks)" if role != "update" else name
            for role, name in tensors.items()) + " |")
    return "\n".join(lines)


def _result_table(report: dict) -> str:
    runs = {run["name"]: run for run in report["runs"]}
    reference = report["runs"][0]
    baseline = runs[report["baseline"]]
    lines = ["| configuration | test accuracy | vs float32 | test loss | cycles / epoch "
             "| fewer than " + report["baseline"] + " |", "|---|---:|---:|---:|---:|---:|"]
    for run in report["runs"]:
        accuracy = 100 * run["test_accuracy"]
        delta = ("" if run is reference
                 else f"{accuracy - 100 * reference['test_accuracy']:+.2f}")
        cycles = run["cycles_per_epoch"]
        ratio = "" if cycles is None else f"{baseline['cycles_per_epoch'] / cycles:.2f}x"
        shown = "" if cycles is None else f"{cycles:,}"
        lines.append(f"| {run['name']} | {accuracy:.2f}% | {delta} | "
                     f"{run['test_loss']:.4f} | {shown} | {ratio} |")
    return "\n".join(lines)


def _written_spec(report: dict, config: Path) -> dict:
    """The tuned spec as a file elsewhere can read it: the run's seed, and a relative
    ``npz:`` dataset path made absolute (it was relative to the config's folder)."""
    spec = dict(report["spec"], seed=report["seed"])
    dataset = spec.get("dataset", "digits")
    if dataset.startswith("npz:") and not Path(dataset[4:]).is_absolute():
        spec["dataset"] = "npz:" + str((config.parent / dataset[4:]).resolve())
    return spec


def handle(arguments) -> int:
    from qforge.sim.training.policy_search import Calibration, load_spec, policy_toml, tune

    refuse_special_file(arguments.config, "--config")
    source = shown_path(arguments.config)
    spec = load_spec(arguments.config, source)
    calibration = Calibration(epochs=arguments.calibration_epochs,
                              samples=arguments.calibration_samples)
    report = tune(spec, arguments.budget, source=source, base=str(arguments.config.parent),
                  seed=arguments.seed, epochs=arguments.epochs, calibration=calibration,
                  progress=True)
    print(f"qforge tune: {source}, seed {report['seed']}, {report['epochs']} epochs, "
          f"budget {report['budget']:g} nats (predicted increase of the mean cross-entropy "
          f"on {calibration.samples} calibration samples), baseline {report['baseline']}\n")
    print("Sensitivity: loss increase with only that layer's tensor in that mode:\n")
    print(_sensitivity_table(report))
    print(f"\nChosen policy ({report['policy_name']}; predicted loss increase "
          f"{report['predicted_loss_increase']:.4f}, predicted cycles / epoch "
          f"{report['predicted_cycles']:,}):\n")
    print(_policy_table(report))
    print()
    print(_result_table(report))
    if arguments.write_policy:
        arguments.write_policy.write_text(
            policy_toml(_written_spec(report, arguments.config)), encoding="utf-8")
        print(f"\npolicy written to {arguments.write_policy}")
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {arguments.json}")
    if arguments.plot:
        from qforge.sim.training.cycles_report import (accuracy_cycle_points,
                                                       plot_accuracy_cycles)

        plot_accuracy_cycles(
            accuracy_cycle_points([report]), arguments.plot, baseline=report["baseline"],
            title=f"qforge tune: {source}, budget {report['budget']:g} nats, "
                  f"{report['epochs']} epochs, seed {report['seed']}\ntest accuracy against "
                  f"the cycles of one epoch's training GEMMs")
        print(f"accuracy vs cycles per epoch saved to {arguments.plot}")
    return 0
