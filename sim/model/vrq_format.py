"""The VRQ operand format and its limits, defined once: ``N`` code bits, range stride
``S``, ``G`` ranges, and the range-index bits they need.

The configuration's optional ``[vrq]`` section (:data:`qforge.sim.model.spec.VRQ_SCHEMA`),
the training configurations and :class:`VrqFormat` all take their limits from
:data:`VRQ_LIMITS`, :func:`range_stride_error` and :func:`vrq_range_bits`. This module
imports nothing of qforge, so :mod:`~qforge.sim.model.spec` and
:mod:`~qforge.sim.model.quantize` can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VRQ_LIMITS", "vrq_range_bits", "range_stride_error", "VrqFormat"]

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
    ValueError: vrq.range_stride = 4: must not exceed vrq.code_width (2), or a code rounded up out of its range could not move to the range above
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
                raise ValueError(f"vrq.{name} = {value!r}: allowed range is {low} .. {high}")
        reason = range_stride_error(self.code_width, self.range_stride)
        if reason:
            raise ValueError(f"vrq.range_stride = {self.range_stride}: {reason}, or a code "
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
