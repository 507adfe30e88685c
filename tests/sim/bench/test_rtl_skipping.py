"""Integration tests of the zero-skipping array (a ``[zero_skipping]`` section) on the
generated Verilog.

Every GEMM runs twice on the same hardware, with ``skip_zeros`` on and off; the
scoreboard checks every result beat (row-major on this array) against the golden model,
and the recorded result matrices of the two runs are compared with each other and with
:func:`qforge.sim.model.numerics.gemm` (or the golden output stage). Cycle counts of isolated
and back-to-back runs are compared with :func:`qforge.sim.model.cycles.gemm_cycles`, whose
per-row costs come from :func:`qforge.sim.model.cycles.row_cycles` (the zero rule of
:func:`qforge.sim.model.numerics.zero_operands`).

Designs (``tests/sim/conftest.py``): ``rect_vrq_skip`` (2x3, 2-bit blocks, P = 2, VRQ
operands) in the default tier; the slow tier (``make test-all``) repeats the
parametrized tests on ``tiny_skip`` (2x2, 4-bit blocks, P = 2), adds random
zero-skipping configurations (P = 1, 2, 4, 8) and checks the 8x8 ``sparse`` preset at
the benchmark's shape.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from amaranth.lib import data

from qforge.sim.model.spec import from_dict
from qforge.hdl.layouts import command_layout
from qforge.sim.model.cycles import gemm_cycles, skipping_shape
from qforge.sim.model.numerics import (OperandPrecision, Precision, Selection, gemm,
                                 standard_modes, vrq_pack, zero_operands)
from qforge.sim.host.packing import GemmJob, command_bits
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands
from qforge.sim.bench.rtl import build, run_scenario
from qforge.sim.bench.scenarios import Job, MODELS, Scenario
from qforge.sim.bench.stimulus import (named_or_random_modes, operand_range, random_operands,
                                 random_precision, sparse_operands)

from tests.configs import design_config

pytestmark = pytest.mark.rtl

ALL_PORTS = {"cmd": 0.3, "a_in": 0.4, "b_in": 0.4, "result": 0.4}
DENSITIES = (0.0, 0.01, 0.1, 0.5, 0.9, 1.0)
#: rect_vrq_skip (2x3, four 2-bit blocks, P = 2, VRQ) runs in the default tier;
#: tiny_skip (square 2x2, two 4-bit blocks) repeats every test under ``make test-all``,
#: which keeps one Verilator build out of the default test command.
DESIGNS = [pytest.param("tiny_skip", marks=pytest.mark.slow), "rect_vrq_skip"]


# ---- helpers ---------------------------------------------------------------------------

def on_and_off(a, b, mode, label, output=None) -> list[Job]:
    """The same GEMM twice: skipping off, then on."""
    return [Job(a, b, mode, f"{label}/dense", output, skip_zeros=False),
            Job(a, b, mode, f"{label}/skip", output, skip_zeros=True)]


def result_beats(config, jobs) -> int:
    return sum(-(-j.a.shape[0] // config.rows) * -(-j.b.shape[1] // config.cols)
               for j in jobs) * config.rows


def golden(config, job: Job) -> np.ndarray:
    expected = gemm(job.a, job.b, config, job.precision)
    return expected if job.output is None else output_operands(expected, config, job.output)


def check_clean(report, config, jobs) -> None:
    """Every beat matched the golden model, none lost or extra, no error, idle."""
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0, \
        report["errors"][:5]
    assert report["matched"] == result_beats(config, jobs)
    assert report["idle_at_end"] and not report["error_flag"]


def check_recorded(report, config, jobs) -> None:
    """The recorded result of every job is the golden one, and each skipping run's
    result is bit-identical to the dense run of the same GEMM just before it."""
    results = report["results"]
    assert len(results) == len(jobs)
    for index, job in enumerate(jobs):
        assert results[index] is not None, job.label
        assert np.array_equal(results[index], golden(config, job)), job.label
        if job.skip_zeros:
            twin = jobs[index - 1]
            assert not twin.skip_zeros and twin.a is job.a and twin.b is job.b
            assert np.array_equal(results[index], results[index - 1]), job.label


def shape_of(config, job: Job):
    return skipping_shape(config, job.a, job.b.shape[1], job.precision, job.skip_zeros)


def model_cycles(config, jobs) -> int:
    return gemm_cycles(config, [shape_of(config, job) for job in jobs]).total


def sparse_a(rng, config, mode, shape, density):
    """A operands of ``mode`` with a fraction ``density`` not zero (VRQ: code not zero,
    sign and range bits random everywhere, so skipped words are not all-zero words)."""
    if not mode.a.vrq:
        return sparse_operands(rng, shape, *operand_range(config, mode.a), density)
    return vrq_sparse(rng, config, shape, mode.a, density)


def vrq_sparse(rng, config, shape, operand, density):
    code_limit = 1 << min(operand.blocks * config.block_width, config.vrq_code_width)
    code = sparse_operands(rng, shape, 1, code_limit - 1, density)
    sign = rng.integers(0, 2, shape)
    group = rng.integers(0, config.vrq_ranges, shape)
    return vrq_pack(sign, code, group, config)


def any_b(rng, config, operand, shape, kind="uniform"):
    if operand.vrq:
        return vrq_sparse(rng, config, shape, operand, 0.8)
    return random_operands(rng, shape, *operand_range(config, operand), kind)


def extra_modes(config) -> list[Precision]:
    """Modes beside the standard ones: full A against one kept B block (q = B), and
    with B >= 3 blocks, q = 3 (no divisor of P = 2: an entry's block products straddle
    cycles)."""
    blocks = config.blocks
    modes = [Precision(OperandPrecision(blocks, blocks), OperandPrecision(blocks, 1,
                                                                          Selection.STATIC))]
    if blocks >= 3:
        modes.append(Precision(OperandPrecision(blocks, 3, Selection.DYNAMIC),
                               OperandPrecision(blocks, 1, Selection.DYNAMIC)))
        modes.append(Precision(OperandPrecision(3, 3), OperandPrecision(blocks, 1,
                                                                        Selection.STATIC)))
    return modes


def vrq_modes(config) -> list[Precision]:
    """VRQ A operands (every code-block count, kept and selection) against VRQ and
    integer B operands."""
    modes = []
    code_blocks = config.vrq_code_blocks
    for blocks in range(1, code_blocks + 1):
        for kept in range(1, blocks + 1):
            for selection in (Selection.STATIC, Selection.DYNAMIC) if kept < blocks \
                    else (Selection.STATIC,):
                operand = OperandPrecision(blocks, kept, selection, vrq=True)
                modes.append(Precision(operand, operand))
                modes.append(Precision(operand, OperandPrecision(config.blocks,
                                                                 config.blocks)))
    return modes


def fits(config, m, n, depth) -> bool:
    """Whether the loader accepts the command: ``m_tiles * words`` A words per bank and
    ``ceil(n_tiles / R) * words`` B words per PE bank."""
    words = -(-depth // config.block_multipliers)
    groups = -(-(-(-n // config.cols)) // config.rows)
    return (-(-m // config.rows) * words <= config.buffer_depth
            and groups * words <= config.pe_buffer_depth)


def random_sparse_shape(rng, config, max_depth=20):
    """``(m, n, depth)``: up to 2 row tiles plus one row, up to two column groups (the
    last often partial), depth often not a multiple of P."""
    m = int(rng.integers(1, 2 * config.rows + 2))
    n = int(rng.integers(1, (config.rows + 1) * config.cols + 1))
    depth = int(rng.integers(1, max_depth + 1))
    return m, n, depth


# ---- tests that need no simulator -------------------------------------------------------

def test_skip_zeros_needs_a_zero_skipping_configuration():
    """``skip_zeros`` is refused for the systolic array (no such command field), and on
    a zero-skipping array the field is set exactly when asked."""
    tiny = design_config("tiny")
    mode = standard_modes(tiny)["exact"]
    with pytest.raises(ValueError, match="zero_skipping"):
        command_bits(tiny, 2, 2, 4, mode, skip_zeros=True)
    with pytest.raises(ValueError, match="zero_skipping"):
        GemmJob.build(tiny, np.ones((2, 4), dtype=np.int64), np.ones((4, 2), dtype=np.int64),
                      mode, skip_zeros=True)
    assert "skip_zeros" not in command_layout(tiny).members
    skipping = design_config("tiny_skip")
    layout = command_layout(skipping)
    for skip in (False, True):
        bits = command_bits(skipping, 2, 2, 4, mode, skip_zeros=skip)
        assert data.Const(layout, bits).skip_zeros == int(skip)


def test_skip_drops_last_model_is_wrong():
    """The negative control's model differs from the golden one exactly in the rows
    that have an operand to compute (and the dropped product is not zero)."""
    config = design_config("tiny_skip")
    mode = standard_modes(config)["exact"]
    a = np.array([[0, 3, 0, 5], [0, 0, 0, 0], [7, 0, 0, 0]])
    b = np.ones((4, 2), dtype=np.int64)
    wrong = MODELS["skip_drops_last"](a, b, config, mode)
    assert wrong.tolist() == [[3, 3], [0, 0], [0, 0]]
    assert gemm(a, b, config, mode).tolist() == [[8, 8], [0, 0], [7, 7]]


# ---- cocotb integration tests ----------------------------------------------------------

@pytest.mark.parametrize("name", DESIGNS)
def test_random_densities_every_mode_skip_on_and_off(rtl, name):
    """A with 0, 1, 10, 50, 90 and 100 % non-zero operands, in every standard mode (and
    modes whose q does not divide P), each GEMM with skipping off and on, back to back
    under random stalls on all four ports: every beat equals the golden model and the
    skipping results are bit-identical to the dense ones."""
    built = rtl(name)
    config = built.config
    rng = np.random.default_rng(101)
    modes = [*standard_modes(config).items(),
             *((f"extra{i}", mode) for i, mode in enumerate(extra_modes(config)))]
    jobs = []
    for density, (label, mode) in itertools.product(DENSITIES, modes):
        m, n, depth = random_sparse_shape(rng, config, 16 if config.blocks > 2 else 24)
        a = sparse_a(rng, config, mode, (m, depth), density)
        b = any_b(rng, config, mode.b, (depth, n))
        jobs += on_and_off(a, b, mode, f"{label}/{density:.0%}")
    report = run_scenario(built, Scenario(jobs, seed=7, stalls=ALL_PORTS, record=True,
                                 timeout_cycles=5000), name="skip_densities")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)


def structured_jobs(config, rng) -> list[Job]:
    """Structured A (and B) patterns, each with skipping off and on, modes in turn."""
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    modes = list(standard_modes(config).values())
    m, n, depth = 2 * rows + 1, rows * cols + 1, 3 * lanes + 1   # none a multiple
    i, k = np.arange(m)[:, None], np.arange(depth)[None, :]
    masks = []                                  # (label, where A is not zero)

    def mask(where):
        return np.broadcast_to(where, (m, depth)).copy()

    where = mask(True)
    where[[0, 2, m - 1]] = False
    masks.append(("zero rows", where))
    where = mask(True)
    where[:, [0, 1, depth - 1]] = False         # first word (P = 2) and the last operand
    masks.append(("zero columns", where))
    where = mask(True)
    where[:, lanes:2 * lanes] = False           # one whole word of every row
    masks.append(("zero word", where))
    masks.append(("all zero", mask(False)))
    where = mask(False)
    where[np.arange(m), rng.integers(0, depth, m)] = True
    where[0], where[0, depth - 1] = False, True     # the last operand, alone in its word
    where[1], where[1, 0] = False, True             # the first operand
    masks.append(("one hot", where))
    masks.append(("checkerboard", mask((i + k) % 2 == 1)))
    masks.append(("word checkerboard", mask((i + k // lanes) % 2 == 1)))
    masks.append(("last lane only", mask(k % lanes == lanes - 1)))

    jobs = []
    for index, (label, where) in enumerate(masks):
        mode = modes[index % len(modes)]
        values = sparse_operands(rng, (m, depth), *operand_range(config, mode.a), 1.0)
        a = np.where(where, values, 0)
        jobs += on_and_off(a, any_b(rng, config, mode.b, (depth, n)), mode, label)
    # Zero rows and columns of B, with A half zero (and A non-zero only where B is zero).
    mode = standard_modes(config)["exact"]
    low, high = operand_range(config, mode.a)
    a = sparse_operands(rng, (m, depth), low, high, 0.5)
    b = sparse_operands(rng, (depth, n), low, high, 1.0)
    b[[1, 2, depth - 1]] = 0
    b[:, [0, n - 1]] = 0
    jobs += on_and_off(a, b, mode, "B zero rows and columns")
    a = np.zeros((m, depth), dtype=np.int64)
    a[:, [1, 2, depth - 1]] = sparse_operands(rng, (m, 3), low, high, 1.0)
    jobs += on_and_off(a, b, mode, "A only where B is zero")
    # Values whose kept blocks are all zero in a static mode (computed, not skipped),
    # values with only the top block set, and the extremes.
    static = standard_modes(config)["approx_static"]
    small = (1 << config.block_width) - 1
    a = rng.choice(np.array([0, 1, small, low, high, high - small], dtype=np.int64),
                   (m, depth))
    jobs += on_and_off(a, any_b(rng, config, static.b, (depth, n)), static, "low blocks")
    # Shapes: depth 1, 1 x 1 x 1, a row tile plus one row, a partial last column group,
    # exactly R column tiles, and one more than R groups' worth of columns.
    for index, (m, n, depth, density) in enumerate([
            (3, 5, 1, 0.5), (rows + 1, 2 * cols, 1, 0.0), (1, 1, 1, 1.0), (1, 1, 1, 0.0),
            (rows + 1, rows * cols + 1, 2 * lanes + 1, 0.3),
            (1, rows * cols, lanes, 0.5), (2, (2 * rows + 1) * cols, lanes + 1, 0.2)]):
        mode = modes[(index + 2) % len(modes)]
        a = sparse_a(rng, config, mode, (m, depth), density)
        jobs += on_and_off(a, any_b(rng, config, mode.b, (depth, n)), mode,
                           f"{m}x{n}x{depth}")
    # Two column groups of nearly half-depth dot products (one word short of a full
    # PE bank: see test_full_banks for the full one).
    jobs += deep_panel_jobs(config, rng, spare_words=1)
    return jobs


def deep_panel_jobs(config, rng, spare_words) -> list[Job]:
    """A GEMM of two column groups of ``pe_buffer_depth / 2 - spare_words`` words each
    (0: the largest panel a PE bank holds, which the systolic array's loader would
    reject: 2R column tiles of B words), A 5% dense with an operand in the last word;
    then a small GEMM (it must not see leftovers of the big one)."""
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    words = config.pe_buffer_depth // 2 - spare_words
    depth = words * lanes
    assert 2 * words + spare_words * 2 == config.pe_buffer_depth
    assert depth <= config.max_reduction_depth and 2 * rows * words > config.buffer_depth
    mode = standard_modes(config)["approx_dynamic_1"]
    a = sparse_a(rng, config, mode, (1, depth), 0.05)
    a[0, depth - 1] = 1                         # the last word index
    jobs = on_and_off(a, any_b(rng, config, mode.b, (depth, 2 * rows * cols)), mode,
                      f"B panel of 2 x {words} words")
    a = sparse_a(rng, config, mode, (3, 5), 0.5)
    return jobs + on_and_off(a, any_b(rng, config, mode.b, (5, 4)), mode, "small after")


def full_bank_jobs(config, rng) -> list[Job]:
    """GEMMs that fill the banks: the largest B panel a PE bank holds, the most A rows
    an A bank holds (many row tiles, a partial last column group), and both at once;
    then a small GEMM."""
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    mode = standard_modes(config)["approx_dynamic_1"]
    jobs = deep_panel_jobs(config, rng, spare_words=0)[:2]
    words = 8
    m = config.buffer_depth // words * rows
    a = sparse_a(rng, config, mode, (m, words * lanes), 0.1)
    jobs += on_and_off(a, any_b(rng, config, mode.b, (words * lanes, rows * cols + 1)),
                       mode, f"A bank of {m} rows x {words} words")
    words = config.pe_buffer_depth // 2
    m = config.buffer_depth // words * rows
    assert m >= rows and fits(config, m, 2 * rows * cols, words * lanes)
    a = sparse_a(rng, config, mode, (m, words * lanes), 0.05)
    jobs += on_and_off(a, any_b(rng, config, mode.b, (words * lanes, 2 * rows * cols)),
                       mode, f"both banks full: {m} rows, 2 groups of {words} words")
    a = sparse_a(rng, config, mode, (3, 5), 0.5)
    return jobs + on_and_off(a, any_b(rng, config, mode.b, (5, 4)), mode, "small after")


@pytest.mark.parametrize("name", DESIGNS)
def test_full_banks(rtl, name):
    """The largest valid B panel (``ceil(n_tiles / R) * words == pe_buffer_depth``:
    ``R * pe_buffer_depth`` B beats, more than the systolic array's loader allows), a
    full A bank of entries (up to 64 rows), and both at once, skipping on and off: under
    random stalls the results are golden and bit-identical and the next GEMM is
    unaffected; alone, the cycle counts equal the model's."""
    built = rtl(name)
    config = built.config
    jobs = full_bank_jobs(config, np.random.default_rng(808))
    assert all(fits(config, job.a.shape[0], job.b.shape[1], job.a.shape[1]) for job in jobs)
    report = run_scenario(built, Scenario(jobs, seed=5, stalls=ALL_PORTS, record=True,
                                 timeout_cycles=5000), name="skip_full_banks")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)
    isolated = run_scenario(built, Scenario(jobs, isolated=True, timeout_cycles=5000),
                   name="skip_full_banks_cycles")
    check_clean(isolated, config, jobs)
    for job, group in zip(jobs, isolated["jobs"]):
        assert group["cycles"] == model_cycles(config, [job]), job.label


