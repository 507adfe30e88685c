"""``docs/RESULTS.md`` from real builds: ``qforge results``.

``qforge results`` runs ``qforge build --board B --preset P --report-only`` for each
(board, preset) pair (default :data:`DEFAULT_PAIRS`), or with ``--reuse`` only reads the
``report.json`` each build left in its folder (``build/board/<board>-<preset>/``, or
``$QFORGE_BUILD/board/...``), and writes one Markdown report (:func:`render_results`)
that says how it was made (commands, tools, date, commit) and, per build, the
utilization, LUTs per PE, fmax against the constraint, the DSP decision, the build time
and the peak throughput of every precision mode. Every number is parsed from the tools'
own output (nextpnr's ``--report`` JSON, Yosys's ``stat -json`` and its ``dump`` of the
DSP cells; for a build that failed, nextpnr's log and the tools' ``ERROR`` lines) by
:mod:`qforge.fpga.build`, which wrote ``report.json``; nothing here is estimated.

**Peak throughput** (:func:`peak_gops`): ``2 x MACs/cycle x f`` (a multiply-accumulate
is two operations), with ``MACs/cycle = rows x cols x P / q``: each PE's ``P`` block
multipliers each make one ``K x K``-bit block product per cycle, and one MAC of a
precision mode needs ``q = La x Lb`` of them
(:func:`qforge.sim.model.numerics.standard_modes`), or the products the PE design
issues instead (:func:`qforge.sim.model.cycles.issued_block_products`: a dynamic mode
with ``arithmetic.pe = "shared_shift"`` walks all ``n x n`` block pairs; the table's q
stays ``La x Lb``). That is the ideal of the dense array,
every block multiplier busy every cycle (no loading, draining or host-link stalls), at
the clock the build was made for and at the fmax nextpnr achieved:

    >>> from qforge.sim.model.spec import load_preset
    >>> rates = mode_rates(load_preset("tiny"))     # 2x2 PEs, P = 1
    >>> [(rate.mode, rate.q, int(rate.macs_per_cycle)) for rate in rates][:3]
    [('exact', 4, 1), ('reduced', 1, 4), ('mixed', 2, 2)]
    >>> round(peak_gops(1, 24e6), 6)      # exact 8-bit MACs of the tiny 2x2 array at 24 MHz
    0.048

Over 500 lines: one concept, RESULTS.md; most of it is the Markdown rendering of one
report (its sections and tables), which reads best next to the throughput it prints.
"""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

from qforge.fpga.boards import board_named
from qforge.fpga.flow import default_build_dir
from qforge.fpga.toolchain import git_version
from qforge.sim.model.errors import QforgeError

__all__ = ["DEFAULT_PAIRS", "ModeRate", "macs_per_cycle", "peak_gops", "mode_rates",
           "sync_clock", "build_command", "select_pairs", "BuildEntry", "collect",
           "render_results", "results", "ResultsError", "MissingReportError"]

#: Where progress goes when the caller gives no ``log`` function.
LOGGER = logging.getLogger(__name__)


class ResultsError(QforgeError, ValueError):
    """A (board, preset) selection, output file or saved report ``qforge results`` cannot
    use; the message names it."""


class MissingReportError(QforgeError, FileNotFoundError):
    """``reuse``: a pair's build folder holds no ``report.json``; the message names the
    command that makes it."""

#: The builds ``qforge results`` makes by default: (board, preset).
DEFAULT_PAIRS = (("icebreaker", "tiny"), ("ulx3s-85f", "tiny"), ("ulx3s-85f", "default"),
                 ("ulx3s-85f", "ulx3s"), ("ulx3s-85f", "fused"))


# -- throughput ----------------------------------------------------------------------

@dataclass(frozen=True)
class ModeRate:
    """One precision mode's ideal rate on a configuration's array."""

    mode: str
    description: str       #: the operands' blocks (``A: 2 blocks; B: 2 blocks``)
    q: int                 #: block products per MAC of the mode, ``La x Lb``
    macs_per_cycle: Fraction
    bits: str = ""         #: the magnitude bits kept of A and B (``8x4``)


