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
``sgd_update``) are plain Python functions too (:func:`matmul_words`, ...), so a runtime
can build the same instruction sequences without going through text.

>>> program = assemble("gemm 32, 64, 65  ; one GEMM")
>>> [hex(word) for word in program.words]
['0x410040002004']
>>> disassemble(program.words[0])
'gemm 32, 64, 65'
>>> assemble("gemm 32, 64")
Traceback (most recent call last):
...
qforge.gen.asm.AsmError: <string>:1:1: error: gemm: missing operand k
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qforge.sim.model.errors import QforgeError
from qforge.sim.model.isa import (OPERAND_FIELDS, EncodingError, Opcode, Operand, decode,
                                  encode, reserved_bits)

__all__ = ["AsmError", "BlockError", "Program", "assemble", "assemble_file", "disassemble",
           "chunk_sizes", "gemm_fits", "matmul_words", "linear_forward_words",
           "linear_backward_words", "sgd_update_words", "BLOCKS", "MNEMONICS"]

#: Width of the LOAD/STORE address and stride fields (element addresses 0 .. 2**24 - 1).
ADDRESS_BITS = 24
#: Largest m, n or k one GEMM word can hold (16-bit fields).
GEMM_FIELD_MAX = (1 << 16) - 1

#: Field names and widths of every opcode, in word order.
FIELDS: dict[Opcode, dict[str, int]] = OPERAND_FIELDS

#: Instruction mnemonics: the opcode names in lower case.
MNEMONICS: dict[str, Opcode] = {opcode.name.lower(): opcode for opcode in Opcode}

#: Fields that positional operands fill, in order, per opcode.
_POSITIONAL: dict[Opcode, tuple[str, ...]] = {
    Opcode.PRECISION: ("operand", "blocks", "kept"),
    Opcode.SEED: ("seed", "tensor"),
    Opcode.GEMM: ("m", "n", "k"),
    Opcode.LOAD: ("operand", "address", "stride"),
    Opcode.STORE: ("address", "stride"),
}

#: Fields an instruction must name (the others default to 0).
_REQUIRED: dict[Opcode, tuple[str, ...]] = {
    Opcode.PRECISION: ("operand", "blocks", "kept"),
    Opcode.SEED: ("seed",),
    Opcode.GEMM: ("m", "n", "k"),
    Opcode.LOAD: ("operand", "address", "stride"),
    Opcode.STORE: ("address", "stride"),
}

#: Names accepted as values of some fields (besides numbers).
_NAMED_VALUES: dict[tuple[Opcode, str], dict[str, int]] = {
    (Opcode.PRECISION, "operand"): {"a": Operand.A, "b": Operand.B},
    (Opcode.LOAD, "operand"): {"a": Operand.A, "b": Operand.B, "addend": Operand.ADDEND},
    (Opcode.OUTPUT, "rounding"): {"nearest": 0, "truncate": 1, "stochastic": 2},
}

_ROUNDING_NAMES = {value: name for name, value
                   in _NAMED_VALUES[(Opcode.OUTPUT, "rounding")].items()}
_OPERAND_NAMES = {int(value): name for name, value
                  in _NAMED_VALUES[(Opcode.LOAD, "operand")].items()}


# ---- errors ------------------------------------------------------------------------------