@pytest.mark.parametrize("name", DESIGNS)
def test_structured_patterns_skip_on_and_off(rtl, name):
    """All-zero A rows, columns, words and matrices, one-hot rows, checkerboards, zero
    rows and columns of B, shapes that are not multiples of the array (depth 1, a partial
    last column group), values whose kept blocks are zero, and two deep column groups;
    skipping off and on under random stalls: golden and bit-identical."""
    built = rtl(name)
    config = built.config
    jobs = structured_jobs(config, np.random.default_rng(202))
    report = run_scenario(built, Scenario(jobs, seed=9, stalls=ALL_PORTS, record=True,
                                 timeout_cycles=5000), name="skip_patterns")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)


def vrq_jobs(config, rng) -> list[Job]:
    jobs = []
    for index, mode in enumerate(vrq_modes(config)):
        density = DENSITIES[index % len(DENSITIES)]
        m, n, depth = random_sparse_shape(rng, config, 16)
        a = vrq_sparse(rng, config, (m, depth), mode.a, density)
        jobs += on_and_off(a, any_b(rng, config, mode.b, (depth, n)), mode,
                           f"{mode.describe()}/{density:.0%}")
    return jobs


def test_vrq_operands_with_code_zero_are_skipped(rtl):
    """VRQ A words with code 0 (random sign and range bits) are skipped, bit-exact with
    skipping off and with the golden model under random stalls; isolated, their cycle
    counts follow the code-zero rule, which here differs from the word-zero rule."""
    built = rtl("rect_vrq_skip")
    config = built.config
    rng = np.random.default_rng(303)
    jobs = vrq_jobs(config, rng)
    skipped_nonzero_words = sum(int((zero_operands(j.a, config, j.precision.a)
                                     & (j.a != 0)).sum()) for j in jobs)
    assert skipped_nonzero_words > 0
    report = run_scenario(built, Scenario(jobs, seed=3, stalls=ALL_PORTS, record=True,
                                 timeout_cycles=5000), name="skip_vrq")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)

    # Cycles: skipping runs with some but not all codes zero, each alone.
    timed = [job for job in jobs if job.skip_zeros and 0 < np.mean(
        zero_operands(job.a, config, job.precision.a)) < 1][:6]
    report = run_scenario(built, Scenario(timed, isolated=True), name="skip_vrq_cycles")
    check_clean(report, config, timed)
    differs = 0
    for job, group in zip(timed, report["jobs"]):
        assert group["cycles"] == model_cycles(config, [job]), job.label
        word_rule = dataclasses.replace(job.precision, a=dataclasses.replace(
            job.precision.a, vrq=False))
        word_shape = skipping_shape(config, job.a, job.b.shape[1], word_rule, True)
        differs += gemm_cycles(config, [word_shape]).total != group["cycles"]
    assert differs > 0      # the code rule, not the word rule, is what the RTL applies


