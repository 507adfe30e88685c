"""Training configurations (``qforge.sim.training.config``): the packaged runs and the
validation of every key."""

from pathlib import Path

import pytest

from qforge.sim.model.rounding import Rounding
from qforge.sim.training.config import (TrainConfigError, load_train_config,
                                        train_config_from_dict)
from tests.sim.training.small import SMALL


def test_packaged_comparison_config():
    train = load_train_config()
    names = [h.name for h in train.hardware]
    assert names[0] == "float32" and len(set(names)) == len(names)
    assert {"int8", "int8_approx", "int4", "vrq8_g8_sr", "vrq8_g8_nearest", "vrq8_g2_sr",
            "ab8", "w8_nearest", "w8_sr"} <= set(names)
    formats = {h.operand.kind for h in train.hardware if h.operand}
    assert formats == {"int", "vrq", "address_block"}
    for name in ("vrq8_g8_sr", "vrq8_g2_sr"):
        vrq8 = next(h for h in train.hardware if h.name == name)
        assert vrq8.operand.storage_bits == 8 and vrq8.rounding == Rounding.STOCHASTIC
    low = {h.name: h for h in train.hardware if h.weights and h.weights.bits == 8}
    assert low["w8_nearest"].update_rounding == Rounding.NEAREST_EVEN
    assert low["w8_sr"].update_rounding == Rounding.STOCHASTIC
    sweep = load_train_config(Path(__file__).parents[3] / "gen" / "train" / "weight_bits.toml")
    assert len(sweep.hardware) == 13


def hardware(**entry):
    """SMALL with one hardware entry: an int8 named x changed by ``entry`` (None: drop)."""
    merged = {"name": "x", "format": "int", "bits": 8} | entry
    return dict(SMALL, hardware=[{k: v for k, v in merged.items() if v is not None}])


@pytest.mark.parametrize("spec, message", [
    (dict(SMALL, hidden=0), "hidden = 0: allowed range is 1 .. 1024"),
    (dict(SMALL, learning_rate="fast"), "learning_rate = 'fast': must be a number"),
    (dict(SMALL, seed=70000), "seed = 70000: allowed range is 0 .. 65535"),
    (dict(SMALL, banana=1), "unknown key 'banana'"),
    (dict(SMALL, dataset="mnist"), "dataset = 'mnist': allowed are 'digits' and 'npz:PATH'"),
    (dict(SMALL, hardware=[]), "hardware = []: must be a non-empty array"),
    ({k: v for k, v in SMALL.items() if k != "epochs"}, "missing key epochs"),
    (hardware(format="fp8"), "hardware[0] (x).format = 'fp8': allowed: float32, int, vrq, "
                             "address_block"),
    (hardware(bits=7), "hardware[0] (x).bits = 7: must be a multiple of the block width 2"),
    (hardware(bits=10), "hardware[0] (x).bits = 10: allowed range is 2 .. 8"),
    (hardware(kept_blocks=5), "hardware[0] (x).kept_blocks = 5: allowed range is 1 .. 4"),
    (hardware(selection="random"), "hardware[0] (x).selection = 'random': allowed: dynamic, "
                                   "static"),
    (hardware(rounding="up"), "hardware[0] (x).rounding = 'up': allowed: nearest, stochastic"),
    (hardware(weight_bits=1), "hardware[0] (x).weight_bits = 1: allowed range is 2 .. 32"),
    (hardware(weight_range=3), "hardware[0] (x).weight_range = 3: must be a power of two"),
    (hardware(code_width=4), "hardware[0] (x).code_width = 4: only allowed with format = "
                             "\"vrq\""),
    (hardware(block=64), "hardware[0] (x).block = 64: only allowed with format = "
                         "\"address_block\""),
    (hardware(format="float32", bits=8), "hardware[0] (x).bits = 8: only allowed with format"),
    (hardware(format="vrq", bits=None, code_width=4, range_stride=3, ranges=8),
     "range_stride = 3: must be a multiple of the block width 2"),
    (hardware(format="vrq", bits=None, code_width=4, range_stride=2, ranges=99),
     "hardware[0] (x).ranges = 99: allowed range is 1 .. 64"),
    (hardware(format="vrq", bits=None, code_width=2, range_stride=4, ranges=8),
     "vrq.range_stride = 4: must not exceed vrq.code_width (2)"),
    (hardware(format="vrq", bits=None, code_width=4, range_stride=2),
     "missing key hardware[0] (x).ranges"),
    (hardware(preset="huge"), "hardware[0] (x).preset = 'huge': allowed: default, "),
    (dict(SMALL, hardware=[{"name": "a", "format": "float32"},
                           {"name": "a", "format": "float32"}]),
     "hardware[1].name = 'a': must be unique"),
    (dict(SMALL, hardware=[{"name": "not a name", "format": "float32"}]),
     "hardware[0].name = 'not a name': must be a non-empty identifier"),
])
def test_bad_training_config_names_the_field(spec, message):
    with pytest.raises(TrainConfigError) as error:
        train_config_from_dict(spec, source="t.toml")
    assert str(error.value).startswith("t.toml: ")
    assert message in str(error.value), str(error.value)


