"""Rounding (:mod:`qforge.sim.model.rounding`): the round-shift worked by hand and
checked against exact rationals, stochastic rounding unbiased (every threshold derived
in the test's docstring), and the rounding of scaled reals agreeing with the round-shift.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qforge.sim.model.errors import InputError
from qforge.sim.model.random_bits import random_bits, random_words
from qforge.sim.model.rounding import Rounding, round_scaled, round_shift
from tests.fuzz import fuzz_settings
from tests.sim.model.random_bits_reference import scalar_random_bits


# ---- stochastic rounding is unbiased ----------------------------------------------------

def _fraction_samples(shift, fraction_numerator, n, rng):
    """n values q * 2**shift + f with random integer q and fixed f: dropped fraction
    f / 2**shift; coordinates (i // 512, i % 512)."""
    q = rng.integers(-1000, 1000, n)
    values = q * (1 << shift) + fraction_numerator
    index = np.arange(n)
    return values, q, index // 512, index % 512


@pytest.mark.parametrize("shift", [1, 3, 8, 13, 20, 31, 32, 40])
def test_stochastic_rounding_is_unbiased(shift):
    """For a value with dropped fraction phi (in LSBs of the output), stochastic rounding
    returns floor + 1 with probability phi: the error e = result - value / 2**shift is
    1 - phi with probability phi and -phi otherwise, mean 0 and variance
    phi (1 - phi) <= 1/4. Over n independent samples the mean error has sd
    <= 2**-1 / sqrt(n); bound: 5 sd = 2.5 / sqrt(n) (n = 2**18: 0.0049). For
    shift <= 32 the probability is exactly phi (the top ``shift`` random bits are
    uniform on [0, 2**shift)); for shift > 32 it is phi rounded up to a multiple of
    2**-32, a bias below 2**-32. Truncation's bias is -phi and nearest-even's is
    -phi for phi < 1/2 (1 - phi above): both far outside the bound."""
    rng = np.random.default_rng(shift)
    n = 1 << 18
    bound = 2.5 / math.sqrt(n)
    numerators = {1, (1 << shift) - 1, (1 << shift) // 3, (1 << shift) // 2}
    if shift > 2:
        numerators |= {(1 << shift) // 8, int(rng.integers(1, 1 << shift))}
    for numerator in sorted(numerators):
        phi = numerator / 2 ** shift
        values, q, rows, cols = _fraction_samples(shift, numerator, n, rng)
        seed = int(rng.integers(0, 1 << 32))
        result = round_shift(values, shift, Rounding.STOCHASTIC, seed=seed, tensor=shift,
                             rows=rows, cols=cols)
        assert np.all((result == q) | (result == q + 1))
        error = (result - q).mean() - phi                 # mean of result - value/2**s
        assert abs(error) < bound, (numerator, error)
        truncated = round_shift(values, shift, Rounding.TRUNCATE)
        assert (truncated - q).mean() - phi == pytest.approx(-phi)
        nearest = round_shift(values, shift, Rounding.NEAREST_EVEN)
        nearest_bias = (nearest - q).mean() - phi
        if phi != 0.5:                                    # ties: even q up, odd q down
            assert nearest_bias == pytest.approx(-phi if phi < 0.5 else 1 - phi)
        if min(phi, 1 - phi) > 2 * bound:                 # biased rules are detectable
            assert abs((truncated - q).mean() - phi) > bound
            assert phi == 0.5 or abs(nearest_bias) > bound


def test_stochastic_rounding_unbiased_on_random_values():
    """Random 24-bit accumulators, shift 10: the mean of result - value / 2**10 over
    n = 2**18 elements is within 2.5 / sqrt(n) of 0 (per-element error sd <= 1/2, as
    above); truncation is biased by about -1/2."""
    rng = np.random.default_rng(9)
    n = 1 << 18
    values = rng.integers(-(1 << 23), 1 << 23, n)
    rows, cols = np.arange(n) // 1024, np.arange(n) % 1024
    result = round_shift(values, 10, Rounding.STOCHASTIC, seed=77, tensor=1, rows=rows,
                         cols=cols)
    error = float((result - values / 2 ** 10).mean())
    assert abs(error) < 2.5 / math.sqrt(n), error
    truncated = round_shift(values, 10, Rounding.TRUNCATE)
    assert float((truncated - values / 2 ** 10).mean()) == pytest.approx(-0.5, abs=0.01)


# ---- round_shift and output_stage by hand -------------------------------------------------

#: value, shift, nearest-even, truncate (floor); worked by hand: value / 2**shift.
ROUND_SHIFT_CASES = [
    (12, 3, 2, 1),       # 1.5: tie, up to even 2; floor 1
    (20, 3, 2, 2),       # 2.5: tie, down to even 2
    (13, 3, 2, 1),       # 1.625
    (11, 3, 1, 1),       # 1.375
    (4, 3, 0, 0),        # 0.5: tie to even 0
    (7, 3, 1, 0),        # 0.875
    (-4, 3, 0, -1),      # -0.5: tie to even 0; floor -1
    (-12, 3, -2, -2),    # -1.5: tie to even -2
    (-20, 3, -2, -3),    # -2.5: tie to even -2; floor -3
    (-11, 3, -1, -2),    # -1.375
    (-13, 3, -2, -2),    # -1.625
    (-1, 1, 0, -1),      # -0.5
    (1, 1, 0, 0),        # 0.5
    (3, 1, 2, 1),        # 1.5
    (5, 0, 5, 5),        # shift 0: unchanged
    (-5, 0, -5, -5),
    ((1 << 40) + (1 << 39), 40, 2, 1),   # 1.5 at shift 40
    (-(1 << 26), 27, 0, -1),             # -0.5 at the top of a 27-bit accumulator
    (-(1 << 26) - 1, 27, -1, -1),        # just below -0.5
]


@pytest.mark.parametrize("value,shift,nearest,truncate", ROUND_SHIFT_CASES)
def test_round_shift_by_hand(value, shift, nearest, truncate):
    assert round_shift([value], shift, Rounding.NEAREST_EVEN).tolist() == [nearest]
    assert round_shift([value], shift, Rounding.TRUNCATE).tolist() == [truncate]


def test_stochastic_round_shift_by_hand():
    """Element (row 2, col 5) of seed 1, tensor 2: r = the top ``s`` of its 32 random
    bits (``bits << (s - 32)`` for s > 32); result = (value + r) >> s."""
    bits = scalar_random_bits(1, 2, 2, 5)
    for value, shift in ((12, 3), (-11, 3), (1000, 7), (5, 0), (3 << 35, 36),
                         ((1 << 33) + 12345, 34)):
        r = bits >> (32 - shift) if shift <= 32 else bits << (shift - 32)
        want = (value + r) >> shift
        got = round_shift([value], shift, Rounding.STOCHASTIC, seed=1, tensor=2, rows=[2],
                          cols=[5])
        assert got.tolist() == [want], (value, shift)
        # Rounded to one of the two neighbours, exact values unchanged.
        assert math.floor(value / 2 ** shift) <= want <= math.ceil(value / 2 ** shift)
    assert round_shift([40], 3, Rounding.STOCHASTIC, seed=1, tensor=2, rows=[2],
                       cols=[5]).tolist() == [5]


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1 << 63), (1 << 63) - 1), st.integers(0, 63), st.integers(0, 1000),
       st.integers(0, 1000))