def output_jobs(config, rng) -> list[Job]:
    """Output-stage settings (every rounding, ReLU off and on, shifts from 0 to beyond
    the accumulator range, random seeds and tensor ids; VRQ output where the design has
    [vrq]), A sparse, over several column groups and rows."""
    modes = [mode for _, mode in named_or_random_modes(config, rng, 6)]
    jobs = []
    settings = list(itertools.product(Rounding, (False, True)))
    for index, (rounding, relu) in enumerate(settings):
        mode = modes[index % len(modes)]
        m = int(rng.integers(config.rows + 1, 2 * config.rows + 2))
        n = int(rng.integers(config.rows * config.cols + 1, 2 * config.rows * config.cols + 1))
        depth = int(rng.integers(4, 20))
        a = sparse_a(rng, config, mode, (m, depth), [0.1, 0.5, 0.9][index % 3])
        b = any_b(rng, config, mode.b, (depth, n), "heavy_tailed")
        magnitude = int(np.abs(gemm(a, b, config, mode)).max()).bit_length()
        largest = max(magnitude - config.output_width + 1, 0)   # the largest just fits
        shift = [largest, max(largest - 2, 0), largest + 3, 1, 0, magnitude + 1][index % 6]
        shift = min(shift, config.accumulator_width - 1)
        output = OutputParameters(shift, rounding, relu, int(rng.integers(0, 1 << 32)),
                                  int(rng.integers(0, 1 << 16)))
        jobs += on_and_off(a, b, mode, f"{rounding.name.lower()}/relu={relu}/shift={shift}",
                           output)
        if config.vrq is not None and index % 2:
            vrq_out = OutputParameters(0, rounding, relu, int(rng.integers(0, 1 << 32)),
                                       int(rng.integers(0, 1 << 16)),
                                       vrq_exponent=min(magnitude, config.accumulator_width - 1))
            jobs += on_and_off(a, b, mode, f"vrq/{rounding.name.lower()}/relu={relu}",
                               vrq_out)
    return jobs


