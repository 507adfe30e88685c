"""Rounding, defined once: the rounding codes, the integer round-shift and the rounding
of scaled real values to integers.

Every place that rounds calls one of these two functions: the output stage
(:func:`qforge.sim.model.quantize.output_stage`), VRQ encoding
(:func:`qforge.sim.model.quantize.vrq_encode`), the fixed-point and address-block
encoders and the training weight format. The hardware round-shift
(``qforge.hdl.output_stage``) implements :func:`round_shift` bit for bit.

Stochastic rounding draws its random bits from :func:`qforge.sim.model.random_bits.random_bits`,
keyed by ``(seed, tensor)`` and indexed by the element's row and column.
"""

from __future__ import annotations

import enum

import numpy as np

from qforge.sim.model.errors import InputError
from qforge.sim.model.random_bits import element_coordinates, random_words_where

__all__ = ["Rounding", "round_shift", "round_scaled"]


class Rounding(enum.IntEnum):
    """How the output stage drops the ``shift`` low bits of an accumulator. The values
    are the 2-bit ``rounding`` codes of the ``OUTPUT`` instruction (docs/ISA.md); code 3
    is not a rounding rule and is rejected."""

    NEAREST_EVEN = 0   #: round to nearest, ties to even
    TRUNCATE = 1       #: drop the bits of the two's-complement value: toward -infinity
    STOCHASTIC = 2     #: add ``shift`` random bits, then truncate


def _given_words(words, shape) -> np.ndarray:
    """Random words the caller drew already, checked to be ``uint32`` of ``shape``."""
    words = np.asarray(words)
    if words.shape != tuple(shape) or words.dtype != np.uint32:
        raise InputError(f"words: {words.dtype.name} array of shape {words.shape}: must be "
                         f"the elements' uint32 random words, shape {tuple(shape)}")
    return words


def _drawn_words(seed, tensor, rows, cols, needed, words) -> np.ndarray:
    """The elements' random words: ``words`` if the caller drew them already, else drawn
    here where ``needed`` (:func:`~qforge.sim.model.random_bits.random_words_where`)."""
    if words is None:
        return random_words_where(seed, tensor, rows, cols, needed)
    return _given_words(words, np.shape(needed))


def _random_fraction(seed, tensor, rows, cols, shift: int, needed, words) -> np.ndarray:
    """``shift`` random bits as an integer in ``[0, 2**shift)``: the top ``shift`` of the
    32 random bits, followed by zeros when ``shift > 32`` (:func:`_drawn_words`)."""
    bits = _drawn_words(seed, tensor, rows, cols, needed, words).astype(np.int64)
    if shift <= 32:
        return bits >> (32 - shift)
    return bits << (shift - 32)


def round_shift(values, shift: int, rounding: Rounding, *, seed: int = 0, tensor: int = 0,
                rows=None, cols=None, words=None) -> np.ndarray:
    """``values / 2**shift`` rounded to an integer by ``rounding`` (int64 in, int64 out).

    * ``TRUNCATE``: ``values >> shift`` (floor);
    * ``NEAREST_EVEN``: nearest integer, ties to the even one;
    * ``STOCHASTIC``: ``(values + r) >> shift`` with ``r`` the element's
      :func:`~qforge.sim.model.random_bits.random_bits` scaled to ``[0, 2**shift)`` (the
      top ``shift`` of its 32 bits, then zeros): rounds up with probability equal to the
      dropped fraction (exactly, for ``shift <= 32``), so the expected result is
      ``values / 2**shift``. ``rows`` and ``cols`` (the elements' coordinates) are
      required, unless ``words`` holds the elements' random words already drawn
      (:func:`~qforge.sim.model.random_bits.random_words_batch`: uint32, the values'
      shape).

    ``shift = 0`` returns a copy of ``values`` whatever the rounding. Exact for every
    int64 ``values`` and every ``shift`` in ``0 .. 63`` (the sum ``values + r`` is never
    formed, so it cannot overflow near ``2**63``); other values or shifts raise
    :class:`~qforge.sim.model.errors.InputError`.

    >>> v = np.array([5, 6, 7, -5, -6, -7])            # / 4: 1.25 1.5 1.75 -1.25 ...
    >>> round_shift(v, 2, Rounding.TRUNCATE)
    array([ 1,  1,  1, -2, -2, -2])
    >>> round_shift(v, 2, Rounding.NEAREST_EVEN)
    array([ 1,  2,  2, -1, -2, -2])
    >>> round_shift(v, 2, Rounding.STOCHASTIC)
    Traceback (most recent call last):
    ...
    ValueError: stochastic rounding needs the elements' rows and cols

    At the ends of int64 (the largest value, rounded up by any non-zero random
    fraction, and the most negative):

    >>> top = np.array([2**63 - 1, -2**63])
    >>> round_shift(top, 62, Rounding.STOCHASTIC, rows=[0, 0], cols=[0, 1]).tolist()
    [2, -2]
    >>> round_shift(top, 63, Rounding.NEAREST_EVEN).tolist()
    [1, -1]
    >>> round_shift([1.5], 1, Rounding.TRUNCATE)
    Traceback (most recent call last):
    ...
    InputError: round_shift: values = [1.5]: must be int64 integers, not float64
    >>> round_shift([1], 64, Rounding.TRUNCATE)
    Traceback (most recent call last):
    ...
    InputError: round_shift: shift = 64: allowed range is 0 .. 63
    """
    values = _int64_values(values)
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) \
            or not 0 <= shift <= MAX_SHIFT:
        raise InputError(f"round_shift: shift = {shift!r}: allowed range is 0 .. {MAX_SHIFT}")
    shift = int(shift)
    if shift == 0:
        return values.copy()
    if rounding == Rounding.TRUNCATE:
        return values >> shift
    if rounding == Rounding.NEAREST_EVEN:
        floor = values >> shift
        remainder = values & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        up = (remainder > half) | ((remainder == half) & ((floor & 1) == 1))
        return floor + up
    if (rows is None or cols is None) and words is None:
        raise ValueError("stochastic rounding needs the elements' rows and cols")
    # (values + r) >> shift, split so that no sum can overflow int64: the high part
    # values >> shift, plus the carry out of the low bits, low + r >= 2**shift (both
    # below 2**shift), tested as low > (2**shift - 1) - r.
    mask = (1 << shift) - 1
    low = values & mask
    # A value with no bits below the shift (low = 0) never carries: no bits needed.
    fraction = _random_fraction(seed, tensor, rows, cols, shift, low != 0, words)
    return (values >> shift) + (low > (mask - fraction))


