"""The high-level blocks: ``matmul``, ``linear_forward``, ``linear_backward`` and
``sgd_update`` as LOAD/STORE/GEMM (and SEED/OUTPUT) words tiled to fit a configuration.

They are plain Python functions (:func:`matmul_words`, ...), so a runtime can build the
same instruction sequences without going through text;
:data:`qforge.gen.asm.registry.BLOCKS` is what the assembler's block statements call. :func:`chunk_sizes` chooses the tiling and
:func:`gemm_fits` says whether one GEMM fits (the golden model's rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qforge.gen.asm.errors import BlockError
from qforge.gen.asm.syntax import FIELDS, ROUNDING_NAMES
from qforge.sim.model.capacity import gemm_capacity_error, tiles
from qforge.sim.model.isa import Opcode, Operand, encode
from qforge.sim.model.rounding import Rounding

__all__ = ["ADDRESS_BITS", "GEMM_FIELD_MAX", "gemm_fits", "chunk_sizes", "matmul_words",
           "linear_forward_words", "linear_backward_words", "sgd_update_words"]

#: Width of the LOAD/STORE address and stride fields (element addresses 0 .. 2**24 - 1).
ADDRESS_BITS = FIELDS[Opcode.LOAD]["address"]
#: Largest m, n or k one GEMM word can hold (16-bit fields).
GEMM_FIELD_MAX = (1 << FIELDS[Opcode.GEMM]["m"]) - 1


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


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BlockError(f"{name} = {value!r}: must be an integer of at least 1", name)
    return value


def _check_address(name: str, value, default: str | None = None) -> int:
    """``value`` of an address or stride operand; ``default`` names the size it was
    taken from when the operand was not given (the error blames that size)."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value < 1 << ADDRESS_BITS:
        if default is not None:
            raise BlockError(f"{name} defaults to {default} = {value!r}, beyond the "
                             f"strides 0 .. {(1 << ADDRESS_BITS) - 1} (give {name}, or a "
                             f"smaller {default})", default)
        raise BlockError(f"{name} = {value!r}: element addresses and strides are "
                         f"0 .. {(1 << ADDRESS_BITS) - 1}", name)
    return value


def _check_row_size(name: str, value) -> int:
    """A size of a ``linear_*`` or ``sgd_update`` block, which is also a row stride."""
    _check_count(name, value)
    if value >= 1 << ADDRESS_BITS:
        raise BlockError(f"{name} = {value!r}: at most {(1 << ADDRESS_BITS) - 1} (it is "
                         f"also a row stride, and strides are 0 .. "
                         f"{(1 << ADDRESS_BITS) - 1})", name)
    return value


def _check_config(config, block: str):
    if config is None:
        raise BlockError(f"{block} needs a hardware configuration to choose its chunk "
                         "sizes (assemble(..., config=...), or qforge asm --preset/--spec)")
    return config