@pytest.mark.parametrize("name", DESIGNS)
def test_output_stage_with_skipping(rtl, name):
    """Round-shift (stochastic bits keyed by element coordinates), ReLU, saturation and
    VRQ output with skipping on and off, under random stalls: the row-major result walk
    of this array gives every element its own coordinates (a mix-up of rows, column
    tiles or groups changes the stochastic results)."""
    built = rtl(name)
    config = built.config
    jobs = output_jobs(config, np.random.default_rng(404))
    assert any(job.output.rounding == Rounding.STOCHASTIC and job.output.shift > 0
               for job in jobs)
    report = run_scenario(built, Scenario(jobs, seed=4, stalls=ALL_PORTS, record=True,
                                 timeout_cycles=5000), name="skip_output")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)


def cycle_jobs(config, rng, count) -> list[Job]:
    """Random sparse GEMMs (every density, all-zero A included, an all-zero row in
    every fourth) in the standard and random modes (VRQ ones where the design has
    [vrq]), with skipping off and on."""
    modes = [mode for _, mode in named_or_random_modes(config, rng, count)]
    if config.vrq is not None:
        modes[1::3] = vrq_modes(config)[:len(modes[1::3])]
    jobs = []
    for index, mode in enumerate(modes):
        density = DENSITIES[index % len(DENSITIES)]
        m, n, depth = random_sparse_shape(rng, config, 24)
        a = sparse_a(rng, config, mode, (m, depth), density)
        if index % 4 == 3:
            a[rng.integers(0, m)] = 0               # an empty row among others
        jobs += on_and_off(a, any_b(rng, config, mode.b, (depth, n)), mode,
                           f"{mode.describe()}/{density:.0%}")
    return jobs


