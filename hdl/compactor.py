"""Row compactor: writes A beats into the zero-skipping array's A banks as row entries."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import (a_beat_layout, command_layout, entry_count_layout,
                                row_entry_layout)

__all__ = ["RowCompactor"]


class RowCompactor(wiring.Component):
    """Turn each A row of a command into a list of entries, one per word with work.

    Zero-skipping configurations only. A beats arrive ``for mt: for w:`` (R words per
    beat, word r for row ``mt * R + r``; :func:`qforge.sim.host.packing.pack_operands`). For
    row r of each beat the compactor computes the word's *mask*: bit l is set when
    operand ``w * P + l`` is inside the dot product (``<= depth - 1``) and, when the
    command sets ``skip_zeros``, not zero by :func:`qforge.sim.model.numerics.zero_operands`
    (operand word 0, or VRQ code 0 when ``a.vrq``). A word with a non-zero mask becomes
    the row's next entry (:func:`~qforge.hdl.layouts.row_entry_layout`: operands, ``w``,
    mask), written to bank r at ``half * buffer_depth + mt * words + entries_so_far``.
    With ``skip_zeros = 0`` every word is an entry, at its dense address. After a row
    tile's last word the R entry counts are written to the count memory at
    ``half * buffer_depth + mt``.

    Timing: ``start`` (a checked command starts loading, with ``command`` and ``half``)
    resets the counters; in every cycle ``beat_valid`` is high, the write ports are driven for
    that beat (same cycle, for the banks' synchronous write ports).
    """

    def __init__(self, config: Config):
        assert config.zero_skipping
        self._config = config
        address = unsigned(config.buffer_address_width)
        super().__init__({
            "start": In(1),
            "command": In(command_layout(config)),
            "half": In(1),
            "beat_valid": In(1),
            "beat": In(a_beat_layout(config)),
            "write_address": Out(data.ArrayLayout(address, config.rows)),
            "write_enable": Out(config.rows),
            "entry": Out(data.ArrayLayout(row_entry_layout(config), config.rows)),
            "count_address": Out(address),
            "count_enable": Out(1),
            "counts": Out(entry_count_layout(config)),
        })

    def elaborate(self, platform):
        config = self._config
        lanes = config.block_multipliers
        m = Module()

        depth_minus_one = Signal.like(self.command.depth_minus_one)
        skip = Signal()
        vrq = Signal()
        half = Signal()
        word_shape = unsigned(config.word_index_width + 1)
        words = Signal(word_shape)
        word = Signal(word_shape)                                   # w
        tile = Signal(unsigned(config.tiles_field_width))           # mt
        tile_base = Signal(unsigned(config.buffer_address_width))   # mt * words
        count_shape = unsigned(config.max_depth_words.bit_length())
        counts = [Signal(count_shape, name=f"count_{r}") for r in range(config.rows)]

        with m.If(self.start):
            command = self.command
            m.d.sync += [depth_minus_one.eq(command.depth_minus_one),
                         skip.eq(command.skip_zeros), vrq.eq(command.a.vrq),
                         half.eq(self.half),
                         words.eq((command.depth_minus_one >> (lanes.bit_length() - 1)) + 1),
                         word.eq(0), tile.eq(0), tile_base.eq(0)]
            m.d.sync += [count.eq(0) for count in counts]

        half_base = Mux(half, config.buffer_depth, 0)
        # Lane l is inside the dot product when w * P + l <= depth - 1.
        inside = [(word * lanes + l) <= depth_minus_one for l in range(lanes)]
        row_last = word == words - 1
        for r in range(config.rows):
            operands = self.beat[r]
            nonzero = []
            for l in range(lanes):
                operand = operands[l]
                if config.vrq is not None:
                    code = operand[:config.vrq.code_width]
                    nonzero.append(Mux(vrq, code != 0, operand != 0))
                else:
                    nonzero.append(operand != 0)
            mask = Signal(lanes, name=f"mask_{r}")
            m.d.comb += mask.eq(Cat(*inside) & Mux(skip, Cat(*nonzero), (1 << lanes) - 1))
            kept = mask != 0
            entry = self.entry[r]
            m.d.comb += [entry.operands.eq(operands), entry.word.eq(word),
                         entry.mask.eq(mask),
                         self.write_address[r].eq(half_base + tile_base + counts[r]),
                         self.write_enable[r].eq(self.beat_valid & kept),
                         self.counts[r].eq(counts[r] + kept)]
            with m.If(self.beat_valid):
                m.d.sync += counts[r].eq(Mux(row_last, 0, counts[r] + kept))

        m.d.comb += [self.count_address.eq(half_base + tile),
                     self.count_enable.eq(self.beat_valid & row_last)]
        with m.If(self.beat_valid):
            with m.If(row_last):
                m.d.sync += [word.eq(0), tile.eq(tile + 1), tile_base.eq(tile_base + words)]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        return m
