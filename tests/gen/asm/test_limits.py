"""Bounded resources of the assembler (qforge.gen.asm.limits) through the public CLI:
deep and long expressions parse without recursion, and every oversize value, data
section, block, program and chain of forward references is one line:column error, at
once (exit status 2, no traceback)."""

import time

import pytest

import qforge.gen.asm.assembler
import qforge.gen.asm.parser
from qforge.gen.asm import assemble, matmul_words
from qforge.gen.asm.errors import BlockError
from qforge.gen.asm.limits import (DATA_LIMIT, ELEMENT_RANGE, MAX_BLOCK_GEMMS,
                                   MAX_REFERENCE_DEPTH, VALUE_LIMIT)
from qforge.sim.model.isa import Opcode
from tests.cli import run_qforge
from tests.gen.asm.shared import TINY

WIDEST = "outside -2**64 .. 2**64 (the widest value the ISA holds is a 64-bit instruction word)"


def qasm(tmp_path, text, name="prog.qasm"):
    path = tmp_path / name
    path.write_text(text)
    return path


def failed(capsys, path, *argv, command="asm"):
    """The headline of ``qforge COMMAND PATH ARGV`` failing with one located error."""
    status, out, err = run_qforge(capsys, command, path, *argv)
    assert status == 2 and out == "", err
    headline, *rest = err.splitlines()
    assert len(rest) == 2 and rest[1].rstrip().endswith("^")   # the line and its caret
    return headline


def test_the_bounds_are_the_isa_s():
    assert VALUE_LIMIT == 2**64 and ELEMENT_RANGE == (-2**63, 2**63 - 1)
    assert DATA_LIMIT == 2**24 and MAX_REFERENCE_DEPTH == 64


@pytest.mark.parametrize("expression, value", [
    ("(" * 300 + "7" + ")" * 300, 7),               # recursed past 200 parentheses
    ("+".join(["1"] * 10_000), 10_000),              # a 10,000-term flat sum
    ("-" * 1001 + "5", -5),                          # 1001 unary minuses
    ("~" * 2000 + "5", 5),
    ("-(" * 500 + "3" + ")" * 500, 3),
    ("(1 << 64) - 1", 2**64 - 1),                    # the bound itself is a value
])
def test_deep_and_long_expressions_assemble(capsys, tmp_path, expression, value):
    path = qasm(tmp_path, f".const X = {expression}\n")
    start = time.perf_counter()
    status, out, err = run_qforge(capsys, "asm", path)
    assert time.perf_counter() - start < 2
    assert status == 0 and err == "" and f"; symbol X = {value}" in out


def test_constant_squaring_fails_at_the_first_oversize_value(capsys, tmp_path):
    lines = [".const A0 = 3"] + [f".const A{i + 1} = A{i} * A{i}" for i in range(40)]
    path = qasm(tmp_path, "\n".join(lines) + "\n")
    assert failed(capsys, path) == (f"{path}:7:16: error: '*' gives {3**64}, {WIDEST}")


@pytest.mark.parametrize("expression, column, message", [
    ("1 << 65", 14, f"'<<' gives {2**65}, {WIDEST}"),
    ("-(1 << 64) - 1", 23, f"'-' gives {-2**64 - 1}, {WIDEST}"),
    ("~(1 << 64)", 12, f"'~' gives {-2**64 - 1}, {WIDEST}"),
    ("18446744073709551617", 12, f"number '18446744073709551617' is {WIDEST}"),
    ("9" * 5000, 12, "number '9999999999999999999999999999999999999...' is too long "
                     "(more than 100 digits)"),
])
def test_oversize_values_are_errors_at_their_operator(capsys, tmp_path, expression, column,
                                                      message):
    path = qasm(tmp_path, f".const X = {expression}\n")
    assert failed(capsys, path) == f"{path}:1:{column}: error: {message}"


@pytest.mark.parametrize("value", [2**64, -2**63 - 1, 2**63])
def test_word_values_are_host_memory_elements(capsys, tmp_path, value):
    path = qasm(tmp_path, f"nop\n.data\nx:  .word 0, {value}\n")
    # qforge run crashed with an OverflowError converting the memory to int64
    assert failed(capsys, path, command="run") == (
        f"{path}:3:14: error: .word {value}: a host memory element is "
        "-9223372036854775808 .. 9223372036854775807 (-2**63 .. 2**63 - 1)")
    edge = assemble(f".data\n.word {-2**63}, {2**63 - 1}")
    assert edge.data == ((0, (-2**63, 2**63 - 1)),)


def test_the_data_section_is_bounded_before_it_is_allocated(capsys, tmp_path):
    path = qasm(tmp_path, "nop\n.data\nx:  .zero 1 << 40\n")
    # qforge run crashed with a MemoryError allocating 2**40 elements
    assert failed(capsys, path, command="run") == (
        f"{path}:3:11: error: the data section reaches 1099511627776 elements with this "
        ".zero (1099511627776 from element address 0), more than the 16777216 (2**24) "
        "that the 24-bit LOAD/STORE address field reaches (0 .. 16777215)")

    path = qasm(tmp_path, ".data\nx: .zero 1 << 24\ny: .word 1, 2\n")
    assert failed(capsys, path) == (
        f"{path}:3:4: error: the data section reaches 16777218 elements with this .word "
        "(2 from element address 16777216), more than the 16777216 (2**24) that the "
        "24-bit LOAD/STORE address field reaches (0 .. 16777215)")
    assert assemble(".data\nx: .zero 1 << 24").memory_size == DATA_LIMIT


