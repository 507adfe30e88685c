"""The automatic per-layer policy: the selection on hand-made sensitivities (against a
brute-force search written here), the predicted cycles against the emulator's count,
the written policy read back by the config loader, bad budgets, and ``qforge tune
--plot`` with its report read back by ``qforge train --plot-from``."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from qforge.sim.model.errors import InputError
from qforge.sim.training import cnn
from qforge.sim.training.config import load_train_config, train_config_from_dict
from qforge.sim.training.loop import train_run
from qforge.sim.training.policy_search import (baseline_entry, candidate_modes,
                                               epoch_batch_sizes, layer_cycles,
                                               policy_spec, policy_toml, select_policy,
                                               tune)
from tests.cli import run_qforge

LAYERS = ("conv1", "conv2", "fc")
#: Hand-made modes: the "exact" one is free of error and the dearest.
MODES = ("exact", "mid", "cheap")
#: Cycles of a layer by (forward, gradient) mode: a made-up cost growing with both.
WEIGHT = {"exact": 4, "mid": 3, "cheap": 1}
SCALE = {"conv1": 10, "conv2": 100, "fc": 7}
COSTS = {layer: {(f, g): SCALE[layer] * (WEIGHT[f] * WEIGHT[f] + 2 * WEIGHT[f] * WEIGHT[g])
                 for f in MODES for g in MODES} for layer in LAYERS}
SENSITIVITY = {(layer, tensor, mode): value
               for layer, row in {"conv1": (0.0, 0.05, 0.4), "conv2": (0.0, 0.01, 0.2),
                                  "fc": (0.0, 0.03, 0.1)}.items()
               for tensor, scale in (("forward", 1.0), ("gradient", 0.5))
               for mode, value in zip(MODES, (v * scale for v in row))}


def brute_force(budget: float):
    """The cheapest policy within the budget by enumerating every policy."""
    best = None
    for choice in itertools.product(itertools.product(MODES, MODES), repeat=len(LAYERS)):
        loss = sum(SENSITIVITY[(layer, "forward", f)] + SENSITIVITY[(layer, "gradient", g)]
                   for layer, (f, g) in zip(LAYERS, choice))
        cost = sum(COSTS[layer][pair] for layer, pair in zip(LAYERS, choice))
        if loss <= budget and (best is None or (cost, loss) < best[:2]):
            best = (cost, loss, dict(zip(LAYERS, choice)))
    return best


@pytest.mark.parametrize("budget", [0.0, 0.02, 0.06, 0.1, 0.2, 0.35, 0.6, 1.0])
def test_selection_is_the_cheapest_within_the_budget(budget):
    cost, loss, _ = brute_force(budget)
    chosen = select_policy(COSTS, SENSITIVITY, budget)
    assert sum(COSTS[layer][pair] for layer, pair in chosen.items()) == cost
    assert sum(SENSITIVITY[(layer, "forward", f)] + SENSITIVITY[(layer, "gradient", g)]
               for layer, (f, g) in chosen.items()) == pytest.approx(loss)


def test_budget_zero_keeps_exact_and_a_huge_budget_takes_the_cheapest():
    assert select_policy(COSTS, SENSITIVITY, 0.0) == {layer: ("exact", "exact")
                                                      for layer in LAYERS}
    assert select_policy(COSTS, SENSITIVITY, 1e9) == {layer: ("cheap", "cheap")
                                                      for layer in LAYERS}


def test_a_negative_sensitivity_counts_as_zero():
    sensitivity = dict(SENSITIVITY)
    sensitivity[("fc", "forward", "cheap")] = -5.0      # noise must not buy budget
    chosen = select_policy(COSTS, sensitivity, 0.0)
    assert chosen["fc"] == ("cheap", "exact")
    assert chosen["conv1"] == chosen["conv2"] == ("exact", "exact")


TINY = {"name": "tiny", "model": "cnn", "epochs": 1, "batch_size": 16,
        "learning_rate": 0.2, "seed": 1, "train_samples": 40,
        "hardware": [{"name": "float32", "format": "float32"},
                     {"name": "int8", "format": "int", "bits": 8},
                     {"name": "int8_approx", "format": "int", "bits": 8, "kept_blocks": 2},
                     {"name": "int4", "format": "int", "bits": 4}]}


def test_predicted_cycles_equal_the_emulators_count():
    spec, name = policy_spec(TINY, "int8", {"conv1": ("int8", "int4"),
                                           "conv2": ("int8_approx", "int8"),
                                           "fc": ("int4", "int8_approx")})
    train = train_config_from_dict(spec)
    policy = next(h for h in train.hardware if h.name == name)
    run = train_run(train, policy, epochs=1)
    config = policy.operand.config
    sizes = epoch_batch_sizes(40, 16)
    assert sizes == [16, 16, 8]
    for layer, (forward, gradient) in (("conv1", (4, 2)), ("conv2", (2, 4)),
                                       ("fc", (2, 2))):
        predicted = layer_cycles(config, sizes, cnn.IMAGE, cnn.CLASSES, forward,
                                 gradient)[layer]
        counted = sum(entry["cycles"] for entry in run.layer_cycles[layer].values())
        assert predicted == counted


def test_baseline_and_modes_of_the_packaged_cnn_config():
    train = load_train_config("gen/train/cnn.toml")
    baseline = baseline_entry(train)
    assert baseline.name == "int8"
    names = [mode.name for mode in candidate_modes(train, baseline)]
    assert names[:3] == ["int8", "int8_approx", "int4"]
    assert "float32" not in names and "policy_mixed" not in names


def test_the_written_policy_loads_back(tmp_path):
    policy = {"conv1": ("int8", "int4"), "conv2": ("int8_approx", "int8_approx"),
              "fc": ("int4", "int8")}
    spec, name = policy_spec(TINY, "int8", policy, keep_all=False)
    path = tmp_path / "auto.toml"
    path.write_text(policy_toml(spec), encoding="utf-8")
    train = load_train_config(path)
    loaded = next(h for h in train.hardware if h.name == name)
    assert name == "auto"
    for layer, (forward, gradient) in policy.items():
        assert [c.name for c in loaded.layer(layer)] == [forward, gradient, "int8"]
    assert train.model == "cnn" and train.train_samples == 40


@pytest.mark.parametrize("budget", [-0.5, math.nan, math.inf, "1", True])
def test_bad_budget_is_one_error(budget):
    with pytest.raises(InputError, match="budget"):
        tune(TINY, budget)


def test_tune_plots_its_policy_against_cycles(capsys, tmp_path):
    """``qforge tune --plot`` saves the accuracy vs cycles plot of its three runs, and
    ``qforge train --plot-from`` reads its --json report (the policy's point among them)."""
    config = tmp_path / "tiny.toml"
    config.write_text(policy_toml(TINY), encoding="utf-8")
    plot, report = tmp_path / "tune.png", tmp_path / "tune.json"
    outcome = run_qforge(capsys, "tune", "--config", config, "--budget", "100",
                         "--calibration-samples", "16", "--calibration-epochs", "0",
                         "--plot", plot, "--json", report)
    assert outcome.status == 0, outcome.err
    assert f"accuracy vs cycles per epoch saved to {plot}" in outcome.out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = {run["name"]: run for run in json.loads(report.read_text())["runs"]}
    outcome = run_qforge(capsys, "train", "--plot-from", report, "--plot",
                         tmp_path / "again.png")
    assert outcome.status == 0, outcome.err
    auto = runs["auto"]
    ratio = runs["int8"]["cycles_per_epoch"] / auto["cycles_per_epoch"]
    accuracy = f"{100 * auto['test_accuracy']:.2f}%"
    assert f"| auto | {accuracy} | {accuracy} | " in outcome.out
    assert f"| {auto['cycles_per_epoch']:,} | {ratio:.2f}x |" in outcome.out


def test_tune_leaves_paired_and_unsigned_entries_out():
    """A paired entry or one with unsigned activations is neither the baseline nor a
    candidate mode: a policy sets per-layer operand formats, not those."""
    from qforge.sim.training.config import load_train_config
    from qforge.sim.training.policy_search import baseline_entry, candidate_modes
    train = load_train_config("gen/train/cnn_paired.toml")
    baseline = baseline_entry(train)
    assert baseline.paired is None and not baseline.unsigned_activations
    modes = candidate_modes(train, baseline)
    assert modes and all(h.paired is None and not h.unsigned_activations for h in modes)
    assert any(h.paired is not None for h in train.hardware)
