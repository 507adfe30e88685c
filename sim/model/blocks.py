"""Where a dynamic selection's window of blocks starts: the one primitive that both the
precision modes (:mod:`qforge.sim.model.numerics`, dynamic approximation) and the paired
mode's windows (:mod:`qforge.sim.model.paired`) use, in a module of its own so that
neither imports the other for it."""

from __future__ import annotations

import numpy as np

__all__ = ["dynamic_exponent"]


def dynamic_exponent(magnitude, block_width: int, blocks: int, kept: int) -> np.ndarray:
    """The lowest kept block of a dynamic selection of ``kept`` of ``blocks`` blocks of
    ``block_width`` bits: ``max(leading block - (kept - 1), 0)`` (:func:`qforge.sim.model.numerics.select_blocks`),
    counted by comparing with block-aligned thresholds (``e >= j`` exactly when the
    leading block is at least ``j + kept - 1``), whole-word and fast.

    >>> dynamic_exponent(np.array([77, 13, 0, 255]), 2, 4, 2)   # leading blocks 3, 1, 0, 3
    array([2, 0, 0, 2])
    """
    magnitude = np.asarray(magnitude, dtype=np.int64)
    exponent = np.zeros(magnitude.shape, dtype=np.int64)
    for j in range(1, blocks - kept + 1):
        exponent += magnitude >= (1 << ((j + kept - 1) * block_width))
    return exponent
