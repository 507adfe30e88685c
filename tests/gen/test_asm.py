"""The assembler (qforge.gen.asm): syntax, expressions, symbols, data, errors with
line and column, the high-level blocks (chunk limits and, on a numpy reference of the
data mover, their results) and ``qforge asm``."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import qforge.gen
from qforge.gen.asm import (FIELDS, AsmError, BlockError, Program, assemble, assemble_file,
                            chunk_sizes, disassemble, gemm_fits, linear_backward_words,
                            linear_forward_words, matmul_words, sgd_update_words)
from qforge.gen.cli import main
from qforge.sim.model.spec import Config, load_preset
from qforge.sim.model.isa import Opcode, Operand, decode, encode

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
EXAMPLE = Path(qforge.gen.__file__).parent / "programs" / "example.qasm"

TINY = load_preset("tiny")
DEFAULT = load_preset("default")
#: A small array whose limits force splits of m, n and k at small sizes.
SMALL = Config(name="small", rows=2, cols=3, operand_width=8, block_width=4,
               block_multipliers=2, max_reduction_depth=12, output_width=8, buffer_depth=8)
SMALL_SKIPPING = SMALL.with_zero_skipping()
CONFIGS = [TINY, DEFAULT, SMALL, SMALL_SKIPPING, load_preset("sparse")]


def words_of(text, config=None):
    return list(assemble(text, config).words)


# ---- round trip --------------------------------------------------------------------------

@st.composite
def instruction_words(draw):
    opcode = draw(st.sampled_from(list(Opcode)))
    return encode(opcode, **{name: draw(st.integers(0, (1 << width) - 1))
                             for name, width in FIELDS[opcode].items()})


@FAST
@given(instruction_words())
def test_disassembly_assembles_back_to_the_word(word):
    text = disassemble(word)
    assert not text.startswith(".inst")
    assert assemble(text).words == (word,)


@FAST
@given(st.integers(0, (1 << 64) - 1))
def test_any_word_round_trips(word):
    """Words that are not instructions come back as ``.inst`` and still round trip."""
    assert assemble(disassemble(word)).words == (word,)


# ---- syntax ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, opcode, fields", [
    ("nop", Opcode.NOP, {}),
    ("FENCE", Opcode.FENCE, {}),
    ("precision a, blocks=4, kept=2, dynamic", Opcode.PRECISION,
     {"operand": 0, "blocks": 4, "kept": 2, "dynamic": 1}),
    ("Precision B, 3, 1, VRQ", Opcode.PRECISION,
     {"operand": 1, "blocks": 3, "kept": 1, "vrq": 1}),
    ("precision operand=b, blocks=2, kept=2, dynamic=1", Opcode.PRECISION,
     {"operand": 1, "blocks": 2, "kept": 2, "dynamic": 1}),
    ("output quantize, shift=6, rounding=stochastic, relu", Opcode.OUTPUT,
     {"quantize": 1, "shift": 6, "rounding": 2, "relu": 1}),
    ("output quantize, rounding=Truncate, wide", Opcode.OUTPUT,
     {"quantize": 1, "rounding": 1, "wide": 1}),
    ("output quantize=1, rounding=2, vrq, exponent=5", Opcode.OUTPUT,
     {"quantize": 1, "rounding": 2, "vrq": 1, "exponent": 5}),
    ("output", Opcode.OUTPUT, {}),
    ("seed 0x1234, tensor=3", Opcode.SEED, {"seed": 0x1234, "tensor": 3}),
    ("seed 7, 9", Opcode.SEED, {"seed": 7, "tensor": 9}),
    ("gemm 32, 64, 65", Opcode.GEMM, {"m": 32, "n": 64, "k": 65}),
    ("gemm m=32, n=64, k=65, add, saturate_bits=16", Opcode.GEMM,
     {"m": 32, "n": 64, "k": 65, "add": 1, "saturate_bits": 16}),
    ("gemm k=1, m=2, n=3, skip_zeros", Opcode.GEMM, {"m": 2, "n": 3, "k": 1, "skip_zeros": 1}),
    ("load a, 100, stride=65", Opcode.LOAD, {"operand": 0, "address": 100, "stride": 65}),
    ("load addend, 5, 7, transpose", Opcode.LOAD,
     {"operand": 2, "address": 5, "stride": 7, "transpose": 1}),
    ("LOAD 1, address=5, stride=0", Opcode.LOAD, {"operand": 1, "address": 5, "stride": 0}),
    ("store 64, stride=64, transpose", Opcode.STORE,
     {"address": 64, "stride": 64, "transpose": 1}),
])
def test_instruction_forms(text, opcode, fields):
    assert words_of(text + "   ; a comment") == [encode(opcode, **fields)]
    assert words_of(text + "   # another") == [encode(opcode, **fields)]


def test_comments_blank_lines_and_labels_on_their_own():
    program = assemble("; header\n\n   # more\nstart:\n  nop ; x\nend: fence\n")
    assert program.words == (encode(Opcode.NOP), encode(Opcode.FENCE))
    assert program.lines == (5, 6)
    assert program.symbols == {"start": 0, "end": 1}


def test_operand_names_win_over_symbols_in_their_position():
    """``a``/``b``/``addend`` in the operand position and flag names are keywords;
    elsewhere a symbol of the same name is its value."""
    program = assemble("load a, a, stride=b\n.data\nb: .zero 3\na: .zero 2")
    assert program.words == (encode(Opcode.LOAD, operand=0, address=3, stride=0),)


# ---- expressions -------------------------------------------------------------------------

@pytest.mark.parametrize("expression, value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("-7 / 2", -4), ("7 / 2", 3), ("7 % 3", 1),
    ("-7 % 3", 2), ("1 << 4 + 1", 32), ("256 >> 2 * 2", 16), ("0x10 + 0b101", 21),
    ("0XfF", 255), ("0o17", 15), ("- -3", 3), ("~0", -1), ("10 - 2 - 3", 5),
    ("100 / 10 / 5", 2), ("1_000", 1000), ("2 * -3", -6), ("(1 << 24) - 1", 16777215),
    ("+(4)", 4), ("((((2))))", 2), ("007", 7),
])
def test_expressions(expression, value):
    assert assemble(f".const X = {expression}").symbols["X"] == value


def test_constants_use_earlier_and_later_names():
    program = assemble(".const A = 3\n.const B = A * C\n.const C = 1 + A\nseed B, tensor=A")
    assert program.symbols == {"A": 3, "B": 12, "C": 4}
    assert program.words == (encode(Opcode.SEED, seed=12, tensor=3),)


def test_symbols_are_case_sensitive_and_mnemonics_are_not():
    program = assemble(".const n = 1\n.const N = 2\nGeMm n, N, n + N")
    assert program.words == (encode(Opcode.GEMM, m=1, n=2, k=3),)


# ---- labels and data ---------------------------------------------------------------------

def test_forward_references_to_text_and_data_labels():
    program = assemble("""
        .const LENGTH = end - start
    start:
        seed end, tensor=LENGTH
        load a, table, stride=COLS
        matmul a=table, b=table + 6, c=out, m=2, n=2, k=3
    end:
        .const COLS = 3
    .data
    table: .word 1, 2, 3, 4, 5, 6
           .zero 6
    out:   .zero 4
    """, DEFAULT)
    symbols = program.symbols
    assert symbols["start"] == 0
    assert symbols["end"] == len(program.words) == 2 + 4
    assert symbols["LENGTH"] == 6
    assert (symbols["table"], symbols["out"]) == (0, 12)
    assert program.words[0] == encode(Opcode.SEED, seed=6, tensor=6)
    assert program.words[1] == encode(Opcode.LOAD, operand=0, address=0, stride=3)


def test_data_section_addresses_and_initial_values():
    program = assemble("""
    .data
    first:  .zero 4
    second: .word 7, -1, 1 << 10
    empty:  .zero 0
    third:  .word 5
    .text
        nop
    .data
    last:   .zero 2
    after:
    """)
    symbols = program.symbols
    assert [symbols[name] for name in ("first", "second", "empty", "third", "last",
                                       "after")] == [0, 4, 7, 7, 8, 10]
    assert program.memory_size == 10
    assert program.data == ((4, (7, -1, 1024)), (7, (5,)))
    assert program.memory() == [0, 0, 0, 0, 7, -1, 1024, 5, 0, 0]
    assert program.words == (encode(Opcode.NOP),)


def test_program_bytes_and_listing():
    program = assemble("nop\ngemm 1, 2, 3  ; go\n.data\nx: .word 9", TINY)
    assert isinstance(program, Program)
    assert program.to_bytes() == b"".join(w.to_bytes(8, "little") for w in program.words)
    listing = program.listing().splitlines()
    assert listing[1].split()[:2] == ["1", f"{program.words[1]:016x}"]
    assert "gemm 1, 2, 3" in listing[1] and "go" in listing[1]
    assert any("symbol x = 0" in line for line in listing)


# ---- errors ------------------------------------------------------------------------------

ERRORS = [
    # (source, line, column, message fragment)
    ("nop\ngemn 1, 2, 3", 2, 1, "unknown mnemonic 'gemn' (did you mean 'gemm'?)"),
    ("  gemm 1, 2, 3, kk=4", 1, 17, "gemm has no field 'kk'"),
    ("gemm 1, 2", 1, 1, "gemm: missing operand k"),
    ("load a, 5", 1, 1, "load: missing operand stride"),
    ("gemm 1, 2, 3, add", 1, 1, "missing operand saturate_bits (required with add)"),
    ("gemm 70000, 1, 1", 1, 6, "GEMM.m = 70000: the field has 16 bits (0 .. 65535)"),
    ("seed -1", 1, 6, "SEED.seed = -1: the field has 32 bits"),
    ("store 0, stride=1 << 24", 1, 17, "STORE.stride = 16777216"),
    ("\n\nload a, nowhere, stride=1", 3, 9, "undefined name 'nowhere'"),
    ("x: nop\n  x: nop", 2, 3, "'x' is already defined (as a label at line 1)"),
    (".const X = 1\n.const X = 2", 2, 8, "'X' is already defined (as a constant at line 1)"),
    (".const X = 1\nX: nop", 2, 1, "'X' is already defined"),
    (".const A = (1 + 2", 1, 18, "expected ')'"),
    (".const A = 1 +", 1, 15, "expected a value"),
    (".const A = 1 2", 1, 14, "unexpected '2'"),
    (".const A = 3 * / 2", 1, 16, "unexpected '/' in an expression"),
    ("gemm 1, 2, 3 $", 1, 14, "unexpected character '$'"),
    (".const A = 0x", 1, 12, "invalid number '0x'"),
    (".const A = 4 / (2 - 2)", 1, 14, "division by zero"),
    (".const A = 4 % 0", 1, 14, "division by zero"),
    (".const A = 1 << 1000", 1, 14, "shift count 1000"),
    ("gemm 1,, 2", 1, 8, "expected an operand"),
    ("gemm 1, 2, 3,", 1, 14, "expected an operand"),
    ("gemm 1, n=2, 3", 1, 14, "a positional operand after name=value operands"),
    ("gemm 1, 2, 3, 4", 1, 15, "too many positional operands"),
    ("gemm m=1, m=2, n=1, k=1", 1, 11, "field 'm' given twice"),
    ("precision c, blocks=1, kept=1", 1, 11, "operand = 'c': expected a, b or a number"),
    ("output rounding=round", 1, 17, "expected nearest, truncate, stochastic or a number"),
    (".zero 4", 1, 1, ".zero outside the .data section"),
    (".text\n.word 1", 2, 1, ".word outside the .data section"),
    (".data\n  x: gemm 1, 1, 1", 2, 6, "instruction 'gemm' in the .data section"),
    (".data\n.inst 0", 2, 1, ".inst outside the .text section"),
    (".data\n.zero -2", 2, 7, ".zero count -2: must be at least 0"),
    (".data\n.zero 1, 2", 2, 10, ".zero takes one count"),
    (".bss", 1, 1, "unknown directive '.bss'"),
    (".const 3 = 4", 1, 8, "expected a name after .const"),
    (".const A 4", 1, 10, "expected '='"),
    (".const A = B\n.const B = A", 2, 12, "circular definition: 'A' depends on itself"),
    ("matmul a=0, b=0, c=0, m=1, n=1, k=1", 1, 1, "matmul needs a hardware configuration"),
    ("= 3", 1, 1, "expected a label, mnemonic or directive"),
    (".inst 1 << 64", 1, 7, ".inst 18446744073709551616: a word is 0 .. 2**64 - 1"),
]


@pytest.mark.parametrize("source, line, column, fragment", ERRORS)
def test_error_line_column_and_message(source, line, column, fragment):
    with pytest.raises(AsmError) as info:
        assemble(source)
    check_error(info.value, source, line, column, fragment)


def check_error(error, source, line, column, fragment, name="<string>"):
    assert isinstance(error, ValueError)
    assert (error.source, error.line, error.column) == (name, line, column), str(error)
    headline, text, caret = str(error).splitlines()
    assert headline.startswith(f"{name}:{line}:{column}: error: "), headline
    assert fragment in headline, headline
    assert text == source.splitlines()[line - 1]
    assert caret == " " * (column - 1) + "^"


CONFIG_ERRORS = [
    # on TINY: R = C = P = 2, buffer_depth 256, max_reduction_depth 512
    ("matmul a=0, b=0, c=0, m=0, n=1, k=1", 1, 25, "matmul: m = 0: must be an integer of "
     "at least 1"),
    ("matmul a=0, b=-1, c=0, m=1, n=1, k=1", 1, 15, "matmul: b = -1"),
    ("matmul a=0, b=0, c=0, m=1, n=1, k=1, stride=3", 1, 38, "matmul has no operand 'stride'"),
    ("matmul 0, b=0, c=0, m=1, n=1, k=1", 1, 8, "matmul takes name=value operands"),
    ("matmul a=0, b=0, m=1, n=1, k=1", 1, 1, "matmul: missing operand c"),
    ("matmul a=0, b=0, c=0, m=1, n=1, k=1, skip_zeros", 1, 38,
     "skip_zeros needs a zero-skipping configuration"),
    ("matmul a=0, b=0, c=(1 << 24) - 100, m=600, n=1, k=1", 1, 20, "c: the sub-matrix at "
     "(512, 0) starts at element address 16777628, beyond the 24-bit address field"),
    ("linear_forward x=0, w=0, y=0, batch=2, inputs=0, outputs=2", 1, 47,
     "linear_forward: inputs = 0"),
    ("sgd_update w=0, x=0, dy=0, batch=600, inputs=4, outputs=4, shift=2, weight_bits=10, "
     "seed=1", 1, 34, "batch = 600: the update's GEMM has k = batch, which cannot be split"),
    ("sgd_update w=0, x=0, dy=0, batch=6, inputs=4, outputs=4, shift=2, weight_bits=30, "
     "seed=1", 1, 79, "weight_bits = 30: allowed 2 .. 25"),
    ("sgd_update w=0, x=0, dy=0, batch=6, inputs=4, outputs=4, shift=2, weight_bits=8", 1, 1,
     "sgd_update: missing operand seed"),
    ("x: matmul a=0, b=0, c=0, m=after, n=1, k=1\nafter:", 1, 4,
     "circular definition: the size of this matmul depends on a label after it"),
]


@pytest.mark.parametrize("source, line, column, fragment", CONFIG_ERRORS)
def test_block_errors(source, line, column, fragment):
    with pytest.raises(AsmError) as info:
        assemble(source, TINY)
    check_error(info.value, source, line, column, fragment)


@pytest.mark.parametrize("source, column, fragment", [
    ("gemm 1, 1, 600", 12, "GEMM.k = 600"),
    ("gemm 1, 600, 1", 9, "GEMM.n = 600"),
    ("precision a, blocks=3, kept=1", 21, "PRECISION.blocks = 3"),
    ("output quantize, shift=30", 24, "OUTPUT.shift = 30"),
    ("gemm 2, 2, 2, add, saturate_bits=40", 34, "GEMM.saturate_bits = 40"),
    ("load 3, 0, stride=0", 6, "LOAD.operand = 3"),
    (".inst 0xff", 1, "opcode 0xff"),
])
def test_instruction_errors_of_the_configuration(source, column, fragment):
    pytest.importorskip("qforge.sim.model.machine")
    assert assemble(source).words       # encodable: only the configuration rejects it
    with pytest.raises(AsmError) as info:
        assemble(source, TINY)
    check_error(info.value, source, 1, column, fragment)
    assert "not valid on 'tiny'" in info.value.message


def test_error_source_and_tabs():
    with pytest.raises(AsmError) as info:
        assemble("\tgemm\t1,\tbad, 2", source="prog.qasm")
    error = info.value
    assert (error.source, error.line, error.column) == ("prog.qasm", 1, 10)
    assert str(error).splitlines()[2] == "\t    \t  \t^"


# ---- blocks: chunk limits ----------------------------------------------------------------

def fits(config, m, n, k):
    """The GEMM size rules of docs/ISA.md, written out again."""
    rows, cols, width = config.rows, config.cols, config.block_multipliers
    tiles = 1 << config.tiles_field_width
    words = -(-k // width)
    ok = (1 <= m <= tiles * rows and 1 <= n <= tiles * cols
          and 1 <= k <= config.max_reduction_depth
          and -(-m // rows) * words <= config.buffer_depth)
    if config.zero_skipping:
        return ok and -(-(-(-n // cols)) // rows) * words <= config.pe_buffer_depth
    return ok and -(-n // cols) * words <= config.buffer_depth


def gemms(words):
    return [fields for opcode, fields in map(decode, words) if opcode == Opcode.GEMM]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(m=st.integers(1, 100_000), n=st.integers(1, 100_000), k=st.integers(1, 10_000))
def test_chunk_sizes_fit_and_are_greedy(config, m, n, k):
    mc, nc, kc = chunk_sizes(config, m, n, k)
    width = config.block_multipliers
    # every GEMM of the tiling (whole chunks and the remainders) fits
    for mm in {mc, m % mc or mc}:
        for nn in {nc, n % nc or nc}:
            for kk in {kc, k % kc or kc}:
                assert fits(config, mm, nn, kk) and gemm_fits(config, mm, nn, kk)
    # k whole when one GEMM takes it, else the most whole P-words that fit
    if fits(config, 1, 1, k):
        assert kc == k
    else:
        assert kc % width == 0 and not fits(config, 1, 1, kc + width)
    # then the largest m and n chunks
    assert mc == m or not fits(config, mc + 1, 1, kc)
    assert nc == n or not fits(config, 1, nc + 1, kc)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
@settings(max_examples=15, deadline=None, database=None, derandomize=True)
@given(m=st.integers(1, 24), n=st.integers(1, 24), k=st.integers(1, 600))
def test_matmul_words_tile_the_product(config, m, n, k):
    words = matmul_words(config, a=0, b=0, c=0, m=m, n=n, k=k)
    machine = pytest.importorskip("qforge.sim.model.machine")
    for word in words:
        assert machine.instruction_error(config, word) is None, disassemble(word)
    parts = gemms(words)
    mc, nc, kc = chunk_sizes(config, m, n, k)
    counts = (-(-m // mc), -(-n // nc), -(-k // kc))
    assert len(parts) == counts[0] * counts[1] * counts[2]
    assert sum(p["m"] * p["n"] * p["k"] for p in parts) == m * n * k
    # the first k chunk of each C block is a plain GEMM, the later ones accumulate
    assert all(p["add"] == (index % counts[2] != 0)
               and p["saturate_bits"] == (config.accumulator_width if p["add"] else 0)
               for index, p in enumerate(parts))


def test_chunk_sizes_on_the_presets():
    assert chunk_sizes(TINY, 5, 3, 700) == (2, 2, 512)
    assert chunk_sizes(TINY, 64, 64, 64) == (16, 16, 64)
    assert chunk_sizes(DEFAULT, 64, 64, 64) == (64, 64, 64)
    assert chunk_sizes(DEFAULT, 1000, 1000, 2048) == (8, 8, 2048)
    assert chunk_sizes(DEFAULT, 1000, 1000, 3000) == (8, 8, 2048)
    assert chunk_sizes(DEFAULT, 1000, 1000, 256) == (64, 64, 256)
    assert chunk_sizes(SMALL, 9, 9, 40) == (2, 3, 12)


# ---- blocks: semantics on a numpy data mover ---------------------------------------------

def execute(words, memory):
    """A reference of docs/ISA.md's memory side and integer GEMM: descriptors, raw
    accumulators (or ``quantize`` with ``shift = 0``, which is the identity),
    ``add`` with saturation. No precision modes: exact integer math."""
    loads = {operand: (0, 0, 0) for operand in Operand}
    store = (0, 0, 0)
    output = {"quantize": 0}

    def indices(descriptor, rows, cols):
        address, stride, transpose = descriptor
        i, j = np.indices((rows, cols))
        if transpose:
            i, j = j, i
        return address + i * stride + j

    for word in words:
        opcode, fields = decode(word)
        if opcode == Opcode.LOAD:
            loads[Operand(fields["operand"])] = (fields["address"], fields["stride"],
                                                  fields["transpose"])
        elif opcode == Opcode.STORE:
            store = (fields["address"], fields["stride"], fields["transpose"])
        elif opcode == Opcode.OUTPUT:
            output = fields
        elif opcode == Opcode.GEMM:
            m, n, k = fields["m"], fields["n"], fields["k"]
            a = memory[indices(loads[Operand.A], m, k)]
            b = memory[indices(loads[Operand.B], k, n)]
            value = a @ b
            if output["quantize"]:
                assert output["shift"] == 0 and output["wide"]
            if fields["add"]:
                bits = fields["saturate_bits"]
                value = np.clip(memory[indices(loads[Operand.ADDEND], m, n)] + value,
                                -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            memory[indices(store, m, n)] = value
    return memory


def run_matmul(config, rng, m, n, k, *, transpose_a=False, transpose_b=False, pad=0):
    """Lay out A, B and C with row padding ``pad`` and random bytes around, run the
    matmul block and return (memory before, memory after, expected C, C's indices)."""
    a_rows, a_cols = (k, m) if transpose_a else (m, k)
    b_rows, b_cols = (n, k) if transpose_b else (k, n)
    a_stride, b_stride, c_stride = a_cols + pad, b_cols + pad, n + pad
    a_at, b_at = 3, 3 + a_rows * a_stride + 5
    c_at = b_at + b_rows * b_stride + 7
    memory = rng.integers(-128, 128, size=c_at + m * c_stride + 11).astype(np.int64)
    stored_a = memory[a_at + np.arange(a_rows)[:, None] * a_stride + np.arange(a_cols)]
    stored_b = memory[b_at + np.arange(b_rows)[:, None] * b_stride + np.arange(b_cols)]
    a = stored_a.T if transpose_a else stored_a
    b = stored_b.T if transpose_b else stored_b
    words = matmul_words(config, a=a_at, b=b_at, c=c_at, m=m, n=n, k=k,
                         a_stride=a_stride, b_stride=b_stride, c_stride=c_stride,
                         transpose_a=transpose_a, transpose_b=transpose_b)
    c_indices = c_at + np.arange(m)[:, None] * c_stride + np.arange(n)
    before = memory.copy()
    return before, execute(words, memory), a @ b, c_indices


@pytest.mark.parametrize("config, m, n, k", [
    (TINY, 5, 3, 700),        # k split 512 + 188, m and n in tiles of 2
    (TINY, 9, 7, 16),
    (DEFAULT, 20, 17, 40),
    (SMALL, 7, 8, 40),        # k in 4 chunks of up to 12
    (SMALL_SKIPPING, 5, 13, 25),
])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False),
                                                      (False, True), (True, True)])
