"""Two's-complement saturation, defined once.

A ``bits``-bit two's-complement value lies in ``[-2**(bits-1), 2**(bits-1) - 1]``
(:func:`signed_range`); saturation (:func:`saturate`) clamps to that range. The output
stage saturates to ``output_width`` bits, the ``add`` step of a GEMM to
``saturate_bits``, the fixed-point encoders and the training weight format to their code
bits, and operand range checks use the same bounds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["signed_range", "saturate"]


def signed_range(bits: int) -> tuple[int, int]:
    """``(lowest, highest)`` value of a ``bits``-bit two's-complement integer
    (``bits >= 1``; Python ints, exact for any width).

    >>> signed_range(8), signed_range(1)
    ((-128, 127), (-1, 0))
    """
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(values, bits: int) -> np.ndarray:
    """``values`` clamped to :func:`signed_range` of ``bits`` (the dtype is kept: float
    input stays float, so huge values can be clamped before an integer conversion).

    >>> saturate(np.array([150, -129, 5]), 8)
    array([ 127, -128,    5])
    >>> saturate(np.array([1e30, -0.5]), 4)
    array([ 7. , -0.5])
    """
    low, high = signed_range(bits)
    return np.clip(values, low, high)
