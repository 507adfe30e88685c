"""Prototypes of cheaper block-wise PEs, measured with ``qforge area --pe``'s functions
(docs/ARCHITECTURE.md, "A cheaper PE"; tests/fpga/test_pe_prototypes.py checks their
arithmetic and measures them).

Every prototype keeps the generated PE's pipeline and second stage (operands registered
and forwarded, the lane sum registered, the accumulator restarting on ``first``, the
result register capturing on ``last`` and shifting ``result_below`` in) and changes only
how a cycle's lanes become the lane sum:

* :data:`LANE_PROTOTYPES`: the generated PE's ports and lanes (each lane a K-bit block,
  its sign and its block position), one function per way of forming a lane's term
  ``(-1)**(sa ^ sb) * (block_a * block_b) << ((pos_a + pos_b) * K)``;
* :class:`TwosComplementLanesPe`: Bit Fusion's signed blocks: each lane's block and sign
  bit read as one (K+1)-bit two's-complement block (the edge selector would negate it),
  multiplied by a Baugh-Wooley array of partial products; no negation in the PE;
* :class:`SharedShiftPe`: the lanes of a cycle are P different operands with one block
  position per side (a schedule that walks a word's P operands through the same block
  pair ``(i, j)``): the P signed products are summed unshifted and the narrow sum shifted
  once. The prototype of ``arithmetic.pe = "shared_shift"`` (hdl/pe.py, with its
  schedule in hdl/scheduler.py and hdl/selector.py), measured here with its own lane
  layout (one position per side).

Two bounds that are not PEs (they compute less) show what any design built from P K x K
lanes can reach: :func:`exact_only_term` (the four lanes of one exact K = 4 MAC with
constant shifts and no sign; B = 2 only) and :func:`flat_signed_term` (signed products,
no shift).

``python -m tests.fpga.pe_prototypes`` prints the table of every prototype on the
configurations of :data:`CONFIGS`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.hdl.layouts import flags_layout
from qforge.hdl.pe import ProcessingElement, accumulate_stage, tree_sum
from qforge.sim.model.spec import Config, from_dict, load_preset, load_spec

DATA = Path(__file__).parent / "data"


def _term_width(config: Config) -> int:
    return 2 * config.magnitude_width + 1


# ---- lane prototypes: ProcessingElement's ports, another lane term ---------------------
# Each returns (term, carry): the lane's signed term and a 1-bit value the lane sum must
# add (or None).

def shifted_term(m, config, a, b, lane):
    """The generated PE (``pe = "shifted"``): shift the product, negate the 2W-bit value."""
    shifted = (a.block * b.block) << ((a.position + b.position) * config.block_width)
    term = Signal(signed(_term_width(config)), name=f"term_{lane}")
    m.d.comb += term.eq(Mux(a.sign ^ b.sign, -shifted, shifted))
    return term, None


def signed_product_term(m, config, a, b, lane):
    """``pe = "signed_product"``: negate the 2K-bit product, shift the signed value."""
    product = a.block * b.block
    signed_product = Signal(signed(config.product_width + 1), name=f"signed_{lane}")
    m.d.comb += signed_product.eq(Mux(a.sign ^ b.sign, -product, product))
    term = Signal(signed(_term_width(config)), name=f"term_{lane}")
    m.d.comb += term.eq(signed_product << ((a.position + b.position) * config.block_width))
    return term, None


def xor_fill_term(m, config, a, b, lane):
    """Sign by inversion: ``~x = -x - 1``, so each lane's product is XORed with its sign
    (filled in below and above the shifted product: the whole 2W-bit value inverted)
    and the lane sum adds the signs."""
    k, width = config.block_width, config.product_width
    largest_shift = 2 * config.max_position * k
    product = Signal(unsigned(width), name=f"product_{lane}")
    negative = Signal(name=f"negative_{lane}")
    m.d.comb += [product.eq(a.block * b.block), negative.eq(a.sign ^ b.sign)]
    inverted = Cat(product ^ negative.replicate(width), negative).as_signed()
    filled = Cat(negative.replicate(largest_shift), inverted).as_signed()
    down = Signal(range(largest_shift + 1), name=f"down_{lane}")
    m.d.comb += down.eq((2 * config.max_position - a.position - b.position) * k)
    term = Signal(signed(_term_width(config)), name=f"term_{lane}")
    m.d.comb += term.eq(filled >> down)
    return term, negative


def stage_shift_term(m, config, a, b, lane):
    """Negate the 2K-bit product, then shift it by ``pos_a * K`` and ``pos_b * K`` in
    separate multiplexer stages (one per position bit) instead of one shifter by the
    sum."""
    product = a.block * b.block
    value = Signal(signed(config.product_width + 1), name=f"signed_{lane}")
    m.d.comb += value.eq(Mux(a.sign ^ b.sign, -product, product))
    for side, position in (("a", a.position), ("b", b.position)):
        for bit in range(len(position)):
            amount = config.block_width << bit
            shifted = Signal(signed(len(value) + amount), name=f"shift_{side}{bit}_{lane}")
            m.d.comb += shifted.eq(Mux(position[bit], value << amount, value))
            value = shifted
    term = Signal(signed(_term_width(config)), name=f"term_{lane}")
    m.d.comb += term.eq(value)
    return term, None


def exact_only_term(m, config, a, b, lane):
    """Bound, not a PE (B = 2 only): the lanes are exact MACs of four lanes each, lane
    ``l`` at block pair ``((l % 4) // 2, l % 2)`` with its constant shift, no sign."""
    pair = lane % 4
    term = Signal(signed(_term_width(config)), name=f"term_{lane}")
    m.d.comb += term.eq((a.block * b.block) << ((pair // 2 + pair % 2) * config.block_width))
    return term, None


def flat_signed_term(m, config, a, b, lane):
    """Bound, not a PE: the signed product of every lane, no shift (a q = 1-only PE
    without approximation)."""
    product = a.block * b.block
    term = Signal(signed(config.product_width + 1), name=f"term_{lane}")
    m.d.comb += term.eq(Mux(a.sign ^ b.sign, -product, product))
    return term, None


#: The lane prototypes by name; ``bound`` marks the two that compute less than a PE.
LANE_PROTOTYPES = {
    "shifted": (shifted_term, False),
    "signed_product": (signed_product_term, False),
    "xor_fill": (xor_fill_term, False),
    "stage_shift": (stage_shift_term, False),
    "exact_only": (exact_only_term, True),
    "flat_signed": (flat_signed_term, True),
}


class LanePrototypePe(ProcessingElement):
    """:class:`~qforge.hdl.pe.ProcessingElement`'s ports and pipeline with another lane
    term (a function of :data:`LANE_PROTOTYPES`)."""

    def __init__(self, config: Config, term):
        self._term = term
        super().__init__(config)

    def elaborate(self, platform):
        config = self._config
        m = Module()
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                     self.flags_out.eq(self.flags_in)]
        terms, carries = [], []
        for lane in range(config.block_multipliers):
            term, carry = self._term(m, config, self.a_out[lane], self.b_out[lane], lane)
            terms.append(term)
            if carry is not None:
                carries.append(carry.as_unsigned())
        total = tree_sum(terms)
        if carries:
            total = total + tree_sum(carries)
        lane_sum = Signal(signed(config.lane_sum_width))
        flags = Signal.like(self.flags_out, name="flags_stage1")
        m.d.sync += [lane_sum.eq(total), flags.eq(self.flags_out)]
        accumulate_stage(m, self, config.accumulator_width, lane_sum, flags)
        return m


class TwosComplementLanesPe(ProcessingElement):
    """Lanes of (K+1)-bit two's-complement blocks (``Cat(block, sign)``), multiplied by a
    Baugh-Wooley array: partial products ``a_i b_j``, those with exactly one operand's
    top bit inverted, plus ``2**n + 2**(2n - 1)`` (n = K + 1), modulo ``2**(2n)``."""

    def elaborate(self, platform):
        config = self._config
        n = config.block_width + 1
        m = Module()
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                     self.flags_out.eq(self.flags_in)]
        terms = []
        for lane in range(config.block_multipliers):
            a, b = self.a_out[lane], self.b_out[lane]
            x, y = Cat(a.block, a.sign), Cat(b.block, b.sign)
            rows = []
            for i in range(n):
                bits = [(x[i] & y[j]) ^ ((i == n - 1) != (j == n - 1)) for j in range(n)]
                rows.append(Cat(*bits).as_unsigned() << i)
            product = Signal(signed(2 * n), name=f"product_{lane}")
            m.d.comb += product.eq((tree_sum(rows) + (1 << n) + (1 << (2 * n - 1)))
                                   [:2 * n].as_signed())
            term = Signal(signed(_term_width(config)), name=f"term_{lane}")
            m.d.comb += term.eq(product << ((a.position + b.position) * config.block_width))
            terms.append(term)
        lane_sum = Signal(signed(config.lane_sum_width))
        flags = Signal.like(self.flags_out, name="flags_stage1")
        m.d.sync += [lane_sum.eq(tree_sum(terms)), flags.eq(self.flags_out)]
        accumulate_stage(m, self, config.accumulator_width, lane_sum, flags)
        return m


def shared_side_layout(config: Config) -> data.StructLayout:
    """One side of :class:`SharedShiftPe`: P lanes of a block and a sign, and the one
    block position they share."""
    lane = data.StructLayout({"block": unsigned(config.block_width), "sign": 1})
    return data.StructLayout({"lanes": data.ArrayLayout(lane, config.block_multipliers),
                              "position": unsigned(config.position_width)})


class SharedShiftPe(wiring.Component):
    """P signed block products summed unshifted (a ``2K + 1 + log2 P``-bit tree), the
    sum shifted once by ``(pos_a + pos_b) * K``: the lane sum
    ``sum((-1)**(sa_l ^ sb_l) * ba_l * bb_l) << ((pos_a + pos_b) * K)``. Ports, timing
    and second stage as :class:`~qforge.hdl.pe.ProcessingElement`'s."""

    def __init__(self, config: Config):
        self._config = config
        side = shared_side_layout(config)
        accumulator = signed(config.accumulator_width)
        super().__init__({
            "a_in": In(side), "flags_in": In(flags_layout()), "b_in": In(side),
            "a_out": Out(side), "flags_out": Out(flags_layout()), "b_out": Out(side),
            "shift": In(1), "result_below": In(accumulator), "result": Out(accumulator),
            "captured": Out(1), "captured_gemm_last": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                     self.flags_out.eq(self.flags_in)]
        terms = []
        for lane in range(config.block_multipliers):
            a, b = self.a_out.lanes[lane], self.b_out.lanes[lane]
            product = a.block * b.block
            term = Signal(signed(config.product_width + 1), name=f"term_{lane}")
            m.d.comb += term.eq(Mux(a.sign ^ b.sign, -product, product))
            terms.append(term)
        amount = (self.a_out.position + self.b_out.position) * config.block_width
        lane_sum = Signal(signed(config.lane_sum_width))
        flags = Signal.like(self.flags_out, name="flags_stage1")
        m.d.sync += [lane_sum.eq(tree_sum(terms) << amount), flags.eq(self.flags_out)]
        accumulate_stage(m, self, config.accumulator_width, lane_sum, flags)
        return m


def with_lanes(config: Config, lanes: int) -> Config:
    """``config`` with P = ``lanes`` (named ``<name>p<lanes>``)."""
    spec = config.to_dict()
    spec["name"] = f"{config.name}p{lanes}"
    spec["arithmetic"] = spec["arithmetic"] | {"block_multipliers": lanes}
    return from_dict(spec, source="tests")


def prototypes(config: Config) -> dict:
    """Every prototype of ``config`` by name: ``name -> (component, bound)``."""
    out = {name: (LanePrototypePe(config, term), bound)
           for name, (term, bound) in LANE_PROTOTYPES.items()
           if name != "exact_only" or config.blocks == 2}
    out["twos_complement_lanes"] = (TwosComplementLanesPe(config), False)
    out["shared_shift"] = (SharedShiftPe(config), False)
    return out


def configs() -> list[Config]:
    """The configurations of the table: the generated PEs of ``default`` (K = 2, P = 4)
    and of K = 4 with P = 4 (tests/fpga/data/k4p4.toml), 8 and 16."""
    k4p4 = load_spec(DATA / "k4p4.toml")
    return [load_preset("default"), k4p4, with_lanes(k4p4, 8), with_lanes(k4p4, 16)]


def measure(root: Path | None = None, log=print) -> list[dict]:
    """The CMOS estimate (:func:`qforge.fpga.pe_area.cmos_estimate`) of every prototype
    on every configuration of :func:`configs` and of the fxp8 PE, with each mode's
    MACs per cycle per transistor against fxp8's for exact (8x8) and 4-bit (4x4, q = 1)
    operands. ``shared_shift`` is rated with the same MACs per cycle (``P / q`` when P
    divides the depth): what its schedule keeps for exact, reduced and static modes."""
    from qforge.fpga.pe_area import cmos_estimate, interior_ports

    def transistors(component, top):
        ports = (interior_ports(component) if isinstance(component, ProcessingElement)
                 else [Value.cast(getattr(component, name))
                       for name in component.signature.members
                       if name not in ("captured", "captured_gemm_last")])
        estimate = cmos_estimate(component, top, ports=ports, root=root)
        return estimate.transistors, estimate.flip_flops

    fxp8 = load_preset("fxp8")
    base, _ = transistors(ProcessingElement(fxp8), f"pe_{fxp8.name}")
    rows = []
    for config in configs():
        lanes = config.block_multipliers
        exact = lanes / (config.blocks ** 2)         # exact MACs per cycle (8x8 operands)
        four_bit = lanes / ((4 // config.block_width) ** 2)
        for name, (component, bound) in prototypes(config).items():
            count, flip_flops = transistors(component, f"proto_{config.name}_{name}")
            row = {"config": config.name, "prototype": name, "bound": bound,
                   "transistors": count, "flip_flops": flip_flops,
                   "exact": exact * base / count, "four_bit": four_bit * base / count}
            rows.append(row)
            log(f"{row['config']:10} {name:22} {count:7d} {flip_flops:4d} "
                f"{row['exact']:5.2f} {row['four_bit']:5.2f}{'  (bound)' if bound else ''}")
    return rows


if __name__ == "__main__":
    print(f"{'config':10} {'prototype':22} {'transistors':>7} {'FF':>4} exact 4-bit")
    measure(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
