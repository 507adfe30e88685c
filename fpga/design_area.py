"""Area of a whole :class:`~qforge.hdl.top.Accelerator`, composed from modules
synthesized once each: for design-space sweeps, where synthesizing every point's whole
design (about ten minutes for an 8x8 array) is too slow.

Contract: :func:`composed_area` returns, for one configuration, the CMOS transistor
estimate and the FPGA cells of the whole generated design (``qforge generate``'s top
level) as the sum of :class:`Part` s, each a module synthesized alone times its number
of instances in the design; :func:`whole_design_area` synthesizes the whole design in
the same measures, to check it. A module's runs are cached by the hash of its RTLIL and
script (:func:`qforge.fpga.area.run_directory`, in ``build/area/``) under a top name that
does not depend on the configuration's name (:data:`PART_TOPS`), so points that share a
module (the same PE on a 4x4 and an 8x8 array) share its runs; and a whole result is
kept under a key of the configuration's fields (not its name), the families and the hash
of the HDL and synthesis sources (:func:`index_key`, in ``build/area/index/``), so that
a point seen before is a file read, with nothing elaborated.

The parts, which cover the design by construction:

* ``pe``: the interior :class:`~qforge.hdl.pe.ProcessingElement`
  (:func:`qforge.fpga.pe_area.interior_pe`: its ports, and with ``arithmetic.paired``
  the other side's lane fields 0 as the selectors drive them), ``rows x cols - 1``
  instances. When zero
  skipping, every PE of the :class:`~qforge.hdl.array.BroadcastArray` takes the same A
  lanes and tile markers, and the whole design keeps one copy of the registers that
  hold them: there a ``pe`` is two PEs sharing those inputs less one PE
  (:func:`pe_pair`; counting whole PEs, a 4x4 ``sparse`` had 9% too many flip-flops);
* ``pe_corner``: the PE with its capture outputs (:data:`~qforge.fpga.pe_area.CORNER_ONLY`),
  which only the array's corner PE drives: one instance, whole;
* ``selectors_<n>``: a group of ``n`` :class:`~qforge.hdl.selector.BlockSelector` s
  sharing their ``precision`` and ``select`` inputs (:func:`selector_group`), as the
  selectors of one side of the array do (``rows`` A selectors, ``cols`` B selectors;
  when zero skipping, 1 A selector and ``rows x cols`` B selectors): one instance per
  side. :attr:`Part.modules` is ``n``, so the parts' selectors add up to the design's.
  When a B selector is not the same module as an A selector
  (:func:`qforge.fpga.pe_area.selector_sides`: ``arithmetic.paired``), each side's
  groups are their own parts, ``selectors_a_<n>`` and ``selectors_b_<n>``;
* ``output``: the :class:`~qforge.hdl.output_stage.OutputStage` (with its FIFO);
* ``control``: everything else: the Accelerator elaborated whole, with every PE, selector
  and the output stage turned into black boxes (:func:`blackbox_modules`: ports only), so
  that the loader, scheduler, drain, skid buffer, compactor, the buffer banks and entry
  counts, the array wrapper's own logic (the input skew registers) and the top level's
  glue are all here, and so is the logic that drives the boxes' inputs or reads their
  outputs. Its counts leave the boxes out. One per configuration (it holds the banks).

Every PE of an array is the same module (an edge PE's unused forwarding outputs are its
operand registers too, :class:`~qforge.hdl.pe.ProcessingElement`), so what the
composition cannot see is only the optimization across module boundaries in the whole
design (the bottom row's ``result_below`` is a constant 0 there, for instance).

Measures (one script per measure for every part and for the whole design):

* CMOS transistors (:func:`design_cmos_script`): the estimate of
  :mod:`qforge.fpga.pe_area` (Yosys's generic ``synth -flatten``, ``abc -g cmos2``,
  ``stat -tech cmos`` for the gates plus :data:`~qforge.fpga.pe_area.FLIP_FLOP_TRANSISTORS`
  per flip-flop), except that RAMs are not mapped to flip-flops: ``synth`` runs up to its
  ``fine`` label (which ends with ``memory -nomap``), then its ``fine`` commands with
  ``memory_map -rom-only`` (tables, which ``proc_rom`` makes ROMs of, stay logic) in place
  of ``memory_map``: for a module without RAMs, ``synth``'s own commands. Each
  ``$mem_v2`` left (the buffer banks, the entry counts, the output stage's FIFO) is priced
  by :func:`memory_transistors`: :data:`SRAM_BIT_TRANSISTORS` (a 6T SRAM cell) per bit,
  ``WIDTH x SIZE``; its ports' registers (merged into the memory by ``memory_dff``),
  address decoders and sense amplifiers are not counted.
  :attr:`ComposedArea.logic_transistors` leaves the memories out.
* ECP5 cells (:func:`ecp5_script`): ``synth_ecp5`` with :data:`ECP5_OPTIONS`
  (``-nodsp``: every multiplier in LUTs, one measure of area whatever the multipliers;
  with DSPs on, even a 2x2 block multiplier takes a MULT18X18D), with its LUT mapping
  given a delay target, :data:`ECP5_DELAY_TARGET_PS` (``abc9 -D``): without one, ABC9
  maps for the best delay of the whole netlist and recovers area off its critical path
  only, so a module alone costs far more LUTs than inside the design (measured with
  DSPs on: the 4x4 K = 4, P = 4 point below composed from parts synthesized with plain
  ``synth_ecp5`` had 13,204 LUT4 against the whole design's 9,059, +46%: 453 LUT4 and
  220 PFUMX/L6MUX21 per PE alone, about 260 LUT4 per PE inside). Memories are what
  ``synth_ecp5`` maps them to (DP16KD block RAM, TRELLIS_DPR16X4 LUT RAM). Other
  families of :data:`~qforge.fpga.pe_area.PE_FAMILIES` (``ice40``) run
  :func:`qforge.fpga.area.synthesize` unchanged: not validated.

Validation (:func:`composition_error`: composed / whole - 1), Yosys 0.70, 2026-12-04,
by ``pytest -m "synth and slow" tests/fpga/test_design_area.py`` (``tiny``,
``k4p4_4x4``, ``skipping_p1``) and the same calls for the others (presets put on a 4x4
array); composed / whole, error. The ECP5 rows of the first four are with
:data:`ECP5_OPTIONS` (``-nodsp``); those of the last three were measured with DSPs on,
before that option (the CMOS estimate did not change):

::

  measure            tiny: 2x2 K=4 P=1      k4p4_4x4: 4x4 K=4 P=4     4x4 K=2 P=4 (default)
  CMOS transistors   291,586 / 290,066      1,990,036 / 1,985,038     1,966,022 / 1,960,862
                     +0.52%                 +0.25%                    +0.26%
    without memories 94,978 / 93,458        416,296 / 411,298         392,282 / 387,122
                     +1.63%                 +1.22%                    +1.33%
    flip-flops       1,558 / 1,534 +1.56%   4,705 / 4,633 +1.55%      4,533 / 4,461 +1.61%
    memory bits      32,768 (equal)         262,290 (equal)           262,290 (equal)
  ECP5 LUT4 -nodsp   2,222 / 2,158 +2.97%   11,073 / 10,999 +0.67%    10,597 / 10,636 -0.37%
  ECP5 TRELLIS_FF    1,646 / 1,622 +1.48%   5,305 / 5,233 +1.38%      5,133 / 5,061 +1.42%
  CCU2C, DSP, BRAM   413, 0, 4 (equal)      2,021, 0, 16 (equal)      1,770, 0, 16 (equal)

  measure            fxp8 on 4x4: K=8 P=1   skipping_p1: 2x3 zero     sparse on 4x4: zero
                                            skipping, K=2 P=1         skipping, K=2 P=4
  CMOS transistors   1,886,556 / 1,881,628  174,228 / 173,086         4,913,376 / 4,908,516
                     +0.26%                 +0.66%                    +0.10%
    without memories 312,792 / 307,864      148,068 / 146,926         415,092 / 410,232
                     +1.60%                 +0.78%                    +1.18%
    flip-flops       3,818 / 3,750 +1.81%   1,938 / 1,932 +0.31%      4,177 / 4,171 +0.14%
    memory bits      262,294 (equal)        4,360 (equal)             749,714 (equal)
  ECP5 LUT4          7,444 / 7,309 +1.85%   3,317 / 3,232 +2.63%      12,915 / 13,222 -2.32%
                     (-nodsp)               (DSPs on)                 (DSPs on)
  ECP5 TRELLIS_FF    4,040 / 3,972 +1.71%   2,081 / 2,075 +0.29%      4,960 / 4,954 +0.12%
  CCU2C, DSP, BRAM   1,234 / 1,233, 0, 16   624, 9, 0 (equal)         1,801, 67, 47 (equal)
                                            (-nodsp: 636 / 634 CCU2C)

  fused on 4x4 (K=4 P=4 pe = "fused", DSPs on): CMOS +0.31% (2,220,300 / 2,213,336),
  without memories +1.09%, flip-flops +3.09%, ECP5 LUT4 8,928 / 8,641 +3.32%, FF +2.81%.

Within 3.4% everywhere; DSP blocks, block RAM, LUT RAM and memory bits equal, carries
equal or within two.

``paired`` (8x8, ``qforge area --composed --check --preset default --preset paired``,
2026-12-04): CMOS +0.71% (4,441,720 / 4,410,506), without memories +2.47%, flip-flops
+6.54% (16,218 / 15,223), ECP5 LUT4 +0.41%, FF +6.09% (``default`` in the same run:
+2.38% and +2.19% flip-flops). The lanes of a paired design carry both sides' fields
and each side's selectors drive the other side's 0; the PE parts receive those as 0
(:func:`qforge.fpga.pe_area.interior_pe`), but the control's skew registers take the
black-boxed selectors' outputs, so they keep the registers of the A lanes' ``partner``
and the B lanes' ``second`` that the whole design removes (``28 x 4 x (5 + 1) = 672``
flip-flops on 8x8, most of the 995): over the 5% bound in flip-flops there.
The composition of the dense arrays runs high by 24 to 187 flip-flops, most likely the
tile markers' registers: each PE delays the markers by one and two cycles (three with
``pe = "fused"``), the PEs of one anti-diagonal of the array by the same, and the
flattened whole design merges equal registers (not traced bit by bit). Not composable:
the wide multiplexers (PFUMX and L6MUX21, :func:`~qforge.fpga.area.summarize`'s
``mux``), which the mapping uses or not as a LUT of five or more inputs is packed:
composed 591 against the whole's 288 on ``k4p4_4x4`` (DSPs on), 1,142 against 568 on
``sparse`` on 4x4, 66 against 88 on ``tiny``.

Time (this machine, 2 shared cores, YoWASP Yosys): :func:`composed_area` of
``default`` on 4x4 with nothing cached, 33 s (10 Yosys runs); of ``default`` (8x8),
57 s (10 runs; 52 s when the PE's runs are there from the 4x4); with every run cached
but no index, 4 s (4x4) and 8 s (8x8), the elaboration and RTLIL conversion; from the
index, under 0.01 s in the call (0.3 s for a fresh Python process with its imports).
The whole 4x4 designs take 30 to 80 s in both measures.

(Over 500 lines, about 850: one concept, the composed area and its check against the
whole design; the Yosys scripts, the boxing and the parts read best together.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from qforge.fpga.area import (WORKAROUND, _default_root, parse_stat, run_cached_script,
                              run_directory, summarize, synthesize)
from qforge.fpga.pe_area import (FLIP_FLOP_TRANSISTORS, GATE_SELECTION, PE_FAMILIES,
                                 count_flip_flops, interior_pe, selector_sides,
                                 tie_lane_fields)
from qforge.sim.model.spec import Config

__all__ = ["SRAM_BIT_TRANSISTORS", "ECP5_DELAY_TARGET_PS", "PART_TOPS", "MEASURES",
           "memory_transistors", "parse_memories", "design_cmos_script", "ecp5_script",
           "blackbox_modules", "ModuleArea", "module_area", "Part", "ComposedArea",
           "selector_group", "pe_pair", "index_key", "composed_area", "whole_design_area",
           "composition_error"]

#: Transistors per memory bit in the CMOS estimate: a six-transistor static RAM cell.
SRAM_BIT_TRANSISTORS = 6

#: The top-level name each part is synthesized under: the same for every configuration,
#: so that equal modules give equal RTLIL and share their cached runs.
PART_TOPS = {"pe": "qforge_pe", "pe_corner": "qforge_pe_corner",
             "pe_pair": "qforge_pe_pair",
             "selectors": "qforge_block_selectors",   # + "_<n>": a group of n
             "output": "qforge_output_stage",
             "control": "qforge_control", "whole": "qforge_whole"}

#: The delay target (picoseconds) of ECP5's LUT mapping (``abc9 -D``): the 20 ns period
#: of the boards' 50 MHz clock. ``synth_ecp5`` maps for the best delay of the whole
#: netlist and recovers area only off its critical path, so a module synthesized alone
#: (its own critical path the netlist's) gets far more LUTs and wide muxes than it has in
#: the whole design (the K = 4, P = 4 PE: 453 LUT4 and 220 PFUMX/L6MUX21 alone, about
#: 260 LUT4 and none inside a 4x4 Accelerator): an area that depends on the rest of the
#: design cannot be composed. With a target every part and the whole design are mapped
#: alike: for area, under the same delay.
ECP5_DELAY_TARGET_PS = 20000

#: Bump when the way results are computed changes (invalidates the index, not the runs).
_INDEX_VERSION = 1


def memory_transistors(memories: list[tuple[int, int]]) -> int:
    """The CMOS price of memories given as ``(WIDTH, SIZE)`` pairs (bits per word,
    words): :data:`SRAM_BIT_TRANSISTORS` per bit.

    >>> memory_transistors([(8, 1024), (8, 1024)])    # two of tiny's 1024 x 8 banks
    98304
    >>> memory_transistors([])
    0
    """
    return SRAM_BIT_TRANSISTORS * sum(width * size for width, size in memories)


def parse_memories(dump: str) -> list[tuple[int, int]]:
    """``(WIDTH, SIZE)`` of every ``$mem_v2`` cell in the text of Yosys's ``dump``.

    >>> parse_memories('''
    ...   cell $mem_v2 $auto$mem.cc:1$5
    ...     parameter \\\\ABITS 10
    ...     parameter \\\\SIZE 1024
    ...     parameter \\\\WIDTH 8
    ...   end
    ...   cell $mem_v2 \\\\fifo
    ...     parameter \\\\WIDTH 26
    ...     parameter \\\\SIZE 2
    ...   end
    ... ''')
    [(8, 1024), (26, 2)]
    """
    memories = []
    for block in re.split(r"^\s*cell \$mem_v2 ", dump, flags=re.M)[1:]:
        block = block.split("\n  end", 1)[0]
        width = re.search(r"parameter \\WIDTH (\d+)", block)
        size = re.search(r"parameter \\SIZE (\d+)", block)
        if not (width and size):
            raise ValueError("a $mem_v2 cell without WIDTH or SIZE in Yosys's dump")
        memories.append((int(width.group(1)), int(size.group(1))))
    return memories


def design_cmos_script(top: str) -> str:
    """The Yosys script of the CMOS estimate of the RTLIL in ``design.il``, memories
    left unmapped: :func:`qforge.fpga.pe_area.cmos_script`'s ``synth -flatten`` with
    ``memory_map`` left out, then ``abc -g cmos2``; the memories into ``memories.txt``,
    the gates' transistors into ``gates.json``, every cell into ``stat.json``.

    >>> print(design_cmos_script("pe"), end="")
    read_rtlil design.il
    hierarchy -top pe
    synth -flatten -top pe -run :fine
    opt -fast -full
    memory_map -rom-only
    opt -full
    techmap
    opt -fast
    abc
    opt -fast
    abc -g cmos2
    tee -q -o memories.txt dump t:$mem_v2
    tee -q -o gates.json stat -json -tech cmos t:$_* t:$_*DFF* t:$_DLATCH* t:$_SR_* %u %u %d
    tee -q -o stat.json stat -json
    """
    return (f"read_rtlil design.il\nhierarchy -top {top}\n"
            f"synth -flatten -top {top} -run :fine\n"
            "opt -fast -full\nmemory_map -rom-only\nopt -full\ntechmap\nopt -fast\nabc\n"
            "opt -fast\n"
            "abc -g cmos2\ntee -q -o memories.txt dump t:$mem_v2\n"
            f"tee -q -o gates.json stat -json -tech cmos {GATE_SELECTION}\n"
            "tee -q -o stat.json stat -json\n")


def ecp5_script(top: str, synth_options: str = "") -> str:
    """The Yosys script of the ECP5 cells of the RTLIL in ``design.il``: ``synth_ecp5``
    (with ``synth_options``) with its LUT mapping run with the delay target
    :data:`ECP5_DELAY_TARGET_PS` (its ``map_luts`` commands, bar the latch check);
    every cell into ``stat.json``. Always after :data:`qforge.fpga.area.WORKAROUND`
    (``proc; splitnets``), which :func:`qforge.fpga.area.synthesize` runs only when the
    plain script fails (Yosys issue #4349, an assertion in ABC9's reintegration, met
    here by the fused PE's control and a group of 16 selectors): so that every part and
    the whole design are mapped by the same commands.

    >>> print(ecp5_script("pe"), end="")
    read_rtlil design.il
    proc; splitnets
    synth_ecp5 -top pe -run :map_luts
    techmap -map +/lattice/latches_map.v
    abc9 -W 300 -D 20000
    clean
    synth_ecp5 -top pe -run map_cells:
    tee -q -o stat.json stat -json
    """
    synth = f"synth_ecp5 -top {top}" + (f" {synth_options}" if synth_options else "")
    return (f"read_rtlil design.il\n{WORKAROUND}\n{synth} -run :map_luts\n"
            f"techmap -map +/lattice/latches_map.v\nabc9 -W 300 -D {ECP5_DELAY_TARGET_PS}\n"
            f"clean\n{synth} -run map_cells:\ntee -q -o stat.json stat -json\n")


#: ``synth_ecp5``'s options for the composed area: every multiplier in LUTs. With DSPs
#: on, ``synth_ecp5`` puts even a 2x2 block multiplier in a MULT18X18D (an 8x8
#: ``default`` array: 260 of them, against the LFE5U-85F's 156, which a board build
#: avoids with ``-nodsp``: docs/RESULTS.md), so LUT counts of designs with different
#: multipliers would not compare; in LUTs they are one measure of area.
ECP5_OPTIONS = "-nodsp"


def _ecp5(text: str, top: str, boxes, *, root, cache, log) -> tuple[dict, bool, float]:
    script = ecp5_script(top, ECP5_OPTIONS)
    directory = run_directory(root, top, "ecp5d", script, text)
    with _run_lock(directory):
        return _ecp5_run(directory, script, text, top, boxes, cache=cache, log=log)


def _ecp5_run(directory: Path, script: str, text: str, top: str, boxes, *, cache,
              log) -> tuple[dict, bool, float]:
    seconds = run_cached_script(
        directory, script, "design.il", text, ("stat.json",), cache=cache, log=log,
        doing=f"synthesizing {top} with yosys synth_ecp5 (abc9 -D {ECP5_DELAY_TARGET_PS})",
        failure=f"yosys synth_ecp5 failed on {top}")
    ran, seconds = seconds is not None, seconds or 0.0
    stat = directory / "stat.json"
    cells = _drop(parse_stat(stat.read_text())[0], boxes)
    return summarize(cells, "ecp5"), ran, seconds


def blackbox_modules(text: str, names) -> str:
    """The RTLIL ``text`` with the modules ``names`` reduced to their ports and marked
    ``blackbox``: synthesis keeps their instances as opaque cells, so the logic around
    them stays and theirs is not counted.

    >>> text = ('attribute \\\\generator "Amaranth"\\nmodule \\\\t.pe\\n'
    ...         '  wire width 1 input 0 \\\\clk\\n  wire width 4 \\\\x\\n'
    ...         '  wire width 4 output 1 \\\\y\\n  connect \\\\y \\\\x\\nend\\n'
    ...         'module \\\\t\\nend\\n')
    >>> print(blackbox_modules(text, ["t.pe"]), end="")
    attribute \\generator "Amaranth"
    attribute \\blackbox 1
    module \\t.pe
      wire width 1 input 0 \\clk
      wire width 4 output 1 \\y
    end
    module \\t
    end
    """
    names = set(names)
    out, inside, found = [], False, set()
    for line in text.splitlines(keepends=True):
        if line.startswith("module "):
            name = line[len("module "):].strip().lstrip("\\")
            inside = name in names
            if inside:
                found.add(name)
                out.append("attribute \\blackbox 1\n")
            out.append(line)
        elif inside:
            if line.rstrip() == "end":
                inside = False
                out.append(line)
            elif line.startswith("  wire ") and re.search(r" (input|output|inout) \d+ ",
                                                          line):
                out.append(line)
        else:
            out.append(line)
    if found != names:
        raise ValueError(f"no such modules to box: {', '.join(sorted(names - found))}")
    return "".join(out)


@dataclass(frozen=True)
class ModuleArea:
    """One module (or design) synthesized in every measure; boxed cells left out."""

    top: str
    transistors: int                    #: gates + flip-flops + memories (CMOS estimate)
    gate_transistors: int
    flip_flops: int
    memory_bits: int
    cells: dict[str, dict[str, int]]    #: family -> summarized cells
    runs: int                           #: Yosys runs done (0: all cached)
    seconds: float                      #: their wall time


def _drop(cells: dict[str, int], boxes) -> dict[str, int]:
    boxed = {name.lstrip("\\") for name in boxes}
    return {cell: count for cell, count in cells.items()
            if cell.lstrip("\\") not in boxed}


@contextlib.contextmanager
def _run_lock(directory: Path):
    """Hold an exclusive lock on the run ``directory`` (a ``.lock`` file beside it):
    parallel sweep workers that need the same module wait for one run and then read
    its result, instead of writing the same files at once."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cmos(text: str, top: str, boxes, *, root, cache, log) -> tuple[dict, bool, float]:
    script = design_cmos_script(top)
    directory = run_directory(root, top, "cmos", script, text)
    with _run_lock(directory):
        return _cmos_run(directory, script, text, top, boxes, cache=cache, log=log)


def _cmos_run(directory: Path, script: str, text: str, top: str, boxes, *, cache,
              log) -> tuple[dict, bool, float]:
    names = ("stat.json", "gates.json", "memories.txt")
    seconds = run_cached_script(
        directory, script, "design.il", text, names, cache=cache, log=log,
        doing=f"synthesizing {top} to CMOS gates (abc -g cmos2)",
        failure=f"yosys failed on {top}'s CMOS estimate")
    ran, seconds = seconds is not None, seconds or 0.0
    files = [directory / name for name in names]
    stat, gates, memories = (path.read_text() for path in files)
    cells = _drop(parse_stat(stat)[0], boxes)
    gates = json.loads(gates[gates.find("{"):])
    modules = list((gates.get("modules") or {}).values())
    if len(modules) > 1:
        raise ValueError(f"expected the statistics of one module, got {len(modules)}")
    # No module: nothing selected, no gates (a memory alone, say).
    module = modules[0] if modules else {"estimated_num_transistors": "0"}
    estimate = str(module.get("estimated_num_transistors", ""))
    if not estimate.isdigit():
        raise ValueError(f"stat -tech cmos estimated {estimate!r} transistors for {top}: "
                         f"a gate without a CMOS price among "
                         f"{', '.join(sorted(module.get('num_cells_by_type', {})))}")
    memories = parse_memories(memories)
    result = {"gate_transistors": int(estimate), "flip_flops": count_flip_flops(cells),
              "memory_bits": sum(width * size for width, size in memories),
              "memory_transistors": memory_transistors(memories)}
    return result, ran, seconds


def module_area(text: str, top: str, *, boxes=(), families=("ecp5",), root=None,
                cache=True, log=None) -> ModuleArea:
    """Synthesize the RTLIL ``text`` (top module ``top``) in every measure: the CMOS
    estimate (:func:`design_cmos_script`) and each of ``families`` (with
    :data:`~qforge.fpga.pe_area.PE_FAMILIES`' options); the cells of the black-boxed
    modules ``boxes`` are left out of the counts."""
    cmos, ran, seconds = _cmos(text, top, boxes, root=root, cache=cache, log=log)
    runs = int(ran)
    cells = {}
    for family in families:
        if family == "ecp5":
            cells[family], ran, spent = _ecp5(text, top, boxes, root=root, cache=cache,
                                              log=log)
        else:
            report = synthesize(text, family, top=top, synth_options=PE_FAMILIES[family],
                                root=root, cache=cache, log=log)
            cells[family] = summarize(_drop(report.cells, boxes), family)
            ran, spent = not report.cached, report.seconds
        runs += ran
        seconds += spent
    transistors = (cmos["gate_transistors"] + FLIP_FLOP_TRANSISTORS * cmos["flip_flops"]
                   + cmos["memory_transistors"])
    return ModuleArea(top, transistors, cmos["gate_transistors"], cmos["flip_flops"],
                      cmos["memory_bits"], cells, runs, seconds)


@dataclass(frozen=True)
class Part:
    """A module of the design: its instances and one instance's area."""

    name: str
    count: int                          #: instances in the design
    transistors: int                    #: per instance (CMOS estimate, memories included)
    cells: dict[str, dict[str, int]]    #: family -> summarized cells per instance
    cached: bool                        #: no Yosys run was needed
    flip_flops: int = 0                 #: per instance
    memory_bits: int = 0                #: per instance
    #: Modules of the design in one instance of the part (a selector group's selectors).
    modules: int = 1

    def to_dict(self) -> dict:
        return {"name": self.name, "count": self.count, "modules": self.modules,
                "transistors": self.transistors, "flip_flops": self.flip_flops,
                "memory_bits": self.memory_bits, "cells": self.cells,
                "cached": self.cached}


@dataclass(frozen=True)
class ComposedArea:
    """A configuration's whole-design area as the sum of its parts."""

    config: Config
    parts: tuple[Part, ...]
    runs: int = 0                       #: module synthesis runs done (not cached)
    seconds: float = 0.0                #: wall time of the call
    indexed: bool = False               #: read whole from the index (no elaboration)

    @property
    def transistors(self) -> int:
        """CMOS estimate of the whole Accelerator: count x per instance, summed."""
        return sum(part.count * part.transistors for part in self.parts)

    @property
    def flip_flops(self) -> int:
        return sum(part.count * part.flip_flops for part in self.parts)

    @property
    def memory_bits(self) -> int:
        return sum(part.count * part.memory_bits for part in self.parts)

    @property
    def logic_transistors(self) -> int:
        """:attr:`transistors` without the memories' (gates and flip-flops)."""
        return self.transistors - memory_transistors([(1, self.memory_bits)])

    def cells(self, family: str) -> dict[str, int]:
        """The family's summarized cells of the whole Accelerator."""
        total: dict[str, int] = {}
        for part in self.parts:
            for key, count in part.cells[family].items():
                total[key] = total.get(key, 0) + part.count * count
        return total

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.parts[0].cells) if self.parts else ()

    def part(self, name: str) -> Part:
        return next(part for part in self.parts if part.name == name)

    def to_dict(self) -> dict:
        return {"config": self.config.name, "spec": self.config.to_dict(),
                "transistors": self.transistors,
                "logic_transistors": self.logic_transistors,
                "flip_flops": self.flip_flops, "memory_bits": self.memory_bits,
                "cells": {family: self.cells(family) for family in self.families},
                "parts": [part.to_dict() for part in self.parts],
                "runs": self.runs, "seconds": self.seconds, "indexed": self.indexed}