class AsmError(QforgeError, ValueError):
    """A mistake in a program: ``source:line:column: error: message``, then the source
    line and a caret under the column (like gcc). ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, source: str = "<string>", line: int = 0,
                 column: int = 0, text: str | None = None):
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.text = text
        super().__init__(self.formatted())

    @property
    def headline(self) -> str:
        """The one-line form: ``FILE:LINE:COLUMN: error: MESSAGE``."""
        return f"{self.source}:{self.line}:{self.column}: error: {self.message}"

    def formatted(self) -> str:
        """The headline, the source line and a caret line under the column."""
        if self.text is None:
            return self.headline
        indent = "".join("\t" if char == "\t" else " "
                         for char in self.text[:max(0, self.column - 1)])
        return f"{self.headline}\n{self.text}\n{indent}^"


class BlockError(QforgeError, ValueError):
    """A high-level block cannot be expanded: ``operand`` names the offending operand
    (``None`` when no single one is to blame)."""

    def __init__(self, message: str, operand: str | None = None):
        super().__init__(message)
        self.operand = operand


# ---- the program -------------------------------------------------------------------------

@dataclass(frozen=True)
class Program:
    """An assembled program.

    ``words`` are the instruction words and ``lines`` the source line of each;
    ``symbols`` the value of every label and constant; ``data`` the initialised ranges
    of host memory as ``(address, values)`` (from ``.word``) and ``memory_size`` the
    elements the data section reserves (addresses ``0 .. memory_size - 1``).
    """

    words: tuple[int, ...]
    lines: tuple[int, ...]
    symbols: dict[str, int]
    data: tuple[tuple[int, tuple[int, ...]], ...] = ()
    memory_size: int = 0
    source: str = "<string>"
    source_lines: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: Every data label's ``(address, elements)``: up to the next data label or the end
    #: of the data section.
    regions: dict = field(default_factory=dict, repr=False, compare=False)

    def memory(self) -> list[int]:
        """The data section as a list of ``memory_size`` elements: zeros, with the
        ``.word`` values in place."""
        image = [0] * self.memory_size
        for address, values in self.data:
            image[address:address + len(values)] = values
        return image

    def to_bytes(self) -> bytes:
        """The words as little-endian 64-bit integers (what ``qforge asm -o`` writes)."""
        return b"".join(word.to_bytes(8, "little") for word in self.words)

    def listing(self) -> str:
        """One line per word: index, hex word, disassembly and the source line (shown
        on the first word of each source line), then the data ranges and symbols.

        >>> print(assemble("nop\\ngemm 1, 2, 3 ; go").listing())
             0  0000000000000000  nop                                      ;    1  nop
             1  0000030002000104  gemm 1, 2, 3                             ;    2  gemm 1, 2, 3 ; go
        """
        out = []
        previous = None
        for index, (word, line) in enumerate(zip(self.words, self.lines)):
            text = ""
            if line != previous:
                source = (self.source_lines[line - 1].rstrip()
                          if 0 < line <= len(self.source_lines) else "")
                text = f"{line:4d}  {source.strip()}"
            previous = line
            out.append(f"{index:6d}  {word:016x}  {disassemble(word):40s} ; {text}".rstrip())
        for address, values in self.data:
            shown = ", ".join(str(value) for value in values[:8])
            more = ", ..." if len(values) > 8 else ""
            out.append(f"; data {address:6d}: .word {shown}{more}")
        if self.memory_size:
            out.append(f"; memory: {self.memory_size} elements reserved by .data")
        for name, value in self.symbols.items():
            out.append(f"; symbol {name} = {value}")
        return "\n".join(out)


# ---- disassembler ------------------------------------------------------------------------

def disassemble(word: int) -> str:
    """Assembly text of one word that :func:`assemble` turns back into the same word.
    A word that is not an instruction (unknown opcode, reserved bits set) becomes
    ``.inst 0x...``, the raw-word directive.

    >>> disassemble(encode(Opcode.LOAD, operand=1, address=64, stride=65, transpose=1))
    'load b, 64, stride=65, transpose'
    >>> disassemble(encode(Opcode.OUTPUT, quantize=1, shift=6, rounding=2, relu=1))
    'output quantize, shift=6, rounding=stochastic, relu'
    >>> disassemble(0x1ff)
    '.inst 0x00000000000001ff  ; unknown opcode 0xff'
    """
    opcode, fields = decode(word)
    if not isinstance(opcode, Opcode):
        return f".inst {word:#018x}  ; unknown opcode {opcode:#04x}"
    if reserved_bits(word):
        return f".inst {word:#018x}  ; reserved bits set"
    mnemonic = opcode.name.lower()
    parts: list[str] = []

    def flag(name):
        if fields[name]:
            parts.append(name)

    def keyword(name, always=False):
        if fields[name] or always:
            parts.append(f"{name}={fields[name]}")

    if opcode == Opcode.PRECISION:
        parts.append(_OPERAND_NAMES[fields["operand"]])
        keyword("blocks", True)
        keyword("kept", True)
        flag("dynamic")
        flag("vrq")
    elif opcode == Opcode.OUTPUT:
        flag("quantize")
        keyword("shift")
        if fields["rounding"]:
            parts.append("rounding=" + _ROUNDING_NAMES.get(fields["rounding"],
                                                           str(fields["rounding"])))
        flag("relu")
        flag("vrq")
        keyword("exponent")
        flag("wide")
    elif opcode == Opcode.SEED:
        parts.append(f"{fields['seed']:#x}")
        keyword("tensor")
    elif opcode == Opcode.GEMM:
        parts += [str(fields["m"]), str(fields["n"]), str(fields["k"])]
        flag("skip_zeros")
        flag("add")
        keyword("saturate_bits", bool(fields["add"]))   # required with add
    elif opcode == Opcode.LOAD:
        parts.append(_OPERAND_NAMES.get(fields["operand"], str(fields["operand"])))
        parts.append(str(fields["address"]))
        keyword("stride", True)
        flag("transpose")
    elif opcode == Opcode.STORE:
        parts.append(str(fields["address"]))
        keyword("stride", True)
        flag("transpose")
    return mnemonic + (" " + ", ".join(parts) if parts else "")


# ---- block expansion (usable from Python) ------------------------------------------------

@dataclass(frozen=True)
class _Matrix:
    """A matrix in host memory: element ``(i, j)`` at ``address + i * stride + j``, or
    ``address + j * stride + i`` when ``transpose``; ``name`` is the operand to blame."""

    name: str
    address: int
    stride: int
    transpose: bool = False

    def sub(self, i: int, j: int) -> "_Matrix":
        """The sub-matrix whose element ``(0, 0)`` is this one's ``(i, j)``."""
        offset = j * self.stride + i if self.transpose else i * self.stride + j
        address = self.address + offset
        if address >= 1 << ADDRESS_BITS:
            raise BlockError(f"{self.name}: the sub-matrix at ({i}, {j}) starts at element "
                             f"address {address}, beyond the {ADDRESS_BITS}-bit address "
                             f"field (0 .. {(1 << ADDRESS_BITS) - 1})", self.name)
        return _Matrix(self.name, address, self.stride, self.transpose)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BlockError(f"{name} = {value!r}: must be an integer of at least 1", name)
    return value


