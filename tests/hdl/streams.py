"""Amaranth-simulator helpers to drive and observe ``amaranth.lib.stream`` ports.

Used by the fast unit tests (``tests/hdl``); the cocotb integration benches have their
own drivers (:class:`qforge.sim.bench.testbench.StreamSource` and
:class:`~qforge.sim.bench.testbench.StreamSink`) because they run on the generated Verilog.
"""

import random


async def send(ctx, port, beats, *, stall=0.0, rng=None):
    """Send ``beats`` (ints or views' bit patterns) on stream ``port``, optionally
    dropping ``valid`` for a random fraction ``stall`` of cycles between beats."""
    rng = rng or random.Random(0)
    for beat in beats:
        while stall and rng.random() < stall:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload.as_value(), beat)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive(ctx, port, count, *, stall=0.0, rng=None, on_beat=None):
    """Receive ``count`` beats from stream ``port`` (as raw ints), optionally dropping
    ``ready`` for a random fraction ``stall`` of cycles."""
    rng = rng or random.Random(1)
    beats = []
    while len(beats) < count:
        ready = not (stall and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload.as_value())
        if ready and valid:
            beats.append(payload)
            if on_beat:
                on_beat(len(beats))
    ctx.set(port.ready, 0)
    return beats


def check_control(trace, expected_active, expected_release, name):
    """A scheduler's job control, cycle by cycle: ``active`` as expected and
    ``job.ready`` its inverse, nothing issued (no valid, no flags) while idle, and
    ``release`` pulsing exactly in the expected cycles with the expected half.

    ``trace``: per cycle a dict with ``active``, ``ready``, ``issue`` (the issue view),
    ``release`` and ``release_half``; ``expected_release``: cycle -> half.
    """
    for cycle, record in enumerate(trace):
        where = f"{name} cycle {cycle}"
        assert record["active"] == expected_active[cycle], f"{where}: active"
        assert record["ready"] == (not record["active"]), f"{where}: job.ready"
        if not expected_active[cycle]:
            assert record["issue"].valid == 0, f"{where}: issued while idle"
            assert record["issue"].flags.as_bits() == 0, f"{where}: flags while idle"
        assert record["release"] == (cycle in expected_release), f"{where}: release"
        if cycle in expected_release:
            assert record["release_half"] == expected_release[cycle], f"{where}: half"


def watchdog(cycles):
    """A background testbench that fails the test if it is still running after
    ``cycles`` (a lost beat would otherwise leave the receiver waiting forever)."""
    async def process(ctx):
        count = 0
        async for _ in ctx.tick():        # not .repeat(): it cannot be abandoned cleanly
            count += 1
            if count == cycles:
                raise AssertionError(f"no progress after {cycles} cycles (a beat lost?)")
    return process
