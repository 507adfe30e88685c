"""The main job end to end on a small configuration (the default preset runs in
`make demo`)."""

import json

import pytest

from qforge.gen.cli import main
from qforge.sim.model.numerics import standard_modes

pytestmark = pytest.mark.rtl


def test_demo_reports_every_mode_bit_exact(capsys, tmp_path):
    # The designs build in the session's build folder (shared with the other RTL tests);
    # the report goes to a temporary one.
    code = main(["demo", "--preset", "tiny", "--per-mode", "1", "--no-large",
                 "--programs", "3", "--output", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    from qforge.sim.model.spec import load_preset
    assert set(report["modes"]) == set(standard_modes(load_preset("tiny")))
    assert report["bit_exact_beats"] == report["result_beats"] > 0
    assert report["mismatched_beats"] == report["stalled_run_mismatched_beats"] == 0
    for entry in report["modes"].values():
        assert entry["cycles"] == entry["model_cycles"]
    assert "| exact |" in out and "bit-exact result beats" in out
    programs = report["programs"]
    assert programs["programs"] == programs["error_flags_match"] == \
        programs["memory_matches"] == 3
    assert programs["cycles"] == programs["model_cycles"] > 0 and programs["gemms"] > 0
    assert "Programmable top (qforge_core" in out