def macs_per_cycle(rows: int, cols: int, block_multipliers: int, q: int) -> Fraction:
    """MACs per clock cycle of the dense array: ``rows x cols x P / q`` (``P / q`` per PE).

    >>> macs_per_cycle(8, 8, 4, 16), macs_per_cycle(2, 2, 2, 1)
    (Fraction(16, 1), Fraction(8, 1))
    """
    for name, value in (("rows", rows), ("cols", cols), ("block_multipliers",
                                                          block_multipliers), ("q", q)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} = {value!r}: must be a positive integer")
    return Fraction(rows * cols * block_multipliers, q)


def peak_gops(macs: Fraction | float, clock_hz: float) -> float:
    """Peak giga-operations per second of ``macs`` MACs per cycle at ``clock_hz``: two
    operations (a multiply and an add) per MAC.

    >>> peak_gops(64, 50e6)
    6.4
    """
    if not macs >= 0 or not clock_hz >= 0:
        raise ValueError(f"macs = {macs!r}, clock_hz = {clock_hz!r}: must not be negative")
    return 2 * float(macs) * clock_hz / 1e9


def mode_rates(config) -> list[ModeRate]:
    """Every standard precision mode of ``config`` with its ``q = La x Lb`` and MACs per
    cycle, the latter from the block products ``config``'s PEs issue per MAC
    (:func:`qforge.sim.model.cycles.issued_block_products`: more than q for a dynamic
    mode with ``arithmetic.pe = "shared_shift"``)."""
    from qforge.sim.model.cycles import issued_block_products
    from qforge.sim.model.numerics import standard_modes

    k = config.block_width
    return [ModeRate(mode, precision.describe(), precision.block_products,
                     macs_per_cycle(config.rows, config.cols, config.block_multipliers,
                                    issued_block_products(config, precision)),
                     f"{precision.a.kept * k}x{precision.b.kept * k}")
            for mode, precision in standard_modes(config).items()]


def sync_clock(report: dict) -> dict | None:
    """The clock entry of ``report`` (a ``report.json`` dict) that times the design's
    ``sync`` clock: the one whose constraint is the PLL's frequency; else the slowest.

    >>> sync_clock({"clock_hz": 24e6, "clocks": [
    ...     {"net": "clk12", "achieved_mhz": 300.0, "constraint_mhz": 12.0},
    ...     {"net": "clk", "achieved_mhz": 31.8, "constraint_mhz": 24.000383}]})["net"]
    'clk'
    """
    clocks = report.get("clocks") or []
    if not clocks:
        return None
    target = report.get("clock_hz", 0) / 1e6
    close = [clock for clock in clocks
             if target and abs(clock["constraint_mhz"] - target) <= 1e-3 * target]
    return min(close or clocks, key=lambda clock: clock["achieved_mhz"])


# -- pairs and builds ----------------------------------------------------------------

def build_command(board: str, preset: str) -> list[str]:
    """The ``qforge build`` command line of one pair, as run and as documented.

    >>> " ".join(build_command("icebreaker", "tiny"))
    'qforge build --board icebreaker --preset tiny --report-only'
    """
    return ["qforge", "build", "--board", board, "--preset", preset, "--report-only"]


def select_pairs(boards=(), presets=()) -> list[tuple[str, str]]:
    """The (board, preset) pairs to report: :data:`DEFAULT_PAIRS` with the given boards
    or presets only; every given board with every given preset when both are given.

    >>> select_pairs(["ulx3s-85f"], [])
    [('ulx3s-85f', 'tiny'), ('ulx3s-85f', 'default'), ('ulx3s-85f', 'ulx3s'), ('ulx3s-85f', 'fused')]
    >>> select_pairs([], ["tiny"])
    [('icebreaker', 'tiny'), ('ulx3s-85f', 'tiny')]
    >>> select_pairs(["icebreaker"], ["tiny", "default"])
    [('icebreaker', 'tiny'), ('icebreaker', 'default')]
    """
    boards, presets = list(dict.fromkeys(boards)), list(dict.fromkeys(presets))
    for board in boards:
        board_named(board)
    if boards and presets:
        return [(board, preset) for board in boards for preset in presets]
    pairs = [(board, preset) for board, preset in DEFAULT_PAIRS
             if (not boards or board in boards) and (not presets or preset in presets)]
    if not pairs:
        raise ResultsError(f"no default (board, preset) pair has "
                           f"{' or '.join(boards or presets)}: give both --board and "
                           f"--preset (default pairs: "
                           f"{', '.join(f'{b} x {p}' for b, p in DEFAULT_PAIRS)})")
    return pairs


