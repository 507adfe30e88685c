"""Slow sweep (``make test-all``): random hardware configurations, each generated,
compiled with Verilator and checked with random GEMMs in random modes under random
backpressure. Covers shapes and widths the presets do not (P = 1 or 8, B = 3, W = 6 or
12, non-square arrays)."""

import numpy as np
import pytest

from qforge.sim.model.spec import from_dict
from qforge.sim.bench.rtl import build, run_scenario
from qforge.sim.bench.scenarios import Scenario

from tests.sim.bench.test_rtl import ALL_PORTS, random_jobs

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def random_config(seed):
    rng = np.random.default_rng(seed)
    width = int(rng.choice([4, 6, 8, 12]))
    block = int(rng.choice([k for k in (1, 2, 3, 4, 6) if width % k == 0 and k <= width]))
    lanes = int(rng.choice([1, 2, 4, 8]))
    depth_words = int(rng.choice([32, 64]))
    return from_dict({
        "name": f"sweep{seed}",
        "array": {"rows": int(rng.integers(1, 6)), "cols": int(rng.integers(1, 6))},
        "arithmetic": {"operand_width": width, "block_width": block,
                       "block_multipliers": lanes,
                       "max_reduction_depth": depth_words * lanes, "output_width": 4},
        "buffers": {"depth": depth_words},
    }, source=f"sweep seed {seed}")


@pytest.mark.parametrize("seed", range(6))
def test_random_configuration(seed, tmp_path_factory):
    config = random_config(seed)
    built = build(config, log=lambda message: None)
    jobs = random_jobs(config, seed=seed, count=12, max_tiles=3, max_depth=48)
    report = run_scenario(built, Scenario(jobs, seed=seed, stalls=ALL_PORTS,
                                          timeout_cycles=10000), name="sweep")
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0, config
    assert report["matched"] > 0