def _check_address(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value < 1 << ADDRESS_BITS:
        raise BlockError(f"{name} = {value!r}: element addresses and strides are "
                         f"0 .. {(1 << ADDRESS_BITS) - 1}", name)
    return value


def _check_config(config, block: str):
    if config is None:
        raise BlockError(f"{block} needs a hardware configuration to choose its chunk "
                         "sizes (assemble(..., config=...), or qforge asm --preset/--spec)")
    return config


def gemm_fits(config, m: int, n: int, k: int) -> bool:
    """Whether one GEMM of ``m x k`` by ``k x n`` fits the configuration's loader and
    buffers (docs/ISA.md, ``GEMM``: tile fields, reduction depth, one buffer half).

    >>> from qforge.sim.model.spec import load_preset
    >>> gemm_fits(load_preset("tiny"), 32, 32, 512), gemm_fits(load_preset("tiny"), 4, 2, 513)
    (False, False)
    """
    rows, cols, width = config.rows, config.cols, config.block_multipliers
    tiles = 1 << config.tiles_field_width
    if not (1 <= m <= min(tiles * rows, GEMM_FIELD_MAX)
            and 1 <= n <= min(tiles * cols, GEMM_FIELD_MAX)
            and 1 <= k <= min(config.max_reduction_depth, GEMM_FIELD_MAX)):
        return False
    words = _ceil(k, width)
    if _ceil(m, rows) * words > config.buffer_depth:
        return False
    if config.zero_skipping:
        return _ceil(_ceil(n, cols), rows) * words <= config.pe_buffer_depth
    return _ceil(n, cols) * words <= config.buffer_depth


def chunk_sizes(config, m: int, n: int, k: int) -> tuple[int, int, int]:
    """``(mc, nc, kc)``: the chunk sizes a tiled GEMM of ``m x k`` by ``k x n`` uses,
    chosen greedily: ``k`` whole (``kc = k``) if one GEMM can take it, else the most
    whole words of ``P`` operands that fit; then the largest ``m`` and ``n`` chunks
    (whole tiles of ``R`` rows and ``C`` columns) whose operands fit one buffer half
    with words of ``kc``. Every GEMM of the tiling satisfies :func:`gemm_fits`.

    >>> from qforge.sim.model.spec import load_preset
    >>> chunk_sizes(load_preset("tiny"), 5, 3, 700)
    (2, 2, 512)
    >>> chunk_sizes(load_preset("default"), 32, 10, 64)
    (32, 10, 64)
    """
    for name, value in (("m", m), ("n", n), ("k", k)):
        _check_count(name, value)
    rows, cols, width = config.rows, config.cols, config.block_multipliers
    tiles = 1 << config.tiles_field_width
    depth_limit = min(config.max_reduction_depth, GEMM_FIELD_MAX)
    b_words = config.pe_buffer_depth if config.zero_skipping else config.buffer_depth
    word_limit = min(config.buffer_depth, b_words)
    if k <= depth_limit and _ceil(k, width) <= word_limit:
        kc = k
    else:
        whole = min(word_limit, depth_limit // width)
        kc = whole * width if whole else depth_limit
    words = _ceil(kc, width)
    mc = min(m, rows * min(config.buffer_depth // words, tiles), GEMM_FIELD_MAX)
    if config.zero_skipping:
        n_tiles = min(rows * (config.pe_buffer_depth // words), tiles)
    else:
        n_tiles = min(config.buffer_depth // words, tiles)
    nc = min(n, cols * n_tiles, GEMM_FIELD_MAX)
    return mc, nc, kc


def _tiled(config, a: _Matrix, b: _Matrix, c: _Matrix, m: int, n: int, k: int, *,
           skip_zeros: bool = False, update_bits: int | None = None) -> list[int]:
    """The words of ``C = A @ B`` tiled by :func:`chunk_sizes`. Without
    ``update_bits``, later ``k`` chunks accumulate onto ``C`` (addend = ``C``,
    ``saturate_bits = accumulator_width``); with it every GEMM is ``C <- clamp(C +
    output, update_bits)`` (the caller makes sure ``k`` is not split). A descriptor is
    only emitted when it differs from the one this block set last."""
    mc, nc, kc = chunk_sizes(config, m, n, k)
    words: list[int] = []
    current: dict[str, tuple] = {}

    def describe(key: str, matrix: _Matrix):
        descriptor = (matrix.address, matrix.stride, int(matrix.transpose))
        if current.get(key) == descriptor:
            return
        current[key] = descriptor
        if key == "store":
            words.append(encode(Opcode.STORE, transpose=descriptor[2],
                                address=descriptor[0], stride=descriptor[1]))
        else:
            operand = {"a": Operand.A, "b": Operand.B, "addend": Operand.ADDEND}[key]
            words.append(encode(Opcode.LOAD, operand=operand, transpose=descriptor[2],
                                address=descriptor[0], stride=descriptor[1]))

    for m0 in range(0, m, mc):
        for n0 in range(0, n, nc):
            target = c.sub(m0, n0)
            for k0 in range(0, k, kc):
                describe("a", a.sub(m0, k0))
                describe("b", b.sub(k0, n0))
                add = update_bits is not None or k0 > 0
                if add:
                    describe("addend", target)
                describe("store", target)
                bits = (update_bits if update_bits is not None
                        else config.accumulator_width) if add else 0
                words.append(encode(Opcode.GEMM, m=min(mc, m - m0), n=min(nc, n - n0),
                                    k=min(kc, k - k0), skip_zeros=int(skip_zeros),
                                    add=int(add), saturate_bits=bits))
    return words


def _check_skip_zeros(config, skip_zeros: bool) -> None:
    if skip_zeros and not config.zero_skipping:
        raise BlockError(f"skip_zeros needs a zero-skipping configuration ({config.name!r} "
                         "has no [zero_skipping] section)", "skip_zeros")


def matmul_words(config, *, a: int, b: int, c: int, m: int, n: int, k: int,
                 a_stride: int | None = None, b_stride: int | None = None,
                 c_stride: int | None = None, transpose_a: bool = False,
                 transpose_b: bool = False, skip_zeros: bool = False) -> list[int]:
    """``C = A @ B`` (A ``m x k`` at element address ``a``, B ``k x n`` at ``b``, C
    ``m x n`` row-major at ``c``) as LOAD/STORE/GEMM words tiled to fit ``config``.

    A is row-major with row stride ``a_stride`` (default ``k``), or with
    ``transpose_a`` the transpose of a row-major ``k x m`` matrix (default stride
    ``m``); the same for B (``b_stride``: default ``n``, or ``k`` transposed). C's row
    stride is ``c_stride`` (default ``n``). When ``k`` needs several GEMMs, the later
    ones add onto C (``add = 1``, ``saturate_bits = accumulator_width``), which is exact
    only with the raw output stage (``output`` with ``quantize = 0``): the block leaves
    the output stage as it is.

    >>> from qforge.sim.model.spec import load_preset
    >>> for word in matmul_words(load_preset("default"), a=0, b=256, c=512, m=4, n=8, k=16):
    ...     print(disassemble(word))
    load a, 0, stride=16
    load b, 256, stride=8
    store 512, stride=8
    gemm 4, 8, 16
    """
    config = _check_config(config, "matmul")
    m, n, k = _check_count("m", m), _check_count("n", n), _check_count("k", k)
    a_stride = (m if transpose_a else k) if a_stride is None else a_stride
    b_stride = (k if transpose_b else n) if b_stride is None else b_stride
    c_stride = n if c_stride is None else c_stride
    for name, value in (("a", a), ("b", b), ("c", c), ("a_stride", a_stride),
                        ("b_stride", b_stride), ("c_stride", c_stride)):
        _check_address(name, value)
    _check_skip_zeros(config, skip_zeros)
    return _tiled(config, _Matrix("a", a, a_stride, bool(transpose_a)),
                  _Matrix("b", b, b_stride, bool(transpose_b)), _Matrix("c", c, c_stride),
                  m, n, k, skip_zeros=skip_zeros)


def _renamed(error: BlockError, names: dict[str, str]) -> BlockError:
    operand = names.get(error.operand, error.operand)
    message = str(error)
    if error.operand in names:
        message = re.sub(rf"^{re.escape(error.operand)}\b", operand, message)
    return BlockError(message, operand)


def linear_forward_words(config, *, x: int, w: int, y: int, batch: int, inputs: int,
                         outputs: int) -> list[int]:
    """``y = x @ w``: x ``batch x inputs``, w ``inputs x outputs``, y ``batch x
    outputs``, all row-major with their own widths as strides (:func:`matmul_words`)."""
    config = _check_config(config, "linear_forward")
    for name, value in (("batch", batch), ("inputs", inputs), ("outputs", outputs)):
        _check_count(name, value)
    try:
        return matmul_words(config, a=x, b=w, c=y, m=batch, n=outputs, k=inputs)
    except BlockError as error:
        raise _renamed(error, {"a": "x", "b": "w", "c": "y"}) from None


def linear_backward_words(config, *, x: int, w: int, dy: int, dw: int, batch: int,
                          inputs: int, outputs: int, dx: int | None = None) -> list[int]:
    """The gradients of :func:`linear_forward_words`: ``dw = x^T @ dy`` (reading x
    transposed) and, when ``dx`` is given, ``dx = dy @ w^T`` (reading w transposed);
    dw is ``inputs x outputs``, dx ``batch x inputs``, row-major."""
    config = _check_config(config, "linear_backward")
    for name, value in (("batch", batch), ("inputs", inputs), ("outputs", outputs)):
        _check_count(name, value)
    try:
        words = matmul_words(config, a=x, b=dy, c=dw, m=inputs, n=outputs, k=batch,
                             a_stride=inputs, transpose_a=True)
    except BlockError as error:
        raise _renamed(error, {"a": "x", "b": "dy", "c": "dw"}) from None
    if dx is not None:
        try:
            words += matmul_words(config, a=dy, b=w, c=dx, m=batch, n=inputs, k=outputs,
                                  b_stride=outputs, transpose_b=True)
        except BlockError as error:
            raise _renamed(error, {"a": "dy", "b": "w", "c": "dx"}) from None
    return words


def sgd_update_words(config, *, w: int, x: int, dy: int, batch: int, inputs: int,
                     outputs: int, shift: int, weight_bits: int, seed: int,
                     tensor: int = 0, rounding: int = 2) -> list[int]:
    """The SGD weight update ``W <- clamp(W + round_stochastic((x^T @ dy) / 2**shift),
    weight_bits)``: ``SEED seed, tensor``, ``OUTPUT quantize=1, wide=1,
    rounding=stochastic, shift``, then the ``x^T @ dy`` GEMMs with W as addend and
    result (``add = 1``, ``saturate_bits = weight_bits``). W is ``inputs x outputs``
    row-major; the GEMMs may be split along ``inputs`` and ``outputs`` but not along
    ``batch`` (a :class:`BlockError` if one GEMM cannot take it). The output stage is
    left as set here. ``rounding`` (Python API only) picks another rounding of the
    output stage: 0 nearest-even (the update loses increments below half an LSB)."""
    config = _check_config(config, "sgd_update")
    if rounding not in (0, 1, 2):
        raise BlockError(f"rounding = {rounding!r}: allowed 0 (nearest), 1 (truncate), "
                         f"2 (stochastic)", "rounding")
    for name, value in (("batch", batch), ("inputs", inputs), ("outputs", outputs)):
        _check_count(name, value)
    for name, value in (("w", w), ("x", x), ("dy", dy)):
        _check_address(name, value)
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) \
            or not 2 <= weight_bits <= config.accumulator_width:
        raise BlockError(f"weight_bits = {weight_bits!r}: allowed 2 .. "
                         f"{config.accumulator_width} (the accumulator width of "
                         f"{config.name!r})", "weight_bits")
    if isinstance(shift, bool) or not isinstance(shift, int) \
            or not 0 <= shift <= config.accumulator_width - 1:
        raise BlockError(f"shift = {shift!r}: allowed 0 .. {config.accumulator_width - 1}",
                         "shift")
    for name, value, bits in (("seed", seed, 32), ("tensor", tensor, 16)):
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 0 <= value < 1 << bits:
            raise BlockError(f"{name} = {value!r}: allowed 0 .. {(1 << bits) - 1}", name)
    _mc, _nc, kc = chunk_sizes(config, inputs, outputs, batch)
    if kc < batch:
        raise BlockError(f"batch = {batch}: the update's GEMM has k = batch, which cannot "
                         f"be split; one GEMM on {config.name!r} takes k <= {kc} here",
                         "batch")
    words = [encode(Opcode.SEED, seed=seed, tensor=tensor),
             encode(Opcode.OUTPUT, quantize=1, wide=1, rounding=rounding, shift=shift)]
    return words + _tiled(config, _Matrix("x", x, inputs, True), _Matrix("dy", dy, outputs),
                          _Matrix("w", w, outputs), inputs, outputs, batch,
                          update_bits=weight_bits)


@dataclass(frozen=True)
class Block:
    """A high-level block: its expansion function and operands."""

    function: Callable[..., list[int]]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    summary: str = ""


#: The high-level blocks, by mnemonic.
BLOCKS: dict[str, Block] = {
    "matmul": Block(matmul_words, ("a", "b", "c", "m", "n", "k"),
                    ("a_stride", "b_stride", "c_stride"),
                    ("transpose_a", "transpose_b", "skip_zeros"),
                    "C = A @ B tiled to fit the configuration; k chunks accumulate"),
    "linear_forward": Block(linear_forward_words,
                            ("x", "w", "y", "batch", "inputs", "outputs"),
                            summary="y = x @ w"),
    "linear_backward": Block(linear_backward_words,
                             ("x", "w", "dy", "dw", "batch", "inputs", "outputs"), ("dx",),
                             summary="dw = x^T @ dy and, with dx, dx = dy @ w^T"),
    "sgd_update": Block(sgd_update_words,
                        ("w", "x", "dy", "batch", "inputs", "outputs", "shift",
                         "weight_bits", "seed"), ("tensor",),
                        summary="W <- clamp(W + round_stochastic((x^T @ dy) / 2**shift))"),
}


# ---- the assembler -----------------------------------------------------------------------

_TOKEN = re.compile(r"(?P<space>\s+)|(?P<num>[0-9][0-9A-Za-z_]*)"
                    r"|(?P<dir>\.[A-Za-z_][A-Za-z0-9_]*)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op><<|>>|[-+*/%(),=:~])")
_DIRECTIVES = (".const", ".data", ".text", ".zero", ".word", ".inst")
#: Largest shift count an expression may use (keeps ``1 << huge`` from eating memory).
_MAX_SHIFT = 256


@dataclass(frozen=True)
class _Token:
    kind: str      # num, name, dir, op
    text: str
    column: int    # 1-based
    value: int = 0


@dataclass
class _Operand:
    key: str | None        # lower-case field name of name=value operands
    key_column: int
    expr: tuple | None     # expression tree
    column: int            # column of the value
    bare: str | None       # the value's text when it is a single name
    field: str | None = None   # the field it ended up setting


@dataclass
class _Statement:
    line: int
    column: int            # of the mnemonic or directive
    name: str              # lower-case mnemonic or directive
    operands: list[_Operand]


@dataclass
class _Definition:
    kind: str              # const, text, data
    line: int
    column: int
    expr: tuple | None = None
    position: int = 0


def _number(text: str) -> int:
    lower = text.lower()
    base = {"0x": 16, "0b": 2, "0o": 8}.get(lower[:2], 10)
    digits = lower[2:] if base != 10 else lower
    if not digits or digits[0] == "_" or digits[-1] == "_" or "__" in digits:
        raise ValueError(text)
    return int(digits, base)


class _Assembler:
    def __init__(self, text: str, config, source: str):
        self.config = config
        self.source = source
        self.lines = text.splitlines()
        self.text: list[_Statement] = []
        self.data: list[_Statement] = []
        self.definitions: dict[str, _Definition] = {}
        self.order: list[tuple[str, object]] = []
        self.values: dict[str, int] = {}
        self.evaluating: set[str] = set()
        self.text_offsets = [0]
        self.data_offsets = [0]
        self.expanded: dict[int, list[int]] = {}
        self.expanding: set[int] = set()
        self.data_sizes: dict[int, int] = {}
        self.sizing_data: set[int] = set()
        self.current: _Statement | None = None     # the instruction being encoded

    # ---- errors --------------------------------------------------------------------------
    def error(self, line: int, column: int, message: str) -> AsmError:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return AsmError(message, source=self.source, line=line, column=column, text=text)

    # ---- pass 1: parse -------------------------------------------------------------------
    def tokenize(self, line: int, code: str) -> list[_Token]:
        tokens = []
        position = 0
        while position < len(code):
            match = _TOKEN.match(code, position)
            if match is None:
                raise self.error(line, position + 1,
                                 f"unexpected character {code[position]!r}")
            kind, text = match.lastgroup, match.group()
            if kind == "num":
                try:
                    value = _number(text)
                except ValueError:
                    raise self.error(line, position + 1, f"invalid number {text!r}") from None
                tokens.append(_Token(kind, text, position + 1, value))
            elif kind != "space":
                tokens.append(_Token(kind, text, position + 1))
            position = match.end()
        return tokens

    def parse(self) -> None:
        section = "text"
        for line, raw in enumerate(self.lines, 1):
            code = re.split(r"[;#]", raw, maxsplit=1)[0]
            tokens = self.tokenize(line, code)
            end = len(code.rstrip()) + 1
            index = 0
            while index + 1 < len(tokens) and tokens[index].kind == "name" \
                    and tokens[index + 1].text == ":":
                label = tokens[index]
                statements = self.text if section == "text" else self.data
                self.define(label.text, _Definition(section, line, label.column,
                                                    position=len(statements)))
                index += 2
            if index == len(tokens):
                continue
            head, rest = tokens[index], tokens[index + 1:]
            name = head.text.lower()
            if head.kind == "dir":
                section = self.directive(line, head, name, rest, section, end)
            elif head.kind == "name":
                if name not in MNEMONICS and name not in BLOCKS:
                    close = difflib.get_close_matches(name, [*MNEMONICS, *BLOCKS], n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise self.error(line, head.column,
                                     f"unknown mnemonic {head.text!r}{hint}")
                if section != "text":
                    raise self.error(line, head.column, f"instruction {head.text!r} in the "
                                     ".data section (write .text before it)")
                statement = _Statement(line, head.column, name,
                                       self.operands(line, rest, end))
                self.order.append(("text", len(self.text)))
                self.text.append(statement)
            else:
                raise self.error(line, head.column, f"expected a label, mnemonic or "
                                 f"directive, got {head.text!r}")

    def define(self, name: str, definition: _Definition) -> None:
        earlier = self.definitions.get(name)
        if earlier is not None:
            what = "constant" if earlier.kind == "const" else "label"
            raise self.error(definition.line, definition.column,
                             f"{name!r} is already defined (as a {what} at line "
                             f"{earlier.line})")
        self.definitions[name] = definition
        self.order.append(("symbol", name))

    def directive(self, line: int, head: _Token, name: str, rest: list[_Token],
                  section: str, end: int) -> str:
        if name not in _DIRECTIVES:
            close = difflib.get_close_matches(name, _DIRECTIVES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(line, head.column, f"unknown directive {head.text!r}{hint}")
        if name in (".data", ".text"):
            if rest:
                raise self.error(line, rest[0].column, f"{name} takes no operands")
            return name[1:]
        if name == ".const":
            if not rest or rest[0].kind != "name":
                raise self.error(line, rest[0].column if rest else end,
                                 "expected a name after .const (.const NAME = EXPRESSION)")
            if len(rest) < 2 or rest[1].text != "=":
                raise self.error(line, rest[1].column if len(rest) > 1 else end,
                                 "expected '=' (.const NAME = EXPRESSION)")
            expr = self.expression(line, rest[2:], end)
            self.define(rest[0].text, _Definition("const", line, rest[0].column, expr))
            return section
        operands = self.operands(line, rest, end)
        for operand in operands:
            if operand.key is not None:
                raise self.error(line, operand.key_column, f"{name} takes values, not "
                                 "name=value operands")
        if name in (".zero", ".word"):
            if section != "data":
                raise self.error(line, head.column, f"{name} outside the .data section "
                                 "(write .data before it)")
            if not operands or (name == ".zero" and len(operands) != 1):
                raise self.error(line, head.column if not operands else operands[1].column,
                                 ".zero takes one count (.zero N)" if name == ".zero"
                                 else ".word takes one or more values")
            self.order.append(("data", len(self.data)))
            self.data.append(_Statement(line, head.column, name, operands))
            return section
        # .inst: one raw instruction word
        if section != "text":
            raise self.error(line, head.column, ".inst outside the .text section")
        if len(operands) != 1:
            raise self.error(line, head.column if not operands else operands[1].column,
                             ".inst takes one value (the raw 64-bit word)")
        self.order.append(("text", len(self.text)))
        self.text.append(_Statement(line, head.column, name, operands))
        return section

    def operands(self, line: int, tokens: list[_Token], end: int) -> list[_Operand]:
        groups: list[list[_Token]] = [[]]
        commas: list[int] = []
        depth = 0
        for token in tokens:
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
            if token.text == "," and depth <= 0:
                groups.append([])
                commas.append(token.column)
            else:
                groups[-1].append(token)
        if not tokens:
            return []
        operands = []
        for index, group in enumerate(groups):
            if not group:
                column = commas[index] if index < len(commas) else end
                raise self.error(line, column, "expected an operand")
            if len(group) >= 2 and group[0].kind == "name" and group[1].text == "=":
                after = group[2].column if len(group) > 2 else (
                    commas[index] if index < len(commas) else end)
                expr = self.expression(line, group[2:], after)
                operands.append(_Operand(group[0].text.lower(), group[0].column, expr,
                                         after, group[2].text if len(group) == 3
                                         and group[2].kind == "name" else None))
            else:
                expr = self.expression(line, group, group[0].column)
                operands.append(_Operand(None, group[0].column, expr, group[0].column,
                                         group[0].text if len(group) == 1
                                         and group[0].kind == "name" else None))
        return operands

    # ---- expressions ---------------------------------------------------------------------
    def expression(self, line: int, tokens: list[_Token], end: int) -> tuple:
        """Parse ``tokens`` (all of them) as one expression; ``end`` is the column to
        blame when the expression is missing or cut short."""
        position = 0

        def peek() -> _Token | None:
            return tokens[position] if position < len(tokens) else None

        def take() -> _Token:
            nonlocal position
            token = peek()
            if token is None:
                last = tokens[-1] if tokens else None
                column = last.column + len(last.text) if last else end
                raise self.error(line, column, "expected a value (a number, a name or "
                                 "'(')" if last else "expected a value")
            position += 1
            return token

        def binary(level: int) -> tuple:
            operators = (("<<", ">>"), ("+", "-"), ("*", "/", "%"))
            if level == len(operators):
                return unary()
            left = binary(level + 1)
            while (token := peek()) is not None and token.kind == "op" \
                    and token.text in operators[level]:
                take()
                right = binary(level + 1)
                left = ("binary", token.text, left, right, line, token.column)
            return left

        def unary() -> tuple:
            token = take()
            if token.kind == "op" and token.text in ("-", "+", "~"):
                return ("unary", token.text, unary(), line, token.column)
            if token.kind == "num":
                return ("num", token.value, line, token.column)
            if token.kind == "name":
                return ("name", token.text, line, token.column)
            if token.text == "(":
                inner = binary(0)
                closing = peek()
                if closing is None or closing.text != ")":
                    column = closing.column if closing else (tokens[-1].column
                                                             + len(tokens[-1].text))
                    raise self.error(line, column, "expected ')'")
                take()
                return inner
            raise self.error(line, token.column, f"unexpected {token.text!r} in an "
                             "expression")

        tree = binary(0)
        extra = peek()
        if extra is not None:
            raise self.error(line, extra.column, f"unexpected {extra.text!r} (missing ',' "
                             "or an operator?)")
        return tree

    def evaluate(self, tree: tuple) -> int:
        kind = tree[0]
        if kind == "num":
            return tree[1]
        if kind == "name":
            return self.symbol(tree[1], tree[2], tree[3])
        if kind == "unary":
            value = self.evaluate(tree[2])
            return {"-": -value, "+": value, "~": ~value}[tree[1]]
        _, operator, left, right, line, column = tree
        a, b = self.evaluate(left), self.evaluate(right)
        if operator in ("/", "%") and b == 0:
            raise self.error(line, column, "division by zero")
        if operator in ("<<", ">>") and not 0 <= b <= _MAX_SHIFT:
            raise self.error(line, column, f"shift count {b} outside 0 .. {_MAX_SHIFT}")
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: a // b, "%": lambda: a % b, "<<": lambda: a << b,
                ">>": lambda: a >> b}[operator]()

    def symbol(self, name: str, line: int, column: int) -> int:
        if name in self.values:
            return self.values[name]
        definition = self.definitions.get(name)
        if definition is None:
            raise self.error(line, column, f"undefined name {name!r}")
        if name in self.evaluating:
            raise self.error(line, column, f"circular definition: {name!r} depends on "
                             "itself")
        self.evaluating.add(name)
        try:
            if definition.kind == "const":
                value = self.evaluate(definition.expr)
            elif definition.kind == "text":
                value = self.text_offset(definition.position)
            else:
                value = self.data_offset(definition.position)
        finally:
            self.evaluating.discard(name)
        self.values[name] = value
        return value

    # ---- layout --------------------------------------------------------------------------
    def text_offset(self, position: int) -> int:
        while len(self.text_offsets) <= position:
            index = len(self.text_offsets) - 1
            statement = self.text[index]
            size = len(self.expand(index)) if statement.name in BLOCKS else 1
            self.text_offsets.append(self.text_offsets[index] + size)
        return self.text_offsets[position]

    def data_offset(self, position: int) -> int:
        while len(self.data_offsets) <= position:
            index = len(self.data_offsets) - 1
            self.data_offsets.append(self.data_offsets[index] + self.data_size(index))
        return self.data_offsets[position]

    def data_size(self, index: int) -> int:
        if index in self.data_sizes:
            return self.data_sizes[index]
        statement = self.data[index]
        if statement.name == ".word":
            size = len(statement.operands)
        else:
            if index in self.sizing_data:
                raise self.error(statement.line, statement.operands[0].column,
                                 "circular definition: this .zero count depends on an "
                                 "address after it")
            self.sizing_data.add(index)
            try:
                size = self.evaluate(statement.operands[0].expr)
            finally:
                self.sizing_data.discard(index)
            if size < 0:
                raise self.error(statement.line, statement.operands[0].column,
                                 f".zero count {size}: must be at least 0")
        self.data_sizes[index] = size
        return size

    # ---- instructions --------------------------------------------------------------------
    def field_value(self, opcode: Opcode, name: str, operand: _Operand) -> int:
        names = _NAMED_VALUES.get((opcode, name))
        if names is not None and operand.bare is not None:
            if operand.bare.lower() in names:
                return int(names[operand.bare.lower()])
            if operand.bare not in self.definitions:
                raise self.error(self.current.line, operand.column,
                                 f"{name} = {operand.bare!r}: expected "
                                 f"{', '.join(names)} or a number")
        return self.evaluate(operand.expr)

    def instruction(self, statement: _Statement) -> int:
        self.current = statement
        mnemonic = statement.name
        if mnemonic == ".inst":
            value = self.evaluate(statement.operands[0].expr)
            if not 0 <= value < 1 << 64:
                raise self.error(statement.line, statement.operands[0].column,
                                 f".inst {value}: a word is 0 .. 2**64 - 1")
            return value
        opcode = MNEMONICS[mnemonic]
        fields = FIELDS[opcode]
        positional = list(_POSITIONAL.get(opcode, ()))
        values: dict[str, tuple[int, _Operand]] = {}
        seen_keyword = False

        def set_field(name: str, operand: _Operand, column: int, value: int | None = None):
            if name in values:
                raise self.error(statement.line, column, f"{mnemonic}: field {name!r} "
                                 "given twice")
            operand.field = name
            values[name] = (self.field_value(opcode, name, operand)
                            if value is None else value, operand)

        for operand in statement.operands:
            if operand.key is not None:
                seen_keyword = True
                if operand.key not in fields:
                    close = difflib.get_close_matches(operand.key, fields, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise self.error(statement.line, operand.key_column,
                                     f"{mnemonic} has no field {operand.key!r}{hint}; its "
                                     f"fields: {', '.join(fields) or 'none'}")
                set_field(operand.key, operand, operand.key_column)
                continue
            bare = operand.bare.lower() if operand.bare else None
            if bare is not None and fields.get(bare) == 1:
                set_field(bare, operand, operand.column, 1)
                continue
            if seen_keyword:
                raise self.error(statement.line, operand.column, f"{mnemonic}: a positional "
                                 "operand after name=value operands")
            while positional and positional[0] in values:
                positional.pop(0)
            if not positional:
                order = ", ".join(_POSITIONAL.get(opcode, ()))
                raise self.error(statement.line, operand.column,
                                 f"{mnemonic}: too many positional operands"
                                 + (f" (it takes {order}, then name=value)" if order
                                    else " (it takes name=value operands only)"
                                    if fields else " (it takes none)"))
            set_field(positional.pop(0), operand, operand.column)

        required = list(_REQUIRED.get(opcode, ()))
        if opcode == Opcode.GEMM and values.get("add", (0,))[0]:
            required.append("saturate_bits")
        for name in required:
            if name not in values:
                extra = " (required with add)" if name == "saturate_bits" else ""
                raise self.error(statement.line, statement.column,
                                 f"{mnemonic}: missing operand {name}{extra}")
        for name, (value, operand) in values.items():
            try:
                encode(opcode, **{name: value})
            except EncodingError as error:
                raise self.error(statement.line, operand.column, str(error)) from None
        return encode(opcode, **{name: value for name, (value, _) in values.items()})

    def expand(self, index: int) -> list[int]:
        if index in self.expanded:
            return self.expanded[index]
        statement = self.text[index]
        if index in self.expanding:
            raise self.error(statement.line, statement.column,
                             f"circular definition: the size of this {statement.name} "
                             "depends on a label after it")
        self.expanding.add(index)
        try:
            words = self.block(statement)
        finally:
            self.expanding.discard(index)
        self.expanded[index] = words
        return words

    def block(self, statement: _Statement) -> list[int]:
        block = BLOCKS[statement.name]
        allowed = block.required + block.optional + block.flags
        arguments: dict[str, object] = {}
        columns: dict[str, int] = {}
        for operand in statement.operands:
            bare = operand.bare.lower() if operand.bare else None
            if operand.key is None and bare in block.flags:
                key, value = bare, True
            elif operand.key is None:
                raise self.error(statement.line, operand.column,
                                 f"{statement.name} takes name=value operands: "
                                 f"{', '.join(allowed)}")
            else:
                key = operand.key
                if key not in allowed:
                    close = difflib.get_close_matches(key, allowed, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise self.error(statement.line, operand.key_column,
                                     f"{statement.name} has no operand {key!r}{hint}; its "
                                     f"operands: {', '.join(allowed)}")
                value = self.evaluate(operand.expr)
                if key in block.flags:
                    value = bool(value)
            if key in arguments:
                raise self.error(statement.line, operand.key_column,
                                 f"{statement.name}: operand {key!r} given twice")
            arguments[key] = value
            columns[key] = operand.column
        if self.config is None:
            raise self.error(statement.line, statement.column,
                             f"{statement.name} needs a hardware configuration to choose "
                             "its chunk sizes (assemble(..., config=...), or qforge asm "
                             "--preset/--spec)")
        for name in block.required:
            if name not in arguments:
                raise self.error(statement.line, statement.column,
                                 f"{statement.name}: missing operand {name}")
        try:
            return block.function(self.config, **arguments)
        except BlockError as error:
            column = columns.get(error.operand, statement.column)
            raise self.error(statement.line, column,
                             f"{statement.name}: {error}") from None
        except EncodingError as error:
            raise self.error(statement.line, statement.column,
                             f"{statement.name}: {error}") from None

    # ---- pass 2 --------------------------------------------------------------------------
    def check(self, statement: _Statement, word: int, expanded: bool) -> None:
        if self.config is None:
            return
        reason = _instruction_error(self.config, word)
        if reason is None:
            return
        column = statement.column
        if not expanded:
            best = None
            for operand in statement.operands:
                if operand.field is None:
                    continue
                match = re.search(rf"\b{re.escape(operand.field)}\b", reason)
                if match and (best is None or match.start() < best[0]):
                    best = (match.start(), operand.column)
            if best is not None:
                column = best[1]
            raise self.error(statement.line, column,
                             f"{statement.name}: not valid on {self.config.name!r}: {reason}")
        raise self.error(statement.line, column,
                         f"{statement.name} expands to {disassemble(word)!r}, not valid on "
                         f"{self.config.name!r}: {reason}")

    def run(self) -> Program:
        self.parse()
        words: list[int] = []
        lines: list[int] = []
        data: list[tuple[int, tuple[int, ...]]] = []
        for kind, item in self.order:
            if kind == "symbol":
                definition = self.definitions[item]
                self.symbol(item, definition.line, definition.column)
            elif kind == "text":
                statement = self.text[item]
                if statement.name in BLOCKS:
                    block_words = self.expand(item)
                else:
                    block_words = [self.instruction(statement)]
                for word in block_words:
                    self.check(statement, word, statement.name in BLOCKS)
                words += block_words
                lines += [statement.line] * len(block_words)
            else:
                statement = self.data[item]
                self.data_size(item)
                if statement.name == ".word":
                    values = tuple(self.evaluate(operand.expr)
                                   for operand in statement.operands)
                    data.append((self.data_offset(item), values))
        memory_size = self.data_offset(len(self.data))
        symbols = {name: self.values[name] for name in self.definitions}
        starts = sorted((self.values[name], name) for name, definition
                        in self.definitions.items() if definition.kind == "data")
        ends = [address for address, _ in starts[1:]] + [memory_size]
        regions = {name: (address, end - address)
                   for (address, name), end in zip(starts, ends)}
        return Program(tuple(words), tuple(lines), symbols, tuple(data), memory_size,
                       self.source, tuple(self.lines), regions)


def _instruction_error(config, word: int) -> str | None:
    """:func:`qforge.sim.model.machine.instruction_error`, imported when first needed."""
    try:
        from qforge.sim.model.machine import instruction_error
    except ModuleNotFoundError as error:   # the golden machine is not there yet
        if error.name != "qforge.sim.model.machine":
            raise
        return None
    return instruction_error(config, word)


def assemble(text: str, config=None, *, source: str = "<string>") -> Program:
    """Assemble ``text`` into a :class:`Program`.

    With a configuration (:class:`qforge.sim.model.spec.Config`) every word is checked
    against its limits and the blocks (``matmul``, ...) can be expanded; without one
    only the encoding is checked and blocks are an error. Any mistake raises
    :class:`AsmError` with ``source``, line and column.

    >>> program = assemble('''
    ... .const N = 4
    ...     load a, x, stride=N
    ... .data
    ... x:  .zero 2 * N
    ... y:  .word 1, -2
    ... ''')
    >>> program.symbols, program.data, program.memory_size
    ({'N': 4, 'x': 0, 'y': 8}, ((8, (1, -2)),), 10)
    """
    return _Assembler(text, config, source).run()


def assemble_file(path, config=None) -> Program:
    """Assemble the file at ``path`` (errors name the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") \
            from None
    return assemble(text, config, source=str(path))
