"""Loader on its own: the command check, beat addresses, job hand-off and double
buffering (the protocol of :class:`qforge.hdl.loader.Loader`'s docstring).

The check is compared with the golden rules: a command is valid exactly when the
instruction words that set its fields are valid
(:func:`qforge.sim.model.machine.instruction_error` of its ``PRECISION`` and ``OUTPUT``
settings) and its sizes fit (:func:`qforge.sim.model.machine.gemm_capacity_error`);
the loader does not check ``wide``, which only the decoder does. Loading runs with
random backpressure on ``cmd``, ``a_in``, ``b_in`` and ``job`` and a scheduler stand-in
that releases each half a random time after taking its job: every beat must be written
once, in order, at its documented address, each half only while it is free.
"""

import random

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import data
from amaranth.sim import Simulator

from qforge.hdl.layouts import (a_beat_layout, b_beat_layout, command_layout,
                                layout_fields)
from qforge.hdl.loader import Loader
from qforge.hdl.scheduler import job_layout
from qforge.sim.model.cycles import CHECK_LATENCY
from qforge.sim.model.isa import Opcode, encode
from qforge.sim.model.machine import gemm_capacity_error, instruction_error
from tests.configs import custom, skipping_p4, vrq_skipping
from tests.hdl.streams import send


def dense_b3():
    """2 x 3, B = 3 (a 2-bit blocks field holds 4: checked), P = 2, 8-word halves,
    max_reduction_depth 12 (a 4-bit depth field holds 16: checked)."""
    return custom("r2c3_b3", rows=2, cols=3, operand_width=6, block_width=2,
                  block_multipliers=2, buffer_depth=8, max_reduction_depth=12)


LOADER_CONFIGS = {"dense_b3": dense_b3, "vrq_skipping": vrq_skipping, "skip_p4": skipping_p4}


# ---- commands --------------------------------------------------------------------------

def command_bits(config, fields):
    """Pack a dict of leaf paths (``"a.blocks_minus_one"``...) into a ``cmd`` beat;
    missing leaves are 0. Raw bits, so that out-of-range codes can be sent too."""
    bits = 0
    for path, offset, width, _ in layout_fields(command_layout(config)):
        value = fields.get(path, 0)
        assert 0 <= value < (1 << width), (path, value)
        bits |= value << offset
    return bits


def command_error(config, fields):
    """Why the golden rules reject the command, or None."""
    words = [encode(Opcode.PRECISION, operand=index,
                    blocks=fields[f"{name}.blocks_minus_one"] + 1,
                    kept=fields[f"{name}.kept_minus_one"] + 1,
                    dynamic=fields[f"{name}.dynamic"], vrq=fields[f"{name}.vrq"])
             for index, name in enumerate("ab")]
    words.append(encode(Opcode.OUTPUT, quantize=1, shift=fields["output.shift"],
                        rounding=fields["output.rounding"], relu=fields["output.relu"],
                        vrq=fields["output.vrq"], exponent=fields["output.exponent"]))
    for word in words:
        reason = instruction_error(config, word)
        if reason:
            return reason
    return gemm_capacity_error(config, (fields["m_tiles_minus_one"] + 1) * config.rows,
                               (fields["n_tiles_minus_one"] + 1) * config.cols,
                               fields["depth_minus_one"] + 1)


