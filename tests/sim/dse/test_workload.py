"""The DSE's policies on a point's numerics, the claim that lets one training serve
every point with the same numerics, and its cycles per epoch against the training
run's own count."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qforge.sim.dse.sweep import load_sweep
from qforge.sim.dse.workload import (epoch_cycles, load_training, numerics_key,
                                     policy_entries, train_accuracy, training_spec)
from qforge.sim.model.spec import load_preset
from qforge.sim.training.loop import train_run
from tests.configs import preset_with

DATA = Path(__file__).parent / "data"


def _workload():
    return load_sweep(DATA / "small.toml").workloads[0]


def _config(**changes):
    return preset_with("default", **changes)


def test_the_builtin_policies_follow_the_block_width():
    spec = _workload().spec
    k2 = policy_entries(spec, load_preset("default"))
    assert (k2["approx"]["kept_blocks"], k2["reduced"]["bits"]) == (2, 4)
    k4 = policy_entries(spec, load_preset("tiny"))           # W = 8, K = 4: 2 blocks
    assert (k4["approx"]["kept_blocks"], k4["reduced"]["bits"]) == (1, 4)
    assert set(policy_entries(spec, load_preset("fxp8"))) == {"exact"}
    # Rounding and weights come from the training config's exact entry.
    assert k2["approx"]["weight_bits"] == 16 and k2["exact"]["rounding"] == "stochastic"


def test_one_training_serves_every_point_with_the_same_numerics():
    """Array shape, block multipliers, buffers and the PE design leave the emulated
    training's numbers alone: the same accuracy and loss, to the last bit."""
    workload = _workload()
    first = _config()
    second = _config(array__rows=2, array__cols=4, arithmetic__block_multipliers=8,
                     arithmetic__pe="shared_shift", buffers__depth=256)
    assert numerics_key(first) == numerics_key(second)
    results = []
    for config in (first, second):
        spec = training_spec(workload, config)
        results.append(train_accuracy(spec, config, "approx", 1, "test"))
    assert results[0]["accuracy"] == results[1]["accuracy"]
    assert results[0]["loss"] == results[1]["loss"]
    # ...while another block width changes them (the key tells the two apart).
    other = _config(arithmetic__block_width=4)
    assert numerics_key(other) != numerics_key(first)
    third = train_accuracy(training_spec(workload, other), other, "approx", 1, "test")
    assert third["loss"] != results[0]["loss"]


def test_cycles_per_epoch_equal_the_training_runs_own_count():
    workload = _workload()
    config = _config(array__rows=4, array__cols=2)
    spec = training_spec(workload, config, ("mixed",))
    train = load_training(spec, config, "test")
    for name in ("exact", "approx", "mixed"):
        hardware = next(h for h in train.hardware if h.name == name)
        run = train_run(replace(train, epochs=1), hardware)
        counted = sum(entry["cycles"] for passes in run.layer_cycles.values()
                      for entry in passes.values())
        assert epoch_cycles(config, hardware, train).cycles == counted
