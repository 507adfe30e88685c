"""The qforge assembler: a small line-oriented language for the instruction set.

A program is text, one statement a line; the assembler turns it into 64-bit instruction
words (:mod:`qforge.hdl.isa`) and a map of the host memory that the program's data
section reserves. docs/ISA.md, "Assembly language", is the reference; in short::

    .const K = 65                    ; constants: integer expressions
    .text
    start:                           ; a text label: index of the next word
        precision a, blocks=4, kept=2, dynamic
        output quantize, shift=6, rounding=stochastic, relu
        seed 0x1234, tensor=3
        load a, x, stride=K          ; operand, address, then name=value fields
        load b, w, stride=64
        store z, stride=64
        gemm 32, 64, K               ; m, n, k
        matmul a=x, b=w, c=z, m=32, n=64, k=K   ; a block: tiled to fit the hardware
    .data
    x:  .zero 32 * K                 ; a data label: an element address of host memory
    w:  .zero K * 64
    z:  .word 1, 2, 3                ; reserved and initialised

Every instruction word is checked against the hardware configuration when one is
given (:func:`qforge.sim.model.machine.instruction_error`); every mistake is one
:class:`AsmError` that names the file, line and column, gcc style.

The high-level blocks (``matmul``, ``linear_forward``, ``linear_backward``,
``sgd_update``, ``conv2d_forward``, ``conv2d_backward``, ``conv2d_input_gradient``) are
plain Python functions too (:func:`matmul_words`, ...), so a runtime can build the same
instruction sequences without going through text.

The modules, in the order a program goes through them: :mod:`~qforge.gen.asm.lexer`
(tokens), :mod:`~qforge.gen.asm.expressions` (integer expressions),
:mod:`~qforge.gen.asm.parser` (pass 1: statements and definitions),
:mod:`~qforge.gen.asm.assembler` (pass 2: symbols, words, checks), giving a
:mod:`~qforge.gen.asm.program`; :mod:`~qforge.gen.asm.syntax` holds the instruction
forms, :mod:`~qforge.gen.asm.blocks` the tiling library (:mod:`~qforge.gen.asm.conv`
the convolution lowering), :mod:`~qforge.gen.asm.errors` the errors,
:mod:`~qforge.gen.asm.limits` the resource bounds (values, data section, block and
program sizes, nesting of forward references; no input can exhaust memory or time, and
nothing recurses on the depth of an expression) and
:mod:`~qforge.gen.asm.disassembler` the way back from a word to text.

>>> program = assemble("gemm 32, 64, 65  ; one GEMM")
>>> [hex(word) for word in program.words]
['0x410040002004']
>>> disassemble(program.words[0])
'gemm 32, 64, 65'
>>> assemble("gemm 32, 64")
Traceback (most recent call last):
...
qforge.gen.asm.errors.AsmError: <string>:1:1: error: gemm: missing operand k
gemm 32, 64
^
"""

from qforge.gen.asm.assembler import assemble, assemble_file
from qforge.gen.asm.blocks import (chunk_sizes, gemm_fits, linear_backward_words,
                                   linear_forward_words, matmul_words, sgd_update_words)
from qforge.gen.asm.conv import (Conv2dShape, conv2d_backward_words, conv2d_forward_words,
                                 conv2d_gemms, conv2d_input_gradient_words, conv2d_shape)
from qforge.gen.asm.disassembler import disassemble
from qforge.gen.asm.errors import AsmError, BlockError
from qforge.gen.asm.program import Program
from qforge.gen.asm.registry import BLOCKS
from qforge.gen.asm.syntax import MNEMONICS

__all__ = ["AsmError", "BlockError", "Program", "assemble", "assemble_file", "disassemble",
           "chunk_sizes", "gemm_fits", "matmul_words", "linear_forward_words",
           "linear_backward_words", "sgd_update_words", "conv2d_forward_words",
           "conv2d_backward_words", "conv2d_input_gradient_words", "conv2d_gemms", "conv2d_shape", "Conv2dShape", "BLOCKS",
           "MNEMONICS"]
