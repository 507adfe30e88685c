"""The number formats of training: operand formats, the quantized operand, the weight
format, and the random keys of every quantized tensor.

Operands
--------
Each tensor a GEMM reads is quantized **once, as stored** (row-major, in its own
coordinates), into the configured operand format (:func:`quantize_operand`); a
transposed read (``H^T``, ``W2^T``, ``X^T``) uses the same quantized tensor transposed,
as the hardware reads the same buffer contents in transposed order. Formats
(:class:`OperandFormat`):

* ``int``: ``bits``-bit two's-complement codes, one power-of-two scale per tensor from
  its largest magnitude: unit ``2**(E - bits + 2)`` with ``E = floor(log2 max|x|)`` (this
  is :func:`~qforge.sim.model.quantize.address_block_encode` with one block covering the whole
  tensor). The GEMM is :func:`qforge.sim.model.numerics.gemm` on the codes with the
  configured :class:`~qforge.sim.model.numerics.Precision` (all blocks: exact; fewer kept
  blocks: Ax-BxP approximation), so ``bits`` must be a multiple of the block width ``K``
  and at most the operand width ``W``: 8-bit operands are the ``exact`` mode of the
  default preset, 4-bit operands its ``reduced`` mode (2 blocks of 2 bits).
  ``unsigned`` (a non-negative tensor: the CNN's input pixels and post-ReLU
  activations) uses the sign bit's place for magnitude: codes ``0 .. 2**bits - 1``
  with unit ``2**(E - bits + 1)``, one more bit than signed; these are exactly the
  ``bits + 1``-bit two's-complement codes of the same rule (the quantizer is the
  signed one, called with one more bit), and the GEMM multiplies them as the golden
  model's unsigned operands (:attr:`~qforge.sim.model.numerics.OperandPrecision.unsigned`,
  a preset with ``arithmetic.paired``). A negative value is an error.
* ``vrq``: value-range quantization (:func:`~qforge.sim.model.quantize.vrq_encode`) with a
  :class:`~qforge.sim.model.quantize.VrqFormat`; the PE multiplies the integer forms of
  :func:`~qforge.sim.model.quantize.vrq_integer`. With fewer kept blocks, the kept-block
  approximation (:func:`~qforge.sim.model.numerics.operand_value`) applies to each ``N``-bit
  code (``ceil(code_width / K)`` blocks) before it is shifted by its range.
* ``address_block``: Cambricon-Q's baseline
  (:func:`~qforge.sim.model.quantize.address_block_encode`): ``bits``-bit codes with one
  power-of-two scale per ``block`` contiguous elements (row-major in the stored tensor;
  the block is a hardware buffer size). The integer form shifts each code by its block's
  unit above the tensor's smallest unit.

Rounding and random bits
------------------------
Operand quantization rounds to nearest (ties to even) or stochastically. Stochastic
rounding uses :func:`qforge.sim.model.random_bits.random_bits` keyed by the run's seed and a
**tensor counter** that is distinct for every tensor of every step (``step * 8 + slot``,
slots listed in :data:`SLOTS`), indexed by the element's coordinates in the stored
tensor, so no random bits are ever reused. The counter is split into the generator's key words
by :func:`random_key` (:func:`slot_key` for a slot of a step): ``tensor = counter mod 2**16``, ``seed word = seed * 2**16 +
counter // 2**16`` (so ``seed < 2**16``).

Weights and the update
----------------------
Low-precision runs keep **no float master copy**: the weights are integer codes of a
``weight_bits``-bit two's-complement fixed-point format covering ``[-range, range)``
(:class:`WeightFormat`, unit ``2 * range / 2**weight_bits``). The initial float weights
are rounded to nearest into it. Each step computes ``W - lr * dW`` and rounds it back
into the format (:meth:`WeightFormat.quantize`) to nearest or stochastically (with
rounding up probability equal to the discarded fraction), saturating at the range.
With round-to-nearest, any update smaller than half a weight LSB is lost entirely: the
Gupta et al. effect. :attr:`qforge.sim.training.report.RunResult.small_update_fraction` measures how many updates
that is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qforge.sim.model.capacity import tiles
from qforge.sim.model.numerics import OperandPrecision, Selection, operand_value
from qforge.sim.model.quantize import address_block_encode, vrq_encode, vrq_exponent, vrq_integer
from qforge.sim.model.rounding import Rounding, round_scaled
from qforge.sim.model.saturation import saturate, signed_range
from qforge.sim.model.spec import Config
from qforge.sim.model.vrq_format import VrqFormat

__all__ = ["SLOTS", "random_key", "slot_key", "OperandFormat", "WeightFormat", "Quantized",
           "quantize_operand"]

#: Tensor slots of one training step: each quantized tensor and each weight update gets
#: its own slot, so its stochastic-rounding bits are never shared with another tensor.
SLOTS = ("x", "w1", "h", "w2", "dz2", "dz1", "update_w1", "update_w2")
_SLOT = {name: index for index, name in enumerate(SLOTS)}


def random_key(seed: int, counter: int) -> tuple[int, int]:
    """Random-bit key words ``(seed word, tensor id)`` for tensor number ``counter`` of a run.

    ``tensor = counter mod 2**16`` and ``seed word = seed * 2**16 + counter // 2**16``,
    so distinct ``(seed, counter)`` pairs (``seed < 2**16``, ``counter < 2**32``) never
    share random bits.

    >>> random_key(1, 5), random_key(1, 65536 + 5)
    ((65536, 5), (65537, 5))
    """
    if not 0 <= seed < 1 << 16:
        raise ValueError(f"seed = {seed!r}: allowed range is 0 .. 65535")
    if not 0 <= counter < 1 << 32:
        raise ValueError(f"tensor counter = {counter!r}: allowed range is 0 .. 2**32 - 1")
    return (seed << 16) | (counter >> 16), counter & 0xFFFF


def slot_key(seed: int, step: int, slot: str) -> tuple[int, int]:
    """The :func:`random_key` of tensor ``slot`` (one of :data:`SLOTS`) of step ``step``:
    tensor counter ``step * len(SLOTS) + slot index``.

    >>> slot_key(1, 2, "h") == random_key(1, 2 * 8 + 2)
    True
    """
    return random_key(seed, step * len(SLOTS) + _SLOT[slot])


@dataclass(frozen=True)
class OperandFormat:
    """How the hardware stores and multiplies GEMM operands in one training run.

    ``kind`` is ``"int"``, ``"vrq"`` or ``"address_block"``; ``config`` is the hardware
    (its block width ``K`` and operand width ``W`` matter); ``bits`` are the code bits of
    ``int``/``address_block``; ``vrq`` the :class:`VrqFormat`; ``block`` the
    address-block size; ``kept`` the blocks kept per operand (``None``: all, exact) with
    ``selection``; ``unsigned`` (``int`` only): non-negative codes ``0 .. 2**bits - 1``
    (the module docstring).

    >>> from qforge.sim.model.spec import load_preset
    >>> fmt = OperandFormat("int", load_preset("default"), bits=8, kept=2)
    >>> fmt.precision.describe(), fmt.describe()
    ('4 blocks, dynamic top 2', 'int8, 4 blocks, dynamic top 2')
    >>> OperandFormat("vrq", load_preset("default"), vrq=VrqFormat(4, 2, 8)).describe()
    'vrq N=4 S=2 G=8 (8 bits), 2 blocks'
    >>> OperandFormat("int", load_preset("paired"), unsigned=True).describe()
    'int8, unsigned, 4 blocks'
    """

    kind: str
    config: Config
    bits: int = 8
    vrq: VrqFormat | None = None
    block: int = 64
    kept: int | None = None
    selection: Selection = Selection.DYNAMIC
    unsigned: bool = False

    @property
    def code_blocks(self) -> int:
        """Blocks of ``K`` bits in a code's magnitude (VRQ: the ``N``-bit code)."""
        width = self.vrq.code_width if self.kind == "vrq" else self.bits
        return tiles(width, self.config.block_width)

    @property
    def precision(self) -> OperandPrecision:
        """The per-operand precision mode the PE applies to the codes."""
        blocks = self.code_blocks
        kept = blocks if self.kept is None else self.kept
        return OperandPrecision(blocks, kept, self.selection if kept < blocks
                                else Selection.STATIC, unsigned=self.unsigned)

    @property
    def storage_bits(self) -> int:
        return self.vrq.storage_bits if self.kind == "vrq" else self.bits

    def describe(self) -> str:
        if self.kind == "vrq":
            v = self.vrq
            name = (f"vrq N={v.code_width} S={v.range_stride} G={v.ranges} "
                    f"({v.storage_bits} bits)")
        elif self.kind == "int":
            name = f"int{self.bits}"
        else:
            name = f"address-block int{self.bits}/{self.block}"
        return f"{name}, {self.precision.describe()}"


