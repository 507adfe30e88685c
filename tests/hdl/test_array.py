"""SystolicArray and BroadcastArray: operand skew, capture timing and the drain chain,
against the golden GEMM.

The stimulus is what the scheduler and the edge selectors produce: for each tile, the
block products of its dot products packed into the P lanes by
:func:`qforge.sim.model.cycles.lane_schedule`, each lane's block, sign and position taken
from :func:`qforge.sim.model.numerics.select_blocks` (padding lanes carry zero blocks);
with ``pe = "shared_shift"`` the order written out by :func:`shared_shift_products`
and a dynamic operand's blocks by position (:func:`position_lanes`); with ``pe =
"fused"`` the order of :func:`fused_products` (lane ``t`` of a MAC carrying kept block
``t`` of each side, zero past that side's ``L``) and ``flags.wide``;
a tile's last cycle is held back (bubbles in between) until the previous tile has been
captured and drained, as ``drain_free`` does. Drained rows must equal
:func:`qforge.sim.model.numerics.gemm` of the tile's operands; ``captured`` must pulse
exactly ``r + c + pe_latency`` cycles after the tile's last cycle for the corner PE
``(R-1, C-1)`` of the systolic array, and ``pe_latency`` cycles after it for the
broadcast array, carrying the tile's ``gemm_last``. The drain shifts at random cycles.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from qforge.hdl.array import BroadcastArray, SystolicArray
from qforge.sim.host.packing import leaf_fields, unpack_fields
from qforge.sim.model.cycles import lane_schedule, pe_latency, tile_cycles
from qforge.sim.model.numerics import (Selection, gemm, operand_value, select_blocks,
                                       standard_modes)
from tests.configs import custom, tiny

ARRAY_CONFIGS = {
    "tiny": tiny,                                             # 2 x 2, B = 2, P = 2
    "r2c3": lambda: custom("r2c3", rows=2, cols=3, operand_width=8, block_width=2,
                           block_multipliers=2, buffer_depth=16),    # B = 4
    "r3c2_p1": lambda: custom("r3c2_p1", rows=3, cols=2, operand_width=6, block_width=2,
                              block_multipliers=1, buffer_depth=16),  # B = 3, P = 1
    # arithmetic.pe = "signed_product": B = 4, P = 2, the product negated before its shift
    "r2c3_signed": lambda: custom("r2c3_signed", rows=2, cols=3, operand_width=8,
                                  block_width=2, block_multipliers=2, buffer_depth=16,
                                  pe="signed_product"),
    # arithmetic.pe = "shared_shift": one block pair of a word's operands per cycle
    "r2c3_shared": lambda: custom("r2c3_shared", rows=2, cols=3, operand_width=8,
                                  block_width=2, block_multipliers=2, buffer_depth=16,
                                  pe="shared_shift"),
    # arithmetic.pe = "fused": n = 2 blocks of 4 bits, lane pairs as one multiplier
    "r2c3_fused": lambda: custom("r2c3_fused", rows=2, cols=3, operand_width=8,
                                 block_width=4, block_multipliers=4, buffer_depth=16,
                                 pe="fused"),
}
NO_FLAGS = {"first": 0, "last": 0, "gemm_last": 0}


def no_flags(config):
    """The flags of a bubble cycle (``wide`` too for ``pe = "fused"``)."""
    return NO_FLAGS | ({"wide": 0} if config.pe == "fused" else {})


def fused_wide(precision) -> bool:
    """``pe = "fused"``: a side keeps both of its blocks (one MAC per lane pair)."""
    return max(precision.a.kept, precision.b.kept) == 2


def fused_products(config, depth, precision):
    """Per cycle, each lane's ``(k, t, t)`` for ``pe = "fused"``: MAC ``k`` in lanes
    ``2k, 2k + 1`` of the packed sequence in a wide mode, else in lane ``k``."""
    lanes = config.block_multipliers
    per_mac = 2 if fused_wide(precision) else 1
    cycles = -(-depth * per_mac // lanes)
    slots = [(k, t, t) for k in range(cycles * lanes) for t in range(per_mac)]
    return [slots[c * lanes:(c + 1) * lanes] for c in range(cycles)]


def zero_lanes(config):
    return [{"block": 0, "sign": 0, "position": 0}] * config.block_multipliers


def operand_lanes(selected, products, depth, index, side):
    """The lanes of one A row (``side`` "a") or B column ("b") for one cycle's
    ``products`` ``(k, i, j)``: the kept block i (A) or j (B) of operand k, its sign and
    its position ``exponent + block``; zero blocks past the depth (padding)."""
    sign, blocks, exponent = selected
    lanes = []
    for k, i, j in products:
        if k >= depth or (i if side == "a" else j) >= blocks.shape[-1]:
            lanes.append({"block": 0, "sign": 0, "position": 0})
            continue
        block = i if side == "a" else j
        at = (index, k) if side == "a" else (k, index)
        lanes.append({"block": int(blocks[at][block]), "sign": int(sign[at]),
                      "position": int(exponent[at] + block)})
    return lanes


def position_lanes(config, values, products, depth, index, side):
    """``pe = "shared_shift"`` lanes of a dynamic operand: ``i`` (A) or ``j`` (B) is a
    block position, the block there of the approximated operand (``values``, from
    :func:`operand_value`), 0 outside its kept window."""
    lanes = []
    mask = (1 << config.block_width) - 1
    for k, i, j in products:
        if k >= depth:
            lanes.append({"block": 0, "sign": 0, "position": 0})
            continue
        position = i if side == "a" else j
        value = int(values[(index, k) if side == "a" else (k, index)])
        lanes.append({"block": (abs(value) >> (position * config.block_width)) & mask,
                      "sign": int(value < 0), "position": position})
    return lanes


def shared_shift_products(config, depth, precision):
    """Per cycle, each lane's ``(k, i, j)`` for ``pe = "shared_shift"``: every word, every
    block pair (j fastest; a dynamic operand walks its n positions), lane l on operand
    ``word * P + l``."""
    lanes = config.block_multipliers
    walked = [operand.blocks if operand.selection == Selection.DYNAMIC else operand.kept
              for operand in (precision.a, precision.b)]
    return [[(word * lanes + lane, i, j) for lane in range(lanes)]
            for word in range(-(-depth // lanes))
            for i in range(walked[0]) for j in range(walked[1])]


def tile_lanes(config, a, b, precision):
    """Per cycle of one tile: ``(a_lanes, b_lanes)`` with ``a_lanes[i]`` the lanes of A
    row i and ``b_lanes[j]`` those of B column j."""
    depth = a.shape[1]
    if config.pe == "shared_shift":
        cycles = shared_shift_products(config, depth, precision)
    elif config.pe == "fused":
        cycles = fused_products(config, depth, precision)
    else:
        schedule = lane_schedule(precision.a.kept, precision.b.kept,
                                 config.block_multipliers)
        cycles = schedule.products(tile_cycles(depth, precision.block_products,
                                               config.block_multipliers))
    sides = []
    for matrix, operand, side, count in ((a, precision.a, "a", a.shape[0]),
                                         (b, precision.b, "b", b.shape[1])):
        if config.pe == "shared_shift" and operand.selection == Selection.DYNAMIC:
            values = operand_value(matrix, config, operand)
            sides.append(lambda products, index, values=values, side=side:
                         position_lanes(config, values, products, depth, index, side))
        else:
            selected = select_blocks(matrix, config, operand)
            sides.append(lambda products, index, selected=selected, side=side:
                         operand_lanes(selected, products, depth, index, side))
    return [([sides[0](products, r) for r in range(a.shape[0])],
             [sides[1](products, c) for c in range(b.shape[1])])
            for products in cycles]


def random_tiles(config, rng, count, a_rows, b_cols):
    """``count`` tiles: (A a_rows x D, B D x b_cols, precision, gemm_last)."""
    modes = list(standard_modes(config).values())
    tiles = []
    for index in range(count):
        precision = rng.choice(modes)
        depth = rng.randint(1, 6)
        limit_a = 1 << (precision.a.blocks * config.block_width - 1)
        limit_b = 1 << (precision.b.blocks * config.block_width - 1)
        numpy_rng = np.random.default_rng(rng.randrange(1 << 30))
        a = numpy_rng.integers(-limit_a, limit_a, size=(a_rows, depth))
        b = numpy_rng.integers(-limit_b, limit_b, size=(depth, b_cols))
        if index == 0:                               # extremes: the most negative values
            a[:] = -limit_a
            b[:] = -limit_b
        tiles.append((a, b, precision, int(rng.random() < 0.4 or index == count - 1)))
    return tiles


def run_array(dut, config, tiles, *, broadcast, seed):
    """Drive ``tiles`` through the array; return per tile (capture cycle, gemm_last,
    drained rows) and the cycle each tile's last lanes were presented."""
    rng = random.Random(seed)
    row_fields = leaf_fields(data.ArrayLayout(signed(config.accumulator_width), config.cols))
    schedule = []           # (lanes, flags) of every cycle, tile by tile
    for a, b, precision, gemm_last in tiles:
        cycles = tile_lanes(config, a, b, precision)
        for index, lanes in enumerate(cycles):
            last = index == len(cycles) - 1
            flags = {"first": int(index == 0), "last": int(last),
                     "gemm_last": gemm_last if last else 0}
            if config.pe == "fused":
                flags["wide"] = int(fused_wide(precision))
            schedule.append((lanes, flags))
    observed = {"captures": [], "rows": [], "last_cycles": [], "after": []}

    def present(ctx, lanes, flags):
        a_lanes, b_lanes = lanes
        if broadcast:
            ctx.set(dut.a, a_lanes[0])
            ctx.set(dut.b, [b_lanes[r * config.cols:(r + 1) * config.cols]
                            for r in range(config.rows)])
        else:
            ctx.set(dut.rows, a_lanes)
            ctx.set(dut.cols, b_lanes)
        ctx.set(dut.flags, flags)

    async def bench(ctx):
        bubble = ([zero_lanes(config)] * (1 if broadcast else config.rows),
                  [zero_lanes(config)] * (config.cols * (config.rows if broadcast else 1)))
        pending = False          # a tile's last cycle is in the array, not yet captured
        rows_left = 0            # rows of the captured tile still to drain
        position, cycle = 0, 0
        drained = []
        while position < len(schedule) or pending or rows_left:
            lanes, flags = schedule[position] if position < len(schedule) else (
                bubble, no_flags(config))
            if flags["last"] and (pending or rows_left):
                lanes, flags = bubble, no_flags(config)       # drain_free is low
            elif position < len(schedule):
                position += 1
                if flags["last"]:
                    pending = True
                    observed["last_cycles"].append(cycle)
            present(ctx, lanes, flags)
            shift = bool(rows_left) and rng.random() < 0.7
            ctx.set(dut.shift, shift)
            _, _, captured, gemm_last, row = await ctx.tick().sample(
                dut.captured, dut.captured_gemm_last, dut.result_row.as_value())
            if shift:
                drained.append(unpack_fields(row_fields, row))
                rows_left -= 1
                if not rows_left:
                    observed["rows"].append(drained)
                    drained = []
            if captured:
                assert pending, f"cycle {cycle}: captured without a tile in flight"
                assert not shift, f"cycle {cycle}: capture during a shift"
                observed["captures"].append((cycle, gemm_last))
                pending, rows_left = False, config.rows
            cycle += 1
            assert cycle < 100 * (len(schedule) + 10), "no capture"
        # Drained: the bottom row shifted zeros in, so every row now reads 0.
        ctx.set(dut.shift, 1)
        for _ in range(config.rows):
            _, _, row = await ctx.tick().sample(dut.result_row.as_value())
            observed["after"].append(unpack_fields(row_fields, row))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return observed