@dataclass
class BuildEntry:
    """One pair's build: its command and the ``report.json`` it left (None if none, then
    ``message`` says why)."""

    board: str
    preset: str
    command: list[str]
    report: dict | None
    message: str | None = None    #: the build's own error when it left no report
    reused: bool = False

    @property
    def failed(self) -> bool:
        """Whether the build failed (it left no report, or a report of a failed build)."""
        return _status(self.report) == "failed"


def _build_dir(board: str, preset: str) -> Path:
    from qforge.sim.model.spec import load_preset

    return default_build_dir(board_named(board), load_preset(preset))


def _read_report(path: Path) -> dict:
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path}: not a report.json ({error})") from None
    if not isinstance(report, dict) or "board" not in report or "config" not in report:
        raise ResultsError(f"{path}: not a qforge build report.json (no board / config)")
    if not report.get("date"):
        report["date"] = datetime.datetime.fromtimestamp(
            path.stat().st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
    return report


def _run_qforge_build(board: str, preset: str, log) -> tuple[int, list[str]]:
    """Run ``qforge build`` for one pair (this Python's qforge), passing its progress to
    ``log``; its exit status and its last lines of standard error."""
    command = [sys.executable, "-m", "qforge.gen.cli", *build_command(board, preset)[1:]]
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, errors="replace") as process:
        try:
            for line in process.stderr:
                line = line.rstrip("\n")
                log(f"  {line}")
                tail = (tail + [line])[-20:]
            status = process.wait()
        except BaseException:
            # Interrupted (Ctrl-C): do not leave the build running.
            process.kill()
            process.wait()
            raise
    return status, tail


def collect(pairs, *, reuse: bool = False, log=None, run=None) -> list[BuildEntry]:
    """One :class:`BuildEntry` per pair: ``run`` (default: ``qforge build ...
    --report-only`` in a subprocess) each in turn, or with ``reuse`` only read its
    ``report.json`` (:class:`MissingReportError`, a ``FileNotFoundError``, naming the
    command that makes it when there is none). ``log``: called with progress messages
    (default: :data:`LOGGER`'s ``info``)."""
    log = LOGGER.info if log is None else log
    run = run or _run_qforge_build
    entries = []
    for board, preset in pairs:
        folder = _build_dir(board, preset)
        path = folder / "report.json"
        command = build_command(board, preset)
        if reuse:
            if not path.exists():
                raise MissingReportError(
                    f"--reuse: no report.json in {folder}: build it first "
                    f"({' '.join(command)}) or leave out --reuse")
            entries.append(BuildEntry(board, preset, command, _read_report(path),
                                      reused=True))
            continue
        log(f"qforge results: {' '.join(command)}")
        started = time.time()
        status, tail = run(board, preset, log)
        fresh = path.exists() and path.stat().st_mtime >= started - 1
        if fresh:
            entries.append(BuildEntry(board, preset, command, _read_report(path)))
        else:
            errors = [line for line in tail if "error" in line.lower()] or tail[-3:]
            entries.append(BuildEntry(
                board, preset, command, None,
                "\n".join(errors) or f"qforge build exited with status {status} and wrote "
                                     f"no report"))
        log(f"qforge results: {board} x {preset}: "
            + ("built" if fresh and entries[-1].report.get("status", "built") == "built"
               else "FAILED"))
    return entries


# -- rendering -----------------------------------------------------------------------

def _config_of(report: dict):
    """The configuration a report was built from: its ``spec``, else (an older report,
    or a spec this version no longer reads) the preset of its name, checked against the
    report's array."""
    from qforge.sim.model.spec import ConfigError, from_dict, load_preset

    if report.get("spec"):
        try:
            return from_dict(report["spec"])
        except ConfigError:
            pass                  # a spec of an older schema: the preset, checked below
    config = load_preset(report["config"])
    rows, cols = _array(report)
    if (config.rows, config.cols, config.block_multipliers) != \
            (rows, cols, report.get("block_multipliers")):
        raise ResultsError(f"the report of {report['board']} x {report['config']} "
                           f"({rows}x{cols}, P = {report.get('block_multipliers')}) does not "
                           f"match the preset {report['config']!r} now ({config.rows}x"
                           f"{config.cols}, P = {config.block_multipliers}): build it again")
    return config