def _source_digest() -> str:
    """Hash of the sources the result depends on: the HDL, the configuration model and
    the synthesis code."""
    package = Path(__file__).resolve().parent.parent
    files = sorted([*(package / "hdl").glob("*.py"),
                    *(package / "sim" / "model").glob("*.py"),
                    *(package / "fpga").glob("*area.py")])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def index_key(config: Config, families, kind: str = "composed") -> str:
    """The key of a result in the index: the configuration's fields but its name, the
    families, the HDL and synthesis sources' hash (:func:`_source_digest`).

    >>> from qforge.sim.model.spec import load_preset
    >>> tiny = load_preset("tiny")
    >>> index_key(tiny, ("ecp5",)) == index_key(dataclasses.replace(tiny, name="t2"),
    ...                                         ("ecp5",))
    True
    >>> index_key(tiny, ("ecp5",)) == index_key(dataclasses.replace(tiny, rows=4),
    ...                                         ("ecp5",))
    False
    """
    fields = dataclasses.asdict(config)
    fields.pop("name")
    data = json.dumps({"kind": kind, "config": fields, "families": list(families),
                       "sources": _source_digest(), "version": _INDEX_VERSION},
                      sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:24]


def _index_path(root, key: str) -> Path:
    return (root or _default_root()) / "index" / f"{key}.json"


