"""Golden model of qforge's arithmetic: the operand format, precision modes and GEMM.

This module is the single definition of every number-affecting rule in the foundation:
how an operand is split into blocks, which blocks a precision mode keeps, what a block
product is, and how products accumulate. The HDL (``qforge.hdl``) implements these rules
and its comments point here; ``docs/NUMERICS.md`` explains them with worked examples.

The operand format
------------------
A configuration fixes the operand width ``W``, the block width ``K`` (dividing ``W``)
and so ``B = W // K`` blocks per operand. An input operand is a ``W``-bit two's-complement
integer ``x``. Internally it is a **sign** ``s`` (1 for negative) and a ``W``-bit unsigned
**magnitude** ``|x|`` (the most negative value ``-2**(W-1)`` has magnitude ``2**(W-1)``,
which still fits in ``W`` bits). The magnitude is cut into ``B`` blocks of ``K`` bits,
block 0 least significant::

    |x| = sum(block[i] * 2**(i*K) for i in range(B))

A precision mode keeps ``L`` consecutive blocks starting at the **exponent** ``e`` (a
block index), so every operand the PE sees is the triple ``(s, kept blocks, e)`` with the
value ``(-1)**s * sum(kept[i] * 2**((e + i) * K) for i in range(L))``.

Precision modes (chosen per GEMM, per operand)
----------------------------------------------
``OperandPrecision(blocks=n, kept=L, selection)`` with ``1 <= L <= n <= B``:

* ``n`` (*reduced precision in whole blocks*): the operand is an ``n*K``-bit
  two's-complement integer, so only blocks ``0 .. n-1`` can be non-zero. Operands out of
  that range are rejected by :func:`check_operands` (the hardware ignores blocks ``>= n``).
* ``L == n``: *exact*, all ``n`` blocks are kept, ``e = 0``.
* ``L < n`` and ``Selection.STATIC``: Ax-BxP static approximation, the ``L`` most
  significant block positions are kept for every value: ``e = n - L``.
* ``L < n`` and ``Selection.DYNAMIC``: Ax-BxP dynamic approximation, the ``L`` blocks
  starting at the value's leading non-zero block are kept: with ``t`` the index of the
  highest non-zero block (``t = 0`` for zero), ``e = max(t - L + 1, 0)``.

Dropped blocks are discarded (truncation of the magnitude toward zero; the sign is kept),
so an approximated operand is never larger in magnitude than the original.

Products and accumulation
-------------------------
A multiply-accumulate of ``a`` (mode with ``La`` kept blocks) and ``b`` (``Lb`` kept
blocks) is ``q = La * Lb`` block products, each a ``K x K`` unsigned product shifted left
by ``(ea + i + eb + j) * K`` bits and negated when the signs differ. The products of a
dot product are summed exactly in a two's-complement accumulator wide enough that no
partial sum can overflow (:attr:`qforge.sim.model.spec.Config.accumulator_width`). Integer
addition is associative, so the accumulation order (which the hardware chooses for
speed) never changes a result.

All functions are vectorized over numpy arrays; none loops over elements in Python.

(Over 500 lines because it is one concept: the operand format, the precision modes
including their validation, and the GEMM that applies them, defined once together.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from qforge.sim.model.blocks import dynamic_exponent
from qforge.sim.model.errors import OperandError
from qforge.sim.model.exact_matmul import exact_integer_matmul
from qforge.sim.model.paired import PairedPrecision, check_paired, paired_operands
from qforge.sim.model.saturation import signed_range
from qforge.sim.model.spec import Config
from qforge.sim.model.vrq_format import vrq_pack, vrq_unpack

__all__ = [
    "Selection", "OperandPrecision", "Precision", "OperandError",
    "sign_magnitude", "split_blocks", "leading_block", "select_blocks", "dynamic_exponent",
    "operand_value", "check_operands", "gemm", "gemm_block_products",
    "standard_modes", "vrq_pack", "vrq_unpack", "operand_bound",
    "zero_operands", "exact_integer_matmul", "operand_range", "PairedPrecision",
]


class Selection(enum.IntEnum):
    """How an approximate mode picks the ``L`` kept blocks (irrelevant when exact)."""

    STATIC = 0   #: fixed positions: the top ``L`` of the ``n`` blocks
    DYNAMIC = 1  #: per value: the ``L`` blocks from the leading non-zero block down


@dataclass(frozen=True)
class OperandPrecision:
    """Precision of one GEMM operand: ``blocks`` (n), ``kept`` (L) and the selection.

    >>> OperandPrecision(blocks=4, kept=2, selection=Selection.DYNAMIC).describe()
    '4 blocks, dynamic top 2'
    >>> OperandPrecision(blocks=2, kept=2).describe()
    '2 blocks'
    """

    blocks: int
    kept: int
    selection: Selection = Selection.STATIC
    #: The operand words are VRQ carriers (:func:`vrq_pack`); blocks count code blocks.
    vrq: bool = False
    #: Unsigned integers ``0 .. 2**(n*K) - 1``: the sign bit's place holds magnitude
    #: (post-ReLU activations; configurations with ``arithmetic.paired``).
    unsigned: bool = False
    #: Operand A only, exact with all ``B`` blocks: the paired mode's windows
    #: (:mod:`qforge.sim.model.paired`); ``None`` for every other mode.
    paired: PairedPrecision | None = None

    @property
    def exact(self) -> bool:
        """All kept (for a paired operand: before its pairs' windows)."""
        return self.kept == self.blocks

    def validate(self, config: Config, operand: str) -> None:
        """Raise :class:`ValueError` naming the field unless ``1 <= kept <= blocks <= B``
        (for a VRQ operand ``blocks <= ceil(N / K)``, and the config must have VRQ)."""
        if self.vrq and config.vrq is None:
            raise OperandError(f"{operand}.vrq = True: this configuration has no [vrq] "
                             f"section, so its PEs take integer operands only")
        limit = config.vrq_code_blocks if self.vrq else config.blocks
        what = (f"blocks of {config.block_width} bits in a {config.vrq_code_width}-bit "
                f"VRQ code" if self.vrq else f"blocks of {config.block_width} bits in a "
                f"{config.operand_width}-bit operand")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) \
                or not 1 <= self.blocks <= limit:
            raise OperandError(f"{operand}.blocks = {self.blocks!r}: allowed range is "
                             f"1 .. {limit} ({what})")
        if isinstance(self.kept, bool) or not isinstance(self.kept, int) \
                or not 1 <= self.kept <= self.blocks:
            raise OperandError(f"{operand}.kept = {self.kept!r}: allowed range is "
                             f"1 .. {operand}.blocks ({self.blocks})")
        if not isinstance(self.selection, Selection):
            raise OperandError(f"{operand}.selection = {self.selection!r}: must be "
                             f"Selection.STATIC or Selection.DYNAMIC")
        if not isinstance(self.unsigned, bool):
            raise OperandError(f"{operand}.unsigned = {self.unsigned!r}: must be True or "
                               f"False")
        if self.unsigned and not config.paired:
            raise OperandError(f"{operand}.unsigned = True: this configuration is not "
                               f"built with arithmetic.paired = true (unsigned operands "
                               f"widen its accumulator)")
        if self.unsigned and self.vrq:
            raise OperandError(f"{operand}.unsigned = True: not with vrq = True (a VRQ "
                               f"word has its own sign bit)")
        if self.paired is not None:
            self._validate_paired(config, operand)

    def _validate_paired(self, config: Config, operand: str) -> None:
        if not isinstance(self.paired, PairedPrecision):
            raise OperandError(f"{operand}.paired = {self.paired!r}: must be a "
                               f"PairedPrecision or None")
        if operand != "a":
            raise OperandError(f"{operand}.paired: only operand A is paired (the "
                               f"controller reads the activations)")
        if not config.paired:
            raise OperandError(f"{operand}.paired: this configuration is not built with "
                               f"arithmetic.paired = true")
        if self.vrq or self.kept != self.blocks or self.blocks != config.blocks \
                or self.selection != Selection.STATIC:
            raise OperandError(f"{operand}.paired: A must be an exact integer operand of "
                               f"all {config.blocks} blocks (blocks = kept = "
                               f"{config.blocks}, selection STATIC, vrq = False; the "
                               f"instruction's dynamic = 0); the pairs' windows reduce it")
        check_paired(config, self.paired)

    def describe(self) -> str:
        prefix = ("VRQ, " if self.vrq else "") + ("unsigned, " if self.unsigned else "")
        if self.paired is not None:
            return f"{prefix}{self.blocks} blocks, {self.paired.describe()}"
        if self.exact:
            return f"{prefix}{self.blocks} blocks"
        return f"{prefix}{self.blocks} blocks, {self.selection.name.lower()} top {self.kept}"


