"""Accelerator end to end in the Amaranth simulator, against the golden model.

Every GEMM's result beats must equal :func:`qforge.sim.model.numerics.gemm` (zero-padded to
whole tiles, beat by beat, ``last`` only on a GEMM's final beat) under random stalls on
every stream. Invalid commands must set the sticky ``error``, be dropped without taking
operand beats, and leave the accelerator working. With streams always valid/ready the
cycle count from the first command transfer to the last result transfer must equal
:func:`qforge.sim.model.cycles.gemm_cycles`.
"""

import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.hdl.layouts import command_layout
from qforge.hdl.top import Accelerator
from qforge.sim.model.cycles import CHECK_LATENCY, gemm_cycles, gemm_shape
from qforge.sim.model.numerics import standard_modes
from qforge.sim.host.packing import GemmJob, ResultAssembler
from tests.configs import custom, tiny
from tests.hdl.streams import receive, send

#: Configurations of the top-level tests: the tiny preset (square, B = 2, P = 2) and a
#: non-square array with B = 4 blocks of 2 bits and small buffers.
TOP_CONFIGS = {
    "tiny": tiny,
    "r2c3": lambda: custom("r2c3", rows=2, cols=3, operand_width=8, block_width=2,
                           block_multipliers=2, buffer_depth=16),
}


@dataclass
class Trace:
    """Per clock edge (index = edge), what the monitor saw."""

    cmd: list = field(default_factory=list)       # edges with a cmd transfer
    a: list = field(default_factory=list)         # edges with an a_in transfer
    b: list = field(default_factory=list)
    result: list = field(default_factory=list)
    idle: list = field(default_factory=list)      # idle at every edge
    error: list = field(default_factory=list)     # error at every edge


def _operands(rng, config, mode, m, depth, n, pattern):
    """Operand matrices in range for ``mode``, following a corner-value ``pattern``."""
    def matrix(blocks, shape):
        bits = blocks * config.block_width
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if pattern == "zeros":
            return np.zeros(shape, dtype=np.int64)
        if pattern == "max":
            return np.full(shape, high, dtype=np.int64)
        if pattern == "min":
            return np.full(shape, low, dtype=np.int64)
        if pattern == "mixed":
            corners = [low, high, -high, 0, 1, -1, low + 1]
            return rng.choice(corners, shape).astype(np.int64)
        return rng.integers(low, high + 1, shape, dtype=np.int64)
    return matrix(mode.a.blocks, (m, depth)), matrix(mode.b.blocks, (depth, n))


def _shapes(config, jobs):
    return [gemm_shape(config, job.a.shape[0], job.b.shape[1], job.a.shape[1], job.precision)
            for job in jobs]


def _run(config, items, *, stall=0.0, seed=0, tail=4):
    """Simulate a sequence of commands. ``items`` holds :class:`GemmJob` s and raw
    (invalid) command integers. Returns the per-job received beats and the trace."""
    dut = Accelerator(config)
    jobs = [item for item in items if isinstance(item, GemmJob)]
    # A generous bound (stalls slow every handshake by 1 / (1 - stall) on average).
    max_cycles = 200 + int(gemm_cycles(config, _shapes(config, jobs)).total * 4 / (1 - stall))
    commands = [item.command if isinstance(item, GemmJob) else item for item in items]
    rng = random.Random(seed)
    received = []
    trace = Trace()

    async def send_cmd(ctx):
        await send(ctx, dut.cmd, commands, stall=stall, rng=random.Random(rng.random()))

    async def send_a(ctx):
        beats = [beat for job in jobs for beat in job.a_beats]
        await send(ctx, dut.a_in, beats, stall=stall, rng=random.Random(rng.random()))

    async def send_b(ctx):
        beats = [beat for job in jobs for beat in job.b_beats]
        await send(ctx, dut.b_in, beats, stall=stall, rng=random.Random(rng.random()))

    async def collect(ctx):
        result_rng = random.Random(rng.random())
        for job in jobs:
            received.append(await receive(ctx, dut.result, job.result_beats,
                                          stall=stall, rng=result_rng))
        await ctx.tick().repeat(tail)   # let the monitor see the accelerator go idle

    async def monitor(ctx):
        ports = (dut.cmd, dut.a_in, dut.b_in, dut.result)
        signals = [s for port in ports for s in (port.valid, port.ready)]
        edge = 0
        while True:
            _, _, *values, idle, error = await ctx.tick().sample(*signals, dut.idle,
                                                                 dut.error)
            for name, valid, ready in zip(("cmd", "a", "b", "result"),
                                          values[0::2], values[1::2]):
                if valid and ready:
                    getattr(trace, name).append(edge)
            trace.idle.append(idle)
            trace.error.append(error)
            edge += 1
            # A hang fails here instead of looping forever.
            assert edge < max_cycles, \
                f"no progress after {max_cycles} cycles: received " \
                f"{[len(r) for r in received]} of {[job.result_beats for job in jobs]} " \
                f"result beats"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in (send_cmd, send_a, send_b, collect):
        sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert len(received) == len(jobs)
    return received, trace