@pytest.mark.parametrize("name", sorted(ARRAY_CONFIGS))
def test_systolic_array_matches_the_golden_gemm(name):
    config = ARRAY_CONFIGS[name]()
    rng = random.Random(f"array-{name}")
    tiles = random_tiles(config, rng, 8, config.rows, config.cols)
    observed = run_array(SystolicArray(config), config, tiles, broadcast=False,
                         seed=len(name))
    assert len(observed["captures"]) == len(tiles) == len(observed["rows"])
    assert observed["after"] == [[0] * config.cols] * config.rows
    corner = (config.rows - 1) + (config.cols - 1) + pe_latency(config)
    for index, (a, b, precision, gemm_last) in enumerate(tiles):
        capture_cycle, captured_gemm_last = observed["captures"][index]
        assert capture_cycle == observed["last_cycles"][index] + corner, f"tile {index}"
        assert captured_gemm_last == gemm_last, f"tile {index}: gemm_last"
        expected = gemm(a, b, config, precision)
        np.testing.assert_array_equal(np.array(observed["rows"][index]), expected,
                                      err_msg=f"tile {index} ({precision.describe()})")


@pytest.mark.parametrize("name", ["tiny", "r2c3"])
def test_broadcast_array_matches_the_golden_gemm(name):
    """One A row for every PE; PE (r, c) gets B column r * C + c and holds that output
    element; drained row r is columns r * C .. r * C + C - 1."""
    config = ARRAY_CONFIGS[name]()
    rng = random.Random(f"broadcast-{name}")
    width = config.rows * config.cols
    tiles = random_tiles(config, rng, 8, 1, width)
    observed = run_array(BroadcastArray(config), config, tiles, broadcast=True, seed=3)
    assert len(observed["captures"]) == len(tiles) == len(observed["rows"])
    assert observed["after"] == [[0] * config.cols] * config.rows
    for index, (a, b, precision, gemm_last) in enumerate(tiles):
        capture_cycle, captured_gemm_last = observed["captures"][index]
        assert capture_cycle == observed["last_cycles"][index] + pe_latency(config), \
            f"tile {index}"
        assert captured_gemm_last == gemm_last, f"tile {index}: gemm_last"
        expected = gemm(a, b, config, precision).reshape(config.rows, config.cols)
        np.testing.assert_array_equal(np.array(observed["rows"][index]), expected,
                                      err_msg=f"tile {index} ({precision.describe()})")
