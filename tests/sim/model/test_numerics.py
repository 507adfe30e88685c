"""Tests of the golden model (:mod:`qforge.sim.model.numerics`).

The key check is :func:`test_gemm_matches_scalar_reference`: a scalar reference written
from the module docstring's definitions (pure Python integers, no helper of the module)
compared with the vectorized :func:`gemm`. The other tests compare against numpy integer
matmuls, exhaustive enumerations of every operand value, or hand-derived bounds.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qforge.sim.model.spec import PRESETS, SCHEMA, from_dict, load_preset
from qforge.sim.model import exact_matmul
from qforge.sim.model.numerics import (OperandError, OperandPrecision, Precision, Selection,
                                 check_operands, gemm, gemm_block_products,
                                 operand_value, select_blocks, sign_magnitude,
                                 split_blocks, standard_modes)

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def make_config(width, block, lanes=4, depth=64, name="synthetic"):
    """A synthetic configuration (rows = cols = 2) with a buffer deep enough for ``depth``."""
    return from_dict({
        "name": name,
        "array": {"rows": 2, "cols": 2},
        "arithmetic": {"operand_width": width, "block_width": block,
                       "block_multipliers": lanes, "max_reduction_depth": depth,
                       "output_width": 2},
        "buffers": {"depth": -(-depth // lanes)},
    })


PRESET_CONFIGS = {name: load_preset(name) for name in PRESETS}
SYNTHETIC_CONFIGS = {
    "w6k2": make_config(6, 2, name="w6k2"),         # B = 3 (odd block count)
    "w5k1": make_config(5, 1, name="w5k1"),         # B = 5, one-bit blocks
    "w12k3": make_config(12, 3, name="w12k3"),      # B = 4, three-bit blocks
    "w16k4": make_config(16, 4, name="w16k4"),      # the widest operands
    "w16k16": make_config(16, 16, name="w16k16"),   # B = 1: every mode is exact
}
ALL_CONFIGS = {**PRESET_CONFIGS, **SYNTHETIC_CONFIGS}
SMALL_CONFIGS = {name: c for name, c in ALL_CONFIGS.items() if c.operand_width <= 8}


def signed_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def all_values(bits):
    low, high = signed_range(bits)
    return np.arange(low, high + 1, dtype=np.int64)


def all_operand_precisions(config):
    for n in range(1, config.blocks + 1):
        for kept in range(1, n + 1):
            for selection in Selection:
                yield OperandPrecision(n, kept, selection)


# ---- independent scalar reference, written from the module docstring ----------------

def ref_operand(x: int, width: int, k: int, n: int, kept: int, dynamic: bool):
    """``(sign, kept blocks lowest first, exponent)`` of one operand, by the definitions.

    The operand is a ``width``-bit two's-complement integer; its magnitude is cut into
    blocks of ``k`` bits; only blocks ``0 .. n-1`` take part. Exact (``kept == n``):
    ``e = 0``. Static: ``e = n - kept``. Dynamic: ``e = max(t - kept + 1, 0)`` with ``t``
    the highest non-zero block below ``n`` (0 for zero). Blocks ``e .. e+kept-1`` are kept.
    """
    assert -(1 << (width - 1)) <= x < (1 << (width - 1))
    sign = 1 if x < 0 else 0
    magnitude = -x if x < 0 else x
    blocks = []
    for i in range(n):
        blocks.append((magnitude // (2 ** (i * k))) % (2 ** k))
    if kept == n:
        e = 0
    elif not dynamic:
        e = n - kept
    else:
        t = 0
        for i in range(n):
            if blocks[i] != 0:
                t = i
        e = max(t - kept + 1, 0)
    return sign, blocks[e:e + kept], e


def ref_value(x, width, k, n, kept, dynamic):
    sign, blocks, e = ref_operand(x, width, k, n, kept, dynamic)
    value = sum(block * 2 ** ((e + i) * k) for i, block in enumerate(blocks))
    return -value if sign else value


def ref_gemm(a, b, width, k, prec_a, prec_b):
    """Sum over operands and kept-block pairs of the signed, shifted block products."""
    rows, depth, cols = len(a), len(b), len(b[0])
    out = [[0] * cols for _ in range(rows)]
    dyn_a = prec_a.selection == Selection.DYNAMIC
    dyn_b = prec_b.selection == Selection.DYNAMIC
    for r in range(rows):
        for c in range(cols):
            total = 0
            for d in range(depth):
                sa, ka, ea = ref_operand(a[r][d], width, k, prec_a.blocks, prec_a.kept, dyn_a)
                sb, kb, eb = ref_operand(b[d][c], width, k, prec_b.blocks, prec_b.kept, dyn_b)
                for i, block_a in enumerate(ka):
                    for j, block_b in enumerate(kb):
                        product = (block_a * block_b) * 2 ** ((ea + i + eb + j) * k)
                        total += -product if sa != sb else product
            out[r][c] = total
    return out


def test_scalar_reference_on_documented_examples():
    """The reference agrees with the numbers worked by hand in docs/NUMERICS.md."""
    # 77 = 0b01_00_11_01 -> blocks [1, 3, 0, 1]; 13 -> [1, 3, 0, 0] (K = 2).
    assert ref_operand(-77, 8, 2, 4, 4, False) == (1, [1, 3, 0, 1], 0)
    assert ref_operand(-77, 8, 2, 4, 2, False) == (1, [0, 1], 2)
    assert ref_operand(-77, 8, 2, 4, 2, True) == (1, [0, 1], 2)
    assert ref_operand(-77, 8, 2, 4, 1, True) == (1, [1], 3)
    assert ref_operand(13, 8, 2, 4, 2, False) == (0, [0, 0], 2)
    assert ref_operand(13, 8, 2, 4, 2, True) == (0, [1, 3], 0)
    assert ref_operand(13, 8, 2, 4, 1, True) == (0, [3], 1)
    assert [ref_value(x, 8, 2, 4, 1, True) for x in (-77, 13, -128, 0)] == [-64, 12, -128, 0]
    assert ref_gemm([[-77]], [[13]], 8, 2, OperandPrecision(4, 4), OperandPrecision(4, 4)) \
        == [[-1001]]


# ---- the operand format ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_sign_magnitude_and_blocks_recompose(name):
    """Every W-bit value (most negative included) is sign + the sum of its shifted blocks."""
    config = ALL_CONFIGS[name]
    width, k = config.operand_width, config.block_width
    x = all_values(width)
    sign, magnitude = sign_magnitude(x, config)
    blocks = split_blocks(magnitude, config)
    assert blocks.shape == (x.size, config.blocks)
    assert blocks.min() >= 0 and blocks.max() < (1 << k)
    recomposed = sum(blocks[:, i].astype(object) << (i * k) for i in range(config.blocks))
    assert (recomposed == np.abs(x.astype(object))).all()
    assert (sign == (x < 0)).all()
    assert np.array_equal(np.where(sign == 1, -magnitude, magnitude), x)
    # The most negative value's magnitude 2**(W-1) fits in W bits: the top block is
    # 2**(K-1) when K divides W (or the whole magnitude when B = 1).
    most_negative = -(1 << (width - 1))
    assert magnitude[0] == config.max_magnitude == 1 << (width - 1)
    assert x[0] == most_negative and sign[0] == 1
    assert blocks[0, -1] == 1 << (k - 1) and not blocks[0, :-1].any()


@given(st.integers(-(1 << 15), (1 << 15) - 1))
@settings(max_examples=200, deadline=None)
def test_blocks_match_scalar_reference_w16(x):
    config = SYNTHETIC_CONFIGS["w16k4"]
    _, blocks, _ = ref_operand(x, 16, 4, 4, 4, False)
    assert split_blocks(sign_magnitude(np.array([x]), config)[1], config)[0].tolist() == blocks


# ---- exact mode against numpy integer matmul ------------------------------------------

def int64_matmul(a, b):
    """Independent exact reference: numpy's integer matmul (no float anywhere)."""
    return np.matmul(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))