def _check_results(config, jobs, received):
    for index, (job, beats) in enumerate(zip(jobs, received)):
        assembler = ResultAssembler(config, job.a.shape[0], job.b.shape[1])
        got = [assembler.add(beat) for beat in beats]
        expected = job.expected_beats()
        where = (f"job {index} ({job.a.shape[0]}x{job.a.shape[1]} @ "
                 f"{job.b.shape[0]}x{job.b.shape[1]}, {job.precision.describe()})")
        assert [last for _, last in got] == [last for _, last in expected], \
            f"{where}: last flags {[last for _, last in got]}"
        assert np.array_equal(assembler.matrix(), job.expected), \
            f"{where}:\nA=\n{job.a}\nB=\n{job.b}\ngot\n{assembler.matrix()}\n" \
            f"expected\n{job.expected}"
        assert [row for row, _ in got] == [row for row, _ in expected], \
            f"{where}: padding rows/columns of the result tiles are not zero"


def _invalid_command(config, *, m_tiles=1, n_tiles=1, depth=1, a=(1, 1), b=(1, 1)):
    """A command integer with arbitrary (possibly invalid) fields."""
    return command_layout(config).const({
        "m_tiles_minus_one": m_tiles - 1, "n_tiles_minus_one": n_tiles - 1,
        "depth_minus_one": depth - 1,
        "a": {"blocks_minus_one": a[0] - 1, "kept_minus_one": a[1] - 1, "dynamic": 0},
        "b": {"blocks_minus_one": b[0] - 1, "kept_minus_one": b[1] - 1, "dynamic": 1},
    }).as_bits()


@pytest.mark.parametrize("name", sorted(TOP_CONFIGS))
@pytest.mark.parametrize("stall", [0.3, 0.7])
def test_gemms_all_modes_with_stalls(name, stall):
    """Every standard mode, random shapes and corner values, random stalls everywhere
    (0.7: the result stream back-pressures the drain and so the scheduler)."""
    config = TOP_CONFIGS[name]()
    rng = np.random.default_rng([sum(map(ord, name)), int(stall * 10)])
    patterns = ["random", "mixed", "min", "max", "zeros"]
    jobs = []
    for index, (mode_name, mode) in enumerate(standard_modes(config).items()):
        for repeat in range(3):
            # Shapes up to two tiles per side, depth up to 3 words, mostly not multiples.
            m = int(rng.integers(1, 2 * config.rows + 1))
            n = int(rng.integers(1, 2 * config.cols + 1))
            depth = int(rng.integers(1, 3 * config.block_multipliers + 2))
            pattern = patterns[(3 * index + repeat) % len(patterns)]
            a, b = _operands(rng, config, mode, m, depth, n, pattern)
            jobs.append(GemmJob.build(config, a, b, mode))
    received, trace = _run(config, jobs, stall=stall, seed=int(stall * 10))
    _check_results(config, jobs, received)
    assert len(trace.cmd) == len(jobs)
    assert len(trace.a) == sum(len(job.a_beats) for job in jobs)
    assert len(trace.b) == sum(len(job.b_beats) for job in jobs)
    assert not any(trace.error)
    assert trace.idle[-1] == 1


@pytest.mark.parametrize("name", sorted(TOP_CONFIGS))
def test_invalid_commands_set_error_and_are_dropped(name):
    config = TOP_CONFIGS[name]()
    rng = np.random.default_rng(7)
    mode = standard_modes(config)["mixed"]
    words = config.buffer_depth       # deepest dot product: every tile fills a bank half
    depth = words * config.block_multipliers

    def job(m, d, n):
        return GemmJob.build(config, *_operands(rng, config, mode, m, d, n, "random"), mode)

    first, second = job(3, 5, 4), job(config.rows + 1, 3, 2)
    invalid = [
        _invalid_command(config, a=(1, 2)),                     # A: kept > blocks
        _invalid_command(config, b=(config.blocks - 1, config.blocks)),  # B: kept > blocks
        _invalid_command(config, m_tiles=2, depth=depth),       # A tiles * words too big
        _invalid_command(config, n_tiles=2, depth=depth),       # B tiles * words too big
    ]
    items = [first, invalid[0], invalid[1], invalid[2], invalid[3], second]
    received, trace = _run(config, items, stall=0.2, seed=3)
    _check_results(config, [first, second], received)

    assert len(trace.cmd) == len(items)
    first_invalid, last_invalid = trace.cmd[1], trace.cmd[4]
    # The loader checks a command the cycle after taking it (CHECK_LATENCY: take, check),
    # so the error register is set CHECK_LATENCY edges after the transfer, and stays.
    raised = first_invalid + CHECK_LATENCY
    assert not any(trace.error[:raised]), "error set before an invalid command was checked"
    assert all(trace.error[raised:]), "error is not sticky"
    # Dropped: after the first command's own beats, no operand beat is taken until the
    # next valid command can have started loading (CHECK_LATENCY edges after it was
    # taken). The slot takes commands while the first one loads, so beats and command
    # transfers interleave.
    second_start = trace.cmd[5] + CHECK_LATENCY
    for taken, own in ((trace.a, len(first.a_beats)), (trace.b, len(first.b_beats))):
        early = [edge for edge in sorted(taken)[own:] if edge <= second_start]
        assert not early, f"operand beats taken for an invalid command: {early}"
    assert last_invalid < trace.cmd[5]
    assert trace.idle[-1] == 1


