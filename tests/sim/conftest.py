"""Fixtures for the cocotb integration tests: each design is generated and compiled once
per simulator per test session (``qforge.sim.bench.rtl.build`` also reuses an unchanged
build from an earlier session)."""

import pytest

from qforge.sim.bench.rtl import build
from qforge.gen.tools import have_icarus
from tests.configs import design_config


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
