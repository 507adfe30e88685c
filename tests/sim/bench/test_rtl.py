"""Integration tests: cocotb benches on the generated Verilog against the golden model.

Every test drives the real top level through its streams (random valid/ready stalls on
all four ports unless it measures cycles) and a scoreboard that compares every result
beat, in order, with :func:`qforge.sim.model.numerics.gemm` (and, for GEMMs with output
settings, :func:`qforge.sim.model.quantize.output_stage`): lost, duplicated, reordered or
wrong beats all fail.
"""

import itertools

import numpy as np
import pytest

from qforge.sim.model.cycles import GemmShape, gemm_cycles
from qforge.sim.model.numerics import OperandPrecision, Precision, Selection, standard_modes
from qforge.hdl.layouts import command_layout
from qforge.sim.model.quantize import OutputParameters, Rounding
from qforge.sim.bench.rtl import run_scenario
from qforge.sim.bench.scenarios import Job, Scenario
from qforge.sim.bench.stimulus import (DISTRIBUTIONS, named_or_random_modes, operand_range,
                                 random_operands, random_shape)

from tests.configs import design_config

pytestmark = pytest.mark.rtl

ALL_PORTS = {"cmd": 0.3, "a_in": 0.4, "b_in": 0.4, "result": 0.4}


def random_jobs(config, seed, count, *, max_tiles=3, max_depth=40, distributions=None):
    rng = np.random.default_rng(seed)
    distributions = distributions or DISTRIBUTIONS
    jobs = []
    for index, (label, mode) in enumerate(named_or_random_modes(config, rng, count)):
        m, n, depth = random_shape(rng, config, max_tiles, max_depth)
        a_kind = distributions[index % len(distributions)]
        b_kind = distributions[(index * 3 + 1) % len(distributions)]
        jobs.append(Job(random_operands(rng, (m, depth), *operand_range(config, mode.a), a_kind),
                        random_operands(rng, (depth, n), *operand_range(config, mode.b), b_kind),
                        mode, f"{label}/{a_kind}x{b_kind}"))
    return jobs


#: The presets the bench sweeps. ``large`` (16x16) is the longest Verilator build of the
#: suite (about two minutes of a 2-core machine, a quarter of `make test`'s budget) and
#: exercises no generator path that tiny, rect and default do not: with the slow sweeps
#: (`make test-all`).
SWEPT_DESIGNS = ["tiny", "rect", "default", pytest.param("large", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", SWEPT_DESIGNS)
def test_random_gemms_with_backpressure(rtl, name):
    built = rtl(name)
    config = built.config
    count = 10 if name in ("default", "large") else 16
    jobs = random_jobs(config, seed=11, count=count,
                       max_depth=24 if name in ("default", "large") else 40)
    report = run_scenario(built, Scenario(jobs, seed=5, stalls=ALL_PORTS,
                                          timeout_cycles=5000), name="random")
    expected_beats = sum(-(-j.a.shape[0] // config.rows) * -(-j.b.shape[1] // config.cols)
                         for j in jobs) * config.rows
    assert report["matched"] == expected_beats
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["idle_at_end"] and not report["error_flag"]


@pytest.mark.parametrize("name", ["tiny", "rect"])
def test_corner_values_every_mode(rtl, name):
    """Most negative, largest, zero and +-1 operands, all-zero and all-extreme matrices,
    in every standard mode and an exhaustive sweep of (blocks, kept, selection)."""
    built = rtl(name)
    config = built.config
    rng = np.random.default_rng(3)
    modes = list(standard_modes(config).values())
    for blocks in range(1, config.blocks + 1):
        for kept in range(1, blocks + 1):
            for selection in Selection:
                operand = OperandPrecision(blocks, kept, selection)
                modes.append(Precision(operand, OperandPrecision(config.blocks, 1, selection)))
    jobs = []
    for mode in modes:
        low_a, high_a = operand_range(config, mode.a)
        low_b, high_b = operand_range(config, mode.b)
        m, n, depth = config.rows + 1, config.cols + 1, 5
        jobs.append(Job(np.full((m, depth), low_a), np.full((depth, n), low_b), mode, "min*min"))
        jobs.append(Job(np.full((m, depth), high_a), np.full((depth, n), low_b), mode, "max*min"))
        jobs.append(Job(random_operands(rng, (m, depth), low_a, high_a, "extremes"),
                        random_operands(rng, (depth, n), low_b, high_b, "extremes"), mode,
                        "extremes"))
    jobs.append(Job(np.zeros((3, 7), dtype=np.int64), np.zeros((7, 2), dtype=np.int64),
                    modes[0], "zeros"))
    report = run_scenario(built, Scenario(jobs, seed=8, stalls=ALL_PORTS), name="corners")
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["matched"] > 0


def test_negative_control_wrong_model_is_detected(rtl):
    """The same stimulus is checked twice: against the golden model (must pass) and
    against a deliberately wrong model that rounds dropped blocks instead of truncating
    them (must be reported). Proves the scoreboard can fail."""
    built = rtl("tiny")
    config = built.config
    approximate = [m for m in standard_modes(config).values() if not m.a.exact]
    rng = np.random.default_rng(21)
    jobs = [Job(random_operands(rng, (3, 9), *operand_range(config, mode.a), "uniform"),
                random_operands(rng, (9, 3), *operand_range(config, mode.b), "uniform"),
                mode) for mode in approximate]
    good = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS), name="control_good")
    assert good["mismatched"] == 0 and good["matched"] > 0
    wrong = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS,
                                         model="wrong_rounding", expect_mismatch=True),
                         name="control_wrong")
    assert wrong["mismatched"] > 0
    assert any("expected" in error for error in wrong["errors"])


