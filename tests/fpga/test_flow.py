"""The build flow (:mod:`qforge.fpga.flow`): programming, the docstring examples of the
build modules, and (marker ``synth``) real builds of a small design for both boards."""

from __future__ import annotations

import doctest
import importlib
import json
import sys
from pathlib import Path

import pytest

from qforge.fpga.boards import board_named
from qforge.fpga.flow import build, program_bitstream
from qforge.gen.tools import ToolError
from qforge.sim.model.spec import load_preset
from tests.fpga.stand_in import LoopbackCore
from tests.test_doctests import ExceptionNameChecker

DATA = Path(__file__).parent / "data"


def _fake_programmer(tmp_path) -> tuple[Path, Path]:
    record = tmp_path / "args.txt"
    script = tmp_path / "fake-programmer"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"open({str(record)!r}, 'w').write(' '.join(sys.argv[1:]))\n")
    script.chmod(0o755)
    return script, record


def test_program_uses_the_tool_or_says_how_to_install_it(tmp_path, monkeypatch):
    bitstream = tmp_path / "top.bin"
    bitstream.write_bytes(b"\0")
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"iceprog is not on PATH \(or set ICEPROG.*"
                                        r"apt install fpga-icestorm.*the bitstream is "
                                        + str(bitstream).replace(".", r"\.")):
        program_bitstream("icebreaker", bitstream, log=lambda message: None)
    with pytest.raises(ToolError, match="openFPGALoader is not on PATH"):
        program_bitstream("ulx3s-85f", bitstream, log=lambda message: None)
    script, record = _fake_programmer(tmp_path)
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    program_bitstream("ulx3s-85f", bitstream, log=lambda message: None)
    assert record.read_text() == f"-b ulx3s -m {bitstream}"
    monkeypatch.setenv("ICEPROG", str(script))
    program_bitstream("icebreaker", bitstream, log=lambda message: None)
    assert record.read_text() == str(bitstream)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        program_bitstream("icebreaker", tmp_path / "missing.bin")


@pytest.mark.parametrize("module", ["qforge.fpga.pll", "qforge.fpga.boards",
                                    "qforge.fpga.dsp", "qforge.fpga.report"])
def test_docstring_examples(module):
    """These modules have examples, and they pass (compared as tests/test_doctests.py
    compares them: messages in full, exception names without their module)."""
    runner = doctest.DocTestRunner(checker=ExceptionNameChecker(), optionflags=doctest.ELLIPSIS
                                   | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(importlib.import_module(module)):
        runner.run(test, out=lambda text: None)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


# -- real builds (YoWASP Yosys + nextpnr + packers) ----------------------------------

def _check_built(report, board, requested_hz, directory):
    assert report.board == board and report.config == "tiny" and report.pe_count == 4
    assert report.requested_clock_hz == requested_hz
    assert report.clock_hz == board_named(board).solve_pll(requested_hz).output_hz
    for row in report.resources:
        assert 0 <= row.used <= row.available, row
    assert report.resource("PLL").used == 1
    assert report.resource("flip-flops").used > 0
    [clock] = report.clocks
    assert clock.achieved_mhz > 0
    # The constraint nextpnr timed against is the PLL's achieved frequency (nextpnr
    # rounds it to a whole picosecond period).
    assert clock.constraint_mhz == pytest.approx(report.clock_hz / 1e6, rel=1e-4)
    assert report.timing_met
    assert report.bitstream.exists() and report.bitstream.stat().st_size > 1000
    assert report.bitstream.parent == directory
    for path in report.logs.values():
        assert path.exists(), path
    saved = json.loads((directory / "report.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert "| resource | cell |" in (directory / "report.md").read_text()
    census = {"DSP census"} if board == "icebreaker" else set()
    assert set(report.seconds) == {"elaborate", "synthesis", "place & route", "pack",
                                   "total"} | census
    assert report.status == "built" and report.spec == load_preset("tiny").to_dict()
    assert report.dsp_count == 0 and report.dsp_cells == {}   # the stand-in multiplies nothing
    assert report.tools["yosys"].startswith("Yosys")


@pytest.mark.synth
def test_build_both_boards(tmp_path):
    messages = []
    report = build(load_preset("tiny"), "icebreaker", clock_mhz=20, core=LoopbackCore,
                   build_dir=tmp_path / "ice", log=messages.append)
    _check_built(report, "icebreaker", 20e6, tmp_path / "ice")
    assert report.clock_hz == 19.875e6       # the PLL's, not the requested 20 MHz
    assert "set_frequency pll_clk 19.875" in (tmp_path / "ice" / "qforge_tiny.pcf").read_text()
    # No multiplier in the stand-in: the census finds none and synth_ice40 runs plain
    # (in two parts, around where the DSP mapping would go).
    assert report.dsp.mapped == () and not report.dsp.use_dsp
    script = (tmp_path / "ice" / "qforge_tiny.ys").read_text()
    assert "synth_ice40 -top qforge_tiny -run :map_ram" in script
    assert "synth_ice40 -run map_ram: -top qforge_tiny" in script
    assert (tmp_path / "ice" / "dsp_census.txt").read_text().strip() == ""
    for step in ("synthesis", "place & route", "pack"):
        assert any(message.startswith(f"{step} done in") for message in messages), step

    report = build(load_preset("tiny"), "ulx3s-85f", core=LoopbackCore,
                   build_dir=tmp_path / "ecp5", log=messages.append)
    _check_built(report, "ulx3s-85f", 50e6, tmp_path / "ecp5")
    assert report.bitstream.suffix == ".bit"
    assert report.resource("LUT4").cell == "TRELLIS_COMB"


@pytest.mark.synth
def test_build_says_when_the_design_does_not_fit(tmp_path, monkeypatch):
    # A stand-in nextpnr that writes the real log of a design too big for the UP5K.
    fake = tmp_path / "fake-nextpnr"
    fake.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                    f"log = sys.argv[sys.argv.index('--log') + 1]\n"
                    f"shutil.copy({str(DATA / 'nextpnr-overflow-icebreaker.tim')!r}, log)\n"
                    f"sys.exit(1)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(fake))
    with pytest.raises(ToolError, match="does not fit the iCE40UP5K: ICESTORM_LC 5860 of "
                                        "5280"):
        build(load_preset("tiny"), "icebreaker", core=LoopbackCore,
              build_dir=tmp_path / "b", log=lambda message: None)
    # The failure is reported too, with the tool's own message and the packing counts.
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert (saved["status"], saved["failed_step"]) == ("failed", "place & route")
    assert saved["error"].startswith("the design does not fit the iCE40UP5K")
    assert saved["tool_errors"] == ["ERROR: Failed to expand region (0, 0) |_> (25, 31) of "
                                    "5859 ICESTORM_LCs"]
    rows = {row["name"]: row for row in saved["resources"]}
    assert (rows["logic cells"]["used"], rows["logic cells"]["available"]) == (5860, 5280)
    assert rows["LUT4"]["source"] == "yosys" and rows["LUT4"]["used"] > 0   # the stand-in's
    assert saved["clocks"] == [] and saved["bitstream"] is None
    assert "build failed" in (tmp_path / "b" / "report.md").read_text()