def test_matmul_computes_the_product(config, m, n, k, transpose_a, transpose_b):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    for pad in (0, 3):
        before, after, expected, c_indices = run_matmul(
            config, rng, m, n, k, transpose_a=transpose_a, transpose_b=transpose_b, pad=pad)
        assert np.array_equal(after[c_indices], expected)
        untouched = np.ones(len(before), bool)
        untouched[c_indices.ravel()] = False
        assert np.array_equal(after[untouched], before[untouched])


def test_matmul_on_the_golden_machine():
    """The same k-split, transposed product on qforge.sim.model.machine.Machine (exact mode)."""
    machine_module = pytest.importorskip("qforge.sim.model.machine")
    rng = np.random.default_rng(3)
    before, after, expected, c_indices = run_matmul(TINY, rng, 5, 3, 700, transpose_a=True,
                                                    pad=2)
    words = matmul_words(TINY, a=3, b=3 + 700 * 7 + 5, c=int(c_indices[0, 0]), m=5, n=3,
                         k=700, a_stride=7, b_stride=5, c_stride=5, transpose_a=True)
    machine = machine_module.Machine(TINY, memory=before.copy())
    machine.run(words)
    assert not machine.error
    assert np.array_equal(machine.memory, after)
    assert np.array_equal(machine.memory[c_indices], expected)


