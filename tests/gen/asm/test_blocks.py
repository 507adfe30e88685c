"""The high-level blocks (qforge.gen.asm.blocks): chunk limits and, on a numpy reference of
the data mover, their results."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qforge.gen.asm import (BlockError, chunk_sizes, disassemble, gemm_fits,
                            linear_backward_words, linear_forward_words, matmul_words,
                            sgd_update_words)
from qforge.sim.model.machine import Machine, instruction_error
from qforge.sim.model.isa import Opcode, Operand, decode, encode
from tests.gen.asm.shared import CONFIGS, DEFAULT, SMALL, SMALL_SKIPPING, TINY


def fits(config, m, n, k):
    """The GEMM size rules of docs/ISA.md, written out again."""
    rows, cols, width = config.rows, config.cols, config.block_multipliers
    tiles = 1 << config.tiles_field_width
    words = -(-k // width)
    ok = (1 <= m <= tiles * rows and 1 <= n <= tiles * cols
          and 1 <= k <= config.max_reduction_depth
          and -(-m // rows) * words <= config.buffer_depth)
    if config.zero_skipping:
        return ok and -(-(-(-n // cols)) // rows) * words <= config.pe_buffer_depth
    return ok and -(-n // cols) * words <= config.buffer_depth


def gemms(words):
    return [fields for opcode, fields in map(decode, words) if opcode == Opcode.GEMM]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(m=st.integers(1, 100_000), n=st.integers(1, 100_000), k=st.integers(1, 10_000))
def test_chunk_sizes_fit_and_are_greedy(config, m, n, k):
    mc, nc, kc = chunk_sizes(config, m, n, k)
    width = config.block_multipliers
    # every GEMM of the tiling (whole chunks and the remainders) fits
    for mm in {mc, m % mc or mc}:
        for nn in {nc, n % nc or nc}:
            for kk in {kc, k % kc or kc}:
                assert fits(config, mm, nn, kk) and gemm_fits(config, mm, nn, kk)
    # k whole when one GEMM takes it, else the most whole P-words that fit
    if fits(config, 1, 1, k):
        assert kc == k
    else:
        assert kc % width == 0 and not fits(config, 1, 1, kc + width)
    # then the largest m and n chunks
    assert mc == m or not fits(config, mc + 1, 1, kc)
    assert nc == n or not fits(config, 1, nc + 1, kc)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
@settings(max_examples=15, deadline=None, database=None, derandomize=True)
@given(m=st.integers(1, 24), n=st.integers(1, 24), k=st.integers(1, 600))
def test_matmul_words_tile_the_product(config, m, n, k):
    words = matmul_words(config, a=0, b=0, c=0, m=m, n=n, k=k)
    for word in words:
        assert instruction_error(config, word) is None, disassemble(word)
    parts = gemms(words)
    mc, nc, kc = chunk_sizes(config, m, n, k)
    counts = (-(-m // mc), -(-n // nc), -(-k // kc))
    assert len(parts) == counts[0] * counts[1] * counts[2]
    assert sum(p["m"] * p["n"] * p["k"] for p in parts) == m * n * k
    # the first k chunk of each C block is a plain GEMM, the later ones accumulate
    assert all(p["add"] == (index % counts[2] != 0)
               and p["saturate_bits"] == (config.accumulator_width if p["add"] else 0)
               for index, p in enumerate(parts))


def test_chunk_sizes_on_the_presets():
    assert chunk_sizes(TINY, 5, 3, 700) == (2, 2, 512)
    assert chunk_sizes(TINY, 64, 64, 64) == (16, 16, 64)
    assert chunk_sizes(DEFAULT, 64, 64, 64) == (64, 64, 64)
    assert chunk_sizes(DEFAULT, 1000, 1000, 2048) == (8, 8, 2048)
    assert chunk_sizes(DEFAULT, 1000, 1000, 3000) == (8, 8, 2048)
    assert chunk_sizes(DEFAULT, 1000, 1000, 256) == (64, 64, 256)
    assert chunk_sizes(SMALL, 9, 9, 40) == (2, 3, 12)


# ---- blocks: semantics on a numpy data mover ---------------------------------------------

def execute(words, memory):
    """A reference of docs/ISA.md's memory side and integer GEMM: descriptors, raw
    accumulators (or ``quantize`` with ``shift = 0``, which is the identity),
    ``add`` with saturation. No precision modes: exact integer math."""
    loads = {operand: (0, 0, 0) for operand in Operand}
    store = (0, 0, 0)
    output = {"quantize": 0}

    def indices(descriptor, rows, cols):
        address, stride, transpose = descriptor
        i, j = np.indices((rows, cols))
        if transpose:
            i, j = j, i
        return address + i * stride + j

    for word in words:
        opcode, fields = decode(word)
        if opcode == Opcode.LOAD:
            loads[Operand(fields["operand"])] = (fields["address"], fields["stride"],
                                                  fields["transpose"])
        elif opcode == Opcode.STORE:
            store = (fields["address"], fields["stride"], fields["transpose"])
        elif opcode == Opcode.OUTPUT:
            output = fields
        elif opcode == Opcode.GEMM:
            m, n, k = fields["m"], fields["n"], fields["k"]
            a = memory[indices(loads[Operand.A], m, k)]
            b = memory[indices(loads[Operand.B], k, n)]
            value = a @ b
            if output["quantize"]:
                assert output["shift"] == 0 and output["wide"]
            if fields["add"]:
                bits = fields["saturate_bits"]
                value = np.clip(memory[indices(loads[Operand.ADDEND], m, n)] + value,
                                -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            memory[indices(store, m, n)] = value
    return memory


def run_matmul(config, rng, m, n, k, *, transpose_a=False, transpose_b=False, pad=0):
    """Lay out A, B and C with row padding ``pad`` and random bytes around, run the
    matmul block and return (memory before, memory after, expected C, C's indices)."""
    a_rows, a_cols = (k, m) if transpose_a else (m, k)
    b_rows, b_cols = (n, k) if transpose_b else (k, n)
    a_stride, b_stride, c_stride = a_cols + pad, b_cols + pad, n + pad
    a_at, b_at = 3, 3 + a_rows * a_stride + 5
    c_at = b_at + b_rows * b_stride + 7
    memory = rng.integers(-128, 128, size=c_at + m * c_stride + 11).astype(np.int64)
    stored_a = memory[a_at + np.arange(a_rows)[:, None] * a_stride + np.arange(a_cols)]
    stored_b = memory[b_at + np.arange(b_rows)[:, None] * b_stride + np.arange(b_cols)]
    a = stored_a.T if transpose_a else stored_a
    b = stored_b.T if transpose_b else stored_b
    words = matmul_words(config, a=a_at, b=b_at, c=c_at, m=m, n=n, k=k,
                         a_stride=a_stride, b_stride=b_stride, c_stride=c_stride,
                         transpose_a=transpose_a, transpose_b=transpose_b)
    c_indices = c_at + np.arange(m)[:, None] * c_stride + np.arange(n)
    before = memory.copy()
    return before, execute(words, memory), a @ b, c_indices


@pytest.mark.parametrize("config, m, n, k", [
    (TINY, 5, 3, 700),        # k split 512 + 188, m and n in tiles of 2
    (TINY, 9, 7, 16),
    (DEFAULT, 20, 17, 40),
    (SMALL, 7, 8, 40),        # k in 4 chunks of up to 12
    (SMALL_SKIPPING, 5, 13, 25),
])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False),
                                                      (False, True), (True, True)])
