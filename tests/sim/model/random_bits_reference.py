"""An independent scalar form of :func:`qforge.sim.model.random_bits.random_bits`, written
from its docstrings (pure Python integers, one element at a time): the reference its
tests and the rounding tests compare with. It does not import the model's rounds or
keys, only the round count."""

from qforge.sim.model.random_bits import RANDOM_ROUNDS

MASK = (1 << 32) - 1


def ror(value, amount):
    return ((value >> amount) | (value << (32 - amount))) & MASK


def rol(value, amount):
    return ((value << amount) | (value >> (32 - amount))) & MASK


def scalar_round_keys(seed, tensor):
    """Round i's key: the seed, XOR the tensor id in the low half (even i) or the high
    half (odd i), XOR i."""
    return [seed ^ (tensor << (16 if i % 2 else 0)) ^ i for i in range(RANDOM_ROUNDS)]


def scalar_random_bits(seed, tensor, row, col):
    """x = row, y = col; per round x = (x >>> 8) + y, y = (y <<< 3) ^ x ^ key; the final
    y."""
    x, y = row & MASK, col & MASK
    for key in scalar_round_keys(seed, tensor):
        x = (ror(x, 8) + y) & MASK
        y = rol(y, 3) ^ x ^ key
    return y
