"""The training data: scikit-learn's digits, split into training and test sets, and the
minibatch order of every epoch."""

from __future__ import annotations

import numpy as np

from qforge.sim.training.config import TrainConfig

__all__ = ["load_digits_split", "training_data", "batches"]

_DIGITS_CACHE: dict = {}


def load_digits_split(split_seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's digits (ships with the package, no download): ``(x_train,
    y_train, x_test, y_test)``, pixels scaled to ``[0, 1]``, split by a permutation from
    ``numpy.random.default_rng(split_seed)``; the test set is the first
    ``round(1797 * test_fraction)`` permuted samples."""
    if "digits" not in _DIGITS_CACHE:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ValueError("dataset = 'digits': needs scikit-learn (its digits ship with "
                             "the package); install it with `pip install -e '.[dev]'`") \
                from None
        digits = load_digits()
        _DIGITS_CACHE["digits"] = (digits.data / 16.0, digits.target.astype(np.int64))
    x, y = _DIGITS_CACHE["digits"]
    order = np.random.default_rng(split_seed).permutation(len(x))
    test = int(round(len(x) * test_fraction))
    return x[order[test:]], y[order[test:]], x[order[:test]], y[order[:test]]


def training_data(train: TrainConfig, data=None):
    """``(x_train, y_train, x_test, y_test)`` of a run: ``data`` or the split of
    :func:`load_digits_split`, the training set cut to ``train.train_samples``."""
    if data is None:
        data = load_digits_split(train.split_seed, train.test_fraction)
    x_train, y_train, x_test, y_test = data
    if train.train_samples is not None:
        x_train, y_train = x_train[:train.train_samples], y_train[:train.train_samples]
    return x_train, y_train, x_test, y_test


def batches(count: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The minibatches of epoch ``epoch``: a permutation of ``range(count)`` from
    ``numpy.random.default_rng([seed, epoch])`` cut into ``batch_size`` pieces (the last
    may be short).

    >>> [len(b) for b in batches(10, 4, 1, 1)]
    [4, 4, 2]
    """
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]