def output_jobs(config, seed, roundings=tuple(Rounding), *, raw_every=3):
    """GEMMs with output settings: each rounding with ReLU off and on, shifts from 0 to
    beyond the accumulators' range (saturating, in range, all below the LSB), operands
    from several distributions (``extremes``: large accumulators), random seeds and
    tensor ids; a raw GEMM every ``raw_every`` jobs."""
    rng = np.random.default_rng(seed)
    modes = [mode for _, mode in named_or_random_modes(config, rng, 8)]
    kinds = ["uniform", "extremes", "normal", "heavy_tailed", "post_relu"]
    jobs = []
    for index, (rounding, relu) in enumerate(itertools.product(roundings, (False, True))):
        mode = modes[index % len(modes)]
        m, n, depth = random_shape(rng, config, 3, 24)
        kind = kinds[index % len(kinds)]
        a = random_operands(rng, (m, depth), *operand_range(config, mode.a), kind)
        b = random_operands(rng, (depth, n), *operand_range(config, mode.b), kind)
        magnitude = int(np.abs(a @ b).max()).bit_length()
        fits = max(magnitude - config.output_width + 1, 0)   # the largest just fits
        shift = [fits, max(fits - 3, 0), fits + 2, 1, 0, magnitude + 1][index % 6]
        output = OutputParameters(shift, rounding, relu, int(rng.integers(0, 1 << 32)),
                                  int(rng.integers(0, 1 << 16)))
        jobs.append(Job(a, b, mode, f"{rounding.name.lower()}/relu={relu}/shift={shift}",
                        output))
        if index % raw_every == raw_every - 1:
            jobs.append(Job(a, b, mode, "raw"))
    return jobs


@pytest.mark.parametrize("name", ["tiny", "rect", "default"])
def test_output_stage_every_rounding_with_backpressure(rtl, name):
    """Round-shift (nearest-even, truncate, stochastic), ReLU and saturation per GEMM,
    mixed with raw GEMMs, back to back under random stalls on all four ports: the
    hardware's outputs equal the golden output stage bit for bit (random bits keyed by
    the GEMM result's global coordinates, whatever the array shape)."""
    built = rtl(name)
    config = built.config
    jobs = output_jobs(config, seed=17)
    report = run_scenario(built, Scenario(jobs, seed=6, stalls=ALL_PORTS,
                                          timeout_cycles=5000), name="output_stage")
    expected_beats = sum(-(-j.a.shape[0] // config.rows) * -(-j.b.shape[1] // config.cols)
                         for j in jobs) * config.rows
    assert report["matched"] == expected_beats
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["idle_at_end"] and not report["error_flag"]


@pytest.mark.parametrize("output_model", ["wrong_seed", "transposed_coordinates"])
def test_output_stage_negative_control_wrong_rounding_model(rtl, output_model):
    """Stochastic GEMMs checked against a wrong model of the output stage (random bits
    keyed by another seed, or by (col, row)): the scoreboard must report mismatches.
    The same jobs pass against the golden model in the test above's style."""
    built = rtl("rect")
    jobs = output_jobs(built.config, seed=23, roundings=(Rounding.STOCHASTIC,),
                       raw_every=100)
    good = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS),
                        name=f"output_{output_model}_good")
    assert good["mismatched"] == 0 and good["matched"] > 0
    wrong = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS,
                                         output_model=output_model, expect_mismatch=True),
                         name=f"output_{output_model}")
    assert wrong["mismatched"] > 0
    assert any("expected" in error for error in wrong["errors"])


