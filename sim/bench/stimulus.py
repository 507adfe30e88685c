"""Random GEMM stimulus: shapes, precision modes and value distributions.

Every generator takes a ``numpy.random.Generator`` so a seed reproduces a run exactly.
Values are always drawn inside the range a mode allows (they are never clipped after
the fact), so the golden model accepts every generated job.
"""

from __future__ import annotations

import numpy as np

from qforge.sim.model.spec import Config
from qforge.sim.model.capacity import tiles
from qforge.sim.model.numerics import OperandPrecision, Precision, Selection, standard_modes
from qforge.sim.model.saturation import signed_range

__all__ = ["DISTRIBUTIONS", "random_operands", "random_precision", "random_shape",
           "operand_range", "sparse_operands", "paired_activations"]

#: Value distributions the benches draw from.
DISTRIBUTIONS = ("uniform", "normal", "heavy_tailed", "post_relu", "sparse", "extremes",
                 "zeros")


def operand_range(config: Config, precision: OperandPrecision) -> tuple[int, int]:
    """Inclusive ``(low, high)`` allowed for an operand with ``precision.blocks`` blocks."""
    return signed_range(precision.blocks * config.block_width)


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


def sparse_operands(rng: np.random.Generator, shape, low: int, high: int,
                    density: float) -> np.ndarray:
    """Integers in ``[low, high]`` with a given fraction ``density`` of non-zero elements.

    Exactly ``round(density * size)`` elements are non-zero, at random positions, but at
    least one when ``density > 0`` and at least one zero when ``density < 1`` (so 1% of
    a small matrix is not all zeros, 90% not all non-zero). Non-zero values are uniform
    over ``[low, high]`` without 0. Zero-skipping tests draw A with it.

    >>> rng = np.random.default_rng(0)
    >>> x = sparse_operands(rng, (4, 25), -8, 7, 0.1)
    >>> int(np.count_nonzero(x)), bool(x.min() >= -8 and x.max() <= 7)
    (10, True)
    >>> int(np.count_nonzero(sparse_operands(rng, (3, 5), -8, 7, 0.01)))
    1
    >>> int(np.count_nonzero(sparse_operands(rng, (3, 5), -8, 7, 0.99)))
    14
    >>> int(np.count_nonzero(sparse_operands(rng, (3, 5), -8, 7, 1.0)))
    15
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density = {density!r}: allowed 0 .. 1")
    if low > high or low == high == 0:
        raise ValueError(f"[{low}, {high}] holds no non-zero integer")
    size = int(np.prod(shape))
    count = int(round(density * size))
    if density > 0:
        count = max(count, 1)
    if density < 1:
        count = min(count, size - 1)
    count = max(count, 0)
    if low <= 0 <= high:
        # Uniform over [low, -1] and [1, high]: draw from high - low values, skip 0.
        values = rng.integers(low, high, size=count)
        values = np.where(values >= 0, values + 1, values)
    else:
        values = rng.integers(low, high + 1, size=count)
    flat = np.zeros(size, dtype=np.int64)
    flat[rng.choice(size, size=count, replace=False)] = values
    return flat.reshape(shape)


def paired_activations(rng: np.random.Generator, shape, low: int, high: int,
                       zeros: float, block_width: int) -> np.ndarray:
    """A operands for the paired mode (:mod:`qforge.sim.model.paired`): integers in
    ``[low, high]`` (``low`` 0 for unsigned operands), exactly the fraction ``zeros`` of
    them zero (:func:`sparse_operands`' count and placement: a pair with a zero is
    exact), the others non-zero and drawn to reach every case of the controller:

    * magnitudes log-uniform (every leading block equally likely: every window
      position);
    * a third are a run of ones below a random bit, less a low bit now and then (the
      dropped bits at and just below half: ROUND's ties and its carry out of the window,
      which saturates);
    * the range's ends;
    * in about one pair of six, the second operand has the first's magnitude (the
      asymmetric rule's tie, to the first), its sign random when ``low < 0``.

    >>> rng = np.random.default_rng(0)
    >>> a = paired_activations(rng, (6, 40), 0, 255, 0.25, 2)
    >>> int((a == 0).sum()), bool(a.min() >= 0 and a.max() <= 255)
    (60, True)
    >>> b = paired_activations(rng, (6, 40), -128, 127, 0.0, 2)
    >>> bool((b != 0).all() and b.min() >= -128 and b.max() <= 127)
    True
    >>> bool((np.abs(b[:, 0::2]) == np.abs(b[:, 1::2])).any())
    True
    """
    placed = sparse_operands(rng, shape, low, high, 1.0 - zeros) if zeros < 1 \
        else np.zeros(shape, dtype=np.int64)
    bits = rng.integers(1, int(high).bit_length() + 1, size=shape)    # |low| from ends
    magnitudes = rng.integers(0, 1 << 62, size=shape) % (1 << bits)
    magnitudes |= 1 << (bits - 1)                     # leading bit: never zero
    ones = (1 << bits) - 1 - np.where(rng.random(shape) < 0.3,
                                      1 << rng.integers(0, block_width, size=shape), 0)
    magnitudes = np.where(rng.random(shape) < 0.33, np.maximum(ones, 1), magnitudes)
    negative = (rng.random(shape) < 0.5) & (low < 0)
    values = np.where(negative, -magnitudes, magnitudes)
    ends = rng.random(shape) < 0.05
    values = np.where(ends, np.where(rng.random(shape) < 0.5 * (low < 0), low, high), values)
    pairs = values.shape[-1] // 2
    tie = rng.random(values.shape[:-1] + (pairs,)) < 1 / 6
    flip = np.where((rng.random(tie.shape) < 0.5) & (low < 0), -1, 1)
    first = values[..., 0:2 * pairs:2]
    second = np.where(tie, np.clip(first * flip, low, high), values[..., 1:2 * pairs:2])
    values[..., 1:2 * pairs:2] = np.where(second == 0, first, second)
    return np.where(placed != 0, values, 0)


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
    words = tiles(depth, config.block_multipliers)
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
