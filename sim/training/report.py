"""The results of training runs: one run's record (:class:`RunResult`), the Markdown
tables and the plot of a :func:`qforge.sim.training.loop.train_all` report (the
accuracy against cycles per epoch: :mod:`qforge.sim.training.cycles_report`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qforge.sim.training.cnn import IMAGE, PASSES, fc_inputs

__all__ = ["RunResult", "describe_schedule", "describe_network", "describe_where",
           "epoch_cycles", "format_table", "format_program_table", "format_layer_table",
           "plot_curves"]


@dataclass
class RunResult:
    """Curves and final figures of one configuration's run (index 0: before training)."""

    name: str
    description: str
    test_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    #: Fraction of weight updates ``|lr * dW|`` below half a weight LSB (lost entirely by
    #: round-to-nearest), over all steps and weights; None for float32.
    small_update_fraction: float | None = None
    #: Share of the total update magnitude ``sum |lr * dW|`` carried by those small
    #: updates: what round-to-nearest loses; None for float32.
    small_update_mass: float | None = None
    #: Fraction of weights whose stored code changed, averaged over steps; None for float32.
    changed_fraction: float | None = None
    #: Largest weight magnitude at the end (the weight format saturates at its range).
    max_abs_weight: float = 0.0
    #: Weights at the end whose code is the format's most negative or most positive
    #: (saturated, or exactly there); None for float32.
    saturated_weights: int | None = None
    gemms: int = 0
    float64_fallbacks: int = 0
    seconds: float = 0.0
    #: Where the GEMMs and updates ran: "emulator" (float update, emulated GEMMs), or a
    #: runtime backend for ``update = "hardware"`` ("golden", "rtl"; see
    #: :mod:`qforge.sim.training.hardware`).
    backend: str = "emulator"
    #: Per epoch (programs only): the backend's cycles for the training steps (rtl; 0
    #: on the golden machine), the cycle model's prediction, the same for the
    #: evaluation, and the wall-clock seconds.
    epoch_cycles: list[int] = field(default_factory=list)
    epoch_model_cycles: list[int] = field(default_factory=list)
    eval_cycles: list[int] = field(default_factory=list)
    eval_model_cycles: list[int] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    #: The rtl run was compared with the golden machine after every program.
    checked: bool = False
    #: CNN, low precision: per layer and pass (``forward``, ``weight_gradient``,
    #: ``input_gradient``, ``update``), the GEMMs of one epoch's training steps and
    #: their cycles by the cycle model (:func:`qforge.sim.model.cycles.gemm_cycles`,
    #: dense, each GEMM one command on the configuration's preset). Runs as programs
    #: (CNN, ``update = "hardware"``): ``program_cycles`` of each program, a backward
    #: program split at the end of its input gradient
    #: (``cnn_hardware.CnnProgramTrainer._run_passes``), ``update`` always 0.
    layer_cycles: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def describe_schedule(report: dict) -> str:
    """The learning-rate schedule of a :func:`train_all` report, in words.

    >>> describe_schedule({"learning_rate": 0.5, "learning_rate_final": 0.005})
    '0.5 -> 0.005 (cosine)'
    """
    start, final = report["learning_rate"], report["learning_rate_final"]
    return f"{start:g}" if start == final else f"{start:g} -> {final:g} (cosine)"


def describe_network(report: dict) -> str:
    """The network of a :func:`train_all` report, in a few words.

    >>> describe_network({"hidden": 64}), describe_network({"model": "cnn", "hidden": 0})
    ('MLP 64-64-10', 'CNN conv3x3 1-8, conv3x3/2 8-16, fc 256-10')
    >>> describe_network({"model": "cnn", "image": [28, 28, 3], "classes": 2})
    'CNN conv3x3 3-8, conv3x3/2 8-16, fc 3136-2'
    """
    classes = report.get("classes", 10)
    if report.get("model", "mlp") == "cnn":
        image = tuple(report.get("image") or IMAGE)
        return (f"CNN conv3x3 {image[2]}-8, conv3x3/2 8-16, fc {fc_inputs(image)}-"
                f"{classes}")
    return f"MLP {report.get('features', 64)}-{report['hidden']}-{classes}"


def _epoch_seconds(run: dict) -> float | None:
    seconds = run.get("epoch_seconds") or []
    return sum(seconds) / len(seconds) if seconds else None


def epoch_cycles(run: dict) -> int | None:
    """Cycle-model cycles of one epoch's training GEMMs of a CNN run (None: float32 or
    the MLP)."""
    layers = run.get("layer_cycles")
    if not layers:
        return None
    return sum(entry["cycles"] for passes in layers.values() for entry in passes.values())