def test_matmul_computes_the_product(config, m, n, k, transpose_a, transpose_b):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    for pad in (0, 3):
        before, after, expected, c_indices = run_matmul(
            config, rng, m, n, k, transpose_a=transpose_a, transpose_b=transpose_b, pad=pad)
        assert np.array_equal(after[c_indices], expected)
        untouched = np.ones(len(before), bool)
        untouched[c_indices.ravel()] = False
        assert np.array_equal(after[untouched], before[untouched])


def test_matmul_on_the_golden_machine():
    """The same k-split, transposed product on qforge.sim.model.machine.Machine (exact mode)."""
    rng = np.random.default_rng(3)
    before, after, expected, c_indices = run_matmul(TINY, rng, 5, 3, 700, transpose_a=True,
                                                    pad=2)
    words = matmul_words(TINY, a=3, b=3 + 700 * 7 + 5, c=int(c_indices[0, 0]), m=5, n=3,
                         k=700, a_stride=7, b_stride=5, c_stride=5, transpose_a=True)
    machine = Machine(TINY, memory=before.copy())
    machine.run(words)
    assert not machine.error
    assert np.array_equal(machine.memory, after)
    assert np.array_equal(machine.memory[c_indices], expected)


def test_matmul_skip_zeros_on_a_zero_skipping_array():
    words = matmul_words(SMALL_SKIPPING, a=0, b=0, c=0, m=5, n=13, k=25, skip_zeros=True)
    assert all(part["skip_zeros"] for part in gemms(words))