def _array(report: dict) -> tuple[int, int]:
    if "rows" in report and "cols" in report:
        return int(report["rows"]), int(report["cols"])
    rows, _, cols = str(report["array"]).partition("x")
    return int(rows), int(cols)


def _resource(report: dict, name: str) -> dict | None:
    for row in report.get("resources") or []:
        if row["name"] == name:
            return row
    return None


def _used(row: dict | None) -> str:
    if row is None:
        return "-"
    share = f" ({row['used'] / row['available']:.1%})" if row["available"] else ""
    return f"{row['used']} / {row['available']}{share}"


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:.2f}"


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.3f}"


def _gops(value: float) -> str:
    return f"{value:.3f}"


def _status(report: dict | None) -> str:
    if report is None:
        return "failed"
    return report.get("status") or "built"


def _seconds(report: dict) -> str:
    seconds = report.get("seconds") or {}
    total = seconds.get("total")
    if total is None:
        return "-"
    steps = ", ".join(f"{step} {value:.0f} s" for step, value in seconds.items()
                      if step != "total")
    return f"{total:.0f} s ({steps})" if steps else f"{total:.0f} s"


def _first_line(text: str | None) -> str:
    text = (text or "").strip()
    return text.splitlines()[0] if text else "(no message)"


def _luts_per_pe(report: dict) -> str:
    row = _resource(report, "LUT4")
    if row is None:
        return "-"
    rows, cols = _array(report)
    value = Decimal(row["used"]) / Decimal(rows * cols)
    return str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _total_seconds(report: dict) -> str:
    total = (report.get("seconds") or {}).get("total")
    return "-" if total is None else f"{total:.0f} s"


def _summary_row(entry: BuildEntry) -> str:
    report = entry.report
    if report is None:
        return (f"| {entry.board} | - | {entry.preset} | - | - | - | - | - | - | - | - | - "
                f"| - | - | - | failed: {_first_line(entry.message)} | - |")
    rows, cols = _array(report)
    clock = sync_clock(report)
    fmax = f"{clock['achieved_mhz']:.2f}" if clock else "-"
    if _status(report) == "failed":
        timing = f"failed ({report.get('failed_step')})"
    elif clock is None:
        timing = "no clock reported"
    else:
        timing = "met" if report.get("timing_met") else "MISSED"
    return (f"| {report['board']} | {report['device']} | {report['config']} | {rows}x{cols} "
            f"| {report['block_multipliers']} | {rows * cols} "
            f"| {_used(_resource(report, 'logic cells'))} "
            f"| {_used(_resource(report, 'LUT4'))} | {_used(_resource(report, 'flip-flops'))} "
            f"| {_used(_resource(report, 'carry'))} | {_used(_resource(report, 'DSP'))} "
            f"| {_used(_resource(report, 'block RAM'))} | {_luts_per_pe(report)} "
            f"| {_mhz(report['clock_hz'])} | {fmax} | {timing} | {_total_seconds(report)} |")


