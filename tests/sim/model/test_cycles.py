"""Tests of the cycle model (:mod:`qforge.sim.model.cycles`): the lane schedule as the
hardware steps it, tile cycle counts and the ideal cycle count of a GEMM."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.sim.model.spec import PRESETS, from_dict, load_preset, load_spec
from qforge.sim.model.cycles import (CHECK_LATENCY, FEED_LATENCY, OUTPUT_LATENCY, GemmShape,
                               gemm_cycles, gemm_shape, lane_schedule, pe_latency,
                               tile_cycles)
from qforge.sim.model.numerics import standard_modes
from tests.configs import with_pe

#: The shared_shift configuration of issue 16's targets (docs/ARCHITECTURE.md, "A cheaper PE").
K4P8_SHARED = Path(__file__).resolve().parents[2] / "fpga" / "data" / "k4p8_shared.toml"

LANES = (1, 2, 4, 8, 16)
KEPT = range(1, 9)


def step_lanes(schedule, cycles):
    """Step every lane the way the scheduler does: a mixed-radix add of
    ``(step_operands, step_a, step_b)`` to its digits ``(k, i < La, j < Lb)``."""
    la, lb = schedule.kept_a, schedule.kept_b
    assert 0 <= schedule.step_b < lb and 0 <= schedule.step_a < la   # valid radix digits
    lanes = [tuple(start) for start in schedule.lane_starts]
    rows = []
    for _ in range(cycles):
        rows.append(list(lanes))
        stepped = []
        for k, i, j in lanes:
            j += schedule.step_b
            carry, j = (1, j - lb) if j >= lb else (0, j)
            i += schedule.step_a + carry
            carry, i = (1, i - la) if i >= la else (0, i)
            stepped.append((k + schedule.step_operands + carry, i, j))
        lanes = stepped
    return rows


def step_lanes_in_words(schedule, cycles):
    """The RTL's variant: per lane ``(offset = k mod P, i, j)`` and one shared word that
    advances by lane 0's carry out of the offset digit. Returns the ``(k, i, j)`` rows and,
    per cycle, every lane's word carry."""
    la, lb, lanes = schedule.kept_a, schedule.kept_b, schedule.lanes
    word = 0
    digits = [(k % lanes, i, j) for k, i, j in schedule.lane_starts]
    assert all(k < lanes for k, _, _ in schedule.lane_starts)
    rows, carries = [], []
    for _ in range(cycles):
        rows.append([(word * lanes + offset, i, j) for offset, i, j in digits])
        stepped, cycle_carries = [], []
        for offset, i, j in digits:
            j += schedule.step_b
            carry, j = (1, j - lb) if j >= lb else (0, j)
            i += schedule.step_a + carry
            carry, i = (1, i - la) if i >= la else (0, i)
            offset += schedule.step_operands + carry
            carry, offset = (1, offset - lanes) if offset >= lanes else (0, offset)
            stepped.append((offset, i, j))
            cycle_carries.append(carry)
        carries.append(cycle_carries)
        word += cycle_carries[0]
        digits = stepped
    return rows, carries