@dataclass(frozen=True)
class WeightFormat:
    """``bits``-bit two's-complement fixed point covering ``[-range, range)``.

    >>> fmt = WeightFormat(8, 2.0)
    >>> fmt.unit, fmt.quantize(np.array([[0.01, 0.02, -3.0, 1.999]]), Rounding.NEAREST_EVEN)
    (0.015625, array([[   1,    1, -128,  127]]))
    """

    bits: int
    range: float = 2.0

    @property
    def unit(self) -> float:
        """The weight LSB, ``2 * range / 2**bits``."""
        return 2.0 * self.range / (1 << self.bits)

    def quantize(self, values, rounding: Rounding, *, seed: int = 0,
                 tensor: int = 0, words=None) -> np.ndarray:
        """Round ``values`` (2-D, float) to codes: nearest (ties to even) or stochastic
        (``floor(v / unit + r)`` with ``r`` the element's random bits / 2**32, so up with
        probability equal to the discarded fraction; computed in float64, which holds all
        32 random bits next to the code for formats up to 21 bits); saturate. The
        rounding is :func:`~qforge.sim.model.rounding.round_scaled`, the saturation
        :func:`~qforge.sim.model.saturation.saturate`; truncation is not an update rule
        (:class:`ValueError`). ``words``: the elements' random bits if already drawn
        (:func:`~qforge.sim.model.random_bits.random_words_batch`)."""
        if rounding not in (Rounding.STOCHASTIC, Rounding.NEAREST_EVEN):
            raise ValueError(f"update rounding = {rounding!r}: nearest or stochastic")
        scaled = np.asarray(values, dtype=np.float64) / self.unit
        codes = round_scaled(scaled, rounding, seed=seed, tensor=tensor, words=words)
        return saturate(codes, self.bits).astype(np.int64)

    def value(self, codes) -> np.ndarray:
        """The real values of weight codes, ``codes * unit``."""
        return np.asarray(codes, dtype=np.float64) * self.unit

    def saturated_count(self, codes) -> int:
        """How many of ``codes`` (any number of arrays) sit at the format's most negative
        or most positive code (saturated, or exactly there).

        >>> WeightFormat(4).saturated_count([np.array([-8, 7, 0]), np.array([[7]])])
        3
        """
        low, high = signed_range(self.bits)
        return sum(int(((c == low) | (c == high)).sum()) for c in codes)


