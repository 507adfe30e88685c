"""Golden model of the training numerics: the output stage, value-range quantization
(VRQ) and the address-block baseline.

Every rule here is defined once, vectorized, and is what the hardware implements bit for
bit (``qforge.hdl.output_stage`` points here). ``docs/NUMERICS.md`` explains them with
worked examples.

Random bits and rounding
------------------------
Stochastic rounding's random bits are :func:`qforge.sim.model.random_bits.random_bits`;
the rounding rules are :mod:`qforge.sim.model.rounding` (:class:`Rounding`,
:func:`round_shift`, :func:`~qforge.sim.model.rounding.round_scaled`) and saturation is
:mod:`qforge.sim.model.saturation`. They are re-exported here, so
``from qforge.sim.model.quantize import Rounding, random_bits`` keeps working.

Output stage
------------
:func:`output_stage` turns accumulators into output operands, in this order: scale by
``2**-shift`` with a rounding rule, optional ReLU, saturation to ``output_width`` bits.

Value-range quantization
------------------------
:func:`vrq_encode` groups values by contiguous ranges of their binary exponent, relative
to the exponent ``E`` of the tensor's largest magnitude (:func:`vrq_exponent`, a max
reduction: independent of the order in which elements are seen, so of the hardware).
Range ``g`` (``0 <= g < G``) holds values with exponent in ``(E - (g+1)S, E - gS]`` and
has unit ``2**(E - gS - N + 1)``, so its largest values use all ``N`` code bits. Values
below the last range go to the last range (they keep fewer significant bits, down to
zero: underflow). An element is stored as ``(sign, code, g)``.

Address-block baseline
----------------------
:func:`address_block_encode` is Cambricon-Q's scheme: one power-of-two scale per
``block`` contiguous elements (row-major), so results depend on ``block``, which
Cambricon-Q ties to a hardware buffer size.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from qforge.sim.model.capacity import tiles
from qforge.sim.model.errors import InputError
from qforge.sim.model.numerics import vrq_pack
from qforge.sim.model.random_bits import (MAX_SEED, MAX_TENSOR, RANDOM_ROUNDS, random_bits,
                                          element_coordinates,
                                          round_keys)
from qforge.sim.model.rounding import Rounding, round_scaled, round_shift
from qforge.sim.model.saturation import saturate
from qforge.sim.model.vrq_format import VrqFormat

__all__ = ["RANDOM_ROUNDS", "round_keys", "random_bits", "Rounding", "OutputParameters",
           "output_stage", "output_operands", "round_shift", "VrqFormat", "vrq_exponent",
           "vrq_encode", "vrq_decode", "vrq_integer", "address_block_encode",
           "address_block_decode", "fixed_point_encode"]

@dataclass(frozen=True)
class OutputParameters:
    """Per-GEMM settings of the output stage."""

    shift: int = 0
    rounding: Rounding = Rounding.NEAREST_EVEN
    relu: bool = False
    seed: int = 0
    tensor: int = 0
    #: With a value, the stage emits VRQ operand words instead of integers:
    #: ``vrq_encode(relu(accumulator), E = vrq_exponent)`` (``shift`` is not used).
    vrq_exponent: int | None = None
    #: No saturation to ``output_width``: the rounded value as it is (it always fits the
    #: accumulator). For weight updates, whose increments are not operands
    #: (docs/ISA.md, ``OUTPUT``). Not with ``vrq_exponent``.
    wide: bool = False

    def validate(self, config) -> None:
        """Raise ValueError naming the field unless every setting is in range for
        ``config`` (the loader rejects the same commands in hardware)."""
        limit = config.accumulator_width - 1
        checks = (("shift", self.shift, 0, limit), ("seed", self.seed, 0, MAX_SEED),
                  ("tensor", self.tensor, 0, MAX_TENSOR))
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not low <= value <= high:
                raise InputError(f"output.{name} = {value!r}: allowed range is "
                                 f"{low} .. {high}")
        if not isinstance(self.rounding, Rounding):
            raise InputError(f"output.rounding = {self.rounding!r}: must be a Rounding "
                             f"({', '.join(r.name for r in Rounding)})")
        if self.vrq_exponent is not None:
            if config.vrq is None:
                raise InputError("output.vrq_exponent: this configuration has no [vrq] "
                                 "section, so the output stage cannot emit VRQ words")
            if isinstance(self.vrq_exponent, bool) or not isinstance(self.vrq_exponent, int) \
                    or not 0 <= self.vrq_exponent <= limit:
                raise InputError(f"output.vrq_exponent = {self.vrq_exponent!r}: allowed "
                                 f"range is 0 .. {limit}")
            if self.wide:
                raise InputError("output.wide = True: VRQ words (vrq_exponent) are always "
                                 "output_width bits; wide is for integer outputs only")


def output_stage(accumulators, output_width: int, parameters: OutputParameters,
                 *, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
    """Accumulators (M x N) to output operands: round-shift, ReLU, saturate.

    Element ``(i, j)`` has coordinates ``(row_offset + i, col_offset + j)`` for its random
    bits; saturation clamps to ``[-2**(O-1), 2**(O-1) - 1]`` with ``O = output_width``,
    unless ``parameters.wide`` (then the rounded value is returned unsaturated: it never
    exceeds the accumulator, since ``shift >= 0``).

    >>> acc = np.array([[1000, -1000, 37, -37]])
    >>> output_stage(acc, 8, OutputParameters(shift=2))           # 250 saturates
    array([[ 127, -128,    9,   -9]])
    >>> output_stage(acc, 8, OutputParameters(shift=2, relu=True))
    array([[127,   0,   9,   0]])
    >>> output_stage(acc, 8, OutputParameters(shift=2, wide=True))
    array([[ 250, -250,    9,   -9]])
    """
    accumulators = np.asarray(accumulators, dtype=np.int64)
    rows, cols = element_coordinates(accumulators.shape)
    values = round_shift(accumulators, parameters.shift, parameters.rounding,
                         seed=parameters.seed, tensor=parameters.tensor,
                         rows=rows + row_offset, cols=cols + col_offset)
    if parameters.relu:
        values = np.maximum(values, 0)
    if parameters.wide:
        return values
    return saturate(values, output_width)


# ---- value-range quantization ---------------------------------------------------------

def vrq_exponent(values) -> int | None:
    """``E``: the binary exponent of the largest magnitude, ``floor(log2(max|x|))``;
    ``None`` for an all-zero tensor. A max over all elements, so independent of the
    order (and the hardware) that visits them.

    >>> vrq_exponent(np.array([3, -40, 7])), vrq_exponent(np.array([0.3, -0.1]))
    (5, -2)
    """
    values = np.asarray(values)
    largest = np.abs(values).max(initial=0)
    if largest == 0:
        return None
    if values.dtype.kind in "iub":
        return int(largest).bit_length() - 1
    return int(np.frexp(float(largest))[1]) - 1


def vrq_encode(values, fmt: VrqFormat, exponent: int | None = None, *,
               rounding: Rounding = Rounding.NEAREST_EVEN, seed: int = 0, tensor: int = 0,
               words=None):
    """Quantize a 2-D tensor to ``(sign, code, range)`` arrays.

    ``exponent`` is ``E`` (by default :func:`vrq_exponent` of ``values``). For ``x != 0``
    with exponent ``e = floor(log2|x|)``: ``g = min(max((E - e) // S, 0), G - 1)`` and
    ``code = round(|x| / 2**(E - gS - N + 1))`` by ``rounding`` (stochastic rounding uses
    the element's :func:`random_bits`, coordinates = its row and column, or ``words``,
    those bits already drawn: uint32, ``values``' shape). A code that
    rounds up to ``2**N`` moves to range ``g - 1`` as ``2**(N - S)`` (the same value); in
    range 0 it saturates to ``2**N - 1``. Zero (and any value that rounds to 0) is
    ``(0, 0, 0)``.

    Worked example, ``N = 4, S = 2, G = 3``, ``E = 5`` (max 40):

    >>> fmt = VrqFormat(4, 2, 3)
    >>> sign, code, group = vrq_encode(np.array([[40, -7, 3, 1, 0]]), fmt)
    >>> sign.tolist(), code.tolist(), group.tolist()
    ([[0, 1, 0, 0, 0]], [[10, 7, 12, 4, 0]], [[0, 1, 2, 2, 0]])

    40 (exponent 5) is range 0 with unit 4: code 10; -7 (exponent 2) is range
    ``(5 - 2) // 2 = 1`` with unit 1; 3 and 1 fall in range 2 with unit 1/4.

    >>> vrq_decode(sign, code, group, fmt, 5).tolist()
    [[40.0, -7.0, 3.0, 1.0, 0.0]]
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values: must be a 2-D tensor, got shape {values.shape}")
    if exponent is None:
        exponent = vrq_exponent(values)
    shape = values.shape
    if exponent is None:
        zeros = np.zeros(shape, dtype=np.int64)
        return zeros, zeros.copy(), zeros.copy()
    n, s, g_count = fmt.code_width, fmt.range_stride, fmt.ranges
    magnitude = np.abs(values)
    # E - floor(log2 m) per element, from frexp's exponent floor(log2 m) + 1 (int32); a
    # zero's is irrelevant (its code rounds to 0, and a zero code gets range 0 below).
    group = (exponent + 1) - np.frexp(magnitude.astype(np.float64, copy=False))[1]
    group //= s
    np.maximum(group, 0, out=group)
    np.minimum(group, g_count - 1, out=group)
    top_unit = exponent - n + 1                      # range g: value = code * 2**unit,
    rows, cols = element_coordinates(shape)          # unit = top_unit - g * S
    if values.dtype.kind in "iub":
        code = _integer_round(magnitude.astype(np.int64), top_unit - group.astype(np.int64) * s,
                              rounding, seed, tensor, rows, cols, words)
    else:
        code = round_scaled(_scaled_to_units(magnitude, top_unit, s, g_count, group),
                            rounding, seed=seed, tensor=tensor, rows=rows,
                            cols=cols, words=words).astype(np.int64)
    overflow = code >= (1 << n)
    if overflow.any():                      # rare: only codes rounded up past 2**N - 1
        move_up = overflow & (group > 0)
        code = np.where(move_up, 1 << (n - s), code)
        group = np.where(move_up, group - 1, group)
        code = np.where(overflow & ~move_up, (1 << n) - 1, code)
    nonzero = code != 0
    sign = (values < 0) & nonzero
    return sign.astype(np.int64), code.astype(np.int64, copy=False), \
        np.where(nonzero, group, 0).astype(np.int64, copy=False)


def _scaled_to_units(magnitude, top_unit: int, stride: int, ranges: int, group):
    """``magnitude / 2**(top_unit - group * stride)`` in float64, exactly: a multiply by
    the range's power of two (looked up; faster than ``np.ldexp`` with an exponent per
    element), or ``np.ldexp`` where a factor would not be a normal float64."""
    exponents = -(top_unit - stride * np.arange(ranges))
    magnitude = magnitude.astype(np.float64, copy=False)
    if exponents.min() < -1022 or exponents.max() > 1023:
        return np.ldexp(magnitude, exponents[group])
    return magnitude * np.ldexp(1.0, exponents)[group]


def _integer_round(magnitude, unit_exponent, rounding, seed, tensor, rows, cols, words):
    """round(magnitude / 2**unit) for integers; exact shifts where unit <= 0."""
    left = np.maximum(-unit_exponent, 0)
    right = np.maximum(unit_exponent, 0)
    shifted = magnitude << left
    result = np.empty_like(shifted)
    for amount in np.unique(right):
        where = right == amount
        result[where] = round_shift(shifted[where], int(amount), rounding, seed=seed,
                                    tensor=tensor, rows=rows[where], cols=cols[where],
                                    words=None if words is None else words[where])
    return result


def vrq_decode(sign, code, group, fmt: VrqFormat, exponent: int | None) -> np.ndarray:
    """The real values of VRQ elements: ``(-1)**sign * code * 2**(E - gS - N + 1)``."""
    if exponent is None:
        return np.zeros(np.shape(code))
    unit = exponent - np.asarray(group) * fmt.range_stride - fmt.code_width + 1
    return np.where(np.asarray(sign) == 1, -1.0, 1.0) * np.ldexp(
        np.asarray(code, dtype=np.float64), unit)


def vrq_integer(sign, code, group, fmt: VrqFormat) -> tuple[np.ndarray, int]:
    """The integer form the PE multiplies and the tensor's base exponent offset.

    ``value = (-1)**sign * code << ((G - 1 - g) * S)``; the real value is that times
    ``2**(E - N + 1 - (G - 1) * S)``, and the returned offset is ``-(N - 1 + (G-1)S)``
    (add ``E`` to get the base exponent). Integer GEMMs on these forms are exact.

    >>> fmt = VrqFormat(4, 2, 3)
    >>> vrq_integer(np.array([0, 1]), np.array([10, 14]), np.array([0, 1]), fmt)
    (array([160, -56]), -7)
    """
    magnitude = np.asarray(code, dtype=np.int64) << (
        (fmt.ranges - 1 - np.asarray(group, dtype=np.int64)) * fmt.range_stride)
    signed = np.where(np.asarray(sign) == 1, -magnitude, magnitude)
    return signed, -(fmt.code_width - 1 + (fmt.ranges - 1) * fmt.range_stride)


# ---- address-block baseline -----------------------------------------------------------

def address_block_encode(values, bits: int, block: int, *,
                         rounding: Rounding = Rounding.NEAREST_EVEN, seed: int = 0,
                         tensor: int = 0, words=None):
    """Cambricon-Q style: ``bits``-bit two's-complement codes with one power-of-two scale
    per ``block`` contiguous elements (row-major order; the last block may be short).
    Stochastic rounding draws the elements' random bits by row and column (or takes
    ``words``, those bits already drawn: uint32, ``values``' shape).

    Block ``b`` with largest exponent ``E_b`` has unit ``2**(E_b - bits + 2)``, so its
    largest magnitude uses the top code bit below the sign; a code that rounds to
    ``2**(bits-1)`` saturates to ``2**(bits-1) - 1``. Returns ``(codes, unit_exponents)``
    with one unit exponent per block (all-zero blocks get unit 0).

    >>> codes, units = address_block_encode(np.array([[40., -7., 3., 1.]]), 8, 2)
    >>> codes.tolist(), units.tolist()
    ([[80, -14, 96, 32]], [-1, -5])
    """
    values = np.asarray(values, dtype=np.float64)
    if 0 < values.size <= block:         # one block: one scale for the whole tensor
        largest = float(np.abs(values).max(initial=0))
        unit = math.frexp(largest)[1] - 1 - bits + 2 if largest > 0 else 0
        return (_round_codes(np.ldexp(values, -unit), bits, rounding, seed, tensor, words),
                np.array([unit], dtype=np.int64))
    flat = values.ravel()
    count = tiles(flat.size, block)
    padded = np.zeros(count * block)
    padded[:flat.size] = flat
    blocks = padded.reshape(count, block)
    largest = np.abs(blocks).max(axis=1)
    exponents = np.where(largest > 0, np.frexp(np.where(largest > 0, largest, 1))[1] - 1, 0)
    units = np.where(largest > 0, exponents - bits + 2, 0).astype(np.int64)
    scaled = np.ldexp(blocks, -units[:, None]).ravel()[:flat.size].reshape(values.shape)
    return _round_codes(scaled, bits, rounding, seed, tensor, words), units


def _round_codes(scaled, bits: int, rounding: Rounding, seed: int, tensor: int, words=None):
    """Round scaled values to ``bits``-bit codes (random bits by row and column), saturate."""
    codes = round_scaled(scaled, rounding, seed=seed, tensor=tensor, words=words)
    return saturate(codes, bits).astype(np.int64)


def fixed_point_encode(values, bits: int, unit_exponent: int, *,
                       rounding: Rounding = Rounding.NEAREST_EVEN, seed: int = 0,
                       tensor: int = 0) -> np.ndarray:
    """``bits``-bit two's-complement codes of a 2-D tensor in units of
    ``2**unit_exponent`` (given, not derived from the data), rounded as
    :func:`address_block_encode` rounds (stochastic: the element's random bits by row
    and column) and saturated.

    >>> fixed_point_encode(np.array([[1.0, -0.3, 100.0]]), 8, -3).tolist()
    [[8, -2, 127]]
    """
    values = np.asarray(values, dtype=np.float64)
    return _round_codes(np.ldexp(values, -unit_exponent), bits, rounding, seed, tensor)


def address_block_decode(codes, units, block: int) -> np.ndarray:
    """Real values of address-block codes (inverse of :func:`address_block_encode`)."""
    codes = np.asarray(codes)
    flat_units = np.repeat(units, block)[:codes.size].reshape(codes.shape)
    return np.ldexp(codes.astype(np.float64), flat_units)


def output_operands(accumulators, config, parameters: OutputParameters) -> np.ndarray:
    """What the output stage emits for a GEMM's accumulators (M x N, element (i, j) at
    coordinates (i, j)): :func:`output_stage` integers, or, when
    ``parameters.vrq_exponent`` is set, VRQ operand words
    (:func:`qforge.sim.model.numerics.vrq_pack` of :func:`vrq_encode` of the ReLU'd
    accumulators with ``E = vrq_exponent``), ready to load as the next GEMM's operands.

    The exponent is the tensor-wide statistic: :func:`vrq_exponent` of the (ReLU'd)
    accumulators, a max over the whole result, so it does not depend on the array.
    """
    if parameters.vrq_exponent is None:
        return output_stage(accumulators, config.output_width, parameters)
    values = np.asarray(accumulators, dtype=np.int64)
    if parameters.relu:
        values = np.maximum(values, 0)
    sign, code, group = vrq_encode(values, config.vrq, parameters.vrq_exponent,
                                   rounding=parameters.rounding, seed=parameters.seed,
                                   tensor=parameters.tensor)
    return vrq_pack(sign, code, group, config)
