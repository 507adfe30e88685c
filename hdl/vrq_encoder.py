"""VRQ encoder: one signed integer to a value-range-quantized operand word."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qforge.hdl.rounding import round_shift_addend, shift_rounded
from qforge.sim.model.rounding import Rounding
from qforge.sim.model.spec import Config

__all__ = ["VrqEncoder"]


class VrqEncoder(wiring.Component):
    """Encode ``value`` into a VRQ carrier word, exactly as
    :func:`qforge.sim.model.quantize.vrq_encode` does for integer tensors, packed as
    :func:`qforge.sim.model.numerics.vrq_pack`.

    * ``exponent``: ``E``, the binary exponent of the tensor's largest magnitude (a max
      over the whole tensor, supplied per GEMM);
    * ``rounding``: a :class:`qforge.sim.model.rounding.Rounding` code (the loader and
      the decoder reject the 2-bit code that is none);
    * ``random``: the element's 32 random bits
      (:func:`qforge.sim.model.random_bits.random_bits`), used by stochastic rounding:
      the top ``unit`` bits are added before truncating.

    For ``value != 0`` with ``e = floor(log2 |value|)``: range ``g = min(max((E - e) // S,
    0), G - 1)``, unit ``u = E - gS - N + 1``, ``code = round(|value| / 2**u)`` (a left
    shift when ``u <= 0``); a code of ``2**N`` moves to range ``g - 1`` as ``2**(N - S)``,
    or saturates to ``2**N - 1`` in range 0. Zero (or a code rounded to zero) encodes as 0.

    Purely combinational: the enclosing pipeline registers it.
    """

    def __init__(self, config: Config, value_width: int):
        if config.vrq is None:
            raise ValueError(f"config {config.name!r} has no [vrq] section")
        self._config = config
        self._value_width = value_width
        super().__init__({
            "value": In(signed(value_width)),
            "exponent": In(unsigned(max(1, (value_width - 1).bit_length()))),
            "rounding": In(Rounding),
            "random": In(32),
            "word": Out(signed(config.operand_width)),
        })

    def elaborate(self, platform):
        config = self._config
        fmt = config.vrq
        n, stride, ranges = fmt.code_width, fmt.range_stride, fmt.ranges
        width = self._value_width
        m = Module()

        negative = self.value < 0
        magnitude = Signal(unsigned(width))
        m.d.comb += magnitude.eq(Mux(negative, -self.value, self.value))

        # e = floor(log2 |value|): the highest set bit (0 for 0; zero is handled last).
        leading = Signal(range(width))
        for bit in range(width):
            with m.If(magnitude[bit]):
                m.d.comb += leading.eq(bit)

        # g = clamp((E - e) // S, 0, G - 1), from a table over the small difference.
        distance = Signal(signed(len(self.exponent) + 2))
        m.d.comb += distance.eq(self.exponent - leading)
        group = Signal(range(ranges))
        with m.Switch(distance):
            for difference in range(0, width + 1):
                with m.Case(difference):
                    m.d.comb += group.eq(min(difference // stride, ranges - 1))
            with m.Default():   # negative distance: above range 0
                m.d.comb += group.eq(0)

        # Unit u = E - gS - N + 1; right shift by u (rounding) or left shift by -u.
        unit = Signal(signed(len(self.exponent) + (ranges * stride).bit_length() + 2))
        m.d.comb += unit.eq(self.exponent - group * stride - (n - 1))
        right = Signal(range(width + 1))
        left = Signal(range(n + 1))
        m.d.comb += [right.eq(Mux(unit > 0, unit, 0)), left.eq(Mux(unit < 0, -unit, 0))]

        # code = round_shift(|value|, right, rounding) (qforge.sim.model.rounding), with
        # the output stage's helper.
        addend = round_shift_addend(m, magnitude, right, self.rounding, self.random,
                                    max_shift=width)
        rounded = shift_rounded(m, magnitude, addend, right)
        code_wide = Signal(unsigned(width + n + 1))
        m.d.comb += code_wide.eq(Mux(unit >= 0, rounded, magnitude << left))

        # Overflow: 2**N moves up a range (same value) or saturates in range 0.
        code = Signal(unsigned(n))
        final_group = Signal(range(ranges))
        m.d.comb += [code.eq(code_wide), final_group.eq(group)]
        with m.If(code_wide >= (1 << n)):
            with m.If(group > 0):
                m.d.comb += [code.eq(1 << (n - stride)), final_group.eq(group - 1)]
            with m.Else():
                m.d.comb += code.eq((1 << n) - 1)

        zero = code_wide == 0
        word = Cat(code, final_group[:config.vrq_range_bits] if ranges > 1 else Const(0, 1),
                   negative)
        m.d.comb += self.word.eq(Mux(zero, 0, word))
        return m
