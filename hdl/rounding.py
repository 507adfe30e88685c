"""Rounding in hardware: the round-shift rule of
:func:`qforge.sim.model.rounding.round_shift`, once, for the output stage
(:mod:`qforge.hdl.output_stage`) and the VRQ encoder (:mod:`qforge.hdl.vrq_encoder`).

The rounding codes are the golden model's :class:`~qforge.sim.model.rounding.Rounding`
(a standard ``enum.IntEnum``, so the model needs no Amaranth): it is the shape of the
``rounding`` fields (:func:`qforge.hdl.layouts.output_layout`; Amaranth casts it to
``unsigned(2)``) and the HDL compares with its members, never with literal codes.

A round-shift is split in two so that a pipeline can register between the halves:
:func:`round_shift_addend` (the rounding rule: an addend below ``2**shift``) and
:func:`shift_rounded` (``(value + addend) >> shift``, floor). Their composition is
``round_shift(value, shift, rounding)`` for every ``value`` and ``0 <= shift <=
max_shift``.

>>> from amaranth.hdl import Signal
>>> code = Signal(2)
>>> [rule.name for rule in Rounding]
['NEAREST_EVEN', 'TRUNCATE', 'STOCHASTIC']
>>> rounding_is_defined(code).shape()
unsigned(1)
"""

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned

from qforge.sim.model.rounding import Rounding

__all__ = ["rounding_is_defined", "round_shift_addend", "shift_rounded"]


def rounding_is_defined(code):
    """1 when the 2-bit ``code`` is a :class:`Rounding` member (the check that rejects
    the other codes: :func:`qforge.sim.model.machine.instruction_error`)."""
    return Cat(*(code == rule for rule in Rounding)).any()


def round_shift_addend(m, value, shift, rounding, random_bits, *, max_shift: int,
                       name: str = "") -> Signal:
    """The addend of :func:`qforge.sim.model.rounding.round_shift`'s rule ``rounding``
    for ``value`` shifted right by ``shift``: an ``unsigned(max_shift)`` signal below
    ``2**shift``, combinational, added to ``m``.

    ``value``: the signed or unsigned value to shift; ``shift``: ``0 .. max_shift``;
    ``rounding``: a :class:`Rounding` code; ``random_bits``: the element's 32 random
    bits (:func:`qforge.sim.model.random_bits.random_bits`). ``name`` suffixes the
    signals' names. Codes that are no :class:`Rounding` member give addend 0; they never
    arrive (the loader and the decoder reject them).
    """
    # STOCHASTIC: r = the top `shift` of the 32 bits, or the bits followed by zeros when
    # shift > 32 (qforge.sim.model.rounding._random_fraction); both are
    # floor(bits * 2**(shift - 32)): the bits at the top of a `top`-bit word, shifted
    # right by top - shift.
    top = max(max_shift, 32)
    random_amount = Signal(range(top + 1), name=f"random_amount{name}")
    random_addend = Signal(unsigned(max_shift), name=f"random_addend{name}")
    m.d.comb += [random_amount.eq(top - shift),
                 random_addend.eq(Cat(Const(0, top - 32), random_bits) >> random_amount)]

    # NEAREST_EVEN: floor(v / 2**s) rounds up when the remainder exceeds half, or equals
    # half with an odd floor: v + (2**(s-1) - 1) + odd(floor), then floor. Shift 0 adds
    # nothing.
    low_mask = Signal(unsigned(max_shift), name=f"low_mask{name}")      # 2**s - 1
    odd = Signal(name=f"odd{name}")
    nearest_addend = Signal(unsigned(max_shift), name=f"nearest_addend{name}")
    m.d.comb += [low_mask.eq(~(Const((1 << max_shift) - 1, max_shift) << shift)),
                 odd.eq((value >> shift)[0] & (shift != 0)),
                 nearest_addend.eq((low_mask >> 1) + odd)]

    # TRUNCATE: floor, addend 0.
    addend = Signal(unsigned(max_shift), name=f"addend{name}")
    m.d.comb += addend.eq(
        Mux(rounding == Rounding.NEAREST_EVEN, nearest_addend,
            Mux(rounding == Rounding.STOCHASTIC, random_addend, 0)))
    return addend


def shift_rounded(m, value, addend, shift, *, name: str = "") -> Signal:
    """``(value + addend) >> shift`` (floor), exact: a signal one bit wider than both
    operands (signed when ``value`` is), combinational, added to ``m``. With ``addend``
    from :func:`round_shift_addend` it is :func:`qforge.sim.model.rounding.round_shift`.
    """
    if value.shape().signed:
        # Signed value, unsigned addend: the addend needs a sign bit of its own.
        shape = signed(max(len(value), len(addend) + 1) + 1)
    else:
        shape = unsigned(max(len(value), len(addend)) + 1)
    total = Signal(shape, name=f"total{name}")
    rounded = Signal(shape, name=f"rounded{name}")
    m.d.comb += [total.eq(value + addend), rounded.eq(total >> shift)]
    return rounded
