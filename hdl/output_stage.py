"""Output stage: turns accumulators into output operands (round-shift, ReLU, saturate;
VRQ words in VRQ configurations)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import output_layout
from qforge.hdl.vrq_encoder import VrqEncoder
from qforge.sim.model.cycles import OUTPUT_LATENCY
from qforge.sim.model.random_bits import KEY_CONSTANTS, RANDOM_ROUNDS
from qforge.hdl.rounding import round_shift_addend, shift_rounded
from qforge.hdl.signatures import result_stream

__all__ = ["OutputStage", "output_parameters_layout", "PARAMETER_FIFO_DEPTH",
           "KEY_ROUNDS_PER_CYCLE"]

#: Entries of the per-GEMM parameter FIFO. One is enough (see :class:`OutputStage`,
#: "Parameters"); the second is headroom, and the top's job hand-off waits while it is full.
PARAMETER_FIFO_DEPTH = 2
#: Key-schedule rounds the stage computes per cycle after loading a GEMM's parameters.
KEY_ROUNDS_PER_CYCLE = 2
#: Rounds of the random-bit generator in each of the two random-bit pipeline stages.
#: Speck rounds per pipeline stage of the random bits: at most three 32-bit additions in
#: series (four were the iCE40's critical path: 19 MHz).
_RNG_SPLIT = (range(0, 3), range(3, 6), range(6, RANDOM_ROUNDS))


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


def _add32(a, b):
    return (a + b)[:32]


def _speck_round(x, y, key):
    """One Speck64 round on 32-bit words (``sim/model/quantize.py``, :func:`random_bits`):
    ``x = ((x >>> 8) + y) ^ key``; ``y = (y <<< 3) ^ x``. Rotations are wiring."""
    x = _add32(x.rotate_right(8), y) ^ key
    y = y.rotate_left(3) ^ x
    return x, y


class OutputStage(wiring.Component):
    """Round-shift, ReLU and saturate each result beat; stream it on, one beat per cycle.

    Every number rule is :func:`qforge.sim.model.quantize.output_stage` (with
    :func:`~qforge.sim.model.quantize.round_shift` and :func:`~qforge.sim.model.quantize.random_bits`);
    the comments below point to it.

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
    registers once the previous GEMM's ``last`` beat has entered the pipeline (and the
    first random-bit stage no longer needs the old keys). Loading starts the Speck64/128
    key schedule of :func:`~qforge.sim.model.quantize.round_keys` on ``(seed, tensor)``:
    ``KEY_ROUNDS_PER_CYCLE`` = 2 rounds per cycle, 4 cycles, one small shared circuit
    (two 32-bit adders) instead of 7 chained adders. ``accumulators.ready`` is low until
    the keys are complete. This never stalls the array: a GEMM's first beat reaches the
    stage at least ``R + C + 5`` cycles after its job was accepted (one issued cycle,
    capture latency ``R + C + 3``, one to start draining), and, by the drain interlock,
    at least ``R + C + 5`` cycles after the previous GEMM's last beat entered the stage;
    the stage is ready 6 cycles after either (FIFO write or pipeline step, load, 4
    schedule cycles). The same argument shows that at most one GEMM waits in the FIFO
    (the next one) while the current one streams.

    **Pipeline** (``OUTPUT_LATENCY`` = 6 registered stages; all advance together when
    ``result`` is empty or being taken, so ``accumulators.ready = keys ready &
    (~result.valid | result.ready)``: one beat per cycle, no beat lost or duplicated under
    any backpressure):

    1. accept: the beat, its GEMM's control settings, and per lane the random-bit state
       after Speck rounds 0-2 on ``(x, y) = (row, col)`` with round keys 0-2;
    2. rounds 3-5 (keys 3-5);
    3. rounds 6-7 (keys 6-7): 32 random bits per lane (:func:`random_bits`);
    4. per lane: the rounding addend (nearest-even or stochastic, ``< 2**shift``);
    5. per lane: add the addend and shift (or encode a VRQ word, or pass the raw
       accumulator);
    6. per lane: ReLU and saturation of the rounded value: ``result``.

    Widths: ``A = accumulator_width``, ``O = output_width``, shift field ``SW`` bits so
    ``0 <= shift <= S = 2**SW - 1``. The rounding adds ``addend < 2**shift`` to the
    accumulator and shifts right arithmetically: ``max(A, S + 1) + 1`` bits, exact for
    every shift the field can hold (also ``shift >= A`` and ``shift > 32``).
    Rounding code 3 is not defined by :class:`~qforge.sim.model.quantize.Rounding`; the stage
    treats it as truncation (addend 0). The loader does not reject it.
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
        assert self.LATENCY == 3 + len(_RNG_SPLIT), "sim/model/cycles.py:OUTPUT_LATENCY"
        config = self._config
        rows, cols = config.rows, config.cols
        acc_width = config.accumulator_width
        control_layout = _control_layout(config)
        m = Module()

        # ---- parameter FIFO -----------------------------------------------------------
        parameters_layout = output_parameters_layout(config)
        m.submodules.fifo = fifo = SyncFIFO(width=parameters_layout.size,
                                            depth=PARAMETER_FIFO_DEPTH)
        m.d.comb += [fifo.w_data.eq(self.params.payload.as_value()),
                     fifo.w_en.eq(self.params.valid),
                     self.params.ready.eq(fifo.w_rdy)]
        head = parameters_layout(fifo.r_data)

        # ---- stream control -----------------------------------------------------------
        # A beat goes through the pipeline as ``S = cols / lanes`` sub-beats of ``lanes``
        # elements (``[output_stage] lanes_per_cycle``; S = 1, lanes = C by default), one
        # per cycle, ``phase`` = the next sub-beat; the beat is accepted with its last.
        lanes, beat_cycles = config.output_lanes, config.output_cycles_per_beat
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

        # ---- current GEMM: settings and round keys (sim/model/quantize.py: round_keys) ------
        control = Signal(control_layout)
        n_tiles_minus_one = Signal(unsigned(config.tiles_field_width))
        keys = [Signal(32, name=f"key{i}") for i in range(RANDOM_ROUNDS)]
        schedule_busy = Signal()
        schedule_key = Signal(32)                    # k[i] of the next schedule round
        schedule_words = [Signal(32, name=f"schedule_l{i}") for i in range(3)]  # l[i..i+2]
        steps = -(-(RANDOM_ROUNDS - 1) // KEY_ROUNDS_PER_CYCLE)
        schedule_step = Signal(range(steps))

        stage1_valid = Signal()
        # Loading rewrites the keys; stage 1 may still hold the previous GEMM's last
        # beat, whose rounds 4-7 read keys 4-7 while it moves to stage 2.
        load = Signal()
        m.d.comb += [load.eq(~keys_ready & ~schedule_busy & fifo.r_rdy
                             & (~stage1_valid | advance)),
                     fifo.r_en.eq(load)]
        with m.If(load):
            m.d.sync += [getattr(control, name).eq(getattr(head.output, name))
                         for name, _ in control_layout]
            m.d.sync += [n_tiles_minus_one.eq(head.n_tiles_minus_one),
                         keys[0].eq(head.output.seed),
                         schedule_key.eq(head.output.seed),
                         schedule_words[0].eq(head.output.tensor),
                         schedule_words[1].eq(KEY_CONSTANTS[0]),
                         schedule_words[2].eq(KEY_CONSTANTS[1]),
                         schedule_step.eq(0), schedule_busy.eq(1)]
        # Round i: l[i+3] = (k[i] + (l[i] >>> 8)) ^ i; k[i+1] = (k[i] <<< 3) ^ l[i+3], i.e.
        # the Speck round on (x, y) = (l[i], k[i]) with key i. One shared circuit of
        # KEY_ROUNDS_PER_CYCLE rounds: i = step * KEY_ROUNDS_PER_CYCLE + j.
        key, words, new_keys = schedule_key, list(schedule_words), []
        for j in range(KEY_ROUNDS_PER_CYCLE):
            index = Signal(range(steps * KEY_ROUNDS_PER_CYCLE), name=f"schedule_round{j}")
            m.d.comb += index.eq(schedule_step * KEY_ROUNDS_PER_CYCLE + j)
            word, key = _speck_round(words[0], key, index)
            words = words[1:] + [word]
            new_keys.append(key)
        # The schedule steps with the pipeline (``advance``): sub-beats of the previous
        # GEMM still in stages 2 and 3 read round keys 3-7, and a step rewrites keys no
        # sooner than those sub-beats have moved past them, however long the pipeline
        # stalls (with results always taken, ``advance`` is always high).
        with m.If(schedule_busy & advance):
            m.d.sync += [schedule_key.eq(key), schedule_step.eq(schedule_step + 1)]
            m.d.sync += [w.eq(v) for w, v in zip(schedule_words, words)]
            for step in range(steps):
                with m.If(schedule_step == step):
                    for j, new_key in enumerate(new_keys):
                        if step * KEY_ROUNDS_PER_CYCLE + j + 1 < RANDOM_ROUNDS:
                            m.d.sync += keys[step * KEY_ROUNDS_PER_CYCLE + j + 1].eq(new_key)
                    if step == steps - 1:
                        m.d.sync += [schedule_busy.eq(0), keys_ready.eq(1)]
        with m.If(accept & self.accumulators.payload.last):
            m.d.sync += keys_ready.eq(0)                 # pop: the next GEMM may load

        # ---- element coordinates of the incoming beat ---------------------------------
        tiles_limit = 1 << config.tiles_field_width
        row = Signal(range(tiles_limit * rows))          # mt * R + r
        row_base = Signal(range(tiles_limit * rows))     # mt * R
        tile_row = Signal(range(rows))                   # r
        tile_n = Signal(range(tiles_limit))              # nt
        col_base = Signal(range(tiles_limit * cols))     # nt * C
        # The column of the next sub-beat's lane 0, nt * C + phase * lanes, kept in a
        # register (an adder in front of the Speck rounds cost the iCE40 8 ns).
        lane0_col = Signal(range(tiles_limit * cols))
        assert len(row) <= 32 and len(col_base) <= 32
        # The zero-skipping array drains row-major beats (qforge.hdl.skipping_scheduler):
        # every beat is a 1 x C "tile", so the row only moves on when nt wraps.
        tile_rows = 1 if config.zero_skipping else rows
        with m.If(accept):
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
        with m.Elif(enter):
            m.d.sync += lane0_col.eq(lane0_col + lanes)      # the next sub-beat

        # ---- stage 1: a sub-beat enters; random-bit rounds 0-2 -------------------------
        # Lane u of sub-beat p is element c = p * lanes + u of the beat.
        beat_layout = data.ArrayLayout(signed(acc_width), lanes)
        entering = Signal(beat_layout)
        if beat_cycles == 1:
            m.d.comb += entering.eq(self.accumulators.payload.row)
        else:
            with m.Switch(phase):
                for p in range(beat_cycles):
                    with m.Case(p):
                        m.d.comb += [entering[u].eq(self.accumulators.payload.row[p * lanes + u])
                                     for u in range(lanes)]
        stage1_valid_next = Signal()
        m.d.comb += stage1_valid_next.eq(enter)
        stage1_row = Signal(beat_layout)
        stage1_last = Signal()          # the beat's final sub-beat (it completes the beat)
        stage1_gemm_last = Signal()     # ... of the GEMM's last beat
        stage1_x = [Signal(32, name=f"stage1_x{u}") for u in range(lanes)]
        stage1_y = [Signal(32, name=f"stage1_y{u}") for u in range(lanes)]
        stage2_valid = Signal()
        stage2_row = Signal(beat_layout)
        stage2_last = Signal()
        stage2_gemm_last = Signal()
        stage2_control = Signal(control_layout)
        stage2_x = [Signal(32, name=f"stage2_x{u}") for u in range(lanes)]
        stage2_y = [Signal(32, name=f"stage2_y{u}") for u in range(lanes)]
        stage3_valid = Signal()
        stage3_row = Signal(beat_layout)
        stage3_last = Signal()
        stage3_gemm_last = Signal()
        stage3_control = Signal(control_layout)
        stage3_bits = [Signal(32, name=f"stage3_bits{u}") for u in range(lanes)]
        stage1_next = []
        for u in range(lanes):
            # random_bits: x = row, y = col (32-bit words).
            x, y = Signal(32, name=f"x{u}"), Signal(32, name=f"y{u}")
            m.d.comb += [x.eq(row), y.eq(lane0_col + u)]
            for index in _RNG_SPLIT[0]:
                x, y = _speck_round(x, y, keys[index])
            stage1_next.append((x, y))
        stage2_next = []
        for u in range(lanes):
            x, y = stage1_x[u], stage1_y[u]
            for index in _RNG_SPLIT[1]:
                x, y = _speck_round(x, y, keys[index])
            stage2_next.append((x, y))
        stage3_next = []
        for u in range(lanes):
            x, y = stage2_x[u], stage2_y[u]
            for index in _RNG_SPLIT[2]:
                x, y = _speck_round(x, y, keys[index])
            stage3_next.append(y)                       # random_bits = the final y

        # ---- stage 4: rounding addends --------------------------------------------------
        # The rounding is split over two stages so that neither holds two barrel shifts
        # and a wide add in series (the whole of it in one cycle limited the ECP5 to
        # 48 MHz).
        stage4_valid = Signal()
        stage4_row = Signal(beat_layout)
        stage4_last = Signal()
        stage4_gemm_last = Signal()
        stage4_control = Signal(control_layout)
        max_shift = (1 << len(control.shift)) - 1
        stage4_addends = [Signal(unsigned(max_shift), name=f"stage4_addend{u}")
                          for u in range(lanes)]
        stage4_next = [round_shift_addend(m, stage3_row[u], stage3_control.shift,
                                          stage3_control.rounding, stage3_bits[u],
                                          max_shift=max_shift, name=str(u))
                       for u in range(lanes)]
        if config.vrq is not None:
            stage4_bits = [Signal(32, name=f"stage4_bits{u}") for u in range(lanes)]

        # ---- stage 5: add and shift; stage 6: ReLU, saturate -> result ------------------
        width = max(config.accumulator_width, max_shift + 1) + 1
        stage5_valid = Signal()
        stage5_last = Signal()
        stage5_gemm_last = Signal()
        stage5_relu = Signal()
        stage5_wide = Signal()
        stage5_saturate = Signal()     # the element is the saturated rounded value
        stage5_rounded = [Signal(signed(width), name=f"stage5_rounded{u}")
                          for u in range(lanes)]
        stage5_other = [Signal(signed(acc_width), name=f"stage5_other{u}")
                        for u in range(lanes)]
        rounded_next, other_next = [], []
        saturate = Signal()
        m.d.comb += saturate.eq(stage4_control.quantize)
        for u in range(lanes):
            rounded_next.append(shift_rounded(m, stage4_row[u], stage4_addends[u],
                                              stage4_control.shift, name=str(u)))
            other = stage4_row[u]        # raw accumulators (quantize = 0)
            if config.vrq is not None:
                # output_operands: VRQ words of the ReLU'd accumulators (VrqEncoder).
                encoder = m.submodules[f"vrq_encoder{u}"] = VrqEncoder(config, acc_width)
                accumulator = stage4_row[u]
                m.d.comb += [
                    encoder.value.eq(Mux(stage4_control.relu & accumulator[-1], 0,
                                         accumulator)),
                    encoder.exponent.eq(stage4_control.exponent),
                    encoder.rounding.eq(stage4_control.rounding),
                    encoder.random.eq(stage4_bits[u]),
                ]
                other = Mux(stage4_control.quantize & stage4_control.vrq, encoder.word,
                            other)
            other_next.append(other)
        if config.vrq is not None:
            saturate = Signal()
            m.d.comb += saturate.eq(stage4_control.quantize & ~stage4_control.vrq)
        stage5_next = [Mux(stage5_saturate,
                           self._saturate(m, u, stage5_rounded[u], stage5_relu,
                                          stage5_wide),
                           stage5_other[u])
                       for u in range(lanes)]

        # Elements of the sub-beats before the last wait here (S > 1 only); the last
        # sub-beat moves them into ``result`` with its own.
        held = [Signal(signed(acc_width), name=f"held{c}")
                for c in range(cols - lanes)]
        stage5_phase = Signal(range(beat_cycles))

        with m.If(advance):
            m.d.sync += [stage1_valid.eq(stage1_valid_next),
                         stage1_row.eq(entering),
                         stage1_last.eq(final_phase),
                         stage1_gemm_last.eq(self.accumulators.payload.last)]
            for u, (x, y) in enumerate(stage1_next):
                m.d.sync += [stage1_x[u].eq(x), stage1_y[u].eq(y)]

            # ---- stages 2 and 3: random-bit rounds 3-5 and 6-7 -----------------------------
            # A sub-beat in stage 1 always belongs to the current GEMM (parameters load
            # only as stage 1 empties), so it takes the current control settings along.
            # Its later rounds still read that GEMM's keys: a load in cycle t rewrites
            # round key i at the end of cycle t + ceil(i / 2) at the earliest
            # (KEY_ROUNDS_PER_CYCLE = 2), while the sub-beat that left stage 1 in cycle t
            # reads keys 3-5 in cycle t and keys 6-7 in cycle t + 1.
            m.d.sync += [stage2_valid.eq(stage1_valid), stage2_row.eq(stage1_row),
                         stage2_last.eq(stage1_last), stage2_gemm_last.eq(stage1_gemm_last),
                         stage2_control.eq(control)]
            for u, (x, y) in enumerate(stage2_next):
                m.d.sync += [stage2_x[u].eq(x), stage2_y[u].eq(y)]
            m.d.sync += [stage3_valid.eq(stage2_valid), stage3_row.eq(stage2_row),
                         stage3_last.eq(stage2_last), stage3_gemm_last.eq(stage2_gemm_last),
                         stage3_control.eq(stage2_control)]
            m.d.sync += [bits.eq(value) for bits, value in zip(stage3_bits, stage3_next)]

            # ---- stage 4: rounding addends ------------------------------------------------
            m.d.sync += [stage4_valid.eq(stage3_valid), stage4_row.eq(stage3_row),
                         stage4_last.eq(stage3_last), stage4_gemm_last.eq(stage3_gemm_last),
                         stage4_control.eq(stage3_control)]
            m.d.sync += [addend.eq(value) for addend, value in zip(stage4_addends,
                                                                    stage4_next)]
            if config.vrq is not None:
                m.d.sync += [bits.eq(value) for bits, value in zip(stage4_bits, stage3_bits)]

            # ---- stage 5: add and shift (or the raw accumulator, or a VRQ word) ------------
            m.d.sync += [stage5_valid.eq(stage4_valid), stage5_last.eq(stage4_last),
                         stage5_gemm_last.eq(stage4_gemm_last),
                         stage5_relu.eq(stage4_control.relu),
                         stage5_wide.eq(stage4_control.wide), stage5_saturate.eq(saturate)]
            m.d.sync += [r.eq(v) for r, v in zip(stage5_rounded, rounded_next)]
            m.d.sync += [r.eq(v) for r, v in zip(stage5_other, other_next)]

            # ---- stage 6: ReLU, saturate -> result ---------------------------------------
            m.d.sync += [self.result.valid.eq(stage5_valid & stage5_last),
                         self.result.payload.last.eq(stage5_gemm_last)]
            if beat_cycles == 1:
                m.d.sync += [self.result.payload.row[u].eq(value)
                             for u, value in enumerate(stage5_next)]
            else:
                with m.If(stage5_valid):
                    m.d.sync += stage5_phase.eq(Mux(stage5_last, 0, stage5_phase + 1))
                    with m.If(stage5_last):
                        m.d.sync += [self.result.payload.row[c].eq(held[c])
                                     for c in range(cols - lanes)]
                        m.d.sync += [self.result.payload.row[cols - lanes + u].eq(value)
                                     for u, value in enumerate(stage5_next)]
                    with m.Else():
                        with m.Switch(stage5_phase):
                            for p in range(beat_cycles - 1):
                                with m.Case(p):
                                    m.d.sync += [held[p * lanes + u].eq(value)
                                                 for u, value in enumerate(stage5_next)]

        m.d.comb += self.idle.eq(~stage1_valid & ~stage2_valid & ~stage3_valid
                                 & ~stage4_valid & ~stage5_valid & ~self.result.valid
                                 & (phase == 0))
        return m

    def _saturate(self, m, lane, rounded, relu, wide):
        """Stage 6 of ``output_stage`` for one element (sim/model/quantize.py): ReLU, then
        saturation to ``[-2**(O-1), 2**(O-1) - 1]``, or none with ``wide`` (the rounded
        value fits the accumulator whenever ``shift >= 0``). The range test looks at the
        bits above the output's sign bit (all equal to the sign when the value fits)
        instead of comparing with the limits, so it is an AND/OR tree, not a carry
        chain."""
        out_width = self._config.output_width
        high, low = (1 << (out_width - 1)) - 1, -(1 << (out_width - 1))
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