def _from_index(config: Config, path: Path, started: float) -> ComposedArea:
    data = json.loads(path.read_text())
    parts = tuple(Part(part["name"], part["count"], part["transistors"], part["cells"],
                       True, part["flip_flops"], part["memory_bits"], part["modules"])
                  for part in data["parts"])
    return ComposedArea(config, parts, 0, time.monotonic() - started, True)


def _to_index(area: ComposedArea, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(area.to_dict(), indent=1))
    temporary.replace(path)


def _design_modules(text: str, top: str) -> dict[str, list[str]]:
    """The modules of the Accelerator's RTLIL to box, by part: every PE but the corner
    (``pe``), the corner (``pe_corner``), the output stage (``output``) and the
    selectors, grouped by the signals their ``precision`` and ``select`` ports are
    connected to (``selectors:<side>:<n>`` keys, ``side`` ``a`` or ``b`` from the
    instance's name, one list per group, in order)."""
    names = re.findall(r"^module \\(\S+)$", text, flags=re.M)
    prefix = re.escape(top)
    pes = [name for name in names if re.fullmatch(rf"{prefix}\.array\.pe_\d+_\d+", name)]
    corner = [name for name in pes if " \\captured " in _ports(text, name)]
    modules = {"pe": [name for name in pes if name not in corner], "pe_corner": corner,
               "output": [name for name in names if name == f"{top}.output"]}
    groups: dict[tuple[str, str, str], list[str]] = {}
    for name in names:
        side = re.fullmatch(rf"{prefix}\.(a|b)_selector[\d_]*", name)
        if side:
            key = (side.group(1), *_selector_inputs(text, top, name))
            groups.setdefault(key, []).append(name)
    for index, ((side, *_), group) in enumerate(groups.items()):
        modules[f"selectors:{side}:{index}"] = group
    return modules


