"""SkippingScheduler: tile order, entry walking, lane coverage, flags, B addresses, release.

The testbench models the memories the way ``hdl/top.py`` wires them: the A banks (one
per PE row, entries at ``half * buffer_depth + mt * words + j``) and the count memory
(``half * buffer_depth + mt``, R counts per word) answer ``entry_address`` and
``count_address`` one cycle later, and the scheduler's ``row`` in that cycle picks the
bank and the count. Every address the scheduler never wrote for the job holds random
garbage (non-zero masks included), so reading a wrong address shows up.

The banks are filled from random A matrices by the documented compactor contract (an
entry per word with an operand to compute; masks limited to the depth; every word when
not skipping). Each cycle's ``issue`` record is recorded with the entry the scheduler was
shown, then replayed tile by tile (``for row: for group``) against:

* cycles: a tile takes :func:`qforge.sim.model.cycles.row_cycles` of its row, which must also
  equal the sum over its entries of ``ceil(n * q / P)`` (1 for a row without entries);
  every cycle but a tile's last issues at once, the last waits for ``drain_free``;
* coverage: the valid lanes of a tile carry every block product ``(k, i, j)`` with k an
  operand of the row to compute, ``i < La``, ``j < Lb`` exactly once, where lane l's k is
  ``entry.word * P + offset`` of the entry shown in that cycle (A and B lanes name the
  same offset, and all lanes of a cycle therefore one word);
* packing: lane l of an entry's c-th cycle carries product ``f = c * P + l`` of that
  entry, ``(o, i, j) = (f // q, f % q // Lb, f % Lb)``, operand offset = the o-th set
  mask bit, valid while ``o < n`` (the lane schedule restarted per entry);
* ``b_address = half * pe_buffer_depth + g * words + entry.word`` in every cycle with a
  valid lane; flags ``first``/``last``/``gemm_last``; ``rows = min(R, n_tiles - g*R)``;
  the precision fields; ``active``/``job.ready``; ``release`` (with the half) in the
  cycle after a job's final issue.
"""

import random
from collections import Counter

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.hdl.layouts import operand_precision_layout
from qforge.hdl.skipping_scheduler import SkippingScheduler
from qforge.sim.model.cycles import row_cycles
from qforge.sim.model.numerics import OperandPrecision, Precision, Selection
from tests.configs import SKIPPING_CONFIGS
from tests.hdl.streams import check_control


# ---- jobs -------------------------------------------------------------------------------

