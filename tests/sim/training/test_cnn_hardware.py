"""The CNN trained as programs (qforge.sim.training.cnn_hardware): the golden machine's
quantities against the emulator's forward pass and against numpy recomputations of the
integer GEMMs and the fused update, with one format and with a per-layer policy; the
per-layer, per-pass cycles of one epoch against the cycle model of each program; a tiny
run on the Verilog with --check."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

from qforge.gen.asm import chunk_sizes, conv2d_gemms
from qforge.sim.model.cycles import program_cycles
from qforge.sim.model.isa import Opcode, decode
from qforge.sim.model.numerics import Precision, gemm
from qforge.sim.model.random_bits import random_bits
from qforge.sim.model.rounding import Rounding
from qforge.sim.runtime import Runtime
from qforge.sim.training import cnn
from qforge.sim.training.cnn_hardware import (CnnProgramTrainer, layer_arithmetic,
                                              train_cnn_program_run)
from qforge.sim.training.config import train_config_from_dict
from qforge.sim.training.data import load_digits_split
from qforge.sim.training.loop import train_all

CNN_RTL = Path(__file__).resolve().parents[3] / "gen" / "train" / "cnn_rtl.toml"


def cnn_rtl(policy=None, **changes):
    """gen/train/cnn_rtl.toml with ``changes``: ``(TrainConfig, the int8_hw entry)``;
    with ``policy``, int8_hw gets it (``[hardware.policy.LAYER]`` tables), naming the
    :data:`POLICY_ROWS` added to the file."""
    spec = tomllib.loads(CNN_RTL.read_text())
    spec.update(changes)
    if policy is not None:
        spec["hardware"][1]["policy"] = policy
        spec["hardware"] += POLICY_ROWS
    train = train_config_from_dict(spec, source=str(CNN_RTL))
    hardware = train.hardware[1]
    assert hardware.update == "hardware"
    return train, hardware


#: Formats a test policy names: int8 with the top 2 of its 4 blocks, int4, and 12-bit
#: weights in [-1, 1) updated to nearest.
POLICY_ROWS = [{"name": "int8_approx", "format": "int", "bits": 8, "kept_blocks": 2},
               {"name": "int4", "format": "int", "bits": 4, "rounding": "nearest"},
               {"name": "w12", "format": "int", "bits": 8, "weight_bits": 12,
                "weight_range": 1, "update_rounding": "nearest"}]
#: conv1 as the entry (int8); conv2's forward operands approximate; fc's forward
#: operands approximate, its gradient int4 (rounded to nearest), its weights w12.
POLICY = {"conv2": {"forward": "int8_approx"},
          "fc": {"forward": "int8_approx", "gradient": "int4", "update": "w12"}}


def images(count: int):
    x_train, y_train, _, _ = load_digits_split()
    return x_train[:count].reshape(-1, 8, 8, 1), np.eye(10)[y_train[:count]]


def golden_trainer(train, hardware, test_samples: int = 8) -> CnnProgramTrainer:
    trainer = CnnProgramTrainer(train, hardware, Runtime(hardware.operand.config, "golden"),
                                test_samples=test_samples)
    trainer.initialize()
    return trainer


def plain_im2col(x: np.ndarray, stride: int) -> np.ndarray:
    """3x3, padding 1, channels last, columns ordered (kh, kw, cin): written with loops."""
    n, height, width, channels = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
    rows = []
    for image in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                window = padded[image, oy * stride:oy * stride + 3, ox * stride:ox * stride + 3]
                rows.append(window.reshape(-1))
    return np.array(rows)


def conv2_padded_input_gradient(products: np.ndarray) -> np.ndarray:
    """conv2's input gradient of 4 images in its padded 4 x 10 x 10 x 8 buffer, padding
    ring included, from ``dZ @ W^T`` (``(4 * 4 * 4) x (3 * 3 * 8)``): each output
    pixel's 3x3x8 window added at stride 2, in loops."""
    products = products.reshape(4, 4, 4, 3, 3, 8)
    expected = np.zeros((4, 10, 10, 8), dtype=np.int64)
    for oy in range(4):
        for ox in range(4):
            for i in range(3):
                for j in range(3):
                    expected[:, 2 * oy + i, 2 * ox + j] += products[:, oy, ox, i, j]
    return expected


