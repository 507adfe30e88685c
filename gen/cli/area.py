"""``qforge area``: synthesize configurations with YoWASP Yosys for an FPGA family and
compare their cells side by side (tables or JSON); with ``--pe``, one PE and one edge
selector per configuration in three measures against the FxP8 baseline
(:mod:`qforge.fpga.pe_area`)."""

from __future__ import annotations

import argparse
import json
import time

from qforge.gen.cli.common import (FAMILY_NAMES, AppendDesign, OptionError, load_config,
                                   log_to_stderr, uses_build_folder, whole_number)
from qforge.sim.model.spec import preset_names


def register(commands) -> None:
    """Add ``qforge area`` to the subcommands ``commands``."""
    area = commands.add_parser(
        "area", help="synthesize configurations for an FPGA family and compare their cells",
        description="Synthesize each configuration's generated design (the top level that\n"
                    "`qforge generate` writes, straight from Amaranth's RTLIL) with YoWASP\n"
                    "Yosys (synth_ecp5 or synth_ice40: synthesis only, no place and route)\n"
                    "and print Yosys's own cell counts (`stat -json`) side by side: LUT4s,\n"
                    "carry cells, flip-flops, block RAMs (the operand banks and the\n"
                    "zero-skipping array's PE-local B banks), DSPs and the family's other\n"
                    "cells, with each configuration's ratio to the first. Runs are cached in\n"
                    "build/area/ by the design's hash. With no --preset/--spec: --preset\n"
                    "default --preset sparse (the default array without and with zero\n"
                    "skipping). An 8x8 array takes minutes per configuration.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge area --preset default --preset sparse --family ecp5\n"
               "  qforge area --preset tiny --with-skipping --family ice40 --json\n"
               "  qforge area --pe --preset tiny --preset default")
    area.add_argument("--preset", metavar="NAME", dest="designs", action=AppendDesign,
                      help=f"a built-in configuration ({', '.join(preset_names())}); "
                           "repeat to compare several")
    area.add_argument("--spec", metavar="FILE.toml", dest="designs", action=AppendDesign,
                      help="a TOML spec file; may be repeated and mixed with --preset (the "
                           "order given is the table's)")
    area.add_argument("--with-skipping", action="store_true",
                      help="also synthesize each configuration built as the zero-skipping "
                           "array (Config.with_zero_skipping), next to it")
    area.add_argument("--pe", action="store_true",
                      help="measure one interior PE and one edge block selector of each "
                           "configuration instead of the whole design (seconds each): "
                           "the generic CMOS transistor estimate (synth -flatten; abc -g "
                           "cmos2; stat -tech cmos, plus 24 transistors per flip-flop), "
                           "ECP5 and iCE40 (-dsp) cells; the PE, the selectors amortized "
                           "per PE and the array (PEs + selectors); then every precision "
                           "mode's MACs per cycle per transistor relative to the fxp8 "
                           "preset's exact MAC (fxp8 is always measured). With no "
                           "--preset/--spec: fxp8, tiny and default")
    area.add_argument("--composed", action="store_true",
                      help="the whole accelerator composed from modules synthesized once "
                           "each (qforge dse's area, qforge.fpga.design_area): CMOS "
                           "transistors (memories at 6 per bit, and without), ECP5 cells "
                           "with every multiplier in LUTs (-nodsp), per part; with "
                           "--check also the whole design in the same measures and the "
                           "composition's error")
    area.add_argument("--check", action="store_true",
                      help="with --composed: also synthesize the whole design (minutes for "
                           "an 8x8 array) and print composed / whole per measure")
    area.add_argument("--family", choices=sorted(FAMILY_NAMES), default=None,
                      help="FPGA family: ecp5 (synth_ecp5: LUT4, CCU2C carries, DP16KD "
                           "block RAMs, MULT18X18D) or ice40 (synth_ice40: SB_LUT4, "
                           "SB_CARRY, SB_RAM40_4K; multipliers in LUTs) (default: ecp5)")
    area.add_argument("--selectors", action="store_true",
                      help="also synthesize one block selector of each configuration and "
                           "report the selectors' share of the LUTs (the zero-skipping "
                           "array has one per PE for its PE-local B banks)")
    area.add_argument("--hierarchy", action="store_true",
                      help="keep the design's hierarchy (synth -noflatten) and also print "
                           "the cells of each module group (PEs, selectors, loader, "
                           "scheduler, ...); totals run higher than flattened synthesis, "
                           "which optimizes across modules")
    area.add_argument("--keep", metavar="PATTERN", action="append", type=_pattern,
                      help="keep the modules matching PATTERN (below the top, e.g. "
                           "'b_selector_*' or 'array.pe_*') apart and print their cells; the "
                           "rest is flattened as usual, so the total minus the usual total "
                           "is what optimizing across their boundaries saves (repeatable)")
    area.add_argument("--json", action="store_true", help="print one JSON object")
    area.add_argument("--jobs", type=whole_number(1, 64), default=1, metavar="N",
                      help="configurations synthesized at the same time, 1 .. 64 (default: "
                           "1; each Yosys run uses one core and about 1 GB of memory for "
                           "an 8x8 array)")
    area.add_argument("--no-cache", action="store_true",
                      help="synthesize again even if build/area/ holds a run of the same "
                           "design")
    uses_build_folder(area)
    area.set_defaults(handler=handle)


