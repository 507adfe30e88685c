"""Result drain: shifts a finished tile out of the array onto the ``result`` stream."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.signatures import result_stream

__all__ = ["ResultDrain"]


class ResultDrain(wiring.Component):
    """Stream the R result rows of each tile, row 0 first, and guard the result registers.

    * ``issued_last`` (the scheduler issued a tile's last cycle) marks the registers as
      *pending*: a capture is on its way and the next tile's last cycle must wait.
      ``issued_rows`` (sampled with it) is how many rows that tile drains: R on the
      systolic array, up to R on the zero-skipping array (its last column group).
    * ``captured`` (the array's last PE captured the tile) starts draining from the next
      cycle: ``result.valid`` is high with ``array_row`` (the array's row 0) as payload;
      each accepted beat pulses ``shift`` so the array moves the next row up.
    * ``drain_free`` is high when neither a capture is pending nor rows remain: only then
      may the scheduler issue another tile's last cycle.

    ``result.payload.last`` marks the final row of a GEMM's final tile. Stream rules hold:
    ``valid`` does not wait for ``ready``, and the payload only changes after a transfer.
    """

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "issued_last": In(1),
            "issued_rows": In(unsigned(config.rows.bit_length())),
            "captured": In(1),
            "captured_gemm_last": In(1),
            "array_row": In(data.ArrayLayout(signed(config.accumulator_width), config.cols)),
            "shift": Out(1),
            "drain_free": Out(1),
            "result": Out(result_stream(config)),
        })

    def elaborate(self, platform):
        m = Module()
        pending = Signal()
        draining = Signal()
        rows_left = Signal(unsigned(self._config.rows.bit_length()))
        gemm_last = Signal()

        m.d.comb += [
            self.result.valid.eq(draining),
            self.result.payload.row.eq(self.array_row),
            self.result.payload.last.eq(gemm_last & (rows_left == 1)),
            self.shift.eq(self.result.valid & self.result.ready),
            self.drain_free.eq(~pending & ~draining),
        ]
        # One tile at a time is pending: the scheduler issues a tile's last cycle only
        # while drain_free, so the rows of the previous tile are no longer needed.
        pending_rows = Signal.like(rows_left)
        with m.If(self.issued_last):
            m.d.sync += [pending.eq(1), pending_rows.eq(self.issued_rows)]
        with m.If(self.captured):
            m.d.sync += [pending.eq(0), draining.eq(1), rows_left.eq(pending_rows),
                         gemm_last.eq(self.captured_gemm_last)]
        with m.If(self.shift):
            m.d.sync += rows_left.eq(rows_left - 1)
            with m.If(rows_left == 1):
                m.d.sync += draining.eq(0)
        return m