@dataclass(frozen=True)
class Quantized:
    """A quantized tensor as the PE sees it: ``value = integer form * 2**exponent``.

    ``integers`` are the codes for ``int`` (the GEMM applies ``fmt.precision`` to them),
    and the already approximated, range-shifted integer forms for ``vrq`` and
    ``address_block``. ``floats`` holds the exact values instead when an integer form
    would not fit in int64 (address-block only; see the module docstring).
    ``approximated``: the ``int`` codes have had ``fmt.precision``'s kept-block
    approximation applied already (:meth:`approximate`), so no GEMM applies it again.
    """

    fmt: OperandFormat
    integers: np.ndarray | None
    exponent: int
    floats: np.ndarray | None = None
    approximated: bool = False

    @property
    def T(self) -> "Quantized":   # noqa: N802 - mirrors numpy's .T
        """The same stored tensor read transposed."""
        return self.with_integers(None if self.integers is None else self.integers.T,
                                  None if self.floats is None else self.floats.T)

    def with_integers(self, integers, floats=None) -> "Quantized":
        """The same format, exponent and approximation state over other integer forms
        (or floats): the tensor gathered or read transposed."""
        return Quantized(self.fmt, integers, self.exponent, floats, self.approximated)

    def approximate(self) -> "Quantized":
        """The tensor with its kept-block approximation applied once
        (:func:`~qforge.sim.model.numerics.operand_value` of the ``int`` codes), for a
        tensor several GEMMs read (and before it is gathered: the approximation is per
        element and keeps 0, so it commutes with an im2col gather). The GEMMs then give
        what they give on the codes (``operand_value`` is idempotent: tested)."""
        if self.fmt.kind != "int" or self.fmt.precision.exact or self.approximated:
            return self
        return Quantized(self.fmt, operand_value(self.integers, self.fmt.config,
                                                 self.fmt.precision), self.exponent,
                         approximated=True)

    @property
    def gemm_precision(self):
        """The precision the GEMM applies to :attr:`integers`: the format's, or exact when
        already :attr:`approximated`."""
        precision = self.fmt.precision
        return replace(precision, kept=precision.blocks) if self.approximated else precision

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.integers if self.integers is not None else self.floats).shape

    def values(self) -> np.ndarray:
        """The real values the PE multiplies (after any kept-block approximation)."""
        if self.integers is None:
            return self.floats
        integers = self.integers
        if self.fmt.kind == "int" and not self.fmt.precision.exact and not self.approximated:
            integers = operand_value(integers, self.fmt.config, self.fmt.precision)
        return np.ldexp(integers.astype(np.float64), self.exponent)


