"""The exact integer matrix product on float BLAS, used by every golden GEMM.

Integer matmuls in numpy do not use BLAS and are slow; float ones are fast but round.
:func:`exact_integer_matmul` gets both: it runs the product in float32 or float64 only
when a bound on every partial sum guarantees that no bit is lost, and splits the
operands into half-words otherwise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["exact_integer_matmul"]


# A float format holds every integer up to 2**(mantissa bits + 1) exactly. A matmul whose
# every partial sum stays below that bound is exact whatever order BLAS adds in, because
# every intermediate value is then an exactly representable integer.
_FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53


def exact_integer_matmul(a: np.ndarray, b: np.ndarray, bound: int | None = None) -> np.ndarray:
    """``a @ b`` for int64 matrices, exact, on float BLAS (int64 result; raises
    :class:`OverflowError` when even 1-bit operands would overflow int64).

    ``bound`` must be at least ``max|a| * max|b| * D`` (computed from the data when
    omitted); it bounds every partial sum. Below ``2**24`` the product runs in float32,
    below ``2**53`` in float64; above, the operand with the larger magnitudes is split
    into a high and a low half-word and the two exact products are recombined in int64
    (each half has about half the bits, so the recursion ends).

    >>> a = np.array([[1 << 40, 3]]); b = np.array([[1 << 20], [5]])
    >>> int(exact_integer_matmul(a, b)[0, 0]) == (1 << 60) + 15    # beyond float64
    True
    """
    depth = a.shape[1]
    max_a = max_b = None
    if bound is None:
        max_a, max_b = int(np.abs(a).max(initial=0)), int(np.abs(b).max(initial=0))
        bound = max_a * max_b * depth
    for dtype, limit in ((np.float32, _FLOAT32_EXACT), (np.float64, _FLOAT64_EXACT)):
        if bound < limit:
            return (a.astype(dtype) @ b.astype(dtype)).astype(np.int64)
    if max_a is None:   # a bound from the operand ranges; the data may need less
        return exact_integer_matmul(a, b)
    if max_a <= 1 and max_b <= 1:
        raise OverflowError(f"depth {depth} is too deep for an exact int64 GEMM")
    if max_a < max_b:                     # split b: a @ b == (b.T @ a.T).T
        return exact_integer_matmul(b.T, a.T).T
    split = (max_a.bit_length() + 1) // 2
    high = a >> split                     # floor division: a == high * 2**split + low
    low = a - (high << split)
    return (exact_integer_matmul(high, b) << split) + exact_integer_matmul(low, b)