@st.composite
def exact_case(draw, configs=ALL_CONFIGS, max_dim=20):
    config = ALL_CONFIGS[draw(st.sampled_from(sorted(configs)))]
    m, d, n = (draw(st.integers(1, max_dim)) for _ in range(3))
    low, high = signed_range(config.operand_width)
    elements = st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, -1, 1]))
    a = draw(arrays(np.int64, (m, d), elements=elements))
    b = draw(arrays(np.int64, (d, n), elements=elements))
    return config, a, b


@given(exact_case())
@FAST
def test_exact_gemm_equals_integer_matmul(case):
    config, a, b = case
    result = gemm(a, b, config, standard_modes(config)["exact"])
    assert result.dtype == np.int64
    assert np.array_equal(result, int64_matmul(a, b))


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
@pytest.mark.parametrize("pattern", ["most_negative", "max_positive", "zeros", "mixed_signs",
                                     "negative_by_positive"])
def test_exact_gemm_extreme_values(name, pattern):
    """Extreme operands at the deepest allowed reduction (the largest sums)."""
    config = ALL_CONFIGS[name]
    low, high = signed_range(config.operand_width)
    depth = min(config.max_reduction_depth, 4096)
    rows, cols = 3, 2
    if pattern == "most_negative":
        a, b = np.full((rows, depth), low), np.full((depth, cols), low)
    elif pattern == "max_positive":
        a, b = np.full((rows, depth), high), np.full((depth, cols), high)
    elif pattern == "zeros":
        a, b = np.zeros((rows, depth), np.int64), np.zeros((depth, cols), np.int64)
    elif pattern == "mixed_signs":
        a = np.where(np.add.outer(np.arange(rows), np.arange(depth)) % 2 == 0, low, high)
        b = np.where(np.add.outer(np.arange(depth), np.arange(cols)) % 3 == 0, low, high)
    else:
        a, b = np.full((rows, depth), low), np.full((depth, cols), high)
    result = gemm(a, b, config, standard_modes(config)["exact"])
    assert np.array_equal(result, int64_matmul(a, b))
    if pattern == "most_negative":
        assert (result == depth * low * low).all()


