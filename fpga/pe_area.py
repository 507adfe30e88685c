"""Area of one processing element against the 8-bit fixed-point baseline
(``qforge area --pe``): the measuring stick of block-wise precision reconfiguration.

A configuration's interior :class:`~qforge.hdl.pe.ProcessingElement` (the module the
generated design instantiates as ``array.pe_<r>_<c>``; every PE of an array is the same
module, and its ports are the component's, so the PE synthesized alone is the interior
PE) and one :class:`~qforge.hdl.selector.BlockSelector` of the array's edge are each
synthesized alone (and one B selector too when the column side's differs from the row
side's, as with ``arithmetic.paired``), in three measures:

* a generic CMOS transistor estimate (:func:`cmos_estimate`): Yosys's generic
  ``synth -flatten``, then ``abc -g cmos2`` (NAND, NOR and NOT gates) and
  ``stat -tech cmos``, whose own transistor count prices the gates; every flip-flop
  (each bit-level storage cell Yosys leaves, :data:`FLIP_FLOP_CELLS`, whatever its
  reset or enable) counts :data:`FLIP_FLOP_TRANSISTORS` more;
* ECP5 cells (``synth_ecp5``: LUT4, CCU2C, TRELLIS_FF, MULT18X18D) and iCE40 cells
  (``synth_ice40 -dsp``: SB_LUT4, SB_CARRY, SB_DFF*, SB_MAC16 for products of at least
  11 bits), by :func:`qforge.fpga.area.synthesize`.

Per configuration (:class:`PeArea`): the PE, the selectors amortized per PE
(``(A selectors x one A selector + B selectors x one B selector) / (rows x cols)``) and
the array estimate
``rows x cols x PE + selectors`` (the datapath only: no buffers, control or output
stage). :func:`throughput_table` divides each precision mode's MACs per cycle per PE,
from the cycle model (:func:`qforge.sim.model.cycles.mode_tile_cycles`), by the area, relative
to the ``fxp8`` preset's exact MAC per cycle per its area.

Runs are cached like :mod:`qforge.fpga.area`'s, in ``build/area/<top>-cmos-<hash>/``.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from qforge.fpga.area import parse_stat, run_cached_script, run_directory, synthesize
from qforge.sim.model.spec import Config

__all__ = ["FLIP_FLOP_TRANSISTORS", "FLIP_FLOP_CELLS", "GATE_SELECTION", "BASELINE",
           "PE_FAMILIES",
           "CmosEstimate", "cmos_script", "count_flip_flops", "parse_cmos_stat",
           "cmos_estimate", "CORNER_ONLY", "interior_ports", "tied_lane_fields",
           "tie_lane_fields", "interior_pe", "ModeThroughput",
           "mode_throughputs", "PeArea", "selector_sides", "pe_area",
           "throughput_table"]

#: Transistors charged per flip-flop: a static CMOS D flip-flop (two latches of
#: transmission gates and inverters) with its reset or enable gating is about 24.
#: ``stat -tech cmos`` prices only plain ``$_DFF_P_``/``$_DFF_N_`` (at 16) and leaves
#: the others unpriced, so the flip-flops are taken out of its count and charged here.
FLIP_FLOP_TRANSISTORS = 24

#: Yosys's bit-level storage cells (``$_DFF_P_``, ``$_SDFFE_PP0P_``, ``$_DLATCH_P_``,
#: ...): one bit each.
FLIP_FLOP_CELLS = ("$_*DFF*", "$_DLATCH*", "$_SR_*")

#: The preset every configuration is compared with: one exact 8x8 MAC per PE per cycle.
BASELINE = "fxp8"

#: The FPGA families measured, with their synthesis options: iCE40 with ``-dsp`` so
#: that products of at least 11 bits (an 8x8 one) go to an SB_MAC16, as in a board build.
PE_FAMILIES = {"ecp5": "", "ice40": "-dsp"}

#: Yosys's selection of the gates: every internal cell (``$_..._``) but the storage
#: cells (so not the ``$scopeinfo`` cells a flattened hierarchy leaves either).
GATE_SELECTION = ("t:$_* " + " ".join(f"t:{pattern}" for pattern in FLIP_FLOP_CELLS)
                  + " %u %u %d")


@dataclass(frozen=True)
class CmosEstimate:
    """The generic CMOS estimate of one module."""

    cells: dict[str, int]      #: gate and flip-flop cells after ``abc -g cmos2``
    flip_flops: int            #: storage bits (:func:`count_flip_flops`)
    gate_transistors: int      #: ``stat -tech cmos``'s count of the gates alone
    yosys: str = ""
    seconds: float = 0.0       #: wall time of the Yosys run (0 when cached)
    cached: bool = False
    directory: Path | None = None

    @property
    def transistors(self) -> int:
        """Gates plus :data:`FLIP_FLOP_TRANSISTORS` per flip-flop."""
        return self.gate_transistors + FLIP_FLOP_TRANSISTORS * self.flip_flops

    def to_dict(self) -> dict:
        return {"transistors": self.transistors, "gate_transistors": self.gate_transistors,
                "flip_flops": self.flip_flops, "cells": self.cells, "cached": self.cached,
                "seconds": self.seconds,
                "directory": str(self.directory) if self.directory else None}


def cmos_script(top: str) -> str:
    """The Yosys script of the CMOS estimate of the Verilog in ``design.v``: every
    cell's count into ``stat.json``, the gates' transistors into ``gates.json``.

    >>> print(cmos_script("pe"), end="")
    read_verilog -sv design.v
    hierarchy -top pe
    synth -flatten -top pe
    abc -g cmos2
    tee -q -o gates.json stat -json -tech cmos t:$_* t:$_*DFF* t:$_DLATCH* t:$_SR_* %u %u %d
    tee -q -o stat.json stat -json -tech cmos
    """
    return (f"read_verilog -sv design.v\nhierarchy -top {top}\nsynth -flatten -top {top}\n"
            f"abc -g cmos2\ntee -q -o gates.json stat -json -tech cmos {GATE_SELECTION}\n"
            f"tee -q -o stat.json stat -json -tech cmos\n")


def count_flip_flops(cells: dict[str, int]) -> int:
    """Storage bits among Yosys's cells (:data:`FLIP_FLOP_CELLS`).

    >>> count_flip_flops({"$_SDFFE_PP0P_": 27, "$_SDFF_PP0_": 94, "$_DFF_P_": 2,
    ...                   "$_NAND_": 900, "$_NOT_": 3})
    123
    """
    return sum(count for cell, count in cells.items()
               if any(fnmatch.fnmatchcase(cell, pattern) for pattern in FLIP_FLOP_CELLS))


def parse_cmos_stat(stat_text: str, gates_text: str) -> CmosEstimate:
    """The estimate from the two ``stat -json -tech cmos`` outputs of :func:`cmos_script`:
    the whole module's (cell counts) and the gates' alone (their transistors, which
    must be a plain number: a ``+`` means Yosys met a cell it has no price for).

    >>> whole = ('{"creator": "Yosys 0.70 (git sha1 x)", "modules": {"pe": '
    ...          '{"num_cells_by_type": {"$_NAND_": 3, "$_NOT_": 1, "$_SDFF_PP0_": 2}, '
    ...          '"estimated_num_transistors": "14+"}}}')
    >>> gates = ('{"modules": {"pe": {"num_cells_by_type": {"$_NAND_": 3, '
    ...          '"$_NOT_": 1}, "estimated_num_transistors": "14"}}}')
    >>> estimate = parse_cmos_stat(whole, gates)
    >>> estimate.gate_transistors, estimate.flip_flops, estimate.transistors
    (14, 2, 62)
    """
    cells, version = parse_stat(stat_text)
    gates = json.loads(gates_text[gates_text.find("{"):])
    modules = list((gates.get("modules") or {}).values())
    if len(modules) != 1:
        raise ValueError(f"expected the statistics of one module, got {len(modules)}")
    estimate = str(modules[0].get("estimated_num_transistors", ""))
    if not estimate.isdigit():
        unpriced = sorted(cell for cell in modules[0].get("num_cells_by_type", {}))
        raise ValueError(f"stat -tech cmos estimated {estimate!r} transistors: a cell "
                         f"without a CMOS price among {', '.join(unpriced)}")
    return CmosEstimate(cells, count_flip_flops(cells), int(estimate), version)


def cmos_estimate(design, top: str, *, ports=None, root: Path | None = None,
                  cache: bool = True, log=None) -> CmosEstimate:
    """The CMOS estimate of ``design``: an Amaranth component (converted to Verilog with
    ``ports``, by default its signature's) or Verilog text whose top module is ``top``.
    Runs in ``root/<top>-cmos-<hash>/`` (``root`` defaults to ``build/area``) unless a
    run of the same Verilog and script is there and ``cache``."""
    if isinstance(design, str):
        text = design
    else:
        from amaranth.back import verilog
        text = verilog.convert(design, name=top, ports=ports, emit_src=False)
    script = cmos_script(top)
    directory = run_directory(root, top, "cmos", script, text)
    seconds = run_cached_script(
        directory, script, "design.v", text, ("stat.json", "gates.json"), cache=cache,
        log=log, doing=f"synthesizing {top} to CMOS gates (abc -g cmos2)",
        failure=f"yosys failed on {top}'s CMOS estimate")
    estimate = parse_cmos_stat((directory / "stat.json").read_text(),
                               (directory / "gates.json").read_text())
    return CmosEstimate(estimate.cells, estimate.flip_flops, estimate.gate_transistors,
                        estimate.yosys, seconds or 0.0, seconds is None, directory)


@dataclass(frozen=True)
class ModeThroughput:
    """One precision mode's rate on one PE."""

    mode: str
    description: str
    block_products: int         #: q = La x Lb
    bits: str                   #: magnitude bits kept of A and B (``"8x8"``)
    macs_per_cycle: Fraction    #: per PE, in a tile of ``max_reduction_depth``


def mode_throughputs(config: Config) -> list[ModeThroughput]:
    """Every standard precision mode of ``config``
    (:func:`~qforge.sim.model.numerics.standard_modes`), ``vrq`` (whole VRQ codes)
    when the configuration has a ``[vrq]`` section, and ``paired`` (A in the paired mode
    with symmetric windows of ``max(1, n // 2)`` blocks, B exact: the mode of ``qforge
    bench``'s ``paired_speedup``; two MACs per slot of ``n x n`` block products, whatever
    the windows) with ``arithmetic.paired``, with its MACs per cycle per PE:
    ``depth / mode_tile_cycles(config, depth, precision)`` for the longest tile,
    ``depth`` = ``max_reduction_depth`` (the cycle model: ``P / q`` whenever ``q x depth``
    is a multiple of P; with ``arithmetic.pe = "shared_shift"`` a dynamic approximation
    issues all ``n`` blocks of an operand).

    >>> from qforge.sim.model.spec import load_preset
    >>> [(rate.mode, rate.bits, str(rate.macs_per_cycle))
    ...  for rate in mode_throughputs(load_preset("tiny"))][:3]
    [('exact', '8x8', '1/4'), ('reduced', '4x4', '1'), ('mixed', '8x4', '1/2')]
    >>> [(rate.mode, str(rate.macs_per_cycle)) for rate in
    ...  mode_throughputs(load_preset("paired")) if rate.mode in ("exact", "paired")]
    [('exact', '1/4'), ('paired', '1/2')]
    """
    from qforge.sim.model.cycles import mode_tile_cycles
    from qforge.sim.model.numerics import OperandPrecision, Precision, standard_modes
    from qforge.sim.model.paired import PairedPrecision

    modes = dict(standard_modes(config))
    if config.vrq is not None:
        code = OperandPrecision(config.vrq_code_blocks, config.vrq_code_blocks, vrq=True)
        modes["vrq"] = Precision(code, code)
    if config.paired:
        exact, half = modes["exact"], max(1, config.blocks // 2)
        modes["paired"] = Precision(OperandPrecision(
            config.blocks, config.blocks, paired=PairedPrecision(half, half)), exact.b)
    depth, width = config.max_reduction_depth, config.block_width
    return [ModeThroughput(
        name, precision.describe(), precision.block_products,
        f"{precision.a.kept * width}x{precision.b.kept * width}",
        Fraction(depth, mode_tile_cycles(config, depth, precision)))
        for name, precision in modes.items()]


@dataclass(frozen=True)
class PeArea:
    """One configuration's PE, selectors and array, in every measure.

    ``selector_cmos`` and ``selector_cells`` are one A (row) selector's, which is every
    selector's when both sides are the same module; otherwise (``arithmetic.paired``:
    a B selector also selects the pair's partner block) ``b_selectors`` of the design's
    ``selectors`` are B (column) selectors, measured in ``b_selector_cmos`` and
    ``b_selector_cells``, and the amortized figures (:meth:`selector_total`) take a B
    selector's measure too.
    """

    config: Config
    selectors: int                          #: block selectors in the design (both sides)
    pe_cmos: CmosEstimate
    selector_cmos: CmosEstimate             #: one A selector
    pe_cells: dict[str, dict[str, int]]     #: family -> summarized cells of one PE
    selector_cells: dict[str, dict[str, int]]   #: family -> of one A selector
    #: How many of :attr:`selectors` are B selectors measured apart (0: none, every
    #: selector is the module of ``selector_cmos``).
    b_selectors: int = 0
    b_selector_cmos: CmosEstimate | None = None
    b_selector_cells: dict[str, dict[str, int]] | None = None

    @property
    def pes(self) -> int:
        return self.config.rows * self.config.cols

    def selector_total(self, selector: float, b_selector: float | None = None) -> float:
        """Every selector of the design in one measure, given one A selector's
        (``selector``) and, when the B selectors are measured apart, one B selector's
        (``b_selector``; leaving it out then is a ValueError, not a guess).

        >>> area = PeArea(None, 16, None, None, {}, {}, b_selectors=8)
        >>> area.selector_total(100, 30)
        1040
        >>> area.selector_total(100)
        Traceback (most recent call last):
        ...
        ValueError: b_selector = None: the 8 B selectors are measured apart; give one's measure
        """
        if not self.b_selectors:
            return self.selectors * selector
        if b_selector is None:
            raise ValueError(f"b_selector = None: the {self.b_selectors} B selectors are "
                             f"measured apart; give one's measure")
        return (self.selectors - self.b_selectors) * selector + self.b_selectors * b_selector

    def per_pe(self, pe: float, selector: float, b_selector: float | None = None) -> float:
        """A PE plus its share of the selectors (:meth:`selector_total`)."""
        return pe + self.selector_total(selector, b_selector) / self.pes

    def array(self, pe: int, selector: int, b_selector: int | None = None) -> int:
        """rows x cols PEs and every selector (:meth:`selector_total`)."""
        return self.pes * pe + self.selector_total(selector, b_selector)

    @property
    def transistors_per_pe(self) -> float:
        """The PE's CMOS estimate plus its share of the selectors'."""
        return self.per_pe(self.pe_cmos.transistors, self.selector_cmos.transistors,
                           self._b_cmos())

    def _b_cmos(self) -> int | None:
        return None if self.b_selector_cmos is None else self.b_selector_cmos.transistors

    def _b_cells(self, family: str) -> dict[str, int] | None:
        return None if self.b_selector_cells is None else self.b_selector_cells[family]

    def to_dict(self) -> dict:
        config = self.config
        families = {}
        for family, cells in self.pe_cells.items():
            selector, b_selector = self.selector_cells[family], self._b_cells(family)
            b_value = lambda key: None if b_selector is None else b_selector[key]
            families[family] = {
                "pe": cells, "selector": selector, "b_selector": b_selector,
                "selectors_per_pe": {key: self.selector_total(selector[key], b_value(key))
                                     / self.pes for key in selector},
                "array": {key: self.array(cells[key], selector[key], b_value(key))
                          for key in cells}}
        b_cmos = None if self.b_selector_cmos is None else self.b_selector_cmos.to_dict()
        return {"config": config.name, "array": f"{config.rows}x{config.cols}",
                "operand_width": config.operand_width, "block_width": config.block_width,
                "block_multipliers": config.block_multipliers,
                "accumulator_width": config.accumulator_width,
                "zero_skipping": config.zero_skipping, "selectors": self.selectors,
                "b_selectors": self.b_selectors,
                "cmos": {"pe": self.pe_cmos.to_dict(),
                         "selector": self.selector_cmos.to_dict(), "b_selector": b_cmos,
                         "selectors_per_pe": self.transistors_per_pe
                         - self.pe_cmos.transistors,
                         "pe_with_selectors": self.transistors_per_pe,
                         "array": self.array(self.pe_cmos.transistors,
                                             self.selector_cmos.transistors,
                                             self._b_cmos())},
                "families": families}


#: Outputs only the array's last PE drives (its corner's capture pulses): an interior
#: PE of the generated design has no such ports, so its capture logic is dropped.
CORNER_ONLY = ("captured", "captured_gemm_last")


def interior_ports(pe) -> list:
    """The ports of ``pe`` (a :class:`~qforge.hdl.pe.ProcessingElement`) as an interior
    PE of the generated design has them: every signature member but
    :data:`CORNER_ONLY`, as Amaranth's converters take them."""
    from amaranth.hdl import Value

    return [Value.cast(getattr(pe, name)) for name in pe.signature.members
            if name not in CORNER_ONLY]


def tied_lane_fields(config: Config) -> dict[str, tuple[str, ...]]:
    """The lane fields a PE's inputs receive as constant 0 in the generated design, by
    input: with ``arithmetic.paired`` every lane has both sides' fields
    (:func:`qforge.hdl.layouts.block_lane_layout`), and each side's edge selectors drive
    the other side's 0: A lanes' ``partner``, B lanes' ``second``. The flattened design
    removes the PEs' registers of those fields (constant), so a PE measured alone must
    receive them as constants too, or it is charged registers the design does not have.

    >>> from qforge.sim.model.spec import load_preset
    >>> tied_lane_fields(load_preset("default")), tied_lane_fields(load_preset("paired"))
    ({}, {'a_in': ('partner',), 'b_in': ('second',)})
    """
    return {"a_in": ("partner",), "b_in": ("second",)} if config.paired else {}


def tie_lane_fields(m, pe, config: Config) -> None:
    """Drive ``pe``'s :func:`tied_lane_fields` with 0 in ``m`` (a ``Module`` whose
    combinational statements before these drive ``pe``'s lane inputs: later statements
    take priority)."""
    for port, fields in tied_lane_fields(config).items():
        for lane in range(config.block_multipliers):
            m.d.comb += [getattr(getattr(pe, port)[lane], field).eq(0) for field in fields]


def interior_pe(config: Config, *, corner: bool = False) -> tuple:
    """``(design, ports)``: ``config``'s :class:`~qforge.hdl.pe.ProcessingElement` as the
    generated design has it, for the converters: an interior PE's ports
    (:func:`interior_ports`; ``corner``: every port, the corner PE's), and the lane
    fields of :func:`tied_lane_fields` 0 (then ``design`` is a ``Module`` around the PE
    whose ports carry the PE's names; else the PE itself)."""
    from amaranth.hdl import Module, Signal, Value
    from amaranth.lib.wiring import Flow

    from qforge.hdl.pe import ProcessingElement

    pe = ProcessingElement(config)
    names = [name for name in pe.signature.members if corner or name not in CORNER_ONLY]
    if not tied_lane_fields(config):
        return pe, [Value.cast(getattr(pe, name)) for name in names]
    m = Module()
    m.submodules.pe = pe
    ports = []
    for name in names:
        member, inner = pe.signature.members[name], getattr(pe, name)
        port = Signal(member.shape, name=name)
        m.d.comb += inner.eq(port) if member.flow == Flow.In else port.eq(inner)
        ports.append(Value.cast(port))
    tie_lane_fields(m, pe, config)
    return m, ports


def selector_sides(config: Config) -> tuple[str, ...]:
    """The sides whose :class:`~qforge.hdl.selector.BlockSelector` s :func:`pe_area`
    measures: ``("a",)`` when a B selector is the same module as an A selector (the same
    RTLIL), ``("a", "b")`` when it is not (``arithmetic.paired``).

    >>> from qforge.sim.model.spec import load_preset
    >>> selector_sides(load_preset("tiny")), selector_sides(load_preset("paired"))
    (('a',), ('a', 'b'))
    """
    from amaranth.back import rtlil

    from qforge.hdl.selector import BlockSelector

    a, b = (rtlil.convert(BlockSelector(config, side), name="selector", emit_src=False)
            for side in ("a", "b"))
    return ("a",) if a == b else ("a", "b")


def pe_area(config: Config, *, root: Path | None = None, cache: bool = True,
            log=None, families=tuple(PE_FAMILIES)) -> PeArea:
    """Synthesize ``config``'s interior PE (:func:`interior_ports`) and one block
    selector of each side that differs (:func:`selector_sides`: an A selector, and a B
    selector with ``arithmetic.paired``) in every measure (seconds of Yosys each,
    cached) and count the selectors of its design (the B side's by their submodule names,
    ``b_selector*``). ``families``: the FPGA families synthesized besides the CMOS
    estimate (default: all of :data:`PE_FAMILIES`; none for the CMOS figures alone)."""
    from amaranth.back import rtlil

    from qforge.fpga.area import count_instances
    from qforge.hdl.selector import BlockSelector
    from qforge.hdl.top import Accelerator

    options = {"root": root, "cache": cache, "log": log}
    pe_top = f"pe_{config.name}"
    pe, ports = interior_pe(config)
    pe_cmos = cmos_estimate(pe, pe_top, ports=ports, **options)
    pe, ports = interior_pe(config)
    pe_text = rtlil.convert(pe, name=pe_top, ports=ports, emit_src=False)
    pe_cells = {family: synthesize(pe_text, family, top=pe_top,
                                   synth_options=PE_FAMILIES[family], **options).summary
                for family in families}
    measured = {}   # side -> (CMOS estimate, family -> cells) of one selector
    for side in selector_sides(config):
        top = f"block_selector_{config.name}" + ("" if side == "a" else "_b")
        measured[side] = (
            cmos_estimate(BlockSelector(config, side), top, **options),
            {family: synthesize(BlockSelector(config, side), family, top=top,
                                synth_options=PE_FAMILIES[family], **options).summary
             for family in families})
    accelerator = Accelerator(config)
    selectors = count_instances(accelerator, BlockSelector)
    b_selectors, (b_cmos, b_cells) = 0, (None, None)
    if "b" in measured:
        b_selectors = count_instances(accelerator, BlockSelector, "b_selector*")
        b_cmos, b_cells = measured["b"]
    a_cmos, a_cells = measured["a"]
    return PeArea(config, selectors, pe_cmos, a_cmos, pe_cells, a_cells, b_selectors,
                  b_cmos, b_cells)


def throughput_table(areas: list[PeArea], baseline: PeArea) -> list[dict]:
    """Per configuration and precision mode: MACs per cycle per PE, and MACs per cycle
    per transistor relative to the baseline's exact mode, for the PE alone
    (``per_area``) and with the selectors' share (``per_area_with_selectors``); and per
    FPGA family measured, MACs per cycle per DSP block of the PE (``macs_per_dsp``:
    family -> value, None when the PE has no DSP block there).

    >>> from qforge.sim.model.spec import load_preset
    >>> def fake(name, pe, selector):
    ...     estimate = lambda gates: CmosEstimate({}, 0, gates)
    ...     return PeArea(load_preset(name), 4, estimate(pe), estimate(selector), {}, {})
    >>> fxp8 = fake("fxp8", 1000, 1600)
    >>> rows = throughput_table([fake("tiny", 2000, 200)], fxp8)
    >>> [(row["mode"], str(row["macs_per_cycle"]), row["per_area"]) for row in rows][:2]
    [('exact', '1/4', 0.125), ('reduced', '1', 0.5)]
    >>> dsps = PeArea(load_preset("tiny"), 4, CmosEstimate({}, 0, 1), CmosEstimate({}, 0, 1),
    ...               {"ecp5": {"dsp": 1}, "ice40": {"dsp": 0}}, {})
    >>> [row["macs_per_dsp"] for row in throughput_table([dsps], fxp8)][:2]
    [{'ecp5': 0.25, 'ice40': None}, {'ecp5': 1.0, 'ice40': None}]
    """
    def exact_rate(area: PeArea) -> Fraction:
        return next(rate.macs_per_cycle for rate in mode_throughputs(area.config)
                    if rate.mode == "exact")

    base = exact_rate(baseline)
    base_pe = base / baseline.pe_cmos.transistors
    base_with = base / Fraction(baseline.transistors_per_pe)
    rows = []
    for area in areas:
        with_selectors = Fraction(area.transistors_per_pe)
        for rate in mode_throughputs(area.config):
            rows.append({"config": area.config.name, "mode": rate.mode,
                         "precision": rate.description, "bits": rate.bits,
                         "block_products": rate.block_products,
                         "macs_per_cycle": rate.macs_per_cycle,
                         "per_area": float(rate.macs_per_cycle / area.pe_cmos.transistors
                                           / base_pe),
                         "per_area_with_selectors": float(
                             rate.macs_per_cycle / with_selectors / base_with),
                         "macs_per_dsp": {
                             family: float(rate.macs_per_cycle / cells["dsp"])
                             if cells.get("dsp") else None
                             for family, cells in area.pe_cells.items()}})
    return rows
