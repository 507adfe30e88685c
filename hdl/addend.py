"""Addend stage: adds an addend stream to the results of GEMMs with ``add = 1``."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from qforge.sim.model.saturation import signed_range
from qforge.sim.model.spec import Config
from qforge.hdl.layouts import epilogue_layout
from qforge.hdl.signatures import addend_stream, epilogue_stream, result_stream

__all__ = ["AddendStage", "EPILOGUE_FIFO_DEPTH"]

#: GEMMs whose epilogue settings can wait between the decoder and their results. The
#: decoder stalls on a full FIFO, which only delays it (the results that empty the FIFO
#: do not depend on the decoder), so any depth is safe; 4 covers the GEMMs in flight
#: (loader slot, loading, computing, draining) without stalling.
EPILOGUE_FIFO_DEPTH = 4


class AddendStage(wiring.Component):
    """Result beats in, result beats out; for GEMMs with ``add = 1`` each element is
    ``clamp(addend + result, saturate_bits)`` (:func:`qforge.sim.model.machine.add_saturate`).

    Ports:

    * ``epilogue`` (in stream of :func:`~qforge.hdl.layouts.epilogue_layout`): one entry
      per GEMM, in GEMM order, from the decoder (a FIFO of :data:`EPILOGUE_FIFO_DEPTH`).
    * ``input`` (in stream of :func:`~qforge.hdl.layouts.result_layout`): the output
      stage's beats; a GEMM's entry is popped with its ``last`` beat.
    * ``addend`` (in stream of :func:`~qforge.hdl.layouts.addend_layout`): for a GEMM
      with ``add = 1``, one beat per result beat, in the same order; nothing otherwise.
    * ``output`` (out stream of :func:`~qforge.hdl.layouts.result_layout`): the beats,
      one register stage later (latency 1, one beat per cycle).
    * ``idle`` (out): no beat is held.

    The sum of an ``accumulator_width``-bit addend and result is exact in one more bit;
    saturation to ``saturate_bits`` (2 .. ``accumulator_width``, checked by the decoder)
    compares it with ``+-2**(saturate_bits - 1)``.
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "epilogue": In(epilogue_stream(config)),
            "input": In(result_stream(config)),
            "addend": In(addend_stream(config)),
            "output": Out(result_stream(config)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()
        layout = epilogue_layout(config)
        m.submodules.fifo = fifo = SyncFIFO(width=layout.size, depth=EPILOGUE_FIFO_DEPTH)
        m.d.comb += [fifo.w_data.eq(self.epilogue.payload.as_value()),
                     fifo.w_en.eq(self.epilogue.valid),
                     self.epilogue.ready.eq(fifo.w_rdy)]
        head = layout(fifo.r_data)

        # A beat moves when the output register is free (or being emptied), its GEMM's
        # settings are known, and (with add) its addend is there.
        space = Signal()
        addend_needed = Signal()
        move = Signal()
        m.d.comb += [
            space.eq(~self.output.valid | self.output.ready),
            addend_needed.eq(fifo.r_rdy & head.add),
            self.input.ready.eq(space & fifo.r_rdy & (~head.add | self.addend.valid)),
            self.addend.ready.eq(space & addend_needed & self.input.valid),
            move.eq(self.input.valid & self.input.ready),
            fifo.r_en.eq(move & self.input.payload.last),
        ]
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += self.output.valid.eq(0)

        width = config.accumulator_width + 1
        bits = head.saturate_bits
        high = Signal(signed(width))
        low = Signal(signed(width))
        # 2 <= bits <= accumulator_width (the decoder's check): both limits fit `width`
        # bits. A table of constants, not a variable shift.
        with m.Switch(bits):
            for value in range(2, config.accumulator_width + 1):
                with m.Case(value):
                    lowest, highest = signed_range(value)
                    m.d.comb += [high.eq(highest), low.eq(lowest)]
        with m.If(move):
            m.d.sync += [self.output.valid.eq(1),
                         self.output.payload.last.eq(self.input.payload.last)]
            for c in range(config.cols):
                total = Signal(signed(width), name=f"total{c}")
                m.d.comb += total.eq(self.input.payload.row[c] + self.addend.payload[c])
                clamped = Mux(total > high, high, Mux(total < low, low, total))
                m.d.sync += self.output.payload.row[c].eq(
                    Mux(head.add, clamped, self.input.payload.row[c]))
        m.d.comb += self.idle.eq(~self.output.valid)
        return m
