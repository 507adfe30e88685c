"""``arithmetic.pe = "signed_product"`` on the generated Verilog: the integration tests
of tests/sim/bench run unchanged on designs whose PEs negate each block product before
its shift (:class:`qforge.hdl.pe.ProcessingElement`), against the same golden model.

``rect`` (2x3, four 2-bit blocks, P = 2: q that does not divide P) takes random GEMMs
under backpressure, corner values in every standard mode and every (blocks, kept,
selection) operand, and the cycle model; ``rect_vrq_skip`` (the same array with VRQ
operands, block positions up to 8, and the zero-skipping array) takes every mode at six
densities with skipping off and on, and VRQ words. Each design is one Verilator build
(minutes), so the tests are marked ``slow`` as well as ``rtl``.
"""

import pytest

from qforge.sim.bench.rtl import build
from tests.configs import design_config, with_pe
from tests.sim.bench import test_rtl as dense_tests
from tests.sim.bench import test_rtl_skipping as skipping_tests

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

PE = "signed_product"
_built = {}


@pytest.fixture(scope="module")
def rtl_signed():
    """Like tests/sim/conftest.py's ``rtl``, for the design ``name`` with
    ``arithmetic.pe = "signed_product"``."""
    def get(name, simulator="verilator"):
        assert simulator == "verilator"
        if name not in _built:
            _built[name] = build(with_pe(design_config(name), PE),
                                 log=lambda message: None)
        assert _built[name].config.pe == PE
        return _built[name]
    return get


@pytest.mark.parametrize("test", [dense_tests.test_random_gemms_with_backpressure,
                                  dense_tests.test_corner_values_every_mode,
                                  dense_tests.test_cycle_model_equals_rtl],
                         ids=lambda test: test.__name__)
def test_dense_array(rtl_signed, test):
    test(rtl_signed, "rect")


def test_skipping_array_every_mode(rtl_signed):
    skipping_tests.test_random_densities_every_mode_skip_on_and_off(rtl_signed,
                                                                    "rect_vrq_skip")


def test_skipping_array_vrq_words(rtl_signed):
    skipping_tests.test_vrq_operands_with_code_zero_are_skipped(rtl_signed)
