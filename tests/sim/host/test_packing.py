"""Host packing must put every field where the HDL's layouts say it is."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qforge.sim.model.spec import load_preset
from qforge.hdl.layouts import (a_beat_layout, b_beat_layout, command_layout,
                                result_layout)
from qforge.sim.model.numerics import standard_modes
from qforge.sim.host.packing import (GemmJob, ResultAssembler, command_bits, leaf_fields,
                                pack_fields, pack_operands, unpack_fields)


@pytest.fixture(params=["tiny", "default"])
def config(request):
    return load_preset(request.param)


def test_pack_fields_agrees_with_amaranth_const(config):
    """A beat packed by the host equals Amaranth's own ``Layout.const`` of it."""
    rng = np.random.default_rng(0)
    layout = a_beat_layout(config)
    values = rng.integers(-128, 128, size=(config.rows, config.block_multipliers))
    ours = pack_fields(leaf_fields(layout), values.ravel())
    theirs = layout.const([list(map(int, row)) for row in values]).as_bits()
    assert ours == theirs
    view = layout.from_bits(ours)
    assert [[view[r][p] for p in range(config.block_multipliers)]
            for r in range(config.rows)] == values.tolist()


def test_command_bits_decode_through_the_layout(config):
    mode = standard_modes(config)["approx_dynamic"]
    bits = command_bits(config, m=config.rows * 2 + 1, n=1, depth=33, precision=mode)
    view = command_layout(config).from_bits(bits)
    assert view.m_tiles_minus_one == 2 and view.n_tiles_minus_one == 0
    assert view.depth_minus_one == 32
    assert view.a.kept_minus_one == mode.a.kept - 1 and view.a.dynamic == 1
    assert view.b.blocks_minus_one == mode.b.blocks - 1


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 20), st.integers(0, 2**32))
def test_operand_beats_place_every_element(m, n, depth, seed):
    """Unpacking the beats by the documented order gives back A and B, zero-padded."""
    config = load_preset("default")
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, depth))
    b = rng.integers(-128, 128, (depth, n))
    a_beats, b_beats = pack_operands(config, a, b)
    words = -(-depth // lanes)
    m_tiles, n_tiles = -(-m // rows), -(-n // cols)
    assert len(a_beats) == m_tiles * words and len(b_beats) == n_tiles * words
    a_fields, b_fields = leaf_fields(a_beat_layout(config)), leaf_fields(b_beat_layout(config))
    rebuilt_a = np.zeros((m_tiles * rows, words * lanes), dtype=np.int64)
    for index, beat in enumerate(a_beats):
        tile, word = divmod(index, words)
        block = np.array(unpack_fields(a_fields, beat)).reshape(rows, lanes)
        rebuilt_a[tile * rows:(tile + 1) * rows, word * lanes:(word + 1) * lanes] = block
    rebuilt_b = np.zeros((words * lanes, n_tiles * cols), dtype=np.int64)
    for index, beat in enumerate(b_beats):
        tile, word = divmod(index, words)
        block = np.array(unpack_fields(b_fields, beat)).reshape(cols, lanes)
        rebuilt_b[word * lanes:(word + 1) * lanes, tile * cols:(tile + 1) * cols] = block.T
    assert np.array_equal(rebuilt_a[:m, :depth], a) and not rebuilt_a[m:].any()
    assert not rebuilt_a[:, depth:].any()
    assert np.array_equal(rebuilt_b[:depth, :n], b) and not rebuilt_b[:, n:].any()


def test_result_assembler_inverts_expected_beats(config):
    rng = np.random.default_rng(3)
    mode = standard_modes(config)["exact"]
    job = GemmJob.build(config, rng.integers(-128, 128, (config.rows + 3, 7)),
                        rng.integers(-128, 128, (7, config.cols * 2 - 1)), mode)
    fields = leaf_fields(result_layout(config))
    assembler = ResultAssembler(config, *job.expected.shape)
    beats = job.expected_beats()
    assert len(beats) == job.result_beats
    for values, last in beats:
        assembler.add(pack_fields(fields, values + [last]))
    assert np.array_equal(assembler.matrix(), job.expected)
    assert assembler.last_flags == [0] * (len(beats) - 1) + [1]


@pytest.mark.parametrize("m, n, depth, field", [(1025, 2, 4, "m = 1025"),
                                                (2, 1025, 4, "n = 1025"),
                                                (0, 2, 4, "m = 0"), (2, 2, 513, "depth = 513")])
def test_command_counts_out_of_range_are_refused(m, n, depth, field):
    """A tile count that does not fit the command field (tiny: 9 bits, 512 tiles of 2, so
    1025 is one tile too many) or a depth above max_reduction_depth is an error naming the
    count, never a wrapped command."""
    config = load_preset("tiny")
    with pytest.raises(ValueError, match=field):
        command_bits(config, m, n, depth, standard_modes(config)["exact"])
