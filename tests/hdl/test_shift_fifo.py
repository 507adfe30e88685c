"""ShiftFIFO against Amaranth's own SyncFIFO (the independent reference): both driven by
the same random writes and reads, every cycle the ready signals, the level and (while
a word is there) the head must agree."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFO
from amaranth.sim import Simulator

from qforge.hdl.shift_fifo import ShiftFIFO


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("write_rate, read_rate", [(0.5, 0.5), (0.8, 0.3), (0.3, 0.8)])
def test_same_as_sync_fifo_cycle_for_cycle(depth, write_rate, read_rate):
    m = Module()
    m.submodules.dut = dut = ShiftFIFO(width=8, depth=depth)
    m.submodules.reference = reference = SyncFIFO(width=8, depth=depth)
    rng = random.Random(depth * 100 + int(write_rate * 10))
    seen = {"reads": 0, "full": 0}

    async def bench(ctx):
        for _ in range(400):
            data, w_en, r_en = rng.randrange(256), rng.random() < write_rate, \
                rng.random() < read_rate
            for fifo in (dut, reference):
                ctx.set(fifo.w_data, data)
                ctx.set(fifo.w_en, w_en)
                ctx.set(fifo.r_en, r_en)
            assert ctx.get(dut.w_rdy) == ctx.get(reference.w_rdy)
            assert ctx.get(dut.r_rdy) == ctx.get(reference.r_rdy)
            assert ctx.get(dut.level) == ctx.get(reference.level)
            if ctx.get(reference.r_rdy):
                assert ctx.get(dut.r_data) == ctx.get(reference.r_data)
                seen["reads"] += r_en
            seen["full"] += not ctx.get(reference.w_rdy)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # The stimulus reached the interesting cases: words read, the queue full.
    assert seen["reads"] > 20 and seen["full"] > 0

