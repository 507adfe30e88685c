"""The random bits of stochastic rounding: a counter-based generator, defined once.

Stochastic rounding needs random bits that depend only on *what* is rounded, never on
*where* or *when* the hardware rounds it: :func:`random_bits` is a counter-based
generator keyed by ``(seed, tensor id)`` and indexed by the element's coordinates
``(row, column)`` in the output tensor. It is 8 rounds of an add-rotate-XOR mixer on the
64-bit block ``(x, y) = (row, col)``: the Speck64 round structure (a 32-bit add, two
rotations and XORs; rotations are wiring), with the round key XORed into ``y`` instead
of ``x`` and taken straight from ``(seed, tensor)`` (:func:`round_keys`), so there is no
key schedule. Per element the cost is 8 adders of 32 bits and, per round, one XOR of
four inputs per bit of ``y``: one 4-input LUT on an FPGA. The hardware generator
(``qforge.hdl.random_bits``) uses :data:`RANDOM_ROUNDS` and :func:`round_keys` from here.

It is a statistical mixer, not a cipher: ``tests/sim/model/test_random_bits.py`` checks
its bits (byte frequencies, bit balance, independence of neighbouring rows, columns,
tensors and seeds); 6 rounds fail those checks, 7 pass, 8 leave a round of margin.
"""

from __future__ import annotations

import functools

import numpy as np

from qforge.sim.model.errors import InputError

__all__ = ["RANDOM_ROUNDS", "MAX_SEED", "MAX_TENSOR", "round_keys",
           "random_bits", "random_words",
           "random_words_where", "random_words_batch",
           "element_coordinates"]

#: Rounds of the mixer in :func:`random_bits`.
RANDOM_ROUNDS = 8
_MASK32 = 0xFFFFFFFF
#: The largest seed (a 32-bit key word) and tensor id (16 bits).
MAX_SEED = _MASK32
MAX_TENSOR = 0xFFFF


def round_keys(seed: int, tensor: int) -> list[int]:
    """The ``RANDOM_ROUNDS`` 32-bit round keys for ``(seed, tensor)``: round ``i``'s key is
    ``seed ^ (tensor << 16 * (i % 2)) ^ i`` (the tensor id in the low half of the even
    rounds' keys and the high half of the odd rounds'; the round number makes the rounds
    differ). No two ``(seed, tensor)`` pairs share their keys: keys 0 and 1 differ by
    ``tensor ^ (tensor << 16)``, which gives ``tensor``, and then key 0 gives ``seed``.
    Raises :class:`~qforge.sim.model.errors.InputError` unless ``0 <= seed <= MAX_SEED``
    and ``0 <= tensor <= MAX_TENSOR``.

    >>> [hex(k) for k in round_keys(0x100, 0x23)[:4]]
    ['0x123', '0x230101', '0x121', '0x230103']
    >>> round_keys(0, 65536)
    Traceback (most recent call last):
    ...
    InputError: tensor = 65536: allowed range is 0 .. 65535
    """
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed = {seed!r}: allowed range is 0 .. {MAX_SEED}")
    if not 0 <= tensor <= MAX_TENSOR:
        raise InputError(f"tensor = {tensor!r}: allowed range is 0 .. {MAX_TENSOR}")
    return [seed ^ (tensor << 16 * (i % 2)) ^ i for i in range(RANDOM_ROUNDS)]


def random_bits(seed: int, tensor: int, rows, cols) -> np.ndarray:
    """32 random bits (``uint64`` below ``2**32``) for each element ``(rows[i], cols[i])``
    of tensor ``tensor``.

    With ``x = row``, ``y = col`` (32-bit words, the coordinates' low 32 bits), each round
    with key ``k`` (:func:`round_keys`) computes ``x = (x >>> 8) + y`` (modulo ``2**32``)
    then ``y = (y <<< 3) ^ x ^ k``; the result is the final ``y``. Depends only on the
    seed, the tensor id and the coordinates.

    >>> bits = random_bits(1, 2, np.array([0, 0, 1, 0]), np.array([0, 1, 0, 0]))
    >>> bool((bits < 2**32).all()), bool(bits[0] == bits[3]), len(set(bits[:3].tolist()))
    (True, True, 3)
    """
    return random_words(seed, tensor, rows, cols).astype(np.uint64)


#: Per row of the stacked ``(x, y)`` words: the right and left shifts of a rotation,
#: ``x >>> 8`` and ``y <<< 3``.
_RIGHT = np.array([[8], [29]], dtype=np.uint32)
_LEFT = np.array([[24], [3]], dtype=np.uint32)


def random_words(seed: int, tensor: int, rows, cols) -> np.ndarray:
    """:func:`random_bits` as ``uint32`` words (the same bits, one conversion fewer for
    callers that scale them), shaped as ``rows`` and ``cols`` broadcast together.

    >>> rows, cols = np.array([0, 0, 1, 0]), np.array([0, 1, 0, 0])
    >>> bool((random_words(1, 2, rows, cols) == random_bits(1, 2, rows, cols)).all())
    True
    """
    keys = round_keys(seed, tensor)
    rows, cols = np.asarray(rows), np.asarray(cols)
    shape = rows.shape if rows.shape == cols.shape else np.broadcast_shapes(rows.shape,
                                                                           cols.shape)
    # Storing an integer coordinate into uint32 keeps its low 32 bits (numpy's item
    # assignment casts unsafely, modulo 2**32), as the hardware's 32-bit words do.
    words = np.empty((2, *shape), dtype=np.uint32)
    words[0], words[1] = rows, cols
    return _rounds(words.reshape(2, -1), [np.uint32(key) for key in keys])[1].reshape(shape)


