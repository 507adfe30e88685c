"""Training as programs (qforge.sim.training.hardware): the update rule checked against an
independent numpy computation, the golden and RTL backends step by step, the cycle
model, and the command line's errors."""

import dataclasses

import numpy as np
import pytest

from qforge.sim.model.random_bits import random_bits
from qforge.sim.runtime import Runtime
from qforge.sim.training.config import (TrainConfigError, default_config_path,
                                        load_train_config, rtl_config_path,
                                        train_config_from_dict)
from qforge.sim.training.data import load_digits_split
from qforge.sim.training.hardware import ProgramTrainer, train_program_run
from qforge.sim.training.loop import train_all
from qforge.sim.training.network import with_ones
from tests.cli import run_qforge


def rtl_train(**changes):
    train = load_train_config(rtl_config_path())
    return dataclasses.replace(train, **changes), train.hardware[1]


def test_the_update_is_stochastic_rounding_of_w_plus_the_scaled_gradient():
    """One step on the golden backend; the W1 update recomputed with numpy from the
    operand codes the step wrote: ``W + floor((G + r) / 2**s)``, clamped, where ``r`` is
    the top ``s`` of the element's 32 random bits of the update's key. The expected
    values do not come from the golden machine."""
    train, hardware = rtl_train(train_samples=32)
    runtime = Runtime(hardware.operand.config, "golden")
    x_train, y_train, x_test, _ = load_digits_split()
    trainer = ProgramTrainer(train, hardware, runtime, test_samples=len(x_test))
    trainer.initialize()
    w1_before = trainer.weight_codes()[0]
    trainer.step(with_ones(x_train[:32]), np.eye(10)[y_train[:32]], step=0, lr=0.5)
    x_codes = trainer._read("x", 32)
    dz1_codes = trainer._read("dz1", 32)
    gradient = x_codes.T @ dz1_codes
    assert np.abs(gradient).max() > 0
    shift = trainer.shifts["w1"]
    assert 0 < shift <= 26
    seed, tensor = trainer._key("update_w1", 0)
    rows, cols = np.indices(gradient.shape)
    r = random_bits(seed, tensor, rows, cols).astype(np.int64) >> (32 - shift)
    expected = np.clip(w1_before + ((gradient + r) >> shift), -2**15, 2**15 - 1)
    np.testing.assert_array_equal(trainer.weight_codes()[0], expected)
    assert not np.array_equal(expected, w1_before)      # the update did something
    # Round-to-nearest instead of stochastic rounding would give other weights.
    nearest = np.clip(w1_before + np.round(gradient / 2**shift).astype(np.int64),
                      -2**15, 2**15 - 1)
    assert not np.array_equal(nearest, expected)


def test_golden_programs_train_and_report_the_model_cycles():
    train, hardware = rtl_train(train_samples=256)
    result = train_program_run(train, hardware, epochs=2)
    assert len(result.test_accuracy) == 3 and result.test_accuracy[-1] > 0.5
    assert result.train_loss[2] < result.train_loss[1]
    # The golden machine counts no cycles; the model's prediction is the same for both
    # epochs (the same program shapes: 8 steps of 5 GEMMs each).
    assert result.epoch_cycles == [0, 0]
    assert result.epoch_model_cycles[0] == result.epoch_model_cycles[1] > 0


@pytest.mark.rtl
def test_rtl_training_is_bit_exact_with_the_golden_machine_step_by_step():
    """Three steps and the evaluation on the generated Verilog, the memory compared with
    the golden machine after every program (``check``); the same accuracy and loss as
    the golden run; simulated cycles equal to the cycle model."""
    # 3 steps; a test set of 90 samples keeps the two evaluations short.
    train, hardware = rtl_train(train_samples=96, test_fraction=0.05)
    rtl = train_program_run(train, hardware, backend="rtl", epochs=1, check=True)
    golden = train_program_run(train, hardware, backend="golden", epochs=1)
    assert rtl.checked
    assert rtl.test_accuracy == golden.test_accuracy
    assert rtl.train_loss == golden.train_loss and rtl.test_loss == golden.test_loss
    assert rtl.epoch_cycles == rtl.epoch_model_cycles == golden.epoch_model_cycles
    assert rtl.eval_cycles == rtl.eval_model_cycles and rtl.eval_cycles[0] > 0


def test_backend_needs_hardware_updates():
    train = load_train_config()          # digits.toml: float updates
    with pytest.raises(TrainConfigError, match="update the weights on the host"):
        train_all(train, epochs=1, backend="golden")


def test_update_hardware_only_with_int_operands():
    entry = {"name": "v", "format": "vrq", "code_width": 4, "range_stride": 2,
             "ranges": 8, "update": "hardware"}
    with pytest.raises(TrainConfigError, match=r"update = 'hardware': only with format"):
        train_config_from_dict({"name": "x", "hidden": 8, "epochs": 1, "batch_size": 8,
                                "learning_rate": 0.1, "seed": 1, "hardware": [entry]})


def test_command_line_backend_golden(capsys, tmp_path):
    code, out, _ = run_qforge(capsys, "train", "--backend", "golden", "--epochs", "1",
                              "--plot", tmp_path / "p.png")
    assert code == 0 and "int8_hw | golden | 1 |" in out and "(model)" in out
    code, _, err = run_qforge(capsys, "train", "--backend", "golden", "--config",
                              default_config_path(), "--epochs", "1")
    assert code == 2
    assert "update the weights on the host" in err
