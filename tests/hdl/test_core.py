"""The programmable accelerator (decoder + accelerator + addend stage) in the Amaranth
simulator, against the golden machine.

Random programs (:func:`qforge.sim.apps.fuzz.random_program`: valid and invalid words) run
with the data mover (:class:`qforge.sim.host.datamover.DataMover`) feeding every port under
random stalls. The memory the hardware's results are written to must equal the golden
machine's, the sticky ``error`` must be set exactly when the program holds an invalid
word, and the core must finish (no hang) and end idle.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.hdl.core import Core
from qforge.sim.model.isa import Opcode, Operand, encode
from qforge.sim.host.datamover import DataMover
from qforge.sim.apps.fuzz import random_program
from qforge.sim.model.machine import Machine, add_saturate
from tests.configs import custom, tiny, vrq_skipping

CORE_CONFIGS = {
    "tiny": tiny,
    "r2c3": lambda: custom("r2c3", rows=2, cols=3, operand_width=8, block_width=2,
                           block_multipliers=2, buffer_depth=16),
    "r2c3_vrq_skipping": vrq_skipping,
}


def run_core(config, words, memory, *, stall=0.0, seed=0, max_cycles=20000):
    """Run ``words`` on the core with the data mover; return (memory, error, idle,
    cycles, mover)."""
    dut = Core(config)
    memory = memory.copy()
    mover = DataMover(config, memory)
    mover.submit(words)
    rng = random.Random(seed)
    outcome = {}

    async def bench(ctx):
        sources = [(dut.instruction, mover.instructions), (dut.a_in, mover.a_beats),
                   (dut.b_in, mover.b_beats), (dut.addend, mover.addend_beats)]
        offered = [False] * len(sources)
        cycles = 0
        while not mover.done and cycles < max_cycles:
            for index, (port, queue) in enumerate(sources):
                # A beat stays offered until taken (stream rules); a new one may wait.
                if not offered[index] and queue and not (stall and rng.random() < stall):
                    ctx.set(port.payload.as_value(), queue[0])
                    offered[index] = True
                ctx.set(port.valid, offered[index])
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.result.ready, ready)
            sampled = await ctx.tick().sample(
                *[port.ready for port, _ in sources], dut.result.valid,
                dut.result.payload.as_value())
            readies, (valid, payload) = sampled[2:2 + len(sources)], sampled[-2:]
            for index, (port, queue) in enumerate(sources):
                if offered[index] and readies[index]:
                    queue.popleft()
                    offered[index] = False
            if ready and valid:
                mover.on_result(payload)
            cycles += 1
        for port, _ in sources:
            ctx.set(port.valid, 0)
        ctx.set(dut.result.ready, 1)
        await ctx.tick().repeat(8)
        outcome.update(cycles=cycles, error=ctx.get(dut.error), idle=ctx.get(dut.idle))

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    return memory, bool(outcome["error"]), bool(outcome["idle"]), outcome["cycles"], mover


def golden(config, words, memory):
    machine = Machine(config, memory=memory.copy())
    machine.run(words)
    return machine


@pytest.mark.parametrize("name", sorted(CORE_CONFIGS))
@pytest.mark.parametrize("seed", [1, 2])
def test_random_programs_match_the_golden_machine(name, seed):
    config = CORE_CONFIGS[name]()
    program = random_program(config, seed, instructions=45, invalid_fraction=0.12)
    memory, error, idle, cycles, mover = run_core(config, program.words, program.memory,
                                                  stall=0.3, seed=seed)
    expected = golden(config, program.words, program.memory)
    assert mover.done, f"hang: after {cycles} cycles still pending {mover.pending()}"
    assert not mover.errors, mover.errors
    assert idle, "core not idle after the program"
    assert error == expected.error == (program.invalid > 0)
    np.testing.assert_array_equal(memory, expected.memory)
    assert len(mover.completed) == expected.gemms == program.gemms


def _accumulate_program(config):
    """Two GEMMs: C = A1 @ B1 (raw), then C = clamp(C + A2 @ B2, 6 bits)."""
    m, n, k = 3, 3, 4
    rng = np.random.default_rng(5)
    a1, b1, a2, b2 = (rng.integers(-8, 8, size=shape) for shape in
                      ((m, k), (k, n), (m, k), (k, n)))
    memory = np.concatenate([a1.ravel(), b1.ravel(), a2.ravel(), b2.ravel(),
                             np.zeros(m * n, dtype=np.int64)])
    c = 4 * m * k
    words = [encode(Opcode.LOAD, operand=Operand.A, address=0, stride=k),
             encode(Opcode.LOAD, operand=Operand.B, address=m * k, stride=n),
             encode(Opcode.STORE, address=c, stride=n),
             encode(Opcode.GEMM, m=m, n=n, k=k),
             encode(Opcode.LOAD, operand=Operand.A, address=2 * m * k, stride=k),
             encode(Opcode.LOAD, operand=Operand.B, address=3 * m * k, stride=n),
             encode(Opcode.LOAD, operand=Operand.ADDEND, address=c, stride=n),
             encode(Opcode.GEMM, m=m, n=n, k=k, add=1, saturate_bits=6)]
    return words, memory, (a1, b1, a2, b2), c


def test_accumulate_reads_the_first_result_and_saturates():
    """The second GEMM's addend is the first one's result: the data mover must wait for
    it; the sum saturates to 6 bits. The expected values come from numpy, not from the
    golden machine, and a model without the saturation is detected (negative control)."""
    config = tiny()
    words, memory, (a1, b1, a2, b2), c = _accumulate_program(config)
    result, error, idle, _, _ = run_core(config, words, memory, stall=0.2)
    got = result[c:c + 9].reshape(3, 3)
    np.testing.assert_array_equal(got, add_saturate(a1 @ b1, a2 @ b2, 6))
    assert not error and idle
    # The example exercises the saturation, and neither "no add" nor "no saturation"
    # would match.
    assert not np.array_equal(got, a1 @ b1 + a2 @ b2)
    assert not np.array_equal(got, a2 @ b2)


def test_invalid_words_set_error_and_the_core_goes_on():
    """An invalid word in the middle: error is set, the GEMMs around it still run."""
    config = tiny()
    words, memory, (a1, b1, a2, b2), c = _accumulate_program(config)
    expected = add_saturate(a1 @ b1, a2 @ b2, 6)
    bad = encode(Opcode.GEMM, m=0, n=1, k=1)
    result, error, idle, _, mover = run_core(config, words[:4] + [bad, 0xFF] + words[4:],
                                             memory)
    assert error and idle and mover.done
    np.testing.assert_array_equal(result[c:c + 9].reshape(3, 3), expected)


def test_fence_waits_for_the_results():
    """A FENCE after a GEMM is taken only once the core is idle: the word after it is
    taken no earlier than the GEMM's last result beat."""
    config = tiny()
    words, memory, _, _ = _accumulate_program(config)
    program = words[:4] + [encode(Opcode.FENCE), encode(Opcode.NOP)]
    dut = Core(config)
    mover = DataMover(config, memory.copy())
    mover.submit(program)
    events = {"last_result": None, "nop_taken": None}

    async def bench(ctx):
        ctx.set(dut.result.ready, 1)
        sources = [(dut.instruction, mover.instructions), (dut.a_in, mover.a_beats),
                   (dut.b_in, mover.b_beats)]
        for cycle in range(400):
            for port, queue in sources:
                ctx.set(port.valid, bool(queue))
                if queue:
                    ctx.set(port.payload.as_value(), queue[0])
            sampled = await ctx.tick().sample(*[p.ready for p, _ in sources],
                                              dut.result.valid, dut.result.payload.as_value())
            for (port, queue), ready in zip(sources, sampled[2:5]):
                if queue and ready:
                    word = queue.popleft()
                    if port is dut.instruction and word == encode(Opcode.NOP):
                        events["nop_taken"] = cycle
            if sampled[5]:
                mover.on_result(sampled[6])
                events["last_result"] = cycle

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    assert events["last_result"] is not None and events["nop_taken"] is not None
    assert events["nop_taken"] > events["last_result"]
