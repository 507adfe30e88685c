"""Tests of the golden model of the training numerics (:mod:`qforge.sim.model.quantize`).

* :func:`output_stage` examples worked by hand (the round-shift itself:
  ``test_rounding.py``; the random bits: ``test_random_bits.py``).
* VRQ encode/decode examples and properties; the address-block baseline.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from qforge.sim.model.quantize import (OutputParameters, Rounding, VrqFormat,
                                       address_block_decode, address_block_encode,
                                       output_stage, round_shift, vrq_decode, vrq_encode,
                                       vrq_exponent)
from qforge.sim.model.random_bits import random_words


def test_output_stage_rounds_then_relu_then_saturates():
    """By hand, output_width 8 (-128 .. 127), shift 2 (divide by 4)."""
    acc = np.array([[510, 509, 514, -3, -2, -513, -514, 6]])
    # 127.5 -> 128 (tie to even) -> saturate 127; 127.25 -> 127; 128.5 -> 128 -> 127;
    # -0.75 -> -1; -0.5 -> 0 (tie to even); -128.25 -> -128; -128.5 -> -128 (even);
    # 1.5 -> 2.
    nearest = output_stage(acc, 8, OutputParameters(2, Rounding.NEAREST_EVEN))
    assert nearest.tolist() == [[127, 127, 127, -1, 0, -128, -128, 2]]
    truncate = output_stage(acc, 8, OutputParameters(2, Rounding.TRUNCATE))
    # floors: 127, 127, 128 -> 127, -1, -1, -129 -> -128, -129 -> -128, 1
    assert truncate.tolist() == [[127, 127, 127, -1, -1, -128, -128, 1]]
    relu = output_stage(acc, 8, OutputParameters(2, Rounding.TRUNCATE, relu=True))
    assert relu.tolist() == [[127, 127, 127, 0, 0, 0, 0, 1]]


def test_output_stage_is_round_relu_saturate_with_global_coordinates():
    rng = np.random.default_rng(4)
    acc = rng.integers(-(1 << 20), 1 << 20, (9, 13))
    for shift, rounding, relu in itertools.product((0, 5, 13), Rounding, (False, True)):
        params = OutputParameters(shift, rounding, relu, seed=99, tensor=3)
        rows, cols = np.indices(acc.shape)
        want = round_shift(acc, shift, rounding, seed=99, tensor=3, rows=rows + 20,
                           cols=cols + 30)
        if relu:
            want = np.maximum(want, 0)
        want = np.clip(want, -(1 << 9), (1 << 9) - 1)
        got = output_stage(acc, 10, params, row_offset=20, col_offset=30)
        assert np.array_equal(got, want)
        # A tile cut out of a larger result uses the same global coordinates.
        whole = output_stage(np.pad(acc, ((20, 0), (30, 0))), 10, params)
        assert np.array_equal(whole[20:, 30:], got)


# ---- value-range quantization -------------------------------------------------------------

def _reference_group(x, exponent, fmt):
    e = math.floor(math.log2(abs(x)))
    return min(max((exponent - e) // fmt.range_stride, 0), fmt.ranges - 1)


def test_vrq_examples_by_hand():
    """N = 4, S = 2, G = 3, E = 5 (max 40). Range 0: exponents 4..5, unit 4; range 1:
    2..3, unit 1; range 2: exponents 1 and below, unit 1/4."""
    fmt = VrqFormat(4, 2, 3)
    values = np.array([[40.0, 33.0, -15.6, 6.5, 0.3, -0.1, 0.0, 0.05]])
    sign, code, group = vrq_encode(values, fmt)
    # 40/4 = 10; 33/4 = 8.25 -> 8; 15.6/1 -> 16 = 2**N: moves to range 0 as 2**(N-S) = 4
    # (value 16); 6.5 -> 6 (tie to even); 0.3 * 4 = 1.2 -> 1; 0.1 * 4 = 0.4 -> 0: zero
    # (sign dropped); 0 -> (0, 0, 0); 0.05 * 4 = 0.2 -> 0.
    assert sign.tolist() == [[0, 0, 1, 0, 0, 0, 0, 0]]
    assert code.tolist() == [[10, 8, 4, 6, 1, 0, 0, 0]]
    assert group.tolist() == [[0, 0, 0, 1, 2, 0, 0, 0]]
    assert vrq_decode(sign, code, group, fmt, 5).tolist() == [
        [40.0, 32.0, -16.0, 6.0, 0.25, 0.0, 0.0, 0.0]]
    # Saturation in range 0: 47.9 / 4 = 11.98 -> 12 fits; with N = 3, 47.9 / 8 -> 6 fits,
    # 63.9 (E = 5) / 8 = 7.99 -> 8 = 2**3 saturates to 7.
    s, c, g = vrq_encode(np.array([[63.9]]), VrqFormat(3, 2, 2))
    assert (s.item(), c.item(), g.item()) == (0, 7, 0)


def test_vrq_all_zero_tensor():
    fmt = VrqFormat(4, 2, 3)
    assert vrq_exponent(np.zeros((2, 3))) is None
    sign, code, group = vrq_encode(np.zeros((2, 3)), fmt)
    assert not sign.any() and not code.any() and not group.any()
    assert not vrq_decode(sign, code, group, fmt, None).any()


@pytest.mark.parametrize("fmt", [VrqFormat(4, 2, 3), VrqFormat(6, 3, 4), VrqFormat(3, 1, 8),
                                 VrqFormat(5, 5, 2)])
def test_vrq_round_trip_within_half_a_unit(fmt):
    """Nearest rounding: |decode(encode(x)) - x| <= half the unit of the range x falls
    in (a move up a range keeps the value), except a value saturated at the top code of
    range 0 (within one unit there) and values below the last range (same bound, but
    they keep fewer significant bits). Ranges are chosen by exponent."""
    rng = np.random.default_rng(fmt.code_width * 100 + fmt.ranges)
    values = (rng.choice([-1, 1], (40, 50)) * np.exp2(rng.uniform(-25, 6, (40, 50)))
              * rng.uniform(1, 2, (40, 50)))
    values[0, :4] = [0.0, 63.99, -64.0, 1e-12]
    exponent = vrq_exponent(values)
    sign, code, group = vrq_encode(values, fmt)
    decoded = vrq_decode(sign, code, group, fmt, exponent)
    top_code = (1 << fmt.code_width) - 1
    for (i, j), x in np.ndenumerate(values):
        if x == 0:
            assert (sign[i, j], code[i, j], group[i, j]) == (0, 0, 0)
            continue
        g = _reference_group(x, exponent, fmt)
        unit = 2.0 ** (exponent - g * fmt.range_stride - fmt.code_width + 1)
        error = abs(decoded[i, j] - x)
        if code[i, j] == top_code and group[i, j] == 0:
            assert error <= unit
        else:
            assert error <= unit / 2, (x, decoded[i, j], unit)
        if code[i, j]:
            moved = group[i, j] == g - 1 and code[i, j] == 1 << (fmt.code_width
                                                                 - fmt.range_stride)
            assert group[i, j] == g or moved
            assert sign[i, j] == int(x < 0)
        else:
            assert (sign[i, j], group[i, j]) == (0, 0)


def test_vrq_overflow_moves_up_a_range():
    """N = 2, S = 2, G = 2, integers with E = 5 (max 40). Range 1 holds exponents 2..3
    with unit 2**(5 - 2 - 1) = 4: 15 / 4 = 3.75 rounds to 4 = 2**N, which moves to
    range 0 (unit 16) as 2**(N - S) = 1: the same value 16. 13 / 4 = 3.25 stays."""
    fmt = VrqFormat(2, 2, 2)
    sign, code, group = vrq_encode(np.array([[40, 15, 13]]), fmt)
    assert code.tolist() == [[2, 1, 3]] and group.tolist() == [[0, 0, 1]]
    assert vrq_decode(sign, code, group, fmt, 5).tolist() == [[32.0, 16.0, 12.0]]


def test_vrq_exponent_and_codes_do_not_depend_on_element_order():
    """E is a max over the tensor; an element's code depends only on it and E (with
    nearest or truncation), so permuting the tensor permutes the codes."""
    rng = np.random.default_rng(6)
    fmt = VrqFormat(4, 2, 4)
    values = rng.normal(0, 30, (12, 10)).round(3)
    permutation = rng.permutation(values.size)
    shuffled = values.ravel()[permutation].reshape(15, 8)
    assert vrq_exponent(values) == vrq_exponent(shuffled)
    for rounding in (Rounding.NEAREST_EVEN, Rounding.TRUNCATE):
        original = vrq_encode(values, fmt, rounding=rounding)
        permuted = vrq_encode(shuffled, fmt, rounding=rounding)
        for a, b in zip(original, permuted):
            assert np.array_equal(a.ravel()[permutation], b.ravel())


def test_vrq_integer_and_float_inputs_agree():
    rng = np.random.default_rng(8)
    fmt = VrqFormat(5, 2, 4)
    values = rng.integers(-3000, 3000, (6, 7))
    for rounding in Rounding:
        a = vrq_encode(values, fmt, rounding=rounding, seed=3, tensor=4)
        b = vrq_encode(values.astype(np.float64), fmt, rounding=rounding, seed=3, tensor=4)
        for x, y in zip(a, b):
            assert np.array_equal(x, y), rounding


# ---- address-block baseline ----------------------------------------------------------------

def test_address_block_encode_depends_on_the_block_size():
    """One scale per block of contiguous elements: a large value shrinks the resolution
    of its block's neighbours, so the decoded tensor changes with the block size (what
    ties Cambricon-Q's results to the hardware). VRQ does not have a block size."""
    values = np.array([[100.0, 0.7, -0.3, 0.11, 3.3, -2.2, 50.0, 0.01]])
    decoded = {}
    for block in (1, 2, 4, 8):
        codes, units = address_block_encode(values, 8, block)
        assert len(units) == -(-values.size // block)
        decoded[block] = address_block_decode(codes, units, block)
    assert np.allclose(decoded[1], values, rtol=2 ** -6)       # own scale: 7 bits each
    for small, large in ((1, 2), (2, 4), (4, 8)):
        assert not np.array_equal(decoded[small], decoded[large])
    # Block 2: [100, 0.7] share 100's unit 2**(6 - 8 + 2) = 1: 0.7 -> 1.
    assert decoded[2][0, 1] == 1.0
    # Block 8: one unit for the whole row; 0.11 and 0.01 vanish.
    assert decoded[8][0, 3] == 0.0 and decoded[8][0, 7] == 0.0


def test_address_block_example_by_hand():
    codes, units = address_block_encode(np.array([[40.0, -7.0, 3.0, 1.0]]), 8, 2)
    # Block [40, -7]: E = 5, unit 2**(5 - 8 + 2) = 1/2: 80, -14. Block [3, 1]: E = 1,
    # unit 2**-5: 96, 32.
    assert codes.tolist() == [[80, -14, 96, 32]] and units.tolist() == [-1, -5]
    assert address_block_decode(codes, units, 2).tolist() == [[40.0, -7.0, 3.0, 1.0]]


def test_output_parameters_validate_every_field():
    from qforge.sim.model.spec import load_preset
    config = load_preset("tiny")
    OutputParameters(shift=config.accumulator_width - 1).validate(config)
    bad = [({"shift": config.accumulator_width}, "output.shift"),
           ({"shift": -1}, "output.shift"), ({"seed": 1 << 32}, "output.seed"),
           ({"tensor": 70000}, "output.tensor"), ({"rounding": 3}, "output.rounding"),
           ({"vrq_exponent": 3}, "output.vrq_exponent")]
    for fields, name in bad:
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            OutputParameters(**fields).validate(config)


def _scalar_vrq(x: float, fmt: VrqFormat, exponent: int) -> tuple[int, int, int]:
    """VRQ of one value by the docstring's rule, in exact rationals (nearest even)."""
    if x == 0:
        return 0, 0, 0
    magnitude = Fraction(abs(x))
    element = math.floor(math.log2(abs(x)))
    while Fraction(2) ** element > magnitude:          # log2 of a float, made exact
        element -= 1
    while Fraction(2) ** (element + 1) <= magnitude:
        element += 1
    group = min(max((exponent - element) // fmt.range_stride, 0), fmt.ranges - 1)
    unit = exponent - group * fmt.range_stride - fmt.code_width + 1
    quotient = magnitude / Fraction(2) ** unit
    code = round(quotient)                            # Python's round: ties to even
    if code >= 1 << fmt.code_width:
        if group > 0:
            code, group = 1 << (fmt.code_width - fmt.range_stride), group - 1
        else:
            code = (1 << fmt.code_width) - 1
    if code == 0:
        return 0, 0, 0
    return int(x < 0), code, group


@pytest.mark.parametrize("fmt", [VrqFormat(4, 2, 8), VrqFormat(3, 1, 5), VrqFormat(6, 3, 4)])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e5, 1e-310, 1e300])
def test_vrq_encode_against_a_scalar_rational_reference(fmt, scale):
    """Nearest-even codes of each element by exact rationals, also where a range's unit is
    not a normal float64 (``1e-310``, ``1e300``: the ``np.ldexp`` path)."""
    rng = np.random.default_rng(11)
    values = rng.standard_normal((6, 7)) * scale
    values[rng.random(values.shape) < 0.3] = 0
    exponent = vrq_exponent(values)
    sign, code, group = vrq_encode(values, fmt, exponent)
    for index in np.ndindex(values.shape):
        assert (sign[index], code[index], group[index]) == \
            _scalar_vrq(float(values[index]), fmt, exponent), (index, values[index])


@pytest.mark.parametrize("integers", [False, True])
def test_encoders_with_drawn_words_equal_drawing_them(integers):
    """``words=`` (a training step's bulk-drawn bits) gives what drawing them gives."""
    rng = np.random.default_rng(12)
    values = np.maximum(rng.standard_normal((9, 5)) * 40, 0)
    values = np.round(values).astype(np.int64) if integers else values
    words = random_words(3, 4, *np.indices(values.shape))
    fmt = VrqFormat(4, 2, 8)
    for got, want in zip(vrq_encode(values, fmt, rounding=Rounding.STOCHASTIC, seed=3,
                                    tensor=4, words=words),
                         vrq_encode(values, fmt, rounding=Rounding.STOCHASTIC, seed=3,
                                    tensor=4)):
        assert (got == want).all()
    for block in (7, values.size):
        got = address_block_encode(values, 8, block, rounding=Rounding.STOCHASTIC, seed=3,
                                   tensor=4, words=words)
        want = address_block_encode(values, 8, block, rounding=Rounding.STOCHASTIC, seed=3,
                                    tensor=4)
        assert all((g == w).all() for g, w in zip(got, want))