def layer(config, rng, batch, inputs, outputs):
    x_at, w_at = 0, batch * inputs
    dy_at = w_at + inputs * outputs
    out_at = dy_at + batch * outputs
    memory = rng.integers(-128, 128, size=out_at + 2 * batch * inputs + inputs * outputs)
    memory = memory.astype(np.int64)
    x = memory[x_at:w_at].reshape(batch, inputs).copy()
    w = memory[w_at:dy_at].reshape(inputs, outputs).copy()
    dy = memory[dy_at:out_at].reshape(batch, outputs).copy()
    return memory, (x_at, w_at, dy_at, out_at), (x, w, dy)


@pytest.mark.parametrize("config", [TINY, SMALL, SMALL_SKIPPING], ids=lambda c: c.name)
def test_linear_forward_and_backward(config):
    rng = np.random.default_rng(5)
    batch, inputs, outputs = 6, 11, 7
    memory, (x_at, w_at, dy_at, out_at), (x, w, dy) = layer(config, rng, batch, inputs,
                                                            outputs)
    y_at = out_at
    words = linear_forward_words(config, x=x_at, w=w_at, y=y_at, batch=batch, inputs=inputs,
                                 outputs=outputs)
    after = execute(words, memory.copy())
    assert np.array_equal(after[y_at:y_at + batch * outputs].reshape(batch, outputs), x @ w)

    dx_at, dw_at = out_at, out_at + batch * inputs
    for with_dx in (True, False):
        words = linear_backward_words(config, x=x_at, w=w_at, dy=dy_at, dw=dw_at,
                                      dx=dx_at if with_dx else None, batch=batch,
                                      inputs=inputs, outputs=outputs)
        after = execute(words, memory.copy())
        dw = after[dw_at:dw_at + inputs * outputs].reshape(inputs, outputs)
        assert np.array_equal(dw, x.T @ dy)
        dx = after[dx_at:dx_at + batch * inputs].reshape(batch, inputs)
        assert np.array_equal(dx, dy @ w.T) == with_dx


@pytest.mark.parametrize("config", [TINY, SMALL], ids=lambda c: c.name)
def test_sgd_update(config):
    """With shift 0 the rounding is exact: W <- clamp(W + x^T @ dy, weight_bits)."""
    rng = np.random.default_rng(9)
    batch, inputs, outputs, bits = 12, 9, 8, 12
    memory, (x_at, w_at, dy_at, _), (x, w, dy) = layer(config, rng, batch, inputs, outputs)
    words = sgd_update_words(config, w=w_at, x=x_at, dy=dy_at, batch=batch, inputs=inputs,
                             outputs=outputs, shift=0, weight_bits=bits, seed=77, tensor=4)
    assert words[:2] == [encode(Opcode.SEED, seed=77, tensor=4),
                         encode(Opcode.OUTPUT, quantize=1, wide=1, rounding=2, shift=0)]
    parts = gemms(words)
    assert (len(parts) > 1) == (config is SMALL)
    assert all(p["add"] and p["saturate_bits"] == bits and p["k"] == batch for p in parts)
    after = execute(words, memory.copy())
    expected = np.clip(w + x.T @ dy, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    assert (expected != w + x.T @ dy).any()          # some weights saturate
    assert np.array_equal(after[w_at:dy_at].reshape(inputs, outputs), expected)


def test_block_functions_raise_block_errors():
    with pytest.raises(BlockError) as info:
        sgd_update_words(SMALL, w=0, x=0, dy=0, batch=13, inputs=2, outputs=2, shift=1,
                         weight_bits=8, seed=1)
    assert info.value.operand == "batch"
    with pytest.raises(BlockError) as info:
        linear_backward_words(TINY, x=-3, w=0, dy=0, dw=0, batch=1, inputs=1, outputs=1)
    assert info.value.operand == "x" and str(info.value).startswith("x = -3")
    with pytest.raises(BlockError, match="needs a hardware configuration"):
        matmul_words(None, a=0, b=0, c=0, m=1, n=1, k=1)