def _ports(text: str, module: str) -> str:
    start = text.index(f"module \\{module}\n")
    body = text[start:text.index("\nend\n", start)]
    return " ".join(line + " " for line in body.splitlines()
                    if re.search(r" (input|output) \d+ ", line))


def _selector_inputs(text: str, top: str, module: str) -> tuple[str, str]:
    """What the instance of ``module`` in ``top`` connects its ``precision`` and
    ``select`` ports to."""
    start = text.index(f"module \\{top}\n")
    body = text[start:text.index("\nend\n", start)]
    cell = re.search(rf"^  cell \\{re.escape(module)} .*?^  end", body, flags=re.M | re.S)
    if not cell:
        raise ValueError(f"no instance of {module} in {top}")
    inputs = tuple(re.search(rf"^    connect \\{port} (.*)$", cell.group(0), flags=re.M)
                   for port in ("precision", "select"))
    return tuple(match.group(1) if match else "" for match in inputs)


def selector_group(config: Config, count: int, side: str = "a"):
    """``count`` :class:`~qforge.hdl.selector.BlockSelector` s of ``side`` (``"a"`` or
    ``"b"``) with their own words and lanes and one ``precision`` and ``select`` for
    all, as the Accelerator connects the selectors of one side (every A selector takes
    the issued ``a_precision`` and ``a_select``): what depends on those alone (the static
    exponent's table, ...) is built once for the group in the whole design, so the group
    is the part (an Amaranth component)."""
    from amaranth.hdl import Module
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    from qforge.hdl.layouts import (lane_select_layout, lanes_layout,
                                    operand_precision_layout, operand_word_layout)
    from qforge.hdl.selector import BlockSelector

    class SelectorGroup(wiring.Component):
        def __init__(self):
            super().__init__({
                "words": In(data.ArrayLayout(operand_word_layout(config), count)),
                "precision": In(operand_precision_layout(config)),
                "select": In(data.ArrayLayout(lane_select_layout(config),
                                              config.block_multipliers)),
                "lanes": Out(data.ArrayLayout(lanes_layout(config), count)),
            })

        def elaborate(self, platform):
            m = Module()
            for index in range(count):
                selector = m.submodules[f"selector{index}"] = BlockSelector(config, side)
                m.d.comb += [selector.word.eq(self.words[index]),
                             selector.precision.eq(self.precision),
                             selector.select.eq(self.select),
                             self.lanes[index].eq(selector.lanes)]
            return m

    return SelectorGroup()