@example((1 << 63) - 1, 62, 0, 0)
@example(-(1 << 63), 63, 5, 7)
def test_round_shift_is_exact_over_all_of_int64(value, shift, row, col):
    """Every rule, every int64 value and every shift 0 .. 63 (issue 14, item 9: the
    stochastic sum overflowed near 2**63): the result is the Python-integer
    ``(value + r) >> shift`` with ``r`` from the element's random bits (scalar
    reference), floor and nearest-even the exact rational's."""
    bits = scalar_random_bits(3, 4, row, col)
    r = bits >> (32 - shift) if shift <= 32 else bits << (shift - 32)
    quotient = Fraction(value, 1 << shift)
    got = {rule: round_shift([value], shift, rule, seed=3, tensor=4, rows=[row],
                             cols=[col]).tolist()[0] for rule in Rounding}
    assert got == {Rounding.STOCHASTIC: (value + r) >> shift,
                   Rounding.TRUNCATE: math.floor(quotient),
                   Rounding.NEAREST_EVEN: nearest_even(quotient)}


@pytest.mark.parametrize("values, shift, message", [
    ([1.5], 1, "round_shift: values = [1.5]: must be int64 integers, not float64"),
    ([True], 1, "round_shift: values = [True]: must be int64 integers, not bool"),
    ([1 << 63], 1, "round_shift: values: out of the int64 range (-9223372036854775808 .. "
                   "9223372036854775807)"),
    ([1], 64, "round_shift: shift = 64: allowed range is 0 .. 63"),
    ([1], -1, "round_shift: shift = -1: allowed range is 0 .. 63"),
    ([1], 2.0, "round_shift: shift = 2.0: allowed range is 0 .. 63"),
])
def test_round_shift_refuses_inputs_outside_its_contract(values, shift, message):
    with pytest.raises(InputError) as error:
        round_shift(values, shift, Rounding.TRUNCATE)
    assert str(error.value) == message


