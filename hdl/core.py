"""The programmable accelerator: instruction decoder, accelerator, addend stage."""

from amaranth.hdl import Module
from amaranth.lib import wiring

from qforge.sim.model.spec import Config
from qforge.hdl.addend import AddendStage
from qforge.hdl.decoder import InstructionDecoder
from qforge.hdl.signatures import CoreSignature
from qforge.hdl.top import Accelerator

__all__ = ["Core"]


class Core(wiring.Component):
    """The accelerator programmed with instruction words (docs/ISA.md).

    Ports (:class:`~qforge.hdl.signatures.CoreSignature`; ``amaranth.lib.stream`` rules
    on every stream):

    * ``instruction`` (in): 64-bit instruction words (:mod:`qforge.hdl.isa`).
    * ``a_in`` / ``b_in`` (in): operand beats of each valid GEMM, in instruction order, as
      for :class:`~qforge.hdl.top.Accelerator` (the data mover's side of ``LOAD``).
    * ``addend`` (in): for each valid GEMM with ``add = 1``, one beat per result beat, in
      the result order (:class:`~qforge.hdl.addend.AddendStage`).
    * ``result`` (out): the result beats of each valid GEMM, in instruction order and the
      accelerator's tile order, ``last`` on a GEMM's final beat.
    * ``idle`` (out): no instruction is being decoded and no GEMM is in flight.
    * ``error`` (out, sticky until reset): an invalid instruction was received (the
      decoder), or, which the decoder's checks make impossible, an invalid command
      reached the loader.

    Data path: :class:`~qforge.hdl.decoder.InstructionDecoder` → ``cmd`` of the
    :class:`~qforge.hdl.top.Accelerator` (whose ``result`` goes through the
    :class:`~qforge.hdl.addend.AddendStage`), the decoder's ``epilogue`` settings to
    the addend stage. Latency over the accelerator: the decoder takes 2 cycles from an
    instruction word to the command (:data:`qforge.sim.model.cycles.DECODE_CYCLES`), the
    addend stage adds 1 cycle to every result beat (:data:`qforge.sim.model.cycles.ADDEND_LATENCY`).
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__(CoreSignature(config))

    @property
    def config(self) -> Config:
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = decoder = InstructionDecoder(self._config)
        m.submodules.accelerator = accelerator = Accelerator(self._config)
        m.submodules.addend_stage = addend_stage = AddendStage(self._config)

        wiring.connect(m, wiring.flipped(self.instruction), decoder.instruction)
        wiring.connect(m, decoder.cmd, accelerator.cmd)
        wiring.connect(m, decoder.epilogue, addend_stage.epilogue)
        wiring.connect(m, wiring.flipped(self.a_in), accelerator.a_in)
        wiring.connect(m, wiring.flipped(self.b_in), accelerator.b_in)
        wiring.connect(m, wiring.flipped(self.addend), addend_stage.addend)
        wiring.connect(m, accelerator.result, addend_stage.input)
        wiring.connect(m, addend_stage.output, wiring.flipped(self.result))

        behind_idle = accelerator.idle & addend_stage.idle
        m.d.comb += [decoder.accelerator_idle.eq(behind_idle & ~decoder.cmd.valid),
                     self.idle.eq(decoder.idle & behind_idle),
                     self.error.eq(decoder.error | accelerator.error)]
        return m
