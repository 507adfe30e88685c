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


@pytest.mark.parametrize("kept, selection", [(1, "DYNAMIC"), (2, "DYNAMIC"), (3, "STATIC"),
                                             (4, "DYNAMIC")])
def test_an_operand_approximated_as_stored_multiplies_as_its_codes(kept, selection):
    """``Quantized.approximate`` applies the kept-block rule once (before a gather); every
    GEMM reading it, transposed or gathered, equals the GEMM on the codes, and the rule
    is idempotent (applying it to approximated codes changes nothing)."""
    from qforge.sim.model.numerics import Selection, operand_value
    from qforge.sim.model.spec import load_preset
    from qforge.sim.training.emulated_gemm import emulated_matmul
    from qforge.sim.training.formats import OperandFormat, quantize_operand
    config = load_preset("default")
    fmt = OperandFormat("int", config, bits=8, kept=kept, selection=Selection[selection])
    rng = np.random.default_rng(kept)
    a = quantize_operand(rng.standard_normal((6, 5)), fmt)
    b = quantize_operand(rng.standard_normal((5, 4)), fmt)
    approximated = a.approximate()
    assert approximated.approximated == (kept < 4)
    np.testing.assert_array_equal(emulated_matmul(approximated, b), emulated_matmul(a, b))
    np.testing.assert_array_equal(emulated_matmul(b.T, approximated.T),
                                  emulated_matmul(b.T, a.T))
    np.testing.assert_array_equal(approximated.values(), a.values())
    again = operand_value(approximated.integers, config, fmt.precision)
    np.testing.assert_array_equal(again, approximated.integers)
    assert approximated.approximate() is approximated
