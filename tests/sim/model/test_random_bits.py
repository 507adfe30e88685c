"""The random bits of stochastic rounding (:mod:`qforge.sim.model.random_bits`).

* An independent scalar implementation written from the docstrings
  (:mod:`tests.sim.model.random_bits_reference`), compared with the vectorized
  :func:`random_bits` and :func:`round_keys`, and the worked example of
  docs/NUMERICS.md.
* The bulk and sparse forms (:func:`random_words_batch`, :func:`random_words_where`)
  give every element the bits :func:`random_bits` gives it.
* Statistics of the bits (byte chi-square, per-bit balance, independence of neighbouring
  rows, columns, tensors and seeds), with every threshold derived in the test's
  docstring. The inputs are fixed, so the tests are deterministic; a threshold's
  false-alarm probability is what it would be for truly random bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hypothesis import given
from hypothesis import strategies as st

from qforge.sim.model.errors import InputError
from qforge.sim.model.random_bits import (RANDOM_ROUNDS, _rounds, element_coordinates,
                                          random_bits, random_words_batch, random_words_where,
                                          round_keys)
from tests.fuzz import fuzz_settings
from tests.sim.model.random_bits_reference import MASK, scalar_random_bits, scalar_round_keys

_keys = st.tuples(st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 16) - 1))
_shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))
#: docs/NUMERICS.md's worked example: the bits of (seed 1, tensor 2, row 2, col 5).
NUMERICS_EXAMPLE_BITS = 0xD0990FA9


def test_round_keys_match_the_scalar_reference():
    rng = np.random.default_rng(1)
    cases = [(0, 0), (MASK, 0xFFFF), (1, 0), (0, 1)] + [
        (int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 16))) for _ in range(200)]
    for seed, tensor in cases:
        assert round_keys(seed, tensor) == scalar_round_keys(seed, tensor), (seed, tensor)


@fuzz_settings
@given(_keys, _keys)
def test_no_two_keys_share_round_keys(first, second):
    """The docstring's argument: keys 0 and 1 give the tensor id, then key 0 the seed."""
    if first != second:
        assert round_keys(*first) != round_keys(*second)


def test_the_worked_example_of_numerics_md():
    """docs/NUMERICS.md, "The random bits": seed 1, tensor 2, element (row 2, col 5),
    round 0 by hand: x = (2 >>> 8) + 5 = 0x02000005, y = (5 <<< 3) ^ x ^ k0 with
    k0 = 1 ^ 2 ^ 0 = 3: 0x28 ^ 0x02000005 ^ 3 = 0x0200002e; after round 7 the bits are
    the value the document gives."""
    assert round_keys(1, 2)[:2] == [0x3, 0x20000]
    assert random_bits(1, 2, [2], [5]).tolist() == [NUMERICS_EXAMPLE_BITS]
    assert scalar_random_bits(1, 2, 2, 5) == NUMERICS_EXAMPLE_BITS


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


def _neighbour_pairs(bits=random_bits):
    """(name, bits, neighbour bits): rows r and r+1, cols c and c+1, tensors t and t+1,
    seeds s and s+1, over the same 256 x 256 grid (n = 65536 pairs, or 65280 for the
    coordinate shifts), from ``bits`` (:func:`random_bits` or a variant)."""
    rows, cols = GRID
    base = bits(7, 3, rows, cols)
    return [
        ("row", base[:-1, :], base[1:, :]),
        ("col", base[:, :-1], base[:, 1:]),
        ("tensor", base, bits(7, 4, rows, cols)),
        ("seed", base, bits(8, 3, rows, cols)),
    ]