def format_table(report: dict) -> str:
    """The Markdown table of final test accuracy and loss, with the difference to the
    float32 run (if there is one). For the CNN, two more columns: the accelerator
    cycles of one epoch's training GEMMs (cycle model) and the mean training time of an
    epoch as a multiple of the float32 run's (numpy)."""
    reference = next((run for run in report["runs"] if run["name"] == "float32"), None)
    if report.get("model", "mlp") == "cnn":
        return _format_cnn_table(report, reference)
    lines = ["| configuration | arithmetic | test accuracy | vs float32 | test loss "
             "| updates < LSB/2: count, magnitude | time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for run in report["runs"]:
        accuracy, delta, small = _accuracy_cells(run, reference)
        lines.append(f"| {run['name']} | {run['description']} | {accuracy:.2f}% | {delta} "
                     f"| {run['test_loss'][-1]:.4f} | {small} | {run['seconds']:.1f} s |")
    return "\n".join(lines)


def _accuracy_cells(run: dict, reference: dict | None) -> tuple[float, str, str]:
    """A run's final test accuracy (percent), its difference from the float32 run's
    (empty for the reference itself or without one), and its small-update cell."""
    accuracy = 100 * run["test_accuracy"][-1]
    delta = ("" if reference is None or run is reference else
             f"{accuracy - 100 * reference['test_accuracy'][-1]:+.2f}")
    small = ("" if run["small_update_fraction"] is None
             else f"{100 * run['small_update_fraction']:.1f}%, "
                  f"{100 * run['small_update_mass']:.1f}%")
    return accuracy, delta, small


def _format_cnn_table(report: dict, reference: dict | None) -> str:
    float_epoch = _epoch_seconds(reference) if reference is not None else None
    lines = ["| configuration | arithmetic | test accuracy | vs float32 | test loss "
             "| updates < LSB/2: count, magnitude | cycles / epoch | epoch time "
             "| vs float32 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in report["runs"]:
        accuracy, delta, small = _accuracy_cells(run, reference)
        cycles = epoch_cycles(run)
        seconds = _epoch_seconds(run)
        ratio = (f"{seconds / float_epoch:.1f}x" if seconds is not None and float_epoch
                 else "")
        lines.append(f"| {run['name']} | {run['description']} | {accuracy:.2f}% | {delta} "
                     f"| {run['test_loss'][-1]:.4f} | {small} "
                     f"| {'' if cycles is None else cycles} "
                     f"| {'' if seconds is None else f'{seconds:.2f} s'} | {ratio} |")
    return "\n".join(lines)


def format_layer_table(report: dict) -> str:
    """Per CNN low-precision run, layer and pass: GEMMs and cycle-model cycles of one
    epoch's training steps ("" for the MLP)."""
    lines = ["| configuration | layer | " + " | ".join(
        f"{p.replace('_', ' ')}: GEMMs, cycles" for p in PASSES) + " | layer cycles |",
        "|---|---|" + "---:|" * (len(PASSES) + 1)]
    rows = 0
    for run in report["runs"]:
        for layer, passes in (run.get("layer_cycles") or {}).items():
            cells = [f"{passes[p]['gemms']}, {passes[p]['cycles']}" for p in PASSES]
            total = sum(passes[p]["cycles"] for p in PASSES)
            lines.append(f"| {run['name']} | {layer} | {' | '.join(cells)} | {total} |")
            rows += 1
    return "\n".join(lines) if rows else ""


def format_program_table(report: dict) -> str:
    """Per epoch of every configuration that ran as programs: test accuracy, the
    backend's simulated cycles of the training steps against the cycle model's
    prediction, the evaluation's cycles and the wall-clock time ("" if none ran so)."""
    lines = ["| configuration | backend | epoch | test accuracy | cycles | model cycles "
             "| cycles / model | evaluation cycles | wall clock |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = 0
    for run in report["runs"]:
        if run.get("backend", "emulator") == "emulator" or not run.get("epoch_model_cycles"):
            continue
        simulated = run["backend"] == "rtl"
        epochs = list(enumerate(run["epoch_model_cycles"], start=1))
        if not simulated and len(set(run["epoch_model_cycles"])) == 1:
            # Nothing measured, and every epoch predicts the same: one row.
            epochs = epochs[-1:]
        for epoch, model in epochs:
            cycles = run["epoch_cycles"][epoch - 1]
            evaluation = run["eval_cycles"][epoch - 1] if simulated \
                else run["eval_model_cycles"][epoch - 1]
            # A range: every epoch's predicted cycles are those shown; accuracy after
            # the last.
            label = epoch if simulated or len(epochs) > 1 or epoch == 1 else f"1-{epoch}"
            lines.append(
                f"| {run['name']} | {run['backend']}{' (checked)' if run['checked'] else ''}"
                f" | {label} | {100 * run['test_accuracy'][epoch]:.2f}% "
                f"| {cycles if simulated else ''} | {model} "
                f"| {f'{cycles / model:.4f}' if simulated and model else ''} "
                f"| {evaluation}{'' if simulated else ' (model)'} "
                f"| {run['epoch_seconds'][epoch - 1]:.1f} s |")
            rows += 1
    return "\n".join(lines) if rows else ""


def plot_curves(report: dict, path) -> None:
    """Save test accuracy and training loss per epoch for every configuration (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    colors = plt.get_cmap("tab10" if len(report["runs"]) <= 11 else "tab20")
    for index, run in enumerate(report["runs"]):
        epochs = np.arange(len(run["test_accuracy"]))
        style = (dict(linewidth=2.2, color="black") if run["name"] == "float32"
                 else dict(linewidth=1.3, color=colors((index - 1) % colors.N)))
        left.plot(epochs, 100 * np.array(run["test_accuracy"]), label=run["name"], **style)
        right.plot(epochs[1:], run["train_loss"][1:], label=run["name"], **style)
    from matplotlib.ticker import MaxNLocator
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("epoch")
    left.set_ylabel("test accuracy (%)")
    left.set_ylim(bottom=max(0, min(100 * min(run["test_accuracy"][1:] or [0])
                                    for run in report["runs"]) - 5))
    left.grid(alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel("training loss (cross-entropy)")
    right.set_yscale("log")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="upper right")
    figure.suptitle(f"qforge {describe_where(report)}: {report['name']} "
                    f"({describe_network(report)}"
                    f", batch {report['batch_size']}, lr {describe_schedule(report)}, "
                    f"seed {report['seed']})")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def describe_where(report: dict) -> str:
    """Where a :func:`train_all` report's runs trained, in words (for plot titles)."""
    backends = {run.get("backend", "emulator") for run in report["runs"]}
    return ("training on the RTL (Verilator)" if "rtl" in backends else
            "training as programs (golden machine)" if "golden" in backends else
            "emulated training")

