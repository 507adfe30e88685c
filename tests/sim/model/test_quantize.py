"""Tests of the golden model of the training numerics (:mod:`qforge.sim.model.quantize`).

* The random bits: an independent scalar implementation of Speck64/128 written from the
  docstrings (pure Python integers), first checked against the cipher's published test
  vector, then compared with the vectorized :func:`random_bits` and :func:`round_keys`.
* Statistics of the bits (byte chi-square, per-bit balance, independence of neighbouring
  rows, columns, tensors and seeds) and of stochastic rounding (unbiased), with every
  threshold derived in the test's docstring. The inputs are fixed, so the tests are
  deterministic; a threshold's false-alarm probability is what it would be for truly
  random bits.
* :func:`round_shift` and :func:`output_stage` examples worked by hand.
* VRQ encode/decode examples and properties; the address-block baseline.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from qforge.sim.model.quantize import (RANDOM_ROUNDS, OutputParameters, Rounding, VrqFormat,
                                 address_block_decode, address_block_encode, output_stage,
                                 random_bits, round_keys, round_shift, vrq_decode,
                                 vrq_encode, vrq_exponent)

MASK = (1 << 32) - 1


# ---- an independent scalar Speck64/128 ----------------------------------------------

def ror(value, amount):
    return ((value >> amount) | (value << (32 - amount))) & MASK


def rol(value, amount):
    return ((value << amount) | (value >> (32 - amount))) & MASK


def speck_round(x, y, key):
    """Speck64: x = ((x >>> 8) + y) ^ k; y = (y <<< 3) ^ x."""
    x = ((ror(x, 8) + y) & MASK) ^ key
    y = rol(y, 3) ^ x
    return x, y


def speck_key_schedule(k0, l_words, rounds):
    """Speck with m = 4 key words (k0, l0, l1, l2): l[i+3] = (k[i] + (l[i] >>> 8)) ^ i,
    k[i+1] = (k[i] <<< 3) ^ l[i+3]."""
    keys, words = [k0], list(l_words)
    for i in range(rounds - 1):
        words.append(((keys[i] + ror(words[i], 8)) & MASK) ^ i)
        keys.append(rol(keys[i], 3) ^ words[i + 3])
    return keys


def speck_encrypt(x, y, keys):
    for key in keys:
        x, y = speck_round(x, y, key)
    return x, y


#: The docstring's fixed key words: ASCII "qfor" and "ge!!", big-endian.
QFOR, GE = int.from_bytes(b"qfor", "big"), int.from_bytes(b"ge!!", "big")


def scalar_round_keys(seed, tensor):
    return speck_key_schedule(seed, [tensor, QFOR, GE], RANDOM_ROUNDS)


def scalar_random_bits(seed, tensor, row, col):
    """x = row, y = col, 8 rounds keyed by (seed, tensor, "qfor", "ge!!"); the final y."""
    return speck_encrypt(row & MASK, col & MASK, scalar_round_keys(seed, tensor))[1]


def test_scalar_speck_matches_the_published_test_vector():
    """Speck64/128 (Beaulieu et al., 2013, appendix C): key 1b1a1918 13121110 0b0a0908
    03020100 = (l2, l1, l0, k0), plaintext (x, y) = (3b726574, 7475432d), 27 rounds,
    ciphertext (8c6fa548, 454e028b). Checks the scalar reference itself."""
    keys = speck_key_schedule(0x03020100, [0x0B0A0908, 0x13121110, 0x1B1A1918], 27)
    assert speck_encrypt(0x3B726574, 0x7475432D, keys) == (0x8C6FA548, 0x454E028B)


def test_round_keys_match_the_scalar_schedule():
    rng = np.random.default_rng(1)
    cases = [(0, 0), (MASK, 0xFFFF), (1, 0), (0, 1)] + [
        (int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 16))) for _ in range(200)]
    for seed, tensor in cases:
        assert round_keys(seed, tensor) == scalar_round_keys(seed, tensor), (seed, tensor)


def test_random_bits_match_the_scalar_reference():
    rng = np.random.default_rng(2)
    for _ in range(20):
        seed, tensor = int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 16))
        rows = rng.integers(0, 1 << 32, 50, dtype=np.int64)
        cols = rng.integers(0, 1 << 32, 50, dtype=np.int64)
        rows[:5], cols[:5] = [0, 0, 1, MASK, 7], [0, 1, 0, MASK, 7]
        got = random_bits(seed, tensor, rows, cols)
        want = [scalar_random_bits(seed, tensor, int(r), int(c)) for r, c in zip(rows, cols)]
        assert got.tolist() == want


def test_random_bits_depend_only_on_seed_tensor_and_coordinates():
    rows, cols = np.indices((16, 16))
    a = random_bits(5, 6, rows, cols)
    assert np.array_equal(a, random_bits(5, 6, rows.copy(), cols.copy()))
    assert np.array_equal(a[3:7, 2:9], random_bits(5, 6, rows[3:7, 2:9], cols[3:7, 2:9]))
    for other in (random_bits(4, 6, rows, cols), random_bits(5, 7, rows, cols)):
        assert np.mean(other == a) < 0.01
    transposed = random_bits(5, 6, cols, rows)      # equal only on the diagonal
    assert np.array_equal(transposed == a, np.eye(16, dtype=bool))


def test_round_keys_reject_out_of_range_inputs():
    for seed, tensor in ((-1, 0), (1 << 32, 0), (0, -1), (0, 1 << 16)):
        with pytest.raises(ValueError):
            round_keys(seed, tensor)


# ---- statistics of the random bits ------------------------------------------------------

def wilson_hilferty(dof: int, z: float) -> float:
    """The chi-square quantile with ``dof`` degrees of freedom at standard normal
    quantile ``z`` (Wilson-Hilferty; accurate to well under 1% for dof = 255)."""
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


#: z of a one-sided tail probability of about 1e-6 (Phi(-4.753) = 1.0e-6).
Z_1E6 = 4.753

#: (seed, tensor) pairs; the grid below is the structured input hardware uses: counters.
KEYS = [(0, 0), (1, 0), (0xDEADBEEF, 0x1234), (12345, 65535)]
GRID = np.indices((256, 256))        # rows 0..255 x cols 0..255: 65536 elements


@pytest.mark.parametrize("seed,tensor", KEYS)
def test_random_bytes_chi_square(seed, tensor):
    """The 4 bytes of 65536 outputs (262144 bytes) in 256 bins, 1024 expected per bin:
    chi-square with 255 degrees of freedom (mean 255, sd 22.6). Reject outside the
    two-sided 1e-6 quantiles (about 162 and 377): too uneven, or too even (a sign of
    structure such as a counter leaking through)."""
    bits = random_bits(seed, tensor, *GRID).ravel()
    data = bits.astype(">u4").view(np.uint8)
    counts = np.bincount(data, minlength=256)
    expected = data.size / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    low, high = wilson_hilferty(255, -Z_1E6), wilson_hilferty(255, Z_1E6)
    assert 150 < low < 170 and 370 < high < 385
    assert low < chi2 < high, chi2


@pytest.mark.parametrize("seed,tensor", KEYS)
def test_every_bit_is_balanced(seed, tensor):
    """For each of the 32 bit positions the number of ones among n = 65536 outputs is
    Binomial(n, 1/2): mean n/2, sd sqrt(n)/2 = 128. Bound: 5 sd (640); with 32
    positions the chance that a truly random sequence fails is below 32 * 5.7e-7."""
    bits = random_bits(seed, tensor, *GRID).ravel()
    n = bits.size
    ones = ((bits[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)).sum(axis=0)
    assert np.all(np.abs(ones - n / 2) <= 5 * math.sqrt(n) / 2), ones


def _neighbour_pairs():
    """(name, bits, neighbour bits): rows r and r+1, cols c and c+1, tensors t and t+1,
    seeds s and s+1, over the same 256 x 256 grid (n = 65536 pairs, or 65280 for the
    coordinate shifts)."""
    rows, cols = GRID
    base = random_bits(7, 3, rows, cols)
    return [
        ("row", base[:-1, :], base[1:, :]),
        ("col", base[:, :-1], base[:, 1:]),
        ("tensor", base, random_bits(7, 4, rows, cols)),
        ("seed", base, random_bits(8, 3, rows, cols)),
    ]


@pytest.mark.parametrize("name,first,second", _neighbour_pairs(),
                         ids=["row", "col", "tensor", "seed"])
def test_neighbours_are_uncorrelated(name, first, second):
    """Two independent uniform values u, v in [0, 1) have Pearson correlation with
    sampling sd 1/sqrt(n); bound 5/sqrt(n) (about 0.02). Bit by bit, u XOR v of
    independent bits is 1 with probability 1/2: each of the 32 positions of the XOR is
    balanced within 5 sd (5 sqrt(n) / 2), which catches linear dependencies between
    neighbours that the correlation of whole words would miss."""
    u = first.ravel().astype(np.float64)
    v = second.ravel().astype(np.float64)
    n = u.size
    correlation = float(np.corrcoef(u, v)[0, 1])
    assert abs(correlation) < 5 / math.sqrt(n), correlation
    xor = first.ravel() ^ second.ravel()
    ones = ((xor[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)).sum(axis=0)
    assert np.all(np.abs(ones - n / 2) <= 5 * math.sqrt(n) / 2), (name, ones)


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


def test_stochastic_round_shift_needs_coordinates():
    with pytest.raises(ValueError):
        round_shift([5], 2, Rounding.STOCHASTIC)


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