def pe_pair(config: Config):
    """Two interior PEs that share their ``a_in`` and ``flags_in`` (and ``shift``), as
    every PE of the zero-skipping :class:`~qforge.hdl.array.BroadcastArray` does, each
    with the rest of :func:`~qforge.fpga.pe_area.interior_ports` its own (an Amaranth
    component; ``ports()``: its ports for the converters). The flattened design keeps one
    copy of what depends on the shared inputs alone (the A operand and marker
    registers), so a PE past the first costs this pair less one PE."""
    from amaranth.hdl import Module, Value, signed
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    from qforge.hdl.layouts import flags_layout, lanes_layout
    from qforge.hdl.pe import ProcessingElement

    lanes, flags = lanes_layout(config), flags_layout(config)
    accumulator = signed(config.accumulator_width)
    both = lambda shape: data.ArrayLayout(shape, 2)

    class PePair(wiring.Component):
        def __init__(self):
            super().__init__({
                "a_in": In(lanes), "flags_in": In(flags), "shift": In(1),
                "b_in": In(both(lanes)), "result_below": In(both(accumulator)),
                "a_out": Out(both(lanes)), "flags_out": Out(both(flags)),
                "b_out": Out(both(lanes)), "result": Out(both(accumulator)),
            })

        def ports(self):
            return [Value.cast(getattr(self, name)) for name in self.signature.members]

        def elaborate(self, platform):
            m = Module()
            for index in range(2):
                pe = m.submodules[f"pe{index}"] = ProcessingElement(config)
                m.d.comb += [pe.a_in.eq(self.a_in), pe.flags_in.eq(self.flags_in),
                             pe.shift.eq(self.shift), pe.b_in.eq(self.b_in[index]),
                             pe.result_below.eq(self.result_below[index])]
                tie_lane_fields(m, pe, config)
                for name in ("a_out", "flags_out", "b_out", "result"):
                    m.d.comb += getattr(self, name)[index].eq(getattr(pe, name))
            return m

    return PePair()