def _entry_section(entry: BuildEntry) -> list[str]:
    report = entry.report
    title = f"### {entry.board} x {entry.preset}"
    if report is None:
        return [title, "", f"Command: `{' '.join(entry.command)}`", "",
                "**The build failed and left no report.** Its own message:", "", "```",
                *(entry.message or "(none)").splitlines(), "```", ""]
    rows, cols = _array(report)
    config = _config_of(report)
    status = _status(report)
    lines = [f"{title}: {report['device']}, {rows}x{cols} array"
             + (" (FAILED)" if status == "failed" else ""), "",
             f"- command: `{' '.join(entry.command)}`"
             + (" (report reused)" if entry.reused else ""),
             f"- configuration: {report['config']}: {rows}x{cols} PEs ({rows * cols}), "
             f"P = {report['block_multipliers']} block multipliers of "
             f"{config.block_width}x{config.block_width} bits per PE, "
             f"{config.operand_width}-bit operands ({config.blocks} blocks each)",
             f"- built: {report.get('date', '-')}, commit {report.get('git') or 'unknown'}; "
             f"build time {_seconds(report)}",
             f"- clock: {_mhz(report['clock_hz'])} MHz from the PLL (requested "
             f"{_mhz(report['requested_clock_hz'])} MHz)"]
    if status == "failed":
        lines += [f"- **failed in {report.get('failed_step')}**: "
                  f"{_first_line(report.get('error'))}"]
        if report.get("tool_errors"):
            lines += ["", "  The tool's own message:", "", "  ```",
                      *(f"  {line}" for line in report["tool_errors"]), "  ```"]
    else:
        for clock in report.get("clocks") or []:
            lines.append(f"- timing, clock `{clock['net']}`: fmax {clock['achieved_mhz']:.2f} "
                         f"MHz against a {clock['constraint_mhz']:.2f} MHz constraint: "
                         + ("met" if clock["met"] else "**MISSED**"))
        if not report.get("clocks"):
            lines.append("- timing: nextpnr reported no clock")
    dsp = report.get("dsp") or {}
    lines.append(f"- DSP: {dsp.get('decision') or dsp.get('reason') or '-'}")
    if report.get("yosys_workaround"):
        lines.append(f"- Yosys's plain script failed (Yosys issue #4349); synthesized after "
                     f"`{report['yosys_workaround']}`")
    lines += ["", ("Resources (the build failed: nextpnr's packing counts from its log, "
                   "before placement, and Yosys's cells):" if status == "failed"
                   else "Resources:"), "",
              "| resource | cell | used | available | use | counted by |",
              "|---|---|---:|---:|---:|---|"]
    for row in report.get("resources") or []:
        share = f"{row['used'] / row['available']:.1%}" if row["available"] else "-"
        lines.append(f"| {row['name']} | {row['cell']} | {row['used']} | {row['available']} "
                     f"| {share} | {row['source']} |")
    if not report.get("resources"):
        lines.append("| (none: the build stopped before the tools counted anything) "
                     "| | | | | |")
    lut = _resource(report, "LUT4")
    if lut is not None:
        lines += ["", f"LUTs per PE: **{_luts_per_pe(report)}** ({lut['used']} LUT4 "
                      f"({lut['cell']}) / {rows * cols} PEs; the total includes the UART "
                      f"link, the output stage, the buffers' control and the rest of the "
                      f"design, not the PEs alone)."]
    lines += ["", *_throughput_table(report, config, status), ""]
    return lines


def _throughput_table(report: dict, config, status: str) -> list[str]:
    clock = sync_clock(report) if status == "built" else None
    built = report["clock_hz"]
    board = board_named(report["board"])
    ceiling = board.int8_macs_per_cycle
    header = (f"| mode | operands | magnitude bits kept (A x B) | q | MACs/cycle "
              f"| of the {board.device}'s int8 ceiling ({ceiling} MACs/cycle) "
              f"| GOPS @ {_mhz(built)} MHz "
              f"({'target clock' if status == 'failed' else 'built'})")
    rule = "|---|---|---|---:|---:|---:|---:"
    if clock:
        header += f" | GOPS @ {clock['achieved_mhz']:.2f} MHz (fmax)"
        rule += "|---:"
    lines = [("Peak throughput, ideal (not achieved: the build failed):" if status == "failed"
              else "Peak throughput (ideal, dense array):"), "", header + " |", rule + "|"]
    for rate in mode_rates(config):
        line = (f"| {rate.mode} | {rate.description} | {rate.bits} | {rate.q} "
                f"| {_number(rate.macs_per_cycle)} "
                f"| {float(rate.macs_per_cycle / ceiling):.1%} "
                f"| {_gops(peak_gops(rate.macs_per_cycle, built))}")
        if clock:
            line += f" | {_gops(peak_gops(rate.macs_per_cycle, clock['achieved_mhz'] * 1e6))}"
        lines.append(line + " |")
    return lines


def _tools(entries) -> list[str]:
    versions: dict[str, list[str]] = {}
    for entry in entries:
        if entry.report is None:
            continue
        for tool, version in (entry.report.get("tools") or {}).items():
            versions.setdefault(tool, [])
            if version not in versions[tool]:
                versions[tool].append(version)
    if not versions:
        return ["- (no build reported its tools)"]
    return [f"- {tool}: {'; '.join(found)}" for tool, found in versions.items()]


