"""VRQ operands on the generated Verilog: the PE consumes VRQ words directly (the range
sets the operand's exponent), alone or against integer operands, exact or with kept
blocks of the code, under random backpressure."""

import numpy as np
import pytest

from qforge.sim.model.spec import from_dict, load_preset
from qforge.sim.model.numerics import (OperandPrecision, Precision, Selection, gemm,
                                 gemm_block_products, operand_value, vrq_pack)
from qforge.sim.model.quantize import Rounding, vrq_decode, vrq_encode
from qforge.sim.bench.rtl import build, run_scenario
from qforge.sim.bench.scenarios import Job, Scenario

from tests.sim.bench.test_rtl import ALL_PORTS

pytestmark = pytest.mark.rtl


def vrq_config():
    spec = load_preset("default").to_dict()
    spec.update(name="vrq4x3", array={"rows": 4, "cols": 3},
                vrq={"code_width": 4, "range_stride": 2, "ranges": 8})
    return from_dict(spec, source="tests")


def vrq_words(rng, config, shape, code_limit=None):
    values = rng.standard_normal(shape) * np.exp2(rng.integers(-8, 8, shape))
    sign, code, group = vrq_encode(values, config.vrq, rounding=Rounding.NEAREST_EVEN)
    if code_limit is not None:
        code = np.minimum(code, code_limit)
    return vrq_pack(sign, code, group, config)


def test_vrq_words_are_the_decoded_values():
    """The PE's integer form of a VRQ word, scaled by the tensor's base exponent, is the
    value vrq_decode gives (golden model consistency, no RTL)."""
    config = vrq_config()
    rng = np.random.default_rng(5)
    values = rng.standard_normal((6, 7)) * np.exp2(rng.integers(-8, 8, (6, 7)))
    sign, code, group = vrq_encode(values, config.vrq)
    words = vrq_pack(sign, code, group, config)
    full = OperandPrecision(config.vrq_code_blocks, config.vrq_code_blocks, vrq=True)
    exponent = int(np.frexp(np.abs(values).max())[1]) - 1
    base = exponent - config.vrq_code_width + 1 - (config.vrq_ranges - 1) * config.vrq_range_stride
    assert np.array_equal(np.ldexp(operand_value(words, config, full).astype(float), base),
                          vrq_decode(sign, code, group, config.vrq, exponent))


def test_vrq_gemms_on_the_array():
    config = vrq_config()
    built = build(config, log=lambda message: None)
    rng = np.random.default_rng(0)
    jobs = []
    for blocks, kept in [(2, 2), (2, 1), (1, 1)]:
        limit = None if blocks == 2 else 3          # a one-block code holds 0 .. 3
        for selection in Selection:
            operand = OperandPrecision(blocks, kept, selection, vrq=True)
            for other in (operand, OperandPrecision(config.blocks, config.blocks)):
                mode = Precision(operand, other)
                m, n = (int(v) for v in rng.integers(1, 9, 2))
                depth = int(rng.integers(1, 30))
                a = vrq_words(rng, config, (m, depth), limit)
                b = (vrq_words(rng, config, (depth, n), limit) if other.vrq
                     else rng.integers(-128, 128, (depth, n)))
                assert np.array_equal(gemm(a, b, config, mode),
                                      gemm_block_products(a, b, config, mode))
                jobs.append(Job(a, b, mode, mode.describe()))
    report = run_scenario(built, Scenario(jobs, seed=1, stalls=ALL_PORTS), name="vrq")
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["matched"] > 0


def test_vrq_command_rejected_without_vrq_section(rtl):
    """A configuration without [vrq] has no decoder: a VRQ command raises `error`."""
    from qforge.hdl.layouts import command_layout
    built = rtl("tiny")
    config = built.config
    precision = {"blocks_minus_one": 0, "kept_minus_one": 0, "dynamic": 0, "vrq": 1}
    command = command_layout(config).const({
        "m_tiles_minus_one": 0, "n_tiles_minus_one": 0, "depth_minus_one": 0,
        "a": precision, "b": precision}).as_bits()
    rng = np.random.default_rng(2)
    good = Job(rng.integers(-128, 128, (2, 3)), rng.integers(-128, 128, (3, 2)),
               Precision(OperandPrecision(2, 2), OperandPrecision(2, 2)))
    report = run_scenario(built, Scenario([good], invalid_commands=[command]), name="vrq_off")
    assert report["error_flag_after_invalid"] and report["matched"] > 0
