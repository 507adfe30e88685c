"""Running a sweep: rows assembled from cached tasks, the same in this process, on a
process pool and on a local Ray instance; a sweep stopped midway resumes without
running its finished tasks again."""

from __future__ import annotations

from pathlib import Path

import pytest

import qforge.sim.dse.runner as runner
from qforge.sim.dse.runner import run_sweep
from qforge.sim.dse.sweep import load_sweep

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def sweep():
    return load_sweep(DATA / "small.toml")


@pytest.fixture(scope="module")
def reference(sweep, tmp_path_factory):
    """The small sweep run in this process, cold."""
    return run_sweep(sweep, jobs=1, cache=tmp_path_factory.mktemp("cache"), progress=False)


def test_rows_hold_every_point_and_policy(sweep, reference):
    rows = reference.rows
    designs = [r for r in rows if not r["baseline"]]
    assert len(designs) == 4 * 4 and len(rows) == 4 * 4 + 2
    assert all(r["policy"] == "exact" for r in rows if r["baseline"])
    assert all(r["status"] == "ok" for r in rows)
    by = {(r["point"], r["policy"]): r for r in rows}
    # Exact numerics are exact on every block width: one accuracy for all points.
    assert len({r["accuracy"] for r in rows if r["policy"] == "exact"}) == 1
    # Fewer block products per MAC, fewer cycles, on the same hardware.
    for point in ("rows2_K2", "rows4_K4"):
        assert by[(point, "approx")]["cycles_per_epoch"] < by[(point, "exact")]["cycles_per_epoch"]
    assert all(0 < r["utilization"] <= 1 for r in rows)
    assert all(r["accuracy_float32"] == rows[0]["accuracy_float32"] for r in rows)
    auto = by[("rows2_K2", "auto")]
    assert auto["policy_layers"].startswith("conv1 ")
    # The throughput per area needs the area measure, which this sweep leaves out.
    assert all(r["throughput_per_area_cmos"] is None for r in rows)
    # Trainings are shared between points of the same numerics (block width here):
    # float32 once per seed; per block width 2 and 4, per seed, exact, approx and mixed
    # and one calibration; the FxP8 baseline's exact per seed; and an auto training per
    # distinct chosen policy and seed.
    autos = {(r["block_width"], r["policy_layers"]) for r in rows if r["policy"] == "auto"}
    assert reference.tasks_run == 2 + 2 * (3 * 2 + 2) + 2 + 2 * len(autos)
    assert reference.tasks_cached == 0


def test_a_second_run_takes_everything_from_the_cache(sweep, reference, tmp_path):
    cache = tmp_path / "cache"
    first = run_sweep(sweep, jobs=1, cache=cache, progress=False)
    assert first.rows == reference.rows and first.tasks_cached == 0
    second = run_sweep(sweep, jobs=1, cache=cache, progress=False)
    assert second.tasks_run == 0 and second.tasks_cached == first.tasks_run
    assert second.rows == reference.rows


