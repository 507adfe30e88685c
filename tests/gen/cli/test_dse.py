"""``qforge dse``: one-line errors for bad sweep files, the outputs it writes (rows,
fronts, plots, report), the cache on a second run, and its point listing."""

from __future__ import annotations

import json
from pathlib import Path

from qforge.sim.dse.runner import ROW_FIELDS
from tests.cli import run_qforge

DATA = Path(__file__).resolve().parents[2] / "sim" / "dse" / "data"


def test_a_bad_sweep_file_is_one_line_from_the_command(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[axes]\n"array.rows" = [4, 0]\n')
    outcome = run_qforge(capsys, "dse", path, "--points")
    assert outcome.status == 2
    assert outcome.err.strip().splitlines() == [
        f"qforge: error: {path}: axes.array.rows[1] = 0: must be a whole number in 1 .. 64"]
    path.write_text("axes = [")
    outcome = run_qforge(capsys, "dse", path, "--points")
    assert outcome.status == 2 and "not valid TOML" in outcome.err
    outcome = run_qforge(capsys, "dse", tmp_path / "missing.toml")
    assert outcome.status == 2 and "missing.toml" in outcome.err


def test_the_command_writes_rows_fronts_plots_and_a_report(capsys, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    outcome = run_qforge(capsys, "dse", DATA / "small.toml", "--jobs", "1", "--out", out,
                         "--cache", cache, "--report")
    assert outcome.status == 0, outcome.err
    assert "18 rows from 6 points (0 pruned)" in outcome.out
    data = json.loads((out / "rows.json").read_text())
    assert len(data["rows"]) == 18 and data["fronts"]["accuracy_cycles:cnn"]
    header = (out / "rows.csv").read_text().splitlines()[0].split(",")
    assert header == list(ROW_FIELDS)
    assert (out / "accuracy_cycles_cnn.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "## Workload `cnn`" in report and "(FxP8)" in report
    assert "ETA" in outcome.err
    outcome = run_qforge(capsys, "dse", DATA / "small.toml", "--jobs", "1", "--out", out,
                         "--cache", cache, "--json", "--no-plots")
    assert json.loads(outcome.out)["summary"]["tasks_run"] == 0


def test_points_lists_the_points_and_runs_nothing(capsys, tmp_path):
    outcome = run_qforge(capsys, "dse", DATA / "small.toml", "--points")
    assert outcome.status == 0
    lines = outcome.out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "rows2_K2", "rows2_K4", "rows4_K2",
        "rows4_K4", "fxp8_rows2_cols8", "fxp8_rows4_cols8"]
    assert lines[-1].split()[1] == "baseline"


def test_an_unreachable_ray_cluster_is_one_line(capsys, tmp_path):
    import socket
    with socket.socket() as listener:          # a port nobody listens on once closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    outcome = run_qforge(capsys, "dse", DATA / "small.toml", "--ray", f"127.0.0.1:{port}",
                         "--cache", tmp_path / "cache", "--out", tmp_path / "out")
    assert outcome.status == 2
    assert outcome.err.strip().splitlines() == [
        f"qforge: error: --ray 127.0.0.1:{port}: no Ray cluster answers there (Connection "
        f"refused); start one with `ray start --head` (docs/DSE.md)"]
