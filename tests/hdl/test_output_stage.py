"""The output stage alone in the Amaranth simulator, against the golden model.

Every result beat must equal :func:`qforge.sim.model.quantize.output_stage` applied to the
GEMM's (tile-padded) accumulator matrix, i.e. with element coordinates = the result's
global (row, col), whatever the array shape; raw GEMMs (``quantize = 0``) pass the
accumulators through. GEMMs of different settings follow each other back to back under
random stalls on both streams, so a parameter switch at the wrong beat shows up as a
mismatch. A timing test checks the claim of the docstring: at the earliest cycles the
drain can deliver a GEMM's first beat, the stage is ready (it never stalls the array).
"""

import itertools
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.hdl.layouts import output_layout, result_layout
from qforge.hdl.output_stage import OutputStage, output_parameters_layout
from qforge.sim.model.cycles import OUTPUT_LATENCY
from qforge.sim.host.packing import leaf_fields, unpack_fields
from qforge.sim.model.spec import from_dict
from qforge.sim.model.quantize import (OutputParameters, Rounding, output_operands, output_stage,
                                 vrq_exponent)
from tests.configs import custom, tiny
from tests.hdl.streams import receive, send

#: tiny: 2 x 2, A = 25, shift field 5 bits. r3c5: rows and columns not powers of two.
#: wide: 16-bit operands, A = 38, shift field 6 bits (shifts above 32), O = 12.
#: r1c1: the smallest array, where a GEMM's first beat comes soonest after its job.
#: vrq: a 2 x 3 array with VRQ operands (N = 4, S = 2, G = 4): VRQ output words too.
STAGE_CONFIGS = {
    "vrq": lambda: from_dict({
        "name": "vrq", "array": {"rows": 2, "cols": 3},
        "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                       "max_reduction_depth": 32, "output_width": 8},
        "buffers": {"depth": 16},
        "vrq": {"code_width": 4, "range_stride": 2, "ranges": 4}}),
    "tiny": tiny,
    "r3c5": lambda: custom("r3c5", rows=3, cols=5),
    "wide": lambda: custom("wide", rows=1, cols=2, operand_width=16, block_width=4,
                           block_multipliers=2, buffer_depth=32, max_reduction_depth=64,
                           output_width=12),
    "r1c1": lambda: custom("r1c1", rows=1, cols=1),
    # Narrow stages ([output_stage] lanes_per_cycle): S = C / lanes sub-beats per beat.
    # tiny itself has lanes_per_cycle = 1 (S = 2); tiny_full is it at full rate.
    "tiny_full": lambda: from_dict({k: v for k, v in tiny().to_dict().items()
                                    if k != "output_stage"} | {"name": "tiny_full"}),
    "r2c6_lanes2": lambda: from_dict(custom("r2c6", rows=2, cols=6).to_dict()
                                     | {"output_stage": {"lanes_per_cycle": 2}}),
    "vrq_lanes1": lambda: from_dict({
        "name": "vrq_lanes1", "array": {"rows": 2, "cols": 3},
        "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                       "max_reduction_depth": 32, "output_width": 8},
        "buffers": {"depth": 16},
        "vrq": {"code_width": 4, "range_stride": 2, "ranges": 4},
        "output_stage": {"lanes_per_cycle": 1}}),
}

#: A raw GEMM: ``quantize = 0`` (the other fields are random and must be ignored).
RAW = None


def max_shift(config):
    return (1 << output_layout(config).members["shift"].width) - 1


