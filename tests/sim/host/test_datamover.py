"""The data mover (:class:`qforge.sim.host.datamover.DataMover`) without hardware.

A stand-in for the accelerator consumes the mover's queues: it decodes the instruction
words with its own golden machine, takes each valid GEMM's ``a_in``/``b_in``/``addend``
beats as soon as all of them are queued, unpacks them by the documented beat order
(:func:`qforge.sim.host.packing.pack_operands`), computes the result with the golden
arithmetic (:func:`qforge.sim.model.numerics.gemm`, the output stage, ``add_saturate``)
and hands back the result beats in the array's order. The host memory after a program
must equal the golden machine's; the mover's ordering rule (a GEMM is staged only when
no outstanding GEMM writes what it reads, GEMMs in order) and its checks are tested
directly.
"""

from collections import deque

import numpy as np
import pytest

from qforge.hdl.layouts import a_beat_layout, addend_layout, b_beat_layout, result_layout
from qforge.sim.apps.fuzz import random_program
from qforge.sim.host.datamover import DataMover
from qforge.sim.host.packing import leaf_fields, pack_fields, result_order, unpack_fields
from qforge.sim.model.isa import Opcode, Operand, encode
from qforge.sim.model.machine import Machine, MachineError, add_saturate
from qforge.sim.model.numerics import gemm
from qforge.sim.model.quantize import output_operands
from tests.configs import custom, tiny, vrq_skipping

CONFIGS = {
    "tiny": tiny,
    "r3c2": lambda: custom("r3c2", rows=3, cols=2, operand_width=8, block_width=2,
                           block_multipliers=2, buffer_depth=16),
    "r2c3_vrq_skipping": vrq_skipping,
}


