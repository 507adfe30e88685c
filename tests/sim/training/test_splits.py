"""The data splits of a training config are checked before training starts: an empty test
split or a ``train_samples`` beyond the training split is one error naming the field, the
value and the split's size (through ``qforge train`` and :func:`qforge.api.train`),
never an IndexError mid-run or a silent cut."""

import re

import numpy as np
import pytest

from qforge import api
from qforge.sim.training.config import TrainConfig, TrainConfigError, load_train_config
from qforge.sim.training.data import training_data
from tests.cli import run_qforge

BASE = ('hidden = 8\nepochs = 1\nbatch_size = 32\nlearning_rate = 0.3\nseed = 2\n'
        '[[hardware]]\nname = "float32"\nformat = "float32"\n')


@pytest.mark.parametrize("keys, message", [
    ("test_fraction = 0.0001\n",
     "test_fraction = 0.0001: holds out round(1797 * test_fraction) = 0 of the 1797 digits; "
     "the test split needs at least one sample: test_fraction >= 0.0003"),
    ("train_samples = 1500\n",
     "train_samples = 1500: the training split holds 1348 samples (1797 digits less 449 "
     "test samples at test_fraction = 0.25); allowed range is 1 .. 1348"),
    ("test_fraction = 0.9\ntrain_samples = 181\n",
     "train_samples = 181: the training split holds 180 samples (1797 digits less 1617 "
     "test samples at test_fraction = 0.9); allowed range is 1 .. 180"),
])
def test_splits_are_checked_before_training(capsys, tmp_path, keys, message):
    config = tmp_path / "run.toml"
    config.write_text(keys + BASE, encoding="utf-8")
    status, out, err = run_qforge(capsys, "train", "--emulate", "--config", config)
    assert (status, out, err) == (2, "", f"qforge: error: {config}: {message}\n")
    with pytest.raises(api.ConfigError, match=f"^{re.escape(f'{config}: {message}')}$"):
        api.train(config)


def test_the_smallest_fractions_that_hold_a_sample_are_accepted(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("test_fraction = 0.0003\ntrain_samples = 1796\n" + BASE,
                      encoding="utf-8")
    train = load_train_config(config)
    x_train, _, x_test, _ = training_data(train)
    assert (len(x_train), len(x_test)) == (1796, 1)


def test_given_data_is_checked_too():
    x, y = np.zeros((4, 2)), np.zeros(4)
    train = TrainConfig("t", 8, 1, 8, 0.2, 1, (), train_samples=3, source="t.toml")
    with pytest.raises(TrainConfigError, match=r"^t\.toml: the test split holds no samples$"):
        training_data(train, (x, y, x[:0], y[:0]))
    with pytest.raises(TrainConfigError, match=r"^t\.toml: the training split holds no "
                                               r"samples$"):
        training_data(train, (x[:0], y[:0], x, y))
    assert len(training_data(train, (x, y, x, y))[0]) == 3
