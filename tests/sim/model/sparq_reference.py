"""SPARQ's paired-activation rule, written out element by element from the description
of its public kernel (``gilshm/sparq``, ``cu_gemm_2x48/gemm_mt_kernel.cu``, kernel
``gemm_48_opt`` without STC, with ``slices_4bits_macros.h``), independently of
``qforge.sim.model.paired``: the reference ``tests/sim/model/test_paired.py`` checks the
golden model against.

The kernel walks the reduction in pairs; when both activations (unsigned 8-bit) are
non-zero each is cut to a 4-bit window chosen by its set bits; otherwise the non-zero
one is used whole. ``opt2``: the window 0xF0 if any of bits 7..4 is set, else 0x0F.
``opt5``: 0xF0, 0x78, 0x3C or 0x1E by the highest of bits 7, 6, 5, 4 set, else 0x0F.
With rounding, the window (not the 0x0F fallback) gains one unit of its lowest bit when
the bit below it is set and either a lower bit or the window's lowest bit is set (round
half to even), and a window that overflows (0x100, 0x80, 0x40, 0x20) becomes its mask.
"""

from __future__ import annotations

#: (bit that selects the window, window mask), highest first; 0x0F when none is set.
OPT2 = ((0xF0, 0xF0),)
OPT5 = ((0x80, 0xF0), (0x40, 0x78), (0x20, 0x3C), (0x10, 0x1E))
FALLBACK = 0x0F


def trim(a: int, options, rounding: bool, saturate: bool = True) -> int:
    """One activation's 4-bit window (``saturate=False``: the deliberately wrong rule of
    the negative control, a carry out of the window kept)."""
    assert 0 <= a < 256
    for select, mask in options:
        if a & select:
            value = a & mask
            if rounding:
                unit = mask & -mask                 # the window's lowest bit
                below = unit >> 1                   # the first bit dropped
                lower = below - 1                   # the bits under it
                if (a & below) and ((a & lower) or (a & unit)):
                    value += unit
                    if saturate and value == mask + unit:
                        value = mask
            return value
    return a & FALLBACK


def sparq_gemm(a, b, options, rounding: bool, saturate: bool = True) -> list[list[int]]:
    """``C[m][n]`` by the kernel's loop: ``a`` (M x D, 0 .. 255) and ``b`` (D x N,
    -128 .. 127) as nested lists."""
    depth = len(b)
    out = []
    for row in a:
        out_row = []
        for n in range(len(b[0])):
            total = 0
            for k in range(0, depth, 2):
                a1, b1 = row[k], b[k][n]
                a2, b2 = (row[k + 1], b[k + 1][n]) if k + 1 < depth else (0, 0)
                if a1 == 0:
                    total += a2 * b2
                elif a2 == 0:
                    total += a1 * b1
                else:
                    total += (trim(a1, options, rounding, saturate) * b1
                              + trim(a2, options, rounding, saturate) * b2)
            out_row.append(total)
        out.append(out_row)
    return out