@pytest.mark.parametrize("name", DESIGNS)
def test_cycle_model_equals_rtl(rtl, name):
    """With inputs always valid and results always ready, the RTL's cycle count equals
    :func:`gemm_cycles` of :func:`skipping_shape`: per GEMM in isolation (skipping on
    and off), and for all of them back to back, skip on and off mixed. Skipping makes
    sparse GEMMs measurably faster on the RTL."""
    built = rtl(name)
    config = built.config
    jobs = cycle_jobs(config, np.random.default_rng(505), 12)
    isolated = run_scenario(built, Scenario(jobs, isolated=True, timeout_cycles=5000),
                   name="skip_cycles_isolated")
    check_clean(isolated, config, jobs)
    measured = [group["cycles"] for group in isolated["jobs"]]
    for job, cycles in zip(jobs, measured):
        assert cycles == model_cycles(config, [job]), job.label
    faster = sum(on < off for off, on in zip(measured[0::2], measured[1::2]))
    slower = sum(on > off for off, on in zip(measured[0::2], measured[1::2]))
    assert faster >= 3 and slower == 0
    # Back to back in a shuffled order, so skip on and off follow each other both ways.
    order = np.random.default_rng(1).permutation(len(jobs))
    mixed = [jobs[i] for i in order]
    together = run_scenario(built, Scenario(mixed, timeout_cycles=5000),
                   name="skip_cycles_back_to_back")
    check_clean(together, config, mixed)
    assert together["jobs"][0]["cycles"] == model_cycles(config, mixed)