def test_stochastic_round_shift_needs_coordinates():
    with pytest.raises(ValueError):
        round_shift([5], 2, Rounding.STOCHASTIC)


# ---- properties against exact rationals -----------------------------------------------

def nearest_even(value: Fraction) -> int:
    """The nearest integer to ``value``, ties to the even one (exact)."""
    floor = math.floor(value)
    rest = value - floor
    return floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1))


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1 << 62), (1 << 62) - 1), st.integers(0, 62))
def test_round_shift_is_the_exact_quotient_rounded(value, shift):
    quotient = Fraction(value, 1 << shift)
    assert round_shift([value], shift, Rounding.TRUNCATE).tolist() == [math.floor(quotient)]
    assert round_shift([value], shift, Rounding.NEAREST_EVEN).tolist() == \
        [nearest_even(quotient)]


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 62), st.integers(0, 1000),
       st.integers(0, 1000))
def test_stochastic_round_shift_is_one_of_the_two_neighbours(value, shift, row, col):
    quotient = Fraction(value, 1 << shift)
    got = round_shift([value], shift, Rounding.STOCHASTIC, seed=3, tensor=4, rows=[row],
                      cols=[col]).tolist()[0]
    assert math.floor(quotient) <= got <= math.ceil(quotient)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1 << 20), 1 << 20), st.integers(0, 32),
       st.sampled_from(list(Rounding)), st.integers(0, 5000), st.integers(0, 5000))
def test_round_scaled_agrees_with_round_shift_on_integers(value, shift, rounding, row, col):
    """``round_scaled(v / 2**s)`` is ``round_shift(v, s)`` for every rule: for stochastic
    rounding ``floor(v / 2**s + r / 2**32) == (v + (r >> (32 - s))) >> s`` because ``v``
    is an integer (exact in float64 for ``|v| <= 2**20``, ``s <= 32``)."""
    scaled = np.array([[value / 2 ** shift]])
    rows, cols = np.array([[row]]), np.array([[col]])
    by_float = round_scaled(scaled, rounding, seed=9, tensor=1, rows=rows, cols=cols)
    by_shift = round_shift(np.array([[value]]), shift, rounding, seed=9, tensor=1,
                           rows=rows, cols=cols)
    assert by_float.tolist() == by_shift.astype(np.float64).tolist()


