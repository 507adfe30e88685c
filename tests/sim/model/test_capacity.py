"""Tiling counts and the buffer capacity of a GEMM (:mod:`qforge.sim.model.capacity`);
the capacity rule against a direct count of the buffer words, for every preset."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.sim.model import machine
from qforge.sim.model.capacity import gemm_capacity_error, tiles
from qforge.sim.model.spec import PRESETS, load_preset


@given(st.integers(0, 1 << 70), st.integers(1, 1 << 40))
def test_tiles_is_the_exact_ceiling(count, size):
    """The fewest tiles that cover ``count``: exact for integers beyond float64."""
    covering = tiles(count, size)
    assert covering * size >= count and (covering - 1) * size < max(count, 1)


def test_tiles_is_vectorized():
    assert tiles(np.array([0, 1, 4, 5]), 4).tolist() == [0, 1, 1, 2]


def test_machine_re_exports_the_rule():
    assert machine.tiles is tiles and machine.gemm_capacity_error is gemm_capacity_error


def fits(config, m, n, k) -> bool:
    """The loader's rule written out: A and B words of one buffer half."""
    limit = 1 << config.tiles_field_width
    if not (1 <= m <= limit * config.rows and 1 <= n <= limit * config.cols
            and 1 <= k <= config.max_reduction_depth):
        return False
    words = math.ceil(k / config.block_multipliers)
    m_tiles, n_tiles = math.ceil(m / config.rows), math.ceil(n / config.cols)
    if config.zero_skipping:
        b_ok = math.ceil(n_tiles / config.rows) * words <= config.pe_buffer_depth
    else:
        b_ok = n_tiles * words <= config.buffer_depth
    return m_tiles * words <= config.buffer_depth and b_ok


@pytest.mark.parametrize("name", PRESETS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_capacity_error_exactly_when_it_does_not_fit(name, data):
    config = load_preset(name)
    m = data.draw(st.integers(0, 2 * config.rows << config.tiles_field_width))
    n = data.draw(st.integers(0, 2 * config.cols << config.tiles_field_width))
    k = data.draw(st.integers(0, config.max_reduction_depth + 2))
    reason = gemm_capacity_error(config, m, n, k)
    assert (reason is None) == fits(config, m, n, k), reason
