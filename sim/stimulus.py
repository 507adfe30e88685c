"""Random GEMM stimulus: shapes, precision modes and value distributions.

Every generator takes a ``numpy.random.Generator`` so a seed reproduces a run exactly.
Values are always drawn inside the range a mode allows (they are never clipped after
the fact), so the golden model accepts every generated job.
"""

from __future__ import annotations

import numpy as np

from qforge.gen.spec import Config
from qforge.sim.numerics import OperandPrecision, Precision, Selection, standard_modes

__all__ = ["DISTRIBUTIONS", "random_operands", "random_precision", "random_shape",
           "operand_range"]

#: Value distributions the benches draw from.
DISTRIBUTIONS = ("uniform", "normal", "heavy_tailed", "post_relu", "sparse", "extremes",
                 "zeros")


def operand_range(config: Config, precision: OperandPrecision) -> tuple[int, int]:
    """Inclusive ``(low, high)`` allowed for an operand with ``precision.blocks`` blocks."""
    bits = precision.blocks * config.block_width
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def random_operands(rng: np.random.Generator, shape, low: int, high: int,
                    distribution: str) -> np.ndarray:
    """Integers in ``[low, high]`` drawn from one of :data:`DISTRIBUTIONS`.

    * ``uniform``: every value equally likely;
    * ``normal``: centred, standard deviation a quarter of the range;
    * ``heavy_tailed``: log-uniform magnitudes (every block position equally likely to
      lead), random signs: exercises dynamic block selection;
    * ``post_relu``: half zeros, the rest positive, as after a ReLU;
    * ``sparse``: 90% zeros;
    * ``extremes``: only ``low``, ``high``, ``0``, ``-1`` and ``1``;
    * ``zeros``: all zero.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution = {distribution!r}: allowed: {', '.join(DISTRIBUTIONS)}")
    if distribution == "uniform":
        return rng.integers(low, high + 1, size=shape)
    if distribution == "normal":
        values = np.rint(rng.normal(0.0, (high - low) / 8, size=shape)).astype(np.int64)
        # Redraw the rare tail values uniformly instead of clipping them onto the ends.
        outside = (values < low) | (values > high)
        values[outside] = rng.integers(low, high + 1, size=int(outside.sum()))
        return values
    if distribution == "heavy_tailed":
        # high = 2**(b-1) - 1, so a magnitude below 2**bits <= 2**(b-1) fits either sign.
        bits = rng.integers(0, high.bit_length() + 1, size=shape)
        magnitudes = rng.integers(0, 1 << 62, size=shape) % (1 << bits)
        negative = rng.random(size=shape) < 0.5
        return np.where(negative, -magnitudes, magnitudes)
    if distribution == "post_relu":
        values = rng.integers(1, high + 1, size=shape)
        return np.where(rng.random(size=shape) < 0.5, 0, values)
    if distribution == "sparse":
        values = rng.integers(low, high + 1, size=shape)
        return np.where(rng.random(size=shape) < 0.9, 0, values)
    if distribution == "extremes":
        choices = np.array([low, high, 0, -1, 1], dtype=np.int64)
        return choices[rng.integers(0, len(choices), size=shape)]
    return np.zeros(shape, dtype=np.int64)


def random_precision(rng: np.random.Generator, config: Config) -> Precision:
    """A random valid precision mode (any blocks, kept and selection per operand)."""
    def operand():
        blocks = int(rng.integers(1, config.blocks + 1))
        kept = int(rng.integers(1, blocks + 1))
        return OperandPrecision(blocks, kept, Selection(int(rng.integers(0, 2))))
    return Precision(operand(), operand())


def random_shape(rng: np.random.Generator, config: Config, max_tiles: int = 3,
                 max_depth: int = 40) -> tuple[int, int, int]:
    """``(m, n, depth)`` up to ``max_tiles`` tiles each way, often not multiples of the
    array, within the buffer and depth limits of ``config``."""
    depth = int(rng.integers(1, min(max_depth, config.max_reduction_depth) + 1))
    words = -(-depth // config.block_multipliers)
    tile_limit = max(1, min(max_tiles, config.buffer_depth // words))
    m = int(rng.integers(1, tile_limit * config.rows + 1))
    n = int(rng.integers(1, tile_limit * config.cols + 1))
    return m, n, depth


def named_or_random_modes(config: Config, rng: np.random.Generator, count: int):
    """Every standard mode once, then random modes up to ``count``."""
    modes = list(standard_modes(config).items())
    while len(modes) < count:
        modes.append(("random", random_precision(rng, config)))
    return modes