def neighbour_statistics(first, second) -> tuple[float, float]:
    """``(|correlation| * sqrt(n), max over the 32 positions of |ones - n/2| / (sqrt(n)/2))``
    of two neighbouring sets of bits: both about N(0, 1) for independent uniform bits."""
    u = first.ravel().astype(np.float64)
    v = second.ravel().astype(np.float64)
    n = u.size
    correlation = abs(float(np.corrcoef(u, v)[0, 1])) * math.sqrt(n)
    xor = first.ravel() ^ second.ravel()
    ones = ((xor[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)).sum(axis=0)
    return correlation, float(np.abs(ones - n / 2).max() / (math.sqrt(n) / 2))


@pytest.mark.parametrize("name,first,second", _neighbour_pairs(),
                         ids=["row", "col", "tensor", "seed"])
def test_neighbours_are_uncorrelated(name, first, second):
    """Two independent uniform values u, v in [0, 1) have Pearson correlation with
    sampling sd 1/sqrt(n); bound 5/sqrt(n) (about 0.02). Bit by bit, u XOR v of
    independent bits is 1 with probability 1/2: each of the 32 positions of the XOR is
    balanced within 5 sd (5 sqrt(n) / 2), which catches linear dependencies between
    neighbours that the correlation of whole words would miss."""
    correlation, xor_imbalance = neighbour_statistics(first, second)
    assert correlation < 5 and xor_imbalance < 5, (name, correlation, xor_imbalance)


def _bits_with_rounds(rounds):
    """:func:`random_bits` cut to its first ``rounds`` rounds."""
    def bits(seed, tensor, rows, cols):
        words = np.stack([rows, cols]).astype(np.uint32).reshape(2, -1)
        keys = [np.uint32(key) for key in round_keys(seed, tensor)[:rounds]]
        return _rounds(words, keys)[1].reshape(np.shape(rows)).astype(np.uint64)
    return bits


def test_six_rounds_fail_the_neighbour_test():
    """The negative control of the test above: with two rounds fewer the same statistics
    reject the bits (docs/NUMERICS.md: 6 rounds fail, 7 pass, 8 leave a margin)."""
    assert np.array_equal(_bits_with_rounds(RANDOM_ROUNDS)(7, 3, *GRID), random_bits(7, 3, *GRID))
    worst = {name: max(neighbour_statistics(first, second))
             for name, first, second in _neighbour_pairs(_bits_with_rounds(6))}
    assert max(worst.values()) > 10, worst
    seven = [max(neighbour_statistics(first, second))
             for _, first, second in _neighbour_pairs(_bits_with_rounds(7))]
    assert max(seven) < 5, seven


# ---- the same bits, drawn in bulk or only where needed -------------------------------



@fuzz_settings
@given(st.lists(st.tuples(_keys, _shapes), min_size=1, max_size=6))
def test_random_words_batch_equals_tensor_by_tensor(tensors):
    """One pass over several tensors gives each element the bits that
    :func:`random_bits` gives it alone (its own seed, tensor and coordinates)."""
    keys, shapes = zip(*tensors)
    for (seed, tensor), shape, words in zip(keys, shapes, random_words_batch(keys, shapes)):
        assert words.dtype == np.uint32 and words.shape == shape
        assert (words == random_bits(seed, tensor, *np.indices(shape))).all()


def test_random_words_batch_against_the_scalar_reference():
    (words,) = random_words_batch([(7, 9)], [(3, 5)])
    assert words[2, 4] == scalar_random_bits(7, 9, 2, 4)
    assert words[0, 0] == scalar_random_bits(7, 9, 0, 0)


@pytest.mark.parametrize("keys, shapes, message", [
    ([(1, 2)], [(5,)], r"shapes\[0\] = \(5,\): must be a 2-D tensor's \(rows, cols\)"),
    ([(1, 2), (1, 3)], [(2, 2)], "2 keys for 1 shapes"),
    ([(1, 1 << 16)], [(2, 2)], "tensor = 65536: allowed range is 0 .. 65535"),
])
def test_random_words_batch_refuses_bad_requests(keys, shapes, message):
    with pytest.raises(InputError, match=message):
        random_words_batch(keys, shapes)


@fuzz_settings
@given(_keys, _shapes, st.floats(0, 1), st.integers(0, 1 << 20))
def test_random_words_where_are_the_elements_bits(key, shape, density, mask_seed):
    """Where needed, the element's own bits, whatever the density (dense masks take
    the path that draws every element, sparse ones gather the needed coordinates)."""
    needed = np.random.default_rng(mask_seed).random(shape) < density
    rows, cols = np.indices(shape)
    words = random_words_where(*key, rows + 3, cols, needed)
    assert words.shape == shape
    assert (words[needed] == random_bits(*key, rows + 3, cols)[needed]).all()
    broadcast = random_words_where(*key, np.arange(shape[0])[:, None], np.arange(shape[1]),
                                   needed)
    assert (broadcast[needed] == random_bits(*key, rows, cols)[needed]).all()


def test_element_coordinates_are_read_only_indices():
    coordinates = element_coordinates((3, 4))
    assert (coordinates == np.indices((3, 4))).all()
    with pytest.raises(ValueError):
        coordinates[0, 0, 0] = 5
