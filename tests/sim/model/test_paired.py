"""The paired mode's golden model: bit-identical to SPARQ's kernel rule in both of its
configurations (RAW and ROUND), with a negative control; equal to the exact GEMM when
every pair holds a zero; the windows' error bounds; the asymmetric rule; errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.sim.model.numerics import OperandError, OperandPrecision, Precision, gemm
from qforge.sim.model.paired import (PairedPrecision, WindowRounding, check_paired,
                                     paired_operands, window_value)
from qforge.sim.model.spec import from_dict, load_preset
from tests.sim.model.sparq_reference import OPT2, OPT5, sparq_gemm


def paired_gemm(a, b, config, mode, unsigned_a=False):
    """The paired GEMM of numerics.gemm on ``config`` built with arithmetic.paired (the
    rule does not depend on P; tiny's single lane becomes two)."""
    spec = config.to_dict()
    spec["arithmetic"]["paired"] = True
    spec["arithmetic"]["block_multipliers"] = max(2, config.block_multipliers)
    config = from_dict(spec)
    n = config.blocks
    return gemm(a, b, config, Precision(OperandPrecision(n, n, unsigned=unsigned_a,
                                                         paired=mode),
                                        OperandPrecision(n, n)))


def k1_config():
    """W = 8 in 8 blocks of 1 bit: 4-block windows start at the leading one (opt5)."""
    spec = load_preset("default").to_dict()
    spec["arithmetic"]["block_width"] = 1
    return from_dict(spec)


#: SPARQ's two configurations: (config, paired mode's window, kernel's options).
SPARQ = {"opt2": (load_preset("tiny"), 1, OPT2),       # W = 8, K = 4: 0xF0 / 0x0F
         "opt5": (k1_config(), 4, OPT5)}                # W = 8, K = 1, 4-bit windows


def random_operands(rng, m, depth, n, zero_fraction):
    a = rng.integers(0, 256, size=(m, depth))
    a[rng.random((m, depth)) < zero_fraction] = 0
    return a, rng.integers(-128, 128, size=(depth, n))


@pytest.mark.parametrize("name", sorted(SPARQ))
@pytest.mark.parametrize("rounding", [WindowRounding.RAW, WindowRounding.ROUND])
def test_bit_identical_to_sparqs_kernel(name, rounding):
    config, kept, options = SPARQ[name]
    mode = PairedPrecision(kept, kept, rounding)
    rng = np.random.default_rng(17 + 2 * rounding)
    for trial, (m, depth, n) in enumerate([(7, 33, 5), (16, 64, 9), (3, 1, 2), (9, 40, 11)]):
        a, b = random_operands(rng, m, depth, n, zero_fraction=trial / 4)
        expected = sparq_gemm(a.tolist(), b.tolist(), options,
                              rounding == WindowRounding.ROUND)
        assert paired_gemm(a, b, config, mode, True).tolist() == expected
    # Every activation value against every other, in one pair each, with B = 1.
    values = np.arange(256)
    a = np.stack(np.meshgrid(values, values, indexing="ij"), axis=-1).reshape(-1, 2)
    b = np.array([[1], [1]])
    assert paired_gemm(a, b, config, mode, True).tolist() == sparq_gemm(
        a.tolist(), b.tolist(), options, rounding == WindowRounding.ROUND)


def test_a_wrong_rule_is_caught():
    """The negative control: the same comparison against a kernel whose rounding does not
    saturate a carry out of the window (or that does not round) finds mismatches."""
    config, kept, options = SPARQ["opt2"]
    a = np.array([[0xF9, 0x5B], [0x58, 0x33]])
    b = np.array([[1], [1]])
    rounded = paired_gemm(a, b, config, PairedPrecision(kept, kept, WindowRounding.ROUND),
                          True).tolist()
    assert rounded != sparq_gemm(a.tolist(), b.tolist(), options, True, saturate=False)
    assert rounded != sparq_gemm(a.tolist(), b.tolist(), options, False)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(1, 4),
       st.sampled_from(["default", "tiny", "k1"]), st.integers(0, 2**32 - 1),
       st.booleans(), st.sampled_from(list(WindowRounding)))
