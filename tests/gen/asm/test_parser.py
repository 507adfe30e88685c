"""The parser (qforge.gen.asm.parser) and the instruction forms (qforge.gen.asm.syntax):
positional, name=value and flag operands, comments, labels."""

import pytest

from qforge.gen.asm import assemble
from qforge.sim.model.isa import Opcode, encode
from tests.gen.asm.shared import words_of


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