def raw_command(config, *, m_tiles, n_tiles, depth, skip):
    full = {"blocks_minus_one": config.blocks - 1, "kept_minus_one": config.blocks - 1,
            "dynamic": 0}
    return command_layout(config).const({
        "m_tiles_minus_one": m_tiles - 1, "n_tiles_minus_one": n_tiles - 1,
        "depth_minus_one": depth - 1, "a": full, "b": full, "skip_zeros": int(skip),
    }).as_bits()


def invalid_command(config, kind):
    """Commands the zero-skipping loader must reject: B panels one word beyond a PE
    bank (skipping on and off), the most column tiles the field holds, and an A panel
    beyond the A bank."""
    rows, lanes, bank = config.rows, config.block_multipliers, config.pe_buffer_depth
    words = bank // 2 + 1                       # two column groups: two words too many
    if kind == "b_panel_skip":
        return raw_command(config, m_tiles=1, n_tiles=rows + 1, depth=words * lanes,
                           skip=True)
    if kind == "b_panel_dense":
        return raw_command(config, m_tiles=1, n_tiles=2 * rows, depth=words * lanes - 1,
                           skip=False)
    if kind == "n_tiles_max":
        n_tiles = 1 << config.tiles_field_width
        depth = (bank // -(-n_tiles // rows) + 1) * lanes
        return raw_command(config, m_tiles=1, n_tiles=n_tiles, depth=depth, skip=True)
    if kind == "a_panel":
        return raw_command(config, m_tiles=2, n_tiles=1, depth=config.max_reduction_depth,
                           skip=True)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["b_panel_skip", "b_panel_dense", "n_tiles_max", "a_panel"])
