"""The zero-skipping array's host-side models: :func:`~qforge.sim.model.numerics.zero_operands`,
:func:`~qforge.sim.model.cycles.row_cycles`, :func:`~qforge.sim.model.cycles.gemm_cycles` on
zero-skipping configurations (closed forms worked out by hand from the documented
pipeline), and :func:`~qforge.sim.host.packing.result_order` against
:class:`~qforge.sim.host.packing.ResultAssembler`.

The zero-skipping tile (documented in ``sim/model/cycles.py`` and ``hdl/skipping_scheduler.py``):
one A row times a column group of up to R column tiles; tiles go ``for row: for group``;
a row is a list of entries, one per word of P operands holding an operand to compute;
an entry with n of them takes ``ceil(n * q / P)`` cycles; a row without entries takes one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qforge.sim.model.spec import from_dict, load_preset
from qforge.hdl.layouts import result_layout
from qforge.sim.model.cycles import (CHECK_LATENCY, FEED_LATENCY, OUTPUT_LATENCY, PE_LATENCY, GemmShape,
                               gemm_cycles, row_cycles, skipping_shape, tile_cycles)
from qforge.sim.model.numerics import (OperandPrecision, Precision, Selection, vrq_pack,
                                 vrq_unpack, zero_operands)
from qforge.sim.host.packing import (GemmJob, ResultAssembler, leaf_fields, pack_fields,
                                result_order)


def _config(name, rows, cols, lanes, *, block_width=2, operand_width=8, depth=256,
            vrq=None, pe_buffer_depth=None):
    spec = {"name": name, "array": {"rows": rows, "cols": cols},
            "arithmetic": {"operand_width": operand_width, "block_width": block_width,
                           "block_multipliers": lanes, "max_reduction_depth": depth,
                           "output_width": min(8, operand_width)},
            "buffers": {"depth": 1024}}
    if vrq:
        spec["vrq"] = vrq
    config = from_dict(spec)
    return config.with_zero_skipping(pe_buffer_depth)


#: Zero-skipping configurations: the sparse preset, the tiny preset built as one, odd
#: shapes, P = 1 .. 8, and a VRQ configuration (N = 4, S = 2, G = 4).
CONFIGS = [
    load_preset("sparse"),
    load_preset("tiny").with_zero_skipping(),
    _config("odd", 3, 5, 2),
    _config("single", 1, 1, 1),
    _config("wide", 7, 2, 8),
    _config("p4_b3", 2, 3, 4, operand_width=6),
    _config("vrq", 2, 2, 4, vrq={"code_width": 4, "range_stride": 2, "ranges": 4}),
]
VRQ_CONFIG = CONFIGS[-1]
DENSE_CONFIGS = [load_preset("default"), load_preset("tiny")]


def _operand_strategy(config):
    """W-bit operands, half of them zero (and some of the corner values)."""
    low = -(1 << (config.operand_width - 1))
    return st.one_of(st.just(0), st.just(0), st.sampled_from([1, -1, low, -low - 1]),
                     st.integers(low, -low - 1))


@st.composite
def skipping_case(draw, configs=CONFIGS, max_m=20, max_depth=40):
    """A configuration, an A matrix with many zeros (some rows all zero) and a precision
    (integer A)."""
    config = draw(st.sampled_from(configs))
    m = draw(st.integers(1, max_m))
    depth = draw(st.integers(1, min(max_depth, config.max_reduction_depth)))
    a = draw(hnp.arrays(np.int64, (m, depth), elements=_operand_strategy(config)))
    for row in draw(st.lists(st.integers(0, m - 1), max_size=3)):
        a[row] = 0
    kept_a = draw(st.integers(1, config.blocks))
    kept_b = draw(st.integers(1, config.blocks))
    precision = Precision(
        OperandPrecision(draw(st.integers(kept_a, config.blocks)), kept_a,
                         draw(st.sampled_from(list(Selection)))),
        OperandPrecision(draw(st.integers(kept_b, config.blocks)), kept_b))
    return config, a, precision


def _padded_rows(config, m):
    return -(-m // config.rows) * config.rows


def _word_counts(config, row):
    """Per word of one (unpadded) A row: how many operands are not zero (plain loops)."""
    lanes = config.block_multipliers
    counts = []
    for start in range(0, len(row), lanes):
        counts.append(sum(1 for value in row[start:start + lanes] if value != 0))
    return counts


# ---- zero_operands ----------------------------------------------------------------------

@given(st.sampled_from(CONFIGS), st.data())
@settings(max_examples=60, deadline=None)
def test_zero_operands_integer_is_word_zero(config, data):
    """Integer operands: an operand is skipped exactly when it is 0 (whatever the
    precision mode keeps of the others)."""
    x = data.draw(hnp.arrays(np.int64, data.draw(st.integers(0, 30)),
                             elements=_operand_strategy(config)))
    blocks = data.draw(st.integers(1, config.blocks))
    precision = OperandPrecision(blocks, data.draw(st.integers(1, blocks)),
                                 data.draw(st.sampled_from(list(Selection))))
    assert zero_operands(x, config, precision).tolist() == [v == 0 for v in x.tolist()]


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 15), st.integers(0, 3)),
                min_size=1, max_size=20),
       st.integers(1, 2), st.sampled_from(list(Selection)))
@settings(max_examples=60, deadline=None)
def test_zero_operands_vrq_is_code_zero(elements, blocks, selection):
    """VRQ operands: a word is skipped exactly when its code is 0, whatever its sign and
    range bits; the same words read as integers are skipped only when the whole word is
    0."""
    sign, code, group = (np.array(column) for column in zip(*elements))
    words = vrq_pack(sign, code, group, VRQ_CONFIG)
    assert [tuple(map(int, e)) for e in zip(*vrq_unpack(words, VRQ_CONFIG))] == elements
    vrq = OperandPrecision(blocks, blocks, selection, vrq=True)
    assert zero_operands(words, VRQ_CONFIG, vrq).tolist() == [c == 0 for c in code.tolist()]
    integer = OperandPrecision(VRQ_CONFIG.blocks, 1)
    assert zero_operands(words, VRQ_CONFIG, integer).tolist() == \
        [s == 0 and c == 0 and g == 0 for s, c, g in elements]


# ---- row_cycles -------------------------------------------------------------------------

@given(skipping_case())
@settings(max_examples=150, deadline=None)
def test_row_cycles_dense_is_tile_cycles(case):
    """skip_zeros off: every padded row takes tile_cycles(depth, q, P), zeros or not."""
    config, a, precision = case
    q, lanes = precision.block_products, config.block_multipliers
    cycles = row_cycles(a, config, precision, False)
    assert cycles == (math.ceil(a.shape[1] * q / lanes),) * _padded_rows(config, a.shape[0])
    assert cycles[0] == tile_cycles(a.shape[1], q, lanes)


@given(skipping_case())
@settings(max_examples=200, deadline=None)
def test_row_cycles_skipping_is_the_sum_over_words(case):
    """skip_zeros on, computed independently with plain loops: each row takes the sum over
    its words of ceil(n * q / P) (n: non-zero operands of the word), at least 1; padded
    rows and all-zero rows take 1; it never exceeds the dense count, equals it for a row
    without zeros, and ceil(nnz * q / P) <= cycles <= ceil(nnz * q / P) + (words with
    work) - 1."""
    config, a, precision = case
    q, lanes = precision.block_products, config.block_multipliers
    m, depth = a.shape
    cycles = row_cycles(a, config, precision, True)
    dense = row_cycles(a, config, precision, False)
    assert len(cycles) == _padded_rows(config, m)
    for index, got in enumerate(cycles):
        row = a[index].tolist() if index < m else [0] * depth
        counts = _word_counts(config, row)
        want = sum(math.ceil(n * q / lanes) for n in counts)
        assert got == max(1, want), (index, row)
        assert got <= dense[index]
        nnz = sum(counts)
        if nnz == 0:
            assert got == 1
            continue
        if nnz == depth:
            assert got == dense[index]
        busy_words = sum(1 for n in counts if n)
        low = math.ceil(nnz * q / lanes)
        assert low <= got <= low + busy_words - 1


@given(skipping_case())
@settings(max_examples=150, deadline=None)
def test_row_cycles_exact_when_q_and_p_divide(case):
    """Closed forms: q a multiple of P gives exactly nnz * q / P (no lane ever idles);
    q dividing P gives sum over words of ceil(n / (P / q)); so q = 1 gives one cycle per
    word with work and q = P one cycle per non-zero operand."""
    config, a, precision = case
    q, lanes = precision.block_products, config.block_multipliers
    cycles = row_cycles(a, config, precision, True)
    for index in range(a.shape[0]):
        counts = _word_counts(config, a[index].tolist())
        nnz = sum(counts)
        if q % lanes == 0:
            assert cycles[index] == max(1, nnz * q // lanes)
        if lanes % q == 0:
            assert cycles[index] == max(1, sum(-(-n // (lanes // q)) for n in counts))
        if q == 1:
            assert cycles[index] == max(1, sum(1 for n in counts if n))
        if q == lanes:
            assert cycles[index] == max(1, nnz)


@given(skipping_case(), st.data())
@settings(max_examples=100, deadline=None)
def test_row_cycles_monotone_and_order_free_within_words(case, data):
    """Zeroing an operand never adds a cycle; permuting the operands inside a word, or
    whole words, changes nothing (an entry's cost depends only on its operand count)."""
    config, a, precision = case
    lanes = config.block_multipliers
    m, depth = a.shape
    before = row_cycles(a, config, precision, True)
    zeroed = a.copy()
    zeroed[data.draw(st.integers(0, m - 1)), data.draw(st.integers(0, depth - 1))] = 0
    after = row_cycles(zeroed, config, precision, True)
    assert all(x <= y for x, y in zip(after, before))
    words = -(-depth // lanes)
    padded = np.zeros((m, words * lanes), dtype=np.int64)
    padded[:, :depth] = a
    blocks = padded.reshape(m, words, lanes)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    within = rng.permuted(blocks, axis=2)            # each word's lanes, independently
    shuffled = np.stack([row[rng.permutation(words)] for row in within]).reshape(m, -1)
    assert row_cycles(padded, config, precision, True) == before
    assert row_cycles(shuffled, config, precision, True) == before


@given(st.data())
@settings(max_examples=80, deadline=None)
def test_row_cycles_vrq_skips_code_zero(data):
    """A VRQ A matrix takes the cycles of its code matrix read as integers: a word whose
    code is 0 is skipped whatever its sign and range bits."""
    config = VRQ_CONFIG
    m = data.draw(st.integers(1, 6))
    depth = data.draw(st.integers(1, 24))
    shape = (m, depth)
    code = data.draw(hnp.arrays(np.int64, shape, elements=st.sampled_from([0, 0, 1, 9, 15])))
    sign = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
    group = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 3)))
    kept_a = data.draw(st.integers(1, config.vrq_code_blocks))
    kept_b = data.draw(st.integers(1, config.blocks))
    b = OperandPrecision(config.blocks, kept_b)
    vrq = Precision(OperandPrecision(config.vrq_code_blocks, kept_a, vrq=True), b)
    integer = Precision(OperandPrecision(config.blocks, kept_a), b)
    words = vrq_pack(sign, code, group, config)
    assert row_cycles(words, config, vrq, True) == row_cycles(code, config, integer, True)