def parameters_bits(config, parameters, n_tiles, rng):
    """The ``params`` beat of a GEMM; ``parameters`` None = raw, or an
    :class:`OutputParameters`, or ``(OutputParameters, rounding_code)`` to force a code."""
    code = None
    if isinstance(parameters, tuple):
        parameters, code = parameters
    if parameters is None:
        fields = {"quantize": 0, "shift": int(rng.integers(0, max_shift(config) + 1)),
                  "rounding": int(rng.integers(0, 4)), "relu": int(rng.integers(0, 2)),
                  "seed": int(rng.integers(0, 1 << 32)),
                  "tensor": int(rng.integers(0, 1 << 16)), "vrq": int(rng.integers(0, 2)),
                  "exponent": int(rng.integers(0, max_shift(config) + 1)),
                  "wide": int(rng.integers(0, 2))}
    else:
        vrq = parameters.vrq_exponent is not None
        fields = {"quantize": 1, "shift": parameters.shift,
                  "rounding": int(parameters.rounding) if code is None else code,
                  "relu": int(parameters.relu), "seed": parameters.seed,
                  "tensor": parameters.tensor, "vrq": int(vrq),
                  "exponent": parameters.vrq_exponent if vrq else 0,
                  "wide": int(parameters.wide)}
    return output_parameters_layout(config).const(
        {"output": fields, "n_tiles_minus_one": n_tiles - 1}).as_bits()


def expected_matrix(config, accumulators, parameters):
    if parameters is None:
        return accumulators
    if isinstance(parameters, tuple):        # rounding code 3: documented as truncation
        parameters = OutputParameters(parameters[0].shift, Rounding.TRUNCATE,
                                      parameters[0].relu, parameters[0].seed,
                                      parameters[0].tensor)
    return output_operands(accumulators, config, parameters)


def gemm_beats(config, matrix):
    """Beats in the drain's order: for mt: for nt: for r; ``last`` on the final one."""
    rows, cols = config.rows, config.cols
    layout = result_layout(config)
    m_tiles, n_tiles = matrix.shape[0] // rows, matrix.shape[1] // cols
    beats = []
    for mt in range(m_tiles):
        for nt in range(n_tiles):
            for r in range(rows):
                values = matrix[mt * rows + r, nt * cols:(nt + 1) * cols]
                last = mt == m_tiles - 1 and nt == n_tiles - 1 and r == rows - 1
                beats.append(layout.const({"row": [int(v) for v in values],
                                           "last": int(last)}).as_bits())
    return beats