def ceil_div(count, size):
    return -(-count // size)


class FakeAccelerator:
    """Consumes the mover's queues GEMM by GEMM and answers with golden result beats."""

    def __init__(self, config, mover):
        self.config, self.mover = config, mover
        self.decoder = Machine(config, compute=False)
        self.plans = deque()
        self.words = []
        self.result_fields = leaf_fields(result_layout(config))

    def _take(self, queue, count):
        return [queue.popleft() for _ in range(count)]

    def step(self) -> bool:
        """Decode every queued word; execute the next GEMM if all its beats are there.
        Returns whether a GEMM was executed."""
        config, mover = self.config, self.mover
        while mover.instructions:
            word = mover.instructions.popleft()
            self.words.append(word)
            plan = self.decoder.step(word)
            if plan is not None:
                self.plans.append(plan)
        if not self.plans:
            return False
        plan = self.plans[0]
        rows, cols, lanes = config.rows, config.cols, config.block_multipliers
        words = ceil_div(plan.k, lanes)
        m_tiles, n_tiles = ceil_div(plan.m, rows), ceil_div(plan.n, cols)
        result_beats = m_tiles * n_tiles * rows
        needs = [(mover.a_beats, m_tiles * words), (mover.b_beats, n_tiles * words),
                 (mover.addend_beats, result_beats if plan.add else 0)]
        if any(len(queue) < count for queue, count in needs):
            return False
        self.plans.popleft()
        # A beat (mt, word): rows mt*R .. +R-1, operands word*P .. +P-1, row-major.
        a = np.zeros((m_tiles * rows, words * lanes), dtype=np.int64)
        a_fields = leaf_fields(a_beat_layout(config))
        for index, bits in enumerate(self._take(mover.a_beats, m_tiles * words)):
            mt, word = divmod(index, words)
            a[mt * rows:(mt + 1) * rows, word * lanes:(word + 1) * lanes] = \
                np.reshape(unpack_fields(a_fields, bits), (rows, lanes))
        # B beat (nt, word): columns nt*C .. +C-1, each with operands word*P .. +P-1.
        b = np.zeros((words * lanes, n_tiles * cols), dtype=np.int64)
        b_fields = leaf_fields(b_beat_layout(config))
        for index, bits in enumerate(self._take(mover.b_beats, n_tiles * words)):
            nt, word = divmod(index, words)
            b[word * lanes:(word + 1) * lanes, nt * cols:(nt + 1) * cols] = \
                np.reshape(unpack_fields(b_fields, bits), (cols, lanes)).T
        # Padding is zero: the hardware multiplies it.
        assert not a[plan.m:].any() and not a[:, plan.k:].any()
        assert not b[plan.k:].any() and not b[:, plan.n:].any()
        values = gemm(a[:plan.m, :plan.k], b[:plan.k, :plan.n], config, plan.precision)
        if plan.output is not None:
            values = output_operands(values, config, plan.output)
        padded = np.zeros((m_tiles * rows, n_tiles * cols), dtype=np.int64)
        padded[:plan.m, :plan.n] = values
        ordered = result_order(config, padded)
        if plan.add:
            addend_fields = leaf_fields(addend_layout(config))
            addend = np.array([unpack_fields(addend_fields, bits) for bits in
                               self._take(mover.addend_beats, result_beats)])
            ordered = add_saturate(addend, ordered, plan.saturate_bits)
        for index, row in enumerate(ordered.tolist()):
            last = int(index == result_beats - 1)
            self.mover.on_result(pack_fields(self.result_fields, row + [last]))
        return True

    def run(self):
        while self.step():
            pass


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_programs_leave_the_golden_machines_memory(name, seed):
    config = CONFIGS[name]()
    program = random_program(config, seed, instructions=40, invalid_fraction=0.12)
    mover = DataMover(config, program.memory.copy())
    mover.submit(program.words)
    hardware = FakeAccelerator(config, mover)
    hardware.run()
    golden = Machine(config, memory=program.memory.copy())
    golden.run(program.words)
    assert mover.done, mover.pending()
    assert not mover.errors, mover.errors
    # Every word goes to the hardware, the invalid ones too (they raise its error).
    assert hardware.words == program.words
    assert mover.expected_error == golden.error == (program.invalid > 0)
    np.testing.assert_array_equal(mover.memory, golden.memory)
    assert [plan.index for plan in mover.completed] == list(range(golden.gemms))


def _chain(config):
    """GEMM 0: C = A @ B; GEMM 1 reads C as its A; GEMM 2 is independent of both."""
    rng = np.random.default_rng(7)
    a, b, b2, a3 = (rng.integers(-3, 4, size=(2, 2)) for _ in range(4))
    memory = np.concatenate([a.ravel(), b.ravel(), b2.ravel(), a3.ravel(),
                             np.zeros(12, dtype=np.int64)])
    load = lambda operand, address: encode(Opcode.LOAD, operand=operand,  # noqa: E731
                                           address=address, stride=2)
    words = [load(Operand.A, 0), load(Operand.B, 4), encode(Opcode.STORE, address=16,
                                                             stride=2),
             encode(Opcode.GEMM, m=2, n=2, k=2),
             load(Operand.A, 16), load(Operand.B, 8), encode(Opcode.STORE, address=20,
                                                              stride=2),
             encode(Opcode.GEMM, m=2, n=2, k=2),
             load(Operand.A, 12), load(Operand.B, 8), encode(Opcode.STORE, address=24,
                                                              stride=2),
             encode(Opcode.GEMM, m=2, n=2, k=2)]
    return words, memory, (a, b, b2, a3)


def test_a_gemm_that_reads_a_result_waits_for_it():
    # One 2 x 2 tile each, P = 1: k = 2 is ceil(2 / 1) = 2 words, two A and two B beats
    # per GEMM.
    config = tiny()
    words, memory, (a, b, b2, a3) = _chain(config)
    mover = DataMover(config, memory)
    mover.submit(words)
    # Only GEMM 0 is staged: GEMM 1 reads its result, GEMM 2 waits behind GEMM 1.
    assert (len(mover.a_beats), len(mover.b_beats)) == (2, 2)
    assert [o.plan.index for o in mover.outstanding] == [0]
    assert [plan.index for plan in mover.waiting] == [1, 2]
    assert mover.pending() == {"instructions": len(words), "a_in": 2, "b_in": 2,
                               "addend": 0, "waiting_gemms": 2, "result_beats": 2}
    hardware = FakeAccelerator(config, mover)
    assert hardware.step()               # GEMM 0 runs; its results stage GEMMs 1 and 2
    assert [o.plan.index for o in mover.outstanding] == [1, 2]
    assert not mover.waiting
    np.testing.assert_array_equal(mover.memory[16:20].reshape(2, 2), a @ b)
    hardware.run()
    assert mover.done and not mover.errors
    np.testing.assert_array_equal(mover.memory[20:24].reshape(2, 2), (a @ b) @ b2)
    np.testing.assert_array_equal(mover.memory[24:28].reshape(2, 2), a3 @ b2)


def test_independent_gemms_are_staged_at_once():
    config = tiny()
    words, memory, _ = _chain(config)
    independent = words[:4] + words[8:]          # GEMMs 0 and 2 only
    mover = DataMover(config, memory)
    mover.submit(independent)
    assert [o.plan.index for o in mover.outstanding] == [0, 1]
    assert (len(mover.a_beats), len(mover.b_beats)) == (4, 4)     # 2 GEMMs x 2 words


def test_addend_beats_follow_the_result_order():
    """The addend is read with LOAD operand 2 and sent one beat per result beat, in
    the results' tile order, zero-padded to whole tiles."""
    config = custom("r2c2", rows=2, cols=2, operand_width=8, block_width=2,
                    block_multipliers=2, buffer_depth=16)
    addend = np.arange(1, 10).reshape(3, 3) * 1000
    memory = np.concatenate([np.ones(9, dtype=np.int64), addend.ravel(),
                             np.zeros(9, dtype=np.int64)])
    words = [encode(Opcode.LOAD, operand=Operand.A, address=0, stride=3),
             encode(Opcode.LOAD, operand=Operand.B, address=0, stride=3),
             encode(Opcode.LOAD, operand=Operand.ADDEND, address=9, stride=3),
             encode(Opcode.STORE, address=18, stride=3),
             encode(Opcode.GEMM, m=3, n=3, k=3, add=1, saturate_bits=12)]
    mover = DataMover(config, memory)
    mover.submit(words)
    fields = leaf_fields(addend_layout(config))
    beats = [unpack_fields(fields, bits) for bits in mover.addend_beats]
    # Tiles (0,0), (0,1), (1,0), (1,1), each two rows of two.
    assert beats == [[1000, 2000], [4000, 5000], [3000, 0], [6000, 0],
                     [7000, 8000], [0, 0], [9000, 0], [0, 0]]
    FakeAccelerator(config, mover).run()
    assert mover.done and not mover.errors
    np.testing.assert_array_equal(mover.memory[18:27].reshape(3, 3),
                                  np.clip(addend + 3, -2048, 2047))


def test_invalid_words_are_sent_but_move_no_data():
    config = tiny()
    mover = DataMover(config, np.zeros(8, dtype=np.int64))
    mover.submit([encode(Opcode.GEMM, m=0, n=1, k=1), 0xFF])
    assert list(mover.instructions) == [encode(Opcode.GEMM, m=0, n=1, k=1), 0xFF]
    assert mover.expected_error
    assert not (mover.a_beats or mover.b_beats or mover.waiting or mover.outstanding)
    mover.instructions.clear()
    assert mover.done


def test_words_that_are_not_64_bit_words():
    mover = DataMover(tiny(), np.zeros(4, dtype=np.int64))
    with pytest.raises(MachineError, match=r"^instruction word 0x10000000000000000: not a "
                                           r"64-bit word$"):
        mover.submit([1 << 64])
    with pytest.raises(MachineError, match=r"^instruction word -0x1: not a 64-bit word$"):
        mover.submit([-1])
    assert not mover.instructions


def test_operand_and_memory_checks():
    """docs/ISA.md, *What the data mover checks*, with its example messages."""
    config = tiny()
    memory = np.zeros(12, dtype=np.int64)
    memory[0] = -77
    mover = DataMover(config, memory)
    with pytest.raises(MachineError, match=r"^GEMM 0: a\[0, 0\] = -77: out of range for 1 "
                                           r"blocks of 4 bits; allowed -8 \.\. 7$"):
        mover.submit([encode(Opcode.PRECISION, operand=0, blocks=1, kept=1),
                      encode(Opcode.GEMM, m=1, n=1, k=1)])
    mover = DataMover(config, np.zeros(12, dtype=np.int64))
    with pytest.raises(MachineError, match=r"^GEMM 0: A: a 2 x 2 matrix at address 10, "
                                           r"stride 2 reaches element 13; memory has 12 "
                                           r"elements$"):
        mover.submit([encode(Opcode.LOAD, operand=Operand.A, address=10, stride=2),
                      encode(Opcode.GEMM, m=2, n=2, k=2)])


def _one_gemm_mover():
    config = tiny()
    mover = DataMover(config, np.zeros(16, dtype=np.int64))
    mover.submit([encode(Opcode.STORE, address=8, stride=2),
                  encode(Opcode.GEMM, m=2, n=2, k=2)])      # 2 result beats
    return mover, leaf_fields(result_layout(config))


def test_bad_result_streams_are_reported():
    mover, fields = _one_gemm_mover()
    mover.on_result(pack_fields(fields, [1, 2, 1]))          # last on beat 1 of 2
    mover.on_result(pack_fields(fields, [3, 4, 0]))          # no last on the final beat
    assert mover.errors == ["GEMM 0: last on beat 1 of 2",
                            "GEMM 0: no last on its final beat"]
    np.testing.assert_array_equal(mover.memory[8:12], [1, 2, 3, 4])
    extra = pack_fields(fields, [5, 6, 1])
    mover.on_result(extra)
    assert mover.errors[-1] == f"unexpected result beat {extra:#x}: no GEMM outstanding"


def test_result_is_written_with_the_last_beat_only():
    mover, fields = _one_gemm_mover()
    mover.on_result(pack_fields(fields, [-5, 6, 0]))
    assert not mover.memory.any() and not mover.completed
    assert mover.pending()["result_beats"] == 1
    mover.on_result(pack_fields(fields, [7, -8, 1]))
    np.testing.assert_array_equal(mover.memory[8:12], [-5, 6, 7, -8])
    assert [plan.index for plan in mover.completed] == [0] and not mover.errors
