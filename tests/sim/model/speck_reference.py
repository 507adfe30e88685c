"""An independent scalar Speck64/128 written from the docstrings of
:mod:`qforge.sim.model.random_bits` (pure Python integers), the reference its tests and
the rounding tests compare with."""

from qforge.sim.model.random_bits import RANDOM_ROUNDS

MASK = (1 << 32) - 1


# ---- an independent scalar Speck64/128 ----------------------------------------------

def ror(value, amount):
    return ((value >> amount) | (value << (32 - amount))) & MASK


def rol(value, amount):
    return ((value << amount) | (value >> (32 - amount))) & MASK


def speck_round(x, y, key):
    """Speck64: x = ((x >>> 8) + y) ^ k; y = (y <<< 3) ^ x."""
    x = ((ror(x, 8) + y) & MASK) ^ key
    y = rol(y, 3) ^ x
    return x, y


def speck_key_schedule(k0, l_words, rounds):
    """Speck with m = 4 key words (k0, l0, l1, l2): l[i+3] = (k[i] + (l[i] >>> 8)) ^ i,
    k[i+1] = (k[i] <<< 3) ^ l[i+3]."""
    keys, words = [k0], list(l_words)
    for i in range(rounds - 1):
        words.append(((keys[i] + ror(words[i], 8)) & MASK) ^ i)
        keys.append(rol(keys[i], 3) ^ words[i + 3])
    return keys


def speck_encrypt(x, y, keys):
    for key in keys:
        x, y = speck_round(x, y, key)
    return x, y


#: The docstring's fixed key words: ASCII "qfor" and "ge!!", big-endian.
QFOR, GE = int.from_bytes(b"qfor", "big"), int.from_bytes(b"ge!!", "big")


def scalar_round_keys(seed, tensor):
    return speck_key_schedule(seed, [tensor, QFOR, GE], RANDOM_ROUNDS)


def scalar_random_bits(seed, tensor, row, col):
    """x = row, y = col, 8 rounds keyed by (seed, tensor, "qfor", "ge!!"); the final y."""
    return speck_encrypt(row & MASK, col & MASK, scalar_round_keys(seed, tensor))[1]