def random_command(config, rng, *, valid=None):
    """Random leaf values over the whole field ranges, biased toward the limits;
    ``valid`` True/False draws until the golden rules agree."""
    widths = {path: width for path, _, width, _ in layout_fields(command_layout(config))}
    while True:
        fields = {}
        for path, width in widths.items():
            top = (1 << width) - 1
            fields[path] = rng.choice([0, top, rng.randint(0, top), rng.randint(0, top // 2),
                                       rng.randint(0, min(top, 3))])
        if rng.random() < 0.7:                       # mostly sizes that may fit
            fields["m_tiles_minus_one"] = rng.randint(0, 2)
            fields["n_tiles_minus_one"] = rng.randint(0, 3)
            fields["depth_minus_one"] = rng.randint(0, 2 * config.block_multipliers)
        if rng.random() < 0.6:
            for name in "ab":
                blocks = rng.randint(1, config.blocks)
                fields[f"{name}.blocks_minus_one"] = blocks - 1
                fields[f"{name}.kept_minus_one"] = rng.randint(0, blocks - 1)
                fields[f"{name}.vrq"] = int(config.vrq is not None and rng.random() < 0.3
                                            and blocks <= config.vrq_code_blocks)
        if rng.random() < 0.6:
            fields["output.rounding"] = rng.randint(0, 2)
            fields["output.shift"] = rng.randint(0, config.accumulator_width - 1)
            fields["output.exponent"] = rng.randint(0, config.accumulator_width - 1)
            fields["output.vrq"] = int(config.vrq is not None and rng.random() < 0.5)
        if valid is None or (command_error(config, fields) is None) == valid:
            return fields


def words_of(config, fields):
    return -(-(fields["depth_minus_one"] + 1) // config.block_multipliers)


# ---- the check --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOADER_CONFIGS))
def test_command_check_matches_the_golden_rules(name):
    """Each command alone after a reset: an invalid one raises ``error``
    ``CHECK_LATENCY`` cycles after its transfer, frees the slot then and takes no
    beats; a valid one leaves ``error`` low and starts loading ``CHECK_LATENCY`` cycles
    after its transfer (beats are taken from the cycle after)."""
    config = LOADER_CONFIGS[name]()
    rng = random.Random(f"check-{name}")
    commands = [random_command(config, rng, valid=index % 2 == 0) for index in range(40)]
    commands += [random_command(config, rng) for _ in range(40)]
    reasons = [command_error(config, fields) for fields in commands]
    assert 25 < sum(reason is None for reason in reasons) < 55
    loader = Loader(config)
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.loader = loader
    traces = []

    async def bench(ctx):
        for fields in commands:
            ctx.set(domain.rst, 1)
            await ctx.tick()
            ctx.set(domain.rst, 0)
            ctx.set(loader.cmd.payload.as_value(), command_bits(config, fields))
            ctx.set(loader.cmd.valid, 1)
            trace = []
            for cycle in range(CHECK_LATENCY + 3):
                _, _, cmd_ready, error, a_ready, b_ready, job_valid, idle = \
                    await ctx.tick().sample(loader.cmd.ready, loader.error,
                                            loader.a_in.ready, loader.b_in.ready,
                                            loader.job.valid, loader.idle)
                if cycle == 0:
                    assert cmd_ready, "the slot is empty after reset"
                    ctx.set(loader.cmd.valid, 0)
                trace.append((cmd_ready, error, a_ready, b_ready, job_valid, idle))
            traces.append(trace)

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    for fields, reason, trace in zip(commands, reasons, traces):
        where = f"{fields}: {reason}"
        cmd_ready, error, a_ready, b_ready, job_valid, idle = zip(*trace)
        if reason is not None:
            assert error == (0,) * CHECK_LATENCY + (1,) * 3, where
            assert not any(a_ready) and not any(b_ready) and not any(job_valid), where
            assert cmd_ready == (1, 0) + (1,) * 3, where
            assert idle == (1, 0) + (1,) * 3, where
        else:
            assert not any(error), where
            assert a_ready == (0,) * (CHECK_LATENCY + 1) + (1,) * 2, where
            assert b_ready == a_ready, where
            assert idle == (1,) + (0,) * (CHECK_LATENCY + 2), where
            assert cmd_ready[:CHECK_LATENCY + 1] == (1, 0, 0), where


@pytest.mark.parametrize("name", ["dense_b3", "vrq_skipping"])
def test_error_is_sticky_and_later_commands_still_load(name):
    config = LOADER_CONFIGS[name]()
    rng = random.Random(name)
    bad, good = random_command(config, rng, valid=False), random_command(config, rng,
                                                                         valid=True)
    beats = words_of(config, good) * (good["m_tiles_minus_one"] + 1)
    loader = Loader(config)
    outcome = {}

    async def bench(ctx):
        ctx.set(loader.job.ready, 1)
        await send(ctx, loader.cmd, [command_bits(config, bad), command_bits(config, good)])
        await ctx.tick().repeat(CHECK_LATENCY + 1)
        taken = 0
        ctx.set(loader.a_in.valid, 1)
        ctx.set(loader.b_in.valid, 1)
        for _ in range(4 * beats + 20):
            _, _, a_ready, job_valid, error = await ctx.tick().sample(
                loader.a_in.ready, loader.job.valid, loader.error)
            taken += a_ready
            if job_valid:
                outcome["job"] = True
            outcome["error"] = outcome.get("error", True) and error
        outcome["taken"] = taken

    simulator = Simulator(loader)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert outcome == {"job": True, "error": 1, "taken": beats}


# ---- loading ---------------------------------------------------------------------------

def expected_b_destination(config, half, beat, words):
    """Zero-skipping: B beat ``x = nt * words + w`` goes to PE row ``nt mod R`` at
    ``half * pe_buffer_depth + (nt div R) * words + w``. Dense: ``half * buffer_depth
    + x`` of every bank (row 0)."""
    if not config.zero_skipping:
        return 0, half * config.buffer_depth + beat
    tile, word = divmod(beat, words)
    return (tile % config.rows,
            half * config.pe_buffer_depth + (tile // config.rows) * words + word)


def run_loading(config, commands, *, stall, seed):
    """Feed ``commands`` (valid or not) and their beats; return the monitor's records."""
    rng = random.Random(seed)
    loader = Loader(config)
    valid = [fields for fields in commands if command_error(config, fields) is None]
    a_counts = [(f["m_tiles_minus_one"] + 1) * words_of(config, f) for f in valid]
    b_counts = [(f["n_tiles_minus_one"] + 1) * words_of(config, f) for f in valid]
    a_width, b_width = a_beat_layout(config).size, b_beat_layout(config).size
    a_beats = [rng.getrandbits(a_width) for _ in range(sum(a_counts))]
    b_beats = [rng.getrandbits(b_width) for _ in range(sum(b_counts))]
    record = {"a": [], "b": [], "jobs": [], "releases": {}, "accepted": [], "idle": [],
              "slot_while_loading": 0, "cycles": 0}

    def sender(port, beats, offset):
        async def process(ctx):
            await send(ctx, port, beats, stall=stall, rng=random.Random(seed + offset))
        return process

    async def scheduler(ctx):
        """Take each job with random ready; release its half 1 .. 12 cycles later."""
        releases = []                       # (due cycle, half, job index)
        cycle = 0
        while len(record["jobs"]) < len(valid) or releases:
            ready = rng.random() >= stall
            ctx.set(loader.job.ready, ready)
            due = [entry for entry in releases if entry[0] <= cycle]
            if due:
                releases.remove(due[0])
                ctx.set(loader.release_half, due[0][1])
                record["releases"][due[0][2]] = cycle
            ctx.set(loader.release, bool(due))
            _, _, job_valid, payload = await ctx.tick().sample(
                loader.job.valid, loader.job.payload.as_value())
            if ready and job_valid:
                job = data.Const(job_layout(config), payload)
                half = int(job.half)
                record["jobs"].append((job.command.as_bits(), half, cycle))
                releases.append((cycle + rng.randint(1, 12), half, len(record["jobs"]) - 1))
            cycle += 1
            assert cycle < 20_000, "loader hangs"
        ctx.set(loader.release, 0)
        ctx.set(loader.job.ready, 0)
        for _ in range(3):
            _, _, idle = await ctx.tick().sample(loader.idle)
            record["idle"].append(idle)

    async def monitor(ctx):
        cycle = 0
        signals = [loader.a_write_enable, loader.a_write_address,
                   loader.a_in.payload.as_value(), loader.b_write_enable,
                   loader.b_write_address, loader.b_in.payload.as_value(),
                   loader.cmd.valid, loader.cmd.ready, loader.a_in.ready]
        if config.zero_skipping:
            signals += [loader.b_write_row, loader.accepted, loader.fill_half,
                        loader.command.as_value()]
        async for _, _, *values in ctx.tick().sample(*signals):
            a_enable, a_address, a_payload, b_enable, b_address, b_payload, \
                cmd_valid, cmd_ready, a_ready = values[:9]
            if a_enable:
                record["a"].append((cycle, a_address, a_payload))
            if b_enable:
                row = values[9] if config.zero_skipping else 0
                record["b"].append((cycle, row, b_address, b_payload))
            if config.zero_skipping and values[10]:
                record["accepted"].append((cycle, values[11], values[12]))
            record["slot_while_loading"] += bool(cmd_valid and cmd_ready and a_ready)
            cycle += 1

    simulator = Simulator(loader)
    simulator.add_clock(1e-8)
    simulator.add_testbench(sender(loader.cmd, [command_bits(config, f) for f in commands], 1))
    simulator.add_testbench(sender(loader.a_in, a_beats, 2))
    simulator.add_testbench(sender(loader.b_in, b_beats, 3))
    simulator.add_testbench(scheduler)
    simulator.add_testbench(monitor, background=True)
    simulator.run()
    return valid, a_counts, b_counts, a_beats, b_beats, record


@pytest.mark.parametrize("name", sorted(LOADER_CONFIGS))
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_beats_addresses_jobs_and_halves(name, stall):
    config = LOADER_CONFIGS[name]()
    rng = random.Random(f"load-{name}")
    commands = [random_command(config, rng, valid=rng.random() < 0.8) for _ in range(24)]
    valid, a_counts, b_counts, a_beats, b_beats, record = run_loading(
        config, commands, stall=stall, seed=len(name))
    assert len(valid) >= 15

    # Jobs: the valid commands in order, halves alternating.
    assert [(command, half) for command, half, _ in record["jobs"]] == \
        [(command_bits(config, f), index % 2) for index, f in enumerate(valid)]

    # Every beat written once, in order; its job's half; A at half * depth + x.
    assert [payload for _, _, payload in record["a"]] == a_beats
    assert [payload for *_, payload in record["b"]] == b_beats
    a_position = b_position = 0
    for index, fields in enumerate(valid):
        half, words = index % 2, words_of(config, fields)
        job_cycle = record["jobs"][index][2]
        previous_release = record["releases"].get(index - 2, -1)   # same half, before
        for beat in range(a_counts[index]):
            cycle, address, _ = record["a"][a_position + beat]
            assert address == half * config.buffer_depth + beat, f"job {index} A {beat}"
            assert previous_release < cycle < job_cycle, f"job {index}: A write in a busy half"
        for beat in range(b_counts[index]):
            cycle, row, address, _ = record["b"][b_position + beat]
            assert (row, address) == expected_b_destination(config, half, beat, words), \
                f"job {index} B beat {beat}"
            assert previous_release < cycle < job_cycle, f"job {index}: B write in a busy half"
        a_position += a_counts[index]
        b_position += b_counts[index]
        if config.zero_skipping:
            # ``accepted`` pulses when the command starts loading, before its first beat.
            accepted_cycle, fill_half, command = record["accepted"][index]
            assert (fill_half, command) == (half, command_bits(config, fields))
            first_write = min(cycle for cycle, *_ in
                              record["a"][a_position - a_counts[index]:a_position])
            assert accepted_cycle < first_write
    if config.zero_skipping:
        assert len(record["accepted"]) == len(valid)
    # Commands are taken into the slot while the previous one loads.
    assert record["slot_while_loading"] > 0
    assert record["idle"] == [1, 1, 1]