def _pattern(text: str) -> str:
    """A --keep pattern: not blank (it would keep nothing apart, after minutes of
    synthesis)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: an empty pattern matches no module")
    return text


def handle(arguments) -> int:
    from qforge.fpga.area import FAMILIES

    if arguments.check and not arguments.composed:
        raise OptionError("--check: only with --composed")
    if arguments.composed:
        return _handle_composed(arguments)
    if arguments.pe:
        return _handle_pe(arguments)
    configs = _configs(arguments)
    family = FAMILIES[arguments.family or "ecp5"]
    started = time.monotonic()
    reports, selectors = _measure(arguments, configs, family)
    wall = time.monotonic() - started
    if arguments.json:
        print(json.dumps(_json_result(family, configs, reports, selectors, wall), indent=2))
        return 0
    names = [config.name for config in configs]
    _print_cells(arguments, family, names, reports)
    if selectors is not None:
        _print_selectors(names, selectors)
    if arguments.hierarchy or arguments.keep:
        _print_modules(names, reports)
    print(f"\nwall time: {wall:.0f} s; folders: "
          + ", ".join(str(report.directory) for report in reports))
    return 0


def _configs(arguments, defaults=(("preset", "default"), ("preset", "sparse"))) -> list:
    """The configurations to synthesize, in the order given (each followed by its
    zero-skipping version with --with-skipping); names must differ."""
    configs = []
    for kind, value in arguments.designs or defaults:
        config = load_config(kind, value)
        configs.append(config)
        if arguments.with_skipping and not config.zero_skipping:
            configs.append(config.with_zero_skipping())
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise OptionError(f"--preset/--spec: configuration {duplicates[0]!r} given twice")
    return configs


def _measure(arguments, configs, family):
    """Synthesize every configuration (``--jobs`` at a time): ``(reports, selectors)``,
    ``selectors`` None without --selectors."""
    from qforge.fpga.area import config_area, count_instances, selector_area

    options = {"cache": not arguments.no_cache, "log": log_to_stderr}

    def measure(config):
        return config_area(config, family, flatten=not arguments.hierarchy,
                           keep=tuple(arguments.keep or ()), **options)

    if arguments.jobs > 1 and len(configs) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(arguments.jobs) as pool:
            reports = list(pool.map(measure, configs))
    else:
        reports = [measure(config) for config in configs]
    selectors = None
    if arguments.selectors:
        from qforge.hdl.selector import BlockSelector
        from qforge.hdl.top import Accelerator
        selectors = []
        for config, report in zip(configs, reports):
            one = selector_area(config, family, **options)
            count = count_instances(Accelerator(config), BlockSelector)
            local = config.rows * config.cols if config.zero_skipping else 0
            # With arithmetic.paired the B side's selectors differ (partner blocks).
            b_one, b_count = one, 0
            if config.paired:
                b_one = selector_area(config, family, side="b", **options)
                b_count = count_instances(Accelerator(config), BlockSelector,
                                          named="b_selector*")

            def total(key):
                return (count - b_count) * one.summary[key] + b_count * b_one.summary[key]

            selectors.append({"count": count, "pe_local_b": local, "one": one.summary,
                              "b_count": b_count,
                              "b_one": b_one.summary if b_count else None,
                              "all_lut4": total("lut4"), "all_ff": total("ff"),
                              "lut4_share": total("lut4") / max(1, report.summary["lut4"]),
                              "pe_local_b_lut4_share": local * one.summary["lut4"]
                              / max(1, report.summary["lut4"])})
    return reports, selectors


def _json_result(family, configs, reports, selectors, wall: float) -> dict:
    """The --json object: every design's cells, ratios to the first, selectors."""
    result = {"family": family.name, "synthesis": family.synth,
              "yosys": reports[0].yosys, "seconds": wall,
              "designs": [{"config": config.name, "zero_skipping": config.zero_skipping,
                           "array": f"{config.rows}x{config.cols}"} | report.to_dict()
                          for config, report in zip(configs, reports)]}
    if len(reports) > 1:
        base = reports[0].summary
        result["ratios_to_first"] = [
            {"config": config.name} | {key: (report.summary[key] / base[key]
                                             if base[key] else None) for key in base}
            for config, report in zip(configs[1:], reports[1:])]
    if selectors is not None:
        for design, selector in zip(result["designs"], selectors):
            design["block_selectors"] = selector
    return result


