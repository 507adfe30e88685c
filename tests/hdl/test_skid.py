"""SkidBuffer (hdl/skid.py): order, no loss or duplication under random valid and ready,
no added latency, and an ``input.ready`` that never follows ``output.ready`` in the same
cycle."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from qforge.hdl.skid import SkidBuffer
from tests.hdl.streams import receive, send


#: A struct payload, as the accelerator's streams have (the stream helpers pack views).
WORD = data.StructLayout({"value": 12})


def _simulate(dut, *processes, cycles=5000):
    """Run the testbenches for at most ``cycles`` clock periods (a lost beat would leave
    the receiver waiting forever; the caller's checks then fail instead of hanging)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for process in processes:
        sim.add_testbench(process)
    sim.run_until(cycles * 1e-6)


@pytest.mark.parametrize("in_stall,out_stall", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5),
                                                (0.4, 0.4), (0.1, 0.8)])
def test_beats_pass_in_order(in_stall, out_stall):
    dut = SkidBuffer(WORD)
    beats = random.Random(5).choices(range(1 << 12), k=200)
    received = []

    async def source(ctx):
        await send(ctx, dut.input, beats, stall=in_stall, rng=random.Random(2))

    async def sink(ctx):
        received.extend(await receive(ctx, dut.output, len(beats), stall=out_stall,
                                      rng=random.Random(3)))

    _simulate(dut, source, sink)
    assert received == beats


def test_no_latency_and_registered_ready():
    """Empty: the offered beat is on ``output`` in the same cycle. Full (a beat held while
    ``output.ready`` was low): ``input.ready`` is low, and toggling ``output.ready``
    within a cycle does not change it."""
    dut = SkidBuffer(WORD)

    async def bench(ctx):
        ctx.set(dut.input.payload.value, 0x5A)
        ctx.set(dut.input.valid, 1)
        ctx.set(dut.output.ready, 1)
        assert ctx.get(dut.output.valid) == 1 and ctx.get(dut.output.payload.value) == 0x5A
        assert ctx.get(dut.input.ready) == 1 and ctx.get(dut.empty) == 1
        ctx.set(dut.output.ready, 0)
        assert ctx.get(dut.input.ready) == 1          # not combinational on output.ready
        await ctx.tick()                                # 0x5A taken into the register
        ctx.set(dut.input.payload.value, 0x11)
        assert ctx.get(dut.empty) == 0
        assert ctx.get(dut.output.payload.value) == 0x5A    # the held beat first
        for ready in (0, 1, 0):
            ctx.set(dut.output.ready, ready)
            assert ctx.get(dut.input.ready) == 0
        ctx.set(dut.output.ready, 1)
        await ctx.tick()                                # 0x5A leaves
        assert ctx.get(dut.empty) == 1 and ctx.get(dut.input.ready) == 1
        assert ctx.get(dut.output.payload.value) == 0x11

    _simulate(dut, bench, cycles=10)
