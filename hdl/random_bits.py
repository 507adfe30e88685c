"""The random bits of stochastic rounding in hardware: the rounds of
:func:`qforge.sim.model.random_bits.random_bits` with the round keys of
:func:`qforge.sim.model.random_bits.round_keys`, as the output stage
(:class:`qforge.hdl.output_stage.OutputStage`) pipelines them.

Per element, ``random_bits`` is ``RANDOM_ROUNDS`` rounds on ``(x, y) = (row, col)``;
the output stage spreads them over the pipeline stages of :data:`RANDOM_STAGE_ROUNDS`.
The round keys are the GEMM's ``(seed, tensor)`` and the round number, wired
(:func:`round_key`): no key schedule and no key registers.

>>> [len(rounds) for rounds in RANDOM_STAGE_ROUNDS]
[3, 3, 2]
"""

from amaranth.hdl import Cat, Const

from qforge.sim.model.random_bits import RANDOM_ROUNDS, round_keys

__all__ = ["RANDOM_STAGE_ROUNDS", "mix_round", "round_key"]

#: The rounds of each pipeline stage of the random bits: at most three 32-bit additions
#: in series (four were the iCE40's critical path: 19 MHz).
RANDOM_STAGE_ROUNDS = (range(0, 3), range(3, 6), range(6, RANDOM_ROUNDS))


def round_key(seed, tensor, index: int):
    """Round ``index``'s 32-bit key from the 32-bit ``seed`` and 16-bit ``tensor`` values:
    :func:`qforge.sim.model.random_bits.round_keys`, ``seed ^ (tensor << 16 * (index %
    2)) ^ index`` (the constant folds into the XOR that uses the key)."""
    assert len(seed) == 32 and len(tensor) == 16
    placed = Cat(tensor, Const(0, 16)) if index % 2 == 0 else Cat(Const(0, 16), tensor)
    # The model's own rule on (0, 0) gives the round's constant.
    return seed ^ placed ^ round_keys(0, 0)[index]


def mix_round(x, y, key):
    """One round of :func:`qforge.sim.model.random_bits.random_bits` on 32-bit words:
    ``x = (x >>> 8) + y`` (modulo ``2**32``); ``y = (y <<< 3) ^ x ^ key``. Returns the
    new ``(x, y)`` values (combinational; rotations are wiring). On an FPGA the new
    ``x`` is the adder's own sum (no LUT after it), and each bit of the new ``y`` is one
    4-input XOR of ``y``, ``x``, ``seed`` and ``tensor`` bits: one LUT4."""
    x = (x.rotate_right(8) + y)[:32]
    y = y.rotate_left(3) ^ x ^ key
    return x, y
