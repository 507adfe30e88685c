"""Training number formats (``qforge.sim.training.formats``): the weight-update rounding
and saturation, and the random keys of every tensor."""

import numpy as np
import pytest

from qforge.sim.model.rounding import Rounding
from qforge.sim.training.formats import SLOTS, WeightFormat, random_key


def test_stochastic_weight_update_is_unbiased_and_nearest_loses_small_updates():
    fmt = WeightFormat(8, 2.0)
    codes = np.full((200, 250), 17, dtype=np.int64)
    update = 0.3 * fmt.unit                           # below half an LSB
    target = fmt.value(codes) - update
    nearest = fmt.quantize(target, Rounding.NEAREST_EVEN)
    assert (nearest == codes).all()                   # the update is lost entirely
    draws = [fmt.quantize(target, Rounding.STOCHASTIC, seed=1, tensor=t) for t in range(4)]
    # 50000 Bernoulli(0.3) draws per tensor: standard deviation of the mean 0.002.
    for draw in draws:
        assert abs(draw.mean() - (17 - 0.3)) < 0.01
    assert len({draw.tobytes() for draw in draws}) == 4   # other tensors, other bits
    sr = fmt.quantize(target, Rounding.STOCHASTIC, seed=1, tensor=0)
    assert set(np.unique(sr)) == {16, 17}             # rounds to a neighbour only


def test_weight_format_saturates():
    fmt = WeightFormat(6, 1.0)
    codes = fmt.quantize(np.array([[5.0, -5.0, 0.999]]), Rounding.STOCHASTIC, seed=0, tensor=0)
    assert codes.tolist() == [[31, -32, 31]]


def test_random_keys_never_repeat_within_or_across_seeds():
    keys = {random_key(seed, counter) for seed in (0, 1, 65535)
            for counter in (0, 1, 65535, 65536, 123456789, 2**32 - 1)}
    assert len(keys) == 18
    with pytest.raises(ValueError, match="seed = 65536"):
        random_key(65536, 0)
    assert len(SLOTS) == 8