# ---- gemm_cycles ------------------------------------------------------------------------

#: Cycles from a tile's last issue to the capture on the broadcast array (no skew).
CAPTURE = FEED_LATENCY + PE_LATENCY


def _hand_total(config, m, n, depth, per_row):
    """One command on the zero-skipping array, worked out from the documented pipeline:

    take and check (CHECK_LATENCY) + start (1) + max(A, B) load beats + hand-off (1);
    tiles ``for row: for group``, the first tile's last cycle ``c_1`` cycles after the
    hand-off; tile t's last cycle is ``c_t`` cycles after tile t-1's, but no sooner than
    tile t-1's drain is free: its capture ``CAPTURE`` cycles after its last cycle, then
    its ``d_{t-1}`` rows go to the skid buffer ``S`` cycles apart, the drain free the
    cycle after the last, so the gap is ``max(c_t, CAPTURE + 2 + (d_{t-1} - 1) S)``;
    then the last tile's capture, its ``d_T`` rows taken by the output stage (``d_T S``
    cycles) and the output stage's ``OUTPUT_LATENCY``.
    """
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    beat = config.output_cycles_per_beat      # S: output-stage cycles per drained row
    words = -(-depth // lanes)
    m_tiles, n_tiles = -(-m // rows), -(-n // cols)
    groups = -(-n_tiles // rows)
    tiles = [(c, min(rows, n_tiles - g * rows)) for c in per_row for g in range(groups)]
    total = CHECK_LATENCY + 1 + max(m_tiles, n_tiles) * words + 1 + tiles[0][0]
    for (_, drained_before), (cycles, _) in zip(tiles, tiles[1:]):
        total += max(cycles, CAPTURE + 2 + (drained_before - 1) * beat)
    return total + CAPTURE + tiles[-1][1] * beat + OUTPUT_LATENCY


@given(st.sampled_from(CONFIGS), st.integers(1, 40), st.integers(1, 80), st.integers(1, 64),
       st.integers(1, 16))
@settings(max_examples=150, deadline=None)
def test_gemm_cycles_dense_single_command_closed_form(config, m, n, depth, q):
    """skip_zeros off (``row_cycles`` None, every tile ``c = tile_cycles``): with
    ``M_r = ceil(m / R) * R`` rows, ``G = ceil(n_tiles / R)`` groups and ``d = n_tiles -
    (G - 1) * R`` rows in a row's last group, the total is

    ``CHECK_LATENCY + 1 + L + 1 + c + M_r (G - 1) max(c, CAPTURE + 2 + (R - 1) S)
    + (M_r - 1) max(c, CAPTURE + 2 + (d - 1) S) + CAPTURE + d S + OUTPUT_LATENCY``

    (L = max(m_tiles, n_tiles) * words load beats, S the output stage's cycles per
    drained row), the same as passing every row's tile_cycles explicitly."""
    depth = min(depth, config.max_reduction_depth)
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    words = -(-depth // lanes)
    n = min(n, config.pe_buffer_depth // words * rows * cols)    # B fits the PE banks
    m_tiles, n_tiles = -(-m // rows), -(-n // cols)
    groups = -(-n_tiles // rows)
    assert groups * words <= config.pe_buffer_depth
    padded_rows = m_tiles * rows
    c = tile_cycles(depth, q, lanes)
    d = n_tiles - (groups - 1) * rows
    beat = config.output_cycles_per_beat
    expected = (CHECK_LATENCY + 1 + max(m_tiles, n_tiles) * words + 1 + c
                + padded_rows * (groups - 1) * max(c, CAPTURE + 2 + (rows - 1) * beat)
                + (padded_rows - 1) * max(c, CAPTURE + 2 + (d - 1) * beat)
                + CAPTURE + d * beat + OUTPUT_LATENCY)
    assert gemm_cycles(config, [GemmShape(m, n, depth, q)]).total == expected
    explicit = GemmShape(m, n, depth, q, (c,) * padded_rows)
    assert gemm_cycles(config, [explicit]).total == expected
    assert _hand_total(config, m, n, depth, (c,) * padded_rows) == expected


@given(skipping_case(max_m=24, max_depth=48), st.integers(1, 60))
@settings(max_examples=150, deadline=None)
def test_gemm_cycles_skipping_single_command_closed_form(case, n):
    """skip_zeros on: gemm_cycles of :func:`skipping_shape` equals the hand-worked sum
    (``_hand_total``) over the rows' own cycle counts, is never more than the same GEMM
    without skipping, and is no less than loading plus the tiles' compute cycles plus the
    last tile's capture, drain and output stage."""
    config, a, precision = case
    m, depth = a.shape
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    words = -(-depth // lanes)
    n = min(n, config.pe_buffer_depth // words * rows * cols)    # B fits the PE banks
    n_tiles = -(-n // cols)
    groups = -(-n_tiles // rows)
    assert groups * words <= config.pe_buffer_depth
    shape = skipping_shape(config, a, n, precision, True)
    assert (shape.m, shape.n, shape.depth, shape.block_products) == \
        (m, n, depth, precision.block_products)
    per_row = row_cycles(a, config, precision, True)
    assert shape.row_cycles == per_row
    total = gemm_cycles(config, [shape]).total
    assert total == _hand_total(config, m, n, depth, per_row)
    dense = gemm_cycles(config, [skipping_shape(config, a, n, precision, False)]).total
    assert total <= dense
    load = CHECK_LATENCY + 1 + max(-(-m // rows), n_tiles) * words + 1
    last_rows = n_tiles - (groups - 1) * rows
    assert total >= load + groups * sum(per_row) + CAPTURE \
        + last_rows * config.output_cycles_per_beat + OUTPUT_LATENCY


def test_gemm_cycles_skipping_worked_example():
    """A worked example on the sparse preset (R = C = 8, P = 4; CAPTURE = 5): A 3 x 8
    (one row tile, 8 padded rows), n = 72 (9 column tiles: groups of 8 and 1), exact
    mode q = 16. Row 0 has 2 non-zero operands in word 0 and 1 in word 1: 8 + 4 = 12
    cycles; rows 1 .. 7 are all zero: 1 cycle each.

    Load: take and check 2 + start 1 + max(1, 9) * 2 + 1 = 22 (the first tile's last
    cycle is 12 later). Row 0:
    group 0 (12 cycles, 8 rows drained), group 1 waits for group 0's drain: gap
    max(12, 5 + 1 + 8) = 14, 1 row drained. Then 7 rows x 2 groups of 1-cycle tiles:
    after a 1-row group the gap is max(1, 5 + 1 + 1) = 7, after an 8-row group
    max(1, 14) = 14; the 14 tiles after row 0's give 7 gaps of 7 and 7 of 14.
    Total: 22 + 12 + 14 + 7 * 7 + 7 * 14 + 5 + 1 + 6 = 207."""
    config = load_preset("sparse")
    exact = Precision(OperandPrecision(4, 4), OperandPrecision(4, 4))
    a = np.zeros((3, 8), dtype=np.int64)
    a[0, [0, 1, 5]] = 7
    shape = skipping_shape(config, a, 72, exact, True)
    assert shape.row_cycles == (12,) + (1,) * 7
    assert gemm_cycles(config, [shape]).total == 207


def test_gemm_cycles_rejects_wrong_row_count():
    """row_cycles must have one entry per padded A row."""
    config = load_preset("sparse")
    with pytest.raises(ValueError, match="row_cycles has 3 entries"):
        gemm_cycles(config, [GemmShape(3, 8, 8, 1, (1, 1, 1))])


# ---- result order -----------------------------------------------------------------------

@given(st.sampled_from(CONFIGS + DENSE_CONFIGS), st.integers(1, 20), st.integers(1, 40),
       st.data())
@settings(max_examples=100, deadline=None)
def test_result_order_round_trips_through_the_assembler(config, m, n, data):
    """The beats of result_order, packed as result beats (``last`` on the final one) and
    fed to ResultAssembler, give back the M x N result. On the zero-skipping array the
    beat order is the drain's: for each padded row, for each group g, PE rows 0 .. d-1,
    row r holding column tile g * R + r."""
    rows, cols = config.rows, config.cols
    m_tiles, n_tiles = -(-m // rows), -(-n // cols)
    bound = 1 << (config.accumulator_width - 1)
    padded = np.zeros((m_tiles * rows, n_tiles * cols), dtype=np.int64)
    padded[:m, :n] = data.draw(hnp.arrays(np.int64, (m, n), elements=st.one_of(
        st.integers(-bound, bound - 1), st.sampled_from([-bound, bound - 1, 0]))))
    beats = result_order(config, padded).tolist()
    assert len(beats) == m_tiles * n_tiles * rows
    if config.zero_skipping:
        groups = -(-n_tiles // rows)
        drained = [padded[row, (g * rows + r) * cols:(g * rows + r + 1) * cols].tolist()
                   for row in range(m_tiles * rows) for g in range(groups)
                   for r in range(min(rows, n_tiles - g * rows))]
    else:
        drained = [padded[mt * rows + r, nt * cols:(nt + 1) * cols].tolist()
                   for mt in range(m_tiles) for nt in range(n_tiles) for r in range(rows)]
    assert beats == drained
    fields = leaf_fields(result_layout(config))
    assembler = ResultAssembler(config, m, n)
    for index, row in enumerate(beats):
        got, last = assembler.add(pack_fields(fields, row + [int(index == len(beats) - 1)]))
        assert got == row
    assert assembler.last_flags == [0] * (len(beats) - 1) + [1]
    assert np.array_equal(assembler.matrix(), padded[:m, :n])


@given(st.sampled_from(CONFIGS[:3]), st.integers(1, 12), st.integers(1, 20),
       st.integers(1, 20), st.booleans(), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_gemm_job_expected_beats_assemble_to_the_golden_result(config, m, n, depth, skip,
                                                               seed):
    """GemmJob on a zero-skipping configuration: its expected beats (row-major, one per
    output row and column tile) assemble to its expected matrix, whatever skip_zeros
    says (skipping never changes a result), with ``last`` only on the final beat."""
    depth = min(depth, config.max_reduction_depth)
    rng = np.random.default_rng(seed)
    mode = Precision(OperandPrecision(config.blocks, config.blocks),
                     OperandPrecision(config.blocks, 1, Selection.DYNAMIC))
    low = -(1 << (config.operand_width - 1))
    a = rng.integers(low, -low, (m, depth)) * (rng.random((m, depth)) < 0.5)
    b = rng.integers(low, -low, (depth, n))
    job = GemmJob.build(config, a, b, mode, skip_zeros=skip)
    beats = job.expected_beats()
    assert len(beats) == job.result_beats
    assembler = ResultAssembler(config, m, n)
    fields = leaf_fields(result_layout(config))
    for values, last in beats:
        assembler.add(pack_fields(fields, list(values) + [last]))
    assert assembler.last_flags == [0] * (len(beats) - 1) + [1]
    assert np.array_equal(assembler.matrix(), job.expected)
    if skip:
        dense = GemmJob.build(config, a, b, mode, skip_zeros=False)
        assert np.array_equal(dense.expected, job.expected)
        assert dense.command != job.command
