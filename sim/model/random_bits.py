"""The random bits of stochastic rounding: a counter-based generator, defined once.

Stochastic rounding needs random bits that depend only on *what* is rounded, never on
*where* or *when* the hardware rounds it: :func:`random_bits` is a counter-based
generator keyed by ``(seed, tensor id)`` and indexed by the element's coordinates
``(row, column)`` in the output tensor. It is 8 rounds of the Speck64/128 round function
(an add, two rotations and two XORs on 32-bit words; rotations are wiring), with round
keys from Speck's key schedule applied to ``(seed, tensor, "qfor", "ge!!")``. The round
keys are constant for a GEMM, so per element the cost is 8 adders of 32 bits and 16
32-bit XORs. The hardware generator (``qforge.hdl.output_stage``) uses
:data:`RANDOM_ROUNDS` and :data:`KEY_CONSTANTS` from here.
"""

from __future__ import annotations

import numpy as np

from qforge.sim.model.errors import InputError

__all__ = ["RANDOM_ROUNDS", "KEY_CONSTANTS", "MAX_SEED", "MAX_TENSOR", "round_keys",
           "random_bits"]

#: Rounds of the Speck64 round function in :func:`random_bits`.
RANDOM_ROUNDS = 8
_MASK32 = 0xFFFFFFFF
#: The two fixed key words: ASCII "qfor" and "ge!!".
KEY_CONSTANTS = (0x71666F72, 0x67652121)
#: The largest seed (a 32-bit key word) and tensor id (16 bits).
MAX_SEED = _MASK32
MAX_TENSOR = 0xFFFF


def _rotl32(value, amount):
    return ((value << amount) | (value >> (32 - amount))) & _MASK32


def _rotr32(value, amount):
    return ((value >> amount) | (value << (32 - amount))) & _MASK32


def round_keys(seed: int, tensor: int) -> list[int]:
    """The ``RANDOM_ROUNDS`` 32-bit round keys for ``(seed, tensor)``.

    Speck64/128's key schedule with key words ``k0 = seed``, ``l0 = tensor``,
    ``l1, l2`` = "qfor", "ge!!": ``l[i+3] = (k[i] + (l[i] >>> 8)) ^ i``,
    ``k[i+1] = (k[i] <<< 3) ^ l[i+3]``. Raises :class:`ValueError` unless
    ``0 <= seed <= MAX_SEED`` and ``0 <= tensor <= MAX_TENSOR``.

    By hand for seed 0, tensor 0: ``l3 = (0 + (0 >>> 8)) ^ 0 = 0``, ``k1 = 0``;
    ``l4 = (0 + ("qfor" >>> 8)) ^ 1 = 0x7271666f ^ 1``, ``k2 = l4``:

    >>> [hex(k) for k in round_keys(0, 0)[:3]]
    ['0x0', '0x0', '0x7271666e']
    >>> round_keys(0, 65536)
    Traceback (most recent call last):
    ...
    InputError: tensor = 65536: allowed range is 0 .. 65535
    """
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed = {seed!r}: allowed range is 0 .. {MAX_SEED}")
    if not 0 <= tensor <= MAX_TENSOR:
        raise InputError(f"tensor = {tensor!r}: allowed range is 0 .. {MAX_TENSOR}")
    keys = [seed]
    words = [tensor, *KEY_CONSTANTS]
    for i in range(RANDOM_ROUNDS - 1):
        words.append(((keys[i] + _rotr32(words[i], 8)) & _MASK32) ^ i)
        keys.append(_rotl32(keys[i], 3) ^ words[-1])
    return keys


def random_bits(seed: int, tensor: int, rows, cols) -> np.ndarray:
    """32 random bits (``uint64`` below ``2**32``) for each element ``(rows[i], cols[i])``
    of tensor ``tensor``.

    With ``x = row``, ``y = col`` (32-bit words), each round with key ``k`` computes
    ``x = ((x >>> 8) + y) ^ k`` then ``y = (y <<< 3) ^ x``; the result is the final
    ``y``. Depends only on the seed, the tensor id and the coordinates.

    >>> bits = random_bits(1, 2, np.array([0, 0, 1, 0]), np.array([0, 1, 0, 0]))
    >>> bool((bits < 2**32).all()), bool(bits[0] == bits[3]), len(set(bits[:3].tolist()))
    (True, True, 3)
    """
    keys = round_keys(seed, tensor)
    # 32-bit words in uint32 arrays: the adds wrap modulo 2**32 and the shifts drop the
    # high bits by themselves, as the hardware's 32-bit adders and wiring do (half the
    # work of masking 64-bit words; the emulator draws these bits for every rounding).
    x = (np.asarray(rows, dtype=np.uint64) & np.uint64(_MASK32)).astype(np.uint32)
    y = (np.asarray(cols, dtype=np.uint64) & np.uint64(_MASK32)).astype(np.uint32)
    with np.errstate(over="ignore"):        # a 0-d input computes on numpy scalars
        for key in keys:
            x = ((x >> np.uint32(8)) | (x << np.uint32(24))) + y
            x ^= np.uint32(key)
            y = ((y << np.uint32(3)) | (y >> np.uint32(29))) ^ x
    return np.asarray(y).astype(np.uint64)
