"""Scheduler of the zero-skipping array: walks each A row's entries, skipping zeros."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import (entry_count_layout, flags_layout, lane_select_layout,
                                operand_precision_layout, row_entry_layout)
from qforge.hdl.scheduler import advance_lane, job_layout, mode_table

__all__ = ["SkippingScheduler", "skipping_issue_layout"]


def skipping_issue_layout(config: Config) -> data.StructLayout:
    """What the zero-skipping scheduler issues in a cycle: the PE-local B bank address,
    per-lane selections, the precision, tile flags and the tile's drained rows."""
    lane_selects = data.ArrayLayout(lane_select_layout(config), config.block_multipliers)
    return data.StructLayout({
        "valid": 1,
        "b_address": unsigned(config.pe_buffer_address_width),
        "a_select": lane_selects,
        "b_select": lane_selects,
        "a_precision": operand_precision_layout(config),
        "b_precision": operand_precision_layout(config),
        "flags": flags_layout(config),
        "rows": unsigned(config.rows.bit_length()),
    })


class SkippingScheduler(wiring.Component):
    """Issue the block products of every tile of a GEMM on the zero-skipping array.

    A tile is one A row ``a = mt * R + r`` times one column group ``g`` (``R * C``
    columns: PE row ``r'`` holds column tile ``g * R + r'``); tiles go
    ``for a: for g:``, ``ceil(n_tiles / R)`` groups per row, the last one holding
    ``rows = min(R, n_tiles - g * R)`` column tiles (the rows the drain emits).

    Row ``a`` is a list of ``count`` entries (:class:`~qforge.hdl.compactor.RowCompactor`)
    at A bank ``r``, addresses ``half * buffer_depth + mt * words + j``; ``count`` is
    element r of the count memory at ``half * buffer_depth + mt``. An entry with mask
    bits ``n`` takes ``ceil(n * q / P)`` cycles: its ``n * q`` block products are packed
    into the P lanes exactly as :class:`~qforge.hdl.scheduler.Scheduler` packs a word's
    (:func:`qforge.sim.model.cycles.lane_schedule`, restarted per entry), with lane operand
    digit ``o`` mapped to the operand of the ``o``-th set mask bit. A row without
    entries takes one cycle with no valid lane. So a tile takes
    :func:`qforge.sim.model.cycles.row_cycles` cycles.

    Reads are issued from the *next* state (``entry_address`` and ``count_address``), so
    in every cycle ``entry`` and ``count`` (bank r's read data, selected by ``row``) hold
    the current entry and count: a new entry or tile costs no cycle. The issued
    ``b_address`` is ``half * pe_buffer_depth + g * words + entry.word``.

    Flow control is that of :class:`~qforge.hdl.scheduler.Scheduler`: the last cycle
    of a tile waits for ``drain_free``; ``release`` pulses after a job's final cycle.
    """

    def __init__(self, config: Config):
        assert config.zero_skipping
        self._config = config
        address = unsigned(config.buffer_address_width)
        super().__init__({
            "job": In(stream.Signature(job_layout(config))),
            "issue": Out(skipping_issue_layout(config)),
            "entry_address": Out(address),
            "count_address": Out(address),
            "row": Out(unsigned(max(1, (config.rows - 1).bit_length()))),
            "entry": In(row_entry_layout(config)),
            "count": In(entry_count_layout(config).elem_shape),
            "drain_free": In(1),
            "release": Out(1),
            "release_half": Out(1),
            "active": Out(1),
        })

    def elaborate(self, platform):
        """One method (about 145 lines): the entry walk, the issued record and the state
        updates are one cycle's schedule, read top to bottom, as in
        :meth:`qforge.hdl.scheduler.Scheduler.elaborate`."""
        config = self._config
        lanes, rows = config.block_multipliers, config.rows
        m = Module()

        command = Signal.like(self.job.payload.command, name="command")
        half = Signal()
        tile = Signal(unsigned(config.tiles_field_width))               # mt
        row = self.row                                                 # r
        tile_base = Signal(unsigned(config.buffer_address_width))       # mt * words
        group_base = Signal(unsigned(config.pe_buffer_address_width))   # g * words
        tiles_left = Signal(unsigned(config.tiles_field_width + 1))     # n_tiles - g * R
        entry_index = Signal(unsigned(config.word_index_width + 1))     # j
        tile_first = Signal()    # the next issued cycle starts a tile
        entry_first = Signal()   # ... starts an entry: lanes take the table's digits
        words = (command.depth_minus_one >> (lanes.bit_length() - 1)) + 1
        n_tiles = command.n_tiles_minus_one + 1

        offset_shape = unsigned(max(1, (lanes - 1).bit_length()))
        index_shape = unsigned(config.blocks_field_width)
        offsets = [Signal(offset_shape, name=f"offset_{l}") for l in range(lanes)]
        a_indices = [Signal(index_shape, name=f"a_index_{l}") for l in range(lanes)]
        b_indices = [Signal(index_shape, name=f"b_index_{l}") for l in range(lanes)]
        table = mode_table(m, config, command)
        current_offsets, current_a, current_b = [], [], []
        for l in range(lanes):
            for name, stored, start, out in (
                    ("offset", offsets[l], table.init_offsets[l], current_offsets),
                    ("a", a_indices[l], table.init_a[l], current_a),
                    ("b", b_indices[l], table.init_b[l], current_b)):
                current = Signal.like(stored, name=f"current_{name}_{l}")
                m.d.comb += current.eq(Mux(entry_first, start, stored))
                out.append(current)

        # ---- the current entry ------------------------------------------------------
        entry = self.entry
        mask = entry.mask
        empty = self.count == 0
        mask_bits = Signal(range(lanes + 1))
        m.d.comb += mask_bits.eq(sum(mask[l] for l in range(lanes)))
        # prefix[p]: set mask bits below p; lane digit o takes the operand at the p
        # with mask[p] set and prefix[p] == o (dense entries: p = o).
        prefix = [sum((mask[q] for q in range(p)), start=0) for p in range(lanes)]

        next_offsets, next_a, next_b = [], [], []
        for l in range(lanes):
            offset_sum, a_digit, b_digit = advance_lane(
                table, command, current_offsets[l], current_a[l], current_b[l])
            next_offsets.append(offset_sum)
            next_a.append(a_digit)
            next_b.append(b_digit)
        entry_done = Signal()
        m.d.comb += entry_done.eq(empty | (next_offsets[0] >= mask_bits))
        last_entry = empty | (entry_index + 1 >= self.count)
        tile_last = Signal()
        m.d.comb += tile_last.eq(entry_done & last_entry)
        last_group = tiles_left <= rows
        last_row = row == rows - 1
        last_tile = tile == command.m_tiles_minus_one

        can_issue = Signal()
        m.d.comb += can_issue.eq(self.active & (~tile_last | self.drain_free))

        # ---- the issued record ------------------------------------------------------
        issue = self.issue
        m.d.comb += [
            issue.valid.eq(can_issue),
            issue.b_address.eq(Mux(half, config.pe_buffer_depth, 0) + group_base
                               + entry.word),
            issue.a_precision.eq(command.a),
            issue.b_precision.eq(command.b),
            issue.flags.first.eq(can_issue & tile_first),
            issue.flags.last.eq(can_issue & tile_last),
            issue.flags.gemm_last.eq(can_issue & tile_last & last_group & last_row
                                     & last_tile),
            issue.rows.eq(Mux(last_group, tiles_left, rows)),
        ]
        for l in range(lanes):
            offset = Signal(offset_shape, name=f"operand_{l}")
            for p in range(lanes):
                with m.If(mask[p] & (prefix[p] == current_offsets[l])):
                    m.d.comb += offset.eq(p)
            lane_valid = can_issue & ~empty & (current_offsets[l] < mask_bits)
            m.d.comb += [
                issue.a_select[l].offset.eq(offset),
                issue.a_select[l].index.eq(current_a[l]),
                issue.a_select[l].valid.eq(lane_valid),
                issue.b_select[l].offset.eq(offset),
                issue.b_select[l].index.eq(current_b[l]),
                issue.b_select[l].valid.eq(lane_valid),
            ]

        # ---- state updates (the read addresses follow the next state) ---------------
        next_half = Signal()
        next_tile = Signal.like(tile)
        next_tile_base = Signal.like(tile_base)
        next_entry_index = Signal.like(entry_index)
        m.d.comb += [next_half.eq(half), next_tile.eq(tile), next_tile_base.eq(tile_base),
                     next_entry_index.eq(entry_index)]
        m.d.sync += self.release.eq(0)
        with m.If(can_issue):
            with m.If(tile_last):
                m.d.sync += [tile_first.eq(1), entry_first.eq(1)]
                m.d.comb += next_entry_index.eq(0)
                with m.If(last_group):
                    m.d.sync += [group_base.eq(0), tiles_left.eq(n_tiles)]
                    with m.If(last_row):
                        m.d.sync += row.eq(0)
                        with m.If(last_tile):
                            m.d.sync += [self.active.eq(0), self.release.eq(1),
                                         self.release_half.eq(half)]
                        with m.Else():
                            m.d.comb += [next_tile.eq(tile + 1),
                                         next_tile_base.eq(tile_base + words)]
                    with m.Else():
                        m.d.sync += row.eq(row + 1)
                with m.Else():
                    m.d.sync += [group_base.eq(group_base + words),
                                 tiles_left.eq(tiles_left - rows)]
            with m.Elif(entry_done):
                m.d.sync += [tile_first.eq(0), entry_first.eq(1)]
                m.d.comb += next_entry_index.eq(entry_index + 1)
            with m.Else():
                m.d.sync += [tile_first.eq(0), entry_first.eq(0)]
                for l in range(lanes):
                    m.d.sync += [offsets[l].eq(next_offsets[l][:offset_shape.width]),
                                 a_indices[l].eq(next_a[l]), b_indices[l].eq(next_b[l])]

        m.d.comb += self.job.ready.eq(~self.active)
        with m.If(self.job.valid & self.job.ready):
            job = self.job.payload
            m.d.sync += [command.eq(job.command), row.eq(0), group_base.eq(0),
                         tiles_left.eq(job.command.n_tiles_minus_one + 1),
                         tile_first.eq(1), entry_first.eq(1), self.active.eq(1)]
            m.d.comb += [next_half.eq(job.half), next_tile.eq(0), next_tile_base.eq(0),
                         next_entry_index.eq(0)]
        m.d.sync += [half.eq(next_half), tile.eq(next_tile), tile_base.eq(next_tile_base),
                     entry_index.eq(next_entry_index)]
        m.d.comb += [
            self.entry_address.eq(Mux(next_half, config.buffer_depth, 0) + next_tile_base
                                  + next_entry_index),
            self.count_address.eq(Mux(next_half, config.buffer_depth, 0) + next_tile),
        ]
        return m
