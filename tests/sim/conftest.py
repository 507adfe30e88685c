"""Fixtures for the cocotb integration tests: each design is generated and compiled once
per simulator per test session (``qforge.sim.rtl.build`` also reuses an unchanged
build from an earlier session)."""

import pytest

from qforge.gen.spec import from_dict, load_preset
from qforge.sim.rtl import build
from qforge.sim.tools import have_icarus

#: A small non-square array with 2-bit blocks: rows/cols mix-ups and q that does not
#: divide P (e.g. La = 3, Lb = 1 with P = 2) show up here.
RECT = {"name": "rect", "array": {"rows": 2, "cols": 3},
        "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                       "max_reduction_depth": 256, "output_width": 8},
        "buffers": {"depth": 128}}


def design_config(name):
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
