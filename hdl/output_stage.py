"""Output stage: turns accumulators into output operands (round-shift, ReLU, saturate;
VRQ words in VRQ configurations).

The number rules are in :mod:`qforge.hdl.rounding` (round-shift) and
:mod:`qforge.hdl.random_bits` (stochastic rounding's random bits and their round
keys); this module is the pipeline around them.
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from qforge.hdl.layouts import output_layout
from qforge.hdl.random_bits import RANDOM_STAGE_ROUNDS, mix_round, round_key
from qforge.hdl.rounding import round_shift_addend, shift_rounded
from qforge.hdl.shift_fifo import ShiftFIFO
from qforge.hdl.signatures import result_stream
from qforge.hdl.vrq_encoder import VrqEncoder
from qforge.sim.model.cycles import OUTPUT_LATENCY
from qforge.sim.model.saturation import signed_range
from qforge.sim.model.spec import Config

__all__ = ["OutputStage", "output_parameters_layout", "stage_layouts",
           "PARAMETER_FIFO_DEPTH"]

#: Entries of the per-GEMM parameter FIFO. One is enough (see :class:`OutputStage`,
#: "Parameters"); the second is headroom, and the top's job hand-off waits while it is full.
PARAMETER_FIFO_DEPTH = 2


def output_parameters_layout(config: Config) -> data.StructLayout:
    """What the output stage needs of a GEMM: its :func:`output_layout` settings and
    ``n_tiles_minus_one`` (to count result columns)."""
    return data.StructLayout({"output": output_layout(config),
                              "n_tiles_minus_one": unsigned(config.tiles_field_width)})


def _control_layout(config: Config) -> data.StructLayout:
    """The settings that travel with each beat through the pipeline (the VRQ fields
    only in configurations with a ``[vrq]`` section)."""
    fields = output_layout(config).members
    names = ["quantize", "shift", "rounding", "relu", "wide"]
    if config.vrq is not None:
        names += ["vrq", "exponent"]
    return data.StructLayout({name: fields[name] for name in names})


def _max_shift(config: Config) -> int:
    """``S``: the largest value of the ``shift`` field."""
    return (1 << output_layout(config).members["shift"].width) - 1


def stage_layouts(config: Config) -> tuple[data.StructLayout, ...]:
    """The registers of pipeline stages 1-5 of :class:`OutputStage`, one record each.

    Every stage has the markers ``valid`` (a sub-beat is in the stage), ``last`` (it is
    its beat's final sub-beat, which completes the beat) and ``gemm_last`` (the beat is
    its GEMM's last). Per lane (``L = output_lanes`` lanes, element ``u`` of each array):

    1. ``row`` (the ``A``-bit accumulators), ``x``, ``y`` (the random-bit state, 32 bits);
    2. ``row``, ``control`` (the GEMM's settings), ``x``, ``y``;
    3. ``row``, ``control``, ``bits`` (the 32 random bits);
    4. ``row``, ``control``, ``addend`` (``S`` bits), and ``bits`` with ``[vrq]``;
    5. ``relu``, ``wide``, ``saturate`` (the element is the saturated rounded value),
       ``rounded`` (``max(A, S + 1) + 1`` bits), ``other`` (``A`` bits: the raw
       accumulator or a VRQ word).

    >>> from qforge.sim.model.spec import load_preset
    >>> [list(layout.members) for layout in stage_layouts(load_preset("tiny"))][4]
    ['valid', 'last', 'gemm_last', 'relu', 'wide', 'saturate', 'rounded', 'other']
    """
    lanes, width = config.output_lanes, config.accumulator_width
    max_shift = _max_shift(config)
    markers = {"valid": 1, "last": 1, "gemm_last": 1}
    row = data.ArrayLayout(signed(width), lanes)
    control = _control_layout(config)
    words = data.ArrayLayout(32, lanes)
    vrq_bits = {"bits": words} if config.vrq is not None else {}
    return (
        data.StructLayout({**markers, "row": row, "x": words, "y": words}),
        data.StructLayout({**markers, "row": row, "control": control, "x": words,
                           "y": words}),
        data.StructLayout({**markers, "row": row, "control": control, "bits": words}),
        data.StructLayout({**markers, "row": row, "control": control,
                           "addend": data.ArrayLayout(unsigned(max_shift), lanes),
                           **vrq_bits}),
        data.StructLayout({**markers, "relu": 1, "wide": 1, "saturate": 1,
                           "rounded": data.ArrayLayout(
                               signed(max(width, max_shift + 1) + 1), lanes),
                           "other": data.ArrayLayout(signed(width), lanes)}),
    )


def _carried(source, target, *, computed=()) -> list:
    """Assignments of every field of ``target`` that ``source``'s layout also has, but
    the ``computed`` ones: what a pipeline stage takes along from the previous one."""
    members = source.shape().members
    return [target[name].eq(source[name]) for name, _ in target.shape()
            if name in members and name not in computed]


class OutputStage(wiring.Component):
    """Round-shift, ReLU and saturate each result beat; stream it on, one beat per cycle.

    Every number rule is :func:`qforge.sim.model.quantize.output_stage` (with
    :func:`qforge.sim.model.rounding.round_shift`,
    :func:`qforge.sim.model.random_bits.random_bits` and
    :func:`qforge.sim.model.saturation.saturate`); the comments below point to them.

    Ports:

    * ``params`` (in, stream of :func:`output_parameters_layout`): one entry per GEMM, in
      GEMM order, pushed by the top when the scheduler accepts the GEMM's job. ``ready``
      is the parameter FIFO's space (``PARAMETER_FIFO_DEPTH`` entries).
    * ``accumulators`` (in, stream of :func:`~qforge.hdl.layouts.result_layout`): the
      drain's beats, ``C`` signed ``accumulator_width`` accumulators and ``last``.
    * ``result`` (out, the same layout): with the GEMM's ``output.quantize = 0`` the raw
      accumulators; with ``quantize = 1`` each element is the ``output_width``-bit output
      operand, sign-extended to ``accumulator_width``. In configurations with a ``[vrq]``
      section, ``quantize = 1`` and ``vrq = 1`` give VRQ operand words instead
      (:func:`~qforge.sim.model.quantize.output_operands`, one
      :class:`~qforge.hdl.vrq_encoder.VrqEncoder` per lane, ``E = output.exponent``);
      without ``[vrq]`` the ``vrq`` field is ignored. ``last`` passes through.
    * ``idle`` (out): no beat is in the pipeline.

    **Coordinates.** Beats arrive ``for mt: for nt: for r in 0 .. R-1`` (the drain's
    order), so element ``c`` of a beat is ``(row, col) = (mt*R + r, nt*C + c)`` of the
    GEMM's result, whatever the array shape. Counters (no multipliers) follow it: the row
    counts up within a tile and returns to the tile's first row, the column base steps
    by ``C`` per tile and wraps after ``n_tiles``; ``last`` resets them for the next GEMM.
    The zero-skipping array drains row-major (``for row: for nt:``, one beat per column
    tile), which is the same walk with one-row tiles.

    **Parameters.** A GEMM's settings are popped from the FIFO into the *current*
    registers once the previous GEMM's ``last`` beat has entered the pipeline and no
    sub-beat of it is left in stages 1 and 2, whose rounds read the round keys
    (:func:`qforge.sim.model.random_bits.round_keys`, wired from the current ``seed``
    and ``tensor`` by :func:`qforge.hdl.random_bits.round_key`). ``accumulators.ready``
    is low until the load. This never stalls the array: a GEMM's first beat reaches the
    stage at least ``R + C + 5`` cycles after its job was accepted (one issued cycle,
    capture latency ``R + C + 3``, one to start draining), and, by the drain interlock,
    at least ``R + C + 5`` cycles after the previous GEMM's last beat entered the stage;
    the stage is ready 2 cycles after the FIFO write (write, load) and 3 after that
    last beat (it leaves stage 2 in the third). The same argument shows that at most one
    GEMM waits in the FIFO (the next one) while the current one streams.

    **Pipeline** (``OUTPUT_LATENCY`` = 6 registered stages; all advance together when
    ``result`` is empty or being taken, so ``accumulators.ready = keys ready &
    (~result.valid | result.ready)``: one beat per cycle, no beat lost or duplicated under
    any backpressure). Each stage's register is one record (:func:`stage_layouts`): the
    markers ``valid``, ``last``, ``gemm_last`` and what the stage computed; a stage takes
    every field of the previous record that its own layout also has.

    1. accept: the beat and per lane the random-bit state after rounds 0-2 on
       ``(x, y) = (row, col)`` with round keys 0-2;
    2. rounds 3-5 (keys 3-5); the current GEMM's control settings join the beat;
    3. rounds 6-7 (keys 6-7): 32 random bits per lane
       (:func:`qforge.sim.model.random_bits.random_bits`);
    4. per lane: the rounding addend (nearest-even or stochastic, ``< 2**shift``);
    5. per lane: add the addend and shift (or encode a VRQ word, or pass the raw
       accumulator);
    6. per lane: ReLU and saturation of the rounded value: ``result``.

    Widths: ``A = accumulator_width``, ``O = output_width``, shift field ``SW`` bits so
    ``0 <= shift <= S = 2**SW - 1``. The rounding adds ``addend < 2**shift`` to the
    accumulator and shifts right arithmetically: ``max(A, S + 1) + 1`` bits, exact for
    every shift the field can hold (also ``shift >= A`` and ``shift > 32``). The
    rounding code is always a :class:`~qforge.sim.model.rounding.Rounding` member: the
    loader rejects commands with the 2-bit code that is none.
    """

    LATENCY = OUTPUT_LATENCY

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "params": In(stream.Signature(output_parameters_layout(config))),
            "accumulators": In(result_stream(config)),
            "result": Out(result_stream(config)),
            "idle": Out(1),
        })

    @property
    def config(self) -> Config:
        return self._config

    def elaborate(self, platform):
        assert self.LATENCY == 3 + len(RANDOM_STAGE_ROUNDS), "sim/model/cycles.py:OUTPUT_LATENCY"
        m = Module()
        stages = [Signal(layout, name=f"stage{number}")
                  for number, layout in enumerate(stage_layouts(self._config), start=1)]
        flow = self._flow(m)
        control, n_tiles_minus_one, keys = self._current_gemm(m, flow, stages)
        row, lane0_col = self._coordinates(m, flow, n_tiles_minus_one)
        self._random_stages(m, flow, stages, control, keys, row, lane0_col)
        self._rounding_stages(m, flow, stages)
        self._result_stage(m, flow, stages[4])
        m.d.comb += self.idle.eq(~Cat(*(stage.valid for stage in stages)).any()
                                 & ~self.result.valid & (flow.phase == 0))
        return m

    def _flow(self, m) -> "_Flow":
        """Stream control: when the pipeline moves and when a sub-beat enters it.

        A beat goes through the pipeline as ``S = cols / lanes`` sub-beats of ``lanes``
        elements (``[output_stage] lanes_per_cycle``; S = 1, lanes = C by default), one
        per cycle, ``phase`` = the next sub-beat; the beat is accepted with its last.
        """
        beat_cycles = self._config.output_cycles_per_beat
        advance = Signal()           # every pipeline register moves this cycle
        enter = Signal()             # a sub-beat of the offered beat enters stage 1
        accept = Signal()            # ... and it is the beat's last: the beat is taken
        keys_ready = Signal()        # the current GEMM's parameters and keys are loaded
        # (S = 1: no register; a zero-width one would be a `[-1:0]` vector in Verilog.)
        phase = Signal(range(beat_cycles)) if beat_cycles > 1 else Const(0, 1)
        final_phase = Signal()
        m.d.comb += [advance.eq(~self.result.valid | self.result.ready),
                     final_phase.eq(phase == beat_cycles - 1),
                     enter.eq(self.accumulators.valid & advance & keys_ready),
                     self.accumulators.ready.eq(advance & keys_ready & final_phase),
                     accept.eq(self.accumulators.valid & self.accumulators.ready)]
        if beat_cycles > 1:
            with m.If(enter):
                m.d.sync += phase.eq(Mux(final_phase, 0, phase + 1))
        return _Flow(advance, enter, accept, keys_ready, phase, final_phase)

    def _current_gemm(self, m, flow, stages):
        """The parameter FIFO and the current GEMM's registers: its control settings,
        ``n_tiles_minus_one``, ``seed`` and ``tensor``. Returns ``(control,
        n_tiles_minus_one, keys)`` with ``keys[i]`` round ``i``'s key
        (:func:`~qforge.hdl.random_bits.round_key`, wired from the seed and tensor)."""
        config = self._config
        parameters_layout = output_parameters_layout(config)
        # A narrow stage is the small-FPGA build: its queue keeps the head in a register
        # (ShiftFIFO, the same behaviour cycle for cycle, fewer iCE40 logic cells); the
        # full-rate stages keep SyncFIFO, so their Verilog is unchanged.
        fifo_class = ShiftFIFO if config.output_cycles_per_beat > 1 else SyncFIFO
        m.submodules.fifo = fifo = fifo_class(width=parameters_layout.size,
                                              depth=PARAMETER_FIFO_DEPTH)
        m.d.comb += [fifo.w_data.eq(self.params.payload.as_value()),
                     fifo.w_en.eq(self.params.valid),
                     self.params.ready.eq(fifo.w_rdy)]
        head = parameters_layout(fifo.r_data)

        control = Signal(_control_layout(config))
        n_tiles_minus_one = Signal(unsigned(config.tiles_field_width))
        seed = Signal.like(head.output.seed, name="seed")
        tensor = Signal.like(head.output.tensor, name="tensor")
        # Loading rewrites the keys, which the rounds of the sub-beats entering and in
        # stages 1 and 2 read: load at the end of a cycle after which neither stage 1 nor
        # stage 2 holds a sub-beat of the previous GEMM (none of the next one enters
        # before the load). Its last beat entering in cycle t, the load is in cycle t + 2
        # at the earliest and the next GEMM may enter from t + 3, sooner than its first
        # beat can come (class docstring, "Parameters").
        stage1, stage2 = stages[:2]
        load = Signal()
        m.d.comb += [load.eq(~flow.keys_ready & fifo.r_rdy & ~stage1.valid
                             & (flow.advance | ~stage2.valid)),
                     fifo.r_en.eq(load)]
        with m.If(load):
            m.d.sync += [control[name].eq(head.output[name]) for name, _ in control.shape()]
            m.d.sync += [n_tiles_minus_one.eq(head.n_tiles_minus_one),
                         seed.eq(head.output.seed), tensor.eq(head.output.tensor),
                         flow.keys_ready.eq(1)]
        with m.If(flow.accept & self.accumulators.payload.last):
            m.d.sync += flow.keys_ready.eq(0)            # pop: the next GEMM may load
        keys = [round_key(seed, tensor, index) for index in range(RANDOM_STAGE_ROUNDS[-1].stop)]
        return control, n_tiles_minus_one, keys

    def _coordinates(self, m, flow, n_tiles_minus_one):
        """Element coordinates of the incoming beat (class docstring, "Coordinates"):
        returns ``(row, lane0_col)``, the row ``mt * R + r`` and the column of the next
        sub-beat's lane 0, ``nt * C + phase * lanes``."""
        config = self._config
        rows, cols, lanes = config.rows, config.cols, config.output_lanes
        tiles_limit = 1 << config.tiles_field_width
        row = Signal(range(tiles_limit * rows))          # mt * R + r
        row_base = Signal(range(tiles_limit * rows))     # mt * R
        tile_row = Signal(range(rows))                   # r
        tile_n = Signal(range(tiles_limit))              # nt
        col_base = Signal(range(tiles_limit * cols))     # nt * C
        # The column of the next sub-beat's lane 0 is kept in a register (an adder in
        # front of the random-bit rounds cost the iCE40 8 ns).
        lane0_col = Signal(range(tiles_limit * cols))
        assert len(row) <= 32 and len(col_base) <= 32
        # The zero-skipping array drains row-major beats (qforge.hdl.skipping_scheduler):
        # every beat is a 1 x C "tile", so the row only moves on when nt wraps.
        tile_rows = 1 if config.zero_skipping else rows
        with m.If(flow.accept):
            with m.If(self.accumulators.payload.last):
                m.d.sync += [row.eq(0), row_base.eq(0), tile_row.eq(0), tile_n.eq(0),
                             col_base.eq(0), lane0_col.eq(0)]
            with m.Elif((tile_row == rows - 1) if tile_rows > 1 else 1):
                m.d.sync += tile_row.eq(0)
                with m.If(tile_n == n_tiles_minus_one):
                    m.d.sync += [tile_n.eq(0), col_base.eq(0), row.eq(row_base + tile_rows),
                                 row_base.eq(row_base + tile_rows), lane0_col.eq(0)]
                with m.Else():
                    m.d.sync += [tile_n.eq(tile_n + 1), col_base.eq(col_base + cols),
                                 row.eq(row_base), lane0_col.eq(col_base + cols)]
            with m.Else():
                m.d.sync += [tile_row.eq(tile_row + 1), row.eq(row + 1),
                             lane0_col.eq(col_base)]
        with m.Elif(flow.enter):
            m.d.sync += lane0_col.eq(lane0_col + lanes)      # the next sub-beat
        return row, lane0_col

    def _random_stages(self, m, flow, stages, control, keys, row, lane0_col):
        """Stages 1-3: a sub-beat enters; the rounds of
        :func:`qforge.sim.model.random_bits.random_bits` on ``(x, y) = (row, col)``,
        :data:`~qforge.hdl.random_bits.RANDOM_STAGE_ROUNDS` per stage."""
        config = self._config
        lanes, beat_cycles = config.output_lanes, config.output_cycles_per_beat
        stage1, stage2, stage3 = stages[:3]
        payload = self.accumulators.payload
        # Lane u of sub-beat p is element c = p * lanes + u of the beat.
        entering = Signal(stage1.row.shape())
        if beat_cycles == 1:
            m.d.comb += entering.eq(payload.row)
        else:
            with m.Switch(flow.phase):
                for p in range(beat_cycles):
                    with m.Case(p):
                        m.d.comb += [entering[u].eq(payload.row[p * lanes + u])
                                     for u in range(lanes)]

        def rounds(stage_rounds, x, y):
            for index in stage_rounds:
                x, y = mix_round(x, y, keys[index])
            return x, y

        # The rounds are combinational between the stage registers (computed outside
        # the enable so that every named signal is a function of its inputs alone).
        stage1_next, stage2_next, stage3_next = [], [], []
        for u in range(lanes):
            # random_bits: x = row, y = col (32-bit words).
            x, y = Signal(32, name=f"x{u}"), Signal(32, name=f"y{u}")
            m.d.comb += [x.eq(row), y.eq(lane0_col + u)]
            stage1_next.append(rounds(RANDOM_STAGE_ROUNDS[0], x, y))
            stage2_next.append(rounds(RANDOM_STAGE_ROUNDS[1], stage1.x[u], stage1.y[u]))
            stage3_next.append(rounds(RANDOM_STAGE_ROUNDS[2], stage2.x[u], stage2.y[u])[1])

        with m.If(flow.advance):
            m.d.sync += [stage1.valid.eq(flow.enter), stage1.row.eq(entering),
                         stage1.last.eq(flow.final_phase), stage1.gemm_last.eq(payload.last)]
            m.d.sync += [stage1.x[u].eq(x) for u, (x, _) in enumerate(stage1_next)]
            m.d.sync += [stage1.y[u].eq(y) for u, (_, y) in enumerate(stage1_next)]
            # A sub-beat in stage 1 always belongs to the current GEMM (parameters load
            # only as stage 1 empties), so it takes the current control settings along.
            # Its later rounds still read that GEMM's keys: the next load waits until
            # it has left stage 2 (_current_gemm).
            m.d.sync += _carried(stage1, stage2, computed=("x", "y"))
            m.d.sync += stage2.control.eq(control)
            m.d.sync += [stage2.x[u].eq(x) for u, (x, _) in enumerate(stage2_next)]
            m.d.sync += [stage2.y[u].eq(y) for u, (_, y) in enumerate(stage2_next)]
            m.d.sync += _carried(stage2, stage3)
            # random_bits = the final y
            m.d.sync += [stage3.bits[u].eq(y) for u, y in enumerate(stage3_next)]

    def _rounding_stages(self, m, flow, stages):
        """Stage 4 (the rounding addends) and stage 5 (add and shift, or the raw
        accumulator, or a VRQ word). The round-shift is split over the two stages so
        that neither holds two barrel shifts and a wide add in series (the whole of it
        in one cycle limited the ECP5 to 48 MHz)."""
        config = self._config
        stage3, stage4, stage5 = stages[2:]
        max_shift = _max_shift(config)
        control = stage4.control
        # round_shift's rule: its addend (qforge.hdl.rounding), from stage 3's record.
        addends = [round_shift_addend(m, stage3.row[u], stage3.control.shift,
                                      stage3.control.rounding, stage3.bits[u],
                                      max_shift=max_shift, name=str(u))
                   for u in range(config.output_lanes)]
        saturate = Signal()
        m.d.comb += saturate.eq(control.quantize if config.vrq is None
                                else control.quantize & ~control.vrq)
        rounded, others = [], []
        for u in range(config.output_lanes):
            accumulator = stage4.row[u]
            rounded.append(shift_rounded(m, accumulator, stage4.addend[u], control.shift,
                                         name=str(u)))
            other = accumulator          # raw accumulators (quantize = 0)
            if config.vrq is not None:
                # output_operands: VRQ words of the ReLU'd accumulators.
                encoder = VrqEncoder(config, config.accumulator_width)
                m.submodules[f"vrq_encoder{u}"] = encoder
                m.d.comb += [
                    encoder.value.eq(Mux(control.relu & accumulator[-1], 0, accumulator)),
                    encoder.exponent.eq(control.exponent),
                    encoder.rounding.eq(control.rounding),
                    encoder.random.eq(stage4.bits[u]),
                ]
                other = Mux(control.quantize & control.vrq, encoder.word, other)
            others.append(other)

        with m.If(flow.advance):
            m.d.sync += _carried(stage3, stage4)
            m.d.sync += [stage4.addend[u].eq(addend) for u, addend in enumerate(addends)]
            m.d.sync += _carried(stage4, stage5)
            m.d.sync += [stage5.relu.eq(control.relu), stage5.wide.eq(control.wide),
                         stage5.saturate.eq(saturate)]
            m.d.sync += [stage5.rounded[u].eq(value) for u, value in enumerate(rounded)]
            m.d.sync += [stage5.other[u].eq(value) for u, value in enumerate(others)]

    def _result_stage(self, m, flow, stage5):
        """Stage 6: ReLU and saturation of each rounded element (or the other value) into
        ``result``; with S > 1 sub-beats, the elements of the sub-beats before the last
        wait in ``held`` and the last sub-beat moves them into ``result`` with its own."""
        config = self._config
        cols, lanes = config.cols, config.output_lanes
        beat_cycles = config.output_cycles_per_beat
        elements = [Mux(stage5.saturate,
                        self._saturate(m, u, stage5.rounded[u], stage5.relu, stage5.wide),
                        stage5.other[u])
                    for u in range(lanes)]
        held = [Signal(signed(config.accumulator_width), name=f"held{c}")
                for c in range(cols - lanes)]
        stage5_phase = Signal(range(beat_cycles))
        row = self.result.payload.row
        with m.If(flow.advance):
            m.d.sync += [self.result.valid.eq(stage5.valid & stage5.last),
                         self.result.payload.last.eq(stage5.gemm_last)]
            if beat_cycles == 1:
                m.d.sync += [row[u].eq(value) for u, value in enumerate(elements)]
            else:
                with m.If(stage5.valid):
                    m.d.sync += stage5_phase.eq(Mux(stage5.last, 0, stage5_phase + 1))
                    with m.If(stage5.last):
                        m.d.sync += [row[c].eq(held[c]) for c in range(cols - lanes)]
                        m.d.sync += [row[cols - lanes + u].eq(value)
                                     for u, value in enumerate(elements)]
                    with m.Else():
                        with m.Switch(stage5_phase):
                            for p in range(beat_cycles - 1):
                                with m.Case(p):
                                    m.d.sync += [held[p * lanes + u].eq(value)
                                                 for u, value in enumerate(elements)]

    def _saturate(self, m, lane, rounded, relu, wide):
        """Stage 6 of ``output_stage`` for one element: ReLU, then saturation to
        ``[-2**(O-1), 2**(O-1) - 1]`` (:func:`qforge.sim.model.saturation.saturate`), or
        none with ``wide`` (the rounded value fits the accumulator whenever
        ``shift >= 0``). The range test looks at the bits above the output's sign bit
        (all equal to the sign when the value fits) instead of comparing with the
        limits, so it is an AND/OR tree, not a carry chain."""
        out_width = self._config.output_width
        low, high = signed_range(out_width)
        rectified = Signal.like(rounded, name=f"rectified{lane}")
        saturated = Signal(signed(self._config.accumulator_width), name=f"saturated{lane}")
        upper = rectified[out_width - 1:]            # the output's sign bit and above
        m.d.comb += rectified.eq(Mux(relu & rounded[-1], 0, rounded))
        with m.If(wide):
            m.d.comb += saturated.eq(rectified)
        with m.Elif(~rectified[-1] & upper.any()):
            m.d.comb += saturated.eq(high)
        with m.Elif(rectified[-1] & ~upper.all()):
            m.d.comb += saturated.eq(low)
        with m.Else():
            m.d.comb += saturated.eq(rectified)
        return saturated


class _Flow(NamedTuple):
    """The stream-control signals of :meth:`OutputStage._flow`."""

    advance: Signal
    enter: Signal
    accept: Signal
    keys_ready: Signal
    phase: object            # a Signal, or Const(0) with one sub-beat per beat
    final_phase: Signal
