"""Cycle model of the accelerator: how block products are scheduled and how long a GEMM
takes. Tests compare it with cycle counts measured on the generated Verilog.

(Over 500 lines because it is one concept: the lane schedule, the per-design issued
block products and latencies, and the event model of a command sequence all define the
same cycle counts and are checked together against the RTL.)

The schedule (:func:`lane_schedule`) does not affect results: products are summed exactly
(see :mod:`qforge.sim.model.numerics`). It decides throughput: a multiply-accumulate needs
``q = La * Lb`` block products and a PE has ``P`` multiplier lanes, so a tile's dot
product of ``depth`` operands takes ``ceil(depth * q / P)`` cycles (P/q MACs per cycle
when ``q <= P``, q/P cycles per MAC otherwise, with no rounding loss in between). With
``arithmetic.pe = "shared_shift"`` the lanes of a cycle hold one block pair of a word's P
operands instead: ``ceil(depth / P) * q`` cycles, a dynamically approximated operand
counting all its ``n`` blocks (:func:`issued_block_products`, :func:`mode_tile_cycles`).

The timing constants of :func:`gemm_cycles` are those of the RTL pipeline
(:mod:`qforge.hdl.top`): loading, a one-cycle job hand-off, the feed pipeline (buffer
read, edge selector), the array skew, the PE's three stages, the drain of ``R`` result
rows, which may overlap the next tile's computation, and the output stage's pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qforge.sim.model.capacity import tiles
from qforge.sim.model.spec import Config

__all__ = ["LaneSchedule", "lane_schedule", "tile_cycles", "issued_block_products",
           "mode_tile_cycles", "paired_tile_cycles",
           "GemmShape", "gemm_shape", "CycleReport",
           "gemm_cycles", "row_cycles", "skipping_shape", "FEED_LATENCY", "PE_LATENCY",
           "pe_latency",
           "OUTPUT_LATENCY", "CHECK_LATENCY", "Timeline", "program_cycles", "ProgramReport",
           "DECODE_CYCLES", "ADDEND_LATENCY"]

#: Cycles from a command's transfer on ``cmd`` to the earliest cycle it can start loading:
#: one to take it into the loader's command slot, one to check it from registers
#: (:class:`qforge.hdl.loader.Loader`). Later commands are taken and checked while their
#: predecessor loads, so only the first command of a sequence pays it.
CHECK_LATENCY = 2
#: Cycles from an issued buffer address to the selected lanes at the array's edge:
#: one for the synchronous buffer read, one for the edge selector's output register.
FEED_LATENCY = 2
#: Cycles from lanes at a PE's inputs to its ``captured`` pulse (operand registers, lane
#: sum register, accumulator/result register); one more with ``pe = "fused"``
#: (:func:`pe_latency`).
PE_LATENCY = 3
#: Cycles from a result beat leaving the drain to the same beat on the ``result`` port:
#: the output stage's six pipeline registers (three random-bit stages, the rounding addend,
#: add and shift, ReLU and saturation; :class:`qforge.hdl.output_stage.OutputStage`).
OUTPUT_LATENCY = 6


@dataclass(frozen=True)
class LaneSchedule:
    """How P lanes walk the block products ``f = k * q + i * Lb + j`` of a dot product.

    Each cycle every lane advances by P products, i.e. by ``step_operands`` operands,
    ``step_a`` A blocks and ``step_b`` B blocks in mixed radix ``(k, i < La, j < Lb)``.
    ``lane_starts[l]`` is lane l's ``(k, i, j)`` in a tile's first cycle (product ``l``).
    """

    kept_a: int
    kept_b: int
    lanes: int
    step_operands: int
    step_a: int
    step_b: int
    lane_starts: tuple[tuple[int, int, int], ...]

    def products(self, cycles: int):
        """The ``(k, i, j)`` of every lane for the first ``cycles`` cycles (a reference
        for tests; the hardware uses the step and starting digits).

        >>> lane_schedule(3, 1, 4).products(2)
        [[(0, 0, 0), (0, 1, 0), (0, 2, 0), (1, 0, 0)], [(1, 1, 0), (1, 2, 0), (2, 0, 0), (2, 1, 0)]]
        """
        q = self.kept_a * self.kept_b
        out = []
        for cycle in range(cycles):
            row = []
            for lane in range(self.lanes):
                f = cycle * self.lanes + lane
                k, r = divmod(f, q)
                row.append((k, r // self.kept_b, r % self.kept_b))
            out.append(row)
        return out


def lane_schedule(kept_a: int, kept_b: int, lanes: int) -> LaneSchedule:
    """The lane schedule for ``La = kept_a``, ``Lb = kept_b`` and ``P = lanes``.

    >>> lane_schedule(2, 2, 4)     # q = 4 = P: one MAC per cycle
    LaneSchedule(kept_a=2, kept_b=2, lanes=4, step_operands=1, step_a=0, step_b=0, lane_starts=((0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)))
    >>> lane_schedule(1, 1, 4).step_operands   # q = 1: four MACs per cycle
    4
    >>> s = lane_schedule(3, 1, 4)  # q = 3 does not divide P = 4: 4/3 MACs per cycle
    >>> (s.step_operands, s.step_a, s.step_b, s.lane_starts[3])
    (1, 1, 0, (1, 0, 0))
    """
    q = kept_a * kept_b
    step_operands, remainder = divmod(lanes, q)
    starts = []
    for lane in range(lanes):
        k, r = divmod(lane, q)
        starts.append((k, r // kept_b, r % kept_b))
    return LaneSchedule(kept_a, kept_b, lanes, step_operands, remainder // kept_b,
                        remainder % kept_b, tuple(starts))


def tile_cycles(depth: int, block_products: int, lanes: int, *,
                whole_words: bool = False) -> int:
    """Cycles one output tile's dot product occupies: ``ceil(depth * q / P)``; with
    ``whole_words`` (``pe = "shared_shift"``, whose cycles each hold one block pair of a
    word's P operands) ``ceil(depth / P) * q``, q from :func:`issued_block_products`.

    >>> tile_cycles(128, 16, 4), tile_cycles(128, 1, 4), tile_cycles(5, 3, 4)
    (512, 32, 4)
    >>> tile_cycles(5, 3, 4, whole_words=True)     # 2 words x 3 block pairs
    6
    """
    if whole_words:
        return tiles(depth, lanes) * block_products
    return tiles(depth * block_products, lanes)


def pe_latency(config: Config) -> int:
    """Cycles from lanes at a PE's inputs to its ``captured`` pulse: :data:`PE_LATENCY`,
    and one more with ``pe = "fused"``, whose lane-pair multipliers (an FPGA's DSP
    blocks) take registered operands and register their product
    (:class:`qforge.hdl.pe.ProcessingElement`).

    >>> from qforge.sim.model.spec import load_preset
    >>> pe_latency(load_preset("default")), pe_latency(load_preset("fused"))
    (3, 4)
    """
    return PE_LATENCY + (config.pe == "fused")


def issued_block_products(config: Config, precision) -> int:
    """Block products the PEs of ``config`` issue per multiply-accumulate in
    ``precision`` (a :class:`qforge.sim.model.numerics.Precision`): ``q = La * Lb``, but
    with ``arithmetic.pe = "shared_shift"`` a dynamically approximated operand counts
    all its ``n`` blocks (every lane of a cycle is at one block position, so the
    approximated operand's blocks are walked at every position, those outside its kept
    window being zero: hdl/selector.py), and with ``pe = "fused"`` (``n = 2``) a MAC
    takes 2 lanes when either operand keeps both blocks (the lane pair's multiplier
    takes the kept operands whole) and 1 when both keep one (two such MACs share a lane
    pair's multiplier). The numbers are the same.

    >>> from qforge.sim.model.numerics import standard_modes
    >>> from qforge.sim.model.spec import from_dict, load_preset
    >>> spec = load_preset("default").to_dict()
    >>> spec["arithmetic"]["pe"] = "shared_shift"
    >>> shared, modes = from_dict(spec), standard_modes(load_preset("default"))
    >>> [issued_block_products(shared, modes[name]) for name in
    ...  ("exact", "reduced", "approx_static", "approx_dynamic")]
    [16, 4, 4, 16]
    >>> issued_block_products(load_preset("default"), modes["approx_dynamic"])
    4
    >>> spec = load_preset("tiny").to_dict()         # W = 8, K = 4: n = 2
    >>> spec["arithmetic"]["pe"] = "fused"
    >>> spec["arithmetic"]["block_multipliers"] = 2       # lanes in pairs: P even
    >>> fused, modes = from_dict(spec), standard_modes(load_preset("tiny"))
    >>> [(modes[name].block_products, issued_block_products(fused, modes[name]))
    ...  for name in ("exact", "reduced", "approx_static", "approx_dynamic")]
    [(4, 2), (1, 1), (1, 1), (1, 1)]
    """
    from qforge.sim.model.numerics import Selection

    if precision.a.paired is not None:
        # A slot (a pair of MACs) is n A-block slots x Lb: paired_slot_cycles.
        return config.blocks * precision.b.kept
    if config.pe == "fused":
        # Two lanes carry a MAC whose operands keep both blocks; one-block pairs go one
        # per lane, two to a lane pair's multiplier (hdl/pe.py: _fused_sum).
        return 1 if precision.block_products == 1 else 2
    if config.pe != "shared_shift":
        return precision.block_products

    def issued(operand) -> int:
        return operand.blocks if operand.selection == Selection.DYNAMIC else operand.kept

    return issued(precision.a) * issued(precision.b)


def mode_tile_cycles(config: Config, depth: int, precision) -> int:
    """Cycles one output tile of a ``depth``-deep dot product takes on ``config``'s dense
    array in ``precision``: :func:`tile_cycles` of :func:`issued_block_products`, in
    whole words for ``pe = "shared_shift"``. The one call for a precision mode's rate
    (MACs per cycle per PE = ``depth / mode_tile_cycles``).

    >>> from qforge.sim.model.numerics import standard_modes
    >>> from qforge.sim.model.spec import from_dict, load_preset
    >>> default = load_preset("default")
    >>> spec = default.to_dict()
    >>> spec["arithmetic"]["pe"] = "shared_shift"
    >>> dynamic = standard_modes(default)["approx_dynamic"]     # La = Lb = 2 of n = 4
    >>> mode_tile_cycles(default, 2048, dynamic), mode_tile_cycles(from_dict(spec), 2048, dynamic)
    (2048, 8192)
    """
    if precision.a.paired is not None:
        return paired_tile_cycles(config, depth, precision)
    return tile_cycles(depth, issued_block_products(config, precision),
                       config.block_multipliers, whole_words=config.pe == "shared_shift")


def paired_tile_cycles(config: Config, depth: int, precision) -> int:
    """Cycles of one output tile in the paired mode (A's ``paired`` set): the
    ``ceil(depth / 2)`` pairs each take one slot of ``n x Lb`` block products
    (:func:`qforge.sim.model.paired.slot_block_products` with B's ``Lb``), packed densely
    into the P lanes like one exact MAC each: ``ceil(ceil(depth / 2) * n * Lb / P)``,
    whatever the data (the windows of two non-zero A operands never need more than
    ``n`` A blocks). So a paired tile of depth D computes for the cycles of an exact
    one of depth ``ceil(D / 2)``; loading still moves all D operands.

    >>> from qforge.sim.model.numerics import OperandPrecision, Precision
    >>> from qforge.sim.model.paired import PairedPrecision
    >>> from qforge.sim.model.spec import load_preset
    >>> paired = load_preset("paired")                   # n = 4, P = 4
    >>> mode = Precision(OperandPrecision(4, 4, paired=PairedPrecision(2, 2)),
    ...                  OperandPrecision(4, 4))
    >>> paired_tile_cycles(paired, 128, mode), mode_tile_cycles(paired, 128, mode)
    (256, 256)
    >>> mode_tile_cycles(paired, 128, Precision(OperandPrecision(4, 4), OperandPrecision(4, 4)))
    512
    """
    return tile_cycles(tiles(depth, 2), issued_block_products(config, precision),
                       config.block_multipliers)


def row_cycles(a, config: Config, precision, skip_zeros: bool) -> tuple[int, ...]:
    """Cycles each A row's tile takes on the zero-skipping array (one entry per row of
    A zero-padded to whole row tiles, ``ceil(M / R) * R`` in all).

    Dense (``skip_zeros`` False): every row takes :func:`tile_cycles`. Skipping: a row
    is a list of *entries*, one per buffer word holding at least one operand that is not
    zero (:func:`qforge.sim.model.numerics.zero_operands`); an entry with ``n`` such operands
    takes ``ceil(n * q / P)`` cycles (its ``n * q`` block products packed into the P
    lanes; lanes of one cycle never mix words, since each PE reads one B word per
    cycle). A row without entries still takes one cycle (it must start and finish its
    tile).

    >>> from qforge.sim.model.spec import load_preset
    >>> from qforge.sim.model.numerics import Precision, OperandPrecision
    >>> cfg = load_preset("default")            # R = 8, P = 4
    >>> exact = Precision(OperandPrecision(4, 4), OperandPrecision(4, 4))   # q = 16
    >>> a = np.zeros((2, 8), dtype=np.int64)
    >>> a[0, [0, 1, 5]] = 7                    # word 0: 2 operands, word 1: 1 operand
    >>> row_cycles(a, cfg, exact, True)         # 8 + 4 cycles, then 7 rows of 1
    (12, 1, 1, 1, 1, 1, 1, 1)
    >>> row_cycles(a, cfg, exact, False)[:2]    # dense: 8 * 16 / 4 cycles per row
    (32, 32)
    >>> one_block = Precision(OperandPrecision(4, 1), OperandPrecision(4, 1))  # q = 1
    >>> row_cycles(a, cfg, one_block, True)[0]  # one cycle per non-empty word
    2
    """
    from qforge.sim.model.numerics import zero_operands
    a = np.asarray(a, dtype=np.int64)
    lanes, q = config.block_multipliers, issued_block_products(config, precision)
    m, depth = a.shape
    padded_rows = tiles(m, config.rows) * config.rows
    if not skip_zeros:
        return (tile_cycles(depth, q, lanes),) * padded_rows
    words = tiles(depth, lanes)
    computed = np.zeros((padded_rows, words * lanes), dtype=bool)
    computed[:m, :depth] = ~zero_operands(a, config, precision.a)
    per_word = computed.reshape(padded_rows, words, lanes).sum(axis=2)
    cycles = tiles(per_word * q, lanes).sum(axis=1)
    return tuple(int(c) for c in np.maximum(cycles, 1))


@dataclass(frozen=True)
class GemmShape:
    """One command: an ``m x depth`` by ``depth x n`` GEMM with ``q`` products issued per
    MAC (:func:`issued_block_products`: ``La x Lb`` unless ``pe = "shared_shift"`` or
    ``"fused"``); :func:`gemm_shape` makes one from a precision mode.

    ``row_cycles`` (zero-skipping configurations only): each padded A row's tile
    cycles, from :func:`row_cycles` (see :func:`skipping_shape`); ``None`` means dense.
    ``paired``: the paired mode, whose ``block_products`` are per slot (a pair of MACs:
    :func:`paired_tile_cycles`), over :attr:`slots` of them.
    """

    m: int
    n: int
    depth: int
    block_products: int
    row_cycles: tuple[int, ...] | None = None
    paired: bool = False

    @property
    def slots(self) -> int:
        """What a tile's lanes walk: ``depth`` MACs, or ``ceil(depth / 2)`` pairs."""
        return tiles(self.depth, 2) if self.paired else self.depth


def gemm_shape(config: Config, m: int, n: int, depth: int, precision,
               row_cycles: tuple[int, ...] | None = None) -> GemmShape:
    """The :class:`GemmShape` of an ``m x depth`` by ``depth x n`` GEMM in ``precision``
    (a :class:`qforge.sim.model.numerics.Precision`) on ``config``'s PEs: its
    ``block_products`` are those the PEs issue per MAC (:func:`issued_block_products`),
    not the mode's ``q = La * Lb``, so its cycles and ideal are the design's. The one way
    to make a shape from a precision mode; ``row_cycles`` as in :class:`GemmShape`.

    >>> from qforge.sim.model.numerics import standard_modes
    >>> from qforge.sim.model.spec import from_dict, load_preset
    >>> default = load_preset("default")                        # P = 4, n = 4 blocks
    >>> spec = default.to_dict()
    >>> spec["arithmetic"]["pe"] = "shared_shift"
    >>> shared, dynamic = from_dict(spec), standard_modes(default)["approx_dynamic"]
    >>> dynamic.block_products                                  # La = Lb = 2
    4
    >>> gemm_shape(default, 8, 8, 64, dynamic).block_products   # La x Lb
    4
    >>> gemm_shape(shared, 8, 8, 64, dynamic).block_products    # n x n: all blocks walked
    16
    >>> [gemm_cycles(config, [gemm_shape(config, 8, 8, 64, dynamic)]).ideal
    ...  for config in (default, shared)]                       # 8*8*64*q / (8*8*4)
    [64.0, 256.0]
    """
    return GemmShape(m, n, depth, issued_block_products(config, precision), row_cycles,
                     paired=precision.a.paired is not None)


def skipping_shape(config: Config, a, n: int, precision, skip_zeros: bool) -> GemmShape:
    """The :class:`GemmShape` of a GEMM with A operands ``a`` on a zero-skipping array
    (:func:`gemm_shape` with the rows' :func:`row_cycles`)."""
    a = np.asarray(a)
    return gemm_shape(config, a.shape[0], n, a.shape[1], precision,
                      row_cycles(a, config, precision, skip_zeros))


@dataclass(frozen=True)
class CycleReport:
    """Cycle counts of a command sequence with inputs always valid, results always ready.

    ``total``: from the cycle the first command is taken on ``cmd`` to the cycle the last
    result beat is accepted, inclusive. ``ideal``: the MACs of the unpadded GEMMs divided by the
    array's peak, ``sum(m * n * depth * q) / (R * C * P)``, q the products issued per MAC
    (:attr:`GemmShape.block_products`; in the paired mode per slot, over
    ``ceil(depth / 2)`` slots).
    """

    total: int
    ideal: float
    macs: int

    @property
    def utilization(self) -> float:
        return self.ideal / self.total


def gemm_cycles(config: Config, commands: Sequence[GemmShape]) -> CycleReport:
    """Predict the RTL's cycle count for a sequence of GEMM commands.

    Mirrors the control of :class:`qforge.hdl.top.Accelerator` event by event (never
    element by element):

    * the loader takes a command into its slot when the slot is empty, and starts it
      :data:`CHECK_LATENCY` cycles later at the earliest, when it is not loading and its
      buffer half is free (the slot empties as it starts); loading takes one A beat
      and one B beat per cycle (``m_tiles * words`` and ``n_tiles * words`` beats), and
      offers the job from the cycle after both finish;
    * the scheduler takes a job when idle and issues from the next cycle; a tile takes
      :func:`tile_cycles` cycles, and its last cycle waits until the previous tile's
      results have drained;
    * results of a tile whose last cycle issued at ``t`` are captured by the last PE at
      ``t + FEED_LATENCY + (R - 1) + (C - 1) + PE_LATENCY`` and drain one row per cycle
      from the next cycle; the result registers are free again after the R-th row;
    * rows leave the drain through a skid buffer (:class:`qforge.hdl.skid.SkidBuffer`)
      into the output stage, which takes a row every
      :attr:`~qforge.sim.model.spec.Config.output_cycles_per_beat` cycles (``S``: 1 unless an
      ``[output_stage]`` section makes it round fewer than C elements per cycle) and
      puts it on the ``result`` port ``OUTPUT_LATENCY`` cycles after taking it. So rows
      are taken ``S`` cycles apart; the drain is free again once its last row has gone
      to the skid buffer, ``(R - 1) * S + 1`` cycles after draining starts (``R``
      cycles when ``S = 1``). The stage never stalls the drain otherwise when results
      are always taken.

    On the zero-skipping array (:attr:`Config.zero_skipping`) tiles are one A row by a
    column group (``for row: for group:``), each taking its row's entry in
    ``shape.row_cycles`` (dense when ``None``), captured ``FEED_LATENCY + PE_LATENCY``
    cycles after its last issue (no skew) and draining one beat per column tile of the
    group (docs/ARCHITECTURE.md, "Zero skipping").

    >>> from qforge.sim.model.spec import load_preset
    >>> cfg = load_preset("default")
    >>> report = gemm_cycles(cfg, [GemmShape(128, 128, 128, 16)])  # exact mode, q = 16

    By hand: take and check (2) + start (1) + 512 A/B beats + hand-off (1) + 256 tiles of
    128 * 16 / 4 = 512 cycles + capture latency 2 + 7 + 7 + 3 = 19 + 8 drained rows + 6
    output stage cycles:

    >>> report.total == 2 + 1 + 512 + 1 + 256 * 512 + 19 + 8 + 6
    True
    >>> report.ideal
    131072.0
    """
    timeline = Timeline(config)
    for shape in commands:
        timeline.command(shape)
    return timeline.report()


class Timeline:
    """The event-by-event control model behind :func:`gemm_cycles`, one command at a
    time: :meth:`command` places a command that can be taken on ``cmd`` no earlier
    than ``arrival`` and whose operand beats are offered from ``data_ready`` on, and
    returns the cycles it was taken and its last result beat left the accelerator.
    Cycle 0 is the first command's earliest transfer."""

    def __init__(self, config: Config):
        self.config = config
        rows, cols = config.rows, config.cols
        if config.zero_skipping:
            # All PEs see the same cycle's lanes: no skew.
            self.capture_delay = FEED_LATENCY + pe_latency(config)
        else:
            self.capture_delay = FEED_LATENCY + (rows - 1) + (cols - 1) + pe_latency(config)
        self.half_free_at = [0, 0]   # first cycle the loader may start filling each half
        self.fill_half = 0
        self.loader_idle_at = 0      # first cycle the loader can start a command
        self.slot_free_at = 0        # cycle the next command can be taken into the slot
        self.scheduler_idle_at = 0   # first cycle the scheduler can accept a job
        self.drain_free_at = 0       # first cycle the next tile's last cycle may issue
        self.first_transfer = None
        self.last_beat = 0
        self.ideal = 0.0
        self.macs = 0

    def command(self, shape: GemmShape, arrival: int = 0,
                data_ready: int = 0) -> tuple[int, int]:
        config = self.config
        rows, cols, lanes = config.rows, config.cols, config.block_multipliers
        beat_cycles = config.output_cycles_per_beat
        words = tiles(shape.depth, lanes)
        m_tiles, n_tiles = tiles(shape.m, rows), tiles(shape.n, cols)
        transfer = max(self.slot_free_at, arrival)
        if self.first_transfer is None:
            self.first_transfer = transfer
        start = max(self.loader_idle_at, self.half_free_at[self.fill_half],
                    transfer + CHECK_LATENCY)
        self.slot_free_at = start + 1
        # One A and one B beat per cycle, from when loading starts and the data mover
        # offers them.
        job_valid = max(start, data_ready - 1) + max(m_tiles * words, n_tiles * words) + 1
        handoff = max(job_valid, self.scheduler_idle_at)
        self.loader_idle_at = handoff + 1
        issue = handoff + 1
        last_beat = self.last_beat
        for cycles, drained_rows in _tiles(config, shape, m_tiles, n_tiles):
            last = max(issue + cycles - 1, self.drain_free_at)
            # The drain's last row leaves for the skid buffer (hdl/skid.py) as soon as
            # the output stage has taken the row before it: (rows - 1) * S cycles after
            # draining starts; the next tile's last cycle may issue the cycle after.
            self.drain_free_at = (last + self.capture_delay + 1
                                  + (drained_rows - 1) * beat_cycles + 1)
            last_beat = last + self.capture_delay + drained_rows * beat_cycles + OUTPUT_LATENCY
            issue = last + 1
        self.last_beat = last_beat
        final_issue = issue - 1
        self.scheduler_idle_at = final_issue + 1
        self.half_free_at[self.fill_half] = final_issue + 2
        self.fill_half ^= 1
        self.macs += shape.m * shape.n * shape.depth
        self.ideal += (shape.m * shape.n * shape.slots * shape.block_products
                       / (rows * cols * lanes))
        return transfer, last_beat

    def report(self) -> CycleReport:
        first = self.first_transfer or 0
        return CycleReport(total=self.last_beat - first + 1, ideal=self.ideal,
                           macs=self.macs)


def _tiles(config: Config, shape: GemmShape, m_tiles: int, n_tiles: int):
    """``(cycles, result rows drained)`` of every tile of a command, in issue order.

    Systolic array: ``m_tiles * n_tiles`` tiles of R x C, each R rows. Zero-skipping
    array: for each padded A row, ``ceil(n_tiles / R)`` column groups of up to R column
    tiles (``R * C`` columns, PE row r holding column tile ``g * R + r``); a group drains
    one row per column tile it holds.
    """
    rows, lanes = config.rows, config.block_multipliers
    if not config.zero_skipping:
        cycles = tile_cycles(shape.slots, shape.block_products, lanes,
                             whole_words=config.pe == "shared_shift")
        for _ in range(m_tiles * n_tiles):
            yield cycles, rows
        return
    per_row = shape.row_cycles
    if per_row is None:
        per_row = (tile_cycles(shape.depth, shape.block_products, lanes),) * (m_tiles * rows)
    if len(per_row) != m_tiles * rows:
        raise ValueError(f"row_cycles has {len(per_row)} entries; the command has "
                         f"{m_tiles * rows} padded A rows")
    groups = tiles(n_tiles, rows)
    for cycles in per_row:
        for group in range(groups):
            yield cycles, min(rows, n_tiles - group * rows)


#: Cycles the instruction decoder spends on a word (:class:`qforge.hdl.decoder.
#: InstructionDecoder`): taken into its register, decoded the next cycle; the next word
#: is taken the cycle after. A GEMM's command is offered the cycle after its decode.
DECODE_CYCLES = 2
#: Cycles the addend stage adds to every result beat (:class:`qforge.hdl.addend.
#: AddendStage`: one register).
ADDEND_LATENCY = 1


@dataclass(frozen=True)
class ProgramReport:
    """Predicted cycles of a program on the programmable accelerator
    (:class:`qforge.hdl.core.Core`), from the cycle its first word is taken to the first
    cycle the core is idle again; ``gemms``, ``ideal`` and ``macs`` as in
    :class:`CycleReport`."""

    total: int
    gemms: int
    ideal: float
    macs: int


def program_cycles(config: Config, words, memory=None) -> ProgramReport:
    """Predict the cycles of a program on :class:`qforge.hdl.core.Core` fed by the data
    mover (:class:`qforge.sim.host.datamover.DataMover`, every port always valid or ready).

    The decoder takes a word every :data:`DECODE_CYCLES` cycles; a GEMM's command is
    offered to the loader the cycle after its decode and the decoder waits until the
    loader takes it; a ``FENCE`` waits until the core is idle. The accelerator is the
    :class:`Timeline` of :func:`gemm_cycles`, with each command's arrival and the cycle
    its operand beats are first offered: at once, unless it reads memory an earlier
    GEMM writes, in which case the data mover offers them the cycle after that GEMM's
    last result beat (and GEMMs are staged in order). Results pass the addend stage
    (:data:`ADDEND_LATENCY`). ``memory`` (the program's initial memory) is needed only
    for zero skipping, whose timing depends on the A operands.

    >>> from qforge.sim.model.spec import load_preset
    >>> from qforge.sim.model.isa import Opcode, encode
    >>> cfg = load_preset("default")
    >>> gemm = encode(Opcode.GEMM, m=128, n=128, k=128)
    >>> program_cycles(cfg, [gemm]).total - gemm_cycles(cfg, [GemmShape(128, 128, 128, 16)]).total
    3

    (The command is offered 2 cycles after the word is taken, the addend stage adds 1
    cycle, and the count ends with the first idle cycle, the one after the last beat,
    where :func:`gemm_cycles` ends with that beat: 2 + 1 + 1 - 1.)
    """
    from qforge.sim.model.isa import Opcode, decode
    from qforge.sim.model.machine import Machine, overlaps, span

    # Zero-skipping timing depends on the A operands: execute the program for them.
    compute = config.zero_skipping and memory is not None
    machine = Machine(config, memory=np.asarray(memory, dtype=np.int64).copy()
                      if compute else None, compute=compute, keep_traces=compute)
    timeline = Timeline(config)
    take = 0                   # cycle the next word can be taken
    idle_at = 0                # first cycle everything issued so far is done
    data_ready = 0             # GEMMs are staged in order
    writes: list[tuple[tuple[int, int], int]] = []   # (span, last result beat + 1)
    gemms = 0
    for word in words:
        invalid_before = machine.invalid
        plan = machine.step(word)              # applies instruction_error's rules
        if plan is None:
            if machine.invalid == invalid_before and decode(word)[0] == Opcode.FENCE:
                take = max(take + 1, idle_at) + 1
            else:
                take += DECODE_CYCLES
            continue
        precision = plan.precision
        if compute:
            shape = skipping_shape(config, machine.traces[-1].a, plan.n, precision,
                                   plan.skip_zeros)
        else:
            shape = gemm_shape(config, plan.m, plan.n, plan.k, precision)
        reads = [span(*read) for read in plan.reads()]
        for written, ready in writes:
            if any(overlaps(read, written) for read in reads):
                data_ready = max(data_ready, ready)
        transfer, last_beat = timeline.command(shape, take + DECODE_CYCLES, data_ready)
        done = last_beat + ADDEND_LATENCY + 1
        writes.append((span(*plan.writes()), done))
        idle_at = max(idle_at, done)
        take = transfer + 1
        gemms += 1
    return ProgramReport(max(take, idle_at), gemms, timeline.ideal, timeline.macs)
