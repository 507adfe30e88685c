"""Buffer capacity, defined once: how many tiles cover a dimension, and whether a GEMM
fits the command fields and the operand buffers.

:func:`gemm_capacity_error` is the loader's rule (:class:`qforge.hdl.loader.Loader`) plus
the field limits of the ``GEMM`` command; the decoder, the assembler, the data movers
and the board model apply it. :func:`tiles` is the ceiling division every tiling count
uses (tiles of rows or columns, buffer words of ``P`` operands, code blocks of ``K``
bits). This module imports nothing of qforge (the configuration is used through its
attributes), so :mod:`~qforge.sim.model.spec` can use :func:`tiles` for its derived
widths; :mod:`~qforge.sim.model.machine` re-exports both.
"""

from __future__ import annotations

__all__ = ["tiles", "gemm_capacity_error"]


def tiles(count, size):
    """Tiles of ``size`` needed to cover ``count`` (the last one zero-padded):
    ``ceil(count / size)``, exact for integers of any size and vectorized over numpy
    integer arrays.

    >>> tiles(7, 2), tiles(8, 2), tiles(0, 4)
    (4, 4, 0)
    """
    return -(-count // size)


def gemm_capacity_error(config, m: int, n: int, k: int) -> str | None:
    """Why a GEMM of ``m x k`` by ``k x n`` does not fit the hardware's command fields
    and buffers of ``config`` (a :class:`~qforge.sim.model.spec.Config`), or None.

    ``m`` and ``n`` are at most ``2**tiles_field_width`` tiles of ``R`` rows and ``C``
    columns; ``1 <= k <= max_reduction_depth``; A takes ``ceil(m / R) * ceil(k / P)``
    words of ``buffer_depth``; B ``ceil(n / C) * ceil(k / P)`` words of
    ``buffer_depth``, or on a zero-skipping array ``ceil(ceil(n / C) / R) * ceil(k / P)``
    words of ``pe_buffer_depth``.

    >>> from qforge.sim.model.spec import load_preset
    >>> gemm_capacity_error(load_preset("tiny"), 1100, 2, 8)    # 512 tiles of R = 2 rows
    'GEMM.m = 1100: allowed 1 .. 1024 (512 tiles of 2 rows)'
    >>> gemm_capacity_error(load_preset("tiny"), 300, 2, 8)     # P = 1: k words per tile
    'GEMM: A needs ceil(m / R) * ceil(k / P) = 150 * 8 = 1200 buffer words; allowed at most buffer_depth = 512'
    """
    limit = 1 << config.tiles_field_width
    for name, value, size, what in (("m", m, config.rows, "rows"),
                                    ("n", n, config.cols, "columns")):
        if not 1 <= value <= limit * size:
            return (f"GEMM.{name} = {value}: allowed 1 .. {limit * size} "
                    f"({limit} tiles of {size} {what})")
    if not 1 <= k <= config.max_reduction_depth:
        return (f"GEMM.k = {k}: allowed 1 .. {config.max_reduction_depth} "
                f"(arithmetic.max_reduction_depth)")
    words = tiles(k, config.block_multipliers)
    m_tiles, n_tiles = tiles(m, config.rows), tiles(n, config.cols)
    if m_tiles * words > config.buffer_depth:
        return (f"GEMM: A needs ceil(m / R) * ceil(k / P) = {m_tiles} * {words} = "
                f"{m_tiles * words} buffer words; allowed at most buffer_depth = "
                f"{config.buffer_depth}")
    if config.zero_skipping:
        groups = tiles(n_tiles, config.rows)
        if groups * words > config.pe_buffer_depth:
            return (f"GEMM: B needs ceil(ceil(n / C) / R) * ceil(k / P) = {groups} * "
                    f"{words} = {groups * words} PE buffer words; allowed at most "
                    f"pe_buffer_depth = {config.pe_buffer_depth}")
    elif n_tiles * words > config.buffer_depth:
        return (f"GEMM: B needs ceil(n / C) * ceil(k / P) = {n_tiles} * {words} = "
                f"{n_tiles * words} buffer words; allowed at most buffer_depth = "
                f"{config.buffer_depth}")
    return None