def gemm_fits(config, m: int, n: int, k: int) -> bool:
    """Whether one GEMM of ``m x k`` by ``k x n`` fits the configuration's loader and
    buffers (docs/ISA.md, ``GEMM``: tile fields, reduction depth, one buffer half): the
    16-bit fields of the GEMM word hold the sizes, and the golden model's capacity rule
    (:func:`qforge.sim.model.capacity.gemm_capacity_error`) accepts them.

    >>> from qforge.sim.model.spec import load_preset
    >>> gemm_fits(load_preset("tiny"), 32, 32, 512), gemm_fits(load_preset("tiny"), 4, 2, 513)
    (False, False)
    """
    # The capacity rule judges decoded words, whose fields cannot exceed their width;
    # sizes given here as numbers must fit those fields first.
    if not all(1 <= size <= GEMM_FIELD_MAX for size in (m, n, k)):
        return False
    return gemm_capacity_error(config, m, n, k) is None


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
    tile_limit = 1 << config.tiles_field_width   # the GEMM command's tile counters
    depth_limit = min(config.max_reduction_depth, GEMM_FIELD_MAX)
    b_words = config.pe_buffer_depth if config.zero_skipping else config.buffer_depth
    word_limit = min(config.buffer_depth, b_words)
    if k <= depth_limit and tiles(k, width) <= word_limit:
        kc = k
    else:
        whole = min(word_limit, depth_limit // width)
        kc = whole * width if whole else depth_limit
    words = tiles(kc, width)
    mc = min(m, rows * min(config.buffer_depth // words, tile_limit), GEMM_FIELD_MAX)
    if config.zero_skipping:
        n_tiles = min(rows * (config.pe_buffer_depth // words), tile_limit)
    else:
        n_tiles = min(config.buffer_depth // words, tile_limit)
    nc = min(n, cols * n_tiles, GEMM_FIELD_MAX)
    return mc, nc, kc


def _tiled(config, a: _Matrix, b: _Matrix, c: _Matrix, m: int, n: int, k: int, *,
           skip_zeros: bool = False, update_bits: int | None = None,
           max_gemms: int | None = None) -> list[int]:
    """The words of ``C = A @ B`` tiled by :func:`chunk_sizes`. Without
    ``update_bits``, later ``k`` chunks accumulate onto ``C`` (addend = ``C``,
    ``saturate_bits = accumulator_width``); with it every GEMM is ``C <- clamp(C +
    output, update_bits)`` (the caller makes sure ``k`` is not split). A descriptor is
    only emitted when it differs from the one this block set last.

    Before any word is made, the last sub-matrix of A, B and C (the highest start
    address, as strides are not negative) must start inside the address field, and the
    tiling must need at most ``max_gemms`` GEMMs (when given): a :class:`BlockError`
    otherwise, at once, whatever the sizes."""
    mc, nc, kc = chunk_sizes(config, m, n, k)
    last_m, last_n, last_k = (m - 1) // mc * mc, (n - 1) // nc * nc, (k - 1) // kc * kc
    a.sub(last_m, last_k)
    b.sub(last_k, last_n)
    c.sub(last_m, last_n)
    gemms = tiles(m, mc) * tiles(n, nc) * tiles(k, kc)
    if max_gemms is not None and gemms > max_gemms:
        raise BlockError(f"m = {m}, n = {n}, k = {k}: the tiling needs {gemms} GEMMs (chunks "
                         f"of {mc} x {nc} x {kc} on {config.name!r}), more than the "
                         f"{max_gemms} one block may expand to (split it into smaller "
                         "blocks)")
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
                 transpose_b: bool = False, skip_zeros: bool = False,
                 max_gemms: int | None = None) -> list[int]:
    """``C = A @ B`` (A ``m x k`` at element address ``a``, B ``k x n`` at ``b``, C
    ``m x n`` row-major at ``c``) as LOAD/STORE/GEMM words tiled to fit ``config``.

    A is row-major with row stride ``a_stride`` (default ``k``), or with
    ``transpose_a`` the transpose of a row-major ``k x m`` matrix (default stride
    ``m``); the same for B (``b_stride``: default ``n``, or ``k`` transposed). C's row
    stride is ``c_stride`` (default ``n``). When ``k`` needs several GEMMs, the later
    ones add onto C (``add = 1``, ``saturate_bits = accumulator_width``), which is exact
    only with the raw output stage (``output`` with ``quantize = 0``): the block leaves
    the output stage as it is. With ``max_gemms``, a tiling of more GEMMs is a
    :class:`BlockError` before anything is expanded (the assembler's bound).

    >>> from qforge.gen.asm import disassemble
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
    defaults = {"a_stride": None if a_stride is not None else "m" if transpose_a else "k",
                "b_stride": None if b_stride is not None else "k" if transpose_b else "n",
                "c_stride": None if c_stride is not None else "n"}
    a_stride = (m if transpose_a else k) if a_stride is None else a_stride
    b_stride = (k if transpose_b else n) if b_stride is None else b_stride
    c_stride = n if c_stride is None else c_stride
    for name, value in (("a", a), ("b", b), ("c", c), ("a_stride", a_stride),
                        ("b_stride", b_stride), ("c_stride", c_stride)):
        _check_address(name, value, defaults.get(name))
    _check_skip_zeros(config, skip_zeros)
    return _tiled(config, _Matrix("a", a, a_stride, bool(transpose_a)),
                  _Matrix("b", b, b_stride, bool(transpose_b)), _Matrix("c", c, c_stride),
                  m, n, k, skip_zeros=skip_zeros, max_gemms=max_gemms)


def _renamed(error: BlockError, names: dict[str, str]) -> BlockError:
    operand = names.get(error.operand, error.operand)
    message = str(error)
    if error.operand in names:
        message = re.sub(rf"^{re.escape(error.operand)}\b", operand, message)
    return BlockError(message, operand)


def linear_forward_words(config, *, x: int, w: int, y: int, batch: int, inputs: int,
                         outputs: int, max_gemms: int | None = None) -> list[int]:
    """``y = x @ w``: x ``batch x inputs``, w ``inputs x outputs``, y ``batch x
    outputs``, all row-major with their own widths as strides (:func:`matmul_words`,
    whose ``max_gemms`` this passes on)."""
    config = _check_config(config, "linear_forward")
    for name, value in (("batch", batch), ("inputs", inputs), ("outputs", outputs)):
        _check_row_size(name, value)
    try:
        return matmul_words(config, a=x, b=w, c=y, m=batch, n=outputs, k=inputs,
                            max_gemms=max_gemms)
    except BlockError as error:
        raise _renamed(error, {"a": "x", "b": "w", "c": "y"}) from None


def linear_backward_words(config, *, x: int, w: int, dy: int, dw: int, batch: int,
                          inputs: int, outputs: int, dx: int | None = None,
                          max_gemms: int | None = None) -> list[int]:
    """The gradients of :func:`linear_forward_words`: ``dw = x^T @ dy`` (reading x
    transposed) and, when ``dx`` is given, ``dx = dy @ w^T`` (reading w transposed);
    dw is ``inputs x outputs``, dx ``batch x inputs``, row-major; ``max_gemms`` bounds
    each of the two products."""
    config = _check_config(config, "linear_backward")
    for name, value in (("batch", batch), ("inputs", inputs), ("outputs", outputs)):
        _check_row_size(name, value)
    try:
        words = matmul_words(config, a=x, b=dy, c=dw, m=inputs, n=outputs, k=batch,
                             a_stride=inputs, transpose_a=True, max_gemms=max_gemms)
    except BlockError as error:
        raise _renamed(error, {"a": "x", "b": "dy", "c": "dw"}) from None
    if dx is not None:
        try:
            words += matmul_words(config, a=dy, b=w, c=dx, m=batch, n=inputs, k=outputs,
                                  b_stride=outputs, transpose_b=True, max_gemms=max_gemms)
        except BlockError as error:
            raise _renamed(error, {"a": "dy", "b": "w", "c": "dx"}) from None
    return words


def sgd_update_words(config, *, w: int, x: int, dy: int, batch: int, inputs: int,
                     outputs: int, shift: int, weight_bits: int, seed: int,
                     tensor: int = 0,
                     rounding: Rounding = Rounding.STOCHASTIC,
                     max_gemms: int | None = None) -> list[int]:
    """The SGD weight update ``W <- clamp(W + round_stochastic((x^T @ dy) / 2**shift),
    weight_bits)``: ``SEED seed, tensor``, ``OUTPUT quantize=1, wide=1,
    rounding=stochastic, shift``, then the ``x^T @ dy`` GEMMs with W as addend and
    result (``add = 1``, ``saturate_bits = weight_bits``). W is ``inputs x outputs``
    row-major; the GEMMs may be split along ``inputs`` and ``outputs`` but not along
    ``batch`` (a :class:`BlockError` if one GEMM cannot take it). The output stage is
    left as set here. ``rounding`` (Python API only) picks another rounding of the
    output stage: :attr:`~qforge.sim.model.rounding.Rounding.NEAREST_EVEN` (the update
    loses increments below half an LSB) or ``TRUNCATE``. ``max_gemms`` bounds the
    tiling as in :func:`matmul_words`."""
    config = _check_config(config, "sgd_update")
    if rounding not in tuple(Rounding):
        raise BlockError(f"rounding = {rounding!r}: allowed "
                         + ", ".join(f"{int(code)} ({ROUNDING_NAMES[code]})"
                                     for code in Rounding), "rounding")
    for name, value in (("batch", batch), ("inputs", inputs), ("outputs", outputs)):
        _check_row_size(name, value)
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
    for name, value in (("seed", seed), ("tensor", tensor)):
        bits = FIELDS[Opcode.SEED][name]
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
                          update_bits=weight_bits, max_gemms=max_gemms)