def test_a_huge_matmul_fails_at_once(capsys, tmp_path):
    path = qasm(tmp_path, "matmul a=0, b=0, c=0, m=16000000, n=16000000, k=4\n")
    start = time.perf_counter()
    headline = failed(capsys, path)
    assert time.perf_counter() - start < 1
    assert headline == (f"{path}:1:10: error: matmul: a: the sub-matrix at (15998976, 0) "
                        "starts at element address 63995904, beyond the 24-bit address "
                        "field (0 .. 16777215)")


def test_a_block_of_too_many_gemms_fails_before_expanding(capsys, tmp_path):
    path = qasm(tmp_path, "matmul a=0, b=0, c=0, m=16000000, n=16000000, k=16000000, "
                          "a_stride=0, b_stride=0, c_stride=0\n")
    start = time.perf_counter()
    headline = failed(capsys, path)
    assert time.perf_counter() - start < 1
    assert headline == (f"{path}:1:1: error: matmul: m = 16000000, n = 16000000, "
                        "k = 16000000: the tiling needs 31252000000000000 GEMMs (chunks of "
                        "8 x 8 x 2048 on 'default'), more than the 16384 one block may "
                        "expand to (split it into smaller blocks)")


def test_the_python_blocks_check_addresses_before_expanding():
    start = time.perf_counter()
    with pytest.raises(BlockError, match=r"^c: the sub-matrix at \(\d+, 0\) starts at "
                       r"element address \d+, beyond the 24-bit address field") as info:
        matmul_words(TINY, a=0, b=0, c=0, m=2**21, n=16, k=1, a_stride=0, b_stride=0)
    assert info.value.operand == "c" and time.perf_counter() - start < 1
    # tiny, k = 1: words of P = 1, so m chunks of R x min(buffers.depth / 1, 512 tiles)
    # = 2 x 512 = 1024 rows: m = 4096 is 4 GEMMs, m = 3072 is 3.
    with pytest.raises(BlockError, match=r"needs 4 GEMMs \(chunks of 1024 x 16 x 1 on 'tiny'\)"
                                         r", more than the 3 one block may expand to"):
        matmul_words(TINY, a=0, b=0, c=0, m=4096, n=16, k=1, max_gemms=3)
    words = matmul_words(TINY, a=0, b=0, c=0, m=3072, n=16, k=1, max_gemms=3)
    assert [word & 0xFF for word in words].count(Opcode.GEMM) == 3
    assert MAX_BLOCK_GEMMS == 2**14


def test_forward_references_nest_at_most_64_deep(capsys, tmp_path):
    lines = [f".const C{i} = C{i + 1} + 1" for i in range(200)] + [".const C200 = 0"]
    path = qasm(tmp_path, "\n".join(lines) + "\n")
    assert failed(capsys, path) == (
        f"{path}:65:14: error: 'C65': forward references nest too deeply (more than 64 "
        "names, each needing a name defined after it; define names before they are used)")
    lines = [f".const C{i} = C{i + 1} + 1" for i in range(64)] + [".const C64 = 0"]
    assert assemble("\n".join(lines)).symbols["C0"] == 64


def test_programs_are_bounded(capsys, tmp_path, monkeypatch):
    # The bound (2**18 words) takes seconds to reach; a small one tests the same checks.
    monkeypatch.setattr(qforge.gen.asm.parser, "MAX_PROGRAM_WORDS", 3)
    monkeypatch.setattr(qforge.gen.asm.assembler, "MAX_PROGRAM_WORDS", 3)
    path = qasm(tmp_path, "nop\nnop\nfence\nnop\n")
    assert failed(capsys, path) == (f"{path}:4:1: error: more than 3 instructions: a "
                                    "program may have at most that many words")
    path = qasm(tmp_path, "nop\nmatmul a=0, b=64, c=128, m=16, n=16, k=4\n")
    assert failed(capsys, path) == (f"{path}:2:1: error: the program reaches 5 instruction "
                                    "words here, more than the 3 a program may have")


@pytest.mark.parametrize("line, column, message", [
    ("matmul a=0, b=0, c=0, m=1, n=16777216, k=1", 30,
     "matmul: b_stride defaults to n = 16777216, beyond the strides 0 .. 16777215 (give "
     "b_stride, or a smaller n)"),
    ("linear_forward x=0, w=0, y=0, batch=1, inputs=1, outputs=1 << 64", 58,
     "linear_forward: outputs = 18446744073709551616: at most 16777215 (it is also a row "
     "stride, and strides are 0 .. 16777215)"),
])
def test_block_sizes_that_are_strides_blame_the_size(capsys, tmp_path, line, column,
                                                     message):
    path = qasm(tmp_path, line + "\n")
    assert failed(capsys, path) == f"{path}:1:{column}: error: {message}"
