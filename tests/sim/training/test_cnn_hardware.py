"""The CNN trained as programs (qforge.sim.training.cnn_hardware): the golden machine's
quantities against the emulator's forward pass and against numpy recomputations of the
integer GEMMs and the fused update; a tiny run on the Verilog with --check."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

from qforge.sim.model.random_bits import random_bits
from qforge.sim.runtime import Runtime
from qforge.sim.training import cnn
from qforge.sim.training.cnn_hardware import CnnProgramTrainer, train_cnn_program_run
from qforge.sim.training.config import train_config_from_dict
from qforge.sim.training.data import load_digits_split
from qforge.sim.training.loop import train_all

CNN_RTL = Path(__file__).resolve().parents[3] / "gen" / "train" / "cnn_rtl.toml"


def cnn_rtl(**changes):
    """gen/train/cnn_rtl.toml with ``changes``: ``(TrainConfig, the int8_hw entry)``."""
    spec = tomllib.loads(CNN_RTL.read_text())
    spec.update(changes)
    train = train_config_from_dict(spec, source=str(CNN_RTL))
    hardware = train.hardware[1]
    assert hardware.update == "hardware"
    return train, hardware


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


def test_forward_equals_the_emulators():
    """The programs' logits and pre-activations of a training forward pass equal the
    emulated CNN's (same initial weights, keys and stochastic quantization; its GEMMs by
    im2col and the exact emulated matmul, not by the conv2d blocks)."""
    train, hardware = cnn_rtl(batch_size=4)
    trainer = golden_trainer(train, hardware)
    x, _ = images(4)
    logits, saved = trainer.forward(x, step=3)
    arithmetic = cnn.LayerArithmetic(hardware.operand, hardware.rounding, hardware.operand,
                                     hardware.rounding, hardware.weights,
                                     hardware.update_rounding)
    ops = cnn.EmulatedOps({layer: arithmetic for layer in cnn.LAYERS},
                          cnn.initial_parameters(train.seed), train.seed)
    expected, expected_saved = cnn.Network(ops).forward(x, 3, True)
    np.testing.assert_array_equal(logits, expected)
    for layer in cnn.LAYERS:
        np.testing.assert_array_equal(saved[layer][2], expected_saved[layer][2])


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
    expected = np.zeros((4, 10, 10, 8), dtype=np.int64)
    products = (g2 @ w2.T).reshape(4, 4, 4, 3, 3, 8)
    for oy in range(4):
        for ox in range(4):
            for i in range(3):
                for j in range(3):
                    expected[:, 2 * oy + i, 2 * ox + j] += products[:, oy, ox, i, j]
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


def test_backend_refuses_cnn_entries_that_update_on_the_host():
    from qforge.sim.training.config import TrainConfigError
    spec = tomllib.loads(CNN_RTL.read_text())
    for entry in spec["hardware"]:
        entry.pop("update", None)
    train = train_config_from_dict(dict(spec, train_samples=16, epochs=1))
    with pytest.raises(TrainConfigError, match="int8_hw update the weights on the host"):
        train_all(train, backend="golden")
