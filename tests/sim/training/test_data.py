"""The training data (``qforge.sim.training.data``)."""

from qforge.sim.training.data import load_digits_split


def test_digits_split_is_fixed_and_scaled():
    x_train, y_train, x_test, y_test = load_digits_split(0, 0.25)
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert x_train.min() == 0 and x_train.max() == 1
    again = load_digits_split(0, 0.25)
    assert (again[3] == y_test).all() and set(y_train.tolist()) == set(range(10))
