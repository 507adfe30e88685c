"""Edge selector: turns buffer words into the block lanes a PE row or column consumes.

One selector sits at the edge of each array row (A side) and each array column (B side).
It applies the precision mode defined by :func:`qforge.sim.model.numerics.select_blocks`, so
the PEs never see a precision setting: they multiply whatever blocks arrive and shift by
the positions that come with them.
"""

import itertools

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import (lane_select_layout, lanes_layout,
                                operand_precision_layout, operand_word_layout)

__all__ = ["BlockSelector", "lookup", "twos_complement_magnitude"]


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

    Latency: one cycle (``lanes`` is registered). No handshake: the selector is part of
    the fixed-latency feed pipeline and consumes one word every cycle.
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "word": In(operand_word_layout(config)),
            "precision": In(operand_precision_layout(config)),
            "select": In(data.ArrayLayout(lane_select_layout(config),
                                          config.block_multipliers)),
            "lanes": Out(lanes_layout(config)),
        })

    def elaborate(self, platform):
        config = self._config
        width, block_width, blocks = (config.operand_width, config.block_width,
                                      config.blocks)
        m = Module()
        if config.plain_lanes:
            # K = W: every mode keeps the one block, the operand itself (two's complement).
            for lane in range(config.block_multipliers):
                select = self.select[lane]
                m.d.sync += self.lanes[lane].value.eq(
                    Mux(select.valid, self.word[select.offset], 0))
            return m
        precision = self.precision
        vrq = config.vrq
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
            bits = Value.cast(operand)
            negative = Signal(name=f"negative_{lane}")
            magnitude = Signal(unsigned(width), name=f"magnitude_{lane}")
            # Block offset of a VRQ operand's range (0 for integer operands).
            range_offset = Signal(unsigned(config.position_width), name=f"range_{lane}")
            # |x| of the most negative value, 2**(W-1), still fits in W unsigned bits.
            m.d.comb += [negative.eq(bits[-1]), magnitude.eq(twos_complement_magnitude(bits))]
            if vrq is not None:
                # VRQ carrier word (qforge.sim.model.numerics.vrq_pack): N code bits, the range
                # index g, the sign. The code is the magnitude; range g sits
                # (G - 1 - g) * S / K blocks up (qforge.sim.model.numerics.select_blocks).
                code = bits[:vrq.code_width]
                group = bits[vrq.code_width:vrq.code_width + config.vrq_range_bits]
                stride_blocks = vrq.range_stride // block_width
                with m.If(precision.vrq):
                    m.d.comb += [negative.eq(bits[vrq.code_width + config.vrq_range_bits]),
                                 magnitude.eq(code),
                                 range_offset.eq((vrq.ranges - 1 - group) * stride_blocks)]
            block_values = [magnitude[i * block_width:(i + 1) * block_width]
                            for i in range(blocks)]

            # t: the highest non-zero block among the n = blocks_minus_one + 1 in use.
            leading = Signal(unsigned(config.blocks_field_width), name=f"leading_{lane}")
            for i in range(1, blocks):
                with m.If((block_values[i] != 0) & (i <= precision.blocks_minus_one)):
                    m.d.comb += leading.eq(i)

            # The exponent and the block index are sums and differences of 2- or 3-bit
            # fields: written as tables (LUTs) rather than adders, which Yosys maps to
            # carry chains on the ECP5 whose routing put them on the default preset's
            # critical path (block RAM to the selector's lane registers).
            field = config.blocks_field_width
            mask = (1 << field) - 1
            exponent = Signal(unsigned(field), name=f"exponent_{lane}")
            dynamic_exponent = lookup(
                m, f"dynamic_exponent_{lane}", field, (leading, precision.kept_minus_one),
                lambda t, kept: t - kept if t >= kept else 0)
            static_exponent = lookup(
                m, f"static_exponent_{lane}", field,
                (precision.blocks_minus_one, precision.kept_minus_one),
                lambda top, kept: (top - kept) & mask)
            m.d.comb += exponent.eq(Mux(precision.dynamic, dynamic_exponent, static_exponent))

            block_index = Signal(unsigned(config.blocks_field_width),
                                 name=f"block_index_{lane}")
            valid = select.valid
            if config.pe == "shared_shift":
                valid = self._shared_shift_window(m, lane, exponent, block_index)
            else:
                m.d.comb += block_index.eq(lookup(
                    m, f"block_sum_{lane}", field, (exponent, select.index),
                    lambda e, i: (e + i) & mask))
            block = Signal(unsigned(block_width), name=f"block_{lane}")
            with m.Switch(block_index):
                for i in range(blocks):
                    with m.Case(i):
                        m.d.comb += block.eq(block_values[i])
            position = Signal(unsigned(config.position_width), name=f"position_{lane}")
            m.d.comb += position.eq(block_index + range_offset)

            out = self.lanes[lane]
            m.d.sync += [
                out.block.eq(Mux(valid, block, 0)),
                out.sign.eq(negative),
                out.position.eq(position),
            ]
        return m

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

    def _shared_shift_window(self, m: Module, lane: int, exponent, block_index):
        """``pe = "shared_shift"``: a dynamic operand's ``select.index`` is a block
        position ``0 .. n - 1`` (every lane of a cycle at the same one), and the block is
        the approximated magnitude's there: the magnitude's block inside the kept window
        ``exponent .. exponent + kept - 1``, else 0. Static and exact operands select as
        always (``exponent + index``). Drives ``block_index``; returns the lane's
        valid-and-in-window condition."""
        precision, select = self.precision, self.select[lane]
        in_window = Signal(name=f"in_window_{lane}")
        m.d.comb += [
            block_index.eq(Mux(precision.dynamic, select.index, exponent + select.index)),
            in_window.eq(~precision.dynamic | (
                (select.index >= exponent)
                & (select.index <= exponent + precision.kept_minus_one))),
        ]
        return select.valid & in_window
