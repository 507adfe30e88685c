"""Scheduler: walks a GEMM's output tiles and packs block products into the P lanes."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import (command_layout, flags_layout, lane_select_layout,
                                operand_precision_layout)
from qforge.sim.model.capacity import tiles
from qforge.sim.model.cycles import lane_schedule

__all__ = ["Scheduler", "job_layout", "issue_layout", "ModeTable", "mode_table", "advance_lane",
           "issued_blocks", "shared_shift_table", "fused_wide", "fused_table"]


def job_layout(config: Config) -> data.StructLayout:
    """A loaded GEMM handed from the loader to the scheduler: command and buffer half."""
    return data.StructLayout({"command": command_layout(config), "half": 1})


def issue_layout(config: Config) -> data.StructLayout:
    """What the scheduler issues in a cycle: buffer addresses and per-lane selections."""
    lane_selects = data.ArrayLayout(lane_select_layout(config), config.block_multipliers)
    return data.StructLayout({
        "valid": 1,
        "a_address": unsigned(config.buffer_address_width),
        "b_address": unsigned(config.buffer_address_width),
        "a_select": lane_selects,
        "b_select": lane_selects,
        "a_precision": operand_precision_layout(config),
        "b_precision": operand_precision_layout(config),
        "flags": flags_layout(config),
    })


class Scheduler(wiring.Component):
    """Issue the block products of every output tile of a GEMM, P per cycle.

    A job (from the loader) names a buffer half and a command: ``m_tiles x n_tiles``
    output tiles, each a dot product of ``depth`` operands, with ``La`` and ``Lb`` kept
    blocks. Tiles are issued in order ``for mt: for nt:``. A tile's ``depth * q`` block
    products (``q = La * Lb``) are numbered ``f = k * q + i * Lb + j`` (operand ``k``, A
    block ``i``, B block ``j``); in its c-th cycle lane ``l`` carries product
    ``f = c * P + l``, so a tile takes ``ceil(depth * q / P)`` cycles (see
    :func:`qforge.sim.model.cycles.lane_schedule`). Lanes with ``k >= depth`` are marked
    invalid (zero products).

    All lanes of a cycle read the same buffer word ``k // P`` (a word boundary
    ``k = w * P`` is product ``f = w * P * q``, a multiple of P, so it always falls at the
    start of a cycle); the issued addresses are ``half * depth + tile * words + word``.

    Per lane the scheduler keeps ``(offset, i, j)`` = ``(k mod P, i, j)`` and the shared
    word; each cycle advances every lane by P products, a mixed-radix add of the constant
    ``(P // q, (P % q) // Lb, (P % q) % Lb)``. The per-mode constants and each lane's
    starting digits come from a small table built at elaboration time from
    :func:`lane_schedule`.

    With ``pe = "shared_shift"`` the lanes walk the products in another order
    (:func:`shared_shift_table`): cycle ``(w, i, j)`` issues block pair ``(i, j)`` of the
    word's P operands, lane ``l`` operand ``w * P + l``, for ``i < Ea``, ``j < Eb``
    (:func:`issued_blocks`), so a tile takes ``ceil(depth / P) * Ea * Eb`` cycles.

    With ``pe = "fused"`` (``n = 2``) a MAC is one product of its kept operands whole
    (:func:`fused_table`): in a *wide* mode (either side keeps both blocks,
    :func:`fused_wide`) it takes 2 lanes, lane ``t`` carrying kept block ``t`` of each
    side (zero past that side's ``L``), so a lane pair holds one MAC; otherwise one
    lane, as ``q = 1``. The lane schedule is the dense one for ``(2, 1)`` or ``(1, 1)``
    (``ceil(depth * 2 / P)`` or ``ceil(depth / P)`` cycles), and ``flags.wide`` tells
    the PEs which.

    Flow control: ``issue`` has no ready; a cycle is issued or skipped. The last cycle of
    a tile is only issued while ``drain_free`` is high (the result registers are free for
    the new tile's results). ``release`` pulses (with ``release_half``) in the cycle after
    a job's final read is issued; from then on the loader may overwrite that half.
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "job": In(stream.Signature(job_layout(config))),
            "issue": Out(issue_layout(config)),
            "drain_free": In(1),
            "release": Out(1),
            "release_half": Out(1),
            "active": Out(1),
        })

    def elaborate(self, platform):
        """One method (about 140 lines): the lane state, the issued record and the state
        updates are one cycle's schedule, read top to bottom; the mode table and the
        lane advance are already functions (:func:`mode_table`, :func:`advance_lane`)."""
        config = self._config
        lanes = config.block_multipliers
        m = Module()

        command = Signal(command_layout(config))
        half = Signal()
        tile_m = Signal(unsigned(config.tiles_field_width))
        tile_n = Signal(unsigned(config.tiles_field_width))
        tile_base_width = max(1, config.buffer_depth.bit_length())
        a_base = Signal(unsigned(tile_base_width))
        b_base = Signal(unsigned(tile_base_width))
        first = Signal()  # the next issued cycle starts a tile

        offset_shape = unsigned(max(1, (lanes - 1).bit_length()))
        index_shape = unsigned(config.blocks_field_width)
        word_shape = unsigned(max(1, (config.max_depth_words - 1).bit_length()))
        word = Signal(word_shape)
        offsets = [Signal(offset_shape, name=f"offset_{l}") for l in range(lanes)]
        a_indices = [Signal(index_shape, name=f"a_index_{l}") for l in range(lanes)]
        b_indices = [Signal(index_shape, name=f"b_index_{l}") for l in range(lanes)]

        if config.pe == "shared_shift":
            table = shared_shift_table(m, config)
        elif config.pe == "fused":
            table = fused_table(m, config, command)
        else:
            table = mode_table(m, config, command)
        init_offsets, init_a, init_b = table.init_offsets, table.init_a, table.init_b

        # The lane state this cycle: the table's starting digits on a tile's first cycle.
        current_word = Signal(word_shape)
        current_offsets = [Signal(offset_shape, name=f"current_offset_{l}")
                           for l in range(lanes)]
        current_a = [Signal(index_shape, name=f"current_a_{l}") for l in range(lanes)]
        current_b = [Signal(index_shape, name=f"current_b_{l}") for l in range(lanes)]
        m.d.comb += current_word.eq(Mux(first, 0, word))
        for l in range(lanes):
            m.d.comb += [current_offsets[l].eq(Mux(first, init_offsets[l], offsets[l])),
                         current_a[l].eq(Mux(first, init_a[l], a_indices[l])),
                         current_b[l].eq(Mux(first, init_b[l], b_indices[l]))]

        # Advance every lane by P products: mixed-radix add in (operand, La, Lb) digits.
        next_offsets, next_a, next_b, word_carries = [], [], [], []
        for l in range(lanes):
            offset_sum, a_digit, b_digit = advance_lane(
                table, command, current_offsets[l], current_a[l], current_b[l],
                shared_shift=config.pe == "shared_shift",
                fused_wide=fused_wide(command) if config.pe == "fused" else None,
                paired_mode=config.paired)
            word_carry = offset_sum >= lanes
            next_b.append(b_digit)
            next_a.append(a_digit)
            next_offsets.append(Mux(word_carry, offset_sum - lanes,
                                    offset_sum)[:offset_shape.width])
            word_carries.append(word_carry)
        # One bit wider than ``word`` (the sum after a tile's last word is not stored:
        # ``first`` restarts the digits).
        next_word = Signal(unsigned(word_shape.width + 1))
        m.d.comb += next_word.eq(current_word + word_carries[0])

        def operand_index(word_value, offset_value):
            return word_value * lanes + offset_value

        depth_minus_one = command.depth_minus_one
        # A tile takes ceil(depth * q / P) cycles (sim/model/cycles.py: tile_cycles): its last
        # cycle comes from a cycle counter against that count, computed once per job, not
        # from the lane digits' carry chain (which, through the drain interlock into the
        # issue control, was the iCE40's critical path: 18.6 MHz).
        max_tile_cycles = tiles(config.max_reduction_depth * config.blocks ** 2, lanes)
        if config.pe == "shared_shift":     # whole words of every block pair
            max_tile_cycles = tiles(config.max_reduction_depth, lanes) * config.blocks ** 2
        cycle_shape = unsigned(max(1, (max_tile_cycles - 1).bit_length()))
        tile_cycle = Signal(cycle_shape)        # cycles of the current tile issued so far
        last_cycle = Signal(cycle_shape)        # tile_cycles - 1 for the current job
        tile_last = Signal()
        m.d.comb += tile_last.eq(tile_cycle == last_cycle)
        last_tile_n = tile_n == command.n_tiles_minus_one
        last_tile_m = tile_m == command.m_tiles_minus_one

        can_issue = Signal()
        m.d.comb += can_issue.eq(self.active & (~tile_last | self.drain_free))

        # ---- the issued record ------------------------------------------------------
        words_per_tile = (depth_minus_one >> (lanes.bit_length() - 1)) + 1
        half_base = Mux(half, config.buffer_depth, 0)
        issue = self.issue
        m.d.comb += [
            issue.valid.eq(can_issue),
            issue.a_address.eq(half_base + a_base + current_word),
            issue.b_address.eq(half_base + b_base + current_word),
            issue.a_precision.eq(command.a),
            issue.b_precision.eq(command.b),
            issue.flags.first.eq(can_issue & first),
            issue.flags.last.eq(can_issue & tile_last),
            issue.flags.gemm_last.eq(can_issue & tile_last & last_tile_n & last_tile_m),
        ]
        if config.pe == "fused":
            m.d.comb += issue.flags.wide.eq(can_issue & fused_wide(command))
        for l in range(lanes):
            lane_valid = can_issue & (operand_index(current_word, current_offsets[l])
                                      <= depth_minus_one)
            a_valid = b_valid = lane_valid
            b_index = current_b[l]
            if config.pe == "fused":
                # Lane t of a MAC carries kept block t of both sides (the A digit), a
                # side's block being zero past its L.
                b_index = current_a[l]
                a_valid = lane_valid & (current_a[l] <= command.a.kept_minus_one)
                b_valid = lane_valid & (current_a[l] <= command.b.kept_minus_one)
            m.d.comb += [
                issue.a_select[l].offset.eq(current_offsets[l]),
                issue.a_select[l].index.eq(current_a[l]),
                issue.a_select[l].valid.eq(a_valid),
                issue.b_select[l].offset.eq(current_offsets[l]),
                issue.b_select[l].index.eq(b_index),
                issue.b_select[l].valid.eq(b_valid),
            ]

        # ---- state updates ----------------------------------------------------------
        m.d.sync += self.release.eq(0)
        with m.If(can_issue):
            m.d.sync += tile_cycle.eq(Mux(tile_last, 0, tile_cycle + 1))
            with m.If(tile_last):
                m.d.sync += first.eq(1)
                with m.If(last_tile_n):
                    m.d.sync += [tile_n.eq(0), b_base.eq(0)]
                    with m.If(last_tile_m):
                        m.d.sync += [self.active.eq(0), self.release.eq(1),
                                     self.release_half.eq(half)]
                    with m.Else():
                        m.d.sync += [tile_m.eq(tile_m + 1), a_base.eq(a_base + words_per_tile)]
                with m.Else():
                    m.d.sync += [tile_n.eq(tile_n + 1), b_base.eq(b_base + words_per_tile)]
            with m.Else():
                m.d.sync += [first.eq(0), word.eq(next_word[:word_shape.width])]
                for l in range(lanes):
                    m.d.sync += [offsets[l].eq(next_offsets[l]), a_indices[l].eq(next_a[l]),
                                 b_indices[l].eq(next_b[l])]

        m.d.comb += self.job.ready.eq(~self.active)
        # tile_cycles - 1 = ceil((depth_minus_one + 1) * La * Lb / P) - 1 of the new job.
        incoming = self.job.payload.command
        block_products = Signal(unsigned(2 * config.blocks_field_width + 1))
        products = Signal(unsigned(config.depth_field_width + len(block_products) + 1))
        if config.pe == "shared_shift":
            # words * Ea * Eb cycles (sim/model/cycles.py: issued_block_products).
            m.d.comb += [
                block_products.eq(issued_blocks(incoming.a) * issued_blocks(incoming.b)),
                products.eq(((incoming.depth_minus_one >> (lanes.bit_length() - 1)) + 1)
                            * block_products),
            ]
            tile_cycles_minus_one = products - 1
        elif config.pe == "fused":
            # 2 lanes per MAC in a wide mode, else 1 (cycles.issued_block_products).
            m.d.comb += [
                block_products.eq(fused_wide(incoming) + 1),
                products.eq((incoming.depth_minus_one + 1) * block_products),
            ]
            tile_cycles_minus_one = ((products + lanes - 1) >> (lanes.bit_length() - 1)) - 1
        else:
            kept_a_minus_one = incoming.a.kept_minus_one
            slots = incoming.depth_minus_one + 1
            if config.paired:
                # Paired: ceil(depth / 2) slots of n x Lb (cycles.paired_tile_cycles).
                paired = incoming.a.paired
                kept_a_minus_one = Mux(paired, incoming.a.blocks_minus_one, kept_a_minus_one)
                slots = Mux(paired, (incoming.depth_minus_one >> 1) + 1, slots)
            m.d.comb += [
                block_products.eq((kept_a_minus_one + 1) * (incoming.b.kept_minus_one + 1)),
                products.eq(slots * block_products),
            ]
            tile_cycles_minus_one = ((products + lanes - 1) >> (lanes.bit_length() - 1)) - 1
        with m.If(self.job.valid & self.job.ready):
            m.d.sync += [command.eq(self.job.payload.command), half.eq(self.job.payload.half),
                         tile_m.eq(0), tile_n.eq(0), a_base.eq(0), b_base.eq(0),
                         first.eq(1), self.active.eq(1), tile_cycle.eq(0),
                         last_cycle.eq(tile_cycles_minus_one)]
        return m


class ModeTable:
    """Signals of the lane schedule for the command's mode (:func:`mode_table`)."""

    def __init__(self, config: Config):
        lanes = config.block_multipliers
        offset_shape = unsigned(max(1, (lanes - 1).bit_length()))
        index_shape = unsigned(config.blocks_field_width)
        self.step_words = Signal(unsigned(max(1, lanes.bit_length())))  # P // q, <= P
        self.step_a = Signal(index_shape)
        self.step_b = Signal(index_shape)
        self.init_offsets = [Signal(offset_shape, name=f"init_offset_{l}")
                             for l in range(lanes)]
        self.init_a = [Signal(index_shape, name=f"init_a_{l}") for l in range(lanes)]
        self.init_b = [Signal(index_shape, name=f"init_b_{l}") for l in range(lanes)]


def mode_table(m: Module, config: Config, command) -> ModeTable:
    """Per ``(La, Lb)`` of ``command``: the per-cycle step and each lane's starting
    digits, a table of ``B**2`` entries built from :func:`lane_schedule` at elaboration
    time (the function the cycle model uses).

    With ``arithmetic.paired``, a paired command (``a.paired``) walks pairs of operands
    instead: the schedule of ``(n, Lb)`` (a slot's ``n`` A-block slots by B's ``Lb``
    blocks: :func:`qforge.sim.model.cycles.paired_tile_cycles`) with its operand digits
    doubled, so a lane's ``offset`` is the first operand of its pair."""
    blocks = config.blocks
    table = ModeTable(config)

    def load(schedule, scale):
        m.d.comb += [table.step_words.eq(schedule.step_operands * scale),
                     table.step_a.eq(schedule.step_a),
                     table.step_b.eq(schedule.step_b)]
        for l, (k, i, j) in enumerate(schedule.lane_starts):
            m.d.comb += [table.init_offsets[l].eq(k * scale), table.init_a[l].eq(i),
                         table.init_b[l].eq(j)]

    with m.Switch(Cat(command.b.kept_minus_one, command.a.kept_minus_one)):
        for kept_a in range(1, blocks + 1):
            for kept_b in range(1, blocks + 1):
                key = (kept_b - 1) | ((kept_a - 1) << config.blocks_field_width)
                with m.Case(key):
                    load(lane_schedule(kept_a, kept_b, config.block_multipliers), 1)
    if config.paired:
        with m.If(command.a.paired):
            with m.Switch(command.b.kept_minus_one):
                for kept_b in range(1, blocks + 1):
                    with m.Case(kept_b - 1):
                        load(lane_schedule(blocks, kept_b, config.block_multipliers), 2)
    return table


def issued_blocks(operand):
    """Blocks a ``pe = "shared_shift"`` schedule walks for one operand (an
    :func:`~qforge.hdl.layouts.operand_precision_layout` value): ``n`` for a dynamic
    approximation, else ``L`` (:func:`qforge.sim.model.cycles.issued_block_products`)."""
    return Mux(operand.dynamic, operand.blocks_minus_one, operand.kept_minus_one) + 1


def shared_shift_table(m: Module, config: Config) -> ModeTable:
    """The ``pe = "shared_shift"`` schedule in :class:`ModeTable` form, the same for every
    mode: lane ``l`` starts at operand ``l`` of the word, block pair ``(0, 0)``; each
    cycle the block pair advances by one (``Lb`` fastest) and, when it wraps, the word
    (:func:`advance_lane` with ``shared_shift``)."""
    table = ModeTable(config)
    m.d.comb += [table.step_words.eq(0), table.step_a.eq(0), table.step_b.eq(1)]
    for l in range(config.block_multipliers):
        m.d.comb += [table.init_offsets[l].eq(l), table.init_a[l].eq(0),
                     table.init_b[l].eq(0)]
    return table


def fused_wide(command):
    """``pe = "fused"``: whether ``command`` (a :func:`~qforge.hdl.layouts.command_layout`
    value) is a wide mode, a side keeping both of its ``n = 2`` blocks (2 lanes per MAC:
    :func:`qforge.sim.model.cycles.issued_block_products`)."""
    return command.a.kept_minus_one.any() | command.b.kept_minus_one.any()


def fused_table(m: Module, config: Config, command) -> ModeTable:
    """The ``pe = "fused"`` schedule in :class:`ModeTable` form: the dense
    :func:`lane_schedule` of ``(La, Lb) = (2, 1)`` in a wide mode (:func:`fused_wide`;
    lane ``l`` starts at operand ``l // 2``, digit ``l % 2``), else of ``(1, 1)``."""
    table = ModeTable(config)
    for wide, (kept_a, kept_b) in ((1, (2, 1)), (0, (1, 1))):
        schedule = lane_schedule(kept_a, kept_b, config.block_multipliers)
        with m.If(fused_wide(command) == wide):
            m.d.comb += [table.step_words.eq(schedule.step_operands),
                         table.step_a.eq(schedule.step_a), table.step_b.eq(schedule.step_b)]
            for l, (k, i, j) in enumerate(schedule.lane_starts):
                m.d.comb += [table.init_offsets[l].eq(k), table.init_a[l].eq(i),
                             table.init_b[l].eq(j)]
    return table


def advance_lane(table: ModeTable, command, offset, a_index, b_index, *,
                 shared_shift: bool = False, fused_wide=None, paired_mode: bool = False):
    """One lane's digits ``(k mod P, i, j)`` advanced by P block products: a mixed-radix
    add of ``(P // q, (P % q) // Lb, (P % q) % Lb)`` with two carries. Returns the
    operand digit unwrapped (it may reach ``2P - 1``; callers wrap or compare it) and
    the new A and B block digits.

    ``shared_shift`` (:func:`shared_shift_table`): the block digits count to the issued
    blocks (:func:`issued_blocks`) and their carry moves the lane a whole word (P
    operands: the digit wraps to itself with a word carry).

    ``fused_wide`` (``pe = "fused"``: :func:`fused_wide` of the command): the digits
    count ``(2, 1)`` or ``(1, 1)`` blocks (:func:`fused_table`).

    ``paired_mode`` (``arithmetic.paired``): a paired command's A digit counts the ``n``
    A-block slots of a pair and its carry moves the operand digit by 2 (one pair)."""
    if shared_shift:
        kept_a, kept_b = issued_blocks(command.a), issued_blocks(command.b)
    elif fused_wide is not None:
        kept_a, kept_b = fused_wide + 1, 1
    else:
        kept_a = command.a.kept_minus_one + 1
        kept_b = command.b.kept_minus_one + 1
    # A paired command (arithmetic.paired) walks n A-block slots per pair, and its
    # operand digit moves by whole pairs (mode_table).
    paired = command.a.paired if paired_mode else None
    if paired is not None:
        kept_a = Mux(paired, command.a.blocks_minus_one + 1, kept_a)
    b_sum = b_index + table.step_b
    b_carry = b_sum >= kept_b
    a_sum = a_index + table.step_a + b_carry
    a_carry = a_sum >= kept_a
    if shared_shift:
        offset_sum = offset + Mux(a_carry, len(table.init_offsets), 0)
    elif paired is not None:
        offset_sum = offset + table.step_words + Mux(paired, a_carry << 1, a_carry)
    else:
        offset_sum = offset + table.step_words + a_carry
    width = len(a_index)
    return (offset_sum, Mux(a_carry, a_sum - kept_a, a_sum)[:width],
            Mux(b_carry, b_sum - kept_b, b_sum)[:width])
