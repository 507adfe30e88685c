"""Sweep files: every mistake one error naming the field, the value and what is
allowed; grid and random expansion; points the hardware rules or the constraints
reject come back pruned with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from qforge.sim.dse.sweep import (BASELINE_PRESET, SweepError, estimated_block_rams, expand,
                                  load_sweep, sweep_from_dict)
from qforge.sim.model.spec import load_preset

DATA = Path(__file__).parent / "data"
WORKLOAD = {"name": "cnn", "train": str(DATA / "small_cnn.toml")}


@pytest.mark.parametrize("spec, message", [
    ({"axis": {}}, "axis = {}: unknown key; allowed: axes, baseline"),
    ({"axes": {"array.row": [4]}}, "axes.array.row = [4]: unknown axis; allowed: array.rows"),
    ({"axes": {"array.rows": []}}, "axes.array.rows = []: must be a list of 1 .. 64 values"),
    ({"axes": {"array.rows": [4, 4]}}, "axes.array.rows = [4, 4]: lists a value twice"),
    ({"axes": {"array.rows": ["4"]}}, "axes.array.rows[0] = '4': must be a whole number"),
    ({"axes": {"arithmetic.block_multipliers": [0]}},
     "axes.arithmetic.block_multipliers[0] = 0: must be a whole number in 1 .. 64"),
    ({"axes": {"arithmetic.pe": ["fast"]}}, "axes.arithmetic.pe[0] = 'fast': allowed: shifted"),
    ({"axes": {"array.rows": ["none"]}}, "axes.array.rows[0] = 'none': must be a whole"),
    ({"preset": "huge"}, "preset = 'huge': allowed: "),
    ({"sampling": {"method": "sobol"}}, "sampling.method = 'sobol': allowed: grid, random"),
    ({"sampling": {"method": "random"}}, "sampling.points = None: must be a whole number"),
    ({"sampling": {"points": 3}}, "sampling.points = 3: only with method = \"random\""),
    ({"constraints": {"fits": "de10"}}, "constraints.fits = 'de10': allowed: ulx3s-85f"),
    ({"constraints": {"fits": "icebreaker"}},
     "constraints.fits = 'icebreaker': allowed: ulx3s-85f (the composed area counts ECP5"),
    ({"constraints": {"max_pes": 0}}, "constraints.max_pes = 0: must be a whole number"),
    ({"measures": {"area": "yes"}}, "measures.area = 'yes': must be true or false"),
    ({"measures": {"fmax": "de10"}}, "measures.fmax = 'de10': a board to place and route"),
    ({"workloads": [{"name": "cnn"}]}, "workloads[0].train = None: must name a packaged"),
    ({"workloads": [{"name": "cnn", "train": "nothere.toml"}]},
     "workloads[0].train = 'nothere.toml': no such file"),
    ({"workloads": [{**WORKLOAD, "policies": ["fast"]}]},
     "workloads[0].policies[0] = 'fast': allowed: exact, approx, reduced, auto, or a "
     "[[hardware]] entry of"),
    ({"workloads": [{**WORKLOAD, "seeds": [-1]}]},
     "workloads[0].seeds[0] = -1: must be a whole number in 0 .. 65535"),
    ({"workloads": [{**WORKLOAD, "budget": -1}]}, "workloads[0].budget = -1: must be a number"),
    ({"workloads": [{**WORKLOAD, "epoch": 1}]}, "workloads[0].epoch = 1: unknown key"),
    ({"workloads": [{"name": "mlp", "train": "digits", "policies": ["auto"]}]},
     "workloads[0].policies = ['auto']: \"auto\" chooses per-layer policies of a model = "
     "\"cnn\""),
    ({"workloads": [WORKLOAD, WORKLOAD]}, "workloads = ['cnn', 'cnn']: names must be unique"),
    ({"axes": {"array.rows": list(range(1, 65)), "array.cols": list(range(1, 65)),
               "arithmetic.block_multipliers": [1, 2]}},
     "axes = '8192 combinations': a grid may have at most 4096"),
])
def test_bad_sweeps_name_the_field_the_value_and_what_is_allowed(spec, message):
    with pytest.raises(SweepError) as error:
        sweep_from_dict(spec, source="s.toml")
    assert str(error.value).startswith("s.toml: ")
    assert message in str(error.value)


def test_the_grid_has_every_combination_and_a_baseline_per_array_shape():
    sweep = sweep_from_dict({"axes": {"array.rows": [2, 4], "array.cols": [2, 4],
                                      "arithmetic.block_width": [2, 4]}})
    points = expand(sweep)
    designs = [p for p in points if not p.baseline]
    assert len(designs) == 8 and all(p.pruned is None for p in designs)
    assert {(p.config.rows, p.config.cols, p.config.block_width) for p in designs} == {
        (r, c, k) for r in (2, 4) for c in (2, 4) for k in (2, 4)}
    baselines = [p for p in points if p.baseline]
    assert {(p.config.rows, p.config.cols) for p in baselines} == {(2, 2), (2, 4), (4, 2),
                                                                   (4, 4)}
    fxp8 = load_preset(BASELINE_PRESET)
    assert all(p.config.block_width == fxp8.block_width == p.config.operand_width
               and p.config.block_multipliers == 1 for p in baselines)
    # Every point's Config has one name, so equal modules elaborate to equal Verilog.
    assert len({p.config.name for p in points}) == 1


def test_random_sampling_draws_the_asked_number_of_points_reproducibly():
    spec = {"axes": {"array.rows": [2, 4, 8], "array.cols": [2, 4, 8],
                     "arithmetic.block_multipliers": [1, 2, 4]},
            "sampling": {"method": "random", "points": 5, "seed": 7}, "baseline": False}
    first = [p.name for p in expand(sweep_from_dict(spec))]
    assert len(first) == 5 and len(set(first)) == 5
    assert first == [p.name for p in expand(sweep_from_dict(spec))]
    other = [p.name for p in expand(sweep_from_dict({**spec, "sampling": {
        "method": "random", "points": 5, "seed": 8}}))]
    assert other != first


def test_invalid_combinations_and_constraints_prune_points_with_the_reason():
    sweep = sweep_from_dict({"axes": {"array.rows": [2, 16], "arithmetic.block_width": [2, 3]},
                             "constraints": {"max_pes": 64}})
    pruned = {p.name: p.pruned for p in expand(sweep) if p.pruned}
    assert "operand_width" in pruned["rows2_K3"]      # K must divide W
    assert pruned["rows16_K2"] == "constraints.max_pes: 128 PEs > 64"
    sweep = sweep_from_dict({"axes": {"buffers.depth": [512, 8192]},
                             "constraints": {"fits": "ulx3s-85f"}, "baseline": False})
    pruned = {p.name: p.pruned for p in expand(sweep)}
    assert pruned["depth512"] is None and "> the LFE5U-85F's 208" in pruned["depth8192"]


def test_optional_sections_come_and_go_with_none():
    sweep = sweep_from_dict({"axes": {"zero_skipping.pe_buffer_depth": ["none", 1024]},
                             "baseline": False})
    configs = {p.name: p.config for p in expand(sweep)}
    assert not configs["pe_buffer_depthnone"].zero_skipping
    assert configs["pe_buffer_depth1024"].zero_skipping


def test_the_block_ram_estimate_is_a_lower_bound_of_a_board_build():
    # docs/RESULTS.md: the default preset's ULX3S build has 33 DP16KD (its buffers and a FIFO).
    assert estimated_block_rams(load_preset("default")) <= 32


def test_the_example_sweeps_load():
    from importlib import resources
    folder = resources.files("qforge.gen") / "dse"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))
    assert names
    for name in names:
        sweep = load_sweep(Path(str(folder / name)))
        assert [p for p in expand(sweep) if p.pruned is None]