@pytest.mark.parametrize("name", sorted(PRESET_CONFIGS))
def test_preset_accumulator_holds_worst_case(name):
    """The deepest all-most-negative dot product fits the derived accumulator width."""
    config = PRESET_CONFIGS[name]
    depth = config.max_reduction_depth
    low = -(1 << (config.operand_width - 1))
    value = int(gemm(np.full((1, depth), low), np.full((depth, 1), low), config,
                     standard_modes(config)["exact"])[0, 0])
    assert value == depth * (1 << (2 * config.operand_width - 2))
    assert -(1 << (config.accumulator_width - 1)) <= -value
    assert value <= (1 << (config.accumulator_width - 1)) - 1


# ---- every mode: gemm against block products and the scalar reference ----------------

@st.composite
def operand_precision(draw, config):
    n = draw(st.integers(1, config.blocks))
    kept = draw(st.integers(1, n))
    return OperandPrecision(n, kept, draw(st.sampled_from(list(Selection))))


@st.composite
def mode_case(draw, configs=ALL_CONFIGS, max_dim=20):
    """A configuration, a precision (standard or random) and operands in its range."""
    config = configs[draw(st.sampled_from(sorted(configs)))]
    if draw(st.booleans()):
        modes = standard_modes(config)
        precision = modes[draw(st.sampled_from(sorted(modes)))]
    else:
        precision = Precision(draw(operand_precision(config)),
                              draw(operand_precision(config)))
    m, d, n = (draw(st.integers(1, max_dim)) for _ in range(3))
    matrices = []
    for shape, operand in (((m, d), precision.a), ((d, n), precision.b)):
        low, high = signed_range(operand.blocks * config.block_width)
        elements = st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, -1]))
        matrices.append(draw(arrays(np.int64, shape, elements=elements)))
    return config, precision, matrices[0], matrices[1]


