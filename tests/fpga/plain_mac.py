"""The physical reference of the FxP8 baseline: a plain two's-complement 8x8 signed
multiply-accumulate PE, written directly (no blocks, signs or positions), with the
generated PE's pipeline and ports (tests/fpga/test_pe_area.py and docs/ARCHITECTURE.md,
"Area of a PE against FxP8", compare it with the fxp8 preset's PE).

Like an interior :class:`qforge.hdl.pe.ProcessingElement`: operands and tile flags
registered and forwarded to the neighbours, the product registered, then the
accumulator (restarting on ``first``) and the result register that captures on ``last``
and otherwise shifts ``result_below`` in; no capture pulses (only the array's corner PE
drives them). Flip-flops, by hand: ``2 x width`` operands + 3 flags, ``2 x width``
product + 3 flags, the accumulator and the result.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.hdl.layouts import flags_layout
from qforge.hdl.pe import accumulate_stage


class PlainMac(wiring.Component):
    """A signed ``width`` x ``width`` MAC into a signed ``accumulator_width`` accumulator.

    ``unsigned_core``: the product as an unsigned ``width`` x ``width`` multiply of the
    operands' bit patterns with the two's-complement correction of its upper half,
    ``a x b = ua x ub - 2**width x (a_sign x ub + b_sign x ua)`` modulo ``2**(2 width)``
    (as a Baugh-Wooley array multiplier does), instead of ``a * b``, which Yosys's
    generic flow maps as a ``2 width``-bit multiply of the sign-extended operands.
    """

    def __init__(self, accumulator_width: int, width: int = 8, *,
                 unsigned_core: bool = False):
        self.width, self.accumulator_width = width, accumulator_width
        self.unsigned_core = unsigned_core
        super().__init__({
            "a_in": In(signed(width)), "b_in": In(signed(width)),
            "flags_in": In(flags_layout()),
            "a_out": Out(signed(width)), "b_out": Out(signed(width)),
            "flags_out": Out(flags_layout()),
            "shift": In(1),
            "result_below": In(signed(accumulator_width)),
            "result": Out(signed(accumulator_width)),
        })

    def flip_flops(self) -> int:
        """The flip-flops of the design, counted by hand from :meth:`elaborate`: the
        second stage's ``gemm_last`` only feeds the corner's capture pulses, so Yosys
        removes it."""
        flags = flags_layout().size
        return (2 * self.width + flags) + (2 * self.width + flags - 1) \
            + 2 * self.accumulator_width

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                     self.flags_out.eq(self.flags_in)]
        product = Signal(signed(2 * self.width))
        flags = Signal.like(self.flags_out, name="flags_stage1")
        if self.unsigned_core:
            a, b = self.a_out.as_unsigned(), self.b_out.as_unsigned()
            correction = Mux(a[-1], b, 0) + Mux(b[-1], a, 0)
            value = (a * b - (correction << self.width))[:2 * self.width].as_signed()
        else:
            value = self.a_out * self.b_out
        m.d.sync += [product.eq(value), flags.eq(self.flags_out)]
        accumulate_stage(m, self, self.accumulator_width, product, flags,
                         capture_pulses=False)
        return m


class SignMagnitudeMac(wiring.Component):
    """The fxp8 PE's arithmetic without its block shifter: lanes of a sign and an
    ``width``-bit magnitude (``|-2**(width-1)|`` fits), the magnitudes multiplied
    unsigned and the product negated when the signs differ, then :class:`PlainMac`'s
    accumulator and result. Separates what sign-magnitude costs from what the unused
    block position costs in the generated PE."""

    def __init__(self, accumulator_width: int, width: int = 8):
        self.width, self.accumulator_width = width, accumulator_width
        lane = data.StructLayout({"sign": 1, "magnitude": width})
        super().__init__({
            "a_in": In(lane), "b_in": In(lane), "flags_in": In(flags_layout()),
            "a_out": Out(lane), "b_out": Out(lane), "flags_out": Out(flags_layout()),
            "shift": In(1),
            "result_below": In(signed(accumulator_width)),
            "result": Out(signed(accumulator_width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                     self.flags_out.eq(self.flags_in)]
        magnitude = Signal(unsigned(2 * self.width))
        m.d.comb += magnitude.eq(self.a_out.magnitude * self.b_out.magnitude)
        term = Signal(signed(2 * self.width + 1))
        m.d.sync += term.eq(Mux(self.a_out.sign ^ self.b_out.sign, -magnitude, magnitude))
        flags = Signal.like(self.flags_out, name="flags_stage1")
        m.d.sync += flags.eq(self.flags_out)
        accumulate_stage(m, self, self.accumulator_width, term, flags,
                         capture_pulses=False)
        return m
