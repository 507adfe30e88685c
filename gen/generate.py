"""Verilog generation: elaborate the Amaranth top level for a configuration, write the
Verilog and a JSON manifest describing it, and lint the result.

The manifest (``manifest.json`` next to ``qforge_top.v``) holds the full configuration,
every derived width, the generator and Amaranth versions and the port map: each Verilog
port's name, direction and width, and for each stream its payload layout as
``(path, offset, width, signed)`` fields, so tools in any language can pack beats.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import stream, wiring

from qforge.sim.model.errors import QforgeError
from qforge.sim.model.spec import Config
from qforge.hdl.layouts import layout_fields
from qforge.hdl.top import Accelerator
from qforge.gen.tools import tool_environment

__all__ = ["TOP_NAME", "LINKED_TOP_NAME", "CORE_TOP_NAME", "LinkSettings", "Design", "render", "write",
           "generate", "fingerprint", "port_map", "lint", "LintError", "lint_waivers",
           "is_generated"]

#: Verilog module (and file) name of the generated top level.
TOP_NAME = "qforge_top"
#: Verilog module name of the accelerator with its UART host link
#: (:class:`qforge.hdl.link.LinkedAccelerator`): what the FPGA board tops instantiate.
LINKED_TOP_NAME = "qforge_linked"
#: Verilog module name of the programmable accelerator (:class:`qforge.hdl.core.Core`:
#: instruction decoder, accelerator and addend stage; docs/ISA.md).
CORE_TOP_NAME = "qforge_core"


@dataclass(frozen=True)
class LinkSettings:
    """Build the accelerator with its UART host link (:class:`LinkedAccelerator`) at this
    clock frequency and baud rate (Hz), instead of the bare stream ports."""

    clock_frequency: float
    baud_rate: float


class LintError(QforgeError, RuntimeError):
    """``verilator --lint-only -Wall`` reported warnings not waived in ``gen/lint.vlt``."""


@dataclass(frozen=True)
class Design:
    """A generated design on disk."""

    config: Config
    directory: Path
    verilog: Path
    manifest: Path
    fingerprint: str     #: hash of the Verilog text; names simulator build folders


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def port_map(top: wiring.Component) -> dict:
    """Ports and stream payload layouts of a top level, as written into the manifest."""
    ports = [{"name": "clk", "direction": "in", "width": 1},
             {"name": "rst", "direction": "in", "width": 1}]
    streams = {}
    for name, member in top.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            direction = "in" if member.flow == wiring.In else "out"
            payload = member.signature.members["payload"].shape
            fields = [{"path": path, "offset": offset, "width": width, "signed": signed}
                      for path, offset, width, signed in layout_fields(payload)]
            width = sum(field["width"] for field in fields)
            streams[name] = {"direction": direction, "payload_width": width,
                             "fields": fields}
            flipped = "out" if direction == "in" else "in"
            ports += [{"name": f"{name}__payload", "direction": direction, "width": width},
                      {"name": f"{name}__valid", "direction": direction, "width": 1},
                      {"name": f"{name}__ready", "direction": flipped, "width": 1}]
        else:
            direction = "in" if member.flow == wiring.In else "out"
            ports.append({"name": name, "direction": direction,
                          "width": Shape.cast(member.shape).width})
    return {"ports": ports, "streams": streams}


def render(config: Config, link: LinkSettings | None = None, *,
           programmable: bool = False) -> tuple[str, dict]:
    """Elaborate ``config``: return the Verilog text and the manifest dictionary.

    With ``link``, the design is the accelerator behind its UART host link
    (:class:`qforge.hdl.link.LinkedAccelerator`, module :data:`LINKED_TOP_NAME`) and the
    manifest records the link settings. With ``programmable``, it is the accelerator
    with its instruction decoder (:class:`qforge.hdl.core.Core`, module
    :data:`CORE_TOP_NAME`).
    """
    if link is not None and programmable:
        raise ValueError("programmable: the UART link carries commands, not instructions; "
                         "choose one of link and programmable")
    if programmable:
        from qforge.hdl.core import Core

        top, name = Core(config), CORE_TOP_NAME
    elif link is None:
        top, name = Accelerator(config), TOP_NAME
    else:
        from qforge.hdl.link import LinkedAccelerator

        top = LinkedAccelerator(config, clock_frequency=link.clock_frequency,
                                baud_rate=link.baud_rate)
        name = LINKED_TOP_NAME
    text = verilog.convert(top, name=name, emit_src=False)
    manifest = {
        "generator": {"name": "qforge", "version": _version("qforge"),
                      "amaranth": _version("amaranth")},
        "top": name,
        "verilog": f"{name}.v",
        "verilog_sha256_16": fingerprint(text),
        "config": config.to_dict(),
        "derived": config.derived(),
        **port_map(top),
    }
    if link is not None:
        manifest["link"] = {"clock_frequency": link.clock_frequency,
                            "baud_rate": link.baud_rate}
    return text, manifest


def fingerprint(text: str) -> str:
    """First 16 hex digits of the SHA-256 of a Verilog text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write(config: Config, text: str, manifest: dict, directory: str | Path) -> Design:
    """Write a rendered design into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    verilog_path = directory / manifest["verilog"]
    verilog_path.write_text(text)
    manifest_path = directory / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return Design(config, directory, verilog_path, manifest_path, manifest["verilog_sha256_16"])


def generate(config: Config, directory: str | Path, *, programmable: bool = False) -> Design:
    """Write ``qforge_top.v`` (with ``programmable``: ``qforge_core.v``, the accelerator
    with its instruction decoder) and ``manifest.json`` for ``config`` into
    ``directory``."""
    text, manifest = render(config, programmable=programmable)
    return write(config, text, manifest, directory)


def is_generated(verilog_path: str | Path) -> bool:
    """Whether ``verilog_path`` is a file qforge wrote, unchanged: a ``manifest.json``
    beside it names it and holds its fingerprint. Only such files get qforge's lint
    waivers; any other Verilog gets Verilator's every warning."""
    path = Path(verilog_path)
    try:
        manifest = json.loads((path.parent / "manifest.json").read_text())
        return (manifest.get("verilog") == path.name
                and manifest.get("verilog_sha256_16") == fingerprint(path.read_text()))
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return False


def lint_waivers() -> Path:
    """The Verilator configuration file with qforge's documented lint waivers."""
    return Path(str(resources.files("qforge.gen") / "lint.vlt"))


_WARNING = re.compile(r"^%(Warning|Error)-?([A-Z0-9_]*)")


def lint(verilog_path: str | Path, *, waivers: bool = True) -> list[str]:
    """Run ``verilator --lint-only -Wall`` (with qforge's waivers, :func:`lint_waivers`,
    when ``waivers``: they are for the generator's own output, see :func:`is_generated`);
    return the message lines.

    An empty list means clean. Raises :class:`LintError` if Verilator fails for any
    other reason than warnings. The file is passed by its absolute path, so a name that
    starts with ``-`` is never read as an option.
    """
    environment = tool_environment()
    waiver_files = [str(lint_waivers())] if waivers else []
    process = subprocess.run(
        ["verilator", "--lint-only", "-Wall", *waiver_files,
         str(Path(verilog_path).absolute())],
        capture_output=True, text=True, env=environment)
    lines = [line for line in process.stderr.splitlines() if _WARNING.match(line)
             and not line.startswith("%Error: Exiting due to")]
    if process.returncode != 0 and not lines:
        raise LintError(f"verilator failed (exit {process.returncode}): {process.stderr}")
    return lines