@given(mode_case())
@FAST
def test_gemm_equals_block_products(case):
    config, precision, a, b = case
    assert np.array_equal(gemm(a, b, config, precision),
                          gemm_block_products(a, b, config, precision))


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_every_standard_mode_equals_block_products(name):
    config = ALL_CONFIGS[name]
    rng = np.random.default_rng(1)
    for mode_name, precision in standard_modes(config).items():
        low_a, high_a = signed_range(precision.a.blocks * config.block_width)
        low_b, high_b = signed_range(precision.b.blocks * config.block_width)
        a = rng.integers(low_a, high_a, (7, 13), endpoint=True)
        b = rng.integers(low_b, high_b, (13, 5), endpoint=True)
        a[0, 0], b[0, 0], a[1, 1], b[1, 1] = low_a, low_b, high_a, high_b
        assert np.array_equal(gemm(a, b, config, precision),
                              gemm_block_products(a, b, config, precision)), mode_name


@given(mode_case(max_dim=5))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_gemm_matches_scalar_reference(case):
    """The key independent check: the documented rules, evaluated one block at a time."""
    config, precision, a, b = case
    expected = ref_gemm(a.tolist(), b.tolist(), config.operand_width, config.block_width,
                        precision.a, precision.b)
    assert gemm(a, b, config, precision).tolist() == expected


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_operand_value_matches_scalar_reference_exhaustively(name):
    """Every in-range value under every (n, L, selection) of the small configurations."""
    config = SMALL_CONFIGS[name]
    width, k = config.operand_width, config.block_width
    for precision in all_operand_precisions(config):
        x = all_values(precision.blocks * k)
        dynamic = precision.selection == Selection.DYNAMIC
        expected = [ref_value(int(v), width, k, precision.blocks, precision.kept, dynamic)
                    for v in x]
        assert operand_value(x, config, precision).tolist() == expected, precision
        sign, kept, exponent = select_blocks(x, config, precision)
        refs = [ref_operand(int(v), width, k, precision.blocks, precision.kept, dynamic)
                for v in x]
        assert sign.tolist() == [r[0] for r in refs]
        assert kept.tolist() == [r[1] for r in refs]
        assert exponent.tolist() == [r[2] for r in refs]


# ---- approximation properties (exhaustive over every operand value) -------------------

@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_approximation_truncates_toward_zero(name):
    """|value| <= |x|, and the value is zero or has x's sign, for every mode and value."""
    config = ALL_CONFIGS[name]
    for precision in all_operand_precisions(config):
        x = all_values(precision.blocks * config.block_width)
        value = operand_value(x, config, precision)
        assert (np.abs(value) <= np.abs(x)).all(), precision
        assert ((value == 0) | (np.sign(value) == np.sign(x))).all(), precision
        if precision.exact:
            assert np.array_equal(value, x), precision


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_static_keeps_exactly_the_top_blocks(name):
    config = ALL_CONFIGS[name]
    k = config.block_width
    for n in range(1, config.blocks + 1):
        x = all_values(n * k)
        for kept in range(1, n):
            value = operand_value(x, config, OperandPrecision(n, kept, Selection.STATIC))
            drop = (n - kept) * k          # the low n - L blocks are dropped
            expected = (np.abs(x) >> drop) << drop
            assert np.array_equal(np.abs(value), expected), (n, kept)
            _, _, exponent = select_blocks(x, config, OperandPrecision(n, kept))
            assert (exponent == n - kept).all()


def dynamic_error_bound(t: int, kept: int, k: int) -> Fraction:
    """Largest relative error of a value whose leading block is ``t``.

    Dynamic selection keeps blocks ``e .. t`` with ``e = max(t - L + 1, 0)``. The kept
    part is at least ``2**(t*K)`` (block t is non-zero) and the dropped part at most
    ``2**(e*K) - 1``, and ``d / (h + d)`` grows with ``d`` and shrinks with ``h``, so the
    relative error is at most ``(2**(eK) - 1) / (2**(tK) + 2**(eK) - 1)``, reached at
    ``|x| = 2**(tK) + 2**(eK) - 1``. This is below ``1 / (2**(K(L-1)) + 1)``, itself below
    ``2**(-K(L-1))``.
    """
    e = max(t - kept + 1, 0)
    return Fraction(2 ** (e * k) - 1, 2 ** (t * k) + 2 ** (e * k) - 1)


