"""The accuracy-vs-cycles report (:mod:`qforge.sim.training.cycles_report`): the Pareto
front against fronts worked out by hand, the mean over seeds' reports, the seed table and the
plot's matplotlib figure (its axes, points, reference line and front, not its pixels)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pytest

from qforge.sim.model.errors import InputError
from qforge.sim.training.cycles_report import (CyclePoint, accuracy_cycle_points,
                                               accuracy_cycles_figure, cycles_plot_path,
                                               format_seed_table, pareto_front,
                                               plot_accuracy_cycles)

matplotlib.use("Agg")


def train_report(seed: int, accuracies: dict[str, float], cycles: dict[str, int | None],
                 epochs: int = 3) -> dict:
    """A ``qforge train --json`` report as the CNN writes it: per run the test accuracy
    curve (index 0 before training; only the last entry matters here) and
    ``layer_cycles`` (two layers, so the cycles per epoch are their sum)."""
    runs = []
    for name, accuracy in accuracies.items():
        total = cycles[name]
        layers = None if total is None else {
            "conv1": {"forward": {"gemms": 2, "cycles": total // 4},
                      "weight_gradient": {"gemms": 2, "cycles": 0}},
            "fc": {"forward": {"gemms": 2, "cycles": total - total // 4}}}
        runs.append({"name": name, "test_accuracy": [0.1] * epochs + [accuracy],
                     "layer_cycles": layers, "backend": "emulator"})
    return {"name": "cnn", "model": "cnn", "epochs": epochs, "seed": seed,
            "batch_size": 16, "runs": runs, "baseline": "int8"}


def tune_report(seed: int, accuracies: dict[str, float], cycles: dict[str, int | None],
                epochs: int = 3) -> dict:
    """A ``qforge tune --json`` report: final accuracy and cycles per epoch per run."""
    return {"source": "cnn.toml", "seed": seed, "epochs": epochs, "baseline": "int8",
            "runs": [{"name": name, "test_accuracy": accuracy,
                      "cycles_per_epoch": cycles[name]}
                     for name, accuracy in accuracies.items()]}


CYCLES = {"float32": None, "int8": 1000, "approx": 400, "int4": 400, "mixed": 700}


# --- the Pareto front -------------------------------------------------------------------

@pytest.mark.parametrize("points, front", [
    ([], []),
    ([(5, 90.0)], [0]),
    # (1, 80) is cheapest; (2, 85) better for more; (3, 84) beaten by (2, 85);
    # (4, 95) better again; (5, 95) beaten by (4, 95) (same accuracy, more cycles)
    ([(3, 84.0), (1, 80.0), (5, 95.0), (2, 85.0), (4, 95.0)], [1, 3, 4]),
    # one point cheapest and best: it alone
    ([(10, 90.0), (1, 99.0), (5, 95.0)], [1]),
    # same cycles: only the most accurate; equal points are both kept, by index
    ([(2, 97.0), (2, 98.0), (6, 99.0), (2, 98.0)], [1, 3, 2]),
])
def test_pareto_front_against_fronts_worked_by_hand(points, front):
    assert pareto_front(points) == front


# --- points over seeds ------------------------------------------------------------------

def test_points_are_the_mean_over_seeds_of_train_and_tune_reports():
    first = train_report(1, {"float32": 0.98, "int8": 0.97, "approx": 0.96}, CYCLES)
    second = train_report(2, {"float32": 0.96, "int8": 0.99, "approx": 0.95}, CYCLES)
    # tune of seed 2: float32 and int8 as in the train report (counted once), a policy
    tune = tune_report(2, {"float32": 0.96, "int8": 0.99, "auto": 0.94},
                       dict(CYCLES, auto=300))
    points = {point.name: point for point in accuracy_cycle_points([first, second, tune])}
    assert list(points) == ["float32", "int8", "approx", "auto"]
    assert points["float32"].accuracy == pytest.approx(97.0)
    assert points["float32"].cycles is None
    assert points["int8"].accuracies == pytest.approx((97.0, 99.0))
    assert points["int8"].seeds == (1, 2) and points["int8"].cycles == 1000
    assert points["approx"].accuracy == pytest.approx(95.5) and points["approx"].cycles == 400
    assert points["auto"].seeds == (2,) and points["auto"].cycles == 300


@pytest.mark.parametrize("reports, message", [
    ([{"name": "x"}], "a.json: not a qforge train or qforge tune JSON report (no `runs`)"),
    ([[1, 2]], "a.json: not a qforge train or qforge tune JSON report"),
    ([{"runs": [{"name": "int8"}]}], "a.json: a run without a name, a final test accuracy"),
    ([train_report(1, {"int8": 0.9}, CYCLES), train_report(2, {"int8": 0.9}, {"int8": 999})],
     "b.json: int8: 999 cycles per epoch, but 1000 in a.json: not one configuration"),
    ([train_report(1, {"int8": 0.9}, CYCLES), train_report(2, {"int8": 0.9}, CYCLES, 4)],
     "b.json: epochs = 4, but a.json has 3"),
    ([train_report(1, {"int8": 0.9}, CYCLES), train_report(1, {"int8": 0.8}, CYCLES)],
     "b.json: int8, seed 1: test accuracy 80.00%, but another report of that seed has "
     "90.00%"),
])
def test_inconsistent_reports_are_one_error(reports, message):
    with pytest.raises(InputError) as error:
        accuracy_cycle_points(reports, ["a.json", "b.json"])
    assert message in str(error.value)


def test_seed_table_by_hand():
    points = [CyclePoint("float32", 97.0, (98.0, 96.0), (1, 2), None),
              CyclePoint("int8", 98.0, (97.0, 99.0), (1, 2), 1000),
              CyclePoint("approx", 96.5, (96.5,), (2,), 400),
              # a mean a rounding error below float32's: no "-0.00"
              CyclePoint("same", 97.0 - 1e-12, (97.0 - 1e-12,), (2,), 400)]
    assert format_seed_table(points, "int8").splitlines() == [
        "| configuration | seed 1 | seed 2 | mean | vs float32 | cycles / epoch "
        "| fewer than int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| float32 | 98.00% | 96.00% | 97.00% |  |  |  |",
        "| int8 | 97.00% | 99.00% | 98.00% | +1.00 | 1,000 | 1.00x |",
        "| approx |  | 96.50% | 96.50% | -0.50 | 400 | 2.50x |",
        "| same |  | 97.00% | 97.00% | +0.00 | 400 | 2.50x |"]


# --- the figure -------------------------------------------------------------------------

def test_figure_has_the_points_the_reference_line_and_the_front():
    report = train_report(1, {"float32": 0.98, "int8": 0.975, "approx": 0.97,
                              "int4": 0.95, "mixed": 0.97}, CYCLES)
    figure = accuracy_cycles_figure(accuracy_cycle_points([report]), baseline="int8",
                                    title="the title")
    try:
        (axes,) = figure.axes
        assert axes.get_xlabel() == "cycles per epoch (cycle model, training GEMMs)"
        assert axes.get_ylabel() == "test accuracy after the last epoch (%)"
        assert axes.get_title() == "the title" and axes.get_xscale() == "linear"
        lines = {line.get_label(): line for line in axes.get_lines()}
        reference = lines["float32: 98.00% (no accelerator cycles)"]
        assert list(reference.get_ydata()) == [98.0, 98.0]
        # by hand: approx (400, 97.0) beats int4 (400, 95.0) and mixed (700, 97.0);
        # int8 (1000, 97.5) is the only better one; the step runs to the rightmost point
        front = lines["Pareto front (fewest cycles for an accuracy)"]
        assert front.get_drawstyle() == "steps-post"
        assert list(front.get_xdata()) == [400, 1000, 1000]
        assert list(front.get_ydata()) == pytest.approx([97.0, 97.5, 97.5])
        # every configuration with cycles is one marker (an errorbar container's line)
        markers = {(tuple(c.lines[0].get_xdata()), tuple(c.lines[0].get_ydata())):
                   c.lines[0].get_marker() for c in axes.containers}
        assert markers == {((1000,), (97.5,)): "*", ((400,), (97.0,)): "o",
                           ((400,), (95.0,)): "o", ((700,), (97.0,)): "o"}
        star = {c.get_label(): c for c in axes.containers}["int8 (baseline)"].lines[0]
        assert (list(star.get_xdata()), list(star.get_ydata())) == ([1000], [97.5])
        labels = {text.get_text(): text.xy for text in axes.texts}
        assert labels == {"int8 (baseline)": (1000, 97.5), "approx": (400, 97.0),
                          "int4": (400, 95.0), "mixed": (700, 97.0)}
    finally:
        plt.close(figure)


def test_figure_over_seeds_shares_labels_and_shows_the_spread():
    reports = [train_report(seed, {"float32": 0.98, "int8": accuracy, "approx": 0.97,
                                   "int4": 0.97}, CYCLES)
               for seed, accuracy in ((1, 0.96), (2, 0.98), (3, 0.99))]
    figure = accuracy_cycles_figure(accuracy_cycle_points(reports), baseline="int8")
    try:
        (axes,) = figure.axes
        assert "mean over seeds" in axes.get_ylabel()
        assert "means over 3 seeds" in axes.get_title()
        # points of equal cycles drawn side by side: approx and int4 at 400, half of 1% of
        # the axes' width (0.85 * 400 .. 1.15 * 1000, 810 cycles) either side; int8 alone
        drawn = sorted(c.lines[0].get_xdata()[0] for c in axes.containers)
        assert drawn == pytest.approx([400 - 4.05, 400 + 4.05, 1000])
        # approx and int4 at the same point: one label, a name a line
        assert {text.get_text() for text in axes.texts} == {"int8 (baseline)",
                                                            "approx\nint4"}
        # the baseline's bar spans the lowest to the highest seed (96 .. 99)
        bars = [collection.get_segments() for collection in axes.collections]
        spans = sorted(tuple(sorted(point[1] for point in segment))
                       for segments in bars for segment in segments)
        assert (pytest.approx(96.0), pytest.approx(99.0)) in spans
    finally:
        plt.close(figure)


def test_wide_cycle_ranges_use_a_log_axis():
    points = [CyclePoint("a", 90.0, (90.0,), (1,), 100),
              CyclePoint("b", 95.0, (95.0,), (1,), 5000)]
    figure = accuracy_cycles_figure(points)
    try:
        assert figure.axes[0].get_xscale() == "log"
    finally:
        plt.close(figure)


def test_no_configuration_with_cycles_is_a_clear_error():
    mlp = {"seed": 1, "epochs": 2, "runs": [
        {"name": "float32", "test_accuracy": [0.1, 0.9], "layer_cycles": None},
        {"name": "int8", "test_accuracy": [0.1, 0.9], "layer_cycles": None}]}
    with pytest.raises(InputError, match="no configuration with accelerator cycles"):
        accuracy_cycles_figure(accuracy_cycle_points([mlp]))


def test_the_plot_is_written_next_to_the_curves(tmp_path):
    assert cycles_plot_path(tmp_path / "cnn.png") == tmp_path / "cnn_cycles.png"
    path = tmp_path / "cnn_cycles.png"
    plot_accuracy_cycles([CyclePoint("int8", 98.0, (98.0,), (1,), 10)], path,
                         baseline="int8")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
