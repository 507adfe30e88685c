"""ResultDrain on its own: the result stream, the array shifts and the drain interlock.

The testbench plays the scheduler and the array: it issues a tile's last cycle
(``issued_last`` with ``issued_rows``) only while ``drain_free`` is high, as the
scheduler must, pulses ``captured`` 1 .. 6 cycles later with fresh result rows in the
array model, and moves the array model's rows up (zeros in at the bottom) on every
``shift``. The ``result`` stream is taken with random backpressure
(:func:`tests.hdl.streams.receive`). Checked, cycle by cycle: the stream rules
(``valid`` held until a transfer, the payload stable while waiting), ``shift`` is
exactly a transfer, draining starts the cycle after ``captured``, ``drain_free`` is high
exactly when no capture is pending and no rows remain; and in the end every tile's
``issued_rows`` rows, in order, once each, with ``last`` on the final row of a GEMM's
final tile only.
"""

import random

import pytest
from amaranth.sim import Simulator

from qforge.hdl.drain import ResultDrain
from qforge.hdl.layouts import result_layout
from qforge.sim.host.packing import leaf_fields, unpack_fields
from tests.configs import custom, tiny
from tests.hdl.streams import receive, watchdog

DRAIN_CONFIGS = {
    "tiny": tiny,                                                     # R = 2
    "r3c2": lambda: custom("r3c2", rows=3, cols=2, operand_width=8, block_width=2,
                           block_multipliers=2, buffer_depth=16),
    "r4c1": lambda: custom("r4c1", rows=4, cols=1, operand_width=8, block_width=2,
                           block_multipliers=2, buffer_depth=16),
}


def random_tiles(config, rng, count, full_rows):
    """(rows drained, gemm_last, the array's R rows at the capture) per tile."""
    limit = 1 << (config.accumulator_width - 1)
    tiles = []
    for index in range(count):
        rows = config.rows if full_rows else rng.randint(1, config.rows)
        values = [[rng.choice([-limit, limit - 1, rng.randint(-limit, limit - 1)])
                   for _ in range(config.cols)] for _ in range(config.rows)]
        tiles.append((rows, int(rng.random() < 0.4 or index == count - 1), values))
    return tiles


def run_drain(config, tiles, *, stall, seed):
    dut = ResultDrain(config)
    rng = random.Random(seed)
    fields = leaf_fields(result_layout(config))
    expected_beats = [(row, int(gemm_last and index == rows - 1))
                      for rows, gemm_last, values in tiles
                      for index, row in enumerate(values[:rows])]
    received = []
    trace = {"cycles": 0, "captures": 0, "stalls": 0}

    async def receiver(ctx):
        beats = await receive(ctx, dut.result, len(expected_beats), stall=stall,
                              rng=random.Random(seed + 1))
        received.extend(beats)

    async def driver(ctx):
        zero_row = [0] * config.cols
        array = [zero_row] * config.rows          # the array's result rows, row 0 first
        pending = False                           # issued, not yet captured
        capture_at = None                         # cycle the capture pulse is due
        rows_left = 0
        held = None                               # (payload) while valid and not ready
        captured_cycle = None
        next_tile = 0
        in_flight = None
        cycle = 0
        while next_tile < len(tiles) or pending or rows_left:
            issue = (in_flight is None and next_tile < len(tiles) and not pending
                     and not rows_left and rng.random() < 0.5)
            capture = capture_at == cycle
            if issue:
                in_flight = tiles[next_tile]
                next_tile += 1
                ctx.set(dut.issued_rows, in_flight[0])
                capture_at = cycle + rng.randint(1, 6)
            ctx.set(dut.issued_last, issue)
            if capture:
                array = [list(row) for row in in_flight[2]]
                ctx.set(dut.captured_gemm_last, in_flight[1])
            ctx.set(dut.captured, capture)
            ctx.set(dut.array_row, array[0])
            _, _, drain_free, shift, valid, ready, payload = await ctx.tick().sample(
                dut.drain_free, dut.shift, dut.result.valid, dut.result.ready,
                dut.result.payload.as_value())
            where = f"cycle {cycle}"
            # drain_free: no capture pending and no rows left (before this cycle's edge).
            assert drain_free == (not pending and not rows_left), f"{where}: drain_free"
            assert shift == (valid and ready), f"{where}: shift is a transfer"
            assert valid == bool(rows_left), f"{where}: valid while rows remain"
            if captured_cycle is not None and cycle == captured_cycle + 1:
                assert valid, f"{where}: draining starts the cycle after captured"
            if held is not None:
                assert valid and payload == held, f"{where}: beat changed before transfer"
            held = payload if valid and not ready else None
            if valid and not ready:
                trace["stalls"] += 1
            # The model's state after this cycle's edge.
            if issue:
                pending = True
            if capture:
                pending, rows_left, captured_cycle = False, in_flight[0], cycle
                trace["captures"] += 1
                in_flight = None
                capture_at = None
            if shift:
                array = array[1:] + [zero_row]
                rows_left -= 1
            cycle += 1
            assert cycle < 5000, "drain hangs"
        ctx.set(dut.issued_last, 0)
        ctx.set(dut.captured, 0)
        trace["cycles"] = cycle

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(driver)
    simulator.add_testbench(receiver)
    simulator.add_testbench(watchdog(20_000), background=True)
    simulator.run()
    beats = []
    for bits in received:
        values = unpack_fields(fields, bits)
        beats.append((values[:-1], values[-1]))
    return beats, expected_beats, trace


@pytest.mark.parametrize("name", sorted(DRAIN_CONFIGS))
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_every_row_once_in_order(name, stall):
    config = DRAIN_CONFIGS[name]()
    tiles = random_tiles(config, random.Random(name), 30, full_rows=True)
    beats, expected, trace = run_drain(config, tiles, stall=stall, seed=len(name))
    assert beats == expected
    assert trace["captures"] == len(tiles)
    assert (trace["stalls"] > 10) == bool(stall)


@pytest.mark.parametrize("name", ["r3c2", "r4c1"])
def test_partial_tiles_drain_their_rows_only(name):
    """Zero-skipping arrays drain up to R rows per tile (``issued_rows``)."""
    config = DRAIN_CONFIGS[name]()
    tiles = random_tiles(config, random.Random(f"partial-{name}"), 30, full_rows=False)
    assert {rows for rows, _, _ in tiles} == set(range(1, config.rows + 1))
    beats, expected, _ = run_drain(config, tiles, stall=0.4, seed=7)
    assert beats == expected


def test_back_to_back_latency():
    """With ready always high a tile's R rows leave in R consecutive cycles, the first
    one the cycle after ``captured``; ``drain_free`` returns the cycle after the last."""
    config = DRAIN_CONFIGS["r3c2"]()
    dut = ResultDrain(config)
    trace = []

    async def bench(ctx):
        ctx.set(dut.result.ready, 1)
        ctx.set(dut.issued_rows, config.rows)
        for cycle in range(10):
            ctx.set(dut.issued_last, cycle == 0)
            ctx.set(dut.captured, cycle == 2)
            ctx.set(dut.captured_gemm_last, cycle == 2)
            _, _, valid, last, free = await ctx.tick().sample(
                dut.result.valid, dut.result.payload.last, dut.drain_free)
            trace.append((valid, last, free))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert [valid for valid, _, _ in trace] == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert [last for _, last, _ in trace][3:6] == [0, 0, 1]
    assert [free for _, _, free in trace] == [1, 0, 0, 0, 0, 0, 1, 1, 1, 1]