def _increment(pair: ModuleArea, one: ModuleArea) -> ModuleArea:
    """``pair`` less ``one``, in every measure (runs: both's)."""
    cells = {family: {key: count - one.cells[family].get(key, 0)
                      for key, count in pair.cells[family].items()}
             for family in pair.cells}
    return ModuleArea(pair.top, pair.transistors - one.transistors,
                      pair.gate_transistors - one.gate_transistors,
                      pair.flip_flops - one.flip_flops, pair.memory_bits - one.memory_bits,
                      cells, pair.runs + one.runs, pair.seconds + one.seconds)


def composed_area(config: Config, *, families=("ecp5",), root: Path | None = None,
                  cache: bool = True, log=None) -> ComposedArea:
    """The area of ``config``'s whole Accelerator composed from its parts (the module
    docstring): each part synthesized alone in the CMOS estimate and in ``families``
    (seconds to minutes each, cached by its RTLIL; runs in ``root``, default
    ``build/area``). With ``cache``, a configuration computed before with the same
    sources is read from the index (``root/index/``) without elaborating anything."""
    from amaranth.back import rtlil

    from qforge.hdl.output_stage import OutputStage
    from qforge.hdl.top import Accelerator

    started = time.monotonic()
    families = tuple(families)
    index = _index_path(root, index_key(config, families))
    if cache and index.exists():
        return _from_index(config, index, started)
    options = {"families": families, "root": root, "cache": cache, "log": log}

    top = PART_TOPS["control"]
    whole = rtlil.convert(Accelerator(config), name=top, emit_src=False)
    boxes = _design_modules(whole, top)
    if len(boxes["pe_corner"]) != 1 or len(boxes["output"]) != 1:
        raise ValueError(f"{config.name}: expected one corner PE and one output stage in "
                         f"the design, found {boxes['pe_corner']} and {boxes['output']}")
    boxed = [name for names in boxes.values() for name in names]
    control = module_area(blackbox_modules(whole, boxed), top, boxes=boxed, **options)

    designs = {  # part -> (design, ports, top, modules per instance, instances)
        "pe": (*interior_pe(config), PART_TOPS["pe"], 1, len(boxes["pe"])),
        "pe_corner": (*interior_pe(config, corner=True), PART_TOPS["pe_corner"], 1, 1),
    }
    # Selector groups by (side, size); the sides apart only when their selectors differ.
    apart = selector_sides(config) == ("a", "b")
    sizes: dict[tuple[str, int], int] = {}
    for name, group in boxes.items():
        if name.startswith("selectors:"):
            key = (name.split(":")[1] if apart else "", len(group))
            sizes[key] = sizes.get(key, 0) + 1
    for (side, size), groups in sorted(sizes.items()):
        suffix = f"{side}_{size}" if side else f"{size}"
        designs[f"selectors_{suffix}"] = (
            selector_group(config, size, side or "a"), None,
            f"{PART_TOPS['selectors']}_{suffix}", size, groups)
    designs["output"] = (OutputStage(config), None, PART_TOPS["output"], 1, 1)
    parts, runs = [], control.runs
    for name, (design, ports, part_top, modules, count) in designs.items():
        if not count:
            continue
        text = rtlil.convert(design, name=part_top, ports=ports, emit_src=False)
        area = module_area(text, part_top, **options)
        runs += area.runs
        if name == "pe" and config.zero_skipping:
            # Broadcast array: one copy of the A and marker registers, the corner's.
            pair = pe_pair(config)
            top = PART_TOPS["pe_pair"]
            pair = module_area(rtlil.convert(pair, name=top, ports=pair.ports(),
                                             emit_src=False), top, **options)
            runs += pair.runs
            area = _increment(pair, area)
        parts.append(Part(name, count, area.transistors, area.cells, area.runs == 0,
                          area.flip_flops, area.memory_bits, modules))
    parts.append(Part("control", 1, control.transistors, control.cells, control.runs == 0,
                      control.flip_flops, control.memory_bits))
    area = ComposedArea(config, tuple(parts), runs, time.monotonic() - started)
    _to_index(area, index)
    return area


