"""RowCompactor: the A beats of each command become row entries and entry counts.

A reference written here from the documented contract (``hdl/compactor.py``,
``hdl/layouts.py``, :func:`qforge.sim.model.numerics.zero_operands`) computes, for every
beat, which bank writes happen and with what, and the count write after each row tile:

* beat ``x`` of a command is row tile ``mt = x // words``, word ``w = x % words``
  (``words = ceil(depth / P)``), word r of the beat belongs to row ``mt * R + r``;
* mask bit l is set when operand ``w * P + l < depth`` and, with ``skip_zeros``, the
  operand is not zero (operand word 0; for a VRQ command its code bits 0);
* a word with a non-zero mask is written to bank r at ``half * buffer_depth +
  mt * words + (entries of the row so far)`` as ``(operands, w, mask)``; none otherwise;
* after a row tile's last word the R entry counts (including that word) are written at
  ``half * buffer_depth + mt``.

Every cycle the testbench compares ``write_enable`` and ``count_enable`` with the
reference (never a write outside a beat) and, for every enabled write, the address and
the written data.

The last test covers the other half of loading on the zero-skipping array, the
:class:`~qforge.hdl.loader.Loader` taking and routing the B beats of a command.
"""

import random

import pytest
from amaranth.sim import Simulator

from qforge.hdl.compactor import RowCompactor
from qforge.hdl.layouts import command_layout
from qforge.hdl.loader import Loader
from qforge.sim.model.numerics import vrq_pack, vrq_unpack
from tests.configs import SKIPPING_CONFIGS


def _is_zero(config, operand, vrq):
    """The documented zero rule: the whole word, or a VRQ command's code bits."""
    if vrq:
        return operand & ((1 << config.vrq_code_width) - 1) == 0
    return operand == 0