def test_exact_when_every_pair_holds_a_zero(m, depth, n, name, seed, unsigned, rounding):
    config = k1_config() if name == "k1" else load_preset(name)
    rng = np.random.default_rng(seed)
    low, high = (0, 255) if unsigned else (-128, 127)
    a = rng.integers(low, high + 1, size=(m, depth))
    zero_first = rng.random((m, (depth + 1) // 2)) < 0.5
    pairs = np.arange(0, depth, 2)
    a[:, pairs] = np.where(zero_first[:, :len(pairs)], 0, a[:, pairs])
    odd = pairs[pairs + 1 < depth] + 1
    a[:, odd] = np.where(zero_first[:, :len(odd)], a[:, odd], 0)
    b = rng.integers(-128, 128, size=(depth, n))
    kept = max(1, config.blocks // 2)
    mode = PairedPrecision(kept, kept, rounding)
    assert (paired_gemm(a, b, config, mode, unsigned) == a @ b).all()


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["default", "tiny", "k1"]), st.integers(-255, 255),
       st.integers(1, 8), st.sampled_from(list(WindowRounding)))
def test_a_window_is_within_its_lowest_blocks_of_the_operand(name, x, kept, rounding):
    """RAW drops less than one unit of the window's lowest block; ROUND is within half a
    unit, or saturated at the window's largest value (which is then below x)."""
    config = k1_config() if name == "k1" else load_preset(name)
    kept = min(kept, config.blocks)
    k, n = config.block_width, config.blocks
    value = int(window_value(np.array([x]), config, kept, rounding)[0])
    magnitude, kept_magnitude = abs(x), abs(value)
    assert (value < 0) == (x < 0) or value == 0
    leading = max(magnitude.bit_length() - 1, 0) // k
    low = max(leading - kept + 1, 0) * k                      # the window's lowest bit
    assert kept_magnitude % (1 << low) == 0
    if rounding == WindowRounding.RAW:
        assert 0 <= magnitude - kept_magnitude < (1 << low)
    else:
        largest = ((1 << (kept * k)) - 1) << low
        assert abs(magnitude - kept_magnitude) <= (1 << low) // 2 or (
            kept_magnitude == largest and magnitude > largest)


def test_asymmetric_the_larger_keeps_more_and_a_tie_goes_to_the_first():
    config = load_preset("default")                   # K = 2, n = 4: windows of 3 and 1
    mode = PairedPrecision(3, 1)
    #  0b1011011 = 91 (3 blocks: 0b1011000 = 88), 0b111100 = 60 (1 block: 0b110000 = 48)
    assert paired_operands(np.array([[91, 60]]), config, mode).tolist() == [[88, 48]]
    assert paired_operands(np.array([[60, 91]]), config, mode).tolist() == [[48, 88]]
    assert paired_operands(np.array([[-91, 91]]), config, mode).tolist() == [[-88, 64]]
    symmetric = paired_operands(np.array([[91, 60]]), config, PairedPrecision(2, 2))
    assert symmetric.tolist() == [[80, 60]]


@pytest.mark.parametrize("mode, message", [
    (PairedPrecision(0, 0), "paired kept_high = 0: allowed range is 1 .. 4"),
    (PairedPrecision(2, 3), "paired kept_low = 3: at most kept_high = 2"),
    (PairedPrecision(3, 2), "paired kept_high + kept_low = 5: at most the 4 blocks"),
])
def test_bad_modes_are_one_error(mode, message):
    with pytest.raises(OperandError, match=re.escape(message)):
        check_paired(load_preset("default"), mode)


def test_bad_operands_are_one_error():
    config = load_preset("default")
    with pytest.raises(OperandError, match=r"a\[0, 0\] = 256: .* allowed 0 \.\. 255"):
        paired_gemm(np.array([[256]]), np.array([[1]]), config, PairedPrecision(2, 2), True)
    with pytest.raises(OperandError, match=r"a\[0, 0\] = -1: .* allowed 0 \.\. 255"):
        paired_gemm(np.array([[-1]]), np.array([[1]]), config, PairedPrecision(2, 2), True)
    with pytest.raises(OperandError, match=r"b\[0, 0\] = 128: .* allowed -128 \.\. 127"):
        paired_gemm(np.array([[1]]), np.array([[128]]), config, PairedPrecision(2, 2))
    with pytest.raises(OperandError, match="inner dimensions differ"):
        paired_gemm(np.ones((2, 3), dtype=int), np.ones((2, 2), dtype=int), config,
                    PairedPrecision(2, 2))


def test_the_worked_example_of_numerics_md():
    """docs/NUMERICS.md, "Paired mode": 57 (RAW) and 105 (ROUND)."""
    a, b = np.array([[0x5B, 0x3C, 0x00, 0x77]]), np.array([[1], [2], [3], [-1]])
    config = load_preset("tiny")
    results = [paired_gemm(a, b, config, PairedPrecision(1, 1, rounding), True)
               for rounding in (WindowRounding.RAW, WindowRounding.ROUND)]
    assert [int(r[0, 0]) for r in results] == [57, 105]


def test_a_signed_window_may_round_to_two_to_the_w_minus_one():
    """127 = 0b01_11_11_11 keeps blocks 3 and 2 (0b0111) and rounds the dropped 0b1111 up:
    128, which the PE's 8-bit magnitude holds (the product is exact: 128 x -128)."""
    config = load_preset("default")
    assert window_value(np.array([127, -127]), config, 2, WindowRounding.ROUND).tolist() == [
        128, -128]
    mode = PairedPrecision(2, 2, WindowRounding.ROUND)
    assert paired_gemm(np.array([[127, 1]]), np.array([[-128], [0]]), config,
                       mode).tolist() == [[128 * -128]]
