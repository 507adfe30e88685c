"""Edge selector: turns buffer words into the block lanes a PE row or column consumes.

One selector sits at the edge of each array row (A side) and each array column (B side).
It applies the precision mode defined by :func:`qforge.sim.model.numerics.select_blocks`, so
the PEs never see a precision setting: they multiply whatever blocks arrive and shift by
the positions that come with them.
"""

import itertools

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.capacity import tiles
from qforge.sim.model.spec import Config
from qforge.hdl.rounding import round_shift_addend, shift_rounded
from qforge.sim.model.rounding import Rounding
from qforge.hdl.layouts import (lane_select_layout, lanes_layout,
                                operand_precision_layout, operand_word_layout)

__all__ = ["BlockSelector", "lookup", "twos_complement_magnitude", "paired_controllers"]


def lookup(m: Module, name: str, width: int, inputs, function) -> Signal:
    """A ``width``-bit combinational table of the small unsigned ``inputs``: its value
    for every combination of their values ``v`` is ``function(*v)`` (a case of a switch
    on their concatenation, which synthesis maps to LUTs). For a handful of input bits
    only: the table has ``2 ** (total input bits)`` entries."""
    widths = [len(value) for value in inputs]
    if sum(widths) > 12:
        raise ValueError(f"lookup {name}: {sum(widths)} input bits make too large a table")
    out = Signal(unsigned(width), name=name)
    with m.Switch(Cat(*inputs)):
        for combination in itertools.product(*(range(1 << w) for w in widths)):
            key, offset = 0, 0
            for value, w in zip(combination, widths):
                key |= value << offset
                offset += w
            with m.Case(key):
                m.d.comb += out.eq(function(*combination))
    return out


def twos_complement_magnitude(bits: Value) -> Value:
    """``|x|`` of the ``W``-bit two's-complement value ``bits``, as ``W`` unsigned bits
    (``2**(W-1)`` for the most negative value), without an adder: negating flips every
    bit above the lowest set one, so bit ``i`` of ``|x|`` is ``x[i] ^ (sign & (x[0] | ..
    | x[i-1]))``. An OR prefix and an XOR per bit (a few LUT levels) instead of the
    carry chain of ``-x``, which after the buffer's block RAM was the default preset's
    critical path on the ULX3S (docs/ARCHITECTURE.md, "Timing")."""
    sign, below, out = bits[-1], Value.cast(0), []
    for bit in bits:
        out.append(bit ^ (sign & below))
        below = below | bit
    return Cat(*out)