def leading_blocks(magnitude, k, n):
    """Index of the highest non-zero K-bit block of each magnitude (0 for zero)."""
    return sum(((magnitude >= (1 << (i * k))).astype(np.int64) for i in range(1, n)),
               np.zeros(magnitude.shape, np.int64))


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_dynamic_relative_error_bound(name):
    config = ALL_CONFIGS[name]
    k = config.block_width
    for n in range(1, config.blocks + 1):
        x = all_values(n * k)
        magnitude = np.abs(x)
        nonzero = magnitude != 0
        leading = leading_blocks(magnitude, k, n)
        for kept in range(1, n + 1):
            value = operand_value(x, config, OperandPrecision(n, kept, Selection.DYNAMIC))
            error = (magnitude - np.abs(value))[nonzero]
            mag = magnitude[nonzero]
            scale = 1 << (k * (kept - 1))
            # The requested bound, strict: error / |x| < 2**(-K(L-1)) ...
            assert (error * scale < mag).all(), (n, kept)
            # ... and the tighter one derived above: error / |x| < 1 / (2**(K(L-1)) + 1).
            assert (error * (scale + 1) < mag).all(), (n, kept)
            # A non-zero value is never approximated to zero (the leading block is kept).
            assert (value[nonzero] != 0).all()
            # The exact bound per leading block t holds and is attained when its witness
            # |x| = 2**(tK) + 2**(eK) - 1 is in range.
            for t in np.unique(leading[nonzero]):
                t = int(t)
                here = leading[nonzero] == t
                bound = dynamic_error_bound(t, kept, k)
                lhs = error[here] * bound.denominator      # below 2**33: exact in int64
                rhs = mag[here] * bound.numerator
                assert (lhs <= rhs).all(), (n, kept, t)
                witness = 2 ** (t * k) + 2 ** (max(t - kept + 1, 0) * k) - 1
                if witness <= 1 << (n * k - 1):
                    assert (lhs == rhs).any(), (n, kept, t)
                    assert value[x == -witness] == -(1 << (t * k))


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_more_kept_blocks_never_lose_precision(name):
    """static <= dynamic <= exact in magnitude, and more kept blocks never hurt."""
    config = ALL_CONFIGS[name]
    for n in range(1, config.blocks + 1):
        x = all_values(n * config.block_width)
        previous = None
        for kept in range(1, n + 1):
            static = np.abs(operand_value(x, config, OperandPrecision(n, kept)))
            dynamic = np.abs(operand_value(x, config,
                                           OperandPrecision(n, kept, Selection.DYNAMIC)))
            assert (static <= dynamic).all()
            if previous is not None:
                assert (previous <= dynamic).all()
            previous = dynamic


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_out_of_range_operands_lose_blocks_above_n(name):
    """Unchecked (hardware) behaviour: blocks >= n are ignored, sign comes from x."""
    config = ALL_CONFIGS[name]
    k = config.block_width
    x = all_values(config.operand_width)
    for n in range(1, config.blocks + 1):
        value = operand_value(x, config, OperandPrecision(n, n))
        magnitude = np.abs(x) & ((1 << (n * k)) - 1)
        assert np.array_equal(value, np.where(x < 0, -magnitude, magnitude)), n
        if config.operand_width > 8:
            continue
        # Approximate modes see the same truncated magnitude: the dynamic leading block
        # is searched below n only (as the edge selector does).
        for kept in range(1, n):
            for selection in Selection:
                precision = OperandPrecision(n, kept, selection)
                dynamic = selection == Selection.DYNAMIC
                expected = [(-1 if v < 0 else 1) * ref_value(int(m), n * k + 1, k, n, kept,
                                                            dynamic)
                            for v, m in zip(x, magnitude)]
                assert operand_value(x, config, precision).tolist() == expected, precision
                # select_blocks (the selector's view) agrees: recompose its triple.
                sign, kept_blocks, exponent = select_blocks(x, config, precision)
                shifts = (exponent[:, None] + np.arange(kept)) * k
                recomposed = (kept_blocks << shifts).sum(axis=-1)
                assert np.where(sign == 1, -recomposed, recomposed).tolist() == expected


