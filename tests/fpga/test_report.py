"""Build reports (:mod:`qforge.fpga.report`): the parsers on real nextpnr / Yosys output
saved in ``tests/fpga/data/`` (numbers read by hand), the renderings, a failed build's
report and the clock a missed timing suggests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qforge.fpga import flow
from qforge.fpga.area import parse_stat
from qforge.fpga.boards import BOARDS
from qforge.fpga.dsp import dsp_decision
from qforge.fpga.pll import ice40_pll
from qforge.fpga.report import (BuildReport, ClockTiming, clocks_from_report, format_report,
                                markdown_report, parse_nextpnr_log, parse_nextpnr_report,
                                resources_from_reports)
from qforge.sim.model.spec import load_preset

DATA = Path(__file__).parent / "data"


# -- report parsing on real tool output (numbers read by hand from the files) ---------

def test_parse_ice40_report():
    utilization, fmax = parse_nextpnr_report(
        (DATA / "nextpnr-report-icebreaker.json").read_text())
    assert utilization["ICESTORM_LC"] == (87, 5280)
    assert utilization["ICESTORM_PLL"] == (1, 1)
    assert utilization["SB_IO"] == (5, 39)
    assert utilization["ICESTORM_DSP"] == (0, 8)
    assert utilization["ICESTORM_RAM"] == (0, 30)
    assert fmax == {"clk": (67.41724395751953, 24.000383377075195)}
    cells, version = parse_stat((DATA / "stat-icebreaker.json").read_text())
    assert version == "Yosys 0.70"
    rows = {row.name: row for row in resources_from_reports("ice40", utilization, cells)}
    assert (rows["logic cells"].used, rows["logic cells"].available) == (87, 5280)
    assert (rows["LUT4"].used, rows["LUT4"].available, rows["LUT4"].source) == \
        (69, 5280, "yosys")
    assert rows["flip-flops"].used == 2 + 33 + 2 + 16  # SB_DFF, SB_DFFESR, SB_DFFR, SB_DFFSR
    assert rows["carry"].used == 35
    assert (rows["DSP"].cell, rows["DSP"].used, rows["DSP"].available) == \
        ("ICESTORM_DSP", 0, 8)
    assert (rows["block RAM"].used, rows["block RAM"].available) == (0, 30)
    assert (rows["I/O"].used, rows["I/O"].available) == (5, 39)
    [clock] = clocks_from_report(fmax)
    assert clock.net == "clk" and clock.met


def test_parse_ecp5_report():
    utilization, fmax = parse_nextpnr_report(
        (DATA / "nextpnr-report-ulx3s-85f.json").read_text())
    assert utilization["TRELLIS_COMB"] == (136, 83640)
    assert utilization["TRELLIS_FF"] == (69, 83640)
    assert utilization["MULT18X18D"] == (0, 156)
    assert utilization["DP16KD"] == (0, 208)
    assert utilization["EHXPLLL"] == (1, 4)
    assert fmax == {"$glbnet$clk": (218.29295349121094, 50.0)}
    cells, _ = parse_stat((DATA / "stat-ulx3s-85f.json").read_text())
    rows = {row.name: row for row in resources_from_reports("ecp5", utilization, cells)}
    assert (rows["LUT4"].used, rows["LUT4"].available, rows["LUT4"].cell) == \
        (136, 83640, "TRELLIS_COMB")
    assert (rows["flip-flops"].used, rows["flip-flops"].available) == (69, 83640)
    assert (rows["carry"].used, rows["carry"].available) == (29, 41820)   # CCU2C
    assert (rows["I/O"].used, rows["I/O"].available) == (11, 365)
    assert clocks_from_report(fmax) == [ClockTiming("clk", 218.29295349121094, 50.0)]


def test_parse_errors_and_missed_timing():
    with pytest.raises(ValueError, match="not JSON"):
        parse_nextpnr_report("Info: nothing")
    with pytest.raises(ValueError, match="no `utilization`"):
        parse_nextpnr_report('{"fmax": {}}')
    utilization, fmax = parse_nextpnr_report('{"utilization": {}}')
    assert (utilization, fmax) == ({}, {})
    missed = ClockTiming("clk", 21.4, 24.0)
    assert not missed.met and missed.to_dict()["slack_ns"] < 0
    with pytest.raises(ValueError, match="family = 'gowin'"):
        resources_from_reports("gowin", {}, {})


def test_parse_nextpnr_log_of_a_design_that_does_not_fit():
    # The real log of the tiny preset's LinkedAccelerator placed for the iCEBreaker.
    log = DATA / "nextpnr-overflow-icebreaker.tim"
    utilization = parse_nextpnr_log(log.read_text())
    assert utilization["ICESTORM_LC"] == (5860, 5280)
    assert utilization["ICESTORM_RAM"] == (10, 30)
    assert utilization["ICESTORM_DSP"] == (2, 8)
    assert utilization["SB_GB"] == (6, 8)
    assert len(utilization) == 15
    reason = flow._does_not_fit(BOARDS["icebreaker"], log)
    assert reason.startswith("the design does not fit the iCE40UP5K: ICESTORM_LC 5860 "
                             "of 5280 (111%)")
    assert "--board ulx3s-85f" in reason
    assert flow._does_not_fit(BOARDS["icebreaker"], DATA / "missing.tim") is None


def _report(tmp_path, clocks) -> BuildReport:
    utilization, _ = parse_nextpnr_report(
        (DATA / "nextpnr-report-icebreaker.json").read_text())
    cells, _ = parse_stat((DATA / "stat-icebreaker.json").read_text())
    tiny = load_preset("tiny")
    return BuildReport(
        board="icebreaker", device="iCE40UP5K", family="ice40", config="tiny", rows=2,
        cols=2, block_multipliers=2, requested_clock_hz=24e6, clock_hz=24e6,
        pll=ice40_pll(12e6, 24e6).to_dict(), baud_rate=115200,
        actual_baud_rate=24e6 / 208,
        resources=resources_from_reports("ice40", utilization, cells), clocks=clocks,
        dsp=dsp_decision(tiny, "icebreaker"), synth_cells=cells, tools={"yosys": "0.70"},
        seconds={"synthesis": 1.0}, build_dir=tmp_path, bitstream=tmp_path / "x.bin")


def test_report_formats(tmp_path):
    report = _report(tmp_path, [ClockTiming("clk", 21.4, 24.0)])
    assert not report.timing_met and report.pe_count == 4
    text = format_report(report)
    assert "MISSED" in text and "ICESTORM_LC" in text and "nextpnr placed 0 of 8" in text
    # What went to DSPs is read from Yosys's stat (no SB_MAC16 in this netlist).
    assert "Result: Yosys made 0 SB_MAC16 (stat): every multiplier is built from LUTs" in text
    markdown = markdown_report(report)
    assert "| logic cells | ICESTORM_LC | 87 | 5280 | 1.6% | nextpnr |" in markdown
    assert "| clk | 21.40 | 24.00 | MISSED |" in markdown
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["timing_met"] is False and as_json["pe_count"] == 4
    assert as_json["dsp"]["option"] == "-run map_ram:" and as_json["dsp"]["dsp_cells"] == 0
    assert as_json["status"] == "built" and as_json["rows"] == 2
    assert not _report(tmp_path, []).timing_met      # no clock reported: not "met"


def test_report_of_a_failed_build(tmp_path):
    # The packing counts of the real log of a design too big for the UP5K.
    utilization = parse_nextpnr_log((DATA / "nextpnr-overflow-icebreaker.tim").read_text())
    cells, _ = parse_stat((DATA / "stat-icebreaker.json").read_text())
    report = _report(tmp_path, [])
    report.resources = resources_from_reports("ice40", utilization, cells)
    report.status, report.failed_step = "failed", "place & route"
    report.error = "the design does not fit the iCE40UP5K: ICESTORM_LC 5860 of 5280 (111%)"
    report.tool_errors = ["ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5859 "
                          "ICESTORM_LCs"]
    report.bitstream = None
    markdown = markdown_report(report)
    assert "- **build failed** in place & route: the design does not fit" in markdown
    assert "ERROR: Failed to expand region" in markdown
    assert "| logic cells | ICESTORM_LC | 5860 | 5280 | 111.0% | nextpnr |" in markdown
    assert "- timing:" not in markdown
    text = format_report(report)
    assert "FAILED     in place & route: the design does not fit" in text
    # nextpnr packed 2 DSPs here, but placed nothing: only Yosys's count is stated.
    assert "nextpnr placed" not in report.dsp_summary
    saved = report.to_dict()
    assert (saved["status"], saved["failed_step"], saved["timing_met"]) == \
        ("failed", "place & route", False)


def test_missed_timing_suggests_a_clock_the_pll_makes(tmp_path):
    board = BOARDS["icebreaker"]
    # 95% of 21.4 MHz is 20.33; the PLL makes 19.875 MHz for 20.
    assert flow._slower_clock(board, _report(
        tmp_path, [ClockTiming("clk", 21.4, 24.0)])) == 20
    # Below the PLL's 16.125 MHz: nothing to suggest.
    assert flow._slower_clock(board, _report(
        tmp_path, [ClockTiming("clk", 12.0, 24.0)])) is None
    assert flow._slower_clock(BOARDS["ulx3s-85f"], _report(
        tmp_path, [ClockTiming("clk", 48.17, 50.0)])) == 45