@pytest.mark.parametrize("name", sorted(TOP_CONFIGS))
def test_deepest_commands_fill_the_buffers(name):
    """Commands at the limits: a dot product of max_reduction_depth of most negative
    operands (the accumulator's design bound), then tiles * words == buffer_depth exactly
    on both sides (the largest command the loader must accept)."""
    config = TOP_CONFIGS[name]()
    rng = np.random.default_rng(11)
    modes = standard_modes(config)
    deepest = config.max_reduction_depth
    half_depth = config.buffer_depth // 2 * config.block_multipliers
    # approx_dynamic_1 keeps the most negative value exactly (a single non-zero block).
    extreme = modes["approx_dynamic_1"]
    a, b = _operands(rng, config, extreme, 1, deepest, config.cols, "min")
    first = GemmJob.build(config, a, b, extreme)
    bound = deepest * config.max_magnitude ** 2
    assert first.expected.max() == bound < 1 << (config.accumulator_width - 1)
    mode = modes["approx_dynamic"]
    a, b = _operands(rng, config, mode, config.rows + 1, half_depth, config.cols + 1,
                     "mixed")
    second = GemmJob.build(config, a, b, mode)
    assert len(second.a_beats) == len(second.b_beats) == config.buffer_depth
    received, trace = _run(config, [first, second], stall=0.1, seed=5)
    _check_results(config, [first, second], received)
    assert not any(trace.error)


def _cycle_jobs(config, rng, shapes):
    modes = standard_modes(config)
    jobs = []
    for m, depth, n, mode_name in shapes:
        mode = modes[mode_name]
        depth = depth or config.max_reduction_depth
        jobs.append(GemmJob.build(config, *_operands(rng, config, mode, m, depth, n,
                                                     "random"), mode))
    return jobs


#: (m, depth, n, mode) per command; one entry per simulated sequence.
CYCLE_SEQUENCES = [
    [(3, 5, 4, "exact")],                  # compute-bound tiles, ragged edges
    [(4, 3, 5, "approx_dynamic_1")],       # q = 1: short tiles, the drain is the limit
    [(2, 7, 3, "mixed")],
    [(5, 4, 3, "reduced"), (3, 6, 4, "approx_static")],   # back to back
    # Three commands: the third waits for the first one's buffer half to be released.
    [(4, 6, 4, "exact"), (1, 1, 1, "reduced"), (2, 3, 3, "approx_dynamic")],
    [(1, None, 2, "approx_dynamic_1")],    # None: max_reduction_depth (every word)
]


@pytest.mark.parametrize("name", sorted(TOP_CONFIGS))
@pytest.mark.parametrize("sequence", range(len(CYCLE_SEQUENCES)))
def test_cycle_count_matches_model(name, sequence):
    config = TOP_CONFIGS[name]()
    rng = np.random.default_rng(sequence)
    jobs = _cycle_jobs(config, rng, CYCLE_SEQUENCES[sequence])
    received, trace = _run(config, jobs, stall=0.0)
    _check_results(config, jobs, received)

    measured = trace.result[-1] - trace.cmd[0] + 1
    predicted = gemm_cycles(config, _shapes(config, jobs)).total
    assert measured == predicted, \
        f"{name} {CYCLE_SEQUENCES[sequence]}: measured {measured} cycles, model {predicted}"

    # idle: low from the first command's acceptance until the last result beat, then
    # high again once everything has drained.
    first, last = trace.cmd[0], trace.result[-1]
    assert all(trace.idle[:first + 1])
    assert not any(trace.idle[first + 1:last + 1]), "idle while work is outstanding"
    assert all(trace.idle[last + 1:]), "idle does not return after the last result"

    if len(jobs) > 1:
        # Back to back: the second command is taken and loaded while the first computes.
        first_job_results = trace.result[:jobs[0].result_beats]
        assert trace.cmd[1] < first_job_results[0], "second command not overlapped"
        assert trace.a[len(jobs[0].a_beats)] < first_job_results[-1]
