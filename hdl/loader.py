"""Loader: accepts GEMM commands, fills a buffer half with operands, hands jobs on."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import command_layout
from qforge.hdl.rounding import rounding_is_defined
from qforge.hdl.scheduler import job_layout
from qforge.hdl.signatures import a_stream, b_stream, command_stream

__all__ = ["Loader"]


class Loader(wiring.Component):
    """Fill one half of the double-buffered operand banks per command.

    The operand banks have two halves of ``buffer_depth`` words. While the scheduler
    computes a job from one half, the loader fills the other, so loading overlaps compute.

    Protocol, per command (``cmd`` stream):

    1. ``cmd`` is ready while the loader's one-entry command slot is empty: a command is
       taken into the slot even while the previous one is still loading.
    2. The cycle after it is taken, the command in the slot is checked from registers
       (:data:`qforge.sim.model.cycles.CHECK_LATENCY` covers both cycles): ``kept <= blocks``
       for both operands, ``blocks <= B``, ``depth <= max_reduction_depth`` and
       ``tiles * words <= buffer_depth`` for A and B (``words = ceil(depth / P)``). An
       invalid command sets the sticky ``error`` output and is dropped from the slot: no
       operand beats are taken for it. A VRQ operand is invalid without a ``[vrq]``
       section, or with more blocks than its code has; so is an output stage setting
       with a rounding code that is no :class:`~qforge.sim.model.rounding.Rounding`
       member, a shift or VRQ exponent above ``accumulator_width - 1``, or
       VRQ output without a ``[vrq]`` section.
    3. A checked command starts loading in the first cycle (at the earliest the one after
       the check) in which the loader is not loading and the half to be filled is free;
       the slot is then empty again.
    4. ``m_tiles * words`` beats are taken from ``a_in`` and ``n_tiles * words`` from
       ``b_in``, in any interleaving; beat ``x`` is written at address
       ``half * buffer_depth + x`` of every bank (element r of an A beat to row bank r).
       Beat order is therefore ``for tile: for word:`` (see
       :func:`qforge.sim.host.packing.pack_operands`).
    5. The job (command and half) is offered on ``job`` until the scheduler takes it;
       then the loader toggles to the other half.

    Why a slot and a registered check: the capacity check multiplies command fields
    (``tiles * words``). Evaluated on the incoming payload, the multipliers (in LUTs on
    an ECP5 built with ``-nodsp``) sat between the host link's registers and every
    loader register's enable, the 16x16 array's critical path on the ULX3S (24.3 ns).
    Now they run between two loader registers, and the only cost is
    ``CHECK_LATENCY`` cycles before the first command loads (later commands are taken
    and checked while their predecessor loads).

    A half stays busy from the cycle its command starts loading until the scheduler's
    ``release``.

    Zero-skipping configurations (:attr:`Config.zero_skipping`) differ in where beats go
    (docs/ARCHITECTURE.md, "Zero skipping"): ``accepted`` pulses when a checked command
    starts loading (with ``fill_half`` and the slot's ``command``), so the
    :class:`~qforge.hdl.compactor.RowCompactor` can write A beats as row entries; B beat
    ``x = nt * words + w`` goes to the PE-local banks of PE row ``b_write_row = nt mod R`` at
    ``half * pe_buffer_depth + (nt div R) * words + w``. The B check is then
    ``ceil(n_tiles / R) * words <= pe_buffer_depth``.
    """

    def __init__(self, config: Config):
        self._config = config
        address = unsigned(config.buffer_address_width)
        super().__init__({
            "cmd": In(command_stream(config)),
            "a_in": In(a_stream(config)),
            "b_in": In(b_stream(config)),
            "job": Out(stream.Signature(job_layout(config))),
            "a_write_address": Out(address), "a_write_enable": Out(1),
            "b_write_address": Out(unsigned(config.pe_buffer_address_width)
                                   if config.zero_skipping else address),
            "b_write_enable": Out(1),
            "release": In(1), "release_half": In(1),
            "error": Out(1),
            "idle": Out(1),
        } | ({
            "accepted": Out(1), "fill_half": Out(1),
            "command": Out(command_layout(config)),
            "b_write_row": Out(unsigned(max(1, (config.rows - 1).bit_length()))),
        } if config.zero_skipping else {}))

    def elaborate(self, platform):
        config = self._config
        m = Module()
        count_shape = unsigned(max(1, config.buffer_depth.bit_length()))

        half_busy = Signal(2)
        fill_half = Signal()
        loading = Signal()
        loading_command = Signal(command_layout(config))
        a_left = Signal(count_shape)
        # Zero-skipping configurations check B per PE bank: up to R * pe_buffer_depth
        # beats (n_tiles * words) for a valid command.
        b_beats_limit = (config.rows * config.pe_buffer_depth if config.zero_skipping
                         else config.buffer_depth)
        b_left = Signal(unsigned(max(1, b_beats_limit.bit_length())))

        # ---- command slot: take, then check from registers ------------------------------
        pending = Signal(command_layout(config))
        pending_valid = Signal()          # the slot holds a command
        pending_checked = Signal()        # ... that passed the check (next cycle onwards)
        m.d.comb += self.cmd.ready.eq(~pending_valid)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [pending.eq(self.cmd.payload), pending_valid.eq(1),
                         pending_checked.eq(0)]

        pending_a_words = Signal(count_shape)
        pending_b_words = Signal.like(b_left)
        valid_command, words, a_words, b_words = self._check(pending)
        with m.If(pending_valid & ~pending_checked):
            with m.If(valid_command):
                m.d.sync += [pending_checked.eq(1),
                             pending_a_words.eq(a_words), pending_b_words.eq(b_words)]
            with m.Else():
                m.d.sync += [pending_valid.eq(0), self.error.eq(1)]

        start = Signal()
        m.d.comb += start.eq(pending_checked & ~loading & ~half_busy.bit_select(fill_half, 1))
        half_base = fill_half * config.buffer_depth
        with m.If(start):
            m.d.sync += [loading_command.eq(pending), loading.eq(1),
                         pending_valid.eq(0), pending_checked.eq(0),
                         a_left.eq(pending_a_words), b_left.eq(pending_b_words),
                         self.a_write_address.eq(half_base)]
            if not config.zero_skipping:
                m.d.sync += self.b_write_address.eq(half_base)
            m.d.sync += half_busy.bit_select(fill_half, 1).eq(1)

        if config.zero_skipping:
            m.d.comb += [self.accepted.eq(start), self.fill_half.eq(fill_half),
                         self.command.eq(pending)]
            # ceil(depth / P) of the slot's command, taken by the B routing at start.
            self._route_b(m, fill_half, words)

        # ---- operand beats ------------------------------------------------------------
        m.d.comb += [self.a_in.ready.eq(loading & (a_left != 0)),
                     self.b_in.ready.eq(loading & (b_left != 0)),
                     self.a_write_enable.eq(self.a_in.valid & self.a_in.ready),
                     self.b_write_enable.eq(self.b_in.valid & self.b_in.ready)]
        with m.If(self.a_write_enable):
            m.d.sync += [a_left.eq(a_left - 1),
                         self.a_write_address.eq(self.a_write_address + 1)]
        with m.If(self.b_write_enable):
            m.d.sync += b_left.eq(b_left - 1)
            if not config.zero_skipping:
                m.d.sync += self.b_write_address.eq(self.b_write_address + 1)

        # ---- hand-off -----------------------------------------------------------------
        m.d.comb += [self.job.valid.eq(loading & (a_left == 0) & (b_left == 0)),
                     self.job.payload.command.eq(loading_command),
                     self.job.payload.half.eq(fill_half)]
        with m.If(self.job.valid & self.job.ready):
            m.d.sync += [loading.eq(0), fill_half.eq(~fill_half)]

        # A release and an acceptance never name the same half: a half is only accepted
        # while free, and only a busy half is released.
        with m.If(self.release):
            m.d.sync += half_busy.bit_select(self.release_half, 1).eq(0)

        m.d.comb += self.idle.eq(~pending_valid & ~loading & (half_busy == 0))
        return m

    def _check(self, command):
        """``(valid, words, a_words, b_words)`` of ``command``: the rules of step 2 of
        the class docstring, combinational (the caller registers them)."""
        config = self._config
        words = (command.depth_minus_one >> (config.block_multipliers.bit_length() - 1)) + 1
        a_words = (command.m_tiles_minus_one + 1) * words
        b_words = (command.n_tiles_minus_one + 1) * words
        # Buffer capacity: qforge.sim.model.capacity.gemm_capacity_error.
        checks = [command.a.kept_minus_one <= command.a.blocks_minus_one,
                  command.b.kept_minus_one <= command.b.blocks_minus_one,
                  a_words <= config.buffer_depth]
        if config.zero_skipping:
            # Each PE bank holds its column tiles g * R + r for every group g.
            groups = command.n_tiles_minus_one // config.rows + 1
            checks.append(groups * words <= config.pe_buffer_depth)
        else:
            checks.append(b_words <= config.buffer_depth)
        # Output stage: a Rounding member; shift and VRQ exponent inside the accumulator;
        # VRQ output only with a [vrq] section
        # (qforge.sim.model.quantize.OutputParameters.validate).
        output = command.output
        checks.append(rounding_is_defined(output.rounding))
        limit = config.accumulator_width - 1
        for field in (output.shift, output.exponent):
            if (1 << len(field)) - 1 > limit:
                checks.append(field <= limit)
        if config.vrq is None:
            checks.append(~output.vrq)
        for operand in (command.a, command.b):
            if config.vrq is None:
                checks.append(~operand.vrq)          # no VRQ decoder in these selectors
            elif config.vrq_code_blocks < config.blocks:
                checks.append(~operand.vrq
                              | (operand.blocks_minus_one <= config.vrq_code_blocks - 1))
        if config.paired:
            # The paired mode (qforge.sim.model.numerics.OperandPrecision.validate): A
            # only, exact integer of all n blocks, 1 <= low <= high, high + low <= n;
            # unsigned not with VRQ (there is none with arithmetic.paired).
            a, n = command.a, config.blocks
            checks.append(~command.b.paired)
            checks.append(~a.paired | (~a.dynamic & (a.blocks_minus_one == n - 1)
                                       & (a.kept_minus_one == n - 1) & (a.low >= 1)
                                       & (a.low <= a.high) & (a.high + a.low <= n)))
        # Range checks only where the field can hold a value beyond the limit (a
        # comparison that is always true would be dead logic and a lint warning).
        bounded = ((command.depth_minus_one, config.max_reduction_depth - 1),
                   (command.a.blocks_minus_one, config.blocks - 1),
                   (command.b.blocks_minus_one, config.blocks - 1))
        for field, limit in bounded:
            if (1 << len(field)) - 1 > limit:
                checks.append(field <= limit)
        return Cat(*checks).all(), words, a_words, b_words

    def _route_b(self, m, fill_half, command_words):
        """Zero-skipping configurations: B beat ``nt * words + w`` to PE row
        ``nt mod R`` at ``half * pe_buffer_depth + (nt div R) * words + w``."""
        config = self._config
        word_shape = unsigned(config.word_index_width + 1)
        words = Signal(word_shape)          # words per column tile of this command
        word = Signal(word_shape)           # w
        group_base = Signal(unsigned(config.pe_buffer_address_width))  # (nt div R) * words
        row = self.b_write_row              # nt mod R
        with m.If(self.accepted):
            m.d.sync += [words.eq(command_words), word.eq(0), group_base.eq(0), row.eq(0)]
        with m.If(self.b_write_enable):
            with m.If(word == words - 1):
                m.d.sync += word.eq(0)
                with m.If(row == config.rows - 1):
                    m.d.sync += [row.eq(0), group_base.eq(group_base + words)]
                with m.Else():
                    m.d.sync += row.eq(row + 1)
            with m.Else():
                m.d.sync += word.eq(word + 1)
        m.d.comb += self.b_write_address.eq(
            Mux(fill_half, config.pe_buffer_depth, 0) + group_base + word)