@pytest.mark.parametrize("policy", [None, POLICY], ids=["one format", "policy"])
def test_forward_equals_the_emulators(policy):
    """The programs' logits and pre-activations of a training forward pass equal the
    emulated CNN's (same initial weights, keys and stochastic quantization; its GEMMs by
    im2col and the exact emulated matmul, not by the conv2d blocks); with a policy, each
    layer in its own formats (the emulator's arithmetic built here from the policy's
    entries, as loop.py builds it)."""
    train, hardware = cnn_rtl(policy, batch_size=4)
    trainer = golden_trainer(train, hardware)
    x, _ = images(4)
    logits, saved = trainer.forward(x, step=3)
    arithmetic = {}
    for layer in cnn.LAYERS:
        forward, gradient, update = hardware.layer(layer)
        arithmetic[layer] = cnn.LayerArithmetic(forward.operand, forward.rounding,
                                                gradient.operand, gradient.rounding,
                                                update.weights, update.update_rounding)
    if policy is not None:
        assert arithmetic["fc"].gradient.bits == 4 and arithmetic["fc"].weights.bits == 12
        assert arithmetic["conv2"].forward.precision.kept == 2
    ops = cnn.EmulatedOps(arithmetic, cnn.initial_parameters(train.seed), train.seed)
    expected, expected_saved = cnn.Network(ops).forward(x, 3, True)
    np.testing.assert_array_equal(logits, expected)
    for layer in cnn.LAYERS:
        np.testing.assert_array_equal(saved[layer][2], expected_saved[layer][2])
        assert trainer.arithmetic[layer] == arithmetic[layer]


def test_step_gradients_and_stochastic_update_recomputed_with_numpy():
    """One golden step: fc's and conv2's input gradients and conv1's fused stochastic
    update recomputed with numpy from the codes the step wrote (the convolutions with
    loops, the update as ``W + floor((G + r) / 2**s)`` clamped, ``r`` the top ``s`` of
    the element's random bits of the update's key)."""
    train, hardware = cnn_rtl(batch_size=4)
    trainer = golden_trainer(train, hardware)
    conv1_before = trainer.weight_codes()[0]
    x, onehot = images(4)
    loss = trainer.step(x, onehot, step=0, lr=0.2)
    assert 0 < loss < 10
    read = trainer._read
    # fc: dX = dZ @ W^T.
    np.testing.assert_array_equal(read("fc_dx", 4), read("fc_g", 4) @ read("fc_wq").T)
    # conv2's input gradient into the padded 4 x 10 x 10 x 8 buffer, padding ring included.
    g2, w2 = read("conv2_g"), read("conv2_wq")
    expected = conv2_padded_input_gradient(g2 @ w2.T)
    np.testing.assert_array_equal(read("conv2_dx").reshape(4, 10, 10, 8), expected)
    assert np.abs(expected).max() > 0
    # conv1's update: one GEMM over the im2col of the stored (padded) input codes.
    x_codes = read("conv1_x").reshape(-1, 10, 10, 1)[:4, 1:9, 1:9]
    gradient = plain_im2col(x_codes, 1).T @ read("conv1_g")
    shift = trainer.shifts["conv1"]
    assert 0 < shift <= 26 and np.abs(gradient).max() > 0
    seed, tensor = trainer._key("conv1_update_weights", 0)
    rows, cols = np.indices(gradient.shape)
    r = random_bits(seed, tensor, rows, cols).astype(np.int64) >> (32 - shift)
    expected_w = np.clip(conv1_before + ((gradient + r) >> shift), -2**15, 2**15 - 1)
    np.testing.assert_array_equal(trainer.weight_codes()[0], expected_w)
    assert not np.array_equal(expected_w, conv1_before)


def test_golden_programs_train_through_train_all():
    """``train_all`` with the golden backend (and --emulate's path, train_run) runs the
    CNN's hardware entry as programs: the same curves both ways, model cycles counted.
    28 samples in batches of 8: the last batch holds 4."""
    train, _ = cnn_rtl(train_samples=28, batch_size=8, test_fraction=0.01, epochs=1)
    report = train_all(train, backend="golden")
    emulated = train_all(train)
    float_run, program_run = report["runs"]
    assert program_run["backend"] == "golden" and float_run["name"] == "float32"
    assert program_run["epoch_model_cycles"][0] > 0
    assert program_run["test_accuracy"] == emulated["runs"][1]["test_accuracy"]
    assert program_run["train_loss"] == emulated["runs"][1]["train_loss"]