def test_matmul_skip_zeros_on_a_zero_skipping_array():
    words = matmul_words(SMALL_SKIPPING, a=0, b=0, c=0, m=5, n=13, k=25, skip_zeros=True)
    assert all(part["skip_zeros"] for part in gemms(words))


def test_matmul_through_the_assembler_matches_the_function():
    program = assemble(""".const M = 5
        matmul a=x, b=y, c=z, m=M, n=3, k=700, a_stride=700, transpose_b, b_stride=700
    .data
    x: .zero M * 700
    y: .zero 3 * 700
    z: .zero M * 3""", TINY)
    assert list(program.words) == matmul_words(TINY, a=0, b=3500, c=5600, m=5, n=3, k=700,
                                               transpose_b=True)
    assert set(program.lines) == {2}


def layer(config, rng, batch, inputs, outputs):
    x_at, w_at = 0, batch * inputs
    dy_at = w_at + inputs * outputs
    out_at = dy_at + batch * outputs
    memory = rng.integers(-128, 128, size=out_at + 2 * batch * inputs + inputs * outputs)
    memory = memory.astype(np.int64)
    x = memory[x_at:w_at].reshape(batch, inputs).copy()
    w = memory[w_at:dy_at].reshape(inputs, outputs).copy()
    dy = memory[dy_at:out_at].reshape(batch, outputs).copy()
    return memory, (x_at, w_at, dy_at, out_at), (x, w, dy)


