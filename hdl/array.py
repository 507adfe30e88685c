"""The R x C output-stationary systolic array of block-wise PEs."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import flags_layout, lanes_layout
from qforge.hdl.pe import ProcessingElement

__all__ = ["SystolicArray", "BroadcastArray", "connect_results", "result_ports"]


class SystolicArray(wiring.Component):
    """R x C :class:`ProcessingElement` s with input skew and a result drain chain.

    Inputs are presented unskewed: in cycle ``t``, ``rows[r]`` holds row r's A lanes,
    ``cols[c]`` column c's B lanes and ``flags`` the tile markers of that cycle. The array
    delays row r by r cycles and column c by c cycles, so A lanes (moving right) and B lanes
    (moving down) meet in PE ``(r, c)`` at ``t + r + c``; PE ``(r, c)`` captures a tile's
    result at ``t_last + r + c + 3``, where ``t_last`` is the cycle the tile's last lanes
    were presented. PE ``(R-1, C-1)`` captures last, and its ``captured`` pulse is
    exported: once it is seen, every PE holds the tile's result.

    Draining: ``result_row`` is row 0's results (column c in element c). Each cycle
    ``shift`` is high, every row loads the row beneath it, so R shifts present rows
    0, 1, ..., R-1 in turn.
    """

    def __init__(self, config: Config):
        self._config = config
        lanes = lanes_layout(config)
        super().__init__({
            "rows": In(data.ArrayLayout(lanes, config.rows)),
            "cols": In(data.ArrayLayout(lanes, config.cols)),
            "flags": In(flags_layout(config)),
        } | result_ports(config))

    def elaborate(self, platform):
        config = self._config
        rows, cols = config.rows, config.cols
        m = Module()

        def delayed(value, cycles, name, *, reset_less=False):
            for stage in range(cycles):
                register = Signal.like(value, name=f"{name}_skew{stage}",
                                       reset_less=reset_less)
                m.d.sync += register.eq(value)
                value = register
            return value

        # The operand lanes are data, without reset like the PEs' (only the flags say
        # when they are meaningful: qforge.hdl.pe.ProcessingElement).
        row_lanes = [delayed(self.rows[r], r, f"row{r}", reset_less=True) for r in range(rows)]
        row_flags = [delayed(self.flags, r, f"flags_row{r}") for r in range(rows)]
        col_lanes = [delayed(self.cols[c], c, f"col{c}", reset_less=True)
                     for c in range(cols)]

        grid = [[ProcessingElement(config) for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                pe = grid[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                if c == 0:
                    m.d.comb += [pe.a_in.eq(row_lanes[r]), pe.flags_in.eq(row_flags[r])]
                else:
                    left = grid[r][c - 1]
                    m.d.comb += [pe.a_in.eq(left.a_out), pe.flags_in.eq(left.flags_out)]
                m.d.comb += pe.b_in.eq(col_lanes[c] if r == 0 else grid[r - 1][c].b_out)
            # The rightmost column's forwarded lanes and the bottom row's are unused:
            # they are the array's edge (waived in gen/lint.vlt).
        connect_results(m, grid, self)
        return m


def result_ports(config: Config) -> dict:
    """The drain side of both arrays: ``shift`` in; row 0's results and the capture
    pulses out (see :func:`connect_results`)."""
    return {
        "shift": In(1),
        "result_row": Out(data.ArrayLayout(signed(config.accumulator_width), config.cols)),
        "captured": Out(1),
        "captured_gemm_last": Out(1),
    }


def connect_results(m: Module, grid, array) -> None:
    """Chain the PEs' result registers for draining and export the corner's capture.

    Every PE shifts in the result of the PE below it (0 at the bottom row) while
    ``array.shift`` is high; ``array.result_row`` is row 0. ``captured`` comes from PE
    ``(R-1, C-1)``, the last to capture in the systolic array (in the broadcast array all
    capture together)."""
    rows, cols = len(grid), len(grid[0])
    for r in range(rows):
        for c in range(cols):
            pe = grid[r][c]
            m.d.comb += pe.shift.eq(array.shift)
            below = grid[r + 1][c].result if r + 1 < rows else 0
            m.d.comb += pe.result_below.eq(below)
    for c in range(cols):
        m.d.comb += array.result_row[c].eq(grid[0][c].result)
    corner = grid[rows - 1][cols - 1]
    m.d.comb += [array.captured.eq(corner.captured),
                 array.captured_gemm_last.eq(corner.captured_gemm_last)]


class BroadcastArray(wiring.Component):
    """R x C :class:`ProcessingElement` s of the zero-skipping array.

    In cycle ``t``, ``a`` (one A row's lanes) and ``flags`` reach every PE, and
    ``b[r][c]`` is PE ``(r, c)``'s own B lanes (from its PE-local bank and selector). All
    PEs compute the same cycle, so all capture a tile's result at ``t_last + 3``
    (:data:`qforge.sim.model.cycles.PE_LATENCY`). Draining is that of
    :class:`SystolicArray` (:func:`connect_results`). The PEs' forwarding outputs are
    unused here (waived in gen/lint.vlt).
    """

    def __init__(self, config: Config):
        self._config = config
        lanes = lanes_layout(config)
        super().__init__({
            "a": In(lanes),
            "b": In(data.ArrayLayout(data.ArrayLayout(lanes, config.cols), config.rows)),
            "flags": In(flags_layout(config)),
        } | result_ports(config))

    def elaborate(self, platform):
        config = self._config
        m = Module()
        grid = [[ProcessingElement(config) for _ in range(config.cols)]
                for _ in range(config.rows)]
        for r, grid_row in enumerate(grid):
            for c, pe in enumerate(grid_row):
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.a_in.eq(self.a), pe.flags_in.eq(self.flags),
                             pe.b_in.eq(self.b[r][c])]
        connect_results(m, grid, self)
        return m