@pytest.mark.parametrize("lanes", LANES)
def test_lane_schedule_stepping_reproduces_products(lanes):
    for la, lb in itertools.product(KEPT, KEPT):
        q = la * lb
        schedule = lane_schedule(la, lb, lanes)
        assert (schedule.kept_a, schedule.kept_b, schedule.lanes) == (la, lb, lanes)
        depth = 3 * lanes + 2                      # several MACs and several words
        cycles = -(-depth * q // lanes) + 2        # past the end of the dot product
        rows = step_lanes(schedule, cycles)
        assert rows == schedule.products(cycles), (la, lb)
        # Independently: lane l of cycle c carries product f = c * P + l, and
        # f = k * q + i * Lb + j with i < La, j < Lb.
        flat = [digit for row in rows for digit in row]
        for f, (k, i, j) in enumerate(flat):
            assert 0 <= i < la and 0 <= j < lb
            assert k * q + i * lb + j == f, (la, lb, f)
        # Every (k, i, j) of the dot product appears exactly once, in order of f.
        wanted = [(k, i, j) for k in range(depth) for i in range(la) for j in range(lb)]
        inside = [digit for digit in flat if digit[0] < depth]
        assert inside == wanted, (la, lb)
        # All lanes of a cycle read one buffer word: they share k // P.
        for c, row in enumerate(rows):
            assert len({k // lanes for k, _, _ in row}) == 1, (la, lb, c)
        # The RTL keeps k mod P per lane and one shared word; every lane's carry into the
        # word agrees with lane 0's (which is the only one the RTL looks at).
        word_rows, carries = step_lanes_in_words(schedule, cycles)
        assert word_rows == rows, (la, lb)
        for row_carries in carries:
            assert len(set(row_carries)) == 1, (la, lb)


@pytest.mark.parametrize("lanes", LANES)
def test_lane_schedule_constants(lanes):
    """The per-cycle step is P products written in the digits (k, i, j)."""
    for la, lb in itertools.product(KEPT, KEPT):
        schedule = lane_schedule(la, lb, lanes)
        q = la * lb
        step = schedule.step_operands * q + schedule.step_a * lb + schedule.step_b
        assert step == lanes, (la, lb)
        assert schedule.lane_starts[0] == (0, 0, 0)
        assert len(schedule.lane_starts) == lanes


def test_lane_schedule_documented_example():
    """lane_schedule(3, 1, 4): q = 3 does not divide P = 4 (docs/NUMERICS.md)."""
    schedule = lane_schedule(3, 1, 4)
    assert (schedule.step_operands, schedule.step_a, schedule.step_b) == (1, 1, 0)
    assert step_lanes(schedule, 3) == [
        [(0, 0, 0), (0, 1, 0), (0, 2, 0), (1, 0, 0)],
        [(1, 1, 0), (1, 2, 0), (2, 0, 0), (2, 1, 0)],
        [(2, 2, 0), (3, 0, 0), (3, 1, 0), (3, 2, 0)],
    ]


@given(st.integers(1, 300), st.integers(1, 64), st.sampled_from((1, 2, 4, 8, 16, 32, 64)))
@settings(max_examples=300, deadline=None)
def test_tile_cycles_is_ceiling(depth, q, lanes):
    assert tile_cycles(depth, q, lanes) == math.ceil(Fraction(depth * q, lanes))


@pytest.mark.parametrize("lanes", LANES)
def test_tile_cycles_matches_stepped_schedule(lanes):
    """tile_cycles == the number of cycles in which some lane carries a product of the
    tile (k < depth), stepping the lanes as the hardware does."""
    for la, lb in itertools.product(range(1, 5), range(1, 5)):
        schedule = lane_schedule(la, lb, lanes)
        rows = step_lanes(schedule, 300)
        for depth in (1, 2, 3, lanes, lanes + 1, 2 * lanes + 3, 17):
            busy = sum(1 for row in rows if any(k < depth for k, _, _ in row))
            assert busy < 300
            # busy cycles come first, then only idle ones
            assert all(any(k < depth for k, _, _ in row) for row in rows[:busy])
            assert tile_cycles(depth, la * lb, lanes) == busy, (la, lb, depth)


# ---- gemm_cycles ----------------------------------------------------------------------

def make_config(rows, cols, lanes, name="cyc"):
    return from_dict({
        "name": name, "array": {"rows": rows, "cols": cols},
        "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": lanes,
                       "max_reduction_depth": 256, "output_width": 8},
        "buffers": {"depth": 1024},
    })


# The systolic array's closed forms (the zero-skipping array: tests/sim/test_skipping.py).
CONFIGS = [load_preset(name) for name in PRESETS if not load_preset(name).zero_skipping] + [
    make_config(3, 5, 2, "odd"), make_config(1, 1, 1, "single"), make_config(7, 2, 8, "wide")]


@st.composite
def commands(draw):
    count = draw(st.integers(1, 4))
    return [GemmShape(draw(st.integers(1, 40)), draw(st.integers(1, 40)),
                      draw(st.integers(1, 64)), draw(st.integers(1, 16)))
            for _ in range(count)]


@given(st.sampled_from(CONFIGS), commands())
@settings(max_examples=150, deadline=None)
def test_gemm_cycles_ideal_and_macs(config, shapes):
    report = gemm_cycles(config, shapes)
    peak = config.rows * config.cols * config.block_multipliers
    ideal = Fraction(sum(s.m * s.n * s.depth * s.block_products for s in shapes), peak)
    # The model adds one float quotient per command; allow that rounding only.
    assert math.isclose(report.ideal, float(ideal), rel_tol=1e-12)
    if peak & (peak - 1) == 0:                 # power-of-two peak: every quotient exact
        assert report.ideal == float(ideal)
    assert report.macs == sum(s.m * s.n * s.depth for s in shapes)
    assert report.utilization == report.ideal / report.total
    # The array cannot beat its own compute time: every tile needs tile_cycles.
    compute = sum(-(-s.m // config.rows) * -(-s.n // config.cols)
                  * tile_cycles(s.depth, s.block_products, config.block_multipliers,
                                whole_words=config.pe == "shared_shift")
                  for s in shapes)
    assert report.total > compute >= report.ideal


@given(st.sampled_from(CONFIGS), st.integers(1, 40), st.integers(1, 40), st.integers(1, 64),
       st.integers(1, 16))
@settings(max_examples=150, deadline=None)
def test_gemm_cycles_single_command_closed_form(config, m, n, depth, q):
    """One command, worked out by hand from the documented pipeline: take and check
    (CHECK_LATENCY cycles), start (1), max(A, B) beats, hand-off (1), the first tile,
    each further tile's last cycle no sooner than the previous tile's drain is free
    (capture latency, then its R rows go to the skid buffer S cycles apart, free the
    cycle after the last: S = 2 on tiny, whose output stage rounds one element per
    cycle), then the last tile's capture, its R rows taken by the output stage (R S
    cycles) and the output stage's pipeline."""
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    words = -(-depth // lanes)
    m_tiles, n_tiles = -(-m // rows), -(-n // cols)
    # pe = "shared_shift" (the shared preset): whole words of every block pair.
    cycles = (words * q if config.pe == "shared_shift" else -(-depth * q // lanes))
    capture = FEED_LATENCY + (rows - 1) + (cols - 1) + pe_latency(config)
    beat = cols // (config.output_lanes_per_cycle or cols)    # S
    drain = rows * beat
    drain_busy = (rows - 1) * beat + 1
    expected = (CHECK_LATENCY + 1 + max(m_tiles, n_tiles) * words + 1 + cycles
                + (m_tiles * n_tiles - 1) * max(cycles, capture + 1 + drain_busy)
                + capture + drain + OUTPUT_LATENCY)
    assert gemm_cycles(config, [GemmShape(m, n, depth, q)]).total == expected


def test_gemm_shape_of_shared_shift_dynamic_issues_all_blocks():
    """k4p8_shared (8x8, P = 8, W = 8, K = 4: n = 2 blocks) in approx_dynamic (one of two
    blocks kept dynamically, La = Lb = 1): every lane of a cycle is at one block pair,
    so a MAC issues n x n = 4 block pairs, the kept one and three zeros. An 8x20 by 20x8
    GEMM is one tile of ceil(20 / 8) = 3 words x 4 block pairs = 12 cycles; by hand:
    take and check 2, start 1, 3 A/B beats, hand-off 1, the tile's 12 cycles, capture
    2 + 7 + 7 + 3 = 19, 8 drained rows, the output stage's 6 (43 with La x Lb = 1: a
    3-cycle tile)."""
    config = load_spec(K4P8_SHARED)
    assert (config.pe, config.blocks, config.block_multipliers) == ("shared_shift", 2, 8)
    dynamic = standard_modes(config)["approx_dynamic"]
    assert (dynamic.a.kept, dynamic.b.kept, dynamic.block_products) == (1, 1, 1)
    shape = gemm_shape(config, 8, 8, 20, dynamic)
    assert shape == GemmShape(8, 8, 20, 2 * 2)
    report = gemm_cycles(config, [shape])
    assert report.total == 2 + 1 + 3 + 1 + 3 * 4 + 19 + 8 + 6
    assert report.ideal == 8 * 8 * 20 * 4 / (8 * 8 * 8)
    # The same array with the default PE issues La x Lb = 1 in the same mode.
    assert gemm_shape(with_pe(config, "shifted"), 8, 8, 20, dynamic).block_products == 1


def test_gemm_shape_of_shared_shift_static_modes_is_la_times_lb():
    """Statically selected and exact operands issue only their kept blocks: La x Lb."""
    config = load_spec(K4P8_SHARED)
    modes = standard_modes(config)
    for name in ("exact", "reduced", "approx_static"):
        precision = modes[name]
        assert gemm_shape(config, 3, 5, 7, precision).block_products == \
            precision.a.kept * precision.b.kept, name