@pytest.mark.parametrize("config", [TINY, SMALL, SMALL_SKIPPING], ids=lambda c: c.name)
def test_linear_forward_and_backward(config):
    rng = np.random.default_rng(5)
    batch, inputs, outputs = 6, 11, 7
    memory, (x_at, w_at, dy_at, out_at), (x, w, dy) = layer(config, rng, batch, inputs,
                                                            outputs)
    y_at = out_at
    words = linear_forward_words(config, x=x_at, w=w_at, y=y_at, batch=batch, inputs=inputs,
                                 outputs=outputs)
    after = execute(words, memory.copy())
    assert np.array_equal(after[y_at:y_at + batch * outputs].reshape(batch, outputs), x @ w)

    dx_at, dw_at = out_at, out_at + batch * inputs
    for with_dx in (True, False):
        words = linear_backward_words(config, x=x_at, w=w_at, dy=dy_at, dw=dw_at,
                                      dx=dx_at if with_dx else None, batch=batch,
                                      inputs=inputs, outputs=outputs)
        after = execute(words, memory.copy())
        dw = after[dw_at:dw_at + inputs * outputs].reshape(inputs, outputs)
        assert np.array_equal(dw, x.T @ dy)
        dx = after[dx_at:dx_at + batch * inputs].reshape(batch, inputs)
        assert np.array_equal(dx, dy @ w.T) == with_dx


