"""Fixtures for the cocotb integration tests: each design is generated and compiled once
per simulator per test session (``qforge.sim.bench.rtl.build`` also reuses an unchanged
build from an earlier session)."""

import pytest

from qforge.sim.model.spec import from_dict, load_preset
from qforge.sim.bench.rtl import build
from qforge.gen.tools import have_icarus

#: A small non-square array with 2-bit blocks: rows/cols mix-ups and q that does not
#: divide P (e.g. La = 3, Lb = 1 with P = 2) show up here.
RECT = {"name": "rect", "array": {"rows": 2, "cols": 3},
        "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                       "max_reduction_depth": 256, "output_width": 8},
        "buffers": {"depth": 128}}


#: Zero-skipping designs (tests/sim/test_rtl_skipping.py): ``tiny_skip`` is the tiny
#: preset built as the zero-skipping array (square 2x2, 4-bit blocks, P = 2);
#: ``rect_vrq_skip`` is RECT (2x3: fewer rows than columns, so a column group of R x C
#: columns and PE rows vs columns cannot be confused; q = 3 with P = 2) with a [vrq]
#: section (A operands with code 0 are skipped whatever their sign and range bits) and
#: a [zero_skipping] section. Both use one max_reduction_depth dot product of B per PE
#: bank and half (:meth:`Config.with_zero_skipping`).
SKIPPING_DESIGNS = {
    "tiny_skip": lambda: load_preset("tiny").with_zero_skipping(),
    "rect_vrq_skip": lambda: from_dict(
        RECT | {"name": "rect_vrq", "vrq": {"code_width": 4, "range_stride": 2, "ranges": 8}},
        source="tests").with_zero_skipping(),
}


def design_config(name):
    if name in SKIPPING_DESIGNS:
        return SKIPPING_DESIGNS[name]()
    return from_dict(RECT, source="tests") if name == "rect" else load_preset(name)


_built = {}


@pytest.fixture(scope="session")
def rtl():
    """``rtl(config_name, simulator)`` -> a compiled design (built on first use)."""
    def get(name, simulator="verilator"):
        if simulator == "icarus" and not have_icarus():
            pytest.skip("Icarus Verilog not installed (optional: apt-get install iverilog)")
        key = (name, simulator)
        if key not in _built:
            _built[key] = build(design_config(name), simulator, log=lambda message: None)
        return _built[key]
    return get
