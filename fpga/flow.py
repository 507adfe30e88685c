"""Bitstreams for the boards: the build flow behind ``qforge build --board icebreaker
--preset tiny``.

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
``stat -json`` after synthesis), ``dsp_cells.txt`` (Yosys's ``dump`` of the DSP cells),
on the iCE40 ``dsp_census.txt`` (the multipliers, :mod:`qforge.fpga.dsp`),
``nextpnr-report.json`` (nextpnr's ``--report``), the bitstream (``<name>.bin`` /
``<name>.bit``), and the parsed report (:mod:`qforge.fpga.report`): ``report.json``
(:meth:`~qforge.fpga.report.BuildReport.to_dict`) and ``report.md``. A build whose
synthesis or place and route fails writes them too (``status: "failed"``, the step, the
message, the tool's own ``ERROR`` lines and, if nextpnr got that far, its packing
counts) before raising :class:`BuildError`, so ``qforge results`` reports it.

nextpnr runs with ``--timing-allow-fail`` (a missed clock constraint is reported, not a
crash: :attr:`~qforge.fpga.report.BuildReport.timing_met`), a fixed ``--seed`` and the
board's :attr:`~qforge.fpga.boards.Board.nextpnr_options` (the ULX3S uses ``--router
router2``). Which multipliers go to DSP blocks is decided by :mod:`qforge.fpga.dsp`.

Progress goes to ``log`` (default: the ``qforge.fpga.flow`` logger at INFO level, so a
library caller sees nothing unless it configures logging; ``qforge build`` passes a
function that prints to standard error).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import subprocess
import time
from pathlib import Path

from qforge.fpga.area import FAMILIES, WORKAROUND, parse_stat
from qforge.fpga.boards import Board, BoardTop, board_named
from qforge.fpga.dsp import (DSP_CELL, DSP_CELLS, DSP_CENSUS, DspDecision, dsp_decision,
                             dsp_sources, ice40_census_script, ice40_dsp_script,
                             parse_multipliers)
from qforge.fpga.pll import format_mhz
from qforge.fpga.report import (BuildReport, clocks_from_report, markdown_report,
                                parse_nextpnr_log, parse_nextpnr_report,
                                resources_from_reports)
from qforge.fpga.toolchain import (find_programmer, find_tool, git_version, tool_variable,
                                   tool_versions)
from qforge.gen.tools import ToolError
from qforge.sim.model.errors import InputError

__all__ = ["BuildError", "build", "program_bitstream", "default_build_dir",
           "NEXTPNR_REPORT", "SEED"]

#: nextpnr's own report, next to ours (``report.json``) in the build folder.
NEXTPNR_REPORT = "nextpnr-report.json"
#: The fixed placement seed: the same design gives the same bitstream.
SEED = 1
#: Seconds between "still running" messages of a long step.
PROGRESS_INTERVAL = 30.0
#: Where progress goes when the caller gives no ``log`` function.
LOGGER = logging.getLogger(__name__)


class BuildError(ToolError):
    """A build step failed; the message names the step and carries the end of its log."""


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


def default_build_dir(board: Board, config) -> Path:
    """``$QFORGE_BUILD/board/<board>-<config>`` (``build/...`` by default), absolute."""
    root = Path(os.environ.get("QFORGE_BUILD", "build")).resolve()
    return root / "board" / f"{board.name}-{config.name}"


def _design_name(config) -> str:
    return "qforge_" + re.sub(r"[^A-Za-z0-9_]", "_", config.name)


def _check_arguments(board: Board, clock_mhz, baud_rate, program: bool, report_only: bool,
                     log) -> None:
    """ValueError for arguments :func:`build` cannot use; a warning when ``program`` is
    asked for and the programmer is missing (the build goes on)."""
    if program and report_only:
        raise InputError("program and report_only: a report-only build makes no bitstream "
                         "to program")
    if clock_mhz is not None:
        if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) \
                or not clock_mhz > 0:
            raise InputError(f"clock_mhz = {clock_mhz!r}: must be a positive number of MHz")
    if isinstance(baud_rate, bool) or not isinstance(baud_rate, (int, float)) \
            or not baud_rate > 0:
        raise InputError(f"baud_rate = {baud_rate!r}: must be a positive number of baud")
    if program:
        try:
            find_programmer(board, None)
        except ToolError:
            log(f"warning: {board.programmer} not found: the bitstream will be built, then "
                f"programming fails")


def build(config, board_name, *, clock_mhz: float | None = None, baud_rate=115200,
          build_dir=None, program: bool = False, report_only: bool = False,
          log=None, core=None, seed: int = SEED) -> BuildReport:
    """Build ``config`` for the board ``board_name`` (a
    :data:`~qforge.fpga.boards.BOARDS` key) and return the parsed
    :class:`~qforge.fpga.report.BuildReport` (also written as ``report.json`` and
    ``report.md``).

    ``clock_mhz``: the requested sync clock (default the board's); the PLL's achieved
    frequency is used for the UART divisor and the clock constraint. ``report_only``:
    synthesis and place and route, no bitstream, no programming. ``program``: program
    the board after the build (``ToolError`` if the programmer is missing, saying how to
    install it and where the bitstream is). ``log``: called with progress messages
    (default: :data:`LOGGER`'s ``info``). ``core``: the core factory for
    :class:`~qforge.fpga.boards.BoardTop` (default
    :class:`~qforge.hdl.link.LinkedAccelerator`).
    """
    log = LOGGER.info if log is None else log
    board = board_named(board_name)
    _check_arguments(board, clock_mhz, baud_rate, program, report_only, log)
    run = _Build(config, board, baud_rate=baud_rate, report_only=report_only, log=log)
    run.elaborate(clock_mhz=clock_mhz, build_dir=build_dir, core=core, seed=seed)
    report = run.synthesize_and_place(seed)
    if program:
        program_bitstream(board, report.bitstream, log=log)
        report.programmed = True
        _write_reports(report)
    return report


#: What ``script_after_read`` holds in an iCE40 build's Yosys script until the multiplier
#: census has chosen the DSP multipliers (:func:`~qforge.fpga.dsp.ice40_dsp_script`
#: replaces it).
_DSP_MARKER = "# qforge: DSP mapping (written after the multiplier census)"


class _Build:
    """One run of :func:`build`: what it has found and made so far (the tools, the
    elaborated top, the build folder, the step times), so a report can be written from
    it at any point."""

    def __init__(self, config, board: Board, *, baud_rate, report_only: bool, log):
        self.config, self.board, self.baud_rate = config, board, baud_rate
        self.report_only, self.log = report_only, log
        self.total_started = time.monotonic()
        self.seconds: dict[str, float] = {}
        self.platform = board.platform()
        # Every tool is found before anything is built (the programmer only when asked for).
        self.resolved = {tool: find_tool(tool) for tool in self.platform.required_tools
                         if tool != board.programmer}
        self.decision = dsp_decision(config, board)
        self.workaround = None
        # The commit the design is built from, read before elaborating (not when the
        # report is written: the tree may move on during a long place and route).
        self.git = git_version()

    def elaborate(self, *, clock_mhz, build_dir, core, seed: int) -> None:
        """Elaborate the board top, write the build plan into the build folder (stale
        outputs of an earlier build removed) and find the plan's tools."""
        config, board, log = self.config, self.board, self.log
        started = time.monotonic()
        self.top = top = BoardTop(config, board, baud_rate=self.baud_rate, core=core,
                                  clock_frequency=None if clock_mhz is None
                                  else clock_mhz * 1e6)
        self.name = name = _design_name(config)
        self.directory = directory = (Path(build_dir).resolve() if build_dir
                                      else default_build_dir(board, config))
        log(f"qforge build: {config.name} ({config.rows}x{config.cols} PEs) for "
            f"{board.title}, sync clock {format_mhz(top.clock_frequency)} (PLL from "
            f"{format_mhz(board.input_hz)}), {self.baud_rate:g} baud, in {directory}")
        if board.family != "ice40":
            log(f"DSP: {self.decision.reason}")
        log("elaborating ...")
        # iCE40: the DSP mapping is written into the script after the multiplier census
        # (see qforge.fpga.dsp); synth_ice40 itself then runs from its map_ram step.
        overrides = ({"script_after_read": _DSP_MARKER, "synth_opts": "-run map_ram:"}
                     if board.family == "ice40" else {"synth_opts": self.decision.option})
        plan = self.platform.build(
            top, name=name, do_build=False,
            script_after_synth=f"tee -q -o stat.json stat -json\n"
                               f"tee -q -o {DSP_CELLS} dump t:{DSP_CELL[board.family]}",
            nextpnr_opts=f"--report {NEXTPNR_REPORT} --timing-allow-fail --seed {seed} "
                         f"{board.nextpnr_options}".rstrip(),
            **overrides)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (NEXTPNR_REPORT, "stat.json", "report.json", "report.md", DSP_CELLS,
                      DSP_CENSUS, f"{name}.tim", f"{name}{board.bitstream_suffix}"):
            (directory / stale).unlink(missing_ok=True)
        plan.extract(directory)
        self.seconds["elaborate"] = time.monotonic() - started
        log(f"elaborated in {self.seconds['elaborate']:.1f} s")

        self.commands = json.loads((directory / f"build_{name}.json").read_text())["commands"]
        self.env = dict(os.environ)
        for command in self.commands:
            if command[0] not in self.resolved:
                self.resolved[command[0]] = find_tool(command[0])
            self.env[tool_variable(command[0])] = self.resolved[command[0]][0]
        self.rpt, self.tim = directory / f"{name}.rpt", directory / f"{name}.tim"
        self.logs = {"yosys": self.rpt, "nextpnr": self.tim,
                     "nextpnr_report": directory / NEXTPNR_REPORT,
                     "yosys_stat": directory / "stat.json",
                     "dsp_cells": directory / DSP_CELLS}

    def report(self, status, clocks=(), utilization=None, failed_step=None,
               error=None) -> BuildReport:
        """The report from whatever the tools have written so far."""
        config, board, directory, top = self.config, self.board, self.directory, self.top
        stat = directory / "stat.json"
        cells, yosys_version = parse_stat(stat.read_text()) if stat.exists() else ({}, "")
        if utilization is None:
            utilization = parse_nextpnr_log(self.tim.read_text(errors="replace")) \
                if self.tim.exists() else {}
        dump = directory / DSP_CELLS
        self.seconds["total"] = time.monotonic() - self.total_started
        return BuildReport(
            board=board.name, device=board.device, family=board.family,
            config=config.name, rows=config.rows, cols=config.cols,
            block_multipliers=config.block_multipliers,
            requested_clock_hz=top.requested_frequency, clock_hz=top.clock_frequency,
            pll=top.pll.to_dict(), baud_rate=self.baud_rate,
            actual_baud_rate=getattr(top.core, "actual_baud_rate", None),
            resources=resources_from_reports(board.family, utilization, cells)
            if utilization or cells else [],
            clocks=list(clocks), dsp=self.decision, synth_cells=cells,
            tools=tool_versions(self.resolved, self.commands, yosys_version),
            seconds=self.seconds, build_dir=directory,
            bitstream=None if self.report_only or status != "built"
            else directory / f"{self.name}{board.bitstream_suffix}",
            logs={key: path for key, path in self.logs.items() if path.exists()},
            yosys_workaround=self.workaround, spec=config.to_dict(),
            dsp_cells=dsp_sources(dump.read_text(errors="replace"), DSP_CELL[board.family])
            if dump.exists() else None,
            status=status, failed_step=failed_step, error=error,
            tool_errors=_tool_errors([self.rpt, directory / "dsp_census.log"]
                                     if failed_step in ("synthesis", "DSP census")
                                     else [self.tim]) if failed_step else [],
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            git=self.git)

    def synthesize_and_place(self, seed: int) -> BuildReport:
        """Run the plan's steps (the iCE40's DSP census first; no packing when report
        only) and return the report, written into the build folder; a failed step
        writes a failed report, then raises :class:`BuildError`."""
        step = "synthesis"
        try:
            if self.board.family == "ice40":
                step = "DSP census"
                self._ice40_dsp_mapping()
            for step, what in self._steps(seed):
                if self.report_only and step == "pack":
                    break
                self._run_plan_step(step, what)
        except BuildError as error:
            failed = self.report("failed", failed_step=step, error=str(error))
            _write_reports(failed)
            raise
        utilization, fmax = parse_nextpnr_report(
            (self.directory / NEXTPNR_REPORT).read_text())
        report = self.report("built", clocks_from_report(fmax), utilization)
        self.log(f"DSP: {report.dsp_result}")
        _write_reports(report)
        if not report.timing_met:
            suggestion = _slower_clock(self.board, report)
            self.log("warning: timing MISSED: " + ", ".join(
                f"{clock.net} {clock.achieved_mhz:.2f} MHz < {clock.constraint_mhz:.2f} MHz"
                for clock in report.clocks if not clock.met) + " (the bitstream may misbehave)"
                + (f"; try --clock {suggestion}" if suggestion else ""))
        return report

    def _ice40_dsp_mapping(self) -> None:
        """Take the multiplier census and write the chosen DSP mapping into the Yosys
        script in place of :data:`_DSP_MARKER`."""
        self.decision = _ice40_dsp_census(self.config, self.board, self.name,
                                          self.directory, self.resolved["yosys"], self.env,
                                          self.log, self.seconds)
        script = self.directory / f"{self.name}.ys"
        script.write_text(script.read_text().replace(
            _DSP_MARKER, ice40_dsp_script(self.name, self.decision.mapped)
            if self.decision.mapped else f"synth_ice40 -top {self.name} -run :map_ram", 1))

    def _steps(self, seed: int) -> list[tuple[str, str]]:
        """The plan's three steps, each with what it runs in words."""
        board, decision = self.board, self.decision
        synth_tool = " ".join(filter(None, (FAMILIES[board.family].synth, decision.option)))
        if board.family == "ice40" and decision.mapped:
            synth_tool = (f"synth_ice40 with {len(decision.mapped)} multipliers mapped to "
                          f"SB_MAC16")
        return [("synthesis", f"yosys {synth_tool}"),
                ("place & route", f"nextpnr-{board.family} --seed {seed}"),
                ("pack", f"{self.commands[2][0]} -> {self.name}{board.bitstream_suffix}")]

    def _run_plan_step(self, step: str, what: str) -> None:
        """Run one of the plan's steps; a placement that fails because the design does not
        fit says so, and a failed synthesis is retried once after Yosys's workaround."""
        index = ("synthesis", "place & route", "pack").index(step)
        command = self.resolved[self.commands[index][0]] + self.commands[index][1:]
        logs = [self.rpt] if step == "synthesis" else [self.tim]
        self.log(f"{step} ({what}) ...")
        try:
            self.seconds[step] = _run_step(step, command, self.directory, self.env,
                                           self.log, logs)
        except BuildError as error:
            if step == "place & route":
                reason = _does_not_fit(self.board, self.tim)
                if reason:
                    raise BuildError(reason) from error
            if step != "synthesis":
                raise
            # Yosys issue #4349 (see qforge.fpga.area): retry after `proc; splitnets`.
            self.log(f"yosys failed; retrying with `{WORKAROUND}` first (Yosys issue #4349)")
            script = self.directory / f"{self.name}.ys"
            read = f"read_rtlil {self.name}.il\n"
            script.write_text(script.read_text().replace(read, f"{read}{WORKAROUND}\n", 1))
            self.workaround = WORKAROUND
            self.seconds[step] = _run_step(step, command, self.directory, self.env,
                                           self.log, [self.rpt])
        self.log(f"{step} done in {self.seconds[step]:.1f} s")


def _ice40_dsp_census(config, board: Board, name: str, directory: Path, yosys: list[str],
                      env: dict, log, seconds: dict) -> DspDecision:
    """Run Yosys up to synth_ice40's DSP mapping on the design, list its multipliers
    (:data:`DSP_CENSUS`) and decide which get the SB_MAC16."""
    (directory / "dsp_census.ys").write_text(f"read_rtlil {name}.il\n"
                                             + ice40_census_script(name))
    log("DSP census (yosys up to synth_ice40's DSP mapping: the design's multipliers) ...")
    seconds["DSP census"] = _run_step(
        "DSP census", [*yosys, "-q", "-l", "dsp_census.log", "-s", "dsp_census.ys"],
        directory, env, log, [directory / "dsp_census.log"])
    multipliers = parse_multipliers((directory / DSP_CENSUS).read_text(errors="replace"))
    decision = dsp_decision(config, board, multipliers)
    log(f"DSP census done in {seconds['DSP census']:.1f} s: "
        f"{len(multipliers)} multiplier{'' if len(multipliers) == 1 else 's'}")
    log(f"DSP: {decision.reason}")
    return decision


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


def _tool_errors(paths) -> list[str]:
    """The tools' own ``ERROR`` lines from their logs (at most 10, no repeats)."""
    found: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        found += [line.strip() for line in path.read_text(errors="replace").splitlines()
                  if line.lstrip().startswith("ERROR")]
    return list(dict.fromkeys(found))[:10]


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


def program_bitstream(board, bitstream, *, log=None) -> None:
    """Program ``bitstream`` into ``board`` with its programmer (``iceprog`` or
    ``openFPGALoader``, found on PATH or named by ``$ICEPROG`` / ``$OPENFPGALOADER``);
    ``log``: called with progress messages (default: :data:`LOGGER`'s ``info``)."""
    log = LOGGER.info if log is None else log
    board = board_named(board)
    bitstream = Path(bitstream)
    if not bitstream.exists():
        raise FileNotFoundError(f"bitstream {bitstream} does not exist: build it first")
    command = find_programmer(board, bitstream) + list(board.programmer_args) + [str(bitstream)]
    log(f"programming: {' '.join(command)}")
    started = time.monotonic()
    process = subprocess.run(command)
    if process.returncode != 0:
        raise ToolError(f"{board.programmer} failed (exit status {process.returncode}); "
                        f"the bitstream is {bitstream}")
    log(f"programmed in {time.monotonic() - started:.1f} s")
