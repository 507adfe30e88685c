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

from qforge.hdl.selector import BlockSelector, paired_controllers, twos_complement_magnitude
from qforge.sim.model.numerics import (OperandPrecision, Selection, operand_value,
                                       select_blocks)
from qforge.sim.model.paired import PairedPrecision, WindowRounding, paired_operands
from qforge.sim.model.spec import from_dict, load_preset
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


# ---- the paired mode (arithmetic.paired) ------------------------------------------------


def paired_variant(name, **arithmetic):
    """The ``paired`` preset with other ``arithmetic`` values (the deepest dot product
    its buffers hold)."""
    spec = load_preset("paired").to_dict()
    spec["name"] = name
    spec["arithmetic"].update(arithmetic)
    spec["arithmetic"]["max_reduction_depth"] = (spec["buffers"]["depth"]
                                                 * spec["arithmetic"]["block_multipliers"])
    return from_dict(spec, source="tests")


def _paired_configs():
    """Configurations built with ``arithmetic.paired``: the preset (K = 2, n = 4, P = 4),
    4-bit blocks (n = 2: a pair's slots span two lanes, P / 2 = 2 pairs a cycle mix) and
    eight lanes with 1-bit blocks (n = 8: seven window sizes, four pairs a word), and
    4-bit blocks on four lanes (two pair controllers: a cycle reaches two pairs)."""
    return {"paired": lambda: load_preset("paired"),
            "paired_k4_p2": lambda: paired_variant("paired_k4_p2", block_width=4,
                                                   block_multipliers=2),
            "paired_k1_p8": lambda: paired_variant("paired_k1_p8", block_width=1,
                                                   block_multipliers=8),
            # n = 2 < P = 4: a cycle's lanes reach two pairs, two controllers.
            "paired_k4_p4": lambda: paired_variant("paired_k4_p4", block_width=4,
                                                   block_multipliers=4)}


PAIRED_CONFIGS = _paired_configs()


def paired_windows(config):
    """Every ``(high, low)`` check_paired accepts: ``1 <= low <= high``, ``high + low <= n``."""
    n = config.blocks
    return [(high, low) for high in range(1, n) for low in range(1, high + 1)
            if high + low <= n]


def _word_bits(value, width):
    """The ``width``-bit pattern of ``value`` as the signed word element holds it (an
    unsigned operand's ``2**(W-1) ..`` are negative patterns)."""
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def _paired_pair(rng, config, unsigned):
    """Two A operands: corner values, equal magnitudes (the asymmetric rule's tie), a zero
    in the pair, leading-block and rounding boundaries (a window's carry), or random."""
    width, k = config.operand_width, config.block_width
    low, high = (0, (1 << width) - 1) if unsigned else (-(1 << (width - 1)),
                                                        (1 << (width - 1)) - 1)

    def one():
        kind = rng.random()
        if kind < 0.15:
            return rng.choice([low, high, 0, 1, -1 if not unsigned else 2, high - 1])
        if kind < 0.45:
            # A run of ones below a leading block: a ROUND carry out of the window.
            top = rng.randrange(width - (0 if unsigned else 1))
            ones = (1 << (top + 1)) - 1
            value = min(max(ones - rng.choice([0, 0, 1 << rng.randrange(k)]), 0), high)
            return value if unsigned or rng.random() < 0.5 else -value
        return rng.randint(low, high)
    first, second = one(), one()
    kind = rng.random()
    if kind < 0.15:
        second = first if unsigned or first == low or rng.random() < 0.5 else -first  # tie
    elif kind < 0.3:
        if rng.random() < 0.5:
            first = 0
        else:
            second = 0
    return first, second


def _paired_precision_fields(config, precision):
    """The selector's precision input for an operand mode (paired fields included)."""
    fields = {"blocks_minus_one": precision.blocks - 1, "kept_minus_one": precision.kept - 1,
              "dynamic": int(precision.selection), "unsigned": int(precision.unsigned)}
    if precision.paired is not None:
        fields |= {"paired": 1, "high": precision.paired.kept_high,
                   "low": precision.paired.kept_low, "round": int(precision.paired.rounding)}
    return fields


