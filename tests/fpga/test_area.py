"""Area measurement (:mod:`qforge.fpga.area`): the ``stat -json`` parser, the cell
categories, a real synthesis of a small component and the ``qforge area`` command."""

import json
from pathlib import Path

import pytest

from qforge.fpga import area
from qforge.fpga.area import (FAMILIES, AreaReport, count_instances, parse_stat,
                              selector_area, summarize, synthesize)
from qforge.gen.cli import main
from qforge.gen.cli.common import FAMILY_NAMES
from qforge.sim.model.spec import load_preset
from qforge.hdl.selector import BlockSelector
from qforge.hdl.top import Accelerator

#: What `stat -json` of Yosys 0.70 writes for a flattened design (trimmed).
STAT = """{
   "creator": "Yosys 0.70 (git sha1 28ba3cb92, Release)",
   "invocation": "stat -json ",
   "modules": {
      "\\\\qforge_top": {
         "num_cells":         20,
         "num_cells_by_type": {"$scopeinfo": 2, "CCU2C": 3, "DP16KD": 4, "LUT4": 7,
                               "MULT18X18D": 1, "PFUMX": 1, "TRELLIS_FF": 2}
      }
   },
      "design": {
         "num_cells":         20,
         "num_cells_by_type": {"$scopeinfo": 2, "CCU2C": 3, "DP16KD": 4, "LUT4": 7,
                               "MULT18X18D": 1, "PFUMX": 1, "TRELLIS_FF": 2}
      }
}
"""


def test_parse_stat_reads_design_totals():
    cells, version = parse_stat(STAT)
    assert version == "Yosys 0.70"
    assert cells == {"CCU2C": 3, "DP16KD": 4, "LUT4": 7, "MULT18X18D": 1, "PFUMX": 1,
                     "TRELLIS_FF": 2}
    assert summarize(cells, "ecp5") == {"lut4": 7, "carry": 3, "ff": 2, "bram": 4, "dsp": 1,
                                        "lutram": 0, "mux": 1, "other": 0}


def test_parse_stat_without_design_totals_adds_up_modules():
    text = json.dumps({"creator": "Yosys 0.70", "modules": {
        "a": {"num_cells_by_type": {"SB_LUT4": 2, "SB_DFF": 1}},
        "b": {"num_cells_by_type": {"SB_LUT4": 3, "SB_DFFE": 1, "SB_RAM40_4K": 1}}}})
    cells, _ = parse_stat(text)
    assert summarize(cells, "ice40") == {"lut4": 5, "carry": 0, "ff": 2, "bram": 1,
                                         "dsp": 0, "spram": 0, "other": 0}
    with pytest.raises(ValueError, match="JSON"):
        parse_stat("ERROR: no design")


def test_unknown_cells_are_counted_as_other():
    assert summarize({"$mul": 2, "LUT4": 1}, "ecp5")["other"] == 2
    with pytest.raises(ValueError, match="allowed: ecp5, ice40"):
        summarize({}, "xilinx")


def test_cli_families_are_the_modules():
    assert tuple(FAMILY_NAMES) == tuple(FAMILIES)


def test_block_selectors_are_counted_in_the_design():
    # The systolic array: one per row and column; the zero-skipping array: one A
    # selector plus one per PE for the PE-local B banks.
    assert count_instances(Accelerator(load_preset("tiny")), BlockSelector) == 2 + 2
    skipping = load_preset("tiny").with_zero_skipping()
    assert count_instances(Accelerator(skipping), BlockSelector) == 1 + 2 * 2
    # By submodule name: the A side's (a_selector<r>, or the one a_selector) and the B
    # side's (b_selector<c>, or b_selector_<r>_<c> in the PEs' banks).
    for config, a, b in ((load_preset("tiny"), 2, 2), (skipping, 1, 2 * 2)):
        design = Accelerator(config)
        assert count_instances(design, BlockSelector, "a_selector*") == a
        assert count_instances(design, BlockSelector, "b_selector*") == b
        assert count_instances(design, BlockSelector, "c_selector*") == 0


@pytest.mark.synth
@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_synthesized_selector_has_cells(tmp_path, family):
    # One block selector of the tiny configuration: a few seconds of Yosys.
    report = selector_area(load_preset("tiny"), family, root=tmp_path)
    assert not report.cached and report.seconds > 0 and report.yosys.startswith("Yosys")
    summary = report.summary
    assert summary["lut4"] > 10 and summary["ff"] > 0      # logic, registered lanes
    assert summary["bram"] == 0 and summary["other"] == 0   # fully mapped, no memory
    assert summary == summarize(report.cells, family)
    assert json.loads((report.directory / "stat.json").read_text())["design"]
    # Yosys 0.70's synth_ice40 hits Yosys issue #4349 on this selector: the plain
    # script fails and the retry after `proc; splitnets` succeeds.
    assert report.workaround == (area.WORKAROUND if family == "ice40" else None)
    again = selector_area(load_preset("tiny"), family, root=tmp_path)
    assert again.cached and again.cells == report.cells
    assert again.workaround == report.workaround


@pytest.mark.synth
def test_synthesis_failure_is_a_clear_error(tmp_path):
    from qforge.gen.tools import ToolError
    with pytest.raises(ToolError, match="synth_ecp5 failed on top .*also with `proc; "
                                        "splitnets` first"):
        synthesize("module \\other\nend\n", "ecp5", root=tmp_path)


def _fake_config_area(config, family, **options):
    lut4 = 100 * config.rows * (2 if config.zero_skipping else 1)
    summary = summarize({"LUT4": lut4, "TRELLIS_FF": 50, "DP16KD": 4}, family)
    return AreaReport(f"qforge_top_{config.name}", family.name, {}, summary, 1.0, 1.0,
                      False, Path("build/area/x"), "Yosys 0.70")


