"""The benchmark's figures: structure, consistency, and the issue's targets for the
cycle-derived ones (deterministic; timing figures are reported, never asserted)."""

import json
import math

import numpy as np
import pytest

from qforge.sim.model.spec import from_dict, load_preset
from qforge.sim.apps import benchmark
from qforge.sim.apps.benchmark import (DENSE_SHAPE, SPARSE_DENSITIES, SPARSE_PLOT_DENSITIES,
                                  emulator_ratio, plot_sparse_scaling, precision_table,
                                  sparse_point, sparse_scaling)
from qforge.sim.model.cycles import (CHECK_LATENCY, FEED_LATENCY, OUTPUT_LATENCY, PE_LATENCY,
                               tile_cycles)
from qforge.sim.model.numerics import standard_modes
from tests.cli import run_qforge
from tests.configs import COMPONENT_CONFIGS, two_lane_tiny


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
    from qforge.sim.apps.benchmark import plot_precision_scaling
    config = load_preset("default")
    table = precision_table(config)
    result = {"modes": table, "config": "default", "array": "8x8", "block_multipliers": 4,
              "dense_shape": list(DENSE_SHAPE), "cycles_source": "cycle model (test)"}
    path = tmp_path / "scaling.png"
    plot_precision_scaling(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- zero skipping ---------------------------------------------------------------

@pytest.fixture(scope="module")
def default_sparse():
    return sparse_scaling(load_preset("default"))


def test_sparse_figures_meet_targets(default_sparse):
    result = default_sparse
    # default built as the zero-skipping array is the sparse preset's hardware.
    assert result["hardware"] == "sparse" and result["array"] == "8x8"
    assert result["speedup_50"] >= 1.8                   # issue target
    assert result["vs_ideal"] >= 0.80                    # issue target
    points = {point["target_density"]: point for point in result["points"]}
    assert set(points) == set(SPARSE_DENSITIES) | set(SPARSE_PLOT_DENSITIES)
    figures = [point for point in result["points"] if point["in_figures"]]
    assert [point["target_density"] for point in figures] == list(SPARSE_DENSITIES)
    assert result["vs_ideal"] == min(point["vs_ideal"] for point in figures)
    assert result["speedup_50"] == points[0.5]["dense_cycles"] / points[0.5]["sparse_cycles"]
    for point in result["points"]:
        # Exactly the requested density, the same dense cycles at every density, and a
        # skipping run never slower than the dense one nor faster than the ideal.
        assert point["nonzero"] == round(point["target_density"] * 128 * 128)
        assert point["dense_cycles"] == points[1.0]["dense_cycles"]
        assert point["ideal_cycles"] <= point["sparse_cycles"] <= point["dense_cycles"]
        assert point["sparse_source"] == point["dense_source"] == "cycle model"
    assert points[1.0]["sparse_cycles"] == points[1.0]["dense_cycles"]
    assert result["cycles_source"].startswith("cycle model") and result["rtl_equals_model"] is None
    # Seeded: a second run gives the same figures.
    assert sparse_scaling(load_preset("sparse")) == result


def test_sparse_mode_table_shows_word_granularity(default_sparse):
    config = load_preset("sparse")
    modes = {row["mode"]: row for row in default_sparse["modes"]}
    assert set(modes) == set(standard_modes(config))
    lanes = config.block_multipliers
    for row in modes.values():
        assert row["density"] == 0.5
        if row["block_products"] >= lanes:
            # Every zero saves its own cycles: close to the ideal 2x.
            assert row["speedup"] > 1.9
        else:
            # Only words whose P operands are all zero are skipped.
            assert row["speedup"] < 1.2
            assert math.isclose(1 - 1 / row["speedup"], row["zero_words"], abs_tol=0.01)


#: A stand-in for :func:`benchmark.area_efficiency` (Yosys runs, tested on their own).
FAKE_AREA = {"baseline": "fxp8", "pe_transistors": 2000, "baseline_pe_transistors": 1000,
             "exact": 0.25, "four_bit": 1.5, "four_bit_block_products": 1}


def test_benchmark_json_has_the_sparse_keys(monkeypatch):
    # The emulator timing is the slow part and unrelated: stub it out.
    monkeypatch.setattr(benchmark, "emulator_ratio", lambda config: {"ratio": 1.0})
    monkeypatch.setattr(benchmark, "area_efficiency", lambda config, log=None: FAKE_AREA)
    result = benchmark.run_benchmark(load_preset("default"), log=lambda message: None)
    assert result["sparse_speedup_50"] == result["sparse"]["speedup_50"] >= 1.8
    assert result["sparse_vs_ideal"] == result["sparse"]["vs_ideal"] >= 0.80
    json.dumps(result)                                   # plain JSON types only
    assert (result["area_efficiency_exact"], result["area_efficiency_4bit"]) == (0.25, 1.5)
    assert result["paired_speedup"] == result["paired"]["speedup"] >= 1.9
    assert result["paired"]["hardware"] == "paired" and result["paired_not_applicable"] is None


def _independent_row_cycles(a, q, lanes):
    """Per A row: each word of P operands with n non-zero operands costs ceil(n*q/P)
    cycles; a row of zeros costs 1 (loops, no numpy)."""
    cycles = []
    for row in a.tolist():
        total = 0
        for start in range(0, len(row), lanes):
            nonzero = sum(1 for value in row[start:start + lanes] if value != 0)
            total += -(-nonzero * q // lanes)
        cycles.append(max(total, 1))
    return cycles


def test_sparse_cycles_equal_an_independent_count():
    # tiny with two lanes per PE (P = 2, buffers of 256 words: words of two operands, of
    # which one or both may be zero; the preset is P = 1) built as the zero-skipping
    # array with a full-rate output stage (one drained row per cycle): R = C = 2, P = 2,
    # exact q = 4: one non-zero operand costs 2 cycles, a pair 4. A is 4 x 16 (two row
    # tiles, 8 words per row), n = 4 (two column tiles, one group of R = 2, drained in 2
    # rows).
    spec = two_lane_tiny().to_dict()
    del spec["output_stage"]
    config = from_dict(spec).with_zero_skipping()
    precision = standard_modes(config)["exact"]
    q, lanes = precision.block_products, config.block_multipliers
    a = np.zeros((4, 16), dtype=np.int64)
    a[0, [0, 1, 2, 5, 9]] = [3, -1, 127, -128, 5]       # words 2+1+1+1 -> 4+2+2+2
    a[1, :] = 7                                         # dense row: 8 words of 2 -> 32
    a[2, [14, 15, 3, 6]] = [1, 2, -3, 4]                # 4+2+2
    a[3, 0:8] = -9                                      # 4 words of 2 -> 16
    n = 4
    rows = _independent_row_cycles(a, q, lanes)
    assert rows == [10, 32, 8, 16]
    # Every tile is long enough that the drain (capture + R rows) never holds the next
    # one, so the total is: take and check (2) + start (1) + load beats (2 row tiles *
    # 8 words) + hand-off (1) + the tiles back to back + capture of the last tile + its
    # R drained rows + the output stage.
    capture = FEED_LATENCY + PE_LATENCY
    assert min(rows) >= capture + 1 + config.rows
    beats = 2 * (16 // lanes)
    expected_sparse = (CHECK_LATENCY + 1 + beats + 1 + sum(rows) + capture + config.rows
                       + OUTPUT_LATENCY)
    expected_dense = CHECK_LATENCY + 1 + beats + 1 + 4 * (16 * q // lanes) + capture + config.rows \
        + OUTPUT_LATENCY
    point = sparse_point(config, a, n, precision)
    assert point["sparse_cycles"] == expected_sparse == 99
    assert point["dense_cycles"] == expected_dense == 161
    nonzero = int(np.count_nonzero(a))
    assert point["nonzero"] == nonzero == 33
    assert point["ideal_cycles"] == nonzero * n * q / (2 * 2 * lanes)
    assert point["zero_words"] == 13 / 32


def test_sparse_point_needs_a_skipping_array():
    config = load_preset("default")
    with pytest.raises(ValueError, match="zero_skipping"):
        sparse_point(config, np.ones((8, 8), dtype=np.int64), 8,
                     standard_modes(config)["exact"])


def test_sparse_plot_is_written(tmp_path, default_sparse):
    path = tmp_path / "sparse.png"
    plot_sparse_scaling({"sparse": default_sparse}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Points measured on the RTL get their own markers.
    measured = default_sparse | {"points": [
        point | ({"sparse_source": "rtl (verilator)"} if point["target_density"] == 0.5
                 else {}) for point in default_sparse["points"]]}
    plot_sparse_scaling(measured, tmp_path / "measured.png")
    assert (tmp_path / "measured.png").stat().st_size > 1000


def test_bench_cli_saves_both_plots(capsys, tmp_path, monkeypatch):
    from qforge.gen.cli import main
    monkeypatch.setattr(benchmark, "emulator_ratio", lambda config: {"ratio": 1.0})
    monkeypatch.setattr(benchmark, "area_efficiency", lambda config, log=None: FAKE_AREA)
    code = main(["bench", "--json", "--plot-dir", str(tmp_path / "plots")])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["sparse_speedup_50"] >= 1.8 and result["sparse_vs_ideal"] >= 0.80
    for name in ("precision_scaling.png", "sparse_scaling.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("option, value, message", [
    ("--plot-dir", "file.txt/plots", "is a file, not a folder"),
])
def test_bench_cli_bad_plot_paths_are_one_line(capsys, tmp_path, monkeypatch, option, value,
                                               message):
    from qforge.gen.cli import main
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    code = main(["bench", option, value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"qforge: error: {option} ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_paired_speedup_is_an_exact_gemm_of_half_the_depth():
    """docs/NUMERICS.md, "Paired mode": a paired tile of depth D computes for the cycles
    of an exact one of depth ceil(D / 2) (every window option, whatever the data); only
    loading still moves all D operands: the first command's load (one beat a cycle, the
    larger of its A and B tile counts times its words) is ahead of the computation."""
    from qforge.sim.model.capacity import tiles
    from qforge.sim.model.cycles import GemmShape, gemm_cycles
    config = load_preset("paired")
    for shape in ((128, 128, 128), (9, 20, 33)):
        result = benchmark.paired_scaling(load_preset("default"), shape)
        m, n, depth = shape
        half = -(-depth // 2)
        exact = [gemm_cycles(config, [GemmShape(m, n, d, 16)]).total for d in (depth, half)]
        load_beats = max(tiles(m, 8), tiles(n, 8)) * (tiles(depth, 4) - tiles(half, 4))
        assert (result["exact_cycles"], result["paired_cycles"]) == (
            exact[0], exact[1] + load_beats)
        assert {row["model_cycles"] for row in result["modes"]} == {result["paired_cycles"]}
        assert [row["mode"] for row in result["modes"]] == [
            "paired, symmetric 1 block, raw", "paired, asymmetric 2/1 blocks, raw",
            "paired, symmetric 2 blocks, raw", "paired, asymmetric 3/1 blocks, raw"]
        assert result["vs_ideal"] == result["speedup"] / 2
    assert benchmark.paired_not_applicable(load_preset("fused")).startswith(
        'arithmetic.paired = True: needs arithmetic.pe = "shifted" or "signed_product"')


@pytest.mark.rtl
def test_paired_rtl_cycles_equal_the_model():
    """The --rtl path of paired_speedup on a small GEMM (the paired preset's build)."""
    result = benchmark.paired_scaling(load_preset("default"), (16, 16, 24), rtl=True,
                                      log=lambda message: None)
    assert result["cycles_source"] == "rtl (verilator)" and result["rtl_equals_model"] is True
    assert result["speedup"] > 1.5


@pytest.mark.rtl
def test_sparse_rtl_cycles_equal_the_model(rtl):
    # The --rtl path, on a small GEMM of a zero-skipping design that
    # tests/sim/test_rtl_skipping.py builds too (compiled once, shared).
    config = rtl("rect_vrq_skip").config
    result = sparse_scaling(config, (8, 8, 32), densities=(0.1, 0.5, 1.0), plot_densities=(),
                            rtl=True, log=lambda message: None)
    measured = [point for point in result["points"] if point["sparse_source"] != "cycle model"]
    assert [point["target_density"] for point in measured] == [0.1, 0.5, 1.0]
    assert all(point["sparse_source"] == "rtl (verilator)" for point in measured)
    assert result["rtl_equals_model"] is True
    assert "rtl (verilator)" in result["cycles_source"]


def test_bench_prints_the_area_efficiency(capsys, monkeypatch):
    from qforge.gen.cli import main
    monkeypatch.setattr(benchmark, "emulator_ratio", lambda config: {"ratio": 1.0})
    monkeypatch.setattr(benchmark, "area_efficiency", lambda config, log=None: FAKE_AREA)
    assert main(["bench", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert ("area_efficiency_exact (MACs/cycle per PE transistor vs fxp8, 2000 vs 1000 "
            "transistors): 0.25\n") in out
    assert "area_efficiency_4bit (reduced mode, 4x4 bits): 1.50 (q = 1)\n" in out


@pytest.mark.synth
def test_area_efficiency_is_macs_per_transistor_against_fxp8():
    """tiny's exact mode is 1/4 MAC per cycle per PE (4 block products on 1 lane), its
    4x4 mode 1; fxp8's exact 1. The ratios are those rates over each PE's transistors
    (the CMOS estimate, as ``qforge area --pe`` measures it)."""
    from qforge.fpga.pe_area import pe_area
    tiny, fxp8 = load_preset("tiny"), load_preset("fxp8")
    result = benchmark.area_efficiency(tiny)
    tiny_pe = pe_area(tiny, families=()).pe_cmos.transistors
    fxp8_pe = pe_area(fxp8, families=()).pe_cmos.transistors
    assert result["pe_transistors"] == tiny_pe and result["baseline_pe_transistors"] == fxp8_pe
    assert math.isclose(result["exact"], 0.25 / tiny_pe * fxp8_pe)
    assert math.isclose(result["four_bit"], 1 / tiny_pe * fxp8_pe)
    assert result["four_bit_block_products"] == 1
    assert benchmark.area_efficiency(fxp8)["four_bit"] is None


# ---- PE designs without a zero-skipping array ------------------------------------

@pytest.fixture
def spec_file(tmp_path):
    """A TOML spec of a test configuration (tests/configs.py), by its registry name."""
    def write(name):
        path = tmp_path / f"{name}.toml"
        path.write_text(COMPONENT_CONFIGS[name]().to_toml())
        return path
    return write


@pytest.fixture
def stubbed_timing_and_area(monkeypatch):
    # The emulator timing and the Yosys runs are tested on their own (see
    # test_area_efficiency_of_dense_only_pe_designs).
    monkeypatch.setattr(benchmark, "emulator_ratio", lambda config: {"ratio": 1.0})
    monkeypatch.setattr(benchmark, "area_efficiency", lambda config, log=None: FAKE_AREA)


@pytest.mark.parametrize("name", ["fused", "shared"])
def test_bench_leaves_out_zero_skipping_where_the_pe_design_forbids_it(
        capsys, spec_file, stubbed_timing_and_area, name):
    pe = COMPONENT_CONFIGS[name]().pe
    code, out, err = run_qforge(capsys, "bench", "--spec", spec_file(name), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["sparse"] is result["sparse_speedup_50"] is result["sparse_vs_ideal"] is None
    assert result["sparse_not_applicable"].startswith(
        f"arithmetic.pe = '{pe}': needs integer operands on the dense systolic array")
    # Every other section ran.
    assert [row["mode"] for row in result["modes"]] == [
        "exact", "reduced", "mixed", "approx_static", "approx_dynamic", "approx_dynamic_1"]
    assert 0 < result["dense_utilization"] <= 1 and result["emulator_vs_float32"] == 1.0
    assert (result["area_efficiency_exact"], result["area_efficiency_4bit"]) == (0.25, 1.5)

    code, out, err = run_qforge(capsys, "bench", "--spec", spec_file(name))
    assert code == 0, err
    assert (f"sparse_speedup_50, sparse_vs_ideal: not applicable, no zero-skipping array of "
            f"this configuration (arithmetic.pe = '{pe}': needs integer operands") in out
    assert "paired_speedup: not applicable, no paired-mode array of this configuration" in out
    assert "area_efficiency_exact" in out and "Zero skipping on" not in out


def test_bench_q_column_names_the_issued_block_products(capsys, spec_file,
                                                        stubbed_timing_and_area):
    # fused, K = 4, W = 8: an exact MAC is 2 x 2 = 4 block products on one lane pair (2
    # lanes); shared_shift, K = 2, W = 8: a dynamic mode issues all 4 x 4 block pairs.
    _, out, _ = run_qforge(capsys, "bench", "--spec", spec_file("fused"))
    assert "| exact | 4 (issues 2) |" in out and "| reduced | 1 |" in out
    _, out, _ = run_qforge(capsys, "bench", "--spec", spec_file("shared"))
    assert "| approx_dynamic_1 | 1 (issues 16) |" in out and "| exact | 16 |" in out
    assert "\nq = La * Lb; \"issues\": the block products the PE design issues per MAC" in out


def test_bench_plots_without_zero_skipping(capsys, tmp_path, spec_file,
                                          stubbed_timing_and_area):
    code, _, err = run_qforge(capsys, "bench", "--spec", spec_file("fused"), "--plot-dir",
                              tmp_path / "plots")
    assert code == 0
    assert [path.name for path in (tmp_path / "plots").iterdir()] == ["precision_scaling.png"]
    assert "sparse_scaling.png not saved: zero skipping does not apply (arithmetic.pe" in err
    code, _, err = run_qforge(capsys, "bench", "--spec", spec_file("fused"), "--sparse-plot",
                              tmp_path / "sparse.png")
    assert code == 2 and err == (
        f"qforge: error: --sparse-plot {tmp_path / 'sparse.png'}: zero skipping does not "
        "apply to this configuration (arithmetic.pe = 'fused': needs integer operands on "
        "the dense systolic array: leave out the [vrq] and [zero_skipping] sections)\n")
    assert not (tmp_path / "sparse.png").exists()


@pytest.mark.synth
def test_area_efficiency_of_dense_only_pe_designs():
    """The fused test configuration (K = 4, W = 8, P = 4 lanes in 2 pairs, depth limit
    30) does 2 exact MACs per cycle per PE (one per lane pair: 30 MACs in 15 cycles) and
    3.75 in the 4x4 mode (one per lane: 30 MACs in 8 cycles, the last word half full)."""
    from qforge.fpga.pe_area import pe_area
    config = COMPONENT_CONFIGS["fused"]()
    result = benchmark.area_efficiency(config)
    pe = pe_area(config, families=()).pe_cmos.transistors
    fxp8_pe = pe_area(load_preset("fxp8"), families=()).pe_cmos.transistors
    assert math.isclose(result["exact"], 2 / pe * fxp8_pe)
    assert math.isclose(result["four_bit"], 3.75 / pe * fxp8_pe)