def test_packaged_cnn_config():
    train = load_train_config(Path(__file__).parents[3] / "gen" / "train" / "cnn.toml")
    assert train.model == "cnn" and train.hidden == 0 and train.batch_size == 16
    names = [h.name for h in train.hardware]
    assert names[:5] == ["float32", "int8", "int8_approx", "int4", "vrq8_g8_sr"]
    mixed = next(h for h in train.hardware if h.policy)
    assert [(e.layer, e.forward.name, e.gradient.name) for e in mixed.policy] == [
        ("conv2", "int8_approx", mixed.name), ("fc", "int8_approx", "int4")]


# ---------------------------------------------------------------- policies on programs
CNN_ROWS = [{"name": "float32", "format": "float32"},
            {"name": "int8", "format": "int", "bits": 8},
            {"name": "int4", "format": "int", "bits": 4},
            {"name": "vrq8", "format": "vrq", "code_width": 4, "range_stride": 2,
             "ranges": 8},
            {"name": "w32", "format": "int", "bits": 8, "weight_bits": 32}]


def cnn_programs(policy, **row):
    """A CNN config whose last entry trains as programs with ``policy``."""
    entry = {"name": "hw", "format": "int", "bits": 8, "update": "hardware",
             "policy": policy} | row
    return {"name": "t", "model": "cnn", "epochs": 1, "batch_size": 16,
            "learning_rate": 0.2, "seed": 3, "hardware": [*CNN_ROWS, entry]}


def test_a_program_entry_takes_a_policy_of_int_formats():
    """update = "hardware" with a policy: each layer's parts from the named entries
    (any low-precision entry: here int4's operands and int8's weights)."""
    train = train_config_from_dict(cnn_programs({"fc": {"gradient": "int4",
                                                        "update": "int8"}}))
    hw = train.hardware[-1]
    assert hw.update == "hardware"
    assert [h.name for h in hw.layer("fc")] == ["hw", "int4", "int8"]
    assert [h.name for h in hw.layer("conv1")] == ["hw"] * 3


@pytest.mark.parametrize("policy, message", [
    ({"conv2": {"forward": "vrq8"}},
     "hardware[5] (hw).policy.conv2.forward = 'vrq8': is format = \"vrq\"; with update = "
     "\"hardware\" a layer's operands must be format = \"int\" (the programs keep integer "
     "operand codes in memory)"),
    ({"fc": {"gradient": "vrq8"}}, "policy.fc.gradient = 'vrq8': is format = \"vrq\""),
    ({"fc": {"update": "w32"}},
     "hardware[5] (hw).policy.fc.update = 'w32': has weight_bits = 32; with update = "
     "\"hardware\" at most the accumulator width 27 of preset 'default' (the update "
     "saturates there)"),
    ({"fc": {"forward": "float32"}},
     "policy.fc.forward = 'float32': unknown mode; must name a low-precision [[hardware]] "
     "entry: int8, int4, vrq8, w32, hw"),
])
def test_a_program_policy_names_only_what_runs_on_the_preset(policy, message):
    with pytest.raises(TrainConfigError) as error:
        train_config_from_dict(cnn_programs(policy), source="t.toml")
    assert str(error.value).startswith("t.toml: ")
    assert message in str(error.value), str(error.value)


def test_a_host_update_policy_still_names_host_update_entries_only():
    spec = cnn_programs({})
    spec["hardware"].append({"name": "m", "format": "int", "bits": 8,
                             "policy": {"fc": {"forward": "hw"}}})
    spec["hardware"][-2].pop("policy")
    with pytest.raises(TrainConfigError, match="policy.fc.forward = 'hw': unknown mode; "
                       "must name a low-precision \\[\\[hardware\\]\\] entry with update = "
                       "\"float\": int8, int4, vrq8, w32, m"):
        train_config_from_dict(spec)