@pytest.mark.rtl
def test_rtl_cnn_training_is_bit_exact_with_the_golden_machine_step_by_step():
    """Two steps (8 images, then 4) and the two evaluations on the generated Verilog, the
    memory compared with the golden machine after every program (``check``); the same
    curves as the golden run; simulated cycles equal to the cycle model."""
    train, hardware = cnn_rtl(train_samples=12, batch_size=8, test_fraction=0.01)
    rtl = train_cnn_program_run(train, hardware, backend="rtl", epochs=1, check=True)
    golden = train_cnn_program_run(train, hardware, backend="golden", epochs=1)
    assert rtl.checked
    assert rtl.test_accuracy == golden.test_accuracy
    assert rtl.train_loss == golden.train_loss and rtl.test_loss == golden.test_loss
    assert rtl.epoch_cycles == rtl.epoch_model_cycles == golden.epoch_model_cycles
    assert rtl.eval_cycles == rtl.eval_model_cycles and rtl.eval_cycles[0] > 0


@pytest.mark.rtl
def test_rtl_runs_a_policy_bit_exact_with_the_golden_machine():
    """One step of 8 images and the evaluations with :data:`POLICY` on the Verilog, the
    memory compared with the golden machine after every program (``check``), the
    PRECISION words between a backward program's input gradient and its update
    included; simulated cycles equal to the cycle model."""
    train, hardware = cnn_rtl(POLICY, train_samples=8, batch_size=8, test_fraction=0.01)
    rtl = train_cnn_program_run(train, hardware, backend="rtl", epochs=1, check=True)
    golden = train_cnn_program_run(train, hardware, backend="golden", epochs=1)
    assert rtl.checked and rtl.train_loss == golden.train_loss
    assert rtl.test_accuracy == golden.test_accuracy
    assert rtl.epoch_cycles == rtl.epoch_model_cycles == golden.epoch_model_cycles
    assert rtl.layer_cycles == golden.layer_cycles


def test_backend_refuses_cnn_entries_that_update_on_the_host():
    from qforge.sim.training.config import TrainConfigError
    spec = tomllib.loads(CNN_RTL.read_text())
    for entry in spec["hardware"]:
        entry.pop("update", None)
    train = train_config_from_dict(dict(spec, train_samples=16, epochs=1))
    with pytest.raises(TrainConfigError, match="int8_hw update the weights on the host"):
        train_all(train, backend="golden")


def test_a_policy_step_runs_each_layer_in_its_formats():
    """One golden step with :data:`POLICY`: fc's weights start as 12-bit codes of unit
    2**-11 (rounded to nearest by hand here); fc's input gradient is the int4 gradient
    times the approximate weights (the golden model's GEMM with those two precisions:
    the program set them); its update saturates at 12 bits; conv2's input gradient
    multiplies its int8 gradient by approximate weights."""
    train, hardware = cnn_rtl(POLICY, batch_size=4)
    trainer = golden_trainer(train, hardware)
    fc_initial = cnn.initial_parameters(train.seed)["fc"][0]
    np.testing.assert_array_equal(trainer.weight_codes()[2],
                                  np.round(fc_initial * 2.0**11).astype(np.int64))
    x, onehot = images(4)
    trainer.step(x, onehot, step=0, lr=0.2)
    read, config = trainer._read, hardware.operand.config
    approx = trainer.arithmetic["fc"].forward.precision
    int4 = trainer.arithmetic["fc"].gradient.precision
    int8 = hardware.operand.precision
    assert (approx.blocks, approx.kept, int4.blocks, int4.kept) == (4, 2, 2, 2)
    g = read("fc_g", 4)
    assert np.abs(g).max() <= 8 and np.abs(g).max() > 0            # int4 codes
    np.testing.assert_array_equal(read("fc_dx", 4),
                                  gemm(g, read("fc_wq").T, config, Precision(int4, approx)))
    assert not np.array_equal(read("fc_dx", 4), g @ read("fc_wq").T)
    assert np.abs(trainer.weight_codes()[2]).max() <= 2**11
    g2, w2 = read("conv2_g"), read("conv2_wq")
    expected = conv2_padded_input_gradient(gemm(g2, w2.T, config,
                                                 Precision(int8, approx)))
    np.testing.assert_array_equal(read("conv2_dx").reshape(4, 10, 10, 8), expected)


def programs_of(trainer):
    """Record ``(what, words)`` of every program ``trainer`` runs."""
    programs, run = [], trainer._run

    def recording(words, what, key):
        programs.append((what, list(words)))
        run(words, what, key)
    trainer._run = recording
    return programs


