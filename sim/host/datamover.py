"""The data mover: the memory side of the instruction set (docs/ISA.md, *Memory*).

A :class:`DataMover` stands between a program, the host memory and the ports of the
programmable accelerator (:class:`qforge.hdl.core.Core`). It decodes the program with
the golden machine's rules (:class:`qforge.sim.model.machine.Machine` with
``compute=False``), so it knows which GEMMs the hardware will execute and with which
descriptors; for each it reads A, B and the addend from memory, packs them into
``a_in``/``b_in``/``addend`` beats (:mod:`qforge.sim.host.packing`, the HDL's own layouts)
and writes the GEMM's result beats back to memory with the ``STORE`` descriptor.

It is independent of the simulator: the cocotb bench (:mod:`qforge.sim.bench.cocotb_core`),
the Amaranth unit tests and the board backend drive ports from its queues.

Ordering: instruction words go out as fast as the decoder takes them. A GEMM's operands
are read ("staged") only when no earlier GEMM whose results are still outstanding
writes any memory the GEMM reads (its spans overlap), so a program that reads a result
sees the hardware's value. GEMMs are staged in order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from qforge.sim.model.spec import Config
from qforge.sim.model.isa import INSTRUCTION_WIDTH
from qforge.hdl.layouts import addend_layout
from qforge.sim.model.machine import GemmPlan, Machine, MachineError, overlaps, span
from qforge.sim.model.numerics import OperandError, check_operands
from qforge.sim.host.packing import (ResultAssembler, leaf_fields, pack_fields, pack_operands,
                                result_order, tiles)

__all__ = ["DataMover", "Outstanding"]


@dataclass
class Outstanding:
    """A staged GEMM whose results are still arriving."""

    plan: GemmPlan
    beats: int
    assembler: ResultAssembler
    write_span: tuple[int, int]
    lasts: list[int] = field(default_factory=list)


class DataMover:
    """Feed a programmable accelerator's ports from a program and a host memory.

    Queues (each a :class:`collections.deque` of beat integers, in port order):
    :attr:`instructions`, :attr:`a_beats`, :attr:`b_beats`, :attr:`addend_beats`. The
    driver offers the head of each queue on its port and pops it when the beat is taken,
    and hands every ``result`` beat to :meth:`on_result`. :attr:`done` says when every
    queue is empty and every result has arrived.
    """

    def __init__(self, config: Config, memory: np.ndarray):
        self.config = config
        self.memory = memory
        self.machine = Machine(config, memory=memory, compute=False)
        self.instructions: deque[int] = deque()
        self.a_beats: deque[int] = deque()
        self.b_beats: deque[int] = deque()
        self.addend_beats: deque[int] = deque()
        self.waiting: deque[GemmPlan] = deque()
        self.outstanding: deque[Outstanding] = deque()
        self.completed: list[GemmPlan] = []
        self.errors: list[str] = []
        self._addend_fields = leaf_fields(addend_layout(config))

    @property
    def expected_error(self) -> bool:
        """Whether the program so far holds an invalid instruction (the sticky error
        the hardware must show)."""
        return self.machine.error

    def submit(self, words) -> None:
        """Queue instruction words; decode them and stage what can be staged."""
        for word in words:
            word = int(word)
            if not 0 <= word < (1 << INSTRUCTION_WIDTH):
                raise MachineError(f"instruction word {word:#x}: not a 64-bit word")
            self.instructions.append(word)
            plan = self.machine.step(word)
            if plan is not None:
                self.waiting.append(plan)
        self._stage()

    def _blocked(self, plan: GemmPlan) -> bool:
        reads = [span(*read) for read in plan.reads()]
        return any(overlaps(read, pending.write_span)
                   for pending in self.outstanding for read in reads)

    def _stage(self) -> None:
        config = self.config
        while self.waiting and not self._blocked(self.waiting[0]):
            plan = self.waiting.popleft()
            a, b, addend = self.machine.operands(plan)
            try:
                a, b = check_operands(a, b, config, plan.precision)
            except OperandError as error:
                raise MachineError(f"GEMM {plan.index}: {error}") from None
            a_beats, b_beats = pack_operands(config, a, b)
            self.a_beats.extend(a_beats)
            self.b_beats.extend(b_beats)
            m_tiles, n_tiles = tiles(plan.m, config.rows), tiles(plan.n, config.cols)
            if addend is not None:
                padded = np.zeros((m_tiles * config.rows, n_tiles * config.cols),
                                  dtype=np.int64)
                padded[:plan.m, :plan.n] = addend
                self.addend_beats.extend(pack_fields(self._addend_fields, row)
                                         for row in result_order(config, padded).tolist())
            self.outstanding.append(Outstanding(
                plan, m_tiles * n_tiles * config.rows,
                ResultAssembler(config, plan.m, plan.n), span(*plan.writes())))

    def on_result(self, bits: int) -> None:
        """A ``result`` beat arrived: collect it; write the GEMM's result to memory with
        its last beat and stage the GEMMs that waited for it."""
        if not self.outstanding:
            self.errors.append(f"unexpected result beat {bits:#x}: no GEMM outstanding")
            return
        current = self.outstanding[0]
        _, last = current.assembler.add(bits)
        current.lasts.append(last)
        if len(current.assembler.rows) < current.beats:
            if last:
                self.errors.append(f"GEMM {current.plan.index}: last on beat "
                                   f"{len(current.assembler.rows)} of {current.beats}")
            return
        if not last:
            self.errors.append(f"GEMM {current.plan.index}: no last on its final beat")
        self.outstanding.popleft()
        self.machine.write(current.plan.store, current.assembler.matrix(),
                           f"GEMM {current.plan.index}: result")
        self.completed.append(current.plan)
        self._stage()

    @property
    def done(self) -> bool:
        return not (self.instructions or self.a_beats or self.b_beats or self.addend_beats
                    or self.waiting or self.outstanding)

    def pending(self) -> dict[str, int]:
        """What is still queued or outstanding (for watchdog messages)."""
        return {"instructions": len(self.instructions), "a_in": len(self.a_beats),
                "b_in": len(self.b_beats), "addend": len(self.addend_beats),
                "waiting_gemms": len(self.waiting),
                "result_beats": sum(o.beats - len(o.assembler.rows)
                                    for o in self.outstanding)}
