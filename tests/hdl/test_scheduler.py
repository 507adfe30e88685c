"""Scheduler: tile order, lane packing, addresses, flags, release and drain back-pressure.

Jobs are fed through the ``job`` stream while ``drain_free`` toggles randomly; every
cycle's ``issue`` record is recorded and replayed against a reference built from
:func:`qforge.sim.model.cycles.lane_schedule` (for ``pe = "shared_shift"`` and ``pe =
"fused"``, their own orders written out: :func:`_shared_shift_products`,
:func:`_fused_products`): per tile ``ceil(depth * q / P)`` issued cycles,
lane ``l`` of cycle ``c`` carrying product ``(k, i, j)`` as ``(k mod P, i, j, k < depth)``,
addresses ``half * buffer_depth + tile * words + k // P``, tiles ``for mt: for nt:``.
A tile's last cycle is issued only while ``drain_free`` is high; every other cycle of an
active job is issued at once.
"""

import random

import pytest
from amaranth.sim import Simulator

from qforge.hdl.scheduler import Scheduler
from qforge.sim.model.cycles import (lane_schedule, mode_tile_cycles, paired_tile_cycles,
                                     tile_cycles)
from qforge.sim.model.numerics import OperandPrecision, Precision, Selection
from qforge.sim.model.paired import PairedPrecision
from tests.configs import COMPONENT_CONFIGS
from tests.hdl.test_selector import PAIRED_CONFIGS, paired_windows
from tests.hdl.streams import check_control


def _command(m_tiles, n_tiles, depth, a, b):
    """A command dict; ``a``/``b`` are ``(blocks, kept, dynamic)``."""
    def operand(p):
        return {"blocks_minus_one": p[0] - 1, "kept_minus_one": p[1] - 1, "dynamic": p[2]}
    return {"m_tiles_minus_one": m_tiles - 1, "n_tiles_minus_one": n_tiles - 1,
            "depth_minus_one": depth - 1, "a": operand(a), "b": operand(b)}