def test_an_interrupted_sweep_resumes_without_redoing_finished_tasks(sweep, reference,
                                                                     tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = []
    real = runner.run_task

    def interrupted(task):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(task["key"])
        return real(task)

    monkeypatch.setattr(runner, "run_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, jobs=1, cache=cache, progress=False, log=lambda message: None)
    assert len(list(cache.glob("*.json"))) == 3
    monkeypatch.setattr(runner, "run_task", real)
    resumed = run_sweep(sweep, jobs=1, cache=cache, progress=False)
    assert resumed.tasks_cached == 3
    assert resumed.tasks_run == reference.tasks_run - 3
    assert resumed.rows == reference.rows


def test_the_process_pool_gives_the_same_rows(sweep, reference, tmp_path):
    pooled = run_sweep(sweep, jobs=2, cache=tmp_path / "cache", progress=False)
    assert pooled.tasks_run == reference.tasks_run
    assert pooled.rows == reference.rows


def test_a_local_ray_instance_gives_the_process_pools_rows(sweep, reference, tmp_path):
    pytest.importorskip("ray")
    on_ray = run_sweep(sweep, jobs=2, ray="local", cache=tmp_path / "cache", progress=False)
    assert on_ray.tasks_run == reference.tasks_run
    assert on_ray.rows == reference.rows


def _area_sweep(tmp_path, accuracy: bool):
    from qforge.sim.dse.sweep import sweep_from_dict
    return sweep_from_dict({
        "preset": "tiny", "axes": {"arithmetic.block_multipliers": [1, 2],
                                   "arithmetic.max_reduction_depth": [1024],
                                   "buffers.depth": [1024]},
        "measures": {"area": True, "accuracy": accuracy},
        "constraints": {"fits": "ulx3s-85f"},
        "workloads": [{"name": "cnn", "train": str(DATA / "small_cnn.toml"),
                       "policies": ["exact", "approx"]}]}, source="area.toml")


def test_throughput_per_area_is_against_fxp8_at_the_same_shape(tmp_path, monkeypatch):
    """The derived columns from made-up areas: (MACs/cycle / area) over FxP8's."""
    areas = {}
    real = runner.run_task

    def fake(task):
        if task["kind"] != "area":
            return real(task)
        spec = task["config"]["arithmetic"]
        transistors = {(8, 1): 1000, (4, 1): 900, (4, 2): 1500}[
            (spec["block_width"], spec["block_multipliers"])]
        areas[task["hardware"]] = transistors
        return {"transistors": transistors, "logic_transistors": transistors // 2,
                "memory_bits": 10, "pe_transistors": 7,
                "ecp5": {"lut4": transistors // 10, "carry": 1, "ff": 1, "dsp": 0,
                         "bram": 1 if transistors < 1200 else 300}}

    monkeypatch.setattr(runner, "run_task", fake)
    result = run_sweep(_area_sweep(tmp_path, accuracy=False), jobs=1,
                       cache=tmp_path / "cache", progress=False)
    rows = {(r["point"], r["policy"]): r for r in result.rows}
    base = rows[("fxp8_rows2_cols2", "exact")]
    assert base["throughput_per_area_cmos"] == 1.0
    for point, transistors in (("P1_max_reduction_depth1024_depth1024", 900),
                               ("P2_max_reduction_depth1024_depth1024", 1500)):
        for policy in ("exact", "approx"):
            row = rows[(point, policy)]
            expected = (row["macs_per_cycle"] / transistors) / (base["macs_per_cycle"] / 1000)
            assert row["throughput_per_area_cmos"] == round(expected, 4)
            assert row["throughput_per_area_logic"] == round(expected, 4)
            logic = (transistors // 10 + 2) / (100 + 2)
            assert row["throughput_per_area_ecp5"] == round(
                row["macs_per_cycle"] / base["macs_per_cycle"] / logic, 4)
    # 300 block RAMs do not fit the LFE5U-85F's 208: kept as a row, off the fronts.
    assert rows[("P2_max_reduction_depth1024_depth1024", "exact")]["fits"] \
        is False
    assert rows[("P1_max_reduction_depth1024_depth1024", "exact")]["fits"]


@pytest.mark.synth
@pytest.mark.slow
def test_area_rows_come_from_the_composed_area(tmp_path):
    from qforge.fpga.design_area import composed_area
    result = run_sweep(_area_sweep(tmp_path, accuracy=False), jobs=1,
                       cache=tmp_path / "cache", area_root=tmp_path / "area",
                       progress=False)
    for point in result.points:
        area = composed_area(point.config, root=tmp_path / "area")
        row = next(r for r in result.rows if r["point"] == point.name)
        assert row["transistors"] == area.transistors
        assert row["ecp5_lut4"] == area.cells("ecp5")["lut4"]


def test_fmax_rows_and_front_come_from_the_build_report(tmp_path, monkeypatch):
    """The fmax task's plumbing, with the place and route (20 minutes a point) replaced
    by a report of made-up frequencies; the real flow is fpga/flow.py's, tested there."""
    import qforge.fpga.flow as flow
    from qforge.fpga.report import ClockTiming
    from qforge.sim.dse.report import fronts
    from qforge.sim.dse.sweep import sweep_from_dict

    built = []

    class Report:
        status, error = "built", None

        def __init__(self, mhz):
            self.clocks = [ClockTiming("clk", mhz, 50.0)]

    def fake_build(config, board, *, report_only, build_dir, log):
        assert report_only and board == "ulx3s-85f"
        built.append(build_dir)
        return Report({(4, 1): 61.5, (4, 2): 48.25, (8, 1): 70.0}[
            (config.block_width, config.block_multipliers)])

    monkeypatch.setattr(flow, "build", fake_build)
    real = runner.run_task

    def fake_area(task):
        if task["kind"] != "area":
            return real(task)
        spec = task["config"]["arithmetic"]
        transistors = {(4, 1): 900, (4, 2): 1500, (8, 1): 1000}[
            (spec["block_width"], spec["block_multipliers"])]
        return {"transistors": transistors, "logic_transistors": transistors,
                "memory_bits": 0, "pe_transistors": 1,
                "ecp5": {"lut4": 1, "carry": 0, "ff": 1, "dsp": 0, "bram": 0}}

    monkeypatch.setattr(runner, "run_task", fake_area)
    sweep = sweep_from_dict({"preset": "tiny", "axes": {"arithmetic.block_multipliers": [1, 2]},
                             "measures": {"accuracy": False, "fmax": "ulx3s-85f"}})
    result = run_sweep(sweep, jobs=1, cache=tmp_path / "cache", progress=False)
    assert {r["point"]: r["fmax_mhz"] for r in result.rows} == {
        "P1": 61.5, "P2": 48.25, "fxp8_rows2_cols2": 70.0}
    assert len(built) == 3 and len(set(built)) == 3      # a build folder per point
    front = fronts(result.rows)["area_fmax"]
    assert [result.rows[i]["point"] for i in front] == ["P1", "fxp8_rows2_cols2"]
