"""Errors (qforge.gen.asm.errors) of every stage: the file, line and column, the message, the
source line and a caret under the column; blocks' errors and the configuration's limits."""

import pytest

from qforge.gen.asm import AsmError, assemble
from tests.gen.asm.shared import TINY, check_error


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


CONFIG_ERRORS = [
    # on TINY: R = C = 2, P = 1, buffer_depth 512, max_reduction_depth 512
    ("matmul a=0, b=0, c=0, m=0, n=1, k=1", 1, 25, "matmul: m = 0: must be an integer of "
     "at least 1"),
    ("matmul a=0, b=-1, c=0, m=1, n=1, k=1", 1, 15, "matmul: b = -1"),
    ("matmul a=0, b=0, c=0, m=1, n=1, k=1, stride=3", 1, 38, "matmul has no operand 'stride'"),
    ("matmul 0, b=0, c=0, m=1, n=1, k=1", 1, 8, "matmul takes name=value operands"),
    ("matmul a=0, b=0, m=1, n=1, k=1", 1, 1, "matmul: missing operand c"),
    ("matmul a=0, b=0, c=0, m=1, n=1, k=1, skip_zeros", 1, 38,
     "skip_zeros needs a zero-skipping configuration"),
    # k = 1: one word a tile, so m chunks of 2 x 512 tiles = 1024 rows; the second
    # starts at 2**24 - 100 + 1024 = 16778140
    ("matmul a=0, b=0, c=(1 << 24) - 100, m=1100, n=1, k=1", 1, 20, "c: the sub-matrix at "
     "(1024, 0) starts at element address 16778140, beyond the 24-bit address field"),
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
    ("gemm 1, 1100, 1", 9, "GEMM.n = 1100: allowed 1 .. 1024 (512 tiles of 2 columns)"),
    ("precision a, blocks=3, kept=1", 21, "PRECISION.blocks = 3"),
    ("output quantize, shift=30", 24, "OUTPUT.shift = 30"),
    ("gemm 2, 2, 2, add, saturate_bits=40", 34, "GEMM.saturate_bits = 40"),
    ("load 3, 0, stride=0", 6, "LOAD.operand = 3"),
    (".inst 0xff", 1, "opcode 0xff"),
])
def test_instruction_errors_of_the_configuration(source, column, fragment):
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
