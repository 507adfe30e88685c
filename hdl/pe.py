"""The block-wise precision-reconfigurable processing element."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import flags_layout, lanes_layout

__all__ = ["ProcessingElement", "accumulate_stage", "tree_sum"]


class ProcessingElement(wiring.Component):
    """One PE of the output-stationary systolic array.

    Each cycle the PE multiplies P pairs of ``K``-bit blocks, lane by lane: lane ``l``
    contributes ``(-1)**(sa ^ sb) * (block_a * block_b) << ((pos_a + pos_b) * K)``, the
    block product of :func:`qforge.sim.model.numerics.gemm_block_products`. The P lane products
    (possibly from different multiply-accumulates: the scheduler packs the ``q = La * Lb``
    products of consecutive MACs densely into the lanes) are summed and added to the
    accumulator. Integer sums are exact and order-independent, and
    :attr:`Config.accumulator_width` cannot overflow, so the result equals the golden
    model for any packing.

    ``config.pe`` (:data:`qforge.sim.model.spec.PE_DESIGNS`) chooses where the sign is
    applied: ``"shifted"`` negates the shifted product (``2W + 1`` bits),
    ``"signed_product"`` the ``2K``-bit product before the shift (fewer gates per lane);
    ports, timing and every term are the same. ``"shared_shift"`` requires every lane of
    a cycle to carry lane 0's positions (its schedule guarantees it) and shifts the sum
    of the signed products once; ports and timing are the same. ``"fused"`` (``n = 2``)
    multiplies each lane pair with one multiplier (:meth:`_fused_sum`): with
    ``flags.wide`` the pair is one MAC's kept operands (lane ``2d`` their lower kept
    blocks, lane ``2d + 1`` the upper or zero), otherwise two one-block MACs; the terms
    summed are those of the same MACs, one cycle later (its
    operands and product are registered: the lane sum at ``t+3``, the accumulator at
    ``t+4``; :func:`qforge.sim.model.cycles.pe_latency`). With
    :attr:`~qforge.sim.model.spec.Config.plain_lanes` (``K = W``) the lanes are
    two's-complement operands and the PE a plain multiply-accumulate
    (:meth:`_plain_sum`), whatever ``config.pe``.

    Ports and timing (cycle ``t`` = the cycle ``a_in``/``b_in`` are presented):

    * ``a_in``/``b_in``: lanes (and, with A, the tile ``flags``). Registered into
      ``a_out``/``b_out`` at ``t+1`` for the right and lower neighbours.
    * the lane sum is registered at ``t+2`` and the accumulator updated at ``t+3``: on
      ``first`` it restarts from the sum, otherwise adds it; on ``last`` the final value
      is also copied into ``result``, and ``captured`` (with ``captured_gemm_last``)
      is high for that one cycle.
    * ``result`` is a shift register for draining: while ``shift`` is high it loads
      ``result_below`` (the PE underneath, or 0 at the bottom row). The scheduler never
      lets a capture coincide with a shift (see :class:`qforge.hdl.top.Accelerator`).
    """

    def __init__(self, config: Config):
        self._config = config
        lanes = lanes_layout(config)
        accumulator = signed(config.accumulator_width)
        super().__init__({
            "a_in": In(lanes), "flags_in": In(flags_layout(config)), "b_in": In(lanes),
            "a_out": Out(lanes), "flags_out": Out(flags_layout(config)), "b_out": Out(lanes),
            "shift": In(1),
            "result_below": In(accumulator),
            "result": Out(accumulator),
            "captured": Out(1),
            "captured_gemm_last": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()

        # Systolic forwarding registers: these are also this PE's operand registers.
        # Operands, products, sums and results are data: without reset (only the flags
        # and capture pulses, which say when data is meaningful, are reset), so the
        # accelerator's reset (the board's, or the host link's ABORT) reaches a few
        # registers per PE instead of all of them: that net spanned the whole array and
        # was the default preset's critical path on the ULX3S (18.5 ns of routing).
        self._forward = {"a": Signal.like(self.a_out, name="a_forward", reset_less=True),
                         "b": Signal.like(self.b_out, name="b_forward", reset_less=True)}
        m.d.sync += [self._forward["a"].eq(self.a_in), self._forward["b"].eq(self.b_in),
                     self.flags_out.eq(self.flags_in)]
        m.d.comb += [self.a_out.eq(self._forward["a"]), self.b_out.eq(self._forward["b"])]

        if config.plain_lanes:
            lane_sum = self._plain_sum(m)
        elif config.pe == "shared_shift":
            lane_sum = self._shared_shift_sum(m)
        elif config.pe == "fused":
            lane_sum = self._fused_sum(m)
        else:
            lane_sum = self._lane_sum(m)
        flags = Signal.like(self.flags_out, name="flags_stage1")
        m.d.sync += flags.eq(self.flags_out)
        if config.pe == "fused":            # the product register: one stage more
            product_flags = flags
            flags = Signal.like(self.flags_out, name="flags_stage2")
            m.d.sync += flags.eq(product_flags)

        accumulate_stage(m, self, config.accumulator_width, lane_sum, flags)
        return m

    def _plain_sum(self, m: Module):
        """Stage 1 with :attr:`~qforge.sim.model.spec.Config.plain_lanes` (``K = W``): the
        lanes are two's-complement operands, so a lane's term is their signed product,
        ``(-1)**(sa ^ sb) * |a| * |b|`` with no shift (position 0), whatever
        ``config.pe``: a plain multiply-accumulate."""
        config = self._config
        width = config.operand_width
        terms = []
        for lane in range(config.block_multipliers):
            product = Signal(signed(2 * width), name=f"product_{lane}")
            # The W x W unsigned product of the bit patterns with the two's-complement
            # correction of its upper half (Baugh-Wooley): a * b = ua * ub - 2**W *
            # (a_sign * ub + b_sign * ua) modulo 2**(2W). Written as a * b, Yosys's
            # generic flow multiplies the operands sign-extended to 2W bits (7% more
            # transistors in the CMOS estimate of qforge area --pe).
            a = self.a_out[lane].value.as_unsigned()
            b = self.b_out[lane].value.as_unsigned()
            correction = Mux(a[-1], b, 0) + Mux(b[-1], a, 0)
            m.d.comb += product.eq((a * b - (correction << width))[:2 * width].as_signed())
            terms.append(product)
        lane_sum = Signal(signed(config.lane_sum_width), reset_less=True)
        m.d.sync += lane_sum.eq(tree_sum(terms))
        return lane_sum

    def _lane_sum(self, m: Module):
        """Stage 1 of ``"shifted"`` and ``"signed_product"``: the P shifted, signed block
        products and their sum, registered."""
        config = self._config
        block_width = config.block_width
        terms = []
        for lane in range(config.block_multipliers):
            a, b = self.a_out[lane], self._b_operand(m, lane)
            product = Signal(unsigned(config.product_width), name=f"product_{lane}")
            m.d.comb += product.eq(a.block * b.block)
            # Shift by whole blocks: (pos_a + pos_b) * K, at most 2 * max_position * K
            # bits (max_position = B - 1, or more for VRQ operands: spec.py).
            amount = (a.position + b.position) * block_width
            term = Signal(signed(2 * config.magnitude_width + 1), name=f"term_{lane}")
            if config.pe == "signed_product":
                # Negate the 2K-bit product (a 2K+1-bit negation instead of a 2W+1-bit
                # one), then shift it as a signed value: the same term.
                signed_product = Signal(signed(config.product_width + 1),
                                        name=f"signed_product_{lane}")
                m.d.comb += [signed_product.eq(Mux(a.sign ^ b.sign, -product, product)),
                             term.eq(signed_product << amount)]
            else:
                shifted = Signal(unsigned(2 * config.magnitude_width),
                                 name=f"shifted_{lane}")
                m.d.comb += [shifted.eq(product << amount),
                             term.eq(Mux(a.sign ^ b.sign, -shifted, shifted))]
            terms.append(term)
        lane_sum = Signal(signed(config.lane_sum_width), reset_less=True)
        m.d.sync += lane_sum.eq(tree_sum(terms))
        return lane_sum

    def _b_operand(self, m: Module, lane: int):
        """Lane ``l``'s B operand: ``b_out[l]``, or with ``arithmetic.paired`` its
        ``partner`` (the pair's second B operand's block) when the A lane's ``second``
        says the A block is the pair's second MAC's (:class:`qforge.hdl.selector.
        BlockSelector`). This multiplexer and the partner's forwarding register are the
        paired mode's cost in a PE (docs/ARCHITECTURE.md, "Paired mode")."""
        b = self.b_out[lane]
        if not self._config.paired:
            return b
        chosen = Signal(b.partner.shape(), name=f"b_chosen_{lane}")
        # partner has the layout of the lane's own block, sign and position fields.
        m.d.comb += chosen.eq(Mux(self.a_out[lane].second, b.partner,
                                  Cat(b.block, b.sign, b.position)))
        return chosen

    def _shared_shift_sum(self, m: Module):
        """Stage 1 of ``"shared_shift"``: every lane carries lane 0's block positions
        (the schedule of :func:`qforge.sim.model.cycles.issued_block_products` puts one
        block pair in all lanes), so the P signed ``2K``-bit products are summed
        unshifted and the narrow sum is shifted once by ``(pos_a + pos_b) * K``. The
        forwarded positions are lane 0's in every lane (one register per side after
        Yosys merges equal flip-flops)."""
        config = self._config
        for side_in, side_out in ((self.a_in, self._forward["a"]),
                                  (self.b_in, self._forward["b"])):
            for lane in range(1, config.block_multipliers):
                m.d.sync += side_out[lane].position.eq(side_in[0].position)
        terms = []
        for lane in range(config.block_multipliers):
            a, b = self.a_out[lane], self.b_out[lane]
            product = Signal(unsigned(config.product_width), name=f"product_{lane}")
            term = Signal(signed(config.product_width + 1), name=f"term_{lane}")
            m.d.comb += [product.eq(a.block * b.block),
                         term.eq(Mux(a.sign ^ b.sign, -product, product))]
            terms.append(term)
        amount = (self.a_out[0].position + self.b_out[0].position) * config.block_width
        lane_sum = Signal(signed(config.lane_sum_width), reset_less=True)
        m.d.sync += lane_sum.eq(tree_sum(terms) << amount)
        return lane_sum


    def _fused_sum(self, m: Module):
        """Stages 1 and 2 of ``"fused"``: one unsigned ``(3K + 1) x (3K + 1)``-bit
        multiplier per lane pair ``(2d, 2d + 1)``, a DSP block's product on an FPGA
        (:data:`qforge.sim.model.spec.FUSED_MAX_BLOCK_WIDTH`), with registered operands
        and a registered product (one cycle more than the other designs:
        :func:`qforge.sim.model.cycles.pe_latency`; the operand and product registers
        keep the long routes to and from the DSP columns apart from the packing and the
        adders).

        * wide (``flags.wide``): the operands are ``x = x0 + (x1 << K)`` per side (lane
          ``2d + 1``'s block sits one block above lane ``2d``'s, the same operand's: the
          scheduler's :func:`~qforge.hdl.scheduler.fused_table`), so the product is the
          sum of the MAC's four block products at their relative weights; its term is
          ``(-1)**(sa ^ sb) * product << ((pos_a + pos_b) * K)`` with lane ``2d``'s signs
          and positions.
        * narrow: the operands are ``x = x0 + (x1 << (2K + 1))``, so the product is
          ``a0 b0 + (a1 b0 + a0 b1) << (2K + 1) + a1 b1 << (4K + 2)``: ``a0 b0 < 2**(2K)``
          and the cross sum ``< 2**(2K + 1)`` cannot reach the next field, so bits
          ``0 .. 2K - 1`` are ``a0 b0`` and bits ``4K + 2 .. 6K + 1`` are ``a1 b1``, each
          then signed and shifted by its own lane's sign and positions.

        Both are the block products :func:`qforge.sim.model.numerics.gemm_block_products`
        sums for the same MACs, so the lane sum is the same. Timing: the operands are
        packed from ``a_in``/``b_in`` into registers beside the forwarding registers
        (cycle ``t + 1``), the product and each lane's sign and shift are registered at
        ``t + 2``, the lane sum at ``t + 3``."""
        config = self._config
        block_width = config.block_width
        operand_width = 3 * block_width + 1
        narrow_offset = 2 * block_width + 1          # the second field of a narrow operand
        term_shape = signed(2 * config.magnitude_width + 1)
        # Per lane, registered with the product: the sign of its term and its shift.
        lane_signs, lane_shifts = [], []
        for lane in range(config.block_multipliers):
            a, b = self.a_out[lane], self.b_out[lane]
            sign = Signal(name=f"term_sign_{lane}", reset_less=True)
            shift = Signal(unsigned(len(a.position) + 1), name=f"term_shift_{lane}",
                           reset_less=True)
            m.d.sync += [sign.eq(a.sign ^ b.sign), shift.eq(a.position + b.position)]
            lane_signs.append(sign)
            lane_shifts.append(shift)
        wide = Signal(name="product_wide", reset_less=True)
        m.d.sync += wide.eq(self.flags_out.wide)
        pair_sums = []
        for pair in range(config.block_multipliers // 2):
            low, high = 2 * pair, 2 * pair + 1
            operands = []
            for side, lanes in (("a", self.a_in), ("b", self.b_in)):
                operand = Signal(unsigned(operand_width), name=f"{side}_operand_{pair}",
                                 reset_less=True)
                m.d.sync += operand.eq(lanes[low].block
                                       | Mux(self.flags_in.wide,
                                             lanes[high].block << block_width,
                                             lanes[high].block << narrow_offset))
                operands.append(operand)
            product = Signal(unsigned(2 * operand_width), name=f"product_{pair}",
                             reset_less=True)
            m.d.sync += product.eq(operands[0] * operands[1])

            def term(lane, magnitude, name):
                signed_magnitude = Signal(signed(len(magnitude) + 1), name=name)
                m.d.comb += signed_magnitude.eq(Mux(lane_signs[lane], -magnitude, magnitude))
                return signed_magnitude << (lane_shifts[lane] * block_width)

            # Lane 2d's term is the whole product (wide) or its first field (narrow): one
            # negation and shift for both; lane 2d + 1's is the second field or zero.
            low_term = term(low, Mux(wide, product[:4 * block_width],
                                     product[:2 * block_width]), f"low_{pair}")
            high_term = term(high, Mux(wide, 0, product[2 * narrow_offset:
                                                         2 * narrow_offset + 2 * block_width]),
                             f"high_{pair}")
            pair_sum = Signal(signed(term_shape.width + 1), name=f"pair_sum_{pair}")
            m.d.comb += pair_sum.eq(low_term + high_term)
            pair_sums.append(pair_sum)
        lane_sum = Signal(signed(config.lane_sum_width), reset_less=True)
        m.d.sync += lane_sum.eq(tree_sum(pair_sums))
        return lane_sum


def accumulate_stage(m: Module, pe, accumulator_width: int, lane_sum, flags, *,
                     capture_pulses: bool = True) -> None:
    """Stage 2 of a PE ``pe`` (its ports: ``result``, ``result_below``, ``shift``, and
    with ``capture_pulses`` the corner's ``captured``, ``captured_gemm_last``):
    accumulate the registered ``lane_sum`` into ``accumulator_width`` bits (restart on
    ``flags.first``); on the tile's last cycle also capture the final value into
    ``result``, else shift ``result_below`` in while ``shift``. Shared with the area
    prototypes and plain MACs of tests/fpga (the same stage behind other lanes)."""
    # Data registers without reset (ProcessingElement.elaborate says why): a tile's
    # first cycle restarts the accumulator, and the drain reads results only after the
    # (reset) capture pulses.
    accumulator = Signal(signed(accumulator_width), reset_less=True)
    total = Signal(signed(accumulator_width))
    result = Signal.like(pe.result, name="result_register", reset_less=True)
    m.d.comb += [total.eq(Mux(flags.first, lane_sum, accumulator + lane_sum)),
                 pe.result.eq(result)]
    m.d.sync += accumulator.eq(total)
    if capture_pulses:
        m.d.sync += [pe.captured.eq(flags.last),
                     pe.captured_gemm_last.eq(flags.last & flags.gemm_last)]
    with m.If(flags.last):
        m.d.sync += result.eq(total)
    with m.Elif(pe.shift):
        m.d.sync += result.eq(pe.result_below)


def tree_sum(terms):
    """Balanced adder tree (log2(P) levels of adders instead of a P-long chain)."""
    while len(terms) > 1:
        paired = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]
