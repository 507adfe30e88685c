"""AddendStage on its own, against :func:`qforge.sim.model.machine.add_saturate`.

GEMMs of random length, with and without ``add`` and with ``saturate_bits`` from 2 to
``accumulator_width``, stream through the stage: the epilogue entries (one per GEMM, in
order), the result beats (``last`` on each GEMM's final beat) and, for ``add`` GEMMs
only, one addend beat per result beat, all sent with random stalls while the output is
taken with random backpressure. Values include the accumulator's extremes, so sums
overflow the accumulator width and saturate at both ends. Checked: every output beat
once, in order, equal to ``add_saturate(addend, row, saturate_bits)`` for ``add``
GEMMs and to the row otherwise, ``last`` kept; the stream rules on ``output``; latency
one cycle and one beat per cycle when nothing stalls; ``idle`` exactly while no beat is
held.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.hdl.addend import AddendStage
from qforge.hdl.layouts import addend_layout, epilogue_layout, result_layout
from qforge.sim.host.packing import leaf_fields, pack_fields, unpack_fields
from qforge.sim.model.machine import add_saturate
from tests.configs import custom, tiny
from tests.hdl.streams import receive, send, watchdog

ADDEND_CONFIGS = {
    "tiny": tiny,                                                    # C = 2, A = 25
    "r2c3": lambda: custom("r2c3", rows=2, cols=3, operand_width=4, block_width=2,
                           block_multipliers=2, buffer_depth=8),
}


def random_gemms(config, rng, count):
    """Per GEMM: (add, saturate_bits, rows, addend rows or None)."""
    width = config.accumulator_width
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1

    def value():
        return rng.choice([low, high, 0, -1, rng.randint(low, high), rng.randint(-40, 40)])

    gemms = []
    for _ in range(count):
        add = rng.random() < 0.6
        bits = rng.choice([2, 3, 8, width - 1, width, rng.randint(2, width)]) if add else 0
        beats = rng.randint(1, 5)
        rows = [[value() for _ in range(config.cols)] for _ in range(beats)]
        addend = [[value() for _ in range(config.cols)] for _ in range(beats)] if add else None
        gemms.append((int(add), bits, rows, addend))
    return gemms


def expected_beats(gemms):
    out = []
    for add, bits, rows, addend in gemms:
        values = (add_saturate(np.array(addend), np.array(rows), bits).tolist() if add
                  else rows)
        out += [(row, int(index == len(rows) - 1)) for index, row in enumerate(values)]
    return out


def stream_beats(config, gemms):
    """The bits of the epilogue, input and addend streams."""
    result_fields = leaf_fields(result_layout(config))
    addend_fields = leaf_fields(addend_layout(config))
    epilogue = [epilogue_layout(config).const({"add": add, "saturate_bits": bits}).as_bits()
                for add, bits, _, _ in gemms]
    inputs = [pack_fields(result_fields, row + [int(index == len(rows) - 1)])
              for _, _, rows, _ in gemms for index, row in enumerate(rows)]
    addends = [pack_fields(addend_fields, row)
               for _, _, _, addend in gemms if addend for row in addend]
    return epilogue, inputs, addends


def run_stage(config, gemms, *, stall, seed):
    dut = AddendStage(config)
    epilogue, inputs, addends = stream_beats(config, gemms)
    fields = leaf_fields(result_layout(config))
    received = []
    trace = {"stalls": 0}

    def sender(port, beats, offset):
        async def process(ctx):
            await send(ctx, port, beats, stall=stall, rng=random.Random(seed + offset))
        return process

    async def receiver(ctx):
        received.extend(await receive(ctx, dut.output, len(inputs), stall=stall,
                                      rng=random.Random(seed + 3)))

    async def monitor(ctx):
        """Stream rules on output; idle exactly while no beat is held."""
        held = None
        async for _, _, valid, ready, payload, idle in ctx.tick().sample(
                dut.output.valid, dut.output.ready, dut.output.payload.as_value(),
                dut.idle):
            assert held is None or (valid and payload == held), \
                "output beat withdrawn or changed before its transfer"
            assert idle == (not valid), "idle is not ~output.valid"
            held = payload if valid and not ready else None
            trace["stalls"] += bool(valid and not ready)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(sender(dut.epilogue, epilogue, 0))
    simulator.add_testbench(sender(dut.input, inputs, 1))
    simulator.add_testbench(sender(dut.addend, addends, 2))
    simulator.add_testbench(receiver)
    simulator.add_testbench(monitor, background=True)
    simulator.add_testbench(watchdog(20_000), background=True)
    simulator.run()
    beats = []
    for bits in received:
        values = unpack_fields(fields, bits)
        beats.append((values[:-1], values[-1]))
    return beats, trace


@pytest.mark.parametrize("name", sorted(ADDEND_CONFIGS))
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_addend_stage_matches_add_saturate(name, stall):
    config = ADDEND_CONFIGS[name]()
    gemms = random_gemms(config, random.Random(f"addend-{name}"), 40)
    expected = expected_beats(gemms)
    # The example saturates at both ends and has sums that fit.
    add_rows = [(np.array(a) + np.array(r), bits) for add, bits, rows, addend in gemms
                if add for a, r in zip(addend, rows)]
    assert any((total > (1 << (bits - 1)) - 1).any() for total, bits in add_rows)
    assert any((total < -(1 << (bits - 1))).any() for total, bits in add_rows)
    beats, trace = run_stage(config, gemms, stall=stall, seed=len(name))
    assert beats == expected
    assert (trace["stalls"] > 10) == bool(stall)


def test_latency_one_beat_per_cycle():
    """Nothing stalls: each beat leaves one cycle after it was taken, one per cycle,
    across GEMMs with and without add."""
    config = tiny()
    gemms = [(1, 8, [[1, 2], [3, 4]], [[10, 20], [30, 40]]), (0, 0, [[5, 6]], None),
             (1, 4, [[7, 8], [-9, 9]], [[1, 1], [-1, 1]])]
    epilogue, inputs, addends = stream_beats(config, gemms)
    dut = AddendStage(config)
    taken, leaving = [], []

    async def bench(ctx):
        ctx.set(dut.output.ready, 1)
        for bits in epilogue:                     # the decoder runs ahead
            ctx.set(dut.epilogue.payload.as_value(), bits)
            ctx.set(dut.epilogue.valid, 1)
            await ctx.tick().until(dut.epilogue.ready)
        ctx.set(dut.epilogue.valid, 0)
        addend_queue = list(addends)
        for cycle in range(len(inputs) + 3):
            ctx.set(dut.input.valid, cycle < len(inputs))
            if cycle < len(inputs):
                ctx.set(dut.input.payload.as_value(), inputs[cycle])
            ctx.set(dut.addend.valid, bool(addend_queue))
            if addend_queue:
                ctx.set(dut.addend.payload.as_value(), addend_queue[0])
            _, _, in_ready, add_ready, out_valid = await ctx.tick().sample(
                dut.input.ready, dut.addend.ready, dut.output.valid)
            if cycle < len(inputs) and in_ready:
                taken.append(cycle)
            if addend_queue and add_ready:
                addend_queue.pop(0)
            if out_valid:
                leaving.append(cycle)
        assert not addend_queue

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert taken == list(range(len(inputs)))
    assert leaving == [cycle + 1 for cycle in taken]


def test_no_epilogue_no_beat():
    """A result beat waits for its GEMM's epilogue entry; an add GEMM's beat waits for
    its addend beat."""
    config = tiny()
    dut = AddendStage(config)
    _, inputs, addends = stream_beats(config, [(1, 8, [[1, 2]], [[3, 4]])])
    epilogue = epilogue_layout(config).const({"add": 1, "saturate_bits": 8}).as_bits()
    readies = []

    async def bench(ctx):
        ctx.set(dut.output.ready, 1)
        ctx.set(dut.input.payload.as_value(), inputs[0])
        ctx.set(dut.input.valid, 1)
        readies.append(await ctx.tick().sample(dut.input.ready))   # no epilogue yet
        ctx.set(dut.epilogue.payload.as_value(), epilogue)
        ctx.set(dut.epilogue.valid, 1)
        await ctx.tick()
        ctx.set(dut.epilogue.valid, 0)
        readies.append(await ctx.tick().sample(dut.input.ready))   # no addend yet
        ctx.set(dut.addend.payload.as_value(), addends[0])
        ctx.set(dut.addend.valid, 1)
        readies.append(await ctx.tick().sample(dut.input.ready, dut.addend.ready))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert [r[2:] for r in readies] == [(0,), (0,), (1, 1)]
