"""``qforge tune``: a tiny end-to-end run (tables, progress bar, JSON, a policy file the
config loader reads back) and its option errors."""

from __future__ import annotations

import json

import pytest

from tests.cli import run_qforge

from qforge.sim.training.config import load_train_config

TINY = """\
name = "tiny"
model = "cnn"
epochs = 1
batch_size = 16
learning_rate = 0.2
seed = 1
train_samples = 48

[[hardware]]
name = "float32"
format = "float32"

[[hardware]]
name = "int8"
format = "int"
bits = 8

[[hardware]]
name = "int8_approx"
format = "int"
bits = 8
kept_blocks = 2

[[hardware]]
name = "int4"
format = "int"
bits = 4
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


def test_tiny_run_with_a_huge_budget_takes_two_block_modes(capsys, tiny, tmp_path):
    policy, report = tmp_path / "out" / "auto.toml", tmp_path / "out" / "tune.json"
    outcome = run_qforge(capsys, "tune", "--config", tiny, "--budget", "100",
                         "--calibration-samples", "32", "--calibration-epochs", "1",
                         "--seed", "2", "--write-policy", policy, "--json", report)
    assert outcome.status == 0, outcome.err
    assert "calibration [" in outcome.err and "auto [" in outcome.err   # progress bars
    assert "| conv2 | gradient |" in outcome.out and "Chosen policy" in outcome.out
    data = json.loads(report.read_text())
    assert data["seed"] == 2 and data["budget"] == 100
    # every tensor in a 2-block mode: the cheapest the config offers
    for tensors in data["policy"].values():
        assert tensors["forward"] in ("int8_approx", "int4")
        assert tensors["gradient"] in ("int8_approx", "int4")
        assert tensors["update"] == "int8"
    runs = {run["name"]: run for run in data["runs"]}
    assert list(runs) == ["float32", "int8", "auto"]
    assert runs["float32"]["cycles_per_epoch"] is None
    # 2 x 2 block products per MAC against 4 x 4: far fewer cycles than exact int8
    assert runs["auto"]["cycles_per_epoch"] < runs["int8"]["cycles_per_epoch"] / 2
    assert runs["auto"]["cycles_per_epoch"] == data["predicted_cycles"]
    train = load_train_config(policy)
    auto = next(h for h in train.hardware if h.name == "auto")
    for layer, tensors in data["policy"].items():
        assert [c.name for c in auto.layer(layer)] == [tensors["forward"],
                                                      tensors["gradient"], "int8"]
    assert train.seed == 2


def test_budget_zero_keeps_exact_int8(capsys, tiny, tmp_path):
    report = tmp_path / "tune.json"
    outcome = run_qforge(capsys, "tune", "--config", tiny, "--budget", "0",
                         "--calibration-samples", "16", "--calibration-epochs", "0",
                         "--json", report)
    assert outcome.status == 0, outcome.err
    data = json.loads(report.read_text())
    runs = {run["name"]: run for run in data["runs"]}
    assert data["predicted_loss_increase"] == 0
    # only zero-sensitivity choices: int8 itself, or a mode that measured no worse
    chosen = {(layer, tensor, mode) for layer, tensors in data["policy"].items()
              for tensor, mode in tensors.items() if tensor != "update"}
    measured = {(s["layer"], s["tensor"], s["mode"]): s["loss_increase"]
                for s in data["sensitivity"]}
    assert all(measured[key] <= 0 for key in chosen)
    assert runs["auto"]["cycles_per_epoch"] <= runs["int8"]["cycles_per_epoch"]


@pytest.mark.parametrize("budget", ["-1", "nan", "inf", "x"])
def test_bad_budget(capsys, tiny, budget):
    outcome = run_qforge(capsys, "tune", "--config", tiny, "--budget", budget)
    assert outcome.status == 2
    assert "--budget" in outcome.err and outcome.out == ""


def test_mlp_config_is_one_error(capsys):
    outcome = run_qforge(capsys, "tune", "--config", "gen/train/digits.toml",
                         "--budget", "0.1")
    assert outcome.status == 2
    assert outcome.err.count("\n") == 1 and 'model = "cnn"' in outcome.err
