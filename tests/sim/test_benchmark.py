"""The benchmark's figures: structure, consistency, and the issue's targets for the
cycle-derived ones (deterministic; timing figures are reported, never asserted)."""

from qforge.gen.spec import load_preset
from qforge.sim.benchmark import DENSE_SHAPE, emulator_ratio, precision_table
from qforge.sim.cycles import tile_cycles


def test_precision_table_is_consistent_and_meets_targets():
    config = load_preset("default")
    table = precision_table(config)
    m, n, depth = DENSE_SHAPE
    tiles = (m // config.rows) * (n // config.cols)
    for row in table:
        q = row["block_products"]
        # The compute part alone is tiles * ceil(depth*q/P); loading and draining add.
        assert row["cycles"] > tiles * tile_cycles(depth, q, config.block_multipliers)
        assert row["ideal_macs_per_pe_cycle"] == config.block_multipliers / q
        assert 0 < row["speedup_vs_ideal"] <= 1
    exact = next(row for row in table if row["mode"] == "exact")
    assert exact["utilization"] >= 0.90                       # issue target
    assert min(row["speedup_vs_ideal"] for row in table) >= 0.90  # issue target


def test_emulator_ratio_reports_a_checked_timing():
    result = emulator_ratio(load_preset("tiny"), size=32, repeats=3)
    assert result["emulated_seconds"] > 0 and result["float32_seconds"] > 0
    assert result["ratio"] == result["emulated_seconds"] / result["float32_seconds"]


def test_plot_is_written(tmp_path):
    from qforge.sim.benchmark import plot_precision_scaling
    config = load_preset("default")
    table = precision_table(config)
    result = {"modes": table, "config": "default", "array": "8x8", "block_multipliers": 4,
              "dense_shape": list(DENSE_SHAPE), "cycles_source": "cycle model (test)"}
    path = tmp_path / "scaling.png"
    plot_precision_scaling(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
