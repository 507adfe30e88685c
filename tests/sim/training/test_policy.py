"""Per-layer precision policies of the CNN (``[hardware.policy.LAYER]`` in a training
config): validation errors, and each layer's GEMMs running in its own formats."""

import pytest

from qforge.sim.model.cycles import GemmShape, gemm_cycles
from qforge.sim.model.spec import load_preset
from qforge.sim.training.config import TrainConfigError, train_config_from_dict
from qforge.sim.training.loop import train_run
from tests.sim.training.test_cnn import TINY

ROWS = [{"name": "int8", "format": "int", "bits": 8},
        {"name": "int4", "format": "int", "bits": 4},
        {"name": "vrq8", "format": "vrq", "code_width": 4, "range_stride": 2, "ranges": 8}]


def with_policy(policy, **top):
    row = {"name": "mixed", "format": "int", "bits": 8, "policy": policy}
    return dict(TINY, hardware=[*ROWS, row], **top)


@pytest.mark.parametrize("spec, message", [
    (with_policy({"conv3": {"forward": "int4"}}),
     "hardware[3] (mixed).policy.conv3 = {'forward': 'int4'}: unknown layer; the CNN's "
     "layers: conv1, conv2, fc"),
    (with_policy({"conv1": {"forward": "int2"}}),
     "policy.conv1.forward = 'int2': unknown mode; must name a low-precision [[hardware]] "
     "entry with update = \"float\": int8, int4, vrq8, mixed"),
    (with_policy({"fc": {"backward": "int4"}}),
     "policy.fc.backward = 'int4': unknown key; allowed: forward, gradient, update"),
    (with_policy({"fc": "int4"}), "policy.fc = 'int4': must be a table with forward"),
    (with_policy({}), "policy = {}: must be a table of layers (conv1, conv2, fc)"),
    (dict(with_policy({"fc": {"forward": "int4"}}), model="mlp", hidden=8),
     "per-layer policies need model = \"cnn\""),
    (dict(TINY, hardware=[{"name": "f", "format": "float32", "policy": {}}]),
     "hardware[0] (f).policy = {}: only allowed with format = \"int\" or \"vrq\" or "
     "\"address_block\""),
    (dict(TINY, hardware=[*ROWS, {"name": "f", "format": "float32"},
                          {"name": "m", "format": "int", "bits": 8,
                           "policy": {"fc": {"update": "f"}}}]),
     "policy.fc.update = 'f': unknown mode"),
    (dict(TINY, hidden=8), "hidden = 8: only with model = \"mlp\""),
    (dict(TINY, batch_size=64), "batch_size = 64: the CNN's conv1 weight gradient GEMM "
                                "has depth 4096, over max_reduction_depth 2048"),
    (dict(TINY, model="resnet"), "model = 'resnet': allowed: mlp, cnn"),
])
def test_policy_and_cnn_config_errors(spec, message):
    with pytest.raises(TrainConfigError) as error:
        train_config_from_dict(spec, source="p.toml")
    assert str(error.value).startswith("p.toml: ")
    assert message in str(error.value)


def test_layers_without_a_policy_use_the_row():
    train = train_config_from_dict(with_policy({"fc": {"gradient": "int4"}}))
    mixed = train.hardware[-1]
    assert [h.name for h in mixed.layer("conv1")] == ["mixed"] * 3
    assert [h.name for h in mixed.layer("fc")] == ["mixed", "int4", "mixed"]
    assert "fc: forward mixed, gradient int4, update mixed" in mixed.describe()


def test_each_layer_runs_in_its_policys_formats():
    """conv1's forward operands in int4 (2 x 2 block products per MAC), fc's gradient
    in VRQ: conv1's forward GEMMs cost int4's cycles, fc's weight gradient (8-bit
    activations x VRQ gradient: 4 x 2) and input gradient (VRQ gradient x 8-bit
    weights: 2 x 4) their own, every other GEMM the uniform int8 row's."""
    policy = {"conv1": {"forward": "int4"}, "fc": {"gradient": "vrq8"}}
    train = train_config_from_dict(with_policy(policy, train_samples=16))
    rows = {h.name: train_run(train, h).layer_cycles for h in train.hardware}
    mixed, int8, int4 = rows["mixed"], rows["int8"], rows["int4"]
    config = load_preset("default")
    assert mixed["conv1"]["forward"] == int4["conv1"]["forward"] != int8["conv1"]["forward"]
    assert mixed["conv1"]["weight_gradient"]["cycles"] == gemm_cycles(
        config, [GemmShape(9, 8, 1024, 2 * 4)]).total   # int4 activations^T x int8 dZ
    assert mixed["fc"]["weight_gradient"]["cycles"] == gemm_cycles(
        config, [GemmShape(256, 10, 16, 4 * 2)]).total
    assert mixed["fc"]["input_gradient"]["cycles"] == gemm_cycles(
        config, [GemmShape(16, 256, 10, 2 * 4)]).total
    assert mixed["conv2"] == int8["conv2"] and mixed["fc"]["forward"] == int8["fc"]["forward"]