def random_words_batch(keys, shapes) -> list[np.ndarray]:
    """``[random_words(seed, tensor, *element_coordinates(shape)) for (seed, tensor),
    shape in zip(keys, shapes)]``: the words of several 2-D tensors (each element at
    its row and column), computed in one pass of the cipher with each element's own
    round keys. numpy's cost per call dominates on the small tensors of a training step,
    so one pass over all of a step's tensors costs about what one tensor did.

    >>> a, b = random_words_batch([(1, 2), (1, 3)], [(2, 3), (4, 1)])
    >>> bool((b == random_words(1, 3, *element_coordinates((4, 1)))).all()), a.shape
    (True, (2, 3))
    >>> random_words_batch([(1, 2)], [(5,)])
    Traceback (most recent call last):
    ...
    InputError: random_words_batch: shapes[0] = (5,): must be a 2-D tensor's (rows, cols)
    """
    keys, shapes = list(keys), [tuple(shape) for shape in shapes]
    if len(keys) != len(shapes):
        raise InputError(f"random_words_batch: {len(keys)} keys for {len(shapes)} shapes")
    for index, shape in enumerate(shapes):
        if len(shape) != 2:
            raise InputError(f"random_words_batch: shapes[{index}] = {shape}: must be a "
                             f"2-D tensor's (rows, cols)")
    if not shapes:
        return []
    sizes = [rows * cols for rows, cols in shapes]
    words = _batch_coordinates(tuple(shapes)).copy()        # _rounds reuses its input
    element_keys = np.repeat(np.array([round_keys(*key) for key in keys],
                                      dtype=np.uint32).T, sizes, axis=1)
    words = _rounds(words, element_keys)[1]
    return [part.reshape(shape) for part, shape in
            zip(np.split(words, np.cumsum(sizes)[:-1]), shapes)]


@functools.lru_cache(maxsize=16)
def _batch_coordinates(shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The ``2 x total`` uint32 ``(row, column)`` words of the elements of 2-D tensors of
    ``shapes``, one after the other (cached: a training step's shapes repeat)."""
    words = np.concatenate([element_coordinates(shape).reshape(2, -1) for shape in shapes],
                           axis=1).astype(np.uint32)
    words.flags.writeable = False
    return words


def _rounds(words: np.ndarray, keys) -> np.ndarray:
    """The ``RANDOM_ROUNDS`` rounds of :func:`random_bits` on ``words``, a ``2 x n``
    ``uint32`` array of ``x`` (row 0) and ``y`` (row 1), with ``keys[i]`` round ``i``'s
    key (a ``uint32`` scalar, or one per element); returns the final ``2 x n`` words."""
    # x and y stacked as the two rows of one array, so that one shift rotates both
    # (numpy's per-call cost dominates on small tensors: 6 calls per round, not 9).
    # The adds wrap modulo 2**32 and the shifts drop the high bits by themselves, as
    # the hardware's 32-bit adders and wiring do.
    rotated, spare = np.empty_like(words), np.empty_like(words)
    for key in keys:
        np.right_shift(words, _RIGHT, out=rotated)
        np.left_shift(words, _LEFT, out=spare)
        rotated |= spare                    # rows: x >>> 8, y <<< 3
        x, y = rotated
        x += words[1]
        y ^= x
        y ^= key
        words, rotated = rotated, words
    return words


def random_words_where(seed: int, tensor: int, rows, cols, needed) -> np.ndarray:
    """:func:`random_words` for the elements where ``needed`` is true, shaped as
    ``needed``; the other elements get words the caller must not depend on (0, or their
    own words when computing them all is cheaper).

    Stochastic rounding leaves a value that is already a whole number of units
    unchanged whatever its random bits, and in training about half the elements of an
    activation or gradient are such values (the zeros of ReLU), so the rounding rules
    (:mod:`qforge.sim.model.rounding`) draw bits only for the others: the cipher is
    most of the emulator's time. The bits of an element are the same either way.

    >>> rows, cols = element_coordinates((2, 3))
    >>> needed = np.array([[True, False, True], [False, False, True]])
    >>> words = random_words_where(4, 5, rows, cols, needed)
    >>> bool((words[needed] == random_words(4, 5, rows, cols)[needed]).all())
    True
    """
    needed = np.asarray(needed, dtype=bool)
    # Gathering the needed coordinates and scattering their words back costs about as
    # much as a fifth of the cipher's 48 array operations: skip it for dense tensors.
    if np.count_nonzero(needed) > needed.size * 3 // 4:
        return random_words(seed, tensor, rows, cols)
    index = np.flatnonzero(needed)
    words = np.zeros(needed.shape, dtype=np.uint32)
    words.reshape(-1)[index] = random_words(seed, tensor, _flat(rows, needed.shape)[index],
                                            _flat(cols, needed.shape)[index])
    return words


def _flat(coordinates, shape) -> np.ndarray:
    """``coordinates`` broadcast to ``shape``, flattened (a view when already so shaped:
    ``np.broadcast_to`` costs more than the gather on small tensors)."""
    coordinates = np.asarray(coordinates)
    if coordinates.shape != shape:
        coordinates = np.broadcast_to(coordinates, shape)
    return coordinates.reshape(-1)


@functools.lru_cache(maxsize=64)
def element_coordinates(shape: tuple[int, ...]) -> np.ndarray:
    """``np.indices(shape)``, read-only and cached: the ``(row, column)`` coordinates of
    every element of a tensor of ``shape``, the default random-bit coordinates (training
    rounds tensors of the same few shapes at every step).

    >>> element_coordinates((2, 3))[1].tolist()
    [[0, 1, 2], [0, 1, 2]]
    """
    coordinates = np.indices(shape)
    coordinates.flags.writeable = False
    return coordinates