def _paired_cycles(rng, pairs, n, lanes, controllers):
    """Each pair's ``n`` A-block slots ``(pair, slot)``, asked for in random cycles of
    ``lanes`` lanes as the scheduler may issue them (hdl/selector.py,
    :func:`~qforge.hdl.selector.paired_controllers`): lane 0 holds the cycle's first pair
    ``p0``, every lane a pair of ``p0 .. p0 + controllers - 1``, shuffled, with invalid
    lanes ``(pair, None)`` mixed in."""
    left = {p: list(range(n)) for p in range(pairs)}
    for slots in left.values():
        rng.shuffle(slots)
    while any(left.values()):
        first = rng.choice([p for p in range(pairs) if left[p]])
        reach = range(first, min(pairs, first + controllers))
        lane0 = (first, left[first].pop())
        rest = []
        for _ in range(lanes - 1):
            open_pairs = [p for p in reach if left[p]]
            if open_pairs and rng.random() < 0.8:
                pair = rng.choice(open_pairs)
                rest.append((pair, left[pair].pop()))
            else:
                rest.append((rng.choice(list(reach)), None))
        rng.shuffle(rest)
        yield [lane0] + rest


@pytest.mark.parametrize("name", sorted(PAIRED_CONFIGS))
def test_paired_lanes_reconstruct_the_windows(name):
    """A selector's paired lanes against :func:`qforge.sim.model.paired.paired_operands`.

    Random words (signed and unsigned, every window option, RAW and ROUND); each pair's
    ``n`` A-block slots are asked for on shuffled lanes mixed with other pairs' and with
    invalid lanes. Summing ``(-1)**sign * block << (position * K)`` over the pair's slots,
    split by ``second``, must give the pair's two windowed operands exactly (so the PE's
    products are the golden model's), and an invalid lane must carry block 0. The lanes
    of a cycle keep the scheduler's contract (:func:`_paired_cycles`)."""
    config = PAIRED_CONFIGS[name]()
    n, k, lanes = config.blocks, config.block_width, config.block_multipliers
    pairs = lanes // 2
    dut = BlockSelector(config, "a")
    rng = random.Random(f"paired-selector-{name}")
    modes = [PairedPrecision(high, low, rounding)
             for high, low in paired_windows(config) for rounding in WindowRounding]
    seen = {"windowed": 0, "exact": 0, "ties": 0, "invalid": 0, "rounded": 0}

    async def bench(ctx):
        for cycle_word in range(120 if lanes <= 4 else 48):
            mode = modes[cycle_word % len(modes)]
            unsigned = bool(rng.randrange(2))
            precision = OperandPrecision(n, n, unsigned=unsigned, paired=mode)
            values = [v for _ in range(pairs) for v in _paired_pair(rng, config, unsigned)]
            expected = paired_operands(np.array([values]), config, mode)[0]
            plain = paired_operands(np.array([values]), config,
                                    PairedPrecision(mode.kept_high, mode.kept_low))[0]
            seen["rounded"] += int((expected != plain).any())
            sums = {(p, s): 0 for p in range(pairs) for s in (0, 1)}
            ctx.set(dut.word, [_word_bits(v, config.operand_width) for v in values])
            ctx.set(dut.precision, _paired_precision_fields(config, precision))
            for chunk in _paired_cycles(rng, pairs, n, lanes, paired_controllers(config)):
                selects = [{"offset": task[0] * 2, "index": rng.randrange(n), "valid": 0}
                           if task[1] is None else
                           {"offset": 2 * task[0], "index": task[1], "valid": 1}
                           for task in chunk]
                chunk = [None if task[1] is None else task for task in chunk]
                ctx.set(dut.select, selects)
                await ctx.tick()
                got = ctx.get(dut.lanes)
                for lane, task in enumerate(chunk):
                    actual = got[lane]
                    where = (f"{name} word {cycle_word} {precision.describe()} "
                             f"values={values} lane {lane} select={selects[lane]}")
                    if task is None:
                        assert actual.block == 0, f"{where}: invalid lane block {actual.block}"
                        seen["invalid"] += 1
                        continue
                    term = (int(actual.block) << (int(actual.position) * k))
                    sums[task[0], int(actual.second)] += -term if actual.sign else term
            for p in range(pairs):
                first, second = values[2 * p], values[2 * p + 1]
                got_pair = (sums[p, 0], sums[p, 1])
                want = (int(expected[2 * p]), int(expected[2 * p + 1]))
                assert got_pair == want, (
                    f"{name} {precision.describe()} pair {p} values {(first, second)}: "
                    f"lanes reconstruct {got_pair}, paired_operands gives {want}")
                if first and second:
                    seen["windowed"] += 1
                    seen["ties"] += int(abs(first) == abs(second))
                else:
                    seen["exact"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert all(seen.values()), seen


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("name", sorted(PAIRED_CONFIGS))
def test_plain_modes_and_b_partner_lanes(name, side):
    """The selectors of a paired configuration in every other mode (random blocks, kept,
    selection and signedness): lane ``l`` (offset ``o``) carries the block
    :func:`select_blocks` picks of operand ``o``; on the A side ``second`` stays 0; on
    the B side (``o`` even, the first of a pair) the lane also carries, as ``partner``,
    the same kept block of operand ``o + 1`` with its own sign and position. An invalid
    lane carries zero blocks."""
    config = PAIRED_CONFIGS[name]()
    n, lanes = config.blocks, config.block_multipliers
    dut = BlockSelector(config, side)
    rng = random.Random(f"plain-{side}-{name}")
    checked = {"valid": 0, "invalid": 0, "unsigned": 0}
    if side == "b":
        checked["partner_positions_differ"] = 0

    async def bench(ctx):
        for cycle in range(CYCLES if lanes <= 4 else CYCLES // 3):
            blocks = rng.randint(1, n)
            precision = OperandPrecision(blocks, rng.randint(1, blocks),
                                         rng.choice(list(Selection)),
                                         unsigned=bool(rng.randrange(2)))
            bits = blocks * config.block_width
            if precision.unsigned:
                word = [rng.choice([0, (1 << bits) - 1, rng.randrange(1 << bits)])
                        for _ in range(lanes)]
            else:
                word = [_random_operand(rng, config, blocks) for _ in range(lanes)]
            offsets = range(0, lanes, 2) if side == "b" else range(lanes)
            selects = [(rng.choice(offsets), rng.randrange(precision.kept),
                        int(rng.random() < 0.8)) for _ in range(lanes)]
            ctx.set(dut.word, [_word_bits(v, config.operand_width) for v in word])
            ctx.set(dut.precision, _paired_precision_fields(config, precision))
            ctx.set(dut.select, [{"offset": o, "index": i, "valid": v}
                                 for o, i, v in selects])
            await ctx.tick()
            got = ctx.get(dut.lanes)
            own = _expected_lanes(config, word, precision, selects)
            partner = _expected_lanes(config, word, precision,
                                      [(o + 1, i, v) for o, i, v in selects]) \
                if side == "b" else None
            for lane in range(lanes):
                actual = got[lane]
                where = (f"{name} side {side} cycle {cycle} lane {lane}: word={word} "
                         f"{precision.describe()} select={selects[lane]}")
                expected = [(actual, own[lane])]
                if side == "b":
                    expected.append((actual.partner, partner[lane]))
                else:
                    assert actual.second == 0, f"{where}: second set outside the paired mode"
                for fields, (valid, sign, block, position) in expected:
                    assert fields.block == block, f"{where}: block {fields.block} != {block}"
                    if valid:
                        got_fields = (fields.sign, fields.position)
                        assert got_fields == (sign, position), \
                            f"{where}: (sign, position) {got_fields} != {(sign, position)}"
                valid = selects[lane][2]
                checked["valid" if valid else "invalid"] += 1
                checked["unsigned"] += int(valid and precision.unsigned)
                if side == "b":
                    checked["partner_positions_differ"] += int(
                        valid and own[lane][3] != partner[lane][3])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert all(checked.values()), checked