def test_layer_cycles_of_one_epoch():
    """Two epochs of 28 images (batches of 16 and 12): per layer and pass, the GEMMs and
    cycles of one epoch; each epoch's cycles add up to its epoch_model_cycles; each
    forward program's count is the cycle model's of its words, each backward program's
    input gradient plus weight gradient too; the conv GEMMs are conv2d_gemms'; the
    fused update is counted as the weight gradient, no GEMM in the update pass."""
    train, hardware = cnn_rtl(train_samples=28, test_fraction=0.01, epochs=2)
    result = train_cnn_program_run(train, hardware, backend="golden")
    layers = result.layer_cycles
    assert set(layers) == set(cnn.LAYERS)
    total = sum(entry["cycles"] for passes in layers.values() for entry in passes.values())
    assert result.epoch_model_cycles == [total, total] and total > 0
    for layer in cnn.LAYERS:
        assert layers[layer]["update"] == {"gemms": 0, "cycles": 0}
    assert layers["conv1"]["input_gradient"] == {"gemms": 0, "cycles": 0}
    config = hardware.operand.config
    for layer, pass_ in (("conv1", "forward"), ("conv2", "forward"),
                         ("conv2", "input_gradient")):
        shape, conv = cnn.layer_shapes(1, cnn.IMAGE)[layer]
        sizes = dict(height=shape[1], width=shape[2], in_channels=shape[3],
                     out_channels=conv.outputs, kernel=3, stride=conv.stride, padding=1)
        expected = sum(conv2d_gemms(config, batch=n, **sizes)[pass_] for n in (16, 12))
        assert layers[layer][pass_]["gemms"] == expected, (layer, pass_)
    for layer in cnn.LAYERS:      # sgd_update never splits k = the update's rows
        expected = 0
        for n in (16, 12):
            m, outputs, rows = cnn.gemm_shapes(n)[(layer, "weight_gradient")]
            mc, nc, kc = chunk_sizes(config, m, outputs, rows)
            assert kc == rows
            expected += -(-m // mc) * -(-outputs // nc)
        assert layers[layer]["weight_gradient"]["gemms"] == expected, layer
    assert layers["conv2"]["weight_gradient"]["gemms"] == 3   # 72 rows of W: 64 + 8

    # One step's programs, costed again here.
    trainer = golden_trainer(*cnn_rtl(batch_size=16))
    programs = programs_of(trainer)
    x, onehot = images(16)
    trainer.step(x, onehot, step=0, lr=0.2)
    counted = trainer.layer_cycles(1)
    assert len(programs) == 6
    for what, words in programs:
        layer = what.split()[2]
        passes = ("forward",) if "forward" in what else ("input_gradient",
                                                         "weight_gradient")
        assert program_cycles(config, words).total == sum(
            counted[layer][p]["cycles"] for p in passes), what
        assert sum(decode(word)[0] == Opcode.GEMM for word in words) == sum(
            counted[layer][p]["gemms"] for p in passes), what
    evaluated = trainer.layer_cycles(1)
    trainer.evaluate(x, np.argmax(onehot, axis=1))
    assert trainer.layer_cycles(1) == evaluated          # the evaluation is not counted


def test_a_policy_changes_the_cycles_of_its_layers_only():
    """A policy run's conv1 (the entry's own formats) costs what the uniform run's
    does; conv2's approximate forward operands (2 of 4 blocks: 4 block products per
    MAC, not 16) cost less; the epoch's cycles still add up."""
    uniform, hardware = cnn_rtl(train_samples=16, test_fraction=0.01, epochs=1)
    train, mixed = cnn_rtl(POLICY, train_samples=16, test_fraction=0.01, epochs=1)
    plain = train_cnn_program_run(uniform, hardware).layer_cycles
    result = train_cnn_program_run(train, mixed)
    policy = result.layer_cycles
    assert policy["conv1"] == plain["conv1"]
    assert policy["conv2"]["forward"]["gemms"] == plain["conv2"]["forward"]["gemms"]
    assert policy["conv2"]["forward"]["cycles"] < plain["conv2"]["forward"]["cycles"]
    assert policy["fc"]["forward"]["cycles"] < plain["fc"]["forward"]["cycles"]
    assert result.epoch_model_cycles[0] == sum(
        entry["cycles"] for passes in policy.values() for entry in passes.values())
    assert result.max_abs_weight <= 2 and result.test_accuracy[-1] > 0


def test_layer_arithmetic_is_the_policys():
    train, hardware = cnn_rtl(POLICY, batch_size=4)
    fc = layer_arithmetic(hardware, "fc")
    assert (fc.forward.precision.kept, fc.gradient.bits, fc.weights.bits) == (2, 4, 12)
    assert fc.gradient_rounding == Rounding.NEAREST_EVEN
    assert fc.update_rounding == Rounding.NEAREST_EVEN
    assert layer_arithmetic(hardware, "conv1").forward == hardware.operand