def _print_cells(arguments, family, names, reports) -> None:
    """The cell table, one column per design, then ratios to the first."""
    kept = ("; hierarchy kept: no optimization across modules" if arguments.hierarchy
            else f"; kept apart: {', '.join(arguments.keep)}" if arguments.keep else "")
    print(f"qforge area: {reports[0].yosys} `{family.synth}"
          f"{' -noflatten' if arguments.hierarchy else ''}` (YoWASP), cells after "
          f"synthesis of the whole design (no place and route){kept}\n")
    header = "| cells | " + " | ".join(names)
    rule = "|---|" + "---:|" * len(names)
    if len(names) > 1:
        header += " | " + " | ".join(f"{name}/{names[0]}" for name in names[1:])
        rule += "---:|" * (len(names) - 1)
    print(header + " |")
    print(rule)
    for key in reports[0].summary:
        values = [report.summary[key] for report in reports]
        if key == "other" and not any(values):
            continue
        label = family.label(key)
        row = f"| {label} | " + " | ".join(str(value) for value in values)
        for value in values[1:]:
            row += f" | {value / values[0]:.2f}" if values[0] else " | -"
        print(row + " |")
    for label, seconds in (("synthesis wall time", lambda report: report.seconds),
                           ("synthesis CPU time", lambda report: report.cpu_seconds)):
        times = [("cached" if report.cached else f"{seconds(report):.0f} s")
                 for report in reports]
        print(f"| {label} | " + " | ".join(times + [""] * (len(names) - 1)) + " |")
    for name, report in zip(names, reports):
        if report.workaround:
            print(f"\n{name}: the plain script failed (Yosys issue #4349, ABC9); counts are "
                  f"from the retry with `{report.workaround}` first (a few percent more LUTs)")