@pytest.mark.parametrize("config", [TINY, SMALL], ids=lambda c: c.name)
def test_sgd_update(config):
    """With shift 0 the rounding is exact: W <- clamp(W + x^T @ dy, weight_bits)."""
    rng = np.random.default_rng(9)
    batch, inputs, outputs, bits = 12, 9, 8, 12
    memory, (x_at, w_at, dy_at, _), (x, w, dy) = layer(config, rng, batch, inputs, outputs)
    words = sgd_update_words(config, w=w_at, x=x_at, dy=dy_at, batch=batch, inputs=inputs,
                             outputs=outputs, shift=0, weight_bits=bits, seed=77, tensor=4)
    assert words[:2] == [encode(Opcode.SEED, seed=77, tensor=4),
                         encode(Opcode.OUTPUT, quantize=1, wide=1, rounding=2, shift=0)]
    parts = gemms(words)
    assert (len(parts) > 1) == (config is SMALL)
    assert all(p["add"] and p["saturate_bits"] == bits and p["k"] == batch for p in parts)
    after = execute(words, memory.copy())
    expected = np.clip(w + x.T @ dy, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    assert (expected != w + x.T @ dy).any()          # some weights saturate
    assert np.array_equal(after[w_at:dy_at].reshape(inputs, outputs), expected)


def test_block_functions_raise_block_errors():
    with pytest.raises(BlockError) as info:
        sgd_update_words(SMALL, w=0, x=0, dy=0, batch=13, inputs=2, outputs=2, shift=1,
                         weight_bits=8, seed=1)
    assert info.value.operand == "batch"
    with pytest.raises(BlockError) as info:
        linear_backward_words(TINY, x=-3, w=0, dy=0, dw=0, batch=1, inputs=1, outputs=1)
    assert info.value.operand == "x" and str(info.value).startswith("x = -3")
    with pytest.raises(BlockError, match="needs a hardware configuration"):
        matmul_words(None, a=0, b=0, c=0, m=1, n=1, k=1)


def test_example_program_assembles():
    pytest.importorskip("qforge.sim.model.machine")
    program = assemble_file(EXAMPLE, DEFAULT)
    assert program.symbols["STEP_WORDS"] == len(program.words)
    opcodes = [decode(word)[0] for word in program.words]
    assert opcodes.count(Opcode.GEMM) >= 4 and opcodes[-1] == Opcode.FENCE
    assert program.memory_size > program.symbols["dw"]


# ---- the command line --------------------------------------------------------------------

def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_help_explains_the_language(capsys):
    with pytest.raises(SystemExit) as info:
        main(["asm", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "docs/ISA.md" in out and ".const" in out and "matmul" in out


def test_cli_listing_hex_and_binary(capsys, tmp_path):
    code, out, _ = run(capsys, "asm", EXAMPLE)
    program = assemble_file(EXAMPLE, DEFAULT)
    assert code == 0 and len(out.splitlines()) > len(program.words)

    source = tmp_path / "prog.qasm"
    source.write_text("gemm 2, 2, 2\nfence\n")
    code, out, _ = run(capsys, "asm", source, "--preset", "tiny", "--hex")
    assert code == 0
    assert out.split() == [f"{word:016x}" for word in words_of("gemm 2, 2, 2\nfence")]

    binary = tmp_path / "prog.bin"
    code, out, err = run(capsys, "asm", source, "-o", binary)
    assert code == 0 and out == "" and "wrote 2 words" in err
    assert binary.read_bytes() == assemble("gemm 2, 2, 2\nfence").to_bytes()
    code, out, _ = run(capsys, "asm", source, "-o", binary, "--listing")
    assert code == 0 and "gemm 2, 2, 2" in out


def test_cli_errors_exit_2_with_line_and_column(capsys, tmp_path):
    source = tmp_path / "bad.qasm"
    source.write_text("nop\n  gemm 1, 1, 600\n")
    code, out, err = run(capsys, "asm", source, "--preset", "tiny")
    lines = err.splitlines()
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(lines) == 3 and lines[0].startswith(f"{source}:2:")
    assert ": error: " in lines[0] and lines[1] == "  gemm 1, 1, 600"

    source.write_text("nop\ngemm 1, 1, k\n")
    code, _, err = run(capsys, "asm", source)
    assert code == 2 and err.splitlines()[0] == f"{source}:2:12: error: undefined name 'k'"

    code, _, err = run(capsys, "asm", tmp_path / "missing.qasm")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such file" in err