def _packed_products(config, job):
    """Per cycle, each lane's ``(k, i, j)``: the default schedule (lane_schedule)."""
    lanes, depth = config.block_multipliers, job["depth"]
    (_, kept_a, _), (_, kept_b, _) = job["a"], job["b"]
    cycles = tile_cycles(depth, kept_a * kept_b, lanes)
    assert cycles == -(-depth * kept_a * kept_b // lanes)
    return lane_schedule(kept_a, kept_b, lanes).products(cycles)


def _shared_shift_products(config, job):
    """Per cycle, each lane's ``(k, i, j)`` for ``pe = "shared_shift"``, written out:
    for every word, every block pair ``(i, j)`` (j fastest) of the word's P operands,
    lane ``l`` on operand ``word * P + l``; a dynamic operand walks all its ``n`` block
    positions, any other its ``L`` kept blocks."""
    lanes, depth = config.block_multipliers, job["depth"]
    (blocks_a, kept_a, dynamic_a), (blocks_b, kept_b, dynamic_b) = job["a"], job["b"]
    walked_a = blocks_a if dynamic_a else kept_a
    walked_b = blocks_b if dynamic_b else kept_b
    return [[(word * lanes + lane, i, j) for lane in range(lanes)]
            for word in range(-(-depth // lanes))
            for i in range(walked_a) for j in range(walked_b)]


def _fused_products(config, job):
    """Per cycle, each lane's ``(k, t, t)`` for ``pe = "fused"``, written out: in a wide
    mode (a side keeping both of its 2 blocks) MAC ``k`` fills lanes ``2k`` and ``2k + 1``
    of the packed sequence, lane ``t`` carrying kept block ``t`` of both sides; otherwise
    MAC ``k`` fills lane ``k``, block 0. A cycle holds P consecutive lanes."""
    lanes, depth = config.block_multipliers, job["depth"]
    per_mac = 2 if max(job["a"][1], job["b"][1]) == 2 else 1
    cycles = -(-depth * per_mac // lanes)
    slots = [(k, t, t) for k in range(cycles * lanes) for t in range(per_mac)]
    return [slots[c * lanes:(c + 1) * lanes] for c in range(cycles)]


def _lane_selects(config, job, row):
    """The issued ``(offset, index, valid)`` of each lane, per side, of one cycle
    ``row`` of ``(k, i, j)``; ``pe = "fused"`` lanes are valid on a side only for a
    kept block ``t < L`` of that side."""
    lanes, depth = config.block_multipliers, job["depth"]
    kept_a, kept_b = job["a"][1], job["b"][1]
    fused = config.pe == "fused"
    a = [(k % lanes, i, int(k < depth and (not fused or i < kept_a))) for k, i, _ in row]
    b = [(k % lanes, j, int(k < depth and (not fused or j < kept_b))) for k, _, j in row]
    return a, b


def _expected_issues(config, job):
    """Every cycle the job must issue, in order: a dict of the issue record's fields."""
    lanes, depth = config.block_multipliers, job["depth"]
    words = -(-depth // lanes)
    products = {"shared_shift": _shared_shift_products,
                "fused": _fused_products}.get(config.pe, _packed_products)(config, job)
    cycles = len(products)
    base = job["half"] * config.buffer_depth
    out = []
    for mt in range(job["m_tiles"]):
        for nt in range(job["n_tiles"]):
            for c, row in enumerate(products):
                word = row[0][0] // lanes
                assert all(k // lanes == word for k, _, _ in row)
                last = c == cycles - 1
                a_select, b_select = _lane_selects(config, job, row)
                out.append({
                    "tile": (mt, nt), "cycle": c,
                    "a_address": base + mt * words + word,
                    "b_address": base + nt * words + word,
                    "a_select": a_select, "b_select": b_select,
                    "first": int(c == 0), "last": int(last),
                    "gemm_last": int(last and mt == job["m_tiles"] - 1
                                     and nt == job["n_tiles"] - 1),
                } | ({"wide": int(max(job["a"][1], job["b"][1]) == 2)}
                     if config.pe == "fused" else {}))
    return out


def _random_operand_precision(rng, config, kept=None):
    kept = kept or rng.randint(1, config.blocks)
    return (rng.randint(kept, config.blocks), kept, rng.randrange(2))


def _jobs(config, rng):
    """The deepest dot product (every word of a bank half), one single-tile job per
    (La, Lb) pair, then random multi-tile jobs."""
    lanes = config.block_multipliers
    deepest = config.max_reduction_depth
    jobs = [{"m_tiles": 1, "n_tiles": 1, "depth": deepest,
             "a": _random_operand_precision(rng, config, 1),
             "b": _random_operand_precision(rng, config, 1)}]
    if deepest * config.blocks ** 2 <= 64 * lanes:   # small configs: the slowest mode too
        jobs.append({"m_tiles": 1, "n_tiles": 2, "depth": deepest,
                     "a": _random_operand_precision(rng, config, config.blocks),
                     "b": _random_operand_precision(rng, config, config.blocks)})
    if deepest > 1:
        jobs.append({"m_tiles": 1, "n_tiles": 1, "depth": deepest - 1,
                     "a": _random_operand_precision(rng, config, 1),
                     "b": _random_operand_precision(rng, config, config.blocks)})
    pairs = [(ka, kb) for ka in range(1, config.blocks + 1)
             for kb in range(1, config.blocks + 1)]
    for ka, kb in pairs:
        jobs.append({"m_tiles": 1, "n_tiles": 1, "depth": rng.randint(1, 3 * lanes + 1),
                     "a": _random_operand_precision(rng, config, ka),
                     "b": _random_operand_precision(rng, config, kb)})
    for _ in range(6):
        jobs.append({"m_tiles": rng.randint(1, 3), "n_tiles": rng.randint(1, 3),
                     "depth": rng.randint(1, 2 * lanes + 1),
                     "a": _random_operand_precision(rng, config),
                     "b": _random_operand_precision(rng, config)})
    for job in jobs:
        job["half"] = rng.randrange(2)
        words = -(-job["depth"] // lanes)
        assert max(job["m_tiles"], job["n_tiles"]) * words <= config.buffer_depth
    return jobs


@pytest.mark.parametrize("name", sorted(COMPONENT_CONFIGS))
def test_scheduler_issue_sequence(name):
    config = COMPONENT_CONFIGS[name]()
    rng = random.Random(f"scheduler-{name}")
    jobs = _jobs(config, rng)
    dut = Scheduler(config)
    trace = []       # per cycle: what the testbench drove and what it saw
    # Generous bound on the run (every issued cycle withheld a few times): a hang fails.
    max_cycles = 200 + 4 * sum(len(_expected_issues(config, {**job, "half": 0}))
                               for job in jobs)
    accepted_at = []

    async def bench(ctx):
        queue = list(jobs)
        offered = None
        idle_cycles = 0
        cycle = 0
        while queue or offered is not None or idle_cycles < 3:
            if offered is None and queue and rng.random() < 0.5:
                offered = queue.pop(0)
                ctx.set(dut.job.payload, {
                    "command": _command(offered["m_tiles"], offered["n_tiles"],
                                        offered["depth"], offered["a"], offered["b"]),
                    "half": offered["half"]})
                ctx.set(dut.job.valid, 1)
            drain_free = int(rng.random() < 0.6)
            ctx.set(dut.drain_free, drain_free)
            ready = ctx.get(dut.job.ready)
            trace.append({"drain_free": drain_free, "issue": ctx.get(dut.issue),
                          "release": ctx.get(dut.release),
                          "release_half": ctx.get(dut.release_half),
                          "active": ctx.get(dut.active), "ready": ready})
            await ctx.tick()
            if offered is not None and ready:
                accepted_at.append(cycle)
                offered = None
                ctx.set(dut.job.valid, 0)
            idle_cycles = 0 if (trace[-1]["active"] or offered or queue) else idle_cycles + 1
            cycle += 1
            assert cycle < max_cycles, f"scheduler did not finish; {len(accepted_at)} of " \
                f"{len(jobs)} jobs taken"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    # ---- replay the trace against the reference ---------------------------------------
    assert len(accepted_at) == len(jobs)
    expected_active = [0] * len(trace)
    expected_release = {}
    withheld = 0
    for job, start in zip(jobs, accepted_at):
        issues = _expected_issues(config, job)
        cycle = start + 1           # issuing starts the cycle after the job is taken
        for entry in issues:
            while True:
                record = trace[cycle]
                expected_active[cycle] = 1
                where = f"{name} job {job} cycle {cycle} tile {entry['tile']} " \
                        f"tile cycle {entry['cycle']}"
                issue = record["issue"]
                if entry["last"] and not record["drain_free"]:
                    # The tile's last cycle waits for drain_free; nothing is issued.
                    assert issue.valid == 0, f"{where}: last cycle issued while drain busy"
                    assert issue.flags.as_bits() == 0, f"{where}: flags while not issuing"
                    assert not any(s.valid for s in issue.a_select), where
                    assert not any(s.valid for s in issue.b_select), where
                    withheld += 1
                    cycle += 1
                    continue
                assert issue.valid == 1, f"{where}: not issued"
                got = {
                    "a_address": issue.a_address, "b_address": issue.b_address,
                    "a_select": [(s.offset, s.index, s.valid) for s in issue.a_select],
                    "b_select": [(s.offset, s.index, s.valid) for s in issue.b_select],
                    "first": issue.flags.first, "last": issue.flags.last,
                    "gemm_last": issue.flags.gemm_last,
                } | ({"wide": issue.flags.wide} if config.pe == "fused" else {})
                want = {key: entry[key] for key in got}
                assert got == want, f"{where}:\n got  {got}\n want {want}"
                command = _command(1, 1, 1, job["a"], job["b"])
                assert issue.a_precision.as_bits() == \
                    dut.issue.a_precision.shape().const(command["a"]).as_bits(), where
                assert issue.b_precision.as_bits() == \
                    dut.issue.b_precision.shape().const(command["b"]).as_bits(), where
                cycle += 1
                break
        expected_release[cycle] = job["half"]     # the cycle after the final issue

    check_control(trace, expected_active, expected_release, name)
    assert withheld > 0


def test_scheduler_holds_last_cycle_until_drain_free():
    """drain_free held low: the job stalls exactly at its first tile's last cycle for as
    long as drain_free stays low, then continues."""
    config = COMPONENT_CONFIGS["default"]()
    dut = Scheduler(config)
    job = {"m_tiles": 1, "n_tiles": 2, "depth": 6, "a": (4, 2, 0), "b": (4, 2, 1),
           "half": 1}
    expected = _expected_issues(config, job)
    cycles_per_tile = len(expected) // 2
    hold = 7

    async def bench(ctx):
        ctx.set(dut.drain_free, 0)
        ctx.set(dut.job.payload, {"command": _command(1, 2, 6, job["a"], job["b"]),
                                  "half": 1})
        ctx.set(dut.job.valid, 1)
        await ctx.tick()
        ctx.set(dut.job.valid, 0)
        for _ in range(cycles_per_tile - 1):
            assert ctx.get(dut.issue.valid) == 1
            assert ctx.get(dut.issue.flags.last) == 0
            await ctx.tick()
        for _ in range(hold):
            assert ctx.get(dut.issue.valid) == 0
            assert ctx.get(dut.active) == 1
            await ctx.tick()
        ctx.set(dut.drain_free, 1)
        assert ctx.get(dut.issue.valid) == 1
        assert ctx.get(dut.issue.flags.last) == 1
        assert ctx.get(dut.issue.flags.gemm_last) == 0
        assert ctx.get(dut.issue.a_address) == expected[cycles_per_tile - 1]["a_address"]
        await ctx.tick()
        ctx.set(dut.drain_free, 0)
        assert ctx.get(dut.issue.flags.first) == 1
        assert ctx.get(dut.issue.b_address) == expected[cycles_per_tile]["b_address"]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# ---- the paired mode (arithmetic.paired) ------------------------------------------------


def _paired_command(m_tiles, n_tiles, depth, config, paired, b):
    """A command on a paired configuration: A paired (exact, all ``n`` blocks, windows
    ``paired = (high, low)``) or ``None`` for a plain exact A; ``b`` as in :func:`_command`."""
    n = config.blocks
    command = _command(m_tiles, n_tiles, depth, (n, n, 0), b)
    if paired is not None:
        command["a"] |= {"paired": 1, "high": paired[0], "low": paired[1]}
    return command


@pytest.mark.parametrize("name", sorted(PAIRED_CONFIGS))
def test_paired_tile_cycles_and_products(name):
    """Paired commands (every window option, B in random modes, odd and even depths up to
    the deepest) mixed with plain ones: each tile takes
    :func:`qforge.sim.model.cycles.paired_tile_cycles` issued cycles (plain ones
    :func:`~qforge.sim.model.cycles.mode_tile_cycles`), and its valid lanes carry every
    ``(pair's first operand 2p, A-block slot 0 .. n-1, B block 0 .. Lb-1)`` exactly once
    (plain: every ``(k, i, j)``), A and B lanes with the same operand offset, while
    ``drain_free`` toggles randomly."""
    config = PAIRED_CONFIGS[name]()
    n, lanes = config.blocks, config.block_multipliers
    rng = random.Random(f"paired-scheduler-{name}")
    deepest = min(config.max_reduction_depth, 4 * lanes + 3)
    jobs = []
    windows = paired_windows(config)
    for index, window in enumerate(windows * (2 if len(windows) < 8 else 1)):
        kept_b = rng.randint(1, n)
        b = (rng.randint(kept_b, n), kept_b, rng.randrange(2))
        depth = [1, 2, deepest, deepest - 1][index % 4] if index < 4 else \
            rng.randint(1, deepest)
        jobs.append({"m_tiles": rng.randint(1, 2), "n_tiles": rng.randint(1, 2),
                     "depth": depth, "paired": window, "b": b})
        if index % 2:
            kept_a = rng.randint(1, n)
            jobs.append({"m_tiles": 1, "n_tiles": rng.randint(1, 2),
                         "depth": rng.randint(1, deepest), "paired": None,
                         "a": (rng.randint(kept_a, n), kept_a, rng.randrange(2)), "b": b})
    dut = Scheduler(config)
    tiles_seen = []          # per tile: (cycles issued, valid A lanes, valid B lanes)

    async def bench(ctx):
        current = None
        for job in jobs:
            command = (_paired_command(job["m_tiles"], job["n_tiles"], job["depth"], config,
                                       job["paired"], job["b"])
                       if job["paired"] is not None else
                       _command(job["m_tiles"], job["n_tiles"], job["depth"], job["a"],
                                job["b"]))
            ctx.set(dut.job.payload, {"command": command, "half": rng.randrange(2)})
            ctx.set(dut.job.valid, 1)
            await ctx.tick().until(dut.job.ready)
            ctx.set(dut.job.valid, 0)
            for _ in range(10_000):
                ctx.set(dut.drain_free, int(rng.random() < 0.6))
                issue = ctx.get(dut.issue)
                if issue.valid:
                    if issue.flags.first:
                        current = {"cycles": 0, "a": [], "b": []}
                    current["cycles"] += 1
                    word = (issue.a_address % config.buffer_depth) % -(-job["depth"] // lanes)
                    for side in ("a", "b"):
                        for s in getattr(issue, f"{side}_select"):
                            if s.valid:
                                current[side].append((word * lanes + s.offset, s.index))
                    if issue.flags.last:
                        tiles_seen.append(current)
                done = issue.valid and issue.flags.gemm_last
                await ctx.tick()
                if done:
                    break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    expected_tiles = [job for job in jobs for _ in range(job["m_tiles"] * job["n_tiles"])]
    assert len(tiles_seen) == len(expected_tiles)
    for job, tile in zip(expected_tiles, tiles_seen):
        depth, (_, kept_b, _) = job["depth"], job["b"]
        b_mode = OperandPrecision(job["b"][0], kept_b, Selection(job["b"][2]))
        if job["paired"] is not None:
            precision = Precision(OperandPrecision(n, n, paired=PairedPrecision(*job["paired"])),
                                  b_mode)
            cycles = paired_tile_cycles(config, depth, precision)
            a_products = sorted((k, i) for k in range(0, depth, 2) for i in range(n)
                                for _ in range(kept_b))
            b_products = sorted((k, j) for k in range(0, depth, 2) for _ in range(n)
                                for j in range(kept_b))
        else:
            kept_a = job["a"][1]
            precision = Precision(OperandPrecision(*job["a"][:2], Selection(job["a"][2])),
                                  b_mode)
            cycles = mode_tile_cycles(config, depth, precision)
            a_products = sorted((k, i) for k in range(depth) for i in range(kept_a)
                                for _ in range(kept_b))
            b_products = sorted((k, j) for k in range(depth) for _ in range(kept_a)
                                for j in range(kept_b))
        where = f"{name} job {job}"
        assert tile["cycles"] == cycles, f"{where}: {tile['cycles']} cycles, model {cycles}"
        assert sorted(tile["a"]) == a_products, f"{where}: A lanes {sorted(tile['a'])}"
        assert sorted(tile["b"]) == b_products, f"{where}: B lanes {sorted(tile['b'])}"
