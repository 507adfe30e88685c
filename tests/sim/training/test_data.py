"""The training data (``qforge.sim.training.data``)."""

import numpy as np

from qforge.sim.training.data import load_digits_split


def test_digits_split_is_fixed_and_scaled():
    x_train, y_train, x_test, y_test = load_digits_split(0, 0.25)
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert x_train.min() == 0 and x_train.max() == 1
    again = load_digits_split(0, 0.25)
    assert (again[3] == y_test).all() and set(y_train.tolist()) == set(range(10))


def test_digits_split_is_scikit_learns_digits_permuted():
    """Byte for byte what the MLP has always trained on: scikit-learn's ``data / 16``,
    permuted by ``default_rng(split_seed)``, the first ``round(1797 * fraction)`` held
    out (written here independently of the module)."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    for split_seed, test_fraction in ((0, 0.25), (7, 0.5)):
        order = np.random.default_rng(split_seed).permutation(1797)
        test = int(round(1797 * test_fraction))
        x, y = digits.data / 16.0, digits.target.astype(np.int64)
        expected = (x[order[test:]], y[order[test:]], x[order[:test]], y[order[:test]])
        for got, want in zip(load_digits_split(split_seed, test_fraction), expected):
            assert (got.dtype, got.shape) == (want.dtype, want.shape)
            assert got.tobytes() == want.tobytes()
