"""Pass 2 of the assembler (qforge.gen.asm.assembler): forward references to text and data
labels, the data section, blocks through the assembler, the example program."""

import pytest

from qforge.gen.asm import assemble, assemble_file, matmul_words
from qforge.sim.model.errors import InputError
from qforge.sim.model.isa import Opcode, decode, encode
from tests.gen.asm.shared import DEFAULT, EXAMPLE, TINY


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
    assert program.memory().tolist() == [0, 0, 0, 0, 7, -1, 1024, 5, 0, 0]
    assert program.words == (encode(Opcode.NOP),)


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


def test_example_program_assembles():
    program = assemble_file(EXAMPLE, DEFAULT)
    assert program.symbols["STEP_WORDS"] == len(program.words)
    opcodes = [decode(word)[0] for word in program.words]
    assert opcodes.count(Opcode.GEMM) >= 4 and opcodes[-1] == Opcode.FENCE
    assert program.memory_size > program.symbols["dw"]


@pytest.mark.parametrize("text, config, message", [
    (5, None, "assemble: text = 5: must be a str (the assembly source), not int"),
    (b"nop", None, "assemble: text = b'nop': must be a str (the assembly source), not bytes"),
    ("nop", "tiny", "assemble: config = 'tiny': must be a Config (qforge.api.load_config) "
                    "or None, not str"),
])
def test_assemble_refuses_what_is_not_text_or_a_config(text, config, message):
    with pytest.raises(InputError) as raised:
        assemble(text, config)
    assert str(raised.value) == message