def whole_design_area(config: Config, *, families=("ecp5",), root: Path | None = None,
                      cache: bool = True, log=None) -> ComposedArea:
    """The area of ``config``'s whole Accelerator synthesized as one design, in the
    measures of :func:`composed_area` (the same scripts, memories priced the same):
    one part, ``whole``. Minutes for a 4x4 array; cached by its RTLIL."""
    from amaranth.back import rtlil

    from qforge.hdl.top import Accelerator

    started = time.monotonic()
    top = PART_TOPS["whole"]
    text = rtlil.convert(Accelerator(config), name=top, emit_src=False)
    area = module_area(text, top, families=families, root=root, cache=cache, log=log)
    part = Part("whole", 1, area.transistors, area.cells, area.runs == 0,
                area.flip_flops, area.memory_bits)
    return ComposedArea(config, (part,), area.runs, time.monotonic() - started)


#: The measures :func:`composition_error` compares, ``(family or None, key)``: None is
#: the CMOS estimate.
MEASURES = ((None, "transistors"), (None, "logic_transistors"), (None, "flip_flops"),
            (None, "memory_bits"), ("ecp5", "lut4"),
            ("ecp5", "carry"), ("ecp5", "ff"), ("ecp5", "dsp"), ("ecp5", "bram"),
            ("ecp5", "lutram"))


