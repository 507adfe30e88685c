"""The golden ISA machine (:mod:`qforge.sim.model.machine`): validity rules, registers,
memory descriptors and GEMM execution.

References, independent of the module under test: the rules and messages of docs/ISA.md
restated here, numpy for exact integer GEMMs and memory indexing by the descriptor
formula, and the lower golden layers (:func:`qforge.sim.model.numerics.gemm`,
:func:`qforge.sim.model.quantize.output_operands`) for approximate modes and the output
stage. Hypothesis draws the words, sizes and descriptors.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.sim.model.errors import QforgeError
from qforge.sim.model.isa import OPERAND_FIELDS, Opcode, Operand, encode
from qforge.sim.model.machine import (Descriptor, Machine, MachineError, add_saturate,
                                      gemm_capacity_error, instruction_error, overlaps, span,
                                      tiles)
from qforge.sim.model.numerics import OperandPrecision, Precision, Selection, gemm
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands
from qforge.sim.model.spec import from_dict, load_preset

TINY = load_preset("tiny")           # R = C = 2, B = 2 blocks of K = 4, P = 2, A = 25


def small(zero_skipping=False, vrq=False, paired=False):
    """3 x 2 array, B = 4 blocks of 2 bits, P = 2, 8-word buffers (tile limit 8),
    optionally zero skipping (6-word PE banks), VRQ operands (N = 4: 2 code blocks) or
    the paired mode."""
    spec = {"name": "small", "array": {"rows": 3, "cols": 2},
            "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                           "max_reduction_depth": 12, "output_width": 8},
            "buffers": {"depth": 8}}
    if paired:
        spec["arithmetic"]["paired"] = True
    if zero_skipping:
        spec["zero_skipping"] = {"pe_buffer_depth": 6}
    if vrq:
        spec["vrq"] = {"code_width": 4, "range_stride": 2, "ranges": 4}
    return from_dict(spec)


CONFIGS = {"tiny": TINY, "small": small(), "small_skipping": small(zero_skipping=True),
           "small_vrq": small(vrq=True), "small_paired": small(paired=True)}


def tile_limit(config):
    """docs/ISA.md: ``2**bit_length(buffer_depth - 1)``."""
    return 1 << (config.buffer_depth - 1).bit_length()


# ---- tiles, spans ------------------------------------------------------------------------

@settings(deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 64))
def test_tiles_is_the_ceiling(count, size):
    assert (tiles(count, size) - 1) * size < count <= tiles(count, size) * size or \
        count == tiles(count, size) == 0


@settings(deadline=None)
@given(st.integers(0, 100), st.integers(0, 10), st.booleans(), st.integers(1, 5),
       st.integers(1, 5))
def test_descriptor_indices_and_span(address, stride, transpose, rows, cols):
    """docs/ISA.md, *Memory*: ``address + i * stride + j``, or with ``transpose``
    ``address + j * stride + i``."""
    descriptor = Descriptor(address, stride, transpose)
    indices = descriptor.indices(rows, cols)
    assert indices.shape == (rows, cols)
    for i in range(rows):
        for j in range(cols):
            expected = address + (j * stride + i if transpose else i * stride + j)
            assert indices[i, j] == expected
    assert span(descriptor, rows, cols) == (int(indices.min()), int(indices.max()))


@settings(deadline=None)
@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 20))
def test_overlaps_means_a_shared_index(a, b, c, d):
    first, second = (min(a, b), max(a, b)), (min(c, d), max(c, d))
    shared = set(range(first[0], first[1] + 1)) & set(range(second[0], second[1] + 1))
    assert overlaps(first, second) == bool(shared) == overlaps(second, first)


# ---- add_saturate --------------------------------------------------------------------------

@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(-2**40, 2**40), st.integers(-2**40, 2**40)),
                min_size=1, max_size=8),
       st.integers(2, 40))
def test_add_saturate_clamps_to_twos_complement(pairs, bits):
    addend, values = (np.array(column, dtype=np.int64) for column in zip(*pairs))
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    expected = [min(max(x + y, low), high) for x, y in pairs]
    assert add_saturate(addend, values, bits).tolist() == expected


# ---- gemm_capacity_error -------------------------------------------------------------------

def capacity_ok(config, m, n, k):
    """The GEMM rules of docs/ISA.md, restated."""
    limit = tile_limit(config)
    if not (1 <= m <= limit * config.rows and 1 <= n <= limit * config.cols
            and 1 <= k <= config.max_reduction_depth):
        return False
    words = -(-k // config.block_multipliers)
    m_tiles, n_tiles = -(-m // config.rows), -(-n // config.cols)
    if m_tiles * words > config.buffer_depth:
        return False
    if config.zero_skipping:
        return -(-n_tiles // config.rows) * words <= config.pe_buffer_depth
    return n_tiles * words <= config.buffer_depth


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=150, deadline=None)
@given(m=st.integers(0, 40), n=st.integers(0, 40), k=st.integers(0, 16))
def test_capacity_rule(name, m, n, k):
    config = CONFIGS[name]
    reason = gemm_capacity_error(config, m, n, k)
    assert (reason is None) == capacity_ok(config, m, n, k), reason
    assert reason is None or reason.startswith("GEMM")


def test_capacity_messages():
    config = small()                          # tile limit 8: m <= 24, n <= 16
    assert gemm_capacity_error(config, 25, 1, 1) == \
        "GEMM.m = 25: allowed 1 .. 24 (8 tiles of 3 rows)"
    assert gemm_capacity_error(config, 1, 0, 1) == \
        "GEMM.n = 0: allowed 1 .. 16 (8 tiles of 2 columns)"
    assert gemm_capacity_error(config, 1, 1, 13) == \
        "GEMM.k = 13: allowed 1 .. 12 (arithmetic.max_reduction_depth)"
    assert gemm_capacity_error(config, 9, 1, 6) == (
        "GEMM: A needs ceil(m / R) * ceil(k / P) = 3 * 3 = 9 buffer words; allowed at "
        "most buffer_depth = 8")
    assert gemm_capacity_error(config, 3, 6, 6) == (
        "GEMM: B needs ceil(n / C) * ceil(k / P) = 3 * 3 = 9 buffer words; allowed at "
        "most buffer_depth = 8")
    assert gemm_capacity_error(config, 3, 6, 6) is not None
    skipping = small(zero_skipping=True)      # B per PE bank: 6 words
    assert gemm_capacity_error(skipping, 3, 6, 12) is None      # 1 group * 6 words
    assert gemm_capacity_error(skipping, 3, 7, 12) == (
        "GEMM: B needs ceil(ceil(n / C) / R) * ceil(k / P) = 2 * 6 = 12 PE buffer words; "
        "allowed at most pe_buffer_depth = 6")


# ---- instruction_error ---------------------------------------------------------------------

def fields_of(opcode):
    """Any value of each field of ``opcode``."""
    return st.fixed_dictionaries({name: st.integers(0, (1 << width) - 1)
                                  for name, width in OPERAND_FIELDS[opcode].items()})


def expected_valid(config, opcode, fields):
    """The rules of docs/ISA.md for a word without reserved bits."""
    accumulator = config.accumulator_width
    if opcode == Opcode.PRECISION:
        if (fields["unsigned"] or fields["paired"]) and not config.paired:
            return False
        if fields["unsigned"] and fields["vrq"]:
            return False
        if fields["paired"]:          # A, exact integer; 1 <= low <= high, high + low <= B
            n = config.blocks
            return (fields["operand"] == 0 and not fields["vrq"] and not fields["dynamic"]
                    and fields["blocks"] == fields["kept"] == n
                    and 1 <= fields["low"] <= fields["high"]
                    and fields["high"] + fields["low"] <= n)
        if fields["high"] or fields["low"] or fields["round"]:
            return False
        if fields["vrq"] and config.vrq is None:
            return False
        limit = -(-config.vrq_code_width // config.block_width) if fields["vrq"] \
            else config.blocks
        return 1 <= fields["kept"] <= fields["blocks"] <= limit
    if opcode == Opcode.OUTPUT:
        return (fields["rounding"] != 3 and fields["shift"] <= accumulator - 1
                and fields["exponent"] <= accumulator - 1
                and not (fields["vrq"] and config.vrq is None)
                and not (fields["wide"] and not (fields["quantize"] and not fields["vrq"])))
    if opcode == Opcode.GEMM:
        if not capacity_ok(config, fields["m"], fields["n"], fields["k"]):
            return False
        if fields["skip_zeros"] and not config.zero_skipping:
            return False
        if fields["add"]:
            return 2 <= fields["saturate_bits"] <= accumulator
        return fields["saturate_bits"] == 0
    if opcode == Opcode.LOAD:
        return fields["operand"] != 3
    return True                                  # NOP, SEED, FENCE, STORE


@st.composite
def words(draw):
    """A word of a known opcode with small GEMM sizes (to reach the valid ones), and
    sometimes a reserved bit set."""
    opcode = draw(st.sampled_from(list(Opcode)))
    fields = draw(fields_of(opcode))
    if opcode == Opcode.GEMM and draw(st.booleans()):
        fields.update(m=draw(st.integers(0, 30)), n=draw(st.integers(0, 20)),
                      k=draw(st.integers(0, 14)))
    if opcode == Opcode.PRECISION:
        fields.update(blocks=draw(st.integers(0, 5)), kept=draw(st.integers(0, 5)))
        if draw(st.booleans()):          # reach the valid paired and plain words
            fields.update(high=draw(st.integers(0, 4)), low=draw(st.integers(0, 3)),
                          operand=draw(st.integers(0, 1)) * draw(st.booleans()),
                          dynamic=0, vrq=0, round=draw(st.integers(0, 1)),
                          paired=int(draw(st.booleans())))
            if not fields["paired"]:
                fields.update(high=0, low=0, round=0)
    if opcode == Opcode.OUTPUT and draw(st.booleans()):
        fields.update(shift=draw(st.integers(0, 30)), exponent=draw(st.integers(0, 30)))
    if opcode == Opcode.GEMM and draw(st.booleans()):
        fields.update(saturate_bits=draw(st.sampled_from([0, 1, 2, 24, 25, 26, 27])))
    word = encode(opcode, **fields)
    used = 8 + sum(OPERAND_FIELDS[opcode].values())
    reserved = draw(st.one_of(st.just(0), st.integers(0, 63 - used))) if used < 64 else 0
    if reserved and draw(st.booleans()):
        word |= 1 << (used + reserved)
        return word, opcode, fields, True
    return word, opcode, fields, False


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=300, deadline=None)
@given(drawn=words())
def test_instruction_rules(name, drawn):
    config = CONFIGS[name]
    word, opcode, fields, reserved = drawn
    reason = instruction_error(config, word)
    if reserved:
        assert reason is not None and "reserved bits set" in reason
    else:
        assert (reason is None) == expected_valid(config, opcode, fields), \
            f"{opcode.name} {fields}: {reason}"
        if reason is not None:
            assert reason.startswith(opcode.name)


@settings(deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_any_word_has_a_verdict(word):
    """Every 64-bit word is either valid or has a reason; unknown opcodes are named."""
    reason = instruction_error(TINY, word)
    if word & 0xFF not in tuple(Opcode):
        assert reason == (f"opcode {word & 0xFF:#04x}: not an instruction (allowed: "
                          f"0x00 NOP .. 0x07 STORE)")


@pytest.mark.parametrize("word, message", [
    (encode(Opcode.PRECISION, blocks=3, kept=1),
     "PRECISION.blocks = 3: allowed 1 .. 2 (blocks of the operand)"),
    (encode(Opcode.PRECISION, blocks=2, kept=0),
     "PRECISION.kept = 0: allowed 1 .. blocks (2)"),
    (encode(Opcode.PRECISION, blocks=1, kept=1, vrq=1),
     "PRECISION.vrq = 1: this configuration has no [vrq] section, so its PEs take integer "
     "operands only"),
    (encode(Opcode.OUTPUT, rounding=3),
     "OUTPUT.rounding = 3: allowed 0 (nearest_even), 1 (truncate), 2 (stochastic)"),
    (encode(Opcode.OUTPUT, shift=25),
     "OUTPUT.shift = 25: allowed 0 .. 24 (accumulator_width - 1)"),
    (encode(Opcode.OUTPUT, exponent=63),
     "OUTPUT.exponent = 63: allowed 0 .. 24 (accumulator_width - 1)"),
    (encode(Opcode.OUTPUT, quantize=1, vrq=1),
     "OUTPUT.vrq = 1: this configuration has no [vrq] section, so its output stage "
     "cannot emit VRQ words"),
    (encode(Opcode.OUTPUT, wide=1),
     "OUTPUT.wide = 1: only with quantize = 1 and vrq = 0 (it skips the saturation of "
     "integer outputs)"),
    (encode(Opcode.GEMM, m=1, n=1, k=1, skip_zeros=1),
     "GEMM.skip_zeros = 1: this configuration has no [zero_skipping] section"),
    (encode(Opcode.GEMM, m=1, n=1, k=1, add=1, saturate_bits=1),
     "GEMM.saturate_bits = 1: with add = 1 allowed 2 .. 25 (accumulator_width)"),
    (encode(Opcode.GEMM, m=1, n=1, k=1, add=1, saturate_bits=26),
     "GEMM.saturate_bits = 26: with add = 1 allowed 2 .. 25 (accumulator_width)"),
    (encode(Opcode.GEMM, m=1, n=1, k=1, saturate_bits=8),
     "GEMM.saturate_bits = 8: must be 0 unless add = 1"),
    (encode(Opcode.GEMM, m=1, n=1, k=0), "GEMM.k = 0: allowed 1 .. 512 "
     "(arithmetic.max_reduction_depth)"),
    (encode(Opcode.LOAD, operand=3),
     "LOAD.operand = 3: allowed 0 (a), 1 (b), 2 (addend)"),
    (encode(Opcode.NOP) | 1 << 8, "NOP: reserved bits set (0x1 above its fields); they "
     "must be 0"),
    (encode(Opcode.FENCE) | 1 << 63, "FENCE: reserved bits set (0x80000000000000 above its "
     "fields); they must be 0"),
])
def test_instruction_messages(word, message):
    assert instruction_error(TINY, word) == message


def test_instruction_boundaries_on_tiny():
    accepted = [encode(Opcode.PRECISION, blocks=2, kept=2, dynamic=1),
                encode(Opcode.OUTPUT, quantize=1, shift=24, exponent=24, rounding=2, wide=1),
                encode(Opcode.GEMM, m=512, n=512, k=2),     # 256 tiles x 1 word
                encode(Opcode.GEMM, m=1, n=1, k=512, add=1, saturate_bits=25),
                encode(Opcode.SEED, seed=2**32 - 1, tensor=2**16 - 1),
                encode(Opcode.LOAD, operand=2, address=2**24 - 1, stride=2**24 - 1),
                encode(Opcode.STORE, transpose=1), encode(Opcode.NOP), encode(Opcode.FENCE)]
    assert [instruction_error(TINY, word) for word in accepted] == [None] * len(accepted)


# ---- the machine ------------------------------------------------------------------------

def state(machine):
    """Everything a program can observe of the machine."""
    return (machine.memory.tolist(), machine.precision, machine.output, machine.seed,
            machine.tensor, dict(machine.loads), machine.store)


def test_reset_state():
    """docs/ISA.md, *The machine*: the reset values of every register."""
    machine = Machine(TINY, memory_size=4)
    exact = OperandPrecision(TINY.blocks, TINY.blocks)
    assert machine.precision == Precision(exact, exact)
    assert machine.output is None
    assert (machine.seed, machine.tensor) == (0, 0)
    assert machine.loads == {operand: Descriptor(0, 0, False) for operand in Operand}
    assert machine.store == Descriptor(0, 0, False)
    assert not machine.error
    assert machine.memory.tolist() == [0] * 4


def test_registers():
    machine = Machine(TINY)
    machine.run([encode(Opcode.PRECISION, operand=1, blocks=2, kept=1, dynamic=1),
                 encode(Opcode.PRECISION, operand=0, blocks=1, kept=1),
                 encode(Opcode.OUTPUT, quantize=1, shift=3, rounding=2, relu=1, wide=1),
                 encode(Opcode.SEED, seed=77, tensor=5),
                 encode(Opcode.LOAD, operand=Operand.ADDEND, transpose=1, address=9,
                        stride=4),
                 encode(Opcode.STORE, address=3, stride=2)])
    assert machine.precision == Precision(OperandPrecision(1, 1),
                                          OperandPrecision(2, 1, Selection.DYNAMIC))
    # SEED after OUTPUT still reaches the output parameters.
    assert machine.output == OutputParameters(shift=3, rounding=Rounding.STOCHASTIC,
                                              relu=True, seed=77, tensor=5, wide=True)
    assert machine.loads[Operand.ADDEND] == Descriptor(9, 4, True)
    assert machine.store == Descriptor(3, 2, False)
    assert (machine.executed, machine.invalid, machine.gemms, machine.error) == \
        (6, 0, 0, False)
    machine.step(encode(Opcode.OUTPUT, quantize=0, shift=3))
    assert machine.output is None
    machine.reset_registers()
    assert machine.output is None and machine.precision.a == OperandPrecision(2, 2)


@settings(max_examples=200, deadline=None)
@given(words())
def test_an_invalid_word_sets_error_and_changes_nothing_else(drawn):
    """docs/ISA.md, *Invalid words*."""
    word = drawn[0]
    prefix = [encode(Opcode.PRECISION, operand=0, blocks=3, kept=2),
              encode(Opcode.OUTPUT, quantize=1, shift=2),
              encode(Opcode.LOAD, operand=Operand.B, address=7, stride=3),
              encode(Opcode.STORE, address=40, stride=5)]
    # Decode only: a valid GEMM of random size may reach outside memory (an invalid one
    # returns no plan, which is what is checked).
    machine, reference = (Machine(small(), memory=np.arange(64), compute=False)
                          for _ in range(2))
    machine.run(prefix)
    reference.run(prefix)
    plan = machine.step(word)
    if instruction_error(machine.config, word) is None:
        assert not machine.error
        return
    assert plan is None and machine.error and machine.invalid == 1
    assert state(machine) == state(reference)
    # A SEED rebuilds the output parameters from the OUTPUT fields: those of the
    # rejected word must not have been kept either. The error is sticky.
    for other in (machine, reference):
        other.step(encode(Opcode.SEED, seed=5, tensor=6))
    assert state(machine) == state(reference)
    assert machine.error


@st.composite
def gemm_programs(draw):
    """A GEMM on ``small()`` with random sizes, descriptors, precision and output stage,
    in a memory holding A, B, the addend and the result in separate regions."""
    config = small()
    # Up to 2 tiles of A and of B, 4 words each: the 8-word buffer halves.
    m, n, k = draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 8))
    words_ = []
    blocks = [draw(st.integers(1, config.blocks)) for _ in range(2)]
    kept = [draw(st.integers(1, b)) for b in blocks]
    dynamic = [draw(st.integers(0, 1)) for _ in range(2)]
    for operand in (0, 1):
        words_.append(encode(Opcode.PRECISION, operand=operand, blocks=blocks[operand],
                             kept=kept[operand], dynamic=dynamic[operand]))
    quantize = draw(st.booleans())
    output_fields = {"quantize": int(quantize), "shift": draw(st.integers(0, 8)),
                     "rounding": draw(st.integers(0, 2)), "relu": draw(st.integers(0, 1))}
    if quantize:
        output_fields["wide"] = draw(st.integers(0, 1))
    words_ += [encode(Opcode.OUTPUT, **output_fields),
               encode(Opcode.SEED, seed=draw(st.integers(0, 2**32 - 1)), tensor=3)]
    regions = {}
    base = 0
    for name, (rows, cols) in (("a", (m, k)), ("b", (k, n)), ("addend", (m, n)),
                               ("result", (m, n))):
        transpose = draw(st.booleans())
        stride = (rows if transpose else cols) + draw(st.integers(0, 2))
        regions[name] = Descriptor(base + draw(st.integers(0, 3)), stride, transpose)
        base = span(regions[name], rows, cols)[1] + 1
    for operand, name in ((Operand.A, "a"), (Operand.B, "b"), (Operand.ADDEND, "addend")):
        d = regions[name]
        words_.append(encode(Opcode.LOAD, operand=operand, address=d.address,
                             stride=d.stride, transpose=int(d.transpose)))
    d = regions["result"]
    words_.append(encode(Opcode.STORE, address=d.address, stride=d.stride,
                         transpose=int(d.transpose)))
    add = draw(st.booleans())
    bits = draw(st.integers(2, config.accumulator_width)) if add else 0
    words_.append(encode(Opcode.GEMM, m=m, n=n, k=k, add=int(add), saturate_bits=bits))
    memory = np.zeros(base, dtype=np.int64)
    limit_a = 1 << (blocks[0] * config.block_width - 1)
    limit_b = 1 << (blocks[1] * config.block_width - 1)
    values = draw(st.lists(st.integers(-128, 127), min_size=base, max_size=base))
    memory[:] = values
    for name, (rows, cols), limit in (("a", (m, k), limit_a), ("b", (k, n), limit_b)):
        indices = regions[name].indices(rows, cols)
        memory[indices] = np.clip(memory[indices], -limit, limit - 1)
    precision = Precision(*(OperandPrecision(blocks[i], kept[i], Selection(dynamic[i]))
                            for i in (0, 1)))
    return config, words_, memory, regions, (m, n, k), precision, output_fields, bits


def gather(memory, descriptor, rows, cols):
    """The matrix at ``descriptor``, element by element (docs/ISA.md, *Memory*)."""
    out = np.zeros((rows, cols), dtype=np.int64)
    for i in range(rows):
        for j in range(cols):
            index = (descriptor.address + j * descriptor.stride + i if descriptor.transpose
                     else descriptor.address + i * descriptor.stride + j)
            out[i, j] = memory[index]
    return out


@settings(max_examples=80, deadline=None)
@given(gemm_programs())
def test_gemm_reads_computes_and_writes(program):
    config, program_words, memory, regions, (m, n, k), precision, output, bits = program
    machine = Machine(config, memory=memory.copy(), keep_traces=True)
    machine.run(program_words)
    assert not machine.error and machine.gemms == 1
    a = gather(memory, regions["a"], m, k)
    b = gather(memory, regions["b"], k, n)
    expected = gemm(a, b, config, precision)
    if precision.a.exact and precision.b.exact:
        np.testing.assert_array_equal(expected, a @ b)
    if output["quantize"]:
        expected = output_operands(expected, config, machine.output)
    if bits:
        addend = gather(memory, regions["addend"], m, n)
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        expected = np.clip(addend + expected, low, high)
    np.testing.assert_array_equal(gather(machine.memory, regions["result"], m, n), expected)
    # Every other element of memory is untouched.
    written = set(regions["result"].indices(m, n).ravel().tolist())
    untouched = [i for i in range(len(memory)) if i not in written]
    np.testing.assert_array_equal(machine.memory[untouched], memory[untouched])
    trace, = machine.traces
    np.testing.assert_array_equal(trace.a, a)
    np.testing.assert_array_equal(trace.b, b)
    np.testing.assert_array_equal(trace.result, expected)
    assert (trace.addend is None) == (not bits)


def test_decode_only_machine_returns_plans_and_leaves_memory_alone():
    machine = Machine(TINY, memory_size=8, compute=False)
    machine.memory[:] = 1
    plans = [machine.step(word) for word in
             [encode(Opcode.LOAD, operand=Operand.A, address=2, stride=3, transpose=1),
              encode(Opcode.STORE, address=5, stride=1),
              encode(Opcode.GEMM, m=2, n=3, k=4),
              encode(Opcode.GEMM, m=0, n=3, k=4),
              encode(Opcode.LOAD, operand=Operand.ADDEND, address=1),
              encode(Opcode.GEMM, m=1, n=1, k=1, add=1, saturate_bits=9)]]
    assert plans[0] is plans[1] is plans[3] is plans[4] is None
    first, last = plans[2], plans[5]
    assert (first.index, first.m, first.n, first.k, first.add) == (0, 2, 3, 4, False)
    assert first.a == Descriptor(2, 3, True) and first.store == Descriptor(5, 1, False)
    assert first.addend is None
    assert first.reads() == [(Descriptor(2, 3, True), 2, 4), (Descriptor(), 4, 3)]
    assert first.writes() == (Descriptor(5, 1, False), 2, 3)
    assert (last.index, last.add, last.saturate_bits, last.addend) == \
        (1, True, 9, Descriptor(1, 0, False))
    assert len(last.reads()) == 3
    assert machine.memory.tolist() == [1] * 8
    assert (machine.gemms, machine.invalid, machine.executed) == (2, 1, 6)


def test_memory_errors():
    """docs/ISA.md, *What the data mover checks*: the same messages on the golden
    backend."""
    machine = Machine(TINY, memory_size=12)
    with pytest.raises(MachineError, match=r"^GEMM 0: A: a 2 x 2 matrix at address 10, "
                                           r"stride 2 reaches element 13; memory has 12 "
                                           r"elements$"):
        machine.run([encode(Opcode.LOAD, operand=Operand.A, address=10, stride=2),
                     encode(Opcode.GEMM, m=2, n=2, k=2)])
    machine = Machine(TINY, memory_size=12)
    with pytest.raises(MachineError, match=r"^GEMM 0: B: a 2 x 2 matrix at address 9, "
                                           r"stride 2, transposed reaches element 12"):
        machine.run([encode(Opcode.LOAD, operand=Operand.B, address=9, stride=2,
                            transpose=1),
                     encode(Opcode.GEMM, m=2, n=2, k=2)])
    machine = Machine(TINY, memory_size=12)
    with pytest.raises(MachineError, match=r"^GEMM 0: result: a 2 x 2 result at address "
                                           r"11, stride 1 reaches element 13; memory has "
                                           r"12 elements$"):
        machine.run([encode(Opcode.STORE, address=11, stride=1),
                     encode(Opcode.GEMM, m=2, n=2, k=2)])
    machine = Machine(TINY, memory_size=12)
    machine.memory[0] = -77
    with pytest.raises(MachineError, match=r"^GEMM 0: a\[0, 0\] = -77: out of range for 1 "
                                           r"blocks of 4 bits; allowed -8 \.\. 7$"):
        machine.run([encode(Opcode.PRECISION, operand=0, blocks=1, kept=1),
                     encode(Opcode.STORE, address=4),
                     encode(Opcode.GEMM, m=1, n=1, k=1)])
    assert issubclass(MachineError, QforgeError)
