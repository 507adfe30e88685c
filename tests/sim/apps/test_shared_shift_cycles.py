"""Callers of the cycle model on a ``arithmetic.pe = "shared_shift"`` configuration
(tests/fpga/data/k4p8_shared.toml: 8x8, P = 8, W = 8, K = 4, so n = 2 blocks): in
approx_dynamic (one of the two blocks kept dynamically, q = La x Lb = 1) the PEs issue
all n x n = 4 block pairs per MAC, and every cycle and ideal figure must count those,
while the tables' q stays 1. Expected values are worked out by hand below; each
differs from what q = 1 would give."""

from pathlib import Path

import numpy as np

from qforge import api
from qforge.fpga.results import mode_rates
from qforge.sim.apps.benchmark import DENSE_SHAPE, precision_table, q_label
from qforge.sim.model.spec import load_spec

K4P8_SHARED = Path(__file__).resolve().parents[2] / "fpga" / "data" / "k4p8_shared.toml"
ISSUED = 2 * 2      # n x n block pairs per dynamically approximated MAC


def one_command_cycles(m_tiles, n_tiles, words, tile):
    """tests/sim/model/test_cycles.py's closed form of one command on the 8x8 array
    (S = 1): take and check 2, start 1, max(A, B) beats, hand-off 1, the first tile,
    each further tile no sooner than the previous one's drain is free (capture
    2 + 7 + 7 + 3 = 19, then 8 rows: free 8 cycles later), the last capture, 8 rows
    and the output stage's 6."""
    capture, drain = 19, 8
    return (2 + 1 + max(m_tiles, n_tiles) * words + 1 + tile
            + (m_tiles * n_tiles - 1) * max(tile, capture + 1 + drain)
            + capture + drain + 6)


def test_bench_mode_row_counts_the_issued_block_products():
    """``qforge bench``'s precision table, approx_dynamic on 128x128x128: 16 x 16 tiles
    of 16 words x 4 block pairs = 64 cycles (16 with q = 1), ideal 128**3 x 4 /
    (64 PEs x 8 lanes) cycles, ideal 8 / 4 MACs per PE per cycle."""
    config = load_spec(K4P8_SHARED)
    row = next(row for row in precision_table(config) if row["mode"] == "approx_dynamic")
    assert DENSE_SHAPE == (128, 128, 128)
    assert (row["block_products"], row["issued_block_products"]) == (1, ISSUED)
    assert row["cycles"] == one_command_cycles(16, 16, 16, 16 * ISSUED) == 16677
    assert row["ideal_cycles"] == 128 ** 3 * ISSUED / (8 * 8 * 8) == 16384
    assert row["ideal_macs_per_pe_cycle"] == 8 / ISSUED
    assert q_label(row["block_products"], row["issued_block_products"]) == "1 (issues 4)"


def test_api_model_cycles_count_the_issued_block_products():
    """qforge.api.gemm on the golden backend, 8x20 by 20x8 in approx_dynamic: one tile of
    ceil(20 / 8) = 3 words x 4 block pairs = 12 cycles (3 with q = 1)."""
    config = load_spec(K4P8_SHARED)
    a = np.arange(8 * 20, dtype=np.int64).reshape(8, 20) % 255 - 127
    b = np.arange(20 * 8, dtype=np.int64).reshape(20, 8) % 251 - 125
    result = api.gemm(config, a, b, "approx_dynamic")
    assert result.cycles_source == "model"
    assert result.cycles == one_command_cycles(1, 1, 3, 3 * ISSUED) == 52


def test_results_peak_rate_counts_the_issued_block_products():
    """RESULTS.md's peak MACs per cycle: 8 x 8 PEs x 8 lanes / 4 issued (64 with q = 1),
    q shown as 1."""
    config = load_spec(K4P8_SHARED)
    rate = next(rate for rate in mode_rates(config) if rate.mode == "approx_dynamic")
    assert (rate.q, rate.macs_per_cycle) == (1, 8 * 8 * 8 // ISSUED)
