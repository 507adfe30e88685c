"""Test accuracy against accelerator cycles per epoch, over one or several seeds'
reports of one training config (``qforge train`` and ``qforge tune`` JSON reports):
the configurations as points (:func:`accuracy_cycle_points`, the mean over seeds), their
Pareto front (:func:`pareto_front`), the table (:func:`format_seed_table`) and the plot
(:func:`plot_accuracy_cycles`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qforge.sim.model.errors import InputError
from qforge.sim.training.report import describe_network, describe_where, epoch_cycles

__all__ = ["CyclePoint", "accuracy_cycle_points", "pareto_front", "format_seed_table",
           "accuracy_cycles_figure", "plot_accuracy_cycles", "cycles_plot_path",
           "cycles_plot_title"]


@dataclass(frozen=True)
class CyclePoint:
    """One configuration on the accuracy-vs-cycles plot."""

    name: str
    #: Test accuracy after the last epoch, percent: the mean over ``seeds``.
    accuracy: float
    #: Each seed's test accuracy after the last epoch (percent), in ``seeds``' order.
    accuracies: tuple[float, ...]
    #: The seeds it was trained with, ascending.
    seeds: tuple[int, ...]
    #: Cycle-model cycles of one epoch's training GEMMs (:func:`epoch_cycles`); None for
    #: float32, which runs nothing on the accelerator.
    cycles: int | None


def _final_accuracy_and_cycles(run: dict) -> tuple[float, int | None]:
    """A run's test accuracy after the last epoch (a fraction) and cycles per epoch, from
    a ``qforge train`` report's run (curves, ``layer_cycles``) or a ``qforge tune``
    report's (``test_accuracy`` a number, ``cycles_per_epoch``)."""
    accuracy = run["test_accuracy"]
    if isinstance(accuracy, list):
        accuracy = accuracy[-1]
    cycles = run["cycles_per_epoch"] if "cycles_per_epoch" in run else epoch_cycles(run)
    return float(accuracy), cycles


def accuracy_cycle_points(reports, sources=None) -> list[CyclePoint]:
    """Every configuration of ``reports`` (``qforge train`` or ``qforge tune`` JSON
    reports, as dicts, of one config with different seeds) as a :class:`CyclePoint`, in
    order of first appearance: its accuracy the mean over the seeds that trained it.
    ``sources`` name the reports in errors (default: ``report 1``, ...).

    Raises :class:`InputError` for a report without runs, reports of different epoch
    counts, a configuration whose cycles per epoch differ between reports (different
    configs, or a tuned policy that differs by seed), or one seed twice with different
    accuracies. The same seed twice with the
    same accuracy (float32 and the baseline in a tune report and a train report of one
    seed) counts once.

    >>> train = {"seed": 1, "epochs": 2, "runs": [
    ...     {"name": "float32", "test_accuracy": [0.1, 0.9, 0.98], "layer_cycles": None},
    ...     {"name": "int8", "test_accuracy": [0.1, 0.9, 0.97],
    ...      "layer_cycles": {"fc": {"forward": {"gemms": 1, "cycles": 500}}}}]}
    >>> tune = {"seed": 2, "epochs": 2, "runs": [
    ...     {"name": "int8", "test_accuracy": 0.99, "cycles_per_epoch": 500}]}
    >>> [(p.name, round(p.accuracy, 6), p.seeds, p.cycles)
    ...  for p in accuracy_cycle_points([train, tune])]
    [('float32', 98.0, (1,), None), ('int8', 98.0, (1, 2), 500)]
    """
    sources = list(sources) if sources is not None else [
        f"report {index}" for index in range(1, len(reports) + 1)]
    by_name: dict[str, dict[int, float]] = {}
    cycles_of: dict[str, tuple[int | None, str]] = {}
    epochs = None
    for report, source in zip(reports, sources):
        runs = report.get("runs") if isinstance(report, dict) else None
        if not isinstance(runs, list) or not runs:
            raise InputError(f"{source}: not a qforge train or qforge tune JSON report "
                             f"(no `runs`)")
        if epochs is not None and report.get("epochs") != epochs[0]:
            raise InputError(f"{source}: epochs = {report.get('epochs')!r}, but "
                             f"{epochs[1]} has {epochs[0]}: the mean over seeds needs "
                             f"runs of the same length")
        epochs = epochs or (report.get("epochs"), source)
        seed = report.get("seed")
        for run in runs:
            try:
                name = run["name"]
                accuracy, cycles = _final_accuracy_and_cycles(run)
            except (KeyError, TypeError, IndexError, ValueError):
                raise InputError(f"{source}: a run without a name, a final test accuracy "
                                 f"or cycles: not a qforge train or qforge tune JSON "
                                 f"report") from None
            known, first = cycles_of.setdefault(name, (cycles, source))
            if known != cycles:
                raise InputError(f"{source}: {name}: {cycles} cycles per epoch, but "
                                 f"{known} in {first}: not one configuration (reports of "
                                 f"different configs, or qforge tune policies that differ "
                                 f"by seed: plot those apart)")
            seeds = by_name.setdefault(name, {})
            if seed in seeds and seeds[seed] != 100 * accuracy:
                raise InputError(f"{source}: {name}, seed {seed}: test accuracy "
                                 f"{100 * accuracy:.2f}%, but another report of that seed "
                                 f"has {seeds[seed]:.2f}%")
            seeds[seed] = 100 * accuracy
    points = []
    for name, seeds in by_name.items():
        order = sorted(seeds, key=lambda seed: (seed is None, seed or 0))
        values = tuple(seeds[seed] for seed in order)
        points.append(CyclePoint(name, float(np.mean(values)), values, tuple(order),
                                 cycles_of[name][0]))
    return points


