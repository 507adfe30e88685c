"""The training data of a run: its training and test arrays (from a
:class:`~qforge.sim.training.datasets.Dataset`, by default scikit-learn's digits), and the
minibatch order of every epoch."""

from __future__ import annotations

import numpy as np

from qforge.sim.training.config import TrainConfig, TrainConfigError
from qforge.sim.training.datasets import Dataset, digits_dataset

__all__ = ["load_digits_split", "training_data", "batches"]


def load_digits_split(split_seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's digits (ships with the package, no download): ``(x_train,
    y_train, x_test, y_test)``, pixels scaled to ``[0, 1]``, split by a permutation from
    ``numpy.random.default_rng(split_seed)``; the test set is the first
    ``round(1797 * test_fraction)`` permuted samples
    (:func:`~qforge.sim.training.config.split_sizes`). The flat form of
    :func:`~qforge.sim.training.datasets.digits_dataset`: each row is an image's 64
    pixels row-major."""
    return digits_dataset(split_seed, test_fraction).arrays(flat=True)


def training_data(train: TrainConfig, data=None, *, flat: bool = True):
    """``(x_train, y_train, x_test, y_test)`` of a run: ``data`` (those four arrays, used
    as they are, or a :class:`~qforge.sim.training.datasets.Dataset`, whose images are
    flattened to ``N x (H * W * C)`` rows when ``flat``, as
    :meth:`~qforge.sim.training.datasets.Dataset.arrays` does) or by default the split of
    :func:`load_digits_split`, the training set cut to its first
    ``train.train_samples``. A split without samples, or one shorter than
    ``train_samples``, is a :class:`TrainConfigError` (never a silent cut).

    >>> x = np.zeros((4, 2)); y = np.zeros(4)
    >>> training_data(TrainConfig("t", 8, 1, 8, 0.2, 1, (), train_samples=5),
    ...               (x, y, x[:1], y[:1]))
    Traceback (most recent call last):
    ...
    qforge.sim.training.config.TrainConfigError: config: train_samples = 5: the training split holds 4 samples; allowed range is 1 .. 4
    """
    if data is None:
        data = load_digits_split(train.split_seed, train.test_fraction)
    if isinstance(data, Dataset):
        data = data.arrays(flat=flat)
    x_train, y_train, x_test, y_test = data
    for split, samples in (("training", len(x_train)), ("test", len(x_test))):
        if samples < 1:
            raise TrainConfigError(f"{train.source}: the {split} split holds no samples")
    if train.train_samples is not None and train.train_samples > len(x_train):
        raise TrainConfigError(f"{train.source}: train_samples = {train.train_samples}: "
                               f"the training split holds {len(x_train)} samples; allowed "
                               f"range is 1 .. {len(x_train)}")
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
