"""cocotb testbench components for the generated accelerator.

* :class:`StreamSource` drives a stream input from a queue, with random idle cycles
  between beats (``valid`` never drops before a transfer: stream rules).
* :class:`StreamSink` takes a stream output with ``ready`` toggled at random.
* :class:`Scoreboard` matches received result beats, in order, against the beats the
  golden model expects: a lost beat, a duplicated beat, a wrong value or a misplaced
  ``last`` is reported with its GEMM, tile and row.
* :class:`Testbench` ties them to the DUT, counts cycles and runs jobs to completion with
  a watchdog.

Beats are packed and unpacked with :mod:`qforge.sim.host.packing`, i.e. with the HDL's own
payload layouts.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import result_layout
from qforge.sim.host.packing import GemmJob, leaf_fields, unpack_fields
from qforge.sim.model.machine import tiles

__all__ = ["StreamSource", "StreamSink", "Scoreboard", "Testbench", "RunResult"]


class _StreamPort:
    """The ``<name>__valid``/``__ready``/``__payload`` signals of one DUT stream port,
    the clock and cycle counter they are sampled with, and a stall probability."""

    def __init__(self, dut, name: str, clock, cycle_counter, rng: random.Random,
                 stall: float):
        self.name = name
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._payload = getattr(dut, f"{name}__payload")
        self._clock = clock
        self._cycles = cycle_counter
        self._rng = rng
        self.stall = stall

    def _stalls(self) -> bool:
        """Whether to hold off this cycle (probability ``stall``)."""
        return bool(self.stall) and self._rng.random() < self.stall


class StreamSource(_StreamPort):
    """Drive ``<name>__valid``/``__payload`` of the DUT from a queue of beats.

    Before each beat, with probability ``stall`` per cycle the source stays idle (valid
    low). Once valid is high the beat is held until the DUT's ready accepts it.
    ``transfer_cycles`` records the cycle of every accepted beat.
    """

    def __init__(self, dut, name: str, clock, cycle_counter, rng: random.Random,
                 stall: float = 0.0):
        super().__init__(dut, name, clock, cycle_counter, rng, stall)
        self.queue: deque[int] = deque()
        self.transfer_cycles: list[int] = []
        self._valid.value = 0

    def send(self, beats) -> None:
        self.queue.extend(beats)

    @property
    def pending(self) -> int:
        return len(self.queue)

    async def run(self) -> None:
        offered = None
        while True:
            await RisingEdge(self._clock)
            if offered is None and self.queue and not self._stalls():
                offered = self.queue.popleft()
                self._payload.value = offered
            self._valid.value = int(offered is not None)
            # Read-only phase: every coroutine woken by the edge has run, so the cycle
            # counter is current, and the DUT's combinational ready has settled.
            await ReadOnly()
            if offered is not None and int(self._ready.value) == 1:
                self.transfer_cycles.append(self._cycles.value)   # transfers at next edge
                offered = None


class StreamSink(_StreamPort):
    """Take beats from ``<name>__valid``/``__payload`` with ready low a ``stall``
    fraction of cycles; hand each beat to ``on_beat(bits, cycle)``."""

    def __init__(self, dut, name: str, clock, cycle_counter, rng: random.Random,
                 on_beat, stall: float = 0.0):
        super().__init__(dut, name, clock, cycle_counter, rng, stall)
        self._on_beat = on_beat
        self._ready.value = 0

    async def run(self) -> None:
        while True:
            await RisingEdge(self._clock)
            ready = not self._stalls()
            self._ready.value = int(ready)
            await ReadOnly()
            if ready and int(self._valid.value) == 1:
                self._on_beat(int(self._payload.value), self._cycles.value)


@dataclass
class _Expected:
    job: int
    where: str          #: the beat's place in the result, for messages
    values: list[int]
    last: int


class Scoreboard:
    """In-order comparison of result beats with the expected beats of queued jobs."""

    def __init__(self, config: Config, max_errors: int = 20):
        self.config = config
        self._fields = leaf_fields(result_layout(config))
        self.expected: deque[_Expected] = deque()
        self.errors: list[str] = []
        self.max_errors = max_errors
        self.matched = 0
        self.mismatched = 0
        self.unexpected = 0
        self.received: list[list[int]] = []
        self.last_beat_cycle: int | None = None

    def expect(self, job_index: int, job: GemmJob) -> None:
        config = self.config
        n_tiles = tiles(job.b.shape[1], config.cols)
        for index, (values, last) in enumerate(job.expected_beats()):
            if config.zero_skipping:      # row-major beats (sim/packing.result_order)
                where = f"result row {index // n_tiles}, column tile {index % n_tiles}"
            else:
                where = f"tile {index // config.rows}, row {index % config.rows}"
            self.expected.append(_Expected(job_index, where, values, last))

    def _error(self, message: str) -> None:
        if len(self.errors) < self.max_errors:
            self.errors.append(message)

    def on_beat(self, bits: int, cycle: int) -> None:
        values = unpack_fields(self._fields, bits)
        row, last = values[:-1], values[-1]
        self.received.append(row)
        self.last_beat_cycle = cycle
        if not self.expected:
            self.unexpected += 1
            self._error(f"cycle {cycle}: unexpected extra result beat {row} (last={last}): "
                        f"duplicated or spurious")
            return
        want = self.expected.popleft()
        where = f"job {want.job}, {want.where}"
        if row != want.values or last != want.last:
            self.mismatched += 1
            self._error(f"cycle {cycle}: {where}: got {row} last={last}, "
                        f"expected {want.values} last={want.last}")
        else:
            self.matched += 1

    @property
    def clean(self) -> bool:
        return not self.errors and not self.expected


@dataclass
class RunResult:
    """Outcome of :meth:`Testbench.run`."""

    cycles: int
    matched: int
    mismatched: int
    unexpected: int
    missing: int
    errors: list[str] = field(default_factory=list)
    first_command_cycle: int | None = None
    last_result_cycle: int | None = None
    idle_at_end: bool = False
    error_flag: bool = False

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.unexpected or self.missing or self.errors)


class _CycleCounter:
    def __init__(self):
        self.value = 0


class Testbench:
    """The accelerator DUT with a source per input stream, a sink and a scoreboard."""

    def __init__(self, dut, config: Config, seed: int, stalls: dict[str, float] | None = None):
        self.dut = dut
        self.config = config
        stalls = stalls or {}
        rng = random.Random(seed)
        self.cycles = _CycleCounter()
        self._jobs_submitted = 0
        self.scoreboard = Scoreboard(config)
        self.sources = {name: StreamSource(dut, name, dut.clk, self.cycles,
                                           random.Random(rng.random()), stalls.get(name, 0.0))
                        for name in ("cmd", "a_in", "b_in")}
        self.sink = StreamSink(dut, "result", dut.clk, self.cycles,
                               random.Random(rng.random()), self.scoreboard.on_beat,
                               stalls.get("result", 0.0))

    async def _count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycles.value += 1

    async def start(self) -> None:
        """Start the clock, hold reset for a few cycles and start the components."""
        Clock(self.dut.clk, 10, unit="ns").start()
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        cocotb.start_soon(self._count())
        for source in self.sources.values():
            cocotb.start_soon(source.run())
        cocotb.start_soon(self.sink.run())

    def submit(self, jobs: list[GemmJob]) -> None:
        """Queue jobs: commands, operand beats and expected results, in order."""
        for job in jobs:
            self.scoreboard.expect(self._jobs_submitted, job)
            self._jobs_submitted += 1
            self.sources["cmd"].send([job.command])
            self.sources["a_in"].send(job.a_beats)
            self.sources["b_in"].send(job.b_beats)

    def submit_raw_command(self, command: int) -> None:
        """Queue a command without operands or expectations (error-path tests)."""
        self.sources["cmd"].send([command])

    async def run(self, timeout_cycles: int, settle_cycles: int = 64) -> RunResult:
        """Run until every expected beat arrived (or the watchdog expires), then keep
        watching ``settle_cycles`` more cycles for extra (duplicated) beats."""
        start = self.cycles.value
        progress_at, progress = start, -1
        while self.scoreboard.expected:
            await RisingEdge(self.dut.clk)
            done = self.scoreboard.matched + self.scoreboard.mismatched
            if done != progress:
                progress, progress_at = done, self.cycles.value
            if self.cycles.value - progress_at > timeout_cycles:
                outstanding = {name: source.pending for name, source in self.sources.items()}
                self.scoreboard._error(
                    f"watchdog: no result beat for {timeout_cycles} cycles; "
                    f"{len(self.scoreboard.expected)} result beats missing; "
                    f"input beats not yet accepted: {outstanding}")
                break
        for _ in range(settle_cycles):
            await RisingEdge(self.dut.clk)
        await ReadOnly()
        board = self.scoreboard
        commands = self.sources["cmd"].transfer_cycles
        return RunResult(
            cycles=self.cycles.value - start, matched=board.matched,
            mismatched=board.mismatched, unexpected=board.unexpected,
            missing=len(board.expected), errors=list(board.errors),
            first_command_cycle=commands[0] if commands else None,
            last_result_cycle=board.last_beat_cycle,
            idle_at_end=int(self.dut.idle.value) == 1,
            error_flag=int(self.dut.error.value) == 1)
