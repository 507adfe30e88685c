"""The VRQ operand format, defined once: its limits (``N`` code bits, range stride ``S``,
``G`` ranges), the range-index bits they need, and the operand word layout
(:func:`vrq_pack`, :func:`vrq_unpack`).

The configuration's optional ``[vrq]`` section (:data:`qforge.sim.model.spec.VRQ_SCHEMA`),
the training configurations and :class:`VrqFormat` all take their limits from
:data:`VRQ_LIMITS`, :func:`range_stride_error` and :func:`vrq_range_bits`. This module
imports nothing of qforge (a configuration is used through its attributes), so :mod:`~qforge.sim.model.spec` and
:mod:`~qforge.sim.model.quantize` can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qforge.sim.model.errors import InputError

__all__ = ["VRQ_LIMITS", "vrq_range_bits", "range_stride_error", "VrqFormat", "vrq_pack",
           "vrq_unpack"]

#: ``(lowest, highest)`` allowed value of each VRQ format field.
VRQ_LIMITS: dict[str, tuple[int, int]] = {
    "code_width": (1, 15),
    "range_stride": (1, 15),
    "ranges": (1, 64),
}


def vrq_range_bits(ranges: int) -> int:
    """Bits of a VRQ range index for ``G = ranges``: ``max(1, bit_length(G - 1))`` (so
    one bit even for ``G = 1``, where ``ceil(log2 G)`` would be 0).

    >>> [vrq_range_bits(g) for g in (1, 2, 3, 4, 5, 8, 64)]
    [1, 1, 2, 2, 3, 3, 6]
    """
    return max(1, (ranges - 1).bit_length())


def range_stride_error(code_width: int, range_stride: int) -> str | None:
    """Why ``range_stride`` is not allowed with ``code_width`` (``S <= N``), or None.

    >>> range_stride_error(2, 4)
    'must not exceed vrq.code_width (2)'
    >>> range_stride_error(4, 4) is None
    True
    """
    if range_stride > code_width:
        return f"must not exceed vrq.code_width ({code_width})"
    return None


@dataclass(frozen=True)
class VrqFormat:
    """``N`` code bits, range stride ``S`` (binary exponents per range), ``G`` ranges.

    Construction raises :class:`ValueError` naming the field unless each is within
    :data:`VRQ_LIMITS` and ``S <= N``.

    >>> VrqFormat(4, 2, 8).storage_bits        # sign + 4 code bits + 3 range bits
    8
    >>> VrqFormat(2, 4, 8)
    Traceback (most recent call last):
    ...
    InputError: vrq.range_stride = 4: must not exceed vrq.code_width (2), or a code rounded up out of its range could not move to the range above
    """

    code_width: int
    range_stride: int
    ranges: int

    def __post_init__(self):
        for name, value in (("code_width", self.code_width),
                            ("range_stride", self.range_stride), ("ranges", self.ranges)):
            low, high = VRQ_LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not low <= value <= high:
                raise InputError(f"vrq.{name} = {value!r}: allowed range is {low} .. {high}")
        reason = range_stride_error(self.code_width, self.range_stride)
        if reason:
            raise InputError(f"vrq.range_stride = {self.range_stride}: {reason}, or a code "
                             f"rounded up out of its range could not move to the range above")

    @property
    def range_bits(self) -> int:
        """Bits of a range index (:func:`vrq_range_bits`)."""
        return vrq_range_bits(self.ranges)

    @property
    def storage_bits(self) -> int:
        """Bits of a stored operand: sign, code and range index."""
        return 1 + self.code_width + self.range_bits

    @property
    def span(self) -> int:
        """Bits between the lowest code bit of range G-1 and the top of range 0:
        an integer form of a coded value fits in ``span`` unsigned bits."""
        return self.code_width + (self.ranges - 1) * self.range_stride


def vrq_pack(sign, code, group, config) -> np.ndarray:
    """Pack VRQ elements into the W-bit operand words the accelerator loads (``config``:
    a :class:`~qforge.sim.model.spec.Config` with a ``[vrq]`` section).

    Bit layout (least significant first): ``N`` code bits, the range index in
    ``max(1, bit_length(G - 1))`` bits (:func:`vrq_range_bits`: one bit even for
    ``G = 1``), the sign; unused high bits are zero. Returned as the signed ``W``-bit
    value of that bit pattern (the operand beats carry signed W-bit words).

    >>> from qforge.sim.model.spec import from_dict, load_preset
    >>> spec = load_preset("default").to_dict() | {"vrq": {"code_width": 4,
    ...     "range_stride": 2, "ranges": 8}}
    >>> cfg = from_dict(spec)
    >>> vrq_pack(np.array([0, 1]), np.array([10, 7]), np.array([0, 1]), cfg)
    array([  10, -105])

    (``-7`` in range 1: ``7 | 1 << 4 | 1 << 7 = 151``, the byte of ``-105``.)

    >>> vrq_unpack(np.array([10, -105]), cfg)
    (array([0, 1]), array([10,  7]), array([0, 1]))
    """
    n, range_bits, width = config.vrq_code_width, config.vrq_range_bits, config.operand_width
    bits = (np.asarray(code, dtype=np.int64) | (np.asarray(group, dtype=np.int64) << n)
            | (np.asarray(sign, dtype=np.int64) << (n + range_bits)))
    return np.where(bits >> (width - 1) & 1, bits - (1 << width), bits)


def vrq_unpack(words, config):
    """``(sign, code, group)`` of VRQ operand words (inverse of :func:`vrq_pack`)."""
    n, range_bits, width = config.vrq_code_width, config.vrq_range_bits, config.operand_width
    bits = np.asarray(words, dtype=np.int64) & ((1 << width) - 1)
    return ((bits >> (n + range_bits)) & 1, bits & ((1 << n) - 1),
            (bits >> n) & ((1 << range_bits) - 1))