@pytest.mark.parametrize("name", SWEPT_DESIGNS)
def test_cycle_model_equals_rtl(rtl, name):
    """With inputs always valid and results always ready, the RTL's cycle count from
    the first command accepted to the last result beat equals
    :func:`qforge.sim.model.cycles.gemm_cycles`, per GEMM and for back-to-back GEMMs."""
    built = rtl(name)
    config = built.config
    jobs = random_jobs(config, seed=31, count=8 if name in ("default", "large") else 12,
                       max_depth=24 if name in ("default", "large") else 64,
                       distributions=["uniform"])
    isolated = run_scenario(built, Scenario(jobs, isolated=True), name="cycles_isolated")
    for group in isolated["jobs"]:
        (job,) = group["jobs"]
        # The block products the PEs issue per MAC, not q = La * Lb (they differ for a
        # dynamic mode with arithmetic.pe = "shared_shift", and for pe = "fused").
        shape = GemmShape(job["m"], job["n"], job["depth"], job["issued_block_products"])
        assert group["cycles"] == gemm_cycles(config, [shape]).total, job
    together = run_scenario(built, Scenario(jobs), name="cycles_back_to_back")
    shapes = [GemmShape(j["m"], j["n"], j["depth"], j["issued_block_products"])
              for j in together["jobs"][0]["jobs"]]
    assert together["jobs"][0]["cycles"] == gemm_cycles(config, shapes).total


def test_invalid_commands_raise_error_and_are_dropped(rtl):
    built = rtl("tiny")
    config = built.config
    layout = command_layout(config)
    good_precision = {"blocks_minus_one": config.blocks - 1, "kept_minus_one": 0, "dynamic": 1}
    kept_above_blocks = layout.const({
        "m_tiles_minus_one": 0, "n_tiles_minus_one": 0, "depth_minus_one": 3,
        "a": {"blocks_minus_one": 0, "kept_minus_one": 1, "dynamic": 0},
        "b": good_precision}).as_bits()
    too_many_tiles = layout.const({
        "m_tiles_minus_one": config.buffer_depth - 1, "n_tiles_minus_one": 0,
        "depth_minus_one": config.max_reduction_depth - 1,
        "a": good_precision, "b": good_precision}).as_bits()
    plain = {"m_tiles_minus_one": 0, "n_tiles_minus_one": 0, "depth_minus_one": 3,
             "a": good_precision, "b": good_precision}
    rounding_three = layout.const(plain | {"output": {"quantize": 1, "rounding": 3}}).as_bits()
    shift_too_far = layout.const(plain | {"output": {
        "quantize": 1, "shift": (1 << layout["output"].shape["shift"].shape.width) - 1}}
    ).as_bits()
    assert (1 << layout["output"].shape["shift"].shape.width) - 1 > config.accumulator_width - 1
    jobs = random_jobs(config, seed=41, count=3)
    report = run_scenario(built, Scenario(jobs, seed=1, stalls=ALL_PORTS,
                                          invalid_commands=[kept_above_blocks, too_many_tiles,
                                                            rounding_three, shift_too_far]),
                          name="invalid")
    assert report["error_flag_after_invalid"] and report["error_flag"]
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["matched"] > 0


def test_icarus_random_gemms(rtl):
    """The same bench on Icarus Verilog (optional simulator)."""
    built = rtl("tiny", "icarus")
    jobs = random_jobs(built.config, seed=13, count=6, max_tiles=2, max_depth=16)
    report = run_scenario(built, Scenario(jobs, seed=4, stalls=ALL_PORTS), name="icarus")
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["matched"] > 0
