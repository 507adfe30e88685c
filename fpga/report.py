"""What a board build made, read from the tools' own output only, and its renderings
(``report.json``, ``report.md``, the text ``qforge build`` prints).

* nextpnr's ``--report`` JSON: ``utilization`` (for each bel type, ``used`` and
  ``available``) and ``fmax`` (for each clock net, ``achieved`` and ``constraint`` in
  MHz); :func:`parse_nextpnr_report`. When placement fails, the packing counts of its
  log: :func:`parse_nextpnr_log`.
* Yosys's ``stat -json`` (:func:`qforge.fpga.area.parse_stat`): the mapped cells, for
  what nextpnr does not count separately (an iCE40 logic cell holds a LUT4, a carry and
  a flip-flop; nextpnr reports only ``ICESTORM_LC``; ECP5 carries ``CCU2C`` are packed
  into ``TRELLIS_COMB`` slots); :func:`resources_from_reports`.

:class:`BuildReport` holds one build's numbers; :meth:`BuildReport.to_dict` is
``report.json``, :func:`markdown_report` is ``report.md`` and :func:`format_report` what
``qforge build`` prints.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from qforge.fpga.area import FAMILIES, summarize
from qforge.fpga.dsp import DSP_CELL, DspDecision
from qforge.fpga.pll import format_mhz

__all__ = ["Resource", "ClockTiming", "parse_nextpnr_report", "parse_nextpnr_log",
           "resources_from_reports", "clocks_from_report", "BuildReport",
           "markdown_report", "format_report"]

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
    #: The configuration (:meth:`~qforge.sim.model.spec.Config.to_dict`), for readers of
    #: ``report.json`` (``qforge results``: the precision modes).
    spec: dict | None = None
    #: The DSP cells Yosys made, by the source line of the multiplier each holds
    #: (:func:`dsp_sources` of ``dsp_cells.txt``); None if not recorded.
    dsp_cells: dict[str, int] | None = None
    #: "built", or "failed" (a step failed: :attr:`failed_step`, :attr:`error`, and the
    #: resources are nextpnr's packing counts from its log, if it got that far).
    status: str = "built"
    failed_step: str | None = None
    error: str | None = None
    #: The tool's own ``ERROR`` lines from the failed step's log.
    tool_errors: list[str] = field(default_factory=list)
    date: str = ""                           #: when the build finished (UTC, ISO 8601)
    git: str | None = None                   #: ``git describe --always --dirty`` of the tree

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
    def dsp_count(self) -> int | None:
        """The DSP multiplier cells (SB_MAC16, MULT18X18D) in Yosys's ``stat``; None
        without a synthesized netlist."""
        cell = DSP_CELL.get(self.family)
        if not self.synth_cells or cell is None:
            return None
        return self.synth_cells.get(cell, 0)

    @property
    def block_multipliers_in_dsp(self) -> int | None:
        """How many block multipliers the DSP cells hold, by their ``src`` (None if not
        recorded)."""
        if self.dsp_cells is None:
            return None
        return sum(count for source, count in self.dsp_cells.items()
                   if source.endswith("(block multiplier)"))

    @property
    def dsp_result(self) -> str | None:
        """What went to DSP blocks, from the tools: Yosys's ``stat`` count of the DSP
        cell, the sources of those cells (``dsp_cells.txt``) and nextpnr's placement.
        None without a synthesized netlist."""
        count = self.dsp_count
        if count is None:
            return None
        cell = DSP_CELL[self.family]
        text = f"Yosys made {count} {cell} (stat)"
        if count and self.dsp_cells is not None:
            blocks = self.block_multipliers_in_dsp
            text += (" from " + ", ".join(f"{number} x {source}" for source, number
                                          in self.dsp_cells.items())
                     + f": {blocks} of the {self.dsp.multipliers} block multipliers are in "
                       f"DSP blocks, {self.dsp.multipliers - blocks} in LUTs")
        elif not count:
            text += ": every multiplier is built from LUTs"
        try:
            placed = self.resource("DSP")
            if self.status == "built":
                text += f"; nextpnr placed {placed.used} of {placed.available} {placed.cell}"
        except KeyError:
            pass
        return text

    @property
    def dsp_summary(self) -> str:
        """The DSP decision and what the tools then made of it."""
        result = self.dsp_result
        return f"{self.dsp.reason}. Result: {result}." if result else self.dsp.reason + "."

    def to_dict(self) -> dict:
        return {
            "status": self.status, "failed_step": self.failed_step, "error": self.error,
            "tool_errors": self.tool_errors,
            "board": self.board, "device": self.device, "family": self.family,
            "config": self.config, "array": f"{self.rows}x{self.cols}",
            "rows": self.rows, "cols": self.cols,
            "pe_count": self.pe_count, "block_multipliers": self.block_multipliers,
            "requested_clock_hz": self.requested_clock_hz, "clock_hz": self.clock_hz,
            "pll": self.pll, "baud_rate": self.baud_rate,
            "actual_baud_rate": self.actual_baud_rate,
            "resources": [row.to_dict() for row in self.resources],
            "clocks": [clock.to_dict() for clock in self.clocks],
            "timing_met": self.timing_met,
            "dsp": {"use_dsp": self.dsp.use_dsp, "option": self.dsp.option,
                    "block_multipliers": self.dsp.multipliers,
                    "capacity": self.dsp.capacity, "reason": self.dsp.reason,
                    "mapped": [{"cell": mul.name, "size": mul.size, "source": mul.source,
                                "block": mul.block} for mul in self.dsp.mapped],
                    "dsp_cells": self.dsp_count, "sources": self.dsp_cells,
                    "block_multipliers_in_dsp": self.block_multipliers_in_dsp,
                    "result": self.dsp_result, "decision": self.dsp_summary},
            "synth_cells": self.synth_cells, "tools": self.tools,
            "seconds": self.seconds, "build_dir": str(self.build_dir),
            "bitstream": str(self.bitstream) if self.bitstream else None,
            "logs": {name: str(path) for name, path in self.logs.items()},
            "programmed": self.programmed, "yosys_workaround": self.yosys_workaround,
            "spec": self.spec, "date": self.date, "git": self.git,
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
             f"- DSP: {report.dsp_summary}"]
    if report.status == "failed":
        lines += [f"- **build failed** in {report.failed_step}: {_first_line(report.error)}"]
        if report.tool_errors:
            lines += ["", "```", *report.tool_errors, "```"]
        lines += ["", "Resources: nextpnr's packing counts (from its log) and Yosys's cells, "
                      "as far as the build got."]
    else:
        lines += [f"- timing: {'met' if report.timing_met else 'MISSED'}",
                  f"- bitstream: {report.bitstream or '(not packed: report only)'}"]
    lines += ["", "| resource | cell | used | available | use | counted by |",
              "|---|---|---:|---:|---:|---|"]
    for row in report.resources:
        lines.append(f"| {row.name} | {row.cell} | {row.used} | {row.available} "
                     f"| {_percent(row)} | {row.source} |")
    if report.status != "failed":
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


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "(no message)"


def format_report(report: BuildReport) -> str:
    """The human-readable report ``qforge build`` prints."""
    width = max((len(row.name) for row in report.resources), default=0)
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
    if report.status == "failed":
        lines.append(f"  FAILED     in {report.failed_step}: {_first_line(report.error)}")
        lines += [f"             {line}" for line in report.tool_errors]
    lines.append("  times      " + ", ".join(f"{step} {seconds:.1f} s"
                                            for step, seconds in report.seconds.items()))
    lines.append("  tools      " + "; ".join(f"{tool} {version}"
                                            for tool, version in report.tools.items()))
    lines.append(f"  bitstream  {report.bitstream or '(not packed: report only)'}"
                 + ("  (programmed)" if report.programmed else ""))
    lines.append(f"  logs       {report.build_dir} (report.json, report.md, "
                 + ", ".join(path.name for path in report.logs.values()) + ")")
    return "\n".join(lines)
