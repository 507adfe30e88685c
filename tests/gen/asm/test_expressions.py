"""Expressions (qforge.gen.asm.expressions, numbers of qforge.gen.asm.lexer): precedence,
number forms, constants defined before or after their use, case."""

import pytest

from qforge.gen.asm import assemble
from qforge.sim.model.isa import Opcode, encode


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