def composition_error(composed: ComposedArea, whole: ComposedArea) -> dict[str, dict]:
    """Per measure: the composed and whole values and ``composed / whole - 1`` (None
    when the whole is 0).

    >>> from qforge.sim.model.spec import load_preset
    >>> tiny = load_preset("tiny")
    >>> a = ComposedArea(tiny, (Part("pe", 4, 100, {"ecp5": {"lut4": 10}}, True, 2),
    ...                         Part("control", 1, 600, {"ecp5": {"lut4": 60}}, True, 5)))
    >>> b = ComposedArea(tiny, (Part("whole", 1, 1000, {"ecp5": {"lut4": 100}}, True, 12),))
    >>> composition_error(a, b)["transistors"]
    {'composed': 1000, 'whole': 1000, 'error': 0.0}
    >>> composition_error(a, b)["ecp5.lut4"]["error"]
    0.0
    >>> round(composition_error(a, b)["flip_flops"]["error"], 3)
    0.083
    """
    errors = {}
    for family, key in MEASURES:
        if family is None:
            name = key
            values = getattr(composed, key), getattr(whole, key)
        elif family in composed.families and family in whole.families:
            name = f"{family}.{key}"
            values = composed.cells(family).get(key, 0), whole.cells(family).get(key, 0)
        else:
            continue
        errors[name] = {"composed": values[0], "whole": values[1],
                        "error": values[0] / values[1] - 1 if values[1] else None}
    return errors