def random_accumulators(rng, config, shape, shift):
    """A mix of full-range values, values near multiples of ``2**shift`` (ties and
    near-ties for rounding) and the extremes of the accumulator."""
    width = config.accumulator_width
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    full = rng.integers(low, high + 1, shape, dtype=np.int64)
    unit = 1 << min(shift, width - 2)
    near = (rng.integers(-300, 300, shape) * unit
            + rng.choice([0, unit // 2, -(unit // 2), 1, -1, unit - 1], shape))
    near = np.clip(near, low, high)
    small = rng.integers(-4 * unit, 4 * unit + 1, shape)
    extremes = rng.choice([low, high, 0, 1, -1, low + 1, high - 1], shape)
    pick = rng.integers(0, 4, shape)
    return np.clip(np.choose(pick, [full, near, small, extremes]), low, high).astype(np.int64)


def random_gemm(rng, config, parameters, max_tiles=3):
    shift = 0
    if isinstance(parameters, tuple):
        shift = parameters[0].shift
    elif parameters is not None:
        shift = parameters.shift
    m_tiles, n_tiles = (int(rng.integers(1, max_tiles + 1)) for _ in range(2))
    matrix = random_accumulators(rng, config, (m_tiles * config.rows, n_tiles * config.cols),
                                 shift)
    return matrix, parameters


def simulate(config, gemms, *, in_stall=0.0, out_stall=0.0, seed=0):
    """Run ``gemms`` [(accumulators, parameters)] through an :class:`OutputStage` and
    return the received beats (element lists and ``last`` flags), one list per GEMM."""
    dut = OutputStage(config)
    rng = np.random.default_rng(seed)
    stream_rng = random.Random(seed)
    params = [parameters_bits(config, parameters, matrix.shape[1] // config.cols, rng)
              for matrix, parameters in gemms]
    beats = [gemm_beats(config, matrix) for matrix, _ in gemms]
    received = []

    async def send_params(ctx):
        await send(ctx, dut.params, params, stall=in_stall,
                   rng=random.Random(stream_rng.random()))

    async def send_beats(ctx):
        await send(ctx, dut.accumulators, [b for gemm in beats for b in gemm],
                   stall=in_stall, rng=random.Random(stream_rng.random()))

    async def collect(ctx):
        sink_rng = random.Random(stream_rng.random())
        for gemm in beats:
            received.append(await receive(ctx, dut.result, len(gemm), stall=out_stall,
                                          rng=sink_rng))
        # Nothing more comes out, and the stage is idle.
        for _ in range(8):
            _, _, valid, idle = await ctx.tick().sample(dut.result.valid, dut.idle)
            assert not valid and idle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send_params)
    sim.add_testbench(send_beats)
    sim.add_testbench(collect)
    sim.run()
    fields = leaf_fields(result_layout(config))
    return [[unpack_fields(fields, bits) for bits in gemm] for gemm in received]


def check(config, gemms, received):
    rows, cols = config.rows, config.cols
    assert len(received) == len(gemms)
    for index, ((matrix, parameters), beats) in enumerate(zip(gemms, received)):
        expected = expected_matrix(config, matrix, parameters)
        want = gemm_beats(config, expected)
        fields = leaf_fields(result_layout(config))
        want = [unpack_fields(fields, bits) for bits in want]
        for beat, (got, exp) in enumerate(zip(beats, want)):
            n_tiles = matrix.shape[1] // cols
            tile, r = divmod(beat, rows)
            where = (f"GEMM {index} ({parameters}), tile (mt, nt) = "
                     f"{divmod(tile, n_tiles)}, row {r}")
            assert got[-1] == exp[-1], f"{where}: last = {got[-1]}"
            assert got[:-1] == exp[:-1], \
                f"{where}: got {got[:-1]}, expected {exp[:-1]}; accumulators " \
                f"{matrix[tile // n_tiles * rows + r, tile % n_tiles * cols:][:cols]}"
        assert len(beats) == len(want)


def settings_sweep(config, rng):
    """Every rounding with and without ReLU (saturated or ``wide``) at shifts 0, 1, small, the top of the
    accumulator, beyond it up to the field's maximum, above 32 where the field allows;
    raw GEMMs and the undefined rounding code 3 in between. (Shift 63, possible with a
    6-bit field, is left out: the golden model's int64 ``values + r`` can overflow there.)"""
    width = config.accumulator_width
    top = max_shift(config)
    shifts = sorted({0, 1, 2, 3, int(rng.integers(4, 12)), width - config.output_width,
                     width - 2, width - 1, min(width, top), top - 1, min(33, top),
                     min(40, top), min(top, 62)})
    out = []
    for shift in shifts:
        for rounding in Rounding:
            relu = bool(rng.integers(0, 2))
            out.append(OutputParameters(shift, rounding, relu,
                                        int(rng.integers(0, 1 << 32)),
                                        int(rng.integers(0, 1 << 16)),
                                        wide=bool(rng.integers(0, 2))))
    out.insert(3, RAW)
    out.insert(len(out) // 2, RAW)
    out.append((OutputParameters(5, Rounding.TRUNCATE, False), 3))
    out.append(RAW)
    return out


@pytest.mark.parametrize("name", sorted(STAGE_CONFIGS))
def test_every_setting_back_to_back_with_stalls(name):
    config = STAGE_CONFIGS[name]()
    rng = np.random.default_rng(sum(map(ord, name)))
    gemms = [random_gemm(rng, config, parameters, max_tiles=2)
             for parameters in settings_sweep(config, rng)]
    received = simulate(config, gemms, in_stall=0.3, out_stall=0.3, seed=1)
    check(config, gemms, received)


@pytest.mark.parametrize("name", ["tiny", "r3c5"])
@pytest.mark.parametrize("stalls", [(0.0, 0.0), (0.0, 0.8), (0.5, 0.5)])
def test_stochastic_multi_tile_gemms(name, stalls):
    """Stochastic rounding on GEMMs of many tiles (coordinates across tiles: a wrong row
    or column counter changes the random bits and so the results). With the result
    stream stalled 80% of cycles the pipeline is full at every GEMM boundary, so the
    next GEMM's parameters and round keys load while the previous GEMM's last beats
    are still inside: they must not be used for them."""
    config = STAGE_CONFIGS[name]()
    rng = np.random.default_rng(7)
    gemms = []
    for index in range(6):
        parameters = OutputParameters(int(rng.integers(1, 12)), Rounding.STOCHASTIC,
                                      index % 2 == 1, int(rng.integers(0, 1 << 32)),
                                      index)
        matrix, _ = random_gemm(rng, config, parameters, max_tiles=4)
        gemms.append((matrix, parameters))
    received = simulate(config, gemms, in_stall=stalls[0], out_stall=stalls[1], seed=3)
    check(config, gemms, received)


@pytest.mark.parametrize("name", ["tiny", "r1c1"])
def test_alternating_settings_under_heavy_backpressure(name):
    """Short GEMMs alternating raw and quantized output, different shifts, roundings and
    ReLU, with the result stream stalled 85% of cycles: beats of two GEMMs are in the
    pipeline together and each must keep its own GEMM's settings."""
    config = STAGE_CONFIGS[name]()
    rng = np.random.default_rng(11)
    gemms = []
    for index in range(16):
        if index % 2:
            parameters = RAW
        else:
            parameters = OutputParameters(int(rng.integers(0, 10)),
                                          Rounding(index // 2 % 3), bool(index % 4),
                                          int(rng.integers(0, 1 << 32)), index)
        gemms.append(random_gemm(rng, config, parameters, max_tiles=1))
    received = simulate(config, gemms, in_stall=0.0, out_stall=0.85, seed=4)
    check(config, gemms, received)


def test_same_accumulators_different_seed_tensor_or_coordinates_differ():
    """Sanity of the check itself: the stochastic outputs depend on the seed, the tensor
    and the coordinates (so the tests above can see a wrong key or counter)."""
    config = tiny()
    matrix = np.full((4, 4), 1000, dtype=np.int64)
    base = OutputParameters(6, Rounding.STOCHASTIC, False, 1, 2)
    outputs = [output_stage(matrix, 8, p) for p in
               (base, OutputParameters(6, Rounding.STOCHASTIC, False, 3, 2),
                OutputParameters(6, Rounding.STOCHASTIC, False, 1, 3))]
    assert not np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])
    assert len(np.unique(outputs[0])) == 2                    # 1000 / 64 = 15.625
    received = simulate(config, [(matrix, base)])
    check(config, [(matrix, base)], received)


@pytest.mark.parametrize("name", ["vrq", "vrq_lanes1"])
def test_vrq_output_words(name):
    """VRQ configurations: with ``output.vrq`` the stage emits VRQ operand words of the
    ReLU'd accumulators (:func:`qforge.sim.model.quantize.output_operands`, through
    :class:`~qforge.hdl.vrq_encoder.VrqEncoder`) with the GEMM's E and rounding (its
    random bits at the element's coordinates), between integer and raw GEMMs."""
    config = STAGE_CONFIGS[name]()
    rng = np.random.default_rng(13)
    gemms = []
    for index, (rounding, relu) in enumerate(itertools.product(Rounding, (False, True))):
        matrix, _ = random_gemm(rng, config, RAW, max_tiles=3)
        matrix >>= int(rng.integers(0, config.accumulator_width - 4))
        true_e = vrq_exponent(np.maximum(matrix, 0) if relu else matrix) or 0
        # E of the tensor, or below it (range-0 saturation), or above (underflow).
        exponent = [true_e, max(true_e - 2, 0), true_e + 3][index % 3]
        gemms.append((matrix, OutputParameters(0, rounding, relu,
                                               int(rng.integers(0, 1 << 32)), index,
                                               vrq_exponent=exponent)))
        if index % 2:
            gemms.append(random_gemm(rng, config, RAW if index % 4 == 1 else
                                     OutputParameters(4, rounding, relu, 5, 6), 2))
    received = simulate(config, gemms, in_stall=0.3, out_stall=0.5, seed=2)
    check(config, gemms, received)


@pytest.mark.parametrize("name", ["r1c1", "tiny_full", "tiny", "r2c6_lanes2"])
def test_ready_at_the_earliest_first_beat(name):
    """The drain can offer a GEMM's first beat ``R + C + 5`` cycles after the job
    hand-off that pushed its parameters, and ``R + C + 5`` cycles after the previous
    GEMM's last beat; the stage must take it (its last sub-beat) ``S - 1`` cycles later
    and each further beat ``S`` cycles after the one before, ``S`` =
    ``output_cycles_per_beat`` (else the cycle model would be wrong). The results are
    also checked and come out ``OUTPUT_LATENCY`` cycles after their beats were taken."""
    config = STAGE_CONFIGS[name]()
    beat_cycles = config.output_cycles_per_beat
    rng = np.random.default_rng(5)
    gap = config.rows + config.cols + 5
    gemms = [random_gemm(rng, config, p, max_tiles=2) for p in
             (OutputParameters(3, Rounding.STOCHASTIC, True, 9, 1), RAW,
              OutputParameters(2, Rounding.NEAREST_EVEN, False, 4, 2),
              OutputParameters(30, Rounding.STOCHASTIC, False, 7, 3))]
    params = [parameters_bits(config, p, m.shape[1] // config.cols, rng) for m, p in gemms]
    beats = [gemm_beats(config, m) for m, _ in gemms]
    dut = OutputStage(config)
    accepted, emitted = [], []

    async def drive(ctx):
        ctx.set(dut.result.ready, 1)
        cycle = 0
        for index, gemm in enumerate(beats):
            # The job hand-off (parameters pushed) at `cycle`; for every GEMM after the
            # first it happens while the previous GEMM still streams (earlier below).
            if index == 0:
                ctx.set(dut.params.payload.as_value(), params[0])
                ctx.set(dut.params.valid, 1)
                _, _, ready = await ctx.tick().sample(dut.params.ready)
                assert ready
                ctx.set(dut.params.valid, 0)
                cycle += 1
                await ctx.tick().repeat(gap - 1)
                cycle += gap - 1
            for number, beat in enumerate(gemm):
                ctx.set(dut.accumulators.payload.as_value(), beat)
                ctx.set(dut.accumulators.valid, 1)
                push_next = number == 0 and index + 1 < len(beats)
                if push_next:
                    ctx.set(dut.params.payload.as_value(), params[index + 1])
                    ctx.set(dut.params.valid, 1)
                for sub_beat in range(beat_cycles):
                    _, _, ready, params_ready = await ctx.tick().sample(
                        dut.accumulators.ready, dut.params.ready)
                    assert ready == (sub_beat == beat_cycles - 1), \
                        f"GEMM {index} beat {number} cycle {sub_beat}: ready = {ready}"
                    assert params_ready or not push_next or sub_beat
                    cycle += 1
                    ctx.set(dut.params.valid, 0)
                accepted.append(cycle - 1)
            ctx.set(dut.accumulators.valid, 0)
            await ctx.tick().repeat(gap - 1)
            cycle += gap - 1
        await ctx.tick().repeat(OUTPUT_LATENCY + 2)

    async def monitor(ctx):
        cycle = 0
        while True:
            _, _, valid, payload = await ctx.tick().sample(dut.result.valid,
                                                           dut.result.payload.as_value())
            if valid:
                emitted.append((cycle, payload))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert [c for c, _ in emitted] == [c + OUTPUT_LATENCY for c in accepted]
    fields = leaf_fields(result_layout(config))
    payloads = iter(unpack_fields(fields, bits) for _, bits in emitted)
    received = [[next(payloads) for _ in gemm] for gemm in beats]
    check(config, gemms, received)
