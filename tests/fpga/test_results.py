"""``qforge results`` (:mod:`qforge.fpga.results`): peak throughput per precision mode,
the (board, preset) pairs, the Markdown rendering of real build reports saved in
``tests/fpga/data/`` (every expected number worked out by hand from those files), failed
builds, and the command line (with stand-in builds: no tools run here)."""

from __future__ import annotations

import doctest
import json
import os
import time
from fractions import Fraction
from pathlib import Path

import pytest

from qforge.fpga import results as results_module
from qforge.fpga.dsp import dsp_decision
from qforge.fpga.report import (BuildReport, ClockTiming, parse_nextpnr_log,
                                parse_nextpnr_report, resources_from_reports)
from qforge.fpga.area import parse_stat
from qforge.fpga.pll import ice40_pll
from qforge.fpga.results import (DEFAULT_PAIRS, BuildEntry, collect, macs_per_cycle,
                                 mode_rates, peak_gops, render_results, select_pairs,
                                 sync_clock)
from qforge.gen.cli import main as cli_main
from qforge.sim.model.spec import load_preset
from tests.cli import run_qforge
from tests.configs import two_lane_tiny

DATA = Path(__file__).parent / "data"


def test_docstring_examples():
    result = doctest.testmod(results_module,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# -- throughput ----------------------------------------------------------------------

def test_peak_gops_by_hand():
    # The two-lane tiny: 2x2 PEs, P = 2, exact 8-bit MAC = 2x2 blocks = 4 block products.
    assert macs_per_cycle(2, 2, 2, 4) == 2                       # 8 / 4
    assert peak_gops(2, 24e6) == pytest.approx(0.096)           # 2 * 2 * 24e6 / 1e9
    # default: 8x8 PEs, P = 4, exact = 16 block products: 256 / 16 = 16 MACs per cycle.
    assert macs_per_cycle(8, 8, 4, 16) == 16
    assert peak_gops(16, 50e6) == pytest.approx(1.6)
    # ulx3s: 16x16 PEs, P = 1: exact 256 / 4 = 64; one block each (q = 1) 256.
    assert peak_gops(macs_per_cycle(16, 16, 1, 4), 50e6) == pytest.approx(6.4)
    assert peak_gops(macs_per_cycle(16, 16, 1, 1), 50e6) == pytest.approx(25.6)
    # Fewer than one MAC per PE per cycle stays exact.
    assert macs_per_cycle(3, 1, 1, 4) == Fraction(3, 4)
    for bad in ((0, 2, 2, 4), (2, 2, 2, 0), (2, 2, True, 4), (2.0, 2, 2, 4)):
        with pytest.raises(ValueError, match="must be a positive integer"):
            macs_per_cycle(*bad)
    with pytest.raises(ValueError, match="must not be negative"):
        peak_gops(1, -5.0)


def test_mode_rates_of_the_presets():
    # default: 4 blocks of 2 bits per operand, half = 2 blocks: q = La * Lb.
    rates = {rate.mode: (rate.q, rate.macs_per_cycle, rate.bits)
             for rate in mode_rates(load_preset("default"))}
    assert rates == {"exact": (16, 16, "8x8"), "reduced": (4, 64, "4x4"),
                     "mixed": (8, 32, "8x4"), "approx_static": (4, 64, "4x4"),
                     "approx_dynamic": (4, 64, "4x4"), "approx_dynamic_1": (1, 256, "2x2")}
    rates = {rate.mode: (rate.q, rate.macs_per_cycle)
             for rate in mode_rates(load_preset("ulx3s"))}
    assert rates["exact"] == (4, 64) and rates["mixed"] == (2, 128)
    assert rates["reduced"] == (1, 256)


def test_sync_clock_is_the_pll_clock():
    report = {"clock_hz": 50e6, "clocks": [
        {"net": "clk25", "achieved_mhz": 400.0, "constraint_mhz": 25.0},
        {"net": "clk", "achieved_mhz": 61.2, "constraint_mhz": 50.0}]}
    assert sync_clock(report)["net"] == "clk"
    # No constraint at the PLL's frequency: the slowest clock.
    report["clock_hz"] = 40e6
    assert sync_clock(report)["net"] == "clk"
    assert sync_clock({"clock_hz": 24e6, "clocks": []}) is None


# -- pairs ---------------------------------------------------------------------------

def test_pairs():
    assert select_pairs() == list(DEFAULT_PAIRS) == [
        ("icebreaker", "tiny"), ("ulx3s-85f", "tiny"), ("ulx3s-85f", "default"),
        ("ulx3s-85f", "ulx3s"), ("ulx3s-85f", "fused")]
    assert select_pairs(["icebreaker"]) == [("icebreaker", "tiny")]
    assert select_pairs(["ulx3s-85f", "ulx3s-85f"], ["ulx3s"]) == [("ulx3s-85f", "ulx3s")]
    with pytest.raises(ValueError, match="no default .board, preset. pair has large: give "
                                         "both --board and --preset"):
        select_pairs([], ["large"])
    with pytest.raises(ValueError, match="board = 'arty'"):
        select_pairs(["arty"], ["tiny"])


# -- rendering real reports ----------------------------------------------------------

def _real_tiny_report() -> dict:
    """The report.json of a real ``qforge build --board icebreaker --preset tiny
    --report-only`` (Yosys 0.70, nextpnr 0.11.1; fits, timing missed)."""
    return json.loads((DATA / "report-icebreaker-tiny.json").read_text())


def _loopback_report(tmp_path, *, failed: bool = False) -> dict:
    """A report from the saved real nextpnr report and Yosys stat of the stand-in core on
    the iCEBreaker (or, ``failed``, the packing counts of the real log of a design too big
    for it), labelled as a build of the two-lane tiny (:func:`two_lane_tiny`, P = 2), as
    the reports of that time were."""
    utilization, fmax = parse_nextpnr_report(
        (DATA / "nextpnr-report-icebreaker.json").read_text())
    cells, _ = parse_stat((DATA / "stat-icebreaker.json").read_text())
    tiny = two_lane_tiny()
    report = BuildReport(
        board="icebreaker", device="iCE40UP5K", family="ice40", config="tiny", rows=2,
        cols=2, block_multipliers=2, requested_clock_hz=24e6, clock_hz=24e6,
        pll=ice40_pll(12e6, 24e6).to_dict(), baud_rate=115200, actual_baud_rate=None,
        resources=resources_from_reports("ice40", utilization, cells),
        clocks=[ClockTiming(net.removeprefix("$glbnet$"), *value)
                for net, value in fmax.items()],
        dsp=dsp_decision(tiny, "icebreaker"), synth_cells=cells, tools={"yosys": "Yosys 0.70"},
        seconds={"synthesis": 20.0, "place & route": 30.0, "total": 53.4},
        build_dir=tmp_path, bitstream=None, spec=tiny.to_dict(), date="2026-01-02T03:04:05",
        git="abc1234")
    if failed:
        log = (DATA / "nextpnr-overflow-icebreaker.tim").read_text()
        report.resources = resources_from_reports("ice40", parse_nextpnr_log(log), cells)
        report.clocks = []
        report.status, report.failed_step = "failed", "place & route"
        report.error = ("the design does not fit the iCE40UP5K: ICESTORM_LC 5860 of 5280 "
                        "(111%) (nextpnr's packing, in x.tim); try a smaller configuration")
        report.tool_errors = [line for line in log.splitlines() if line.startswith("ERROR")]
    return json.loads(json.dumps(report.to_dict()))


def _entry(report, board="icebreaker", preset="tiny") -> BuildEntry:
    return BuildEntry(board, preset, ["qforge", "build", "--board", board, "--preset",
                                      preset, "--report-only"], report)


def _section(markdown: str, title: str) -> str:
    return markdown.split(title, 1)[1].split("\n### ", 1)[0]


def test_render_a_real_tiny_build():
    report = _real_tiny_report()
    markdown = render_results([_entry(report)], generated="2026-11-21 17:00 UTC",
                              commit="dd11519", command="qforge results --preset tiny")
    assert markdown.startswith("# qforge on FPGAs")
    assert "Generated by `qforge results --preset tiny` on 2026-11-21 17:00 UTC from commit " \
        "dd11519." in markdown
    assert "parsed from the tools' own output" in markdown
    assert "qforge build --board icebreaker --preset tiny --report-only\n" in markdown
    assert "- yosys: Yosys 0.70" in markdown and "- nextpnr-ice40: nextpnr-0.11.1" in markdown
    # From the file: ICESTORM_LC 4700 of 5280, SB_LUT4 3276, flip-flops 2114, SB_CARRY
    # 1029, 8 of 8 DSP, 10 of 30 block RAM; clk 18.64 MHz against 24.00; 132 s in all.
    row = ("| icebreaker | iCE40UP5K | tiny | 2x2 | 2 | 4 | 4700 / 5280 (89.0%) "
           "| 3276 / 5280 (62.0%) | 2114 / 5280 (40.0%) | 1029 / 5280 (19.5%) "
           "| 8 / 8 (100.0%) | 10 / 30 (33.3%) | 819.0 | 24.00 | 18.64 | MISSED | 132 s |")
    assert row in markdown
    section = _section(markdown, "### icebreaker x tiny")
    assert "- timing, clock `clk`: fmax 18.64 MHz against a 24.00 MHz constraint: " \
        "**MISSED**" in section
    # 3276 LUT4 / 4 PEs = 819.0
    assert "LUTs per PE: **819.0** (3276 LUT4 (SB_LUT4) / 4 PEs; the total includes the " \
        "UART link" in section
    assert "Result: Yosys made 8 SB_MAC16 (stat) from 1 x hdl/loader.py:88, 1 x " \
        "hdl/loader.py:89, 6 x hdl/pe.py:66 (block multiplier): 6 of the 8 block " \
        "multipliers are in DSP blocks, 2 in LUTs; nextpnr placed 8 of 8 ICESTORM_DSP" \
        in section
    assert "| logic cells | ICESTORM_LC | 4700 | 5280 | 89.0% | nextpnr |" in section
    # Peak GOPS: exact 2 MACs/cycle: 2 * 2 * 24 MHz = 0.096, at 18.6414127 MHz 0.0746;
    # reduced (q = 1) 8 MACs/cycle: 0.384 and 0.2983. Against the UP5K's 16 int8 MACs
    # per cycle (8 SB_MAC16, two 8x8 each): 2 / 16, 8 / 16, 4 / 16.
    assert "| mode | operands | magnitude bits kept (A x B) | q | MACs/cycle | of the " \
        "iCE40UP5K's int8 ceiling (16 MACs/cycle) | GOPS @ 24.00 MHz (built) | GOPS @ " \
        "18.64 MHz (fmax) |" in section
    assert "| exact | A: 2 blocks; B: 2 blocks | 8x8 | 4 | 2 | 12.5% | 0.096 | 0.075 |" \
        in section
    assert "| reduced | A: 1 blocks; B: 1 blocks | 4x4 | 1 | 8 | 50.0% | 0.384 | 0.298 |" \
        in section
    assert "| mixed | A: 2 blocks; B: 1 blocks | 8x4 | 2 | 4 | 25.0% | 0.192 | 0.149 |" \
        in section
    assert section.count("\n| approx_") == 3


def test_render_from_saved_tool_output(tmp_path):
    report = _loopback_report(tmp_path)
    markdown = render_results([_entry(report)], generated="today", commit=None)
    assert "from commit unknown" in markdown
    # nextpnr-report-icebreaker.json: ICESTORM_LC 87 / 5280, clk 67.417 MHz vs 24.0004;
    # stat-icebreaker.json: 69 SB_LUT4, 2 + 33 + 2 + 16 = 53 flip-flops, 35 SB_CARRY.
    assert ("| icebreaker | iCE40UP5K | tiny | 2x2 | 2 | 4 | 87 / 5280 (1.6%) "
            "| 69 / 5280 (1.3%) | 53 / 5280 (1.0%) | 35 / 5280 (0.7%) | 0 / 8 (0.0%) "
            "| 0 / 30 (0.0%) | 17.3 | 24.00 | 67.42 | met | 53 s |") in markdown
    # 69 / 4 = 17.25, rounded half up; exact mode at fmax: 2 * 2 * 67.417244 MHz = 0.2697.
    assert "LUTs per PE: **17.3**" in markdown
    assert "| exact | A: 2 blocks; B: 2 blocks | 8x8 | 4 | 2 | 12.5% | 0.096 | 0.270 |" \
        in markdown
    assert "- built: 2026-01-02T03:04:05, commit abc1234; build time 53 s (synthesis 20 s, " \
        "place & route 30 s)" in markdown


def test_render_a_failed_build(tmp_path):
    failed = _loopback_report(tmp_path, failed=True)
    missing = BuildEntry("ulx3s-85f", "ulx3s", ["qforge", "build", "--board", "ulx3s-85f",
                                               "--preset", "ulx3s", "--report-only"], None,
                         "qforge: error: clock frequency 500 MHz: too fast")
    markdown = render_results([_entry(failed), missing], generated="today", commit="x")
    section = _section(markdown, "### icebreaker x tiny")
    assert section.startswith(": iCE40UP5K, 2x2 array (FAILED)")
    assert "- **failed in place & route**: the design does not fit the iCE40UP5K: " \
        "ICESTORM_LC 5860 of 5280 (111%)" in section
    assert "  ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5859 ICESTORM_LCs" \
        in section
    # The packing counts from the log, not dropped: 5860 / 5280 = 111.0%, 10 / 30 RAM.
    assert "nextpnr's packing counts from its log" in section
    assert "| logic cells | ICESTORM_LC | 5860 | 5280 | 111.0% | nextpnr |" in section
    assert "| block RAM | ICESTORM_RAM | 10 | 30 | 33.3% | nextpnr |" in section
    assert "Peak throughput, ideal (not achieved: the build failed)" in section
    assert "(fmax)" not in section and "timing, clock" not in section
    assert "| icebreaker | iCE40UP5K | tiny | 2x2 | 2 | 4 | 5860 / 5280 (111.0%) " in markdown
    assert "| failed (place & route) | 53 s |" in markdown
    # A build that left no report: its own message.
    assert "| ulx3s-85f | - | ulx3s | " in markdown
    assert "failed: qforge: error: clock frequency 500 MHz: too fast" in markdown
    section = _section(markdown, "### ulx3s-85f x ulx3s")
    assert "**The build failed and left no report.**" in section
    assert "qforge: error: clock frequency 500 MHz: too fast" in section


def test_render_a_real_failed_build():
    # The report.json of a real build of a 4x4 version of the tiny preset for the
    # iCEBreaker (a spec file): nextpnr's packing needed 8431 of the 5280 logic cells.
    report = json.loads((DATA / "report-icebreaker-4x4-failed.json").read_text())
    entry = BuildEntry("icebreaker", "big4x4", ["qforge", "build", "--board", "icebreaker",
                                                "--spec", "big4x4.toml", "--report-only"],
                       report)
    markdown = render_results([entry], generated="today", commit="x")
    # 8431 / 5280 = 159.7%; 6043 SB_LUT4 / 16 PEs = 377.7; 18 / 30 block RAM = 60.0%.
    assert ("| icebreaker | iCE40UP5K | big4x4 | 4x4 | 2 | 16 | 8431 / 5280 (159.7%) "
            "| 6043 / 5280 (114.5%) | 3619 / 5280 (68.5%) | 2053 / 5280 (38.9%) "
            "| 8 / 8 (100.0%) | 18 / 30 (60.0%) | 377.7 | 24.00 | - | failed (place & route) "
            "| 57 s |") in markdown
    section = _section(markdown, "### icebreaker x big4x4")
    assert "- **failed in place & route**: the design does not fit the iCE40UP5K: " \
        "ICESTORM_LC 8431 of 5280 (160%)" in section
    assert "  ERROR: Unable to place cell " in section and \
        "no BELs remaining to implement cell type 'ICESTORM_LC'" in section
    assert "6 of the 32 block multipliers are in DSP blocks, 26 in LUTs" in section
    # 4x4 PEs x P = 2 = 32 block multipliers: exact (q = 4) 8 MACs/cycle, 0.384 GOPS at
    # 24 MHz; q = 1: 32 MACs/cycle, 1.536 GOPS. No fmax column: nothing was placed.
    assert "| GOPS @ 24.00 MHz (target clock) |\n" in section
    assert "| exact | A: 2 blocks; B: 2 blocks | 8x8 | 4 | 8 | 50.0% | 0.384 |\n" in section
    assert "| reduced | A: 1 blocks; B: 1 blocks | 4x4 | 1 | 32 | 200.0% | 1.536 |\n" \
        in section


def test_report_of_an_older_build_is_read_from_its_preset(tmp_path):
    # report.json as the first version of `qforge build` wrote it: no spec, rows, status.
    report = _loopback_report(tmp_path)
    for key in ("spec", "rows", "cols", "status", "date", "git"):
        del report[key]
    # Of the two-lane tiny (P = 2): the preset 'tiny' is now P = 1, so it is refused.
    with pytest.raises(ValueError, match=r"\(2x2, P = 2\) does not match the preset 'tiny' "
                                         r"now \(2x2, P = 1\): build it again"):
        results_module._config_of(report)
    # The same report of a build of today's tiny (P = 1) is read from the preset.
    report["block_multipliers"] = 1
    assert results_module._config_of(report).name == "tiny"
    markdown = render_results([_entry(report)], generated="today", commit="x")
    assert "| icebreaker | iCE40UP5K | tiny | 2x2 | 1 | 4 |" in markdown
    report["array"] = "3x3"
    with pytest.raises(ValueError, match="does not match the preset 'tiny' now"):
        results_module._config_of(report)
    # A spec this version cannot read falls back to the preset too (a build of today's
    # tiny: P = 1, buffers of 512 words).
    report = _loopback_report(tmp_path)
    report["block_multipliers"] = report["spec"]["arithmetic"]["block_multipliers"] = 1
    report["spec"]["buffers"]["depth"] = 512
    report["spec"]["arithmetic"]["no_such_key"] = 1
    assert results_module._config_of(report).name == "tiny"


# -- collecting builds and the command line ------------------------------------------

def _fake_build(tmp_path, report: dict | None, *, message: str = "", status: int = 0):
    """A stand-in for running ``qforge build``: writes ``report`` (if any) where the
    build would and records the calls."""
    calls = []

    def run(board, preset, log):
        calls.append((board, preset))
        log(f"building {board} {preset}")
        if report is not None:
            folder = tmp_path / "board" / f"{board}-{preset}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "report.json").write_text(json.dumps(report))
        return status, [message] if message else []

    return run, calls


def test_collect_runs_or_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path))
    report = _real_tiny_report()
    run, calls = _fake_build(tmp_path, report)
    messages = []
    [entry] = collect([("icebreaker", "tiny")], log=messages.append, run=run)
    assert calls == [("icebreaker", "tiny")] and entry.report["board"] == "icebreaker"
    assert not entry.reused and "building icebreaker tiny" in messages
    [entry] = collect([("icebreaker", "tiny")], reuse=True, run=run)
    assert entry.reused and calls == [("icebreaker", "tiny")]       # nothing run
    with pytest.raises(FileNotFoundError, match=r"--reuse: no report.json in .*ulx3s-85f-"
                                                r"tiny: build it first \(qforge build "
                                                r"--board ulx3s-85f --preset tiny "
                                                r"--report-only\)"):
        collect([("ulx3s-85f", "tiny")], reuse=True, run=run)