def test_invalid_commands_raise_error_and_are_dropped(rtl, kind):
    """Each rejected command alone sets the sticky ``error`` and takes no operand beats:
    the GEMMs queued after it still produce golden results. (The largest valid B panel,
    one word less than b_panel_*, is in test_full_banks.)"""
    built = rtl("rect_vrq_skip")
    config = built.config
    command = invalid_command(config, kind)
    fields = data.Const(command_layout(config), command)
    n_tiles, depth = fields.n_tiles_minus_one + 1, fields.depth_minus_one + 1
    words = -(-depth // config.block_multipliers)
    assert depth <= config.max_reduction_depth
    a_over = (fields.m_tiles_minus_one + 1) * words > config.buffer_depth
    b_over = -(-n_tiles // config.rows) * words > config.pe_buffer_depth
    assert (a_over, b_over) == ((True, False) if kind == "a_panel" else (False, True))
    rng = np.random.default_rng(606)
    mode = standard_modes(config)["reduced"]
    jobs = []
    for density in (0.2, 0.7):
        a = sparse_a(rng, config, mode, (3, 7), density)
        jobs += on_and_off(a, any_b(rng, config, mode.b, (7, 5)), mode, f"{density}")
    report = run_scenario(built, Scenario(jobs, seed=1, stalls=ALL_PORTS,
                                 invalid_commands=[command]),
                 name=f"skip_invalid_{kind}")
    assert report["error_flag_after_invalid"] and report["error_flag"]
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["matched"] == result_beats(config, jobs)


def test_negative_control_skip_drops_last(rtl):
    """Sparse GEMMs checked against a model that drops each A row's last non-zero
    operand: the scoreboard reports exactly the beats where that model differs from the
    golden one (so the RTL matched the golden model on every other beat)."""
    built = rtl("rect_vrq_skip")
    config = built.config
    rng = np.random.default_rng(707)
    jobs = []
    for mode, density in zip(standard_modes(config).values(), (0.1, 0.5, 0.9, 0.3, 0.6, 1.0)):
        m, n, depth = random_sparse_shape(rng, config, 12)
        a = sparse_a(rng, config, mode, (m, depth), density)
        jobs += on_and_off(a, any_b(rng, config, mode.b, (depth, n)), mode, "control")
    differing = 0
    for job in jobs:
        right = GemmJob.build(config, job.a, job.b, job.precision, skip_zeros=job.skip_zeros)
        wrong = GemmJob.build(config, job.a, job.b, job.precision, skip_zeros=job.skip_zeros,
                              model=MODELS["skip_drops_last"])
        differing += sum(x != y for x, y in zip(right.expected_beats(), wrong.expected_beats()))
    assert differing > 0
    report = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS,
                                 model="skip_drops_last", expect_mismatch=True),
                 name="skip_control_wrong")
    assert report["mismatched"] == differing
    assert report["matched"] == result_beats(config, jobs) - differing
    assert report["missing"] == report["unexpected"] == 0
    assert any("expected" in error for error in report["errors"])