#: The largest shift of :func:`round_shift`: int64 values have 64 bits.
MAX_SHIFT = 63


def _int64_values(values) -> np.ndarray:
    """``values`` as an int64 array if they are integers within int64, else one
    :class:`InputError` (never a silent conversion of floats or a wrap of larger ints)."""
    array = np.asarray(values)
    exact = array.dtype.kind in "iu" or (array.size == 0 and array.dtype.kind == "f")
    if array.dtype == object:
        exact = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                    for v in array.flat)
    if not exact:
        raise InputError(f"round_shift: values = {values!r}: must be int64 integers, not "
                         f"{array.dtype.name}")
    info = np.iinfo(np.int64)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise InputError(f"round_shift: values: out of the int64 range "
                         f"({info.min} .. {info.max})")
    return array.astype(np.int64)


def round_scaled(scaled, rounding: Rounding, *, seed: int = 0, tensor: int = 0,
                 rows=None, cols=None, words=None) -> np.ndarray:
    """Real values already scaled to their unit (``value / unit``), rounded to whole
    numbers by ``rounding``; float64 in, float64 out (whole numbers, so the caller can
    saturate before converting to integers: a value beyond int64 would not convert).

    * ``TRUNCATE``: ``floor(scaled)``;
    * ``NEAREST_EVEN``: nearest whole number, ties to the even one;
    * ``STOCHASTIC``: ``floor(scaled + r / 2**32)`` with ``r`` the element's 32
      :func:`~qforge.sim.model.random_bits.random_bits` (coordinates ``rows``, ``cols``,
      by default the element's row and column in the 2-D ``scaled``): up with
      probability equal to the dropped fraction, to 32 bits (computed in float64, so
      exact while ``|scaled| < 2**21``). ``words``: the elements' random words if the
      caller drew them already (uint32, ``scaled``'s shape; then ``rows``/``cols`` are
      not used).

    >>> x = np.array([[2.5, 3.5, -2.5, 0.25]])
    >>> round_scaled(x, Rounding.NEAREST_EVEN), round_scaled(x, Rounding.TRUNCATE)
    (array([[ 2.,  4., -2.,  0.]]), array([[ 2.,  3., -3.,  0.]]))
    >>> up = round_scaled(np.full((64, 64), 0.25), Rounding.STOCHASTIC, seed=1) == 1
    >>> bool(0.2 < up.mean() < 0.3)
    True
    >>> round_scaled(x, 3)
    Traceback (most recent call last):
    ...
    InputError: rounding = 3: allowed NEAREST_EVEN, TRUNCATE, STOCHASTIC
    """
    scaled = np.asarray(scaled, dtype=np.float64)
    if rounding == Rounding.TRUNCATE:
        return np.floor(scaled)
    if rounding == Rounding.NEAREST_EVEN:
        return np.rint(scaled)
    if rounding == Rounding.STOCHASTIC:
        if (rows is None or cols is None) and words is None:
            rows, cols = element_coordinates(scaled.shape)
        # r / 2**32 is exact in float64 (a power-of-two scale of a 32-bit integer).
        if words is None:
            # A whole number stays itself whatever its bits (r / 2**32 < 1): bits only
            # for the others (in training, half the elements are the zeros of ReLU).
            words = random_words_where(seed, tensor, rows, cols,
                                       scaled != np.floor(scaled))
        else:
            words = _given_words(words, scaled.shape)
        return np.floor(scaled + words * 2.0 ** -32)
    raise InputError(f"rounding = {rounding!r}: allowed "
                     f"{', '.join(r.name for r in Rounding)}")
