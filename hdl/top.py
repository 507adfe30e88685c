"""The accelerator top level: streams in, double-buffered banks, array, streams out."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from qforge.sim.model.spec import Config
from qforge.hdl.array import BroadcastArray, SystolicArray
from qforge.hdl.compactor import RowCompactor
from qforge.hdl.drain import ResultDrain
from qforge.hdl.layouts import (entry_count_layout, operand_word_layout, result_layout,
                                row_entry_layout)
from qforge.hdl.loader import Loader
from qforge.hdl.output_stage import OutputStage
from qforge.hdl.scheduler import Scheduler
from qforge.hdl.selector import BlockSelector
from qforge.hdl.signatures import AcceleratorSignature
from qforge.hdl.skid import SkidBuffer
from qforge.hdl.skipping_scheduler import SkippingScheduler

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """A GEMM accelerator with block-wise precision-reconfigurable PEs.

    Ports (:class:`~qforge.hdl.signatures.AcceleratorSignature`; all streams follow
    ``amaranth.lib.stream`` valid/ready rules; payload layouts are in
    :mod:`qforge.hdl.layouts`):

    * ``cmd`` (in): GEMM commands (tile counts, depth, precision mode).
    * ``a_in`` / ``b_in`` (in): operand beats for the command being loaded.
    * ``result`` (out): output tiles, ``R`` beats of ``C`` elements per tile, tiles in
      order ``for mt: for nt:``, rows in order ``0 .. R-1``; ``last`` on a GEMM's final
      beat. Elements are raw accumulators, or output operands (``output_width`` bits,
      sign-extended) when the command's ``output.quantize`` is set.
    * ``idle`` (out): no command is loading or computing and no result is pending.
    * ``error`` (out, sticky until reset): an invalid command was received and dropped.

    Data path: :class:`Loader` writes beats into one half of the R row banks and C
    column banks (each ``2 * buffer_depth`` words of P operands) while :class:`Scheduler`
    reads the other half. Each issued cycle reads one word per bank; a
    :class:`BlockSelector` per bank turns it into P block lanes (one cycle); the
    :class:`SystolicArray` multiplies and accumulates; :class:`ResultDrain` streams the
    results out while the next tile computes, through the :class:`OutputStage` (rounding,
    ReLU, saturation with the GEMM's settings, which it receives from a FIFO pushed when
    the scheduler accepts the job). Cycle counts follow
    :func:`qforge.sim.model.cycles.gemm_cycles`.

    Zero-skipping configurations (:attr:`Config.zero_skipping`) build a different data
    path behind the same ports (:meth:`_skipping_datapath`): a
    :class:`~qforge.hdl.compactor.RowCompactor` stores A rows as entries,
    :class:`~qforge.hdl.skipping_scheduler.SkippingScheduler` walks them, one A row's
    lanes reach every PE of a :class:`~qforge.hdl.array.BroadcastArray` and each PE has
    its own B bank and selector. Commands gain ``skip_zeros``; results leave row-major.
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__(AcceleratorSignature(config))

    @property
    def config(self) -> Config:
        return self._config

    def elaborate(self, platform):
        config = self._config
        m = Module()
        m.submodules.loader = loader = Loader(config)
        if config.zero_skipping:
            m.submodules.scheduler = scheduler = SkippingScheduler(config)
            m.submodules.array = array = BroadcastArray(config)
        else:
            m.submodules.scheduler = scheduler = Scheduler(config)
            m.submodules.array = array = SystolicArray(config)
        m.submodules.drain = drain = ResultDrain(config)
        m.submodules.output = output = OutputStage(config)

        wiring.connect(m, wiring.flipped(self.cmd), loader.cmd)
        wiring.connect(m, wiring.flipped(self.a_in), loader.a_in)
        wiring.connect(m, wiring.flipped(self.b_in), loader.b_in)
        # The job hand-off also pushes the GEMM's output settings into the output stage's
        # parameter FIFO; it waits while that FIFO is full (never, in practice: see
        # OutputStage). ``params.valid`` does not look at ``params.ready`` (stream rules);
        # both transfers happen in the same cycle.
        command = loader.job.payload.command
        m.d.comb += [
            scheduler.job.payload.eq(loader.job.payload),
            scheduler.job.valid.eq(loader.job.valid & output.params.ready),
            loader.job.ready.eq(scheduler.job.ready & output.params.ready),
            output.params.valid.eq(loader.job.valid & scheduler.job.ready),
            output.params.payload.output.eq(command.output),
            output.params.payload.n_tiles_minus_one.eq(command.n_tiles_minus_one),
        ]
        # The skid buffer keeps the result path's ready (output stage, host link) out of
        # the drain's shift, the enable of every result register of the array.
        m.submodules.drain_skid = drain_skid = SkidBuffer(result_layout(config))
        wiring.connect(m, drain.result, drain_skid.input)
        wiring.connect(m, drain_skid.output, output.accumulators)
        wiring.connect(m, output.result, wiring.flipped(self.result))
        m.d.comb += [loader.release.eq(scheduler.release),
                     loader.release_half.eq(scheduler.release_half),
                     scheduler.drain_free.eq(drain.drain_free),
                     self.error.eq(loader.error)]

        if config.zero_skipping:
            issued = self._skipping_datapath(m, loader, scheduler, array)
        else:
            issued = self._systolic_datapath(m, loader, scheduler, array)
        # Tile markers reach the array together with the selected lanes (two cycles).
        flags_at_selector = Signal.like(issued.flags, name="flags_at_selector")
        m.d.sync += flags_at_selector.eq(issued.flags)
        m.d.comb += array.flags.eq(flags_at_selector)
        issue = scheduler.issue
        m.d.comb += [drain.issued_last.eq(issue.flags.last),
                     drain.issued_rows.eq(issue.rows if config.zero_skipping
                                          else config.rows),
                     drain.captured.eq(array.captured),
                     drain.captured_gemm_last.eq(array.captured_gemm_last),
                     drain.array_row.eq(array.result_row),
                     array.shift.eq(drain.shift)]

        m.d.comb += self.idle.eq(loader.idle & ~scheduler.active & drain.drain_free
                                 & drain_skid.empty & output.idle)
        return m

    def _systolic_datapath(self, m, loader, scheduler, array):
        """R row banks and C column banks, one selector each, skewed into the array.
        Returns the issued record as the selectors see it (one cycle after issue)."""
        config = self._config
        issue = scheduler.issue
        # The selectors see the lane selections one cycle after issue, with the word the
        # synchronous buffer read returns in that cycle.
        issued = Signal.like(issue, name="issued")
        m.d.sync += issued.eq(issue)

        sides = (("a", config.rows, self.a_in, loader.a_write_address,
                  loader.a_write_enable, array.rows),
                 ("b", config.cols, self.b_in, loader.b_write_address,
                  loader.b_write_enable, array.cols))
        for side, count, beats, write_address, write_enable, array_lanes in sides:
            for bank_index in range(count):
                bank = Memory(shape=operand_word_layout(config),
                              depth=2 * config.buffer_depth, init=[])
                m.submodules[f"{side}_bank{bank_index}"] = bank
                write = bank.write_port()
                read = bank.read_port()
                m.d.comb += [write.addr.eq(write_address),
                             write.data.eq(beats.payload[bank_index]),
                             write.en.eq(write_enable),
                             read.addr.eq(getattr(issue, f"{side}_address"))]
                selector = BlockSelector(config, side)
                m.submodules[f"{side}_selector{bank_index}"] = selector
                m.d.comb += [selector.word.eq(read.data),
                             selector.precision.eq(getattr(issued, f"{side}_precision")),
                             selector.select.eq(getattr(issued, f"{side}_select")),
                             array_lanes[bank_index].eq(selector.lanes)]

        return issued

    def _skipping_datapath(self, m, loader, scheduler, array):
        """Zero-skipping array (docs/ARCHITECTURE.md, "Zero skipping"): R A banks of row
        entries and a count memory written by the :class:`RowCompactor`; one A selector
        whose lanes reach every PE; R x C PE-local B banks, each with its own selector.
        Returns the issued record as the selectors see it (one cycle after issue).
        """
        config = self._config
        issue = scheduler.issue
        m.submodules.compactor = compactor = RowCompactor(config)
        m.d.comb += [compactor.start.eq(loader.accepted),
                     compactor.command.eq(loader.command),
                     compactor.half.eq(loader.fill_half),
                     compactor.beat_valid.eq(loader.a_write_enable),
                     compactor.beat.eq(self.a_in.payload)]

        # Entry counts of every row tile, R per word.
        counts = Memory(shape=entry_count_layout(config), depth=2 * config.buffer_depth,
                        init=[])
        m.submodules.entry_counts = counts
        count_write = counts.write_port()
        count_read = counts.read_port()
        m.d.comb += [count_write.addr.eq(compactor.count_address),
                     count_write.data.eq(compactor.counts),
                     count_write.en.eq(compactor.count_enable),
                     count_read.addr.eq(scheduler.count_address)]

        # A banks: entry j of row mt*R + r in bank r. All banks read the same address;
        # the scheduler's current row picks one (and its count).
        entry = Signal(row_entry_layout(config), name="entry")
        entries = []
        for r in range(config.rows):
            bank = Memory(shape=row_entry_layout(config), depth=2 * config.buffer_depth,
                          init=[])
            m.submodules[f"a_bank{r}"] = bank
            write = bank.write_port()
            read = bank.read_port()
            m.d.comb += [write.addr.eq(compactor.write_address[r]),
                         write.data.eq(compactor.entry[r]),
                         write.en.eq(compactor.write_enable[r]),
                         read.addr.eq(scheduler.entry_address)]
            entries.append(read.data)
        with m.Switch(scheduler.row):
            for r, read_data in enumerate(entries):
                with m.Case(r):
                    m.d.comb += [entry.eq(read_data),
                                 scheduler.count.eq(count_read.data[r])]
        m.d.comb += scheduler.entry.eq(entry)

        # The issued record and the current entry's operands meet the PE-local B words
        # one cycle after issue (the B banks' synchronous read).
        issued = Signal.like(issue, name="issued")
        issued_operands = Signal.like(entry.operands, name="issued_operands")
        m.d.sync += [issued.eq(issue), issued_operands.eq(entry.operands)]
        m.submodules.a_selector = a_selector = BlockSelector(config)
        m.d.comb += [a_selector.word.eq(issued_operands),
                     a_selector.precision.eq(issued.a_precision),
                     a_selector.select.eq(issued.a_select),
                     array.a.eq(a_selector.lanes)]

        for r in range(config.rows):
            for c in range(config.cols):
                bank = Memory(shape=operand_word_layout(config),
                              depth=2 * config.pe_buffer_depth, init=[])
                m.submodules[f"b_bank_{r}_{c}"] = bank
                write = bank.write_port()
                read = bank.read_port()
                m.d.comb += [write.addr.eq(loader.b_write_address),
                             write.data.eq(self.b_in.payload[c]),
                             write.en.eq(loader.b_write_enable & (loader.b_write_row == r)),
                             read.addr.eq(issue.b_address)]
                selector = BlockSelector(config, "b")
                m.submodules[f"b_selector_{r}_{c}"] = selector
                m.d.comb += [selector.word.eq(read.data),
                             selector.precision.eq(issued.b_precision),
                             selector.select.eq(issued.b_select),
                             array.b[r][c].eq(selector.lanes)]

        return issued