def pareto_front(points) -> list[int]:
    """The indices of the ``(cycles, accuracy)`` pairs ``points`` that no other pair
    beats: none has at most their cycles and at least their accuracy, better in one.
    Ordered by cycles, then accuracy descending, then index; equal pairs are all kept.

    >>> pareto_front([(4, 97.0), (2, 96.0), (2, 97.5), (6, 98.0), (3, 98.0), (3, 98.0)])
    [2, 4, 5]
    """
    front = [index for index, (cycles, accuracy) in enumerate(points)
             if not any(other_cycles <= cycles and other_accuracy >= accuracy
                        and (other_cycles, other_accuracy) != (cycles, accuracy)
                        for other_cycles, other_accuracy in points)]
    return sorted(front, key=lambda index: (points[index][0], -points[index][1], index))


def format_seed_table(points: list[CyclePoint], baseline: str | None = None) -> str:
    """The Markdown table of :func:`accuracy_cycle_points`: per configuration, each
    seed's test accuracy, the mean, the mean's difference to float32's, the cycles per
    epoch and how many times fewer than the ``baseline`` configuration's."""
    seeds = sorted({seed for point in points for seed in point.seeds},
                   key=lambda seed: (seed is None, seed or 0))
    reference = next((point for point in points if point.name == "float32"), None)
    base = next((point for point in points if point.name == baseline), None)
    base_cycles = base.cycles if base is not None else None
    lines = ["| configuration | " + " | ".join(f"seed {seed}" for seed in seeds)
             + " | mean | vs float32 | cycles / epoch | fewer than "
             + (baseline if base_cycles else "the baseline") + " |",
             "|---|" + "---:|" * (len(seeds) + 4)]
    for point in points:
        values = dict(zip(point.seeds, point.accuracies))
        cells = [f"{values[seed]:.2f}%" if seed in values else "" for seed in seeds]
        delta = ("" if reference is None or point is reference
                 # + 0.0: a difference that rounds to zero prints +0.00, not -0.00
                 else f"{round(point.accuracy - reference.accuracy, 2) + 0.0:+.2f}")
        ratio = (f"{base_cycles / point.cycles:.2f}x" if base_cycles and point.cycles
                 else "")
        lines.append(f"| {point.name} | {' | '.join(cells)} | {point.accuracy:.2f}% "
                     f"| {delta} | {'' if point.cycles is None else f'{point.cycles:,}'} "
                     f"| {ratio} |")
    return "\n".join(lines)


