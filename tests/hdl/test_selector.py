"""BlockSelector against :func:`qforge.sim.model.numerics.select_blocks`.

Each cycle a random word, a random precision mode and random lane selections are
presented; one clock later every valid lane must hold the sign of ``word[offset]``, the
block at position ``e + index`` of its magnitude and that position, where ``(sign, kept
blocks, e)`` is what the golden model selects for that operand and mode. Invalid lanes
must carry block 0. With ``pe = "shared_shift"`` a dynamic operand's ``index`` is a
block position instead: the block of the approximated operand there
(:func:`~qforge.sim.model.numerics.operand_value`), 0 outside its kept window.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.hdl.selector import BlockSelector, twos_complement_magnitude
from qforge.sim.model.numerics import (OperandPrecision, Selection, operand_value,
                                       select_blocks)
from tests.configs import COMPONENT_CONFIGS

CYCLES = 300


def _random_operand(rng, config, blocks):
    """An operand of ``blocks`` blocks, biased towards corner values and sparse blocks.

    One in ten is any ``W``-bit value instead: blocks at positions ``>= blocks`` must be
    ignored, as :func:`select_blocks` ignores them.
    """
    if rng.random() < 0.1:
        blocks = config.blocks
    bits = blocks * config.block_width
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    kind = rng.random()
    if kind < 0.15:
        return rng.choice([0, low, high, -1, 1, low + 1, -high])
    if kind < 0.45:
        # A few non-zero blocks at random positions (exercises the leading block search).
        magnitude = 0
        for _ in range(rng.randint(1, 2)):
            position = rng.randrange(blocks)
            magnitude |= rng.randrange(1, 1 << config.block_width) << (
                position * config.block_width)
        magnitude = min(magnitude, high)
        return -magnitude if rng.random() < 0.5 else magnitude
    return rng.randint(low, high)


def _random_precision(rng, config):
    blocks = rng.randint(1, config.blocks)
    kept = rng.randint(1, blocks)
    return OperandPrecision(blocks, kept, rng.choice(list(Selection)))


def _expected_lanes(config, word, precision, selects):
    """(valid, sign, block, position) per lane, from the golden model; with
    ``plain_lanes`` (K = W) (valid, value): the operand, which is its only block at
    position 0 with its sign, or 0."""
    if config.plain_lanes:
        sign, kept, exponent = select_blocks(np.array(word), config, precision)
        assert not exponent.any()
        return [(valid, int((-1) ** int(sign[offset]) * int(kept[offset, 0])) if valid else 0)
                for offset, _, valid in selects]
    sign, kept, exponent = select_blocks(np.array(word), config, precision)
    out = []
    for offset, index, valid in selects:
        out.append((valid, int(sign[offset]),
                    int(kept[offset, index]) if valid else 0,
                    int(exponent[offset]) + index))
    return out


def _random_offset(rng, config, lane):
    """An operand offset the schedule can give lane ``lane``: any for the default PEs;
    ``lane`` alone for ``pe = "shared_shift"``; ``lane``, ``lane // 2`` or ``lane // 2 +
    P / 2`` for ``pe = "fused"`` (one-block modes, and the two MACs per word's half of
    wide modes: hdl/scheduler.py's fused_table)."""
    lanes = config.block_multipliers
    if config.pe == "shared_shift":
        return lane
    if config.pe == "fused":
        return rng.choice([lane, lane // 2, lane // 2 + lanes // 2])
    return rng.randrange(lanes)


def _walks_positions(config, precision):
    """``pe = "shared_shift"`` selects a dynamic operand's blocks by position."""
    return config.pe == "shared_shift" and precision.selection == Selection.DYNAMIC


def _expected_positions(config, word, precision, selects):
    """(valid, sign, block, position) per lane when ``index`` is a block position: the
    block there of the approximated operand (:func:`operand_value`), 0 outside its kept
    window."""
    sign, _, _ = select_blocks(np.array(word), config, precision)
    values = np.abs(operand_value(np.array(word), config, precision))
    mask = (1 << config.block_width) - 1
    return [(valid, int(sign[offset]),
             int(values[offset] >> (index * config.block_width)) & mask if valid else 0,
             index) for offset, index, valid in selects]


@pytest.mark.parametrize("name", sorted(COMPONENT_CONFIGS))
def test_selector_matches_golden_model(name):
    config = COMPONENT_CONFIGS[name]()
    lanes = config.block_multipliers
    dut = BlockSelector(config)
    rng = random.Random(f"selector-{name}")
    checked = {"valid": 0, "invalid": 0}

    async def bench(ctx):
        for cycle in range(CYCLES):
            precision = _random_precision(rng, config)
            word = [_random_operand(rng, config, precision.blocks) for _ in range(lanes)]
            walked = (precision.blocks if _walks_positions(config, precision)
                      else precision.kept)
            selects = [(_random_offset(rng, config, lane), rng.randrange(walked),
                        int(rng.random() < 0.8)) for lane in range(lanes)]
            ctx.set(dut.word, word)
            ctx.set(dut.precision, {"blocks_minus_one": precision.blocks - 1,
                                    "kept_minus_one": precision.kept - 1,
                                    "dynamic": int(precision.selection)})
            ctx.set(dut.select, [{"offset": o, "index": i, "valid": v}
                                 for o, i, v in selects])
            before = ctx.get(dut.lanes).as_bits()
            await ctx.tick()
            if cycle == 0:
                assert before == 0, "lanes must be registered (reset value before a clock)"
            got = ctx.get(dut.lanes)
            expected = (_expected_positions if _walks_positions(config, precision)
                        else _expected_lanes)(config, word, precision, selects)
            for lane, fields in enumerate(expected):
                actual = got[lane]
                context = (f"{name} cycle {cycle} lane {lane}: word={word} "
                           f"{precision.describe()} select={selects[lane]}")
                if config.plain_lanes:
                    valid, value = fields
                    assert actual.value == value, f"{context}: value {actual.value} != {value}"
                    checked["valid" if valid else "invalid"] += 1
                    continue
                valid, sign, block, position = fields
                assert actual.block == block, f"{context}: block {actual.block} != {block}"
                if valid:
                    assert actual.sign == sign, f"{context}: sign {actual.sign} != {sign}"
                    assert actual.position == position, \
                        f"{context}: position {actual.position} != {position}"
                checked["valid" if valid else "invalid"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert checked["valid"] > 0 and checked["invalid"] > 0


@pytest.mark.parametrize("name", ["default", "b3"])
def test_selector_every_mode_exhaustive_blocks(name):
    """Every (blocks, kept, selection) mode on operands covering every leading block."""
    config = COMPONENT_CONFIGS[name]()
    lanes, k = config.block_multipliers, config.block_width
    dut = BlockSelector(config)
    rng = random.Random(f"selector-modes-{name}")
    modes = [OperandPrecision(n, kept, selection)
             for n in range(1, config.blocks + 1) for kept in range(1, n + 1)
             for selection in Selection]

    async def bench(ctx):
        for precision in modes:
            n = precision.blocks
            high = (1 << (n * k - 1)) - 1
            # One operand per leading block t (its top block non-zero), plus zero and the
            # most negative value; both signs.
            operands = [0, -(1 << (n * k - 1))]
            for t in range(n):
                value = min(rng.randrange(1, 1 << k) << (t * k) | rng.randrange(1 << (t * k)),
                            high)
                operands += [value, -value]
            for start in range(0, len(operands), lanes):
                word = (operands[start:start + lanes] + [0] * lanes)[:lanes]
                for index in range(precision.kept):
                    selects = [(lane, index, 1) for lane in range(lanes)]
                    ctx.set(dut.word, word)
                    ctx.set(dut.precision, {"blocks_minus_one": n - 1,
                                            "kept_minus_one": precision.kept - 1,
                                            "dynamic": int(precision.selection)})
                    ctx.set(dut.select, [{"offset": o, "index": i, "valid": v}
                                         for o, i, v in selects])
                    await ctx.tick()
                    got = ctx.get(dut.lanes)
                    expected = _expected_lanes(config, word, precision, selects)
                    for lane, (_, sign, block, position) in enumerate(expected):
                        actual = (got[lane].sign, got[lane].block, got[lane].position)
                        assert actual == (sign, block, position), (
                            f"{name} word={word} {precision.describe()} lane {lane} "
                            f"index {index}: got (sign, block, position)={actual}, "
                            f"expected {(sign, block, position)}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [2, 4, 8, 9])
def test_twos_complement_magnitude_is_abs_for_every_value(width):
    """Every W-bit two's-complement value, including the most negative (2**(W-1))."""
    from amaranth.hdl import Module, Signal

    value, magnitude = Signal(width), Signal(width)
    m = Module()
    m.d.comb += magnitude.eq(twos_complement_magnitude(value))
    wrong = []

    async def bench(ctx):
        for pattern in range(1 << width):
            ctx.set(value, pattern)
            signed = pattern - (1 << width) if pattern >> (width - 1) else pattern
            if ctx.get(magnitude) != abs(signed):
                wrong.append(pattern)

    simulator = Simulator(m)
    simulator.add_testbench(bench)
    simulator.run()
    assert wrong == []