@settings(max_examples=200, deadline=None)
@given(st.fractions(min_value=-(1 << 30), max_value=1 << 30, max_denominator=1 << 20),
       st.integers(0, 3000), st.integers(0, 3000))
def test_round_scaled_against_exact_rationals(value, row, col):
    """Nearest-even and truncation exactly; stochastic: ``floor(value + r / 2**32)``
    with the element's 32 random bits ``r``, computed exactly."""
    scaled = np.array([[float(value)]])
    value = Fraction(float(value))                    # the float the rule receives
    assert round_scaled(scaled, Rounding.TRUNCATE).tolist() == [[math.floor(value)]]
    assert round_scaled(scaled, Rounding.NEAREST_EVEN).tolist() == [[nearest_even(value)]]
    bits = int(random_bits(5, 6, np.array([row]), np.array([col]))[0])
    got = round_scaled(scaled, Rounding.STOCHASTIC, seed=5, tensor=6, rows=np.array([[row]]),
                       cols=np.array([[col]])).tolist()
    assert got == [[math.floor(value + Fraction(bits, 1 << 32))]]


def test_round_scaled_uses_the_elements_row_and_column_by_default():
    scaled = np.full((3, 4), 0.5)
    rows, cols = np.indices(scaled.shape)
    assert (round_scaled(scaled, Rounding.STOCHASTIC, seed=2, tensor=3)
            == round_scaled(scaled, Rounding.STOCHASTIC, seed=2, tensor=3, rows=rows,
                            cols=cols)).all()


def test_round_scaled_rejects_codes_that_are_no_rounding():
    with pytest.raises(ValueError, match="rounding = 3: allowed NEAREST_EVEN, TRUNCATE, "
                                         "STOCHASTIC"):
        round_scaled(np.zeros((1, 1)), 3)


def test_rounding_codes_are_the_isa_codes():
    assert [(rule.name, int(rule)) for rule in Rounding] == [
        ("NEAREST_EVEN", 0), ("TRUNCATE", 1), ("STOCHASTIC", 2)]


@fuzz_settings
@given(st.lists(st.sampled_from([0.0, 3.0, -2.0, 0.5, -1.25, 7.75, 1e-9]), min_size=1,
                max_size=40), st.integers(0, 1 << 20))
def test_stochastic_rounding_with_drawn_words_equals_drawing_them(values, key):
    """Given the elements' words (``words=``, as a training step draws them in bulk) the
    result is the one drawn here; whole numbers (which draw no bits) stay themselves."""
    scaled = np.array([values])
    words = random_words(key, 3, *np.indices(scaled.shape))
    got = round_scaled(scaled, Rounding.STOCHASTIC, seed=key, tensor=3, words=words)
    assert (got == round_scaled(scaled, Rounding.STOCHASTIC, seed=key, tensor=3)).all()
    whole = scaled == np.floor(scaled)
    assert (got[whole] == scaled[whole]).all()
    integers = np.array([[int(v * 4) for v in values]])
    rows, cols = np.indices(integers.shape)
    assert (round_shift(integers, 2, Rounding.STOCHASTIC, words=words)
            == round_shift(integers, 2, Rounding.STOCHASTIC, seed=key, tensor=3, rows=rows,
                           cols=cols)).all()


@pytest.mark.parametrize("words", [np.zeros((1, 3), dtype=np.uint32),
                                   np.zeros((1, 2), dtype=np.int64)])
def test_drawn_words_must_match_the_values(words):
    with pytest.raises(InputError, match=r"words: .* must be the elements' uint32 random "
                                         r"words, shape \(1, 2\)"):
        round_scaled(np.zeros((1, 2)), Rounding.STOCHASTIC, words=words)
    with pytest.raises(InputError, match="must be the elements' uint32 random words"):
        round_shift(np.ones((1, 2), dtype=np.int64), 1, Rounding.STOCHASTIC, words=words)
