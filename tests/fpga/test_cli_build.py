"""``qforge build`` (:mod:`qforge.gen.cli.build`): usage errors exit 2 without a
traceback, a missing tool is reported before building, the help, and (marker
``synth``) a report-only build from the command line."""

from __future__ import annotations

import json

import pytest

from qforge.fpga import flow
from qforge.gen.cli import main as cli_main
from tests.cli import run_qforge
from tests.fpga.stand_in import LoopbackCore


# -- command line and programming ----------------------------------------------------

def _run_main(capsys, *argv):
    """``qforge build ARGV...``: (exit status, the run's outcome with ``out`` and ``err``)."""
    outcome = run_qforge(capsys, "build", *argv)
    return outcome.status, outcome


@pytest.mark.parametrize("argv, message", [
    (["--board", "arty", "--preset", "tiny"], "invalid choice: 'arty'"),
    (["--board", "icebreaker", "--preset", "tiny", "--clock", "300"],
     "clock frequency 300 MHz: the iCE40 PLL (SB_PLL40, 12 MHz input) reaches"),
    (["--board", "ulx3s-85f", "--preset", "tiny", "--clock", "24"],
     "nearest it makes is 25 MHz"),
    (["--board", "icebreaker", "--preset", "tiny", "--baud", "10000000"], "baud_rate"),
    (["--board", "icebreaker", "--preset", "tiny", "--baud", "0"], "--baud"),
    (["--board", "icebreaker", "--preset", "tiny", "--clock", "fast"], "--clock"),
    (["--board", "icebreaker", "--preset", "nope"], "nope"),
    (["--board", "icebreaker", "--preset", "tiny", "--report-only", "--program"],
     "--program and --report-only"),
    (["--board", "icebreaker"], "--preset"),
])
def test_cli_errors_exit_2_without_traceback(capsys, tmp_path, argv, message):
    status, captured = _run_main(capsys, *argv, "--build-dir", str(tmp_path / "b"))
    assert status == 2
    assert message in captured.err
    assert not (tmp_path / "b").exists()       # failed before anything was built


def test_missing_tool_is_reported_before_building(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", str(tmp_path / "no-such-nextpnr"))
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--build-dir", str(tmp_path / "b"))
    assert status == 2
    assert "NEXTPNR_ICE40 = " in captured.err and "not an executable" in captured.err
    assert not (tmp_path / "b").exists()


def test_cli_help(capsys):
    status, captured = _run_main(capsys, "--help")
    assert status == 0
    for text in ("--board {icebreaker,ulx3s-85f}", "--report-only", "--program",
                 "--clock MHZ", "--baud N", "--build-dir DIR", "--json", "iceprog",
                 "openFPGALoader"):
        assert text in captured.out


def test_registered_in_qforge_cli(capsys):
    with pytest.raises(SystemExit) as exit:
        cli_main(["build", "--help"])
    capsys.readouterr()
    assert exit.value.code == 0
    assert cli_main(["build", "--board", "icebreaker", "--preset", "tiny",
                     "--clock", "300"]) == 2
    assert "clock frequency 300 MHz" in capsys.readouterr().err


@pytest.mark.synth
def test_build_report_only_from_the_command_line(tmp_path, capsys, monkeypatch):
    original = flow.build

    def with_stand_in(*args, **kwargs):
        return original(*args, core=LoopbackCore, **kwargs)

    monkeypatch.setattr(flow, "build", with_stand_in)
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--report-only", "--json", "--build-dir",
                                 str(tmp_path / "b"))
    assert status == 0
    report = json.loads(captured.out)
    assert report["bitstream"] is None and report["timing_met"] is True
    assert "pack" not in report["seconds"]
    assert not (tmp_path / "b" / "qforge_tiny.bin").exists()
    assert "place & route done in" in captured.err