def test_documented_operand_examples():
    """The worked examples of docs/NUMERICS.md (default preset, K = 2, B = 4)."""
    config = PRESET_CONFIGS["default"]
    x = np.array([-77, 13])
    expected = {
        OperandPrecision(4, 4): [-77, 13],
        OperandPrecision(4, 2, Selection.STATIC): [-64, 0],
        OperandPrecision(4, 2, Selection.DYNAMIC): [-64, 13],
        OperandPrecision(4, 1, Selection.STATIC): [-64, 0],
        OperandPrecision(4, 1, Selection.DYNAMIC): [-64, 12],
        OperandPrecision(4, 3, Selection.DYNAMIC): [-76, 13],
        OperandPrecision(4, 3, Selection.STATIC): [-76, 12],
        OperandPrecision(2, 2): [-13, 13],             # unchecked: blocks >= 2 ignored
    }
    for precision, values in expected.items():
        assert operand_value(x, config, precision).tolist() == values, precision
    assert operand_value(np.array([-8, 7, -7, 5]), config,
                         OperandPrecision(2, 1, Selection.DYNAMIC)).tolist() == [-8, 4, -4, 4]
    a = np.array([[-77, 13], [100, -128]])
    b = np.array([[13, -2], [-77, 127]])
    modes = standard_modes(config)
    assert gemm(a, b, config, modes["exact"]).tolist() == [[-2002, 1805], [11156, -16456]]
    assert gemm(a, b, config, modes["approx_dynamic_1"]).tolist() == [[-1536, 896],
                                                                       [8960, -8320]]
    assert gemm(a, b, config, modes["approx_dynamic"]).tolist() == [[-1664, 1584],
                                                                     [9440, -14528]]
    assert config.accumulator_width == 27 and config.lane_sum_width == 19


# ---- check_operands -------------------------------------------------------------------

DEFAULT = PRESET_CONFIGS["default"]
EXACT = standard_modes(DEFAULT)["exact"]


@pytest.mark.parametrize("a, b, message", [
    (np.array([1, 2]), np.ones((2, 1), np.int64), r"^a: must be a 2-D matrix, got shape \(2,\)"),
    (np.ones((1, 2), np.int64), np.ones((2, 1, 1), np.int64),
     r"^b: must be a 2-D matrix, got shape \(2, 1, 1\)"),
    (np.ones((1, 2)), np.ones((2, 1), np.int64), r"^a: must hold integers, got dtype float64"),
    (np.ones((1, 2), np.int64), np.array([["1"], ["2"]]), r"^b: must hold integers"),
    (np.ones((2, 3), np.int64), np.ones((2, 4), np.int64),
     r"^inner dimensions differ: a is 2 x 3, b is 2 x 4"),
    (np.ones((2, 0), np.int64), np.ones((0, 4), np.int64),
     r"^depth \(inner dimension\) = 0: allowed range is 1 \.\. 2048"),
    (np.ones((1, 2049), np.int64), np.ones((2049, 1), np.int64),
     r"^depth \(inner dimension\) = 2049: allowed range is 1 \.\. 2048"),
    (np.ones((0, 2), np.int64), np.ones((2, 1), np.int64), r"^result shape 0 x 1 is empty"),
])
def test_check_operands_rejects_bad_matrices(a, b, message):
    for function in (check_operands, gemm, gemm_block_products):
        with pytest.raises(OperandError, match=message):
            function(a, b, DEFAULT, EXACT)


