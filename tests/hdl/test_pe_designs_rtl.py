"""The other PE designs (``arithmetic.pe``) on the generated Verilog: the integration
tests of tests/sim/bench run unchanged, against the same golden model.

``"signed_product"`` (each block product negated before its shift, same schedule):

``rect`` (2x3, four 2-bit blocks, P = 2: q that does not divide P) takes random GEMMs
under backpressure, corner values in every standard mode and every (blocks, kept,
selection) operand, and the cycle model; ``rect_vrq_skip`` (the same array with VRQ
operands, block positions up to 8, and the zero-skipping array) takes every mode at six
densities with skipping off and on, and VRQ words. Each design is one Verilator build
(minutes), so the tests are marked ``slow`` as well as ``rtl``.

``"shared_shift"`` (one block pair of a word's P operands per cycle, the lane sum
shifted once; dense integer designs only): ``rect`` and ``tiny`` (two 4-bit blocks,
P = 1) take the same random GEMMs and corner values in every mode, and their cycles, with and without back-to-back commands,
equal the cycle model's with :func:`qforge.sim.model.cycles.issued_block_products`
(dynamic approximation at the cycles of all n blocks, partial words whole cycles).

``"fused"`` (lane pairs as one multiplier: a wide mode's MAC whole in two lanes, two
one-block MACs per lane pair otherwise; n = 2): ``two_lane_tiny`` (tests/configs.py:
two 4-bit blocks, P = 2) takes
the same random GEMMs and corner values in every mode, and its cycles equal the cycle
model's with :func:`qforge.sim.model.cycles.issued_block_products` (2 lanes per MAC when
a side keeps both blocks, else 1).

``plain_lanes`` (``K = W``: the ``fxp8`` baseline's PE, a plain two's-complement
multiply-accumulate whatever ``arithmetic.pe``): the ``fxp8`` preset (8x8) takes the same
random GEMMs and corner values in every mode, and the cycle model.
"""

import pytest

from qforge.sim.bench.rtl import build, run_scenario
from qforge.sim.bench.scenarios import Scenario
from qforge.sim.model.cycles import gemm_cycles, gemm_shape, issued_block_products
from tests.configs import design_config, with_pe
from tests.sim.bench import test_rtl as dense_tests
from tests.sim.bench import test_rtl_skipping as skipping_tests

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

#: The dense array's integration tests every PE design takes whole.
DENSE_TESTS = [dense_tests.test_random_gemms_with_backpressure,
               dense_tests.test_corner_values_every_mode,
               dense_tests.test_cycle_model_equals_rtl]

_built = {}


def rtl_with(pe):
    """Like tests/sim/conftest.py's ``rtl``, for the design ``name`` with
    ``arithmetic.pe = pe``."""
    def get(name, simulator="verilator"):
        assert simulator == "verilator"
        if (name, pe) not in _built:
            _built[name, pe] = build(with_pe(design_config(name), pe),
                                     log=lambda message: None)
        assert _built[name, pe].config.pe == pe
        return _built[name, pe]
    return get


@pytest.fixture(scope="module")
def rtl_signed():
    return rtl_with("signed_product")


@pytest.fixture(scope="module")
def rtl_shared():
    return rtl_with("shared_shift")


@pytest.fixture(scope="module")
def rtl_plain():
    return rtl_with("shifted")


@pytest.mark.parametrize("test", DENSE_TESTS, ids=lambda test: test.__name__)
def test_plain_lanes_dense_array(rtl_plain, test):
    assert rtl_plain("fxp8").config.plain_lanes
    test(rtl_plain, "fxp8")


@pytest.fixture(scope="module")
def rtl_fused():
    return rtl_with("fused")


@pytest.mark.parametrize("test", DENSE_TESTS, ids=lambda test: test.__name__)
def test_dense_array(rtl_signed, test):
    test(rtl_signed, "rect")


def test_skipping_array_every_mode(rtl_signed):
    skipping_tests.test_random_densities_every_mode_skip_on_and_off(rtl_signed,
                                                                    "rect_vrq_skip")


def test_skipping_array_vrq_words(rtl_signed):
    skipping_tests.test_vrq_operands_with_code_zero_are_skipped(rtl_signed)


@pytest.mark.parametrize("name", ["rect", "tiny"])
@pytest.mark.parametrize("test", [dense_tests.test_random_gemms_with_backpressure,
                                  dense_tests.test_corner_values_every_mode],
                         ids=lambda test: test.__name__)
def test_shared_shift_dense_array(rtl_shared, test, name):
    test(rtl_shared, name)


@pytest.mark.parametrize("name", ["rect", "tiny"])
def test_shared_shift_cycle_model_equals_rtl(rtl_shared, name):
    """dense_tests.test_cycle_model_equals_rtl with the shapes' block products from
    :func:`issued_block_products` (the jobs include dynamic modes, which issue all n
    blocks, and depths that are not multiples of P)."""
    check_issued_cycles(rtl_shared(name))


@pytest.mark.parametrize("test", [dense_tests.test_random_gemms_with_backpressure,
                                  dense_tests.test_corner_values_every_mode],
                         ids=lambda test: test.__name__)
def test_fused_dense_array(rtl_fused, test):
    test(rtl_fused, "two_lane_tiny")


def test_fused_cycle_model_equals_rtl(rtl_fused):
    """The cycle model with :func:`issued_block_products` (wide modes 2 lanes per MAC,
    one-block modes 1) equals the fused two-lane tiny's cycles."""
    check_issued_cycles(rtl_fused("two_lane_tiny"))


def check_issued_cycles(built):
    """Random jobs (every mode, depths that are not multiples of P) alone and back to
    back: the RTL's cycles equal :func:`gemm_cycles` of shapes whose block products are
    :func:`issued_block_products`, which differ from ``La * Lb`` for some job."""
    config = built.config
    jobs = dense_tests.random_jobs(config, seed=31, count=12, max_depth=64,
                                   distributions=["uniform"])
    assert any(issued_block_products(config, job.precision) != job.precision.block_products
               for job in jobs)
    shapes = [gemm_shape(config, job.a.shape[0], job.b.shape[1], job.a.shape[1],
                         job.precision) for job in jobs]
    isolated = run_scenario(built, Scenario(jobs, isolated=True), name="cycles_isolated")
    for shape, group in zip(shapes, isolated["jobs"], strict=True):
        assert group["cycles"] == gemm_cycles(config, [shape]).total, shape
    together = run_scenario(built, Scenario(jobs), name="cycles_back_to_back")
    assert together["jobs"][0]["cycles"] == gemm_cycles(config, shapes).total