def render_results(entries, *, generated: str, commit: str | None,
                   command: str = "qforge results") -> str:
    """The Markdown report of the builds (:class:`BuildEntry` list): how it was made, a
    summary table, then one section per build with its resources, timing, DSP decision
    and peak throughput per precision mode (:func:`peak_gops`)."""
    entries = list(entries)
    lines = ["# qforge on FPGAs: resources, fmax and peak throughput", "",
             f"Generated by `{command}` on {generated} from commit "
             f"{commit or 'unknown'}.", "",
             "## How these numbers were made", "",
             "Each build is `qforge build --board BOARD --preset PRESET --report-only`: the "
             "accelerator behind its UART host link in the board top (PLL, reset, LEDs), "
             "synthesized with YoWASP Yosys and placed and routed with YoWASP nextpnr "
             "(fixed seed, `--timing-allow-fail`). Every number below is parsed from the "
             "tools' own output: nextpnr's `--report` JSON (utilization per bel type, "
             "achieved fmax and constraint per clock), Yosys's `stat -json` (the mapped "
             "cells: LUT4, carry and flip-flops on the iCE40) and Yosys's `dump` of the "
             "DSP cells (the source line of the multiplier each holds); for a build that "
             "failed, nextpnr's packing counts from its log and the tools' `ERROR` lines. "
             "Only the throughput is computed, from those and the configuration.", "",
             "Commands (in the repository root):", "", "```"]
    lines += [" ".join(entry.command) for entry in entries]
    lines += [command, "```", "", "Tools (as the builds report them):", "", *_tools(entries),
              "", "Peak throughput: `GOPS = 2 x MACs/cycle x f` (a MAC is a multiply and an "
              "add), `MACs/cycle = rows x cols x P / q`, where each PE's `P` block "
              "multipliers make one `K x K`-bit block product per cycle and one MAC of a "
              "precision mode takes `q = La x Lb` block products (La, Lb: blocks kept of A "
              "and B; `qforge.sim.model.numerics.standard_modes`; with `arithmetic.pe = "
              "\"fused\"` a wide mode's MAC takes 2 lanes and a one-block MAC 1, "
              "`qforge.sim.model.cycles.issued_block_products`). This is the ideal of the "
              "dense array, every block multiplier busy every cycle: no stalls for loading, "
              "draining or the host link, which is far slower. It is given at the clock the "
              "build was made for and at the fmax nextpnr achieved, and against the "
              "device's int8 ceiling: the 8x8-bit MACs per cycle its DSP blocks make (the "
              "LFE5U-85F's 156 MULT18X18D one each: 156; the iCE40UP5K's 8 SB_MAC16 two each "
              "in their dual 8x8 mode: 16). A block-wise design passes 100% in its narrow "
              "modes.", "",
              "LUTs per PE: all LUT4 of the design divided by the PEs, so it includes the "
              "UART link, the output stage and the control; iCE40 LUT4 are Yosys's SB_LUT4 "
              "cells, ECP5 LUT4 nextpnr's TRELLIS_COMB slots (LUTs and carry halves).", "",
              "## Summary", "",
              "| board | device | preset | array | P | PEs | logic cells | LUT4 | FF | carry "
              "| DSP | BRAM | LUTs/PE | clock (MHz) | fmax (MHz) | timing | build time |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
              "---:|"]
    lines += [_summary_row(entry) for entry in entries]
    lines += ["", "## Builds", ""]
    for entry in entries:
        lines += _entry_section(entry)
    return "\n".join(lines).rstrip("\n") + "\n"


def _git_commit() -> str | None:
    return git_version()


def results(pairs, output, *, reuse: bool = False, log=None, run=None,
            command: str = "qforge results") -> list[BuildEntry]:
    """Build (or with ``reuse`` read) each pair and write the Markdown report to
    ``output``; the entries. ``log``: called with progress messages (default:
    :data:`LOGGER`'s ``info``)."""
    log = LOGGER.info if log is None else log
    output = Path(output)
    if output.exists() and output.is_dir():
        raise ResultsError(f"--output {output}: is a folder, not a file")
    entries = collect(pairs, reuse=reuse, log=log, run=run)
    for entry in entries:
        if entry.report is not None:
            _config_of(entry.report)          # a stale report fails before writing
    text = render_results(
        entries, command=command, commit=_git_commit(),
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    log(f"qforge results: wrote {output} ({len(entries)} "
        f"build{'s' if len(entries) != 1 else ''}, "
        f"{sum(_status(entry.report) == 'failed' for entry in entries)} failed)")
    return entries