def quantize_operand(values, fmt: OperandFormat, rounding: Rounding = Rounding.NEAREST_EVEN,
                     *, seed: int = 0, tensor: int = 0, words=None) -> Quantized:
    """Quantize a stored 2-D float tensor into ``fmt`` (see the module docstring).

    ``seed``/``tensor`` key the stochastic-rounding bits (coordinates: row and column);
    ``words`` are those bits if already drawn
    (:func:`~qforge.sim.model.random_bits.random_words_batch`; uint32, ``values``' shape).

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> q = quantize_operand(np.array([[0.75, -0.1], [0.3, 0.0]]), OperandFormat("int", cfg))
    >>> q.integers.tolist(), q.exponent, q.values().tolist()
    ([[96, -13], [38, 0]], -7, [[0.75, -0.1015625], [0.296875, 0.0]])
    >>> u = quantize_operand(np.array([[0.75, 0.1], [0.3, 0.0]]),
    ...                      OperandFormat("int", load_preset("paired"), unsigned=True))
    >>> u.integers.tolist(), u.exponent          # unsigned: one more bit, unit 2**-8
    ([[192, 26], [77, 0]], -8)
    >>> v = quantize_operand(np.array([[0.75, -0.1], [0.3, 0.0]]),
    ...                      OperandFormat("vrq", cfg, vrq=VrqFormat(4, 2, 8)))
    >>> v.values().tolist()      # N = 4 code bits: -0.1 is in range 1, 0.3 in range 0
    [[0.75, -0.09375], [0.3125, 0.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values: must be a 2-D tensor, got shape {values.shape}")
    config, precision = fmt.config, fmt.precision
    if fmt.kind == "int":
        if fmt.unsigned and values.size and float(values.min()) < 0:
            index = tuple(int(i) for i in np.argwhere(values < 0)[0])
            raise ValueError(f"values[{', '.join(map(str, index))}] = "
                             f"{float(values[index])!r}: negative; an unsigned operand "
                             f"format holds values >= 0")
        # Unsigned: the signed rule with one more bit gives codes 0 .. 2**bits - 1.
        codes, units = address_block_encode(values, fmt.bits + fmt.unsigned,
                                            max(values.size, 1),
                                            rounding=rounding, seed=seed, tensor=tensor,
                                            words=words)
        return Quantized(fmt, codes, int(units[0]))
    if fmt.kind == "vrq":
        exponent = vrq_exponent(values)
        sign, code, group = vrq_encode(values, fmt.vrq, exponent, rounding=rounding,
                                       seed=seed, tensor=tensor, words=words)
        if not precision.exact:
            code = operand_value(code, config, precision)
        integers, offset = vrq_integer(sign, code, group, fmt.vrq)
        return Quantized(fmt, integers, (0 if exponent is None else exponent) + offset)
    if fmt.kind == "address_block":
        codes, units = address_block_encode(values, fmt.bits, fmt.block, rounding=rounding,
                                            seed=seed, tensor=tensor, words=words)
        if not precision.exact:
            codes = operand_value(codes, config, precision)
        element_units = np.repeat(units, fmt.block)[:values.size].reshape(values.shape)
        nonzero = codes != 0
        if not nonzero.any():
            return Quantized(fmt, np.zeros_like(codes), 0)
        low = int(element_units[nonzero].min())
        shifts = np.where(nonzero, element_units - low, 0)
        if int(shifts.max()) + fmt.bits > 62:       # integer form would not fit in int64
            return Quantized(fmt, None, 0, np.ldexp(codes.astype(np.float64), element_units))
        return Quantized(fmt, codes << shifts, low)
    raise ValueError(f"format = {fmt.kind!r}: allowed: int, vrq, address_block")
