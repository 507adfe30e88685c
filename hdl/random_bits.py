"""The random bits of stochastic rounding in hardware: the Speck64 rounds of
:func:`qforge.sim.model.random_bits.random_bits` and the key schedule of
:func:`qforge.sim.model.random_bits.round_keys`, as the output stage
(:class:`qforge.hdl.output_stage.OutputStage`) pipelines them.

Per element, ``random_bits`` is ``RANDOM_ROUNDS`` Speck rounds on ``(x, y) = (row,
col)``; the output stage spreads them over the pipeline stages of
:data:`RANDOM_STAGE_ROUNDS`. The round keys are constant for a GEMM: :func:`key_schedule`
computes them once per GEMM, :data:`KEY_ROUNDS_PER_CYCLE` rounds per cycle.

>>> [len(rounds) for rounds in RANDOM_STAGE_ROUNDS], key_schedule_steps()
([3, 3, 2], 4)
"""

from amaranth.hdl import Signal

from qforge.sim.model.capacity import tiles
from qforge.sim.model.random_bits import KEY_CONSTANTS, RANDOM_ROUNDS

__all__ = ["KEY_ROUNDS_PER_CYCLE", "RANDOM_STAGE_ROUNDS", "speck_round",
           "key_schedule_steps", "key_schedule"]

#: Key-schedule rounds computed per cycle after loading a GEMM's parameters.
KEY_ROUNDS_PER_CYCLE = 2
#: The Speck rounds of each pipeline stage of the random bits: at most three 32-bit
#: additions in series (four were the iCE40's critical path: 19 MHz).
RANDOM_STAGE_ROUNDS = (range(0, 3), range(3, 6), range(6, RANDOM_ROUNDS))


def _add32(a, b):
    return (a + b)[:32]


def speck_round(x, y, key):
    """One Speck64 round on 32-bit words (:func:`qforge.sim.model.random_bits.random_bits`):
    ``x = ((x >>> 8) + y) ^ key``; ``y = (y <<< 3) ^ x``. Returns the new ``(x, y)``
    values (combinational; rotations are wiring)."""
    x = _add32(x.rotate_right(8), y) ^ key
    y = y.rotate_left(3) ^ x
    return x, y


def key_schedule_steps() -> int:
    """Cycles the key schedule takes: the ``RANDOM_ROUNDS - 1`` schedule rounds after
    key 0, :data:`KEY_ROUNDS_PER_CYCLE` per cycle."""
    return tiles(RANDOM_ROUNDS - 1, KEY_ROUNDS_PER_CYCLE)


def key_schedule(m, *, load, seed, tensor, step, ready) -> tuple[list[Signal], Signal]:
    """Add :func:`qforge.sim.model.random_bits.round_keys` to ``m``, as a small shared
    circuit (two 32-bit adders) instead of seven chained ones; return the
    ``RANDOM_ROUNDS`` 32-bit round-key registers and ``schedule_busy`` (high from the
    cycle after ``load`` until the last keys are written).

    In a cycle with ``load`` high, key 0 takes ``seed`` and the schedule restarts from
    ``(seed, tensor)``. Then in each cycle with ``step`` high it computes the next
    :data:`KEY_ROUNDS_PER_CYCLE` keys, :func:`key_schedule_steps` cycles in all, and
    sets ``ready`` (a 1-bit register of the caller, which clears it) with the last.
    Key ``i`` is rewritten at the end of the ``ceil(i / KEY_ROUNDS_PER_CYCLE)``-th
    stepping cycle after the load, no sooner.

    The registers live in ``m`` (the caller's module), so they keep their names in the
    generated Verilog: ``key0`` .., ``schedule_key``, ``schedule_l0`` .., ``schedule_step``,
    ``schedule_busy``.
    """
    keys = [Signal(32, name=f"key{i}") for i in range(RANDOM_ROUNDS)]
    schedule_busy = Signal()
    schedule_key = Signal(32)                    # k[i] of the next schedule round
    schedule_words = [Signal(32, name=f"schedule_l{i}") for i in range(3)]  # l[i..i+2]
    steps = key_schedule_steps()
    schedule_step = Signal(range(steps))

    with m.If(load):
        m.d.sync += [keys[0].eq(seed),
                     schedule_key.eq(seed),
                     schedule_words[0].eq(tensor),
                     schedule_words[1].eq(KEY_CONSTANTS[0]),
                     schedule_words[2].eq(KEY_CONSTANTS[1]),
                     schedule_step.eq(0), schedule_busy.eq(1)]
    # Round i: l[i+3] = (k[i] + (l[i] >>> 8)) ^ i; k[i+1] = (k[i] <<< 3) ^ l[i+3], i.e.
    # the Speck round on (x, y) = (l[i], k[i]) with key i. One shared circuit of
    # KEY_ROUNDS_PER_CYCLE rounds: i = step * KEY_ROUNDS_PER_CYCLE + j.
    key, words, new_keys = schedule_key, list(schedule_words), []
    for j in range(KEY_ROUNDS_PER_CYCLE):
        index = Signal(range(steps * KEY_ROUNDS_PER_CYCLE), name=f"schedule_round{j}")
        m.d.comb += index.eq(schedule_step * KEY_ROUNDS_PER_CYCLE + j)
        word, key = speck_round(words[0], key, index)
        words = words[1:] + [word]
        new_keys.append(key)
    with m.If(schedule_busy & step):
        m.d.sync += [schedule_key.eq(key), schedule_step.eq(schedule_step + 1)]
        m.d.sync += [w.eq(v) for w, v in zip(schedule_words, words)]
        for index in range(steps):
            with m.If(schedule_step == index):
                for j, new_key in enumerate(new_keys):
                    if index * KEY_ROUNDS_PER_CYCLE + j + 1 < RANDOM_ROUNDS:
                        m.d.sync += keys[index * KEY_ROUNDS_PER_CYCLE + j + 1].eq(new_key)
                if index == steps - 1:
                    m.d.sync += [schedule_busy.eq(0), ready.eq(1)]
    return keys, schedule_busy