def test_check_operands_accepts_max_depth_and_returns_int64():
    a = np.ones((1, DEFAULT.max_reduction_depth), np.int8)
    b = np.ones((DEFAULT.max_reduction_depth, 1), np.uint8)
    a64, b64 = check_operands(a, b, DEFAULT, EXACT)
    assert a64.dtype == b64.dtype == np.int64
    assert gemm(a, b, DEFAULT, EXACT).tolist() == [[DEFAULT.max_reduction_depth]]


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_check_operands_range_per_block_count(name):
    """For n blocks, exactly [-2**(nK-1), 2**(nK-1) - 1] is accepted, for A and for B."""
    config = ALL_CONFIGS[name]
    k = config.block_width
    for n in range(1, config.blocks + 1):
        low, high = signed_range(n * k)
        reduced, full = OperandPrecision(n, n), OperandPrecision(config.blocks, config.blocks)
        ok = np.array([[low, high, 0]])
        check_operands(ok, ok.T, config, Precision(reduced, reduced))
        for bad in (low - 1, high + 1):
            a = np.array([[0, low, high], [high, bad, low]])
            message = (rf"^a\[1, 1\] = {bad}: out of range for {n} blocks of {k} bits; "
                       rf"allowed {low} \.\. {high}$")
            with pytest.raises(OperandError, match=message):
                check_operands(a, np.zeros((3, 1), np.int64), config, Precision(reduced, full))
            b = np.zeros((3, 4), np.int64)
            b[2, 3] = bad
            b[1, 0] = bad    # the first bad element in row-major order is reported
            message = (rf"^b\[1, 0\] = {bad}: out of range for {n} blocks of {k} bits; "
                       rf"allowed {low} \.\. {high}$")
            with pytest.raises(OperandError, match=message):
                check_operands(np.zeros((1, 3), np.int64), b, config, Precision(full, reduced))


@pytest.mark.parametrize("field, a_prec, b_prec, message", [
    ("a.kept", OperandPrecision(2, 3), OperandPrecision(4, 4),
     r"^a\.kept = 3: allowed range is 1 \.\. a\.blocks \(2\)"),
    ("b.kept", OperandPrecision(4, 4), OperandPrecision(4, 0),
     r"^b\.kept = 0: allowed range is 1 \.\. b\.blocks \(4\)"),
    ("a.blocks", OperandPrecision(5, 1), OperandPrecision(4, 4),
     r"^a\.blocks = 5: allowed range is 1 \.\. 4 \(blocks of 2 bits in a 8-bit operand\)"),
    ("b.blocks", OperandPrecision(4, 4), OperandPrecision(0, 1),
     r"^b\.blocks = 0: allowed range is 1 \.\. 4"),
    ("a.blocks", OperandPrecision(True, 1), OperandPrecision(4, 4), r"^a\.blocks = True"),
    ("b.kept", OperandPrecision(4, 4), OperandPrecision(4, 2.0), r"^b\.kept = 2\.0"),
    ("a.selection", OperandPrecision(4, 2, 1), OperandPrecision(4, 4),
     r"^a\.selection = 1: must be Selection\.STATIC or Selection\.DYNAMIC"),
])
def test_invalid_precision_names_the_field(field, a_prec, b_prec, message):
    ok = np.zeros((1, 1), np.int64)
    for function in (check_operands, gemm, gemm_block_products):
        with pytest.raises(ValueError, match=message):
            function(ok, ok, DEFAULT, Precision(a_prec, b_prec))


@pytest.mark.parametrize("value", [2 ** 64 - 1, 2 ** 63, 128])
def test_check_operands_rejects_large_unsigned(value):
    """Unsigned operands are range-checked before any conversion to int64 (2**64 - 1
    must not wrap to -1)."""
    a = np.array([[1, value]], np.uint64)
    with pytest.raises(OperandError, match=rf"^a\[0, 1\] = {value}: out of range for 4 "
                       r"blocks of 2 bits; allowed -128 \.\. 127$"):
        check_operands(a, np.ones((2, 1), np.int64), DEFAULT, EXACT)
    assert check_operands(np.array([[127]], np.uint64), np.ones((1, 1), np.int64),
                          DEFAULT, EXACT)[0].tolist() == [[127]]


# ---- exactness of the float-BLAS integer matmul (float32, float64, split) -----------

def object_matmul(a, b):
    """Reference in Python integers (object dtype): exact for any magnitude."""
    return np.asarray(a).astype(object) @ np.asarray(b).astype(object)


def test_schema_limits_keep_gemm_below_float64_exact_bound():
    """max|a| * max|b| * D <= 2**(2W-2) * max depth < 2**53 for every valid config, so
    :func:`gemm` always takes the plain float64 path; the split path is a safeguard."""
    fields = {f.path: f for f in SCHEMA}
    width = fields["arithmetic.operand_width"].maximum
    depth = fields["arithmetic.max_reduction_depth"].maximum
    assert (1 << (2 * width - 2)) * depth < exact_matmul._FLOAT64_EXACT == 1 << 53