def test_area_command_table(capsys, monkeypatch):
    monkeypatch.setattr(area, "config_area", _fake_config_area)
    code = main(["area", "--preset", "tiny", "--with-skipping"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| cells | tiny | tiny_skipping | tiny_skipping/tiny |" in out
    assert "| LUT4 | 200 | 400 | 2.00 |" in out
    assert "| block RAM (DP16KD, 18 Kbit) | 4 | 4 | 1.00 |" in out
    assert "| synthesis CPU time | 1 s | 1 s |  |" in out


def test_area_command_keep_prints_module_groups(capsys, monkeypatch):
    def fake(config, family, *, keep=(), **options):
        assert keep == ("b_selector_*",)
        top = f"qforge_top_{config.name}"
        modules = {top: {"LUT4": 500}} | {f"{top}.b_selector_0_{c}": {"LUT4": 50}
                                          for c in range(2)}
        summary = summarize({"LUT4": 600}, family)
        return AreaReport(top, family.name, {}, summary, 1.0, 1.0, False, Path("x"),
                          "Yosys 0.70", modules)
    monkeypatch.setattr(area, "config_area", fake)
    code = main(["area", "--preset", "sparse", "--keep", "b_selector_*"])
    out = capsys.readouterr().out
    assert code == 0 and "kept apart: b_selector_*" in out
    assert "| b_selector_*_* | 2 | 100 | 0 | 0 | 0 | 0 | 16.7% |" in out
    assert "| (top) | 1 | 500 |" in out


def test_area_command_json_defaults_to_default_and_sparse(capsys, monkeypatch):
    monkeypatch.setattr(area, "config_area", _fake_config_area)
    code = main(["area", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["family"] == "ecp5"
    assert [design["config"] for design in result["designs"]] == ["default", "sparse"]
    assert result["ratios_to_first"][0]["lut4"] == 2.0


@pytest.mark.parametrize("argv, message", [
    (["area", "--preset", "tiny", "--preset", "tiny"], "--preset/--spec: configuration "
                                                      "'tiny' given twice"),
    (["area", "--spec", "missing.toml"], "missing.toml"),
    (["area", "--preset", "huge"], "unknown preset"),
])
def test_area_command_errors_are_one_line(capsys, monkeypatch, argv, message):
    monkeypatch.setattr(area, "config_area", _fake_config_area)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qforge: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_area_help_explains(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["area", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for word in ("--family", "ecp5", "ice40", "--preset", "--with-skipping", "stat -json",
                 "--keep", "--hierarchy", "--selectors"):
        assert word in out


def test_docstring_examples():
    # tests/test_doctests.py covers qforge.gen, .hdl and .sim; qforge.fpga's are here.
    import doctest
    result = doctest.testmod(area, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


def test_hierarchical_stat_counts_cells_not_instances():
    # With -noflatten, Yosys's design totals also list each submodule instance as a
    # cell (type = the module's name, without the backslash the module keys have).
    text = json.dumps({"creator": "Yosys 0.70", "modules": {
        "\\top": {"num_cells_by_type": {"LUT4": 1, "top.pe_0": 1, "top.pe_1": 1}},
        "\\top.pe_0": {"num_cells_by_type": {"LUT4": 2, "TRELLIS_FF": 1}},
        "\\top.pe_1": {"num_cells_by_type": {"LUT4": 2, "TRELLIS_FF": 1}}},
        "design": {"num_cells_by_type": {"LUT4": 5, "TRELLIS_FF": 2, "top.pe_0": 1,
                                         "top.pe_1": 1}}})
    cells, _ = parse_stat(text)
    assert cells == {"LUT4": 5, "TRELLIS_FF": 2}
    modules = area.parse_stat_modules(text)
    assert modules == {"top": {"LUT4": 1}, "top.pe_0": {"LUT4": 2, "TRELLIS_FF": 1},
                       "top.pe_1": {"LUT4": 2, "TRELLIS_FF": 1}}
    groups = area.module_groups(modules, "top", "ecp5")
    assert groups["pe_*"]["instances"] == 2 and groups["pe_*"]["lut4"] == 4
    assert groups["(top)"]["ff"] == 0


@pytest.mark.synth
def test_keep_reports_the_kept_modules(tmp_path):
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Adder(wiring.Component):
        a: In(8)
        b: In(8)
        y: Out(9)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(self.a + self.b)
            return m

    class Pair(wiring.Component):
        a: In(8)
        b: In(8)
        y: Out(9)
        z: Out(9)

        def elaborate(self, platform):
            m = Module()
            m.submodules.add0 = first = Adder()
            m.submodules.add1 = second = Adder()
            m.d.comb += [first.a.eq(self.a), first.b.eq(self.b),
                         second.a.eq(self.a), second.b.eq(~self.b)]
            m.d.sync += [self.y.eq(first.y), self.z.eq(second.y)]
            return m

    flat = synthesize(Pair(), "ecp5", top="pair", root=tmp_path)
    assert flat.modules is None and flat.summary["ff"] == 18
    kept = synthesize(Pair(), "ecp5", top="pair", keep=("add*",), root=tmp_path)
    groups = kept.to_dict()["module_groups"]
    assert set(groups) == {"(top)", "add*"} and groups["add*"]["instances"] == 2
    assert groups["add*"]["carry"] > 0 and groups["(top)"]["ff"] == 18
    assert sum(group["lut4"] for group in groups.values()) == kept.summary["lut4"]
