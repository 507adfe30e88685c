"""Skid buffer: a stream stage whose ``ready`` towards the source is a register."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Pass a stream through with no added latency, but with ``input.ready`` driven by a
    flip-flop, so the sink's ``ready`` never reaches the source combinationally.

    * ``input`` (in stream of ``shape``), ``output`` (out stream of ``shape``): beats
      leave in the order they arrive, none lost or duplicated.
    * While the one-entry skid register is empty, ``output`` shows ``input`` directly
      (``valid`` and payload, the same cycle) and ``input.ready`` is high. A beat offered
      while ``output.ready`` is low is taken into the skid register; ``input.ready`` is
      then low until the register's beat has been taken on ``output``.
    * ``empty`` (out): the skid register holds no beat.

    Cost: one payload register and a payload multiplexer. Throughput is one beat per
    cycle while ``output.ready`` is high. Stream rules hold on both sides: ``output.valid``
    does not wait for ``output.ready``, and its payload only changes after a transfer
    (given that the source keeps an offered beat until it is taken).

    Why: in the accelerator top the drain's ``shift`` (the clock enable of every result
    register of the array) was ``valid & ready`` with ``ready`` coming through the output
    stage from the host link; on the 16x16 ULX3S build that chain was the critical path
    (25.3 ns, 23.6 ns of it routing). Behind a skid buffer, ``shift`` depends on the
    drain's and the buffer's registers only.
    """

    def __init__(self, shape):
        super().__init__({
            "input": In(stream.Signature(shape)),
            "output": Out(stream.Signature(shape)),
            "empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.input.payload.shape())
        held_valid = Signal()
        m.d.comb += [
            self.input.ready.eq(~held_valid),
            self.output.valid.eq(held_valid | self.input.valid),
            self.output.payload.eq(Mux(held_valid, held, self.input.payload)),
            self.empty.eq(~held_valid),
        ]
        with m.If(held_valid):
            with m.If(self.output.ready):
                m.d.sync += held_valid.eq(0)
        with m.Elif(self.input.valid & ~self.output.ready):
            m.d.sync += [held.eq(self.input.payload), held_valid.eq(1)]
        return m
