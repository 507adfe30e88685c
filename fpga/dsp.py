"""DSP blocks of a board build: which of the design's multipliers go to the FPGA's
multiplier cells, and what Yosys made of them (used by :func:`qforge.fpga.flow.build`).

Yosys maps every multiplier it can to the family's DSP cell regardless of how many the
device has, and nextpnr then fails to place the excess (:func:`dsp_decision`):

* ECP5: ``synth_ecp5`` maps every multiplier to ``MULT18X18D`` by default, so
  ``-nodsp`` when the block multipliers (rows x cols x
  :attr:`~qforge.sim.model.spec.Config.pe_multipliers`: one per lane, one per lane pair
  with ``pe = "fused"``) exceed the 85F's 156 (each small block multiplier would take a
  whole 18x18 block).
* iCE40: ``synth_ice40 -dsp`` maps only products of at least 11 bits (``mul2dsp`` with
  ``DSP_Y_MINWIDTH=11``), however many: the tiny preset's 4x4-bit block multipliers
  would stay in LUTs while the UP5K has 8 ``SB_MAC16``. So the build
  first takes a census of the design's ``$mul`` cells (Yosys up to just before that
  mapping, :func:`ice40_census_script`, into ``dsp_census.txt``;
  :func:`parse_multipliers`), gives the 8 ``SB_MAC16`` to the largest multipliers (the
  most LUTs saved per block; :func:`allocate_dsps`) and synthesizes with synth_ice40's own
  ``begin`` .. ``coarse`` steps, its ``-dsp`` mapping applied to exactly those
  (:func:`ice40_dsp_script`; every other multiplier stays in LUTs), then
  ``synth_ice40 -run map_ram:``. The tiny preset's accelerator has 4 block multipliers
  and 4 others (the loader's two 10x10-bit word-count multipliers of its command check,
  the scheduler's tile-cycle products): all 8 get the 8 ``SB_MAC16``. With two block
  multipliers per PE (tiny until stop 23: 8 of them, and the control's three 9x9 and
  10x3) the largest go first: the control's three and 5 of the 8 block multipliers,
  fewer LUTs than plain ``-dsp`` (the loader's two only) and than all 8 block
  multipliers with the others in LUTs (a 9x9 multiplier in LUTs costs several times a
  4x4 one).

What went to DSPs is read back from Yosys, not assumed: its ``stat`` count of the DSP
cell, and a ``dump`` of those cells after synthesis (``dsp_cells.txt``), whose ``src``
attributes name the source line of the multiplier each holds (:func:`dsp_sources`,
:attr:`qforge.fpga.report.BuildReport.dsp_summary`).

    >>> from qforge.sim.model.spec import load_preset
    >>> decision = dsp_decision(load_preset("default"), "ulx3s-85f")
    >>> decision.option, decision.multipliers
    ('-nodsp', 256)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qforge.fpga.boards import board_named
from qforge.fpga.toolchain import source_root

__all__ = ["Multiplier", "DspDecision", "parse_multipliers", "dsp_sources",
           "block_multiplier_census", "allocate_dsps", "ice40_census_script",
           "ice40_dsp_script", "dsp_decision", "DSP_CENSUS", "DSP_CELLS", "DSP_CELL",
           "ICE40_COARSE_BEFORE_DSP", "ICE40_DSP_TECHMAP", "ICE40_DSP_AFTER",
           "ICE40_COARSE_AFTER_DSP", "ICE40_DSP_Y_MINWIDTH", "ICE40_DSP_MAXWIDTH"]

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


def _short_source(source: str) -> str:
    """``/work/main/hdl/pe.py:66`` -> ``hdl/pe.py:66`` (relative to the source tree)."""
    path, _, line = source.rpartition(":")
    if not path or not line.replace(".", "").replace("-", "").isdigit():
        path, line = source, ""
    try:
        path = str(Path(path).resolve().relative_to(source_root()))
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
    """The ``$mul`` cells in Yosys ``dump`` output (the census
    :func:`qforge.fpga.flow.build` takes just before synth_ice40's DSP mapping), with
    their widths, where they come from and whether an operand is constant.

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
    k, per_pe = config.pe_multiplier_width, config.pe_multipliers
    return [Multiplier(f"pe_{index // (config.cols * per_pe)}_"
                       f"{index // per_pe % config.cols}.product_"
                       f"{index % per_pe}", k, k, 2 * k, "hdl/pe.py", False, True)
            for index in range(config.rows * config.cols * per_pe)]


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
    """Which multipliers go to DSP blocks (see the module documentation), with the reason in
    words. On iCE40 ``multipliers`` is the design's census (:func:`parse_multipliers`;
    default: the block multipliers only, :func:`block_multiplier_census`).

    >>> from qforge.sim.model.spec import load_preset
    >>> decision = dsp_decision(load_preset("tiny"), "icebreaker")
    >>> decision.use_dsp, decision.option, len(decision.mapped)
    (True, '-run map_ram:', 4)
    >>> print(decision.reason)  # doctest: +NORMALIZE_WHITESPACE
    qforge's DSP mapping (synth_ice40's own mul2dsp/ice40_dsp steps, on chosen
    multipliers only and with DSP_Y_MINWIDTH 2 instead of 11): of the 4 multipliers,
    all 4 block multipliers (4x4-bit; 2x2 PEs x 1) go to the iCE40UP5K's 8 SB_MAC16
    """
    board = board_named(board)
    count = config.rows * config.cols * config.pe_multipliers
    what = (f"{count} block multiplier{'s' if count != 1 else ''} ({config.rows}x"
            f"{config.cols} PEs x {config.pe_multipliers})")
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
        width = config.pe_multiplier_width
        block_size = (f"{width}x{width}-bit; {config.rows}x"
                      f"{config.cols} PEs x {config.pe_multipliers}")
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
                           f"{config.pe_multiplier_width}x{config.pe_multiplier_width}-bit "
                           f"block multiplier takes a whole {cell})")
    return DspDecision(False, "-nodsp", count, capacity,
                       f"synth_ecp5 -nodsp: the {what} exceed the {board.device}'s "
                       f"{capacity} {cell} (synth_ecp5 would map each to its own {cell} "
                       f"and placement would fail), so all multipliers are built from LUTs")