def _reference(config, job):
    """Per beat of ``job``: ``(writes, count_write)``; ``writes[r]`` is ``None`` or
    ``(address, operands, word, mask)``, ``count_write`` is ``None`` or
    ``(address, counts)``."""
    lanes, rows = config.block_multipliers, config.rows
    depth = job["depth"]
    words = -(-depth // lanes)
    base = job["half"] * config.buffer_depth
    out = []
    counts = [0] * rows
    for x, beat in enumerate(job["beats"]):
        mt, w = divmod(x, words)
        writes = []
        for r in range(rows):
            mask = 0
            for lane, operand in enumerate(beat[r]):
                inside = w * lanes + lane < depth
                computed = not (job["skip"] and _is_zero(config, operand, job["vrq"]))
                if inside and computed:
                    mask |= 1 << lane
            if mask:
                writes.append((base + mt * words + counts[r], list(beat[r]), w, mask))
                counts[r] += 1
            else:
                writes.append(None)
        count_write = None
        if w == words - 1:
            count_write = (base + mt, list(counts))
            counts = [0] * rows
        out.append((writes, count_write))
    return out


def _random_operand(rng, config, zero_rate):
    """A W-bit operand: zero with probability ``zero_rate``; with a [vrq] section often
    a word whose VRQ code bits are zero but whose other bits are not (zero for a VRQ
    command, non-zero for an integer one)."""
    low, high = -(1 << (config.operand_width - 1)), (1 << (config.operand_width - 1)) - 1
    if rng.random() < zero_rate:
        return 0
    if config.vrq is not None and rng.random() < 0.4:
        upper = rng.randrange(1, 1 << (config.operand_width - config.vrq_code_width))
        bits = upper << config.vrq_code_width
        return bits - (1 << config.operand_width) if bits > high else bits
    value = 0
    while value == 0:
        value = rng.randint(low, high)
    return value


def _job(config, rng, *, m_tiles, depth, skip, vrq=False, half=None, zero_rate=None,
         empty_rate=0.2, outside="random"):
    """A command and its A beats. ``empty_rate``: the chance that a row is all zero
    inside the depth; ``outside``: operands beyond the depth in the last word are
    ``"random"`` (host garbage, often non-zero) or ``"nonzero"``."""
    lanes = config.block_multipliers
    words = -(-depth // lanes)
    assert m_tiles * words <= config.buffer_depth and depth <= config.max_reduction_depth
    zero_rate = rng.choice([0.0, 0.3, 0.7, 1.0]) if zero_rate is None else zero_rate
    beats = []
    for _mt in range(m_tiles):
        # Some rows of the tile all zero (no entries at all when skipping).
        empty_rows = {r for r in range(config.rows) if rng.random() < empty_rate}
        for w in range(words):
            beat = []
            for r in range(config.rows):
                word = []
                for lane in range(lanes):
                    if w * lanes + lane >= depth:
                        operand = _random_operand(rng, config, 0.0 if outside == "nonzero"
                                                  else 0.5)
                    elif r in empty_rows:
                        operand = 0
                    else:
                        operand = _random_operand(rng, config, zero_rate)
                    word.append(operand)
                beat.append(word)
            beats.append(beat)
    return {"m_tiles": m_tiles, "depth": depth, "skip": int(skip), "vrq": int(vrq),
            "half": rng.randrange(2) if half is None else half, "beats": beats}


def _command(job):
    return {"m_tiles_minus_one": job["m_tiles"] - 1, "n_tiles_minus_one": 0,
            "depth_minus_one": job["depth"] - 1, "skip_zeros": job["skip"],
            "a": {"blocks_minus_one": 0, "kept_minus_one": 0, "dynamic": 0,
                  "vrq": job["vrq"]}}


def _run(config, jobs, *, gap_rate=0.3, seed=0):
    """Drive ``jobs`` back to back (random idle cycles between and inside them, random
    garbage on ``beat`` while ``beat_valid`` is low) and check every cycle's writes.
    Returns how many entry and count writes were checked."""
    dut = RowCompactor(config)
    rng = random.Random(seed)
    rows, lanes = config.rows, config.block_multipliers
    checked = {"entries": 0, "counts": 0, "skipped": 0}

    def garbage_beat():
        return [[_random_operand(rng, config, 0.3) for _ in range(lanes)]
                for _ in range(rows)]

    async def idle(ctx, where):
        ctx.set(dut.beat_valid, 0)
        ctx.set(dut.beat, garbage_beat())
        assert ctx.get(dut.write_enable) == 0, f"{where}: bank write without a beat"
        assert ctx.get(dut.count_enable) == 0, f"{where}: count write without a beat"
        await ctx.tick()

    async def bench(ctx):
        for index, job in enumerate(jobs):
            where = f"{config.name} job {index} (m_tiles {job['m_tiles']}, depth " \
                    f"{job['depth']}, skip {job['skip']}, vrq {job['vrq']}, half " \
                    f"{job['half']})"
            # The command is accepted: start for one cycle, with random beat garbage.
            ctx.set(dut.start, 1)
            ctx.set(dut.command, _command(job))
            ctx.set(dut.half, job["half"])
            await idle(ctx, f"{where} start")
            ctx.set(dut.start, 0)
            # The command port shows other commands after the acceptance.
            ctx.set(dut.command, {"depth_minus_one": rng.randrange(config.max_reduction_depth),
                                  "skip_zeros": 1 - job["skip"],
                                  "m_tiles_minus_one": rng.randrange(2)})
            ctx.set(dut.half, 1 - job["half"])
            for x, (beat, (writes, count_write)) in enumerate(
                    zip(job["beats"], _reference(config, job), strict=True)):
                while rng.random() < gap_rate:
                    await idle(ctx, f"{where} before beat {x}")
                ctx.set(dut.beat_valid, 1)
                ctx.set(dut.beat, beat)
                enables = ctx.get(dut.write_enable)
                addresses = ctx.get(dut.write_address)
                entries = ctx.get(dut.entry)
                for r, write in enumerate(writes):
                    at = f"{where} beat {x} row {r}"
                    enabled = (enables >> r) & 1
                    assert enabled == (write is not None), \
                        f"{at}: write_enable {enabled}, expected {write}"
                    if write is None:
                        checked["skipped"] += 1
                        continue
                    address, operands, word, mask = write
                    got = (addresses[r], list(entries[r].operands), entries[r].word,
                           entries[r].mask)
                    assert got == (address, operands, word, mask), \
                        f"{at}:\n got  {got}\n want {(address, operands, word, mask)}"
                    checked["entries"] += 1
                count_enable = ctx.get(dut.count_enable)
                assert count_enable == (count_write is not None), \
                    f"{where} beat {x}: count_enable {count_enable}"
                if count_write is not None:
                    got = (ctx.get(dut.count_address), list(ctx.get(dut.counts)))
                    assert got == count_write, \
                        f"{where} beat {x} counts:\n got  {got}\n want {count_write}"
                    checked["counts"] += 1
                await ctx.tick()
            for _ in range(rng.randrange(2)):
                await idle(ctx, f"{where} after")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return checked


def _random_jobs(config, rng, count):
    """``count`` random commands; the first ones cover skip off and on and, with a
    [vrq] section, VRQ and integer A with skipping on and off."""
    lanes = config.block_multipliers
    kinds = [(0, 0), (1, 0)] + ([(1, 1), (0, 1)] if config.vrq is not None else [])
    jobs = []
    for index in range(count):
        if index < len(kinds):
            skip, vrq = kinds[index]
        else:
            skip, vrq = rng.random() < 0.7, config.vrq is not None and rng.random() < 0.5
        depth = rng.randint(1, min(config.max_reduction_depth, 8 * lanes))
        if lanes > 1 and depth > lanes and depth % lanes == 0 and rng.random() < 0.5:
            depth -= rng.randint(1, lanes - 1)      # a partial last word
        words = -(-depth // lanes)
        m_tiles = rng.randint(1, max(1, min(3, config.buffer_depth // words)))
        jobs.append(_job(config, rng, m_tiles=m_tiles, depth=depth, skip=skip, vrq=vrq))
    return jobs


@pytest.mark.parametrize("name", sorted(SKIPPING_CONFIGS))
def test_compactor_writes_match_reference(name):
    """Random commands back to back (skip on and off, VRQ and integer A where the
    configuration has [vrq], depths that are not multiples of P, rows with no non-zero
    operand, idle cycles between beats): every bank write (enable, address, operands,
    word, mask) and every count write equals the reference, and nothing is written
    outside a beat."""
    config = SKIPPING_CONFIGS[name]()
    rng = random.Random(f"compactor-{name}")
    jobs = _random_jobs(config, rng, 8 if name == "sparse" else 16)
    assert any(job["depth"] % config.block_multipliers for job in jobs) \
        or config.block_multipliers == 1
    checked = _run(config, jobs, seed=name)
    assert checked["entries"] > 0 and checked["counts"] > 0 and checked["skipped"] > 0


@pytest.mark.parametrize("name", ["p4", "p8"])
def test_compactor_masks_lanes_beyond_depth(name):
    """A last word partially outside the dot product, with non-zero operands in every
    lane: its mask holds only the lanes inside the depth, with skip_zeros on and off;
    a last word whose in-depth operands are all zero (only the lanes beyond the depth
    non-zero) is no entry at all when skipping."""
    config = SKIPPING_CONFIGS[name]()
    lanes, rows = config.block_multipliers, config.rows
    rng = random.Random(f"compactor-depth-{name}")
    depth = 2 * lanes + 1                    # three words, one lane in the last
    jobs = []
    for skip in (0, 1):
        job = _job(config, rng, m_tiles=1, depth=depth, skip=skip, zero_rate=0.0,
                   empty_rate=0.0, outside="nonzero", half=skip)
        assert all(operand != 0 for beat in job["beats"] for word in beat for operand in word)
        jobs.append(job)
    # Skipping: row 0's last in-depth operand zero; the lanes beyond stay non-zero.
    job = _job(config, rng, m_tiles=1, depth=depth, skip=1, zero_rate=0.0,
               empty_rate=0.0, outside="nonzero", half=0)
    job["beats"][-1][0][0] = 0
    jobs.append(job)
    reference = [_reference(config, job) for job in jobs]
    for beats in reference[:2]:
        writes, _ = beats[-1]
        assert all(write is not None and write[3] == 1 for write in writes)
    assert reference[2][-1][0][0] is None
    assert reference[2][-1][1][1][0] == 2          # row 0: words 0 and 1 only
    assert [write[3] for write in reference[2][-1][0][1:]] == [1] * (rows - 1)
    checked = _run(config, jobs, gap_rate=0.0)
    assert checked["entries"] == 3 * (3 * rows) - 1


def test_compactor_vrq_zero_is_the_code():
    """VRQ configuration: a word whose code bits are zero but whose sign and range bits
    are not is skipped for a VRQ command and computed for an integer one; a word with a
    non-zero code is never skipped (beats built by hand, the reference gives the same
    masks)."""
    config = SKIPPING_CONFIGS["vrq"]()
    code_zero = int(vrq_pack(1, 0, 1, config))        # negative, range 1, code 0
    assert code_zero != 0 and vrq_unpack(code_zero, config) == (1, 0, 1)
    word = [code_zero, 0, 3, code_zero]                          # lanes 0 .. 3
    beats = [[word, [0, 0, 0, code_zero]]]
    jobs = []
    for vrq in (1, 0):
        jobs.append({"m_tiles": 1, "depth": 4, "skip": 1, "vrq": vrq, "half": vrq,
                     "beats": beats})
    vrq_writes, _ = _reference(config, jobs[0])[0]
    int_writes, _ = _reference(config, jobs[1])[0]
    assert vrq_writes[0][3] == 0b0100 and vrq_writes[1] is None
    assert int_writes[0][3] == 0b1101 and int_writes[1][3] == 0b1000
    checked = _run(config, jobs, gap_rate=0.0)
    assert checked == {"entries": 3, "counts": 2, "skipped": 1}


@pytest.mark.parametrize("name, depth, m_tiles", [
    ("p4", 40, 1),          # the deepest dot product: 10 words per row
    ("p4", 4, 16),          # one word per row, 16 row tiles: every address of a half
    ("p8", 64, 1),          # 8 words of 8
    ("sparse", 2048, 1),    # 512 words: counts reach 512 (10 bits), word index 511
])
def test_compactor_full_half_and_deepest_rows(name, depth, m_tiles):
    """Boundaries: the deepest dot product of the configuration and a half filled to its
    last address (in the upper half, skip on): rows without a zero count every word,
    other rows skip their zeros, an all-zero row counts 0; every write matches the
    reference."""
    config = SKIPPING_CONFIGS[name]()
    words = -(-depth // config.block_multipliers)
    assert m_tiles * words == config.buffer_depth or depth == config.max_reduction_depth
    rng = random.Random(f"compactor-full-{name}-{depth}")
    job = _job(config, rng, m_tiles=m_tiles, depth=depth, skip=1, half=1, zero_rate=0.0,
               empty_rate=0.0)
    for beat in job["beats"]:      # row 1: some zeros; the last row (R > 1): all zero
        if config.rows > 2:
            beat[1] = [0 if rng.random() < 0.5 else v for v in beat[1]]
        if config.rows > 1:
            beat[config.rows - 1] = [0] * config.block_multipliers
    reference = _reference(config, job)
    counts = [count_write for _, count_write in reference if count_write is not None]
    assert counts[-1][0] == config.buffer_depth + m_tiles - 1
    assert counts[-1][1][0] == words
    assert config.rows == 1 or counts[-1][1][-1] == 0
    checked = _run(config, [job], gap_rate=0.0)
    assert checked["counts"] == m_tiles


# ---- loading B on the zero-skipping array (the Loader's side) -------------------------

@pytest.mark.parametrize("name, depth, n_tiles", [
    ("p4", 8, 16),        # 2 words x 16 column tiles = 32 B beats (6 groups x 2 <= 32)
    ("p4", 40, 6),        # 10 words x 6 = 60 B beats (2 groups x 10 <= 32)
    ("sparse", 256, 16),  # the preset: 64 words x 16 tiles = 1024 B beats (2 x 64 <= 512)
])
def test_loader_takes_every_b_beat_of_a_wide_command(name, depth, n_tiles):
    """Reproducer (Loader, zero-skipping configurations): a valid command whose B panel
    has more than ``buffer_depth`` words (allowed: the B check is ``ceil(n_tiles / R) *
    words <= pe_buffer_depth``) must take all ``n_tiles * words`` B beats before the job
    is offered, routing beat ``nt * words + w`` to PE row ``nt mod R`` at ``half *
    pe_buffer_depth + (nt div R) * words + w``, and must not set ``error``."""
    config = SKIPPING_CONFIGS[name]()
    rows, lanes = config.rows, config.block_multipliers
    words = -(-depth // lanes)
    assert -(-n_tiles // rows) * words <= config.pe_buffer_depth      # a valid command
    assert n_tiles * words > config.buffer_depth
    dut = Loader(config)
    command = command_layout(config).const({
        "m_tiles_minus_one": 0, "n_tiles_minus_one": n_tiles - 1,
        "depth_minus_one": depth - 1, "skip_zeros": 1,
        "a": {"blocks_minus_one": config.blocks - 1, "kept_minus_one": 0},
        "b": {"blocks_minus_one": config.blocks - 1, "kept_minus_one": 0}}).as_bits()
    taken = {"a": 0, "b": []}

    async def bench(ctx):
        ctx.set(dut.cmd.payload.as_value(), command)
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        ctx.set(dut.a_in.valid, 1)
        ctx.set(dut.b_in.valid, 1)
        for _ in range(n_tiles * words + 10):
            if ctx.get(dut.job.valid):
                break
            if ctx.get(dut.b_write_enable):
                taken["b"].append((ctx.get(dut.b_write_row), ctx.get(dut.b_write_address)))
            taken["a"] += ctx.get(dut.a_write_enable)
            await ctx.tick()
        assert ctx.get(dut.job.valid), "no job offered"
        assert ctx.get(dut.error) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    expected = [(nt % rows, (nt // rows) * words + w)     # half 0
                for nt in range(n_tiles) for w in range(words)]
    assert taken["a"] == words
    assert len(taken["b"]) == n_tiles * words, \
        f"{name}: the job was offered after {len(taken['b'])} of {n_tiles * words} B beats"
    assert taken["b"] == expected