def _entries(config, row, skip):
    """The documented compactor contract for one A row (its ``depth`` operands):
    ``(word, mask)`` per word with an operand to compute."""
    lanes = config.block_multipliers
    depth = len(row)
    out = []
    for w in range(-(-depth // lanes)):
        mask = 0
        for lane in range(lanes):
            k = w * lanes + lane
            if k < depth and (not skip or row[k] != 0):
                mask |= 1 << lane
        if mask:
            out.append((w, mask))
    return out


def _entry_cycles(entries, q, lanes):
    """Cycles of a row from its entries: ``sum(ceil(n * q / P))``, at least 1."""
    return max(1, sum(-(-bin(mask).count("1") * q // lanes) for _, mask in entries))


def _make_job(config, rng, *, kept_a, kept_b, m_tiles, n_tiles, depth, skip,
              zero_rate=None, a=None):
    """A job: command fields, the A matrix (``m`` rows, ``m <= m_tiles * R``, padded rows
    zero as the host pads them) and the expected tiles."""
    rows, lanes = config.rows, config.block_multipliers
    words = -(-depth // lanes)
    groups = -(-n_tiles // rows)
    assert m_tiles * words <= config.buffer_depth
    assert groups * words <= config.pe_buffer_depth
    assert depth <= config.max_reduction_depth and n_tiles <= config.buffer_depth
    if a is None:
        m = rng.randint((m_tiles - 1) * rows + 1, m_tiles * rows)
        zero_rate = rng.choice([0.0, 0.4, 0.8, 1.0]) if zero_rate is None else zero_rate
        low = -(1 << (config.operand_width - 1))
        a = np.array([[0 if rng.random() < zero_rate else rng.choice(
            [v for v in (rng.randint(low, -low - 1), 1, -1, low) if v != 0])
            for _ in range(depth)] for _ in range(m)], dtype=np.int64).reshape(m, depth)
    a = np.asarray(a, dtype=np.int64)
    padded = np.zeros((m_tiles * rows, depth), dtype=np.int64)
    padded[:a.shape[0]] = a
    precision = Precision(
        OperandPrecision(rng.randint(kept_a, config.blocks), kept_a,
                         rng.choice(list(Selection))),
        OperandPrecision(rng.randint(kept_b, config.blocks), kept_b,
                         rng.choice(list(Selection))))
    q = precision.block_products
    model = row_cycles(a, config, precision, skip)
    tiles = []
    for index in range(m_tiles * rows):
        entries = _entries(config, padded[index].tolist(), skip)
        cycles = _entry_cycles(entries, q, lanes)
        assert model[index] == cycles, (index, model[index], cycles)
        for g in range(groups):
            tiles.append({"row": index, "group": g, "entries": entries, "cycles": cycles,
                          "rows": min(rows, n_tiles - g * rows)})
    def operand(p):
        return {"blocks_minus_one": p.blocks - 1, "kept_minus_one": p.kept - 1,
                "dynamic": int(p.selection), "vrq": 0}
    command = {"m_tiles_minus_one": m_tiles - 1, "n_tiles_minus_one": n_tiles - 1,
               "depth_minus_one": depth - 1, "skip_zeros": int(skip),
               "a": operand(precision.a), "b": operand(precision.b)}
    return {"command": command, "precision": precision, "m_tiles": m_tiles,
            "n_tiles": n_tiles, "depth": depth, "words": words, "skip": skip,
            "tiles": tiles, "a": padded}


def _random_job(config, rng, kept_a=None, kept_b=None, **fixed):
    """A small random job (bounded run time for every mode)."""
    rows, lanes = config.rows, config.block_multipliers
    kept_a = kept_a or rng.randint(1, config.blocks)
    kept_b = kept_b or rng.randint(1, config.blocks)
    q = kept_a * kept_b
    # At most about 40 cycles per dense row tile.
    depth_limit = max(1, min(config.max_reduction_depth, 40 * lanes // q, 3 * lanes + 1))
    depth = fixed.pop("depth", rng.randint(1, depth_limit))
    words = -(-depth // lanes)
    m_tiles = fixed.pop("m_tiles", rng.randint(1, max(1, min(2, config.buffer_depth // words,
                                                              6 // rows))))
    max_groups = max(1, min(2, config.pe_buffer_depth // words))
    n_tiles = fixed.pop("n_tiles", rng.randint(1, max_groups * rows))
    skip = fixed.pop("skip", rng.random() < 0.75)
    return _make_job(config, rng, kept_a=kept_a, kept_b=kept_b, m_tiles=m_tiles,
                     n_tiles=n_tiles, depth=depth, skip=skip, **fixed)


# ---- simulation -------------------------------------------------------------------------

def _garbage_entry(config, rng):
    lanes = config.block_multipliers
    low = -(1 << (config.operand_width - 1))
    return {"operands": [rng.randint(low, -low - 1) for _ in range(lanes)],
            "word": rng.randrange(1 << config.word_index_width),
            "mask": rng.randrange(1, 1 << lanes)}


def _simulate(config, jobs, *, drain_rate=1.0, offer_rate=0.5, seed=0):
    """Run ``jobs`` through the scheduler with the memory model. Halves alternate (the
    loader's double buffering), so a job is written into its half when offered while
    the previous job still reads the other. Returns ``(trace, accepted cycles)``."""
    dut = SkippingScheduler(config)
    rng = random.Random(seed)
    rows = config.rows
    depth = 2 * config.buffer_depth
    banks = [[_garbage_entry(config, rng) for _ in range(depth)] for _ in range(rows)]
    counts = [[rng.randrange(1, config.max_depth_words + 1) for _ in range(rows)]
              for _ in range(depth)]
    first_half = rng.randrange(2)
    for index, job in enumerate(jobs):
        job["half"] = (first_half + index) % 2
    trace, accepted_at = [], []
    max_cycles = 200 + 3 * sum(tile["cycles"] for job in jobs for tile in job["tiles"]) \
        / drain_rate

    def write_job(job):
        base = job["half"] * config.buffer_depth
        words = job["words"]
        for mt in range(job["m_tiles"]):
            tile_counts = []
            for r in range(rows):
                entries = _entries(config, job["a"][mt * rows + r].tolist(), job["skip"])
                row = job["a"][mt * rows + r].tolist()
                for j, (w, mask) in enumerate(entries):
                    operands = row[w * config.block_multipliers:][:config.block_multipliers]
                    operands += [0] * (config.block_multipliers - len(operands))
                    banks[r][base + mt * words + j] = {"operands": operands, "word": w,
                                                       "mask": mask}
                tile_counts.append(len(entries))
            counts[base + mt] = tile_counts

    async def bench(ctx):
        queue = list(jobs)
        offered = None
        entry_address = count_address = 0
        idle = 0
        cycle = 0
        while queue or offered is not None or idle < 3:
            # Read data of the addresses issued last cycle, picked by the current row.
            row = ctx.get(dut.row)
            entry = banks[row][entry_address]
            count = counts[count_address][row]
            ctx.set(dut.entry, entry)
            ctx.set(dut.count, count)
            if offered is None and queue and rng.random() < offer_rate:
                offered = queue.pop(0)
                write_job(offered)
                ctx.set(dut.job.payload, {"command": offered["command"],
                                          "half": offered["half"]})
                ctx.set(dut.job.valid, 1)
            drain_free = int(rng.random() < drain_rate)
            ctx.set(dut.drain_free, drain_free)
            ready = ctx.get(dut.job.ready)
            trace.append({"drain_free": drain_free, "issue": ctx.get(dut.issue),
                          "release": ctx.get(dut.release),
                          "release_half": ctx.get(dut.release_half),
                          "active": ctx.get(dut.active), "ready": ready,
                          "entry": (entry["word"], entry["mask"]), "count": count,
                          "row": row})
            entry_address = ctx.get(dut.entry_address)
            count_address = ctx.get(dut.count_address)
            await ctx.tick()
            if offered is not None and ready:
                accepted_at.append(cycle)
                offered = None
                ctx.set(dut.job.valid, 0)
            idle = 0 if (trace[-1]["active"] or offered or queue) else idle + 1
            cycle += 1
            assert cycle < max_cycles, \
                f"scheduler did not finish; {len(accepted_at)} of {len(jobs)} jobs taken"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(accepted_at) == len(jobs)
    return trace, accepted_at


def _expected_products(config, tile, precision):
    """The block products a tile must issue: ``(k, i, j)`` for every operand k of its
    row to compute, ``i < La``, ``j < Lb``."""
    lanes = config.block_multipliers
    ks = [w * lanes + lane for w, mask in tile["entries"] for lane in range(lanes)
          if mask >> lane & 1]
    return Counter((k, i, j) for k in ks for i in range(precision.a.kept)
                   for j in range(precision.b.kept))


def _documented_packing(config, tile, precision):
    """Per cycle of a tile, per lane: ``(word, offset, i, j, valid)`` (invalid lanes
    ``None``) as the docstring of SkippingScheduler packs an entry's products."""
    lanes = config.block_multipliers
    la, lb = precision.a.kept, precision.b.kept
    q = la * lb
    out = []
    for word, mask in tile["entries"]:
        bits = [lane for lane in range(lanes) if mask >> lane & 1]
        for c in range(-(-len(bits) * q // lanes)):
            cycle = []
            for lane in range(lanes):
                o, rest = divmod(c * lanes + lane, q)
                cycle.append((word, bits[o], rest // lb, rest % lb) if o < len(bits)
                             else None)
            out.append(cycle)
    return out or [[None] * lanes]


def _check_trace(config, jobs, trace, accepted_at, *, check_packing=True):
    """Replay the trace against the expectations in the module docstring; returns
    counts of what was checked."""
    lanes, rows = config.block_multipliers, config.rows
    expected_active = [0] * len(trace)
    expected_release = {}
    stats = Counter()
    for job, start in zip(jobs, accepted_at):
        precision = job["precision"]
        a_bits = operand_precision_layout(config).const(job["command"]["a"]).as_bits()
        b_bits = operand_precision_layout(config).const(job["command"]["b"]).as_bits()
        cycle = start + 1               # issuing starts the cycle after the job is taken
        for number, tile in enumerate(job["tiles"]):
            final = number == len(job["tiles"]) - 1
            where = f"{config.name} job (depth {job['depth']}, m_tiles {job['m_tiles']}, " \
                    f"n_tiles {job['n_tiles']}, skip {job['skip']}, La " \
                    f"{precision.a.kept}, Lb {precision.b.kept}) row {tile['row']} " \
                    f"group {tile['group']}"
            products = Counter()
            issued = []
            b_base = job["half"] * config.pe_buffer_depth + tile["group"] * job["words"]
            for c in range(tile["cycles"]):
                last = c == tile["cycles"] - 1
                while True:
                    record = trace[cycle]
                    issue = record["issue"]
                    at = f"{where} tile cycle {c} (cycle {cycle})"
                    expected_active[cycle] = 1
                    if last and not record["drain_free"]:
                        assert issue.valid == 0, f"{at}: last cycle issued while drain busy"
                        assert issue.flags.as_bits() == 0, f"{at}: flags while not issuing"
                        assert not any(s.valid for s in issue.a_select), at
                        assert not any(s.valid for s in issue.b_select), at
                        stats["withheld"] += 1
                        cycle += 1
                        continue
                    break
                assert issue.valid == 1, f"{at}: not issued"
                flags = (issue.flags.first, issue.flags.last, issue.flags.gemm_last)
                assert flags == (int(c == 0), int(last), int(last and final)), \
                    f"{at}: flags (first, last, gemm_last) {flags}"
                assert issue.rows == tile["rows"], f"{at}: rows {issue.rows}"
                assert issue.a_precision.as_bits() == a_bits, f"{at}: a_precision"
                assert issue.b_precision.as_bits() == b_bits, f"{at}: b_precision"
                word, _mask = record["entry"]
                lanes_now = []
                for lane, (sa, sb) in enumerate(zip(issue.a_select, issue.b_select)):
                    assert sa.valid == sb.valid, f"{at} lane {lane}: A/B valid differ"
                    if not sa.valid:
                        lanes_now.append(None)
                        continue
                    assert sa.offset == sb.offset, f"{at} lane {lane}: A/B offsets differ"
                    products[(word * lanes + sa.offset, sa.index, sb.index)] += 1
                    lanes_now.append((word, sa.offset, sa.index, sb.index))
                if any(lanes_now):
                    assert issue.b_address == b_base + word, \
                        f"{at}: b_address {issue.b_address}, expected {b_base + word}"
                    stats["valid_cycles"] += 1
                else:
                    stats["empty_cycles"] += 1
                issued.append(lanes_now)
                cycle += 1
            want = _expected_products(config, tile, precision)
            assert products == want, f"{where}: block products differ:\n" \
                f" missing {sorted(want - products)}\n extra {sorted(products - want)}"
            if check_packing:
                assert issued == _documented_packing(config, tile, precision), \
                    f"{where}: lanes not packed as documented"
            stats["tiles"] += 1
            stats["products"] += sum(products.values())
        expected_release[cycle] = job["half"]       # the cycle after the final issue

    check_control(trace, expected_active, expected_release, config.name)
    return stats


# ---- tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["p4", "p1", "p8", "sparse"])
def test_every_mode_covers_the_block_products(name):
    """drain_free held high. One job per (La, Lb) of the configuration (B = 4 blocks:
    q = 1 .. 16 against P = 4, 1 or 8), random sparsity (all-zero to dense), skip_zeros
    mostly on, random depths and tile counts (partial column groups), then a dense job
    and a job whose A is all zero: each tile covers its block products exactly once,
    packed as documented, in row_cycles cycles, issued back to back, with the documented
    flags, rows, B addresses and release."""
    config = SKIPPING_CONFIGS[name]()
    rng = random.Random(f"skipping-scheduler-{name}")
    pairs = [(ka, kb) for ka in range(1, config.blocks + 1)
             for kb in range(1, config.blocks + 1)]
    if name == "sparse":                       # R = 8: a few modes on the preset
        pairs = [(1, 1), (2, 2), (4, 4), (3, 1), (4, 2)]
    jobs = [_random_job(config, rng, ka, kb) for ka, kb in pairs]
    jobs.append(_random_job(config, rng, skip=False, zero_rate=0.5))
    jobs.append(_random_job(config, rng, skip=True, zero_rate=1.0))
    trace, accepted_at = _simulate(config, jobs, seed=name)
    stats = _check_trace(config, jobs, trace, accepted_at)
    assert stats["withheld"] == 0
    assert stats["valid_cycles"] > 0 and stats["empty_cycles"] > 0
    # drain_free high: every job issues without a gap, one cycle per model cycle.
    for job, start in zip(jobs, accepted_at):
        busy = sum(tile["cycles"] for tile in job["tiles"])
        assert all(record["issue"].valid for record in trace[start + 1:start + 1 + busy])
        assert not trace[start + 1 + busy]["issue"].valid


def test_drain_free_backpressure():
    """drain_free toggles randomly and jobs arrive at random times: only a tile's last
    cycle waits (nothing issued, no flags, no valid lane), everything else is as with
    drain_free high."""
    config = SKIPPING_CONFIGS["p4"]()
    rng = random.Random("skipping-scheduler-drain")
    jobs = [_random_job(config, rng) for _ in range(10)]
    trace, accepted_at = _simulate(config, jobs, drain_rate=0.5, offer_rate=0.3,
                                   seed="drain")
    stats = _check_trace(config, jobs, trace, accepted_at)
    assert stats["withheld"] > 10 and stats["tiles"] > 20


@pytest.mark.parametrize("name", ["p4", "p1"])
def test_rows_without_entries_take_one_cycle(name):
    """Skipping: a row tile whose rows 0 and 2 are all zero (no entries; the A banks
    hold garbage there) and whose row 1 has a single non-zero operand in its last
    word, over two column groups: each empty row's tiles take one cycle with first and
    last set and no valid lane; row 1 takes ceil(q / P) cycles per group."""
    config = SKIPPING_CONFIGS[name]()
    rng = random.Random(f"skipping-scheduler-empty-{name}")
    lanes, rows = config.block_multipliers, config.rows
    depth = 2 * lanes + 1
    a = np.zeros((rows, depth), dtype=np.int64)
    a[1, depth - 1] = -3
    job = _make_job(config, rng, kept_a=2, kept_b=3, m_tiles=1, n_tiles=rows + 1,
                    depth=depth, skip=True, a=a)
    assert [tile["cycles"] for tile in job["tiles"]] == \
        [1, 1] + [-(-6 // lanes)] * 2 + [1, 1] * (rows - 2)
    trace, accepted_at = _simulate(config, [job], seed=name)
    stats = _check_trace(config, [job], trace, accepted_at)
    assert stats["empty_cycles"] == 2 * (rows - 1) and stats["products"] == 2 * 6
    start = accepted_at[0] + 1
    for cycle in (start, start + 1):
        issue = trace[cycle]["issue"]
        assert (issue.flags.first, issue.flags.last) == (1, 1)
        assert not any(s.valid for s in issue.a_select)
        assert trace[cycle]["count"] == 0


@pytest.mark.parametrize("name, depth, m_tiles, n_tiles, zero_rate", [
    ("p4", 40, 1, 9, 0.3),      # deepest rows (10 words), 3 groups: the PE banks' top
    ("p4", 4, 16, 16, 0.5),     # 16 row tiles of one word: the A banks' top address
    ("p8", 64, 1, 2, 0.0),      # deepest rows of 8 words of 8, 2 groups of one tile
    ("sparse", 2048, 1, 8, None),   # 512-word rows: word 511, a count of 512
])
def test_full_buffers_and_deepest_rows(name, depth, m_tiles, n_tiles, zero_rate):
    """Boundaries, in the upper half: the deepest dot product and the most row tiles or
    column groups a half holds, q = 1 (one cycle per entry). On the sparse preset row 0
    has no zero (512 entries, the count's top value), row 1 only its last operand, the
    others are empty."""
    config = SKIPPING_CONFIGS[name]()
    rng = random.Random(f"skipping-scheduler-full-{name}-{depth}")
    a = None
    if zero_rate is None:
        a = np.zeros((config.rows, depth), dtype=np.int64)
        a[0] = [rng.choice([1, -1, 5, -128]) for _ in range(depth)]
        a[1, depth - 1] = 3
    job = _make_job(config, rng, kept_a=1, kept_b=1, m_tiles=m_tiles, n_tiles=n_tiles,
                    depth=depth, skip=True, zero_rate=zero_rate, a=a)
    words = job["words"]
    groups = -(-n_tiles // config.rows)
    assert m_tiles * words == config.buffer_depth or depth == config.max_reduction_depth
    assert groups * words <= config.pe_buffer_depth
    trace, accepted_at = _simulate(config, [job], seed=name)
    assert job["half"] in (0, 1)
    stats = _check_trace(config, [job], trace, accepted_at)
    assert stats["tiles"] == m_tiles * config.rows * groups
    if zero_rate is None:
        assert max(record["count"] for record in trace) == words == 512