def paired_controllers(config: Config) -> int:
    """Pair controllers an A selector needs (``arithmetic.paired``): the most pairs the P
    lanes of one cycle can reach. A slot (a pair) is ``q = n x Lb`` consecutive block
    products (``q >= n``) and a cycle ``P`` of them from a multiple of ``P``
    (hdl/scheduler.py), so it reaches one pair when ``P`` divides ``n`` (cycles never
    straddle a slot), else at most ``ceil((P - 1) / n) + 1``, and never more than the
    word's ``P / 2``.

    >>> from qforge.sim.model.spec import load_preset
    >>> paired_controllers(load_preset("paired"))          # n = 4, P = 4
    1
    """
    n, lanes = config.blocks, config.block_multipliers
    if n % lanes == 0:
        return 1
    return min(lanes // 2, tiles(lanes - 1, n) + 1)


class BlockSelector(wiring.Component):
    """Select one block of one operand for each of the P multiplier lanes.

    For lane ``l``, ``select[l].offset`` picks the operand ``x = word[offset]``, and
    ``select[l].index`` picks the kept block ``i`` (0 = lowest kept). The output lane is
    ``x``'s sign, the block at position ``e + i`` of ``|x|`` and that position, where
    ``e`` is the exponent chosen by ``precision`` exactly as in
    :func:`qforge.sim.model.numerics.select_blocks`:

    * static (or exact): ``e = blocks - kept``;
    * dynamic: ``e = max(t - (kept - 1), 0)``, ``t`` the highest non-zero block below
      ``blocks``.

    Lanes with ``select[l].valid == 0`` output a zero block (a product of zero).

    With :attr:`~qforge.sim.model.spec.Config.plain_lanes` (``K = W``: one block, every
    mode exact) the lane is ``x`` itself, or 0 when not valid.

    With ``precision.vrq`` (configurations with a ``[vrq]`` section), ``x`` is a VRQ
    carrier word: the code is the magnitude the mode selects blocks from, and the
    position is raised by the range's offset ``(G - 1 - g) * S / K`` blocks.

    With ``pe = "shared_shift"`` lane ``l`` takes operand ``l`` of the word (the schedule's
    only ``offset``), and a dynamic operand is selected by block position instead
    (:meth:`_shared_shift_window`): the scheduler walks all ``n`` positions, and the
    blocks outside each value's kept window are zero, so the products are those of the
    approximated operands.

    With ``arithmetic.paired`` an operand may be unsigned (``precision.unsigned``: the
    word's bits are its magnitude), and the selector of each side (``side``) plays its
    part of the paired mode (:mod:`qforge.sim.model.paired`):

    * ``side = "a"``, ``precision.paired``: lane ``l``'s ``offset`` is the first operand
      of a pair and its ``index`` an A-block slot ``j``; the pair's controller
      (:meth:`_pair_controller`, one per pair a cycle reaches:
      :func:`paired_controllers`) gives each operand its slots and window, and the lane
      carries block ``j`` of the slot's window and ``second`` when the slot is the second
      operand's (:meth:`_paired_lane`).
    * ``side = "b"``: every lane also carries the same block of operand ``offset + 1``
      as ``partner`` (the pair's second B operand), which a PE multiplies instead when the
      A lane's ``second`` is set.

    Latency: one cycle (``lanes`` is registered). No handshake: the selector is part of
    the fixed-latency feed pipeline and consumes one word every cycle.
    """

    def __init__(self, config: Config, side: str = "a"):
        if side not in ("a", "b"):
            raise ValueError(f"side = {side!r}: allowed 'a' (array rows) or 'b' (columns)")
        self._config = config
        self._side = side
        super().__init__({
            "word": In(operand_word_layout(config)),
            "precision": In(operand_precision_layout(config)),
            "select": In(data.ArrayLayout(lane_select_layout(config),
                                          config.block_multipliers)),
            "lanes": Out(lanes_layout(config)),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()
        if config.plain_lanes:
            # K = W: every mode keeps the one block, the operand itself (two's complement).
            for lane in range(config.block_multipliers):
                select = self.select[lane]
                m.d.sync += self.lanes[lane].value.eq(
                    Mux(select.valid, self.word[select.offset], 0))
            return m
        if config.paired and self._side == "a":
            pairs = [self._pair_controller(m, index)
                     for index in range(paired_controllers(config))]
        for lane in range(config.block_multipliers):
            select = self.select[lane]
            # shared_shift: lane l always holds operand l of the word (its schedule's
            # select.offset), so no operand multiplexer.
            if config.pe == "shared_shift":
                operand = self.word[lane]
            elif config.pe == "fused":
                operand = self._fused_operand(lane, select.offset)
            else:
                operand = self.word[select.offset]
            block, negative, position, valid = self._select_block(m, str(lane), operand,
                                                                  select)
            out = self.lanes[lane]
            if config.paired and self._side == "b":
                # The same block of the pair's second B operand (select.offset is even
                # in the paired mode; otherwise the partner is never used).
                partner = self.word[(select.offset + 1)[:len(select.offset)]]
                partner_block, partner_negative, partner_position, partner_valid = \
                    self._select_block(m, f"partner_{lane}", partner, select)
                m.d.sync += [out.partner.block.eq(Mux(partner_valid, partner_block, 0)),
                             out.partner.sign.eq(partner_negative),
                             out.partner.position.eq(partner_position)]
            if config.paired and self._side == "a":
                block, negative, position, valid, second = self._paired_lane(
                    m, lane, pairs, (block, negative, position, valid))
                m.d.sync += out.second.eq(second)
            m.d.sync += [
                out.block.eq(Mux(valid, block, 0)),
                out.sign.eq(negative),
                out.position.eq(position),
            ]
        return m

    def _magnitude(self, m: Module, name: str, bits: Value):
        """``(negative, |x|, range offset)`` of one operand word (VRQ carrier, unsigned or
        two's complement, as ``precision`` says)."""
        config, precision, vrq = self._config, self.precision, self._config.vrq
        width = config.operand_width
        negative = Signal(name=f"negative_{name}")
        magnitude = Signal(unsigned(width), name=f"magnitude_{name}")
        # Block offset of a VRQ operand's range (0 for integer operands).
        range_offset = Signal(unsigned(config.position_width), name=f"range_{name}")
        # |x| of the most negative value, 2**(W-1), still fits in W unsigned bits.
        m.d.comb += [negative.eq(bits[-1]), magnitude.eq(twos_complement_magnitude(bits))]
        if config.paired:
            # Unsigned operands (qforge.sim.model.numerics.operand_range): the word's bits
            # are the magnitude, the sign bit's place included.
            with m.If(precision.unsigned):
                m.d.comb += [negative.eq(0), magnitude.eq(bits.as_unsigned())]
        if vrq is not None:
            # VRQ carrier word (qforge.sim.model.numerics.vrq_pack): N code bits, the range
            # index g, the sign. The code is the magnitude; range g sits
            # (G - 1 - g) * S / K blocks up (qforge.sim.model.numerics.select_blocks).
            code = bits[:vrq.code_width]
            group = bits[vrq.code_width:vrq.code_width + config.vrq_range_bits]
            stride_blocks = vrq.range_stride // config.block_width
            with m.If(precision.vrq):
                m.d.comb += [negative.eq(bits[vrq.code_width + config.vrq_range_bits]),
                             magnitude.eq(code),
                             range_offset.eq((vrq.ranges - 1 - group) * stride_blocks)]
        return negative, magnitude, range_offset

    def _leading_block(self, m: Module, name: str, magnitude, blocks_minus_one=None):
        """``t``: the highest non-zero block of ``magnitude`` among the first
        ``blocks_minus_one + 1`` (all ``n`` when None), 0 for zero."""
        config = self._config
        block_width = config.block_width
        leading = Signal(unsigned(config.blocks_field_width), name=f"leading_{name}")
        for i in range(1, config.blocks):
            condition = magnitude[i * block_width:(i + 1) * block_width] != 0
            if blocks_minus_one is not None:
                condition = condition & (i <= blocks_minus_one)
            with m.If(condition):
                m.d.comb += leading.eq(i)
        return leading

    def _select_block(self, m: Module, name: str, operand, select):
        """One operand's block for one lane in the mode ``precision`` says: ``(block,
        negative, position, valid)``, combinational (the class docstring's rule)."""
        config, precision = self._config, self.precision
        block_width, blocks = config.block_width, config.blocks
        bits = Value.cast(operand)
        negative, magnitude, range_offset = self._magnitude(m, name, bits)
        block_values = [magnitude[i * block_width:(i + 1) * block_width]
                        for i in range(blocks)]

        # t: the highest non-zero block among the n = blocks_minus_one + 1 in use.
        leading = self._leading_block(m, name, magnitude, precision.blocks_minus_one)

        # The exponent and the block index are sums and differences of 2- or 3-bit
        # fields: written as tables (LUTs) rather than adders, which Yosys maps to
        # carry chains on the ECP5 whose routing put them on the default preset's
        # critical path (block RAM to the selector's lane registers).
        field = config.blocks_field_width
        mask = (1 << field) - 1
        exponent = Signal(unsigned(field), name=f"exponent_{name}")
        dynamic_exponent = lookup(
            m, f"dynamic_exponent_{name}", field, (leading, precision.kept_minus_one),
            lambda t, kept: t - kept if t >= kept else 0)
        static_exponent = lookup(
            m, f"static_exponent_{name}", field,
            (precision.blocks_minus_one, precision.kept_minus_one),
            lambda top, kept: (top - kept) & mask)
        m.d.comb += exponent.eq(Mux(precision.dynamic, dynamic_exponent, static_exponent))

        block_index = Signal(unsigned(config.blocks_field_width),
                             name=f"block_index_{name}")
        valid = select.valid
        if config.pe == "shared_shift":
            valid = self._shared_shift_window(m, name, select, exponent, block_index)
        else:
            m.d.comb += block_index.eq(lookup(
                m, f"block_sum_{name}", field, (exponent, select.index),
                lambda e, i: (e + i) & mask))
        block = Signal(unsigned(block_width), name=f"block_{name}")
        with m.Switch(block_index):
            for i in range(blocks):
                with m.Case(i):
                    m.d.comb += block.eq(block_values[i])
        position = Signal(unsigned(config.position_width), name=f"position_{name}")
        m.d.comb += position.eq(block_index + range_offset)
        return block, negative, position, valid

    def _pair_controller(self, m: Module, index: int):
        """The paired mode's controller ``c`` for the ``c``-th pair of the cycle: operands
        ``o + 2c`` and ``o + 2c + 1`` of the word, ``o`` lane 0's ``offset`` (the cycle's
        first pair; :func:`paired_controllers` says how many a cycle can reach)
        (:func:`qforge.sim.model.paired.paired_operands`): per operand its sign, the
        number of A-block slots it gets (``n`` when the other is zero, else its window:
        ``high`` for the larger magnitude, ties to the first, ``low`` for the other),
        its window's lowest block ``e`` (:func:`qforge.sim.model.blocks.dynamic_exponent`)
        and the window's value ``v`` (blocks ``e ..`` of the magnitude, RAW; or rounded
        to nearest even there, a carry saturating to the window, ROUND:
        :func:`qforge.sim.model.paired.window_value`), so that slot block ``j`` of the
        operand is block ``j`` of ``v`` at position ``e + j``."""
        config, precision = self._config, self.precision
        n, block_width, field = config.blocks, config.block_width, config.blocks_field_width
        width = config.operand_width
        max_shift = (n - 1) * block_width          # the lowest block of a window, e <= n - 1
        pair_count = config.block_multipliers // 2
        first_pair = self.select[0].offset >> 1
        operands = []
        for side in (0, 1):
            name = f"pair{index}_{side}"
            word = Signal(self.word[0].shape(), name=f"pair{index}_word_{side}")
            with m.Switch(first_pair):
                for pair in range(pair_count - index):
                    with m.Case(pair):
                        m.d.comb += word.eq(self.word[2 * (pair + index) + side])
            negative, magnitude, _ = self._magnitude(m, name, Value.cast(word))
            operands.append((name, negative, magnitude))
        (_, _, first), (_, _, second) = operands
        first_high = Signal(name=f"pair{index}_first_high")
        m.d.comb += first_high.eq(first >= second)
        sizes = []
        for side, (name, negative, magnitude) in enumerate(operands):
            other = operands[1 - side][2]
            mine_high = first_high if side == 0 else ~first_high
            size = Signal(range(n + 1), name=f"size_{name}")
            # Both zero: the first takes every slot (its products are zero anyway).
            with m.If((other == 0) & ((side == 0) | (magnitude != 0))):
                m.d.comb += size.eq(n)
            with m.Elif(magnitude == 0):
                m.d.comb += size.eq(0)
            with m.Else():
                m.d.comb += size.eq(Mux(mine_high, precision.high, precision.low))
            sizes.append(size)
        controlled = []
        for side, (name, negative, magnitude) in enumerate(operands):
            size = sizes[side]
            leading = self._leading_block(m, name, magnitude)
            # e = max(t - (L - 1), 0) for L = size (n: e = 0); a table of t and L.
            exponent = lookup(m, f"window_exponent_{name}", field,
                              (leading, size[:field] if n < (1 << field) else size),
                              lambda t, kept: max(t - kept + 1, 0) if kept else 0)
            # The magnitude shifted down to the window's lowest block: truncated (RAW) or
            # rounded to nearest, ties to even (ROUND), by the project's one round-shift
            # (hdl/rounding.py; the golden window_value uses round_shift).
            shift = Signal(range(max_shift + 1), name=f"window_shift_{name}")
            m.d.comb += shift.eq(exponent * block_width)
            addend = round_shift_addend(
                m, magnitude, shift,
                Mux(precision.round, Rounding.NEAREST_EVEN, Rounding.TRUNCATE),
                Const(0, 32), max_shift=max_shift, name=f"_window_{name}")
            rounded = shift_rounded(m, magnitude, addend, shift, name=f"_window_{name}")
            # A carry out of an L-block window saturates to the window's largest value.
            # Below the window's top block nothing is set when e > 0 (it starts at the
            # leading block), so the carry is exactly bit L*K of the sum (never set
            # when e = 0: nothing was added).
            largest = Signal(unsigned(width), name=f"window_largest_{name}")
            carry = Signal(name=f"window_carry_{name}")
            with m.Switch(size):
                for kept in range(1, n + 1):
                    with m.Case(kept):
                        m.d.comb += [largest.eq((1 << (kept * block_width)) - 1),
                                     carry.eq(rounded[kept * block_width])]
            value = Signal(unsigned(width), name=f"window_{name}")
            m.d.comb += value.eq(Mux(carry, largest, rounded))
            controlled.append((negative, size, exponent, value))
        return controlled

    def _paired_lane(self, m: Module, lane: int, pairs, plain):
        """Lane ``l`` in the paired mode (``precision.paired``; else ``plain``, the lane
        of the other modes): its ``select.offset`` is the pair's first operand and its
        ``select.index`` the A-block slot ``j`` (``0 .. n - 1``). Slots below the first
        operand's size are its window's blocks, the next ones the second's; a slot past
        both is invalid. Returns ``(block, negative, position, valid, second)``."""
        config, precision, select = self._config, self.precision, self.select[lane]
        block_width, field = config.block_width, config.blocks_field_width
        pair_count = len(pairs)
        # The lane's pair, counted from the cycle's first (lane 0's): its controller.
        pair_index = (select.offset - self.select[0].offset)[1:]
        choose = {}
        names = ("negative", "size", "exponent", "value")
        for side in (0, 1):
            for index, key in enumerate(names):
                options = [pairs[p][side][index] for p in range(pair_count)]
                if pair_count == 1:
                    choose[key, side] = options[0]
                    continue
                chosen = Signal.like(options[0], name=f"lane{lane}_{key}_{side}")
                with m.Switch(pair_index):
                    for p, option in enumerate(options):
                        with m.Case(p):
                            m.d.comb += chosen.eq(option)
                choose[key, side] = chosen
        slot = select.index
        second = Signal(name=f"second_{lane}")
        relative = Signal(unsigned(field), name=f"slot_{lane}")
        m.d.comb += [second.eq(slot >= choose["size", 0]),
                     relative.eq(Mux(second, slot - choose["size", 0], slot))]
        size = Mux(second, choose["size", 1], choose["size", 0])
        value = Mux(second, choose["value", 1], choose["value", 0])
        block = Signal(unsigned(block_width), name=f"paired_block_{lane}")
        with m.Switch(relative):
            for j in range(config.blocks):
                with m.Case(j):
                    m.d.comb += block.eq(value[j * block_width:(j + 1) * block_width])
        position = Signal(unsigned(config.position_width), name=f"paired_position_{lane}")
        m.d.comb += position.eq(Mux(second, choose["exponent", 1], choose["exponent", 0])
                                + relative)
        valid = select.valid & (relative < size)
        negative = Mux(second, choose["negative", 1], choose["negative", 0])
        plain_block, plain_negative, plain_position, plain_valid = plain
        paired = precision.paired
        return (Mux(paired, block, plain_block), Mux(paired, negative, plain_negative),
                Mux(paired, position, plain_position), Mux(paired, valid, plain_valid),
                paired & second)

    def _fused_operand(self, lane: int, offset):
        """``pe = "fused"``: the operand of lane ``l`` is one of at most three of the
        word (:func:`qforge.hdl.scheduler.fused_table`): ``l`` (one-block modes, one MAC
        per lane), or ``l // 2`` or ``l // 2 + P / 2`` (wide modes, one MAC per lane pair,
        two pairs of words' halves per word), so a 3-way choice replaces the P-way one."""
        lanes = self._config.block_multipliers
        candidates = sorted({lane, lane // 2, lane // 2 + lanes // 2})
        operand = self.word[candidates[-1]]
        for candidate in reversed(candidates[:-1]):
            operand = Mux(offset == candidate, self.word[candidate], operand)
        return operand

    def _shared_shift_window(self, m: Module, name: str, select, exponent, block_index):
        """``pe = "shared_shift"``: a dynamic operand's ``select.index`` is a block
        position ``0 .. n - 1`` (every lane of a cycle at the same one), and the block is
        the approximated magnitude's there: the magnitude's block inside the kept window
        ``exponent .. exponent + kept - 1``, else 0. Static and exact operands select as
        always (``exponent + index``). Drives ``block_index``; returns the lane's
        valid-and-in-window condition."""
        precision = self.precision
        in_window = Signal(name=f"in_window_{name}")
        m.d.comb += [
            block_index.eq(Mux(precision.dynamic, select.index, exponent + select.index)),
            in_window.eq(~precision.dynamic | (
                (select.index >= exponent)
                & (select.index <= exponent + precision.kept_minus_one))),
        ]
        return select.valid & in_window