# ---- slow tier: random zero-skipping configurations ------------------------------------

def random_skipping_config(seed):
    """A random zero-skipping array: 1..4 rows and columns, K dividing W, PE banks of one
    or two dot products; P = 4, 1, 8, 2 for seeds 0 .. 3 (each once); seed 0 has a
    [vrq] section."""
    rng = np.random.default_rng(9000 + seed)
    if seed == 0:
        width, block = 8, 2
    else:
        width = int(rng.choice([4, 6, 8, 12]))
        block = int(rng.choice([k for k in (1, 2, 3, 4, 6) if width % k == 0]))
    lanes = (4, 1, 8, 2)[seed % 4]
    depth_words = int(rng.choice([16, 32]))
    spec = {
        "name": f"skipsweep{seed}",
        "array": {"rows": int(rng.integers(1, 5)), "cols": int(rng.integers(1, 5))},
        "arithmetic": {"operand_width": width, "block_width": block,
                       "block_multipliers": lanes,
                       "max_reduction_depth": depth_words * lanes, "output_width": 4},
        "buffers": {"depth": depth_words},
        "zero_skipping": {"pe_buffer_depth": depth_words * int(rng.integers(1, 3))},
    }
    if seed == 0:
        spec["vrq"] = {"code_width": 4, "range_stride": 2, "ranges": 8}
    return from_dict(spec, source=f"skipping sweep seed {seed}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_skipping_configuration(seed):
    """A random zero-skipping configuration: random sparse GEMMs in random modes (VRQ
    ones with [vrq]), skipping on and off, under random stalls (golden, bit-identical),
    then in isolation (cycle counts equal the cycle model)."""
    config = random_skipping_config(seed)
    built = build(config, log=lambda message: None)
    rng = np.random.default_rng(seed)
    modes = [mode for _, mode in named_or_random_modes(config, rng, 10)]
    modes += [random_precision(rng, config) for _ in range(2)]
    if config.vrq is not None:
        modes += vrq_modes(config)[::2]
    jobs = []
    for index, mode in enumerate(modes):
        density = DENSITIES[int(rng.integers(0, len(DENSITIES)))]
        while True:
            m = int(rng.integers(1, 3 * config.rows + 1))
            n = int(rng.integers(1, (2 * config.rows + 1) * config.cols + 1))
            depth = int(rng.integers(1, min(40, config.max_reduction_depth) + 1))
            if fits(config, m, n, depth):
                break
        a = sparse_a(rng, config, mode, (m, depth), density)
        jobs += on_and_off(a, any_b(rng, config, mode.b, (depth, n)), mode,
                           f"{mode.describe()}/{density:.0%}")
    report = run_scenario(built, Scenario(jobs, seed=seed, stalls=ALL_PORTS, record=True,
                                 timeout_cycles=10000), name="skip_sweep")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)
    isolated = run_scenario(built, Scenario(jobs, isolated=True, timeout_cycles=10000),
                   name="skip_sweep_cycles")
    check_clean(isolated, config, jobs)
    for job, group in zip(jobs, isolated["jobs"]):
        assert group["cycles"] == model_cycles(config, [job]), (config, job.label)


@pytest.mark.slow
def test_sparse_preset_bench_shape_cycles_equal_the_model(rtl):
    """The benchmark's workload on the ``sparse`` preset's Verilog (8x8, P = 4): a
    128x128x128 exact-mode GEMM at 50% A density, skipping off and on, each alone. The
    results are the golden model's and identical, and the cycle counts are the cycle
    model's, so ``qforge bench`` (which uses the model) reports what the RTL does."""
    config = design_config("sparse")
    built = rtl("sparse")
    rng = np.random.default_rng(50)
    mode = standard_modes(config)["exact"]
    a = sparse_operands(rng, (128, 128), *operand_range(config, mode.a), 0.5)
    b = random_operands(rng, (128, 128), *operand_range(config, mode.b), "uniform")
    jobs = on_and_off(a, b, mode, "bench/50%")
    report = run_scenario(built, Scenario(jobs, isolated=True, record=True, timeout_cycles=200000),
                 name="bench_shape")
    check_clean(report, config, jobs)
    check_recorded(report, config, jobs)
    dense, sparse = (group["cycles"] for group in report["jobs"])
    assert dense == model_cycles(config, jobs[:1])
    assert sparse == model_cycles(config, jobs[1:])
    assert dense / sparse >= 1.8