def test_collect_ignores_a_stale_report(tmp_path, monkeypatch):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path))
    folder = tmp_path / "board" / "icebreaker-tiny"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(_real_tiny_report()))
    old = time.time() - 3600
    os.utime(folder / "report.json", (old, old))
    # The build fails before writing a report: the old one is not taken for it.
    run, _ = _fake_build(tmp_path, None, status=2,
                         message="qforge: error: clock frequency 300 MHz: out of range")
    [entry] = collect([("icebreaker", "tiny")], log=lambda message: None, run=run)
    assert entry.report is None
    assert entry.message == "qforge: error: clock frequency 300 MHz: out of range"


def _run_main(capsys, *argv):
    """``qforge results ARGV...``: (exit status, the run's outcome with ``out`` and ``err``)."""
    outcome = run_qforge(capsys, "results", *argv)
    return outcome.status, outcome


def test_command_line_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path))
    run, calls = _fake_build(tmp_path, _real_tiny_report())
    monkeypatch.setattr(results_module, "_run_qforge_build", run)
    output = tmp_path / "docs" / "RESULTS.md"
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--output", str(output))
    assert status == 0 and captured.out.strip() == str(output)
    assert calls == [("icebreaker", "tiny")]
    text = output.read_text()
    assert f"Generated by `qforge results --board icebreaker --preset tiny --output " \
        f"{output}`" in text
    assert "| icebreaker | iCE40UP5K | tiny | 2x2 |" in text
    status, captured = _run_main(capsys, "--preset", "tiny", "--board", "icebreaker",
                                 "--reuse", "--output", str(output))
    assert status == 0 and calls == [("icebreaker", "tiny")]
    assert "--reuse`" in output.read_text()
    # A failed build is reported, in the file and on stderr, without failing the command.
    run, _ = _fake_build(tmp_path, _loopback_report(tmp_path, failed=True))
    monkeypatch.setattr(results_module, "_run_qforge_build", run)
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--output", str(output))
    assert status == 0 and "failed builds (reported in" in captured.err
    assert "(FAILED)" in output.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--board", "arty"], "invalid choice: 'arty'"),
    (["--preset", "nope"], "nope"),
    (["--preset", "large"], "no default (board, preset) pair has large"),
    (["--board", "icebreaker", "--preset", "tiny", "--reuse"], "--reuse: no report.json"),
])
def test_command_line_errors_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path / "empty"))
    monkeypatch.setattr(results_module, "_run_qforge_build", _fake_build(tmp_path, None)[0])
    status, captured = _run_main(capsys, *argv, "--output", str(tmp_path / "r.md"))
    assert status == 2 and message in captured.err
    assert not (tmp_path / "r.md").exists()


def test_output_folder_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path))
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--reuse", "--output", str(tmp_path))
    assert status == 2 and "is a folder, not a file" in captured.err


def test_registered_in_qforge_cli(capsys):
    with pytest.raises(SystemExit) as exit:
        cli_main(["results", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for text in ("--board {icebreaker,ulx3s-85f}", "--preset NAME", "--output FILE",
                 "--reuse", "ulx3s-85f x ulx3s"):
        assert text in out
    assert cli_main(["results", "--preset", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