def _print_selectors(names, selectors) -> None:
    """One block selector's cells, times the instances, per design (--selectors)."""
    print("\nBlock selectors: one synthesized alone, times the instances. An upper "
          "bound for the flattened design, where selectors fed the same precision and "
          "lane selections may share logic:\n")
    print("| design | selectors | of which PE-local B | LUT4 each | FF each | LUT4 all "
          "| share of design LUT4 | PE-local B share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, selector in zip(names, selectors):
        b_one = selector.get("b_one")
        each = (f"{selector['one']['lut4']} (B {b_one['lut4']})", f"{selector['one']['ff']} "
                f"(B {b_one['ff']})") if b_one else (selector['one']['lut4'],
                                                     selector['one']['ff'])
        print(f"| {name} | {selector['count']} | {selector['pe_local_b']} "
              f"| {each[0]} | {each[1]} "
              f"| {selector['all_lut4']} | {selector['lut4_share']:.1%} "
              f"| {selector['pe_local_b_lut4_share']:.1%} |")


def _print_modules(names, reports) -> None:
    """Per design, the cells of each module group (--hierarchy or --keep)."""
    for name, report in zip(names, reports):
        if report.modules is None:
            print(f"\n{name}: no module matched --keep")
            continue
        groups = report.to_dict()["module_groups"]
        total = max(1, report.summary["lut4"])
        print(f"\n{name}: cells by module (own cells; `*` = any index):\n")
        print("| module | instances | LUT4 | carry | FF | block RAM | DSP | share of LUT4 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for group, cells in sorted(groups.items(), key=lambda item: -item[1]["lut4"]):
            print(f"| {group} | {cells['instances']} | {cells['lut4']} | {cells['carry']} "
                  f"| {cells['ff']} | {cells['bram']} | {cells['dsp']} "
                  f"| {cells['lut4'] / total:.1%} |")


# ---- --pe: one PE against the FxP8 baseline ------------------------------------------

#: Options that synthesize the whole design, which --pe does not.
_WHOLE_DESIGN_OPTIONS = (("family", "--family", "--pe measures ECP5 and iCE40 both"),
                         ("selectors", "--selectors", "--pe always measures a selector"),
                         ("hierarchy", "--hierarchy", "--pe synthesizes one PE"),
                         ("keep", "--keep", "--pe synthesizes one PE"))


def _handle_composed(arguments) -> int:
    from qforge.fpga.design_area import composed_area, composition_error, whole_design_area

    for attribute, option, reason in (*_WHOLE_DESIGN_OPTIONS, ("pe", "--pe", "one PE"),
                                      ("with_skipping", "--with-skipping", "one design")):
        if getattr(arguments, attribute):
            raise OptionError(f"{option}: not with --composed")
    configs = _configs(arguments, (("preset", "default"),))
    started = time.monotonic()
    options = {"cache": not arguments.no_cache, "log": log_to_stderr}
    results = []
    for config in configs:
        composed = composed_area(config, **options)
        entry = {"config": config.name, "composed": composed.to_dict()}
        if arguments.check:
            whole = whole_design_area(config, **options)
            entry["whole"] = whole.to_dict()
            entry["error"] = composition_error(composed, whole)
        results.append(entry)
    wall = time.monotonic() - started
    if arguments.json:
        print(json.dumps({"configs": results, "wall_seconds": wall}, indent=2))
        return 0
    for entry in results:
        composed = entry["composed"]
        print(f"{entry['config']}: {composed['transistors']:,} transistors "
              f"({composed['logic_transistors']:,} without the {composed['memory_bits']:,} "
              f"memory bits), ECP5 -nodsp " + ", ".join(
                  f"{key} {value:,}" for key, value in composed["cells"]["ecp5"].items()
                  if key != "mux"))
        print(f"  {'part':<20s} {'count':>6s} {'transistors':>12s} {'LUT4':>7s} "
              f"{'FF':>7s} {'CCU2C':>7s}")
        for part in composed["parts"]:
            cells = part["cells"]["ecp5"]
            print(f"  {part['name']:<20s} {part['count']:>6d} {part['transistors']:>12,d} "
                  f"{cells.get('lut4', 0):>7,d} {cells.get('ff', 0):>7,d} "
                  f"{cells.get('carry', 0):>7,d}")
        for measure, error in entry.get("error", {}).items():
            relative = "" if error["error"] is None else f" {100 * error['error']:+.2f}%"
            print(f"  composed / whole {measure}: {error['composed']:,} / "
                  f"{error['whole']:,}{relative}")
    print(f"\nwall time: {wall:.0f} s")
    return 0


def _handle_pe(arguments) -> int:
    from qforge.fpga.pe_area import BASELINE, pe_area, throughput_table
    from qforge.sim.model.spec import load_preset

    for attribute, option, reason in _WHOLE_DESIGN_OPTIONS:
        if getattr(arguments, attribute):
            raise OptionError(f"{option}: not with --pe ({reason})")
    configs = _configs(arguments, (("preset", BASELINE), ("preset", "tiny"),
                                   ("preset", "default")))
    if BASELINE not in [config.name for config in configs]:
        configs.insert(0, load_preset(BASELINE))
    started = time.monotonic()
    options = {"cache": not arguments.no_cache, "log": log_to_stderr}
    if arguments.jobs > 1 and len(configs) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(arguments.jobs) as pool:
            areas = list(pool.map(lambda config: pe_area(config, **options), configs))
    else:
        areas = [pe_area(config, **options) for config in configs]
    baseline = next(area for area in areas if area.config.name == BASELINE)
    rows = throughput_table(areas, baseline)
    wall = time.monotonic() - started
    if arguments.json:
        print(json.dumps(_pe_json(areas, rows, wall), indent=2))
        return 0
    _print_pe(areas, baseline)
    _print_throughput(rows)
    print(f"\nwall time: {wall:.0f} s")
    return 0


def _pe_json(areas, rows, wall: float) -> dict:
    """The --pe --json object: each configuration's measures and the mode table."""
    from qforge.fpga.pe_area import BASELINE, FLIP_FLOP_TRANSISTORS, PE_FAMILIES

    return {"baseline": BASELINE, "yosys": areas[0].pe_cmos.yosys,
            "flip_flop_transistors": FLIP_FLOP_TRANSISTORS,
            "families": {family: f"synth_{family}{' ' + options if options else ''}"
                         for family, options in PE_FAMILIES.items()},
            "seconds": wall, "configs": [area.to_dict() for area in areas],
            "throughput": [row | {"macs_per_cycle": str(row["macs_per_cycle"])}
                           for row in rows]}


def _cells(summary: dict, keys=("lut4", "carry", "ff", "dsp")) -> str:
    """``"90 / 23 / 99 / 1"``: LUT4, carry, flip-flops, DSPs (fractions to one place)."""
    return " / ".join(f"{summary[key]:.1f}".removesuffix(".0") for key in keys)


def _print_pe(areas, baseline) -> None:
    """One column per configuration: the CMOS estimate, ECP5 and iCE40 cells."""
    from qforge.fpga.pe_area import FLIP_FLOP_TRANSISTORS

    names = [area.config.name for area in areas]
    print(f"qforge area --pe: {areas[0].pe_cmos.yosys} (YoWASP); one interior PE and one "
          f"edge block selector synthesized alone. CMOS: `synth -flatten; abc -g cmos2; "
          f"stat -tech cmos` + {FLIP_FLOP_TRANSISTORS} transistors per flip-flop. "
          f"Selectors per PE = selectors x one / (rows x cols); array = PEs + "
          f"selectors (no buffers, control or output stage)\n")
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))

    def row(label, values):
        print(f"| {label} | " + " | ".join(str(value) for value in values) + " |")

    row("array, K, P", [f"{area.config.rows}x{area.config.cols}, {area.config.block_width}, "
                        f"{area.config.block_multipliers}" for area in areas])
    row("accumulator bits", [area.config.accumulator_width for area in areas])
    row("CMOS PE (transistors)", [area.pe_cmos.transistors for area in areas])
    row("of which flip-flops", [f"{area.pe_cmos.flip_flops} x {FLIP_FLOP_TRANSISTORS}"
                                for area in areas])
    row("CMOS PE / fxp8 PE", [f"{area.pe_cmos.transistors / baseline.pe_cmos.transistors:.2f}"
                              for area in areas])
    row("CMOS selector (one; in the design)", [
        f"{area.selector_cmos.transistors} ({area.selectors - area.b_selectors})"
        + (f", B {area.b_selector_cmos.transistors} ({area.b_selectors})"
           if area.b_selectors else "") for area in areas])
    row("CMOS selectors per PE", [
        f"{area.transistors_per_pe - area.pe_cmos.transistors:.0f}" for area in areas])
    row("CMOS PE + selectors", [f"{area.transistors_per_pe:.0f}" for area in areas])
    row("CMOS array", [area.array(area.pe_cmos.transistors, area.selector_cmos.transistors,
                                  area.b_selector_cmos and area.b_selector_cmos.transistors)
                       for area in areas])
    for family, title in (("ecp5", "ECP5 LUT4 / CCU2C / FF / MULT18X18D"),
                          ("ice40", "iCE40 SB_LUT4 / SB_CARRY / FF / SB_MAC16")):
        row(f"{title}: PE", [_cells(area.pe_cells[family]) for area in areas])
        b_cells = lambda area, key: (None if area.b_selector_cells is None
                                     else area.b_selector_cells[family][key])
        row(f"{family}: selectors per PE", [_cells({
            key: area.selector_total(value, b_cells(area, key)) / area.pes
            for key, value in area.selector_cells[family].items()}) for area in areas])
        row(f"{family}: array", [_cells({
            key: area.array(area.pe_cells[family][key], area.selector_cells[family][key],
                            b_cells(area, key))
            for key in area.pe_cells[family]}) for area in areas])