@dataclass(frozen=True)
class Precision:
    """The per-GEMM precision mode: one :class:`OperandPrecision` for A and one for B."""

    a: OperandPrecision
    b: OperandPrecision

    def validate(self, config: Config) -> None:
        self.a.validate(config, "a")
        self.b.validate(config, "b")

    @property
    def block_products(self) -> int:
        """``q``: block products per multiply-accumulate, ``a.kept * b.kept``."""
        return self.a.kept * self.b.kept

    def describe(self) -> str:
        return f"A: {self.a.describe()}; B: {self.b.describe()}"


def standard_modes(config: Config) -> dict[str, Precision]:
    """The named precision modes that the demo, benchmark and tests sweep.

    ``exact`` keeps every block; ``reduced`` uses half the blocks (narrower integers);
    ``mixed`` is full A with half-width B; ``approx_static``/``approx_dynamic`` keep half
    the blocks of full-width operands; ``approx_dynamic_1`` keeps a single block (the
    same mode as ``approx_dynamic`` when B <= 3, listed anyway so every preset has it).
    With one block per operand the approximate and reduced modes collapse into exact.

    >>> from qforge.sim.model.spec import load_preset
    >>> sorted(standard_modes(load_preset("default")))
    ['approx_dynamic', 'approx_dynamic_1', 'approx_static', 'exact', 'mixed', 'reduced']
    >>> standard_modes(load_preset("default"))["approx_dynamic"].describe()
    'A: 4 blocks, dynamic top 2; B: 4 blocks, dynamic top 2'
    >>> tiny = standard_modes(load_preset("tiny"))   # B = 2: half is one block
    >>> tiny["approx_dynamic"] == tiny["approx_dynamic_1"]
    True
    """
    blocks = config.blocks
    half = max(1, blocks // 2)
    full = OperandPrecision(blocks, blocks)
    short = OperandPrecision(half, half)
    modes = {
        "exact": Precision(full, full),
        "reduced": Precision(short, short),
        "mixed": Precision(full, short),
        "approx_static": Precision(OperandPrecision(blocks, half, Selection.STATIC),
                                   OperandPrecision(blocks, half, Selection.STATIC)),
        "approx_dynamic": Precision(OperandPrecision(blocks, half, Selection.DYNAMIC),
                                    OperandPrecision(blocks, half, Selection.DYNAMIC)),
        "approx_dynamic_1": Precision(OperandPrecision(blocks, 1, Selection.DYNAMIC),
                                      OperandPrecision(blocks, 1, Selection.DYNAMIC)),
    }
    return modes


# ---- the operand format ------------------------------------------------------------

def sign_magnitude(x, config: Config):
    """Split two's-complement operands into ``(sign, magnitude)`` (both ``int64``).

    ``sign`` is 1 for negative values; ``magnitude`` is ``|x|``, at most ``2**(W-1)``.

    >>> from qforge.sim.model.spec import load_preset
    >>> sign_magnitude(np.array([-128, -1, 0, 77]), load_preset("default"))
    (array([1, 1, 0, 0]), array([128,   1,   0,  77]))
    """
    x = np.asarray(x, dtype=np.int64)
    return (x < 0).astype(np.int64), np.abs(x)


def split_blocks(magnitude, config: Config) -> np.ndarray:
    """Cut magnitudes into ``B`` blocks of ``K`` bits; new last axis, block 0 lowest.

    >>> from qforge.sim.model.spec import load_preset
    >>> split_blocks(np.array([77, 128]), load_preset("default"))  # K = 2, B = 4
    array([[1, 3, 0, 1],
           [0, 0, 0, 2]])
    """
    return _split(magnitude, config.block_width, config.blocks)


def _split(magnitude, block_width: int, count: int) -> np.ndarray:
    magnitude = np.asarray(magnitude, dtype=np.int64)
    shifts = np.arange(count, dtype=np.int64) * block_width
    return (magnitude[..., None] >> shifts) & ((1 << block_width) - 1)


def leading_block(blocks: np.ndarray) -> np.ndarray:
    """Index of the highest non-zero block along the last axis; 0 when all are zero.

    >>> leading_block(np.array([[1, 3, 0, 1], [1, 3, 0, 0], [0, 0, 0, 0]]))
    array([3, 1, 0])
    """
    count = blocks.shape[-1]
    nonzero = blocks != 0
    # argmax on the reversed axis finds the highest non-zero block; all-zero gives 0.
    highest_from_top = np.argmax(nonzero[..., ::-1], axis=-1)
    return np.where(nonzero.any(axis=-1), count - 1 - highest_from_top, 0)


def select_blocks(x, config: Config, precision: OperandPrecision):
    """Apply a precision mode: return ``(sign, kept, exponent)`` for each operand.

    ``kept`` has a new last axis of ``precision.kept`` blocks (lowest first); the kept
    block ``i`` sits at block position ``exponent + i``. Blocks at positions ``>= n`` are
    ignored (operands must fit in ``n*K`` bits; see :func:`check_operands`).

    Worked example (default preset, ``K = 2``): 77 has blocks ``[1, 3, 0, 1]``.

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> select_blocks(np.array([77, 13]), cfg, OperandPrecision(4, 2, Selection.DYNAMIC))
    (array([0, 0]), array([[0, 1],
           [1, 3]]), array([2, 0]))
    >>> select_blocks(np.array([77, 13]), cfg, OperandPrecision(4, 2, Selection.STATIC))
    (array([0, 0]), array([[0, 1],
           [0, 0]]), array([2, 2]))
    """
    if precision.vrq:
        sign, magnitude, group = vrq_unpack(x, config)
        range_offset = (config.vrq_ranges - 1 - group) * (config.vrq_range_stride
                                                          // config.block_width)
    else:
        sign, magnitude = sign_magnitude(x, config)
        range_offset = 0
    blocks = _split(magnitude, config.block_width, max(config.blocks,
                                                       config.vrq_code_blocks))
    blocks = blocks[..., :precision.blocks]
    kept = precision.kept
    if precision.exact:
        exponent = np.zeros(magnitude.shape, dtype=np.int64)
    elif precision.selection == Selection.STATIC:
        exponent = np.full(magnitude.shape, precision.blocks - kept, dtype=np.int64)
    else:
        exponent = np.maximum(leading_block(blocks) - (kept - 1), 0)
    positions = exponent[..., None] + np.arange(kept, dtype=np.int64)
    kept_blocks = np.take_along_axis(blocks, positions, axis=-1)
    return sign, kept_blocks, exponent + range_offset


def operand_value(x, config: Config, precision: OperandPrecision) -> np.ndarray:
    """The integer value the PE multiplies: kept blocks shifted into place, signed.

    Equal to ``(-1)**sign * sum(kept[i] << ((exponent + i) * K))`` of
    :func:`select_blocks`, computed with whole-word bit arithmetic for speed (the
    emulator calls this on every operand): magnitudes are masked to the ``n*K`` bits in
    use, the exponent is :func:`dynamic_exponent` (counted by comparing with
    block-aligned thresholds), and the blocks below ``e`` are cleared. Tests check the equality with :func:`select_blocks`.

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> operand_value(np.array([-77, 77, 13, -128]), cfg,
    ...               OperandPrecision(4, 2, Selection.DYNAMIC))
    array([ -64,   64,   13, -128])
    >>> operand_value(np.array([-77, 77, 13, -128]), cfg,
    ...               OperandPrecision(4, 1, Selection.DYNAMIC))
    array([ -64,   64,   12, -128])
    >>> operand_value(np.array([-77, 77, 13, -128]), cfg, OperandPrecision(4, 4))
    array([ -77,   77,   13, -128])
    """
    x = np.asarray(x, dtype=np.int64)
    if precision.vrq:
        sign_bit, code, group = vrq_unpack(x, config)
        plain = OperandPrecision(precision.blocks, precision.kept, precision.selection)
        value = operand_value(code, config, plain) << (
            (config.vrq_ranges - 1 - group) * config.vrq_range_stride)
        return np.where(sign_bit == 1, -value, value)
    k, blocks, kept = config.block_width, precision.blocks, precision.kept
    magnitude = np.abs(x) & ((1 << (blocks * k)) - 1)      # blocks >= n are ignored
    if precision.exact:
        kept_magnitude = magnitude
    elif precision.selection == Selection.STATIC:
        low_bits = (blocks - kept) * k
        kept_magnitude = (magnitude >> low_bits) << low_bits
    else:
        low_bits = dynamic_exponent(magnitude, k, blocks, kept) * k
        kept_magnitude = (magnitude >> low_bits) << low_bits
    # Restore the sign without np.where (much slower on int64): with s = x >> 63, which
    # is -1 for negative x and 0 otherwise, (v ^ s) - s is -v or v.
    sign = x >> 63
    return (kept_magnitude ^ sign) - sign


def zero_operands(x, config: Config, precision: OperandPrecision) -> np.ndarray:
    """Which operands the zero-skipping array skips: True where the operand word is
    zero, or, for a VRQ operand, where its code is zero (whatever its sign and range).

    This is the rule the hardware applies when it loads A (``hdl/compactor.py``) and the
    one the cycle model counts with (:func:`qforge.sim.model.cycles.row_cycles`). Skipping
    never changes a result: a skipped operand's products are all zero. Operands that are
    not zero but whose kept blocks are (a static mode that drops their only non-zero
    blocks, or non-zero bits in blocks ``>= n``) are computed, not skipped.

    >>> from qforge.sim.model.spec import from_dict, load_preset
    >>> cfg = load_preset("default")
    >>> zero_operands(np.array([0, 3, -128, 0]), cfg, OperandPrecision(4, 4))
    array([ True, False, False,  True])

    A VRQ word with code 0 is zero even with its sign and range bits set:

    >>> spec = cfg.to_dict() | {"vrq": {"code_width": 4, "range_stride": 2, "ranges": 8}}
    >>> vrq_cfg = from_dict(spec)
    >>> words = vrq_pack(np.array([1, 0, 1]), np.array([0, 0, 5]), np.array([7, 3, 0]),
    ...                  vrq_cfg)
    >>> zero_operands(words, vrq_cfg, OperandPrecision(2, 2, vrq=True))
    array([ True,  True, False])
    """
    x = np.asarray(x, dtype=np.int64)
    if precision.vrq:
        return (x & ((1 << config.vrq_code_width) - 1)) == 0
    return x == 0


def check_operands(a, b, config: Config, precision: Precision):
    """Validate GEMM operands and return them as ``int64`` matrices.

    ``a`` is ``M x D``, ``b`` is ``D x N``, ``1 <= D <= max_reduction_depth``, and every
    element of an operand with ``n`` blocks lies in ``[-2**(n*K-1), 2**(n*K-1) - 1]``.
    Raises :class:`OperandError` naming the operand, the first bad element and the range.

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> mode = Precision(OperandPrecision(2, 2), OperandPrecision(4, 4))
    >>> check_operands(np.array([[8]]), np.array([[1]]), cfg, mode)
    Traceback (most recent call last):
    ...
    qforge.sim.model.errors.OperandError: a[0, 0] = 8: out of range for 2 blocks of 2 bits; allowed -8 .. 7
    """
    precision.validate(config)
    matrices = []
    for name, matrix, operand in (("a", a, precision.a), ("b", b, precision.b)):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise OperandError(f"{name}: must be a 2-D matrix, got shape {matrix.shape}")
        if matrix.dtype.kind not in "iub":
            raise OperandError(f"{name}: must hold integers, got dtype {matrix.dtype}")
        if operand.vrq:
            matrices.append(_check_vrq(name, matrix, config, operand))
            continue
        low, high = operand_range(config, operand)
        # Range-check before converting: a uint64 above 2**63 would wrap to negative.
        if matrix.size and (int(matrix.min()) < low or int(matrix.max()) > high):
            bad = (matrix > high) if matrix.dtype.kind in "ub" else \
                (matrix < low) | (matrix > high)
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise OperandError(
                f"{name}[{', '.join(map(str, index))}] = {matrix[index]}: out of range for "
                f"{operand.blocks}{' unsigned' if operand.unsigned else ''} blocks of "
                f"{config.block_width} bits; allowed {low} .. {high}")
        matrices.append(matrix.astype(np.int64, copy=False))
    a, b = matrices
    if a.shape[1] != b.shape[0]:
        raise OperandError(f"inner dimensions differ: a is {a.shape[0]} x {a.shape[1]}, "
                           f"b is {b.shape[0]} x {b.shape[1]}")
    depth = a.shape[1]
    if not 1 <= depth <= config.max_reduction_depth:
        raise OperandError(f"depth (inner dimension) = {depth}: allowed range is 1 .. "
                           f"{config.max_reduction_depth} (arithmetic.max_reduction_depth)")
    if a.shape[0] < 1 or b.shape[1] < 1:
        raise OperandError(f"result shape {a.shape[0]} x {b.shape[1]} is empty")
    return a, b


def _check_vrq(name, matrix, config: Config, operand: OperandPrecision) -> np.ndarray:
    """VRQ carriers: W-bit words whose range index is below G and whose code fits in
    ``blocks`` code blocks."""
    low, high = signed_range(config.operand_width)
    if matrix.size and (int(matrix.min()) < low or int(matrix.max()) > high):
        index = tuple(int(i) for i in np.argwhere((matrix < low) | (matrix > high))[0])
        raise OperandError(f"{name}[{', '.join(map(str, index))}] = {matrix[index]}: not a "
                           f"{config.operand_width}-bit VRQ word; allowed {low} .. {high}")
    matrix = matrix.astype(np.int64, copy=False)
    _, code, group = vrq_unpack(matrix, config)
    code_limit = 1 << min(operand.blocks * config.block_width, config.vrq_code_width)
    bad = (group >= config.vrq_ranges) | (code >= code_limit)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise OperandError(
            f"{name}[{', '.join(map(str, index))}] = {matrix[index]}: VRQ range "
            f"{group[index]} (allowed 0 .. {config.vrq_ranges - 1}) and code {code[index]} "
            f"(allowed 0 .. {code_limit - 1} with {operand.blocks} code blocks)")
    return matrix


def operand_range(config: Config, operand: OperandPrecision) -> tuple[int, int]:
    """The integers an (integer, not VRQ) operand may hold: ``n*K``-bit two's complement,
    or ``0 .. 2**(n*K) - 1`` when ``unsigned``.

    >>> from qforge.sim.model.spec import load_preset
    >>> paired = load_preset("paired")
    >>> operand_range(paired, OperandPrecision(4, 4)), operand_range(
    ...     paired, OperandPrecision(4, 4, unsigned=True))
    ((-128, 127), (0, 255))
    """
    bits = operand.blocks * config.block_width
    return (0, (1 << bits) - 1) if operand.unsigned else signed_range(bits)


def operand_bound(config: Config, operand: OperandPrecision) -> int:
    """The largest magnitude an operand can have in its mode (approximation never
    grows a magnitude, and a paired window's rounding stays within the operand's
    range's magnitude): ``2**(n*K - 1)`` for integers, ``2**(n*K) - 1`` unsigned, the
    largest code shifted to range 0 for VRQ."""
    if operand.unsigned:
        return (1 << (operand.blocks * config.block_width)) - 1
    if operand.vrq:
        code_bits = min(operand.blocks * config.block_width, config.vrq_code_width)
        return ((1 << code_bits) - 1) << ((config.vrq_ranges - 1) * config.vrq_range_stride)
    return 1 << (operand.blocks * config.block_width - 1)


# Kept under its old private name for qforge.sim.bench.scenarios, which should import
# exact_integer_matmul.
_exact_integer_matmul = exact_integer_matmul


def gemm(a, b, config: Config, precision: Precision) -> np.ndarray:
    """The bit-exact result of one GEMM on the accelerator: ``int64`` matrix ``M x N``.

    Each operand is replaced by :func:`operand_value` under its precision mode and the
    product is computed exactly (an integer GEMM on float32 or float64 BLAS, chosen so
    no partial sum can lose a bit; never a Python loop over elements). Equal, by associativity of integer addition, to the sum of every shifted
    block product in any order (see :func:`gemm_block_products`).

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> a = np.array([[77, -128], [13, 5]]); b = np.array([[1, -1], [2, 3]])
    >>> gemm(a, b, cfg, standard_modes(cfg)["exact"])
    array([[-179, -461],
           [  23,    2]])
    >>> gemm(a, b, cfg, standard_modes(cfg)["approx_dynamic_1"])
    array([[-192, -448],
           [  20,    0]])
    """
    a, b = check_operands(a, b, config, precision)
    # Approximation never grows a magnitude, so the operand ranges bound every sum.
    bound = (operand_bound(config, precision.a) * operand_bound(config, precision.b)
             * a.shape[1])
    # An exact integer mode keeps every block: operand_value is the identity on the
    # in-range operands check_operands has just accepted, so it is skipped.
    if precision.a.paired is not None:
        a = paired_operands(a, config, precision.a.paired)
    elif precision.a.vrq or not precision.a.exact:
        a = operand_value(a, config, precision.a)
    if precision.b.vrq or not precision.b.exact:
        b = operand_value(b, config, precision.b)
    return exact_integer_matmul(a, b, bound)


def gemm_block_products(a, b, config: Config, precision: Precision) -> np.ndarray:
    """The same GEMM written as the PE computes it: a sum of block-product GEMMs.

    For every pair of kept blocks ``(i, j)`` the signed, exponent-shifted block matrices
    are multiplied; the ``La * Lb`` partial GEMMs are summed. Slower than :func:`gemm`
    (``q`` integer GEMMs instead of one) and used to check it.

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> a = np.array([[77, -128], [13, 5]]); b = np.array([[1, -1], [2, 3]])
    >>> mode = standard_modes(cfg)["approx_dynamic"]
    >>> bool((gemm_block_products(a, b, cfg, mode) == gemm(a, b, cfg, mode)).all())
    True
    """
    a, b = check_operands(a, b, config, precision)
    k = config.block_width
    if precision.a.paired is not None:      # the windowed operands, exact from here on
        a = paired_operands(a, config, precision.a.paired)
    sign_a, blocks_a, exp_a = select_blocks(a, config, precision.a)
    sign_b, blocks_b, exp_b = select_blocks(b, config, precision.b)
    result = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for i in range(precision.a.kept):        # q = La * Lb GEMMs, each vectorized
        block_a = np.where(sign_a == 1, -1, 1) * (blocks_a[..., i] << ((exp_a + i) * k))
        for j in range(precision.b.kept):
            block_b = np.where(sign_b == 1, -1, 1) * (blocks_b[..., j] << ((exp_b + j) * k))
            result += exact_integer_matmul(block_a, block_b)
    return result
