"""Instruction decoder: the instruction stream in, GEMM commands out (docs/ISA.md)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.isa import instruction_layout, operand_layout
from qforge.sim.model.isa import Opcode, Operand
from qforge.hdl.layouts import command_layout
from qforge.hdl.rounding import rounding_is_defined
from qforge.hdl.signatures import command_stream, epilogue_stream, instruction_stream

__all__ = ["InstructionDecoder"]


def _ceil_divide(value, divisor: int):
    """``ceil(value / divisor)`` for ``value >= 1`` (a shift for powers of two)."""
    if divisor & (divisor - 1) == 0:
        return ((value - 1) >> (divisor.bit_length() - 1)) + 1
    return (value - 1) // divisor + 1


class InstructionDecoder(wiring.Component):
    """Decode 64-bit instruction words (:mod:`qforge.hdl.isa`) into accelerator commands.

    Ports:

    * ``instruction`` (in, :func:`~qforge.hdl.signatures.instruction_stream`).
    * ``cmd`` (out, :func:`~qforge.hdl.signatures.command_stream`, the ``cmd`` of an
      :class:`~qforge.hdl.signatures.AcceleratorSignature`): one command per
      valid ``GEMM``, with the precision, output and random-key registers of that moment.
    * ``epilogue`` (out stream of :func:`~qforge.hdl.layouts.epilogue_layout`): the same
      GEMM's ``add`` and ``saturate_bits``, for the addend stage, in the same order.
    * ``accelerator_idle`` (in): everything behind the decoder is idle (for ``FENCE``).
    * ``idle`` (out): no instruction is held and no command or epilogue is waiting.
    * ``error`` (out, sticky until reset): an invalid instruction was received.

    Validity is :func:`qforge.sim.model.machine.instruction_error`, rule for rule (each check
    below names the rule it implements); an invalid word sets ``error`` and is dropped.

    Timing: a word is taken into the one-entry ``held`` register when it is empty
    (``instruction.ready = ~held_valid``) and decoded the next cycle from that register,
    so no check sits on the path from the instruction stream. Register-setting
    instructions, ``NOP``, ``LOAD``, ``STORE`` and invalid words finish in that cycle
    (one instruction every two cycles). A ``GEMM`` raises ``cmd.valid`` and
    ``epilogue.valid`` from registers the cycle after the decode and holds each until it
    is taken; the next word is taken once both are. ``FENCE`` finishes in the first decode
    cycle with ``accelerator_idle`` high.
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "instruction": In(instruction_stream()),
            "cmd": Out(command_stream(config)),
            "epilogue": Out(epilogue_stream(config)),
            "accelerator_idle": In(1),
            "idle": Out(1),
            "error": Out(1),
        })

    @property
    def config(self) -> Config:
        return self._config

    def elaborate(self, platform):
        """The held word, the registers of docs/ISA.md and one decode per opcode, in one
        method (about 90 lines) so that each opcode's effect reads next to the others;
        the validity rules are :meth:`_checks`."""
        config = self._config
        m = Module()

        held = Signal(instruction_layout())
        held_valid = Signal()
        issuing = Signal()            # a GEMM's command/epilogue are being offered
        m.d.comb += self.instruction.ready.eq(~held_valid)
        with m.If(self.instruction.valid & self.instruction.ready):
            m.d.sync += [held.eq(self.instruction.payload), held_valid.eq(1)]

        views = {opcode: operand_layout(opcode)(held.operands[:operand_layout(opcode).size])
                 for opcode in Opcode}
        valid = self._checks(m, held, views)

        # ---- registers (reset values: docs/ISA.md, "The machine") --------------------
        command = command_layout(config)
        precision_shape = command.members["a"]
        exact = {"blocks_minus_one": config.blocks - 1, "kept_minus_one": config.blocks - 1,
                 "dynamic": 0, "vrq": 0}
        paired_fields = ("unsigned", "paired", "high", "low", "round") if config.paired else ()
        precision_a = Signal(precision_shape, init=exact)
        precision_b = Signal(precision_shape, init=exact)
        output = Signal(command.members["output"])

        decoding = Signal()
        m.d.comb += decoding.eq(held_valid & ~issuing)
        opcode = held.opcode
        with m.If(decoding):
            with m.If(~valid):
                m.d.sync += [self.error.eq(1), held_valid.eq(0)]
            with m.Elif(opcode == Opcode.PRECISION):
                view = views[Opcode.PRECISION]
                value = {"blocks_minus_one": view.blocks - 1, "kept_minus_one": view.kept - 1,
                         "dynamic": view.dynamic, "vrq": view.vrq}
                value |= {name: getattr(view, name) for name in paired_fields}
                for register, operand in ((precision_a, 0), (precision_b, 1)):
                    with m.If(view.operand == operand):
                        m.d.sync += [getattr(register, name).eq(v)
                                     for name, v in value.items()]
                m.d.sync += held_valid.eq(0)
            with m.Elif(opcode == Opcode.OUTPUT):
                view = views[Opcode.OUTPUT]
                m.d.sync += [getattr(output, name).eq(getattr(view, name))
                             for name in ("quantize", "shift", "rounding", "relu", "vrq",
                                          "exponent", "wide")]
                m.d.sync += held_valid.eq(0)
            with m.Elif(opcode == Opcode.SEED):
                view = views[Opcode.SEED]
                m.d.sync += [output.seed.eq(view.seed), output.tensor.eq(view.tensor),
                             held_valid.eq(0)]
            with m.Elif(opcode == Opcode.GEMM):
                view = views[Opcode.GEMM]
                fields = {
                    "m_tiles_minus_one": _ceil_divide(view.m, config.rows) - 1,
                    "n_tiles_minus_one": _ceil_divide(view.n, config.cols) - 1,
                    "depth_minus_one": view.k - 1,
                }
                m.d.sync += [getattr(self.cmd.payload, name).eq(value)
                             for name, value in fields.items()]
                m.d.sync += [self.cmd.payload.a.eq(precision_a),
                             self.cmd.payload.b.eq(precision_b),
                             self.cmd.payload.output.eq(output)]
                if config.zero_skipping:
                    m.d.sync += self.cmd.payload.skip_zeros.eq(view.skip_zeros)
                m.d.sync += [self.epilogue.payload.add.eq(view.add),
                             self.epilogue.payload.saturate_bits.eq(view.saturate_bits),
                             self.cmd.valid.eq(1), self.epilogue.valid.eq(1)]
            with m.Elif(opcode == Opcode.FENCE):
                with m.If(self.accelerator_idle):
                    m.d.sync += held_valid.eq(0)
            with m.Else():                          # NOP, LOAD, STORE: memory side only
                m.d.sync += held_valid.eq(0)

        # A GEMM is issued from registers; its word is released once both are taken.
        cmd_left = Signal()
        epilogue_left = Signal()
        m.d.comb += [issuing.eq(self.cmd.valid | self.epilogue.valid),
                     cmd_left.eq(self.cmd.valid & ~self.cmd.ready),
                     epilogue_left.eq(self.epilogue.valid & ~self.epilogue.ready)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += self.cmd.valid.eq(0)
        with m.If(self.epilogue.valid & self.epilogue.ready):
            m.d.sync += self.epilogue.valid.eq(0)
        with m.If(issuing & ~cmd_left & ~epilogue_left):
            m.d.sync += held_valid.eq(0)

        m.d.comb += self.idle.eq(~held_valid & ~self.cmd.valid & ~self.epilogue.valid)
        return m

    def _paired_check(self, precision):
        """``PRECISION``'s ``unsigned`` and paired fields
        (:func:`qforge.sim.model.machine._precision_error`): without
        ``arithmetic.paired`` all 0; with it, ``unsigned`` not with ``vrq``, and
        ``paired = 1`` only for operand A, exact integer with all ``n`` blocks and
        ``1 <= low <= high``, ``high + low <= n`` (``high``, ``low``, ``round`` 0 when
        not paired)."""
        config = self._config
        n = config.blocks
        if not config.paired:
            return ~precision.unsigned & ~precision.paired & (precision.high == 0) \
                & (precision.low == 0) & ~precision.round
        paired_ok = ((precision.operand == Operand.A) & ~precision.vrq & ~precision.dynamic
                     & (precision.blocks == n) & (precision.kept == n)
                     & (precision.low >= 1) & (precision.low <= precision.high)
                     & (precision.high + precision.low <= n))
        plain_ok = (precision.high == 0) & (precision.low == 0) & ~precision.round
        return ~(precision.unsigned & precision.vrq) & Mux(precision.paired, paired_ok,
                                                            plain_ok)

    def _checks(self, m, held, views):
        """Whether ``held`` is a valid instruction: :func:`qforge.sim.model.machine.
        instruction_error`'s rules, per opcode."""
        config = self._config
        valid = Signal()
        opcode = held.opcode
        accumulator_limit = config.accumulator_width - 1

        def reserved_clear(op):
            size = operand_layout(op).size
            return held.operands[size:] == 0 if size < len(held.operands) else Const(1)

        def at_most(value, limit):
            # Only where the field can exceed the limit (an always-true comparison would
            # be dead logic and a lint warning).
            return value <= limit if (1 << len(value)) - 1 > limit else Const(1)

        precision = views[Opcode.PRECISION]
        if config.vrq is None:
            precision_ok = ~precision.vrq & (precision.blocks >= 1) \
                & at_most(precision.blocks, config.blocks)
        else:
            limit = Signal(range(max(config.blocks, config.vrq_code_blocks) + 1))
            m.d.comb += limit.eq(Mux(precision.vrq, config.vrq_code_blocks, config.blocks))
            precision_ok = (precision.blocks >= 1) & (precision.blocks <= limit)
        precision_ok = precision_ok & (precision.kept >= 1) & (precision.kept <= precision.blocks)
        precision_ok = precision_ok & self._paired_check(precision)

        out = views[Opcode.OUTPUT]
        output_ok = (rounding_is_defined(out.rounding)
                     & at_most(out.shift, accumulator_limit)
                     & at_most(out.exponent, accumulator_limit)
                     & (~out.wide | (out.quantize & ~out.vrq)))
        if config.vrq is None:
            output_ok = output_ok & ~out.vrq

        gemm = views[Opcode.GEMM]
        tile_limit = 1 << config.tiles_field_width
        words = _ceil_divide(gemm.k, config.block_multipliers)
        m_tiles = _ceil_divide(gemm.m, config.rows)
        n_tiles = _ceil_divide(gemm.n, config.cols)
        # Field ranges and buffer capacity: qforge.sim.model.capacity.gemm_capacity_error.
        gemm_checks = [gemm.m >= 1, gemm.n >= 1, gemm.k >= 1,
                       at_most(gemm.m, tile_limit * config.rows),
                       at_most(gemm.n, tile_limit * config.cols),
                       at_most(gemm.k, config.max_reduction_depth),
                       m_tiles * words <= config.buffer_depth]
        if config.zero_skipping:
            groups = _ceil_divide(n_tiles, config.rows)
            gemm_checks.append(groups * words <= config.pe_buffer_depth)
        else:
            gemm_checks.append(n_tiles * words <= config.buffer_depth)
            gemm_checks.append(~gemm.skip_zeros)
        gemm_checks.append(Mux(gemm.add,
                               (gemm.saturate_bits >= 2)
                               & at_most(gemm.saturate_bits, config.accumulator_width),
                               gemm.saturate_bits == 0))
        gemm_ok = Cat(*gemm_checks).all()

        load_ok = views[Opcode.LOAD].operand <= max(Operand)

        with m.Switch(opcode):
            for op in Opcode:
                with m.Case(op):
                    condition = reserved_clear(op)
                    if op == Opcode.PRECISION:
                        condition = condition & precision_ok
                    elif op == Opcode.OUTPUT:
                        condition = condition & output_ok
                    elif op == Opcode.GEMM:
                        condition = condition & gemm_ok
                    elif op == Opcode.LOAD:
                        condition = condition & load_ok
                    m.d.comb += valid.eq(condition)
            with m.Default():
                m.d.comb += valid.eq(0)
        return valid