def _print_throughput(rows) -> None:
    """Every mode's MACs per cycle per PE and per transistor relative to fxp8."""
    from qforge.fpga.pe_area import BASELINE

    print(f"\nThroughput per area against {BASELINE} (its exact MACs per cycle per PE per "
          f"transistor = 1.00); MACs per cycle per PE from the cycle model, in a tile "
          f"of max_reduction_depth:\n")
    families = list(rows[0]["macs_per_dsp"]) if rows else []
    dsp_titles = {"ecp5": "per MULT18X18D", "ice40": "per SB_MAC16"}
    print("| config | mode | bits | q | MACs/cycle/PE | per area: PE | PE + selectors | "
          + "".join(f"MACs/cycle {dsp_titles[family]} | " for family in families).rstrip())
    print("|---|---|---|---:|---:|---:|---:|" + "---:|" * len(families))
    for row in rows:
        rate = row["macs_per_cycle"]
        rate = f"{float(rate):.2f}" if rate.denominator > 2 else str(rate)
        dsp = "".join(" - |" if row["macs_per_dsp"][family] is None
                      else f" {row['macs_per_dsp'][family]:.2f} |" for family in families)
        print(f"| {row['config']} | {row['mode']} | {row['bits']} | {row['block_products']} "
              f"| {rate} | {row['per_area']:.2f} | {row['per_area_with_selectors']:.2f} |"
              + dsp)