@pytest.mark.parametrize("depth", [1023, 1024, 1100, 2048])
def test_float32_float64_boundary(depth):
    """Default preset, exact mode: the bound 2**14 * D crosses 2**24 (float32's exact
    integer range) at D = 1024. Sums past 2**24 with odd terms, where a float32 matmul
    would round, must still be exact."""
    assert exact_matmul._FLOAT32_EXACT == 1 << 24
    split = min(depth, 1041)
    a = np.full((2, depth), 127)
    a[1, :] = -128
    b = np.ones((depth, 3), np.int64)
    b[:, 0] = 0
    b[:split, 0] = 127
    b[:split, 1] = -128
    b[::2, 2] = -127
    expected = int64_matmul(a, b)
    if depth >= 1100:
        # 1041 * 127 * 127 is odd and above 2**24: no float32 can hold the result.
        assert expected[0, 0] == 1041 * 127 * 127 > 1 << 24
        naive = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.int64)
        assert not np.array_equal(naive, expected)
    for function in (gemm, gemm_block_products):
        assert np.array_equal(function(a, b, DEFAULT, EXACT), expected)


def test_widest_config_at_max_depth_is_exact():
    """W = 16 at the largest depth the schema allows: products up to 2**50."""
    config = make_config(16, 4, lanes=16, depth=1 << 20, name="w16deep")
    depth = config.max_reduction_depth
    rng = np.random.default_rng(5)
    low, high = signed_range(16)
    a = np.vstack([np.full(depth, low), rng.integers(low, high, depth, endpoint=True)])
    b = np.stack([np.full(depth, low), np.where(rng.random(depth) < 0.5, low, high)], axis=1)
    result = gemm(a, b, config, standard_modes(config)["exact"])
    expected = int64_matmul(a, b)
    assert expected[0, 0] == 1 << 50
    assert np.array_equal(result, expected)


def test_split_path_is_exact_where_float64_is_not(monkeypatch):
    """max|a| * max|b| * D >= 2**53: the high/low split must be taken and be exact."""
    rng = np.random.default_rng(7)
    depth = 64
    a = rng.integers(-(1 << 30), 1 << 30, (5, depth)) | 1     # odd: low bits matter
    a[0, 0] = -(1 << 30)
    b = rng.integers(-(1 << 22), 1 << 22, (depth, 4))
    b[0, 0] = (1 << 22) - 1
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * depth
    assert bound >= 1 << 53 and int(np.abs(b).max()) * depth < 1 << 53
    expected = object_matmul(a, b)
    naive = np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(object)
    assert (naive != expected).any()          # plain float64 would be wrong here
    calls = []
    original = exact_matmul.exact_integer_matmul

    def counting(x, y):
        calls.append(x.shape)
        return original(x, y)

    monkeypatch.setattr(exact_matmul, "exact_integer_matmul", counting)
    result = exact_matmul.exact_integer_matmul(a, b)
    assert len(calls) > 1                     # the split recursion ran
    assert result.dtype == np.int64
    assert (result.astype(object) == expected).all()


@given(exact_case(configs={"w16k4": None}, max_dim=12))
@FAST
def test_gemm_split_path_with_lowered_threshold(case):
    """Force the split path inside gemm (thresholds lowered to 2**8) for W = 16 operands."""
    config, a, b = case
    b = np.clip(b, -7, 7)                      # split terminates while max|b| * D < bound
    modes = standard_modes(config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_matmul, "_FLOAT32_EXACT", 1 << 8)
        patch.setattr(exact_matmul, "_FLOAT64_EXACT", 1 << 8)
        results = {name: gemm(a, b, config, modes[name])
                   for name in ("exact", "approx_dynamic", "approx_static")}
        blocks = gemm_block_products(a, b, config, modes["approx_dynamic"])
    assert np.array_equal(results["exact"], int64_matmul(a, b))
    for name, result in results.items():
        va = operand_value(a, config, modes[name].a)
        vb = operand_value(b, config, modes[name].b)
        assert np.array_equal(result, int64_matmul(va, vb)), name
    assert np.array_equal(blocks, results["approx_dynamic"])
