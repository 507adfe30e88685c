"""Two's-complement ranges and saturation (:mod:`qforge.sim.model.saturation`)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.sim.model.saturation import saturate, signed_range


def test_signed_range_by_hand():
    assert [signed_range(bits) for bits in (1, 2, 8, 64)] == [
        (-1, 0), (-2, 1), (-128, 127), (-(2 ** 63), 2 ** 63 - 1)]


@given(st.integers(1, 64))
def test_signed_range_holds_exactly_the_bits_bit_values(bits):
    low, high = signed_range(bits)
    assert high - low + 1 == 2 ** bits and low == -high - 1
    assert high.bit_length() == bits - 1 and (-low - 1).bit_length() == bits - 1


@settings(max_examples=200)
@given(st.lists(st.integers(-(1 << 62), 1 << 62), min_size=1, max_size=20),
       st.integers(1, 63))
def test_saturate_is_min_of_max(values, bits):
    low, high = signed_range(bits)
    assert saturate(np.array(values, dtype=np.int64), bits).tolist() == [
        min(max(v, low), high) for v in values]


def test_saturate_keeps_floats_so_huge_values_convert():
    assert saturate(np.array([1e300, -1e300, 2.5]), 8).tolist() == [127.0, -128.0, 2.5]
