"""A stand-in for :class:`~qforge.hdl.link.LinkedAccelerator` (the same ports, almost no
logic) so board tops elaborate and build in seconds, and the build plan of a board top."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.fpga.boards import BOARDS, BoardTop
from qforge.sim.model.spec import load_preset

STATUS = data.StructLayout({"busy": 1, "executing": 1, "frame_rejected": 1, "rx_byte": 1,
                            "tx_byte": 1, "line_error": 1})


class LoopbackCore(wiring.Component):
    """The ports of :class:`~qforge.hdl.link.LinkedAccelerator`: ``tx`` follows ``rx``
    one cycle later, every falling edge of ``rx`` is counted and the count shows on the
    status bits (so nothing is optimized away)."""

    def __init__(self, config, *, clock_frequency, baud_rate):
        self.config = config
        self.clock_frequency = clock_frequency
        self.baud_rate = baud_rate
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "status": Out(STATUS),
                          "accelerator_idle": Out(1), "accelerator_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        previous = Signal(init=1)
        count = Signal(8)
        edge = previous & ~self.rx
        m.d.sync += [previous.eq(self.rx), self.tx.eq(self.rx)]
        with m.If(edge):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [self.status.rx_byte.eq(edge), self.status.tx_byte.eq(edge),
                     self.status.busy.eq(count[0]), self.status.executing.eq(count[1]),
                     self.status.frame_rejected.eq(count[2]),
                     self.accelerator_idle.eq(~count[3]),
                     self.accelerator_error.eq(count == 255)]
        return m


def plan_of(board, *, clock_frequency=None, config=None, core=LoopbackCore, **options):
    """The build plan of a board top (elaborated, constraints written, no tools run)."""
    top = BoardTop(config or load_preset("tiny"), board, clock_frequency=clock_frequency,
                   core=core)
    plan = BOARDS[board].platform().build(top, name="top", do_build=False, **options)
    return top, plan


def plan_text(plan, name) -> str:
    content = plan.files[name]
    return content.decode() if isinstance(content, bytes) else content


def tool_path(name):
    """An executable next to this Python (the YoWASP tools), else on PATH; None if none."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)