def accuracy_cycles_figure(points: list[CyclePoint], *, baseline: str | None = None,
                           title: str = ""):
    """The matplotlib figure of test accuracy (y, percent) against cycles per epoch (x;
    log scale when they span more than 10x): one labelled point per configuration with
    cycles (configurations at the same point share a label; a bar from the lowest to the
    highest seed's accuracy over several seeds), the configurations without cycles
    (float32) as horizontal reference lines, ``baseline`` marked with a star, and the
    Pareto front (the best accuracy within a cycle count) as a step line. Raises
    :class:`InputError` when no configuration has cycles."""
    costed = [point for point in points if point.cycles is not None]
    if not costed:
        raise InputError("accuracy vs cycles: no configuration with accelerator cycles "
                         "(only the CNN's low-precision runs are costed by the cycle "
                         "model; float32 and the MLP are not)")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    figure, axes = plt.subplots(figsize=(9, 5.6), layout="constrained")
    for point in points:
        if point.cycles is None:
            axes.axhline(point.accuracy, color="black", linestyle="--", linewidth=1.2,
                         label=f"{point.name}: {point.accuracy:.2f}% (no accelerator "
                               f"cycles)")
    front = [costed[index] for index in pareto_front(
        [(point.cycles, point.accuracy) for point in costed])]
    cycles = [point.cycles for point in costed]
    axes.plot([point.cycles for point in front] + [max(cycles)],
              [point.accuracy for point in front] + [front[-1].accuracy],
              drawstyle="steps-post", color="tab:green", linewidth=1.5, alpha=0.8,
              label="Pareto front (fewest cycles for an accuracy)")
    if max(cycles) > 10 * min(cycles):
        axes.set_xscale("log")
    axes.set_xlim(min(cycles) * 0.85, max(cycles) * 1.15)
    several = any(len(point.seeds) > 1 for point in costed)
    shown = _dodged(axes, costed) if several else [point.cycles for point in costed]
    for point, x in zip(costed, shown):
        is_baseline = point.name == baseline
        style = (dict(marker="*", markersize=15, color="tab:red", zorder=4) if is_baseline
                 else dict(marker="o", markersize=6, color="tab:blue", zorder=3))
        low, high = min(point.accuracies), max(point.accuracies)
        axes.errorbar([x], [point.accuracy], linestyle="none",
                      yerr=[[point.accuracy - low], [high - point.accuracy]]
                      if several else None, capsize=3, elinewidth=0.8,
                      label=f"{point.name} (baseline)" if is_baseline else None, **style)
    axes.xaxis.set_major_formatter(EngFormatter())
    axes.margins(y=0.1)                     # room for the labels above the top point
    _label_points(axes, costed, shown, baseline)
    axes.set_xlabel("cycles per epoch (cycle model, training GEMMs)")
    axes.set_ylabel("test accuracy after the last epoch (%)" if not several else
                    "test accuracy after the last epoch (%, mean over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    seeds = {seed for point in costed for seed in point.seeds}
    axes.set_title(title + (f"\nmeans over {len(seeds)} seeds, bars from the lowest to the "
                            f"highest seed; points of equal cycles spread sideways"
                            if several else ""), fontsize=9)
    return figure


#: Sideways spread between points of equal cycles, as a fraction of the axes' width.
_DODGE = 0.01
#: Height of one label line, as a fraction of the axes' height (7.5-point text).
_LINE = 0.036
#: Labels on a white ground: readable where they cross the reference line or the front.
_GROUND = dict(boxstyle="square,pad=0.05", facecolor="white", edgecolor="none", alpha=0.8)


def _fractions(axes):
    """The transform from data to axes fractions and back, with the view limits brought
    up to date first (matplotlib applies autoscaling and margins lazily)."""
    axes.get_xlim(), axes.get_ylim()
    fraction = axes.transScale + axes.transLimits
    return fraction, fraction.inverted()


def _dodged(axes, costed: list[CyclePoint]) -> list[float]:
    """Where to draw each point of ``costed`` along x: points of equal cycles spread
    sideways by :data:`_DODGE` around their cycles, most accurate first, so their bars
    do not overlap (x limits and scale must be set)."""
    fraction, back = _fractions(axes)                       # data <-> axes fractions
    columns: dict[int, list[int]] = {}
    for index, point in enumerate(costed):
        columns.setdefault(point.cycles, []).append(index)
    shown = [float(point.cycles) for point in costed]
    for cycles, members in columns.items():
        members.sort(key=lambda index: -costed[index].accuracy)
        centre = fraction.transform((cycles, 0))[0]
        for rank, index in enumerate(members):
            offset = (rank - (len(members) - 1) / 2) * _DODGE
            shown[index] = back.transform((centre + offset, 0))[0]
    return shown


def _label_points(axes, costed: list[CyclePoint], shown: list[float],
                  baseline: str | None) -> None:
    """Name the points of :func:`accuracy_cycles_figure` (drawn at x ``shown``): one
    label per position (names one a line). A lone position of its cycles: centred above
    the point, or below it when the label of a point close to its left on about the same
    accuracy is above. Several: labels in a column to the right, most accurate first,
    pushed down where they would overlap, each joined to its point by a thin line."""
    fraction, back = _fractions(axes)                       # data <-> axes fractions
    columns: dict[int, dict[float, tuple[list[str], float]]] = {}
    for point, x in zip(costed, shown):
        names, _ = columns.setdefault(point.cycles, {}).setdefault(
            round(point.accuracy, 6), ([], x))
        names.append(point.name + (" (baseline)" if point.name == baseline else ""))
    placed_above: list[tuple[float, float]] = []
    for cycles in sorted(columns):
        column = sorted(columns[cycles].items(), reverse=True)
        if len(column) == 1:
            ((accuracy, (names, x)),) = column
            fx, fy = fraction.transform((x, accuracy))
            above = not any(0 < fx - other_x < 0.2 and abs(fy - other_y) < 0.05
                            for other_x, other_y in placed_above)
            if above:
                placed_above.append((fx, fy))
            axes.annotate("\n".join(names), (x, accuracy), xytext=(0, 7 if above else -7),
                          textcoords="offset points", fontsize=7.5, ha="center",
                          va="bottom" if above else "top", bbox=_GROUND)
            continue
        right = max(fraction.transform((x, 0))[0] for _, (_, x) in column) + 0.02
        bottom = None                       # the lowest edge of the labels placed so far
        for accuracy, (names, x) in column:
            height = _LINE * len(names)
            fy = fraction.transform((x, accuracy))[1]
            middle = fy if bottom is None else min(fy, bottom - height / 2)
            bottom = middle - height / 2
            axes.annotate("\n".join(names), (x, accuracy),
                          xytext=tuple(back.transform((right, middle))),
                          textcoords="data", fontsize=7.5, ha="left", va="center",
                          bbox=_GROUND, arrowprops=dict(arrowstyle="-", color="0.6", linewidth=0.6,
                                          shrinkA=1, shrinkB=4))


def plot_accuracy_cycles(points: list[CyclePoint], path, *, baseline: str | None = None,
                         title: str = "") -> None:
    """Save :func:`accuracy_cycles_figure` as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    figure = accuracy_cycles_figure(points, baseline=baseline, title=title)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def cycles_plot_path(plot):
    """Where ``qforge train`` saves the accuracy-vs-cycles plot next to the curves plot
    ``plot`` (a :class:`pathlib.Path`).

    >>> from pathlib import Path
    >>> cycles_plot_path(Path("build/train/cnn.png")).as_posix()
    'build/train/cnn_cycles.png'
    """
    return plot.with_name(f"{plot.stem}_cycles{plot.suffix}")


def cycles_plot_title(report: dict, seeds=None) -> str:
    """The title of a :func:`train_all` report's accuracy-vs-cycles plot: its network,
    epochs, preset and seeds (``seeds``: several reports' seeds, else the report's)."""
    seeds = sorted(seeds) if seeds else [report.get("seed")]
    which = (f"seed {seeds[0]}" if len(seeds) == 1
             else "seeds " + ", ".join(str(seed) for seed in seeds))
    return (f"qforge {describe_where(report)}: {report.get('name', '')} "
            f"({describe_network(report)}), {report.get('epochs')} epochs, {which}\n"
            f"test accuracy against the cycles of one epoch's training GEMMs")
