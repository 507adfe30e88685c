"""The convolution blocks (qforge.gen.asm.conv): their words run on the golden machine
(and once on the Verilog) against a plain numpy convolution written here, exactly;
their GEMM counts; every argument error."""

import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qforge.gen.asm import (BLOCKS, BlockError, assemble, conv2d_backward_words,
                            conv2d_forward_words, conv2d_gemms, conv2d_input_gradient_words,
                            disassemble)
from qforge.sim.model.cycles import program_cycles
from qforge.sim.model.isa import Opcode, decode
from qforge.sim.model.machine import instruction_error
from qforge.sim.runtime import Runtime
from tests.gen.asm.shared import DEFAULT, TINY, check_error

SIZE_NAMES = ("batch", "height", "width", "in_channels", "out_channels")


# ---------------------------------------------------------------- the reference
def reference(x, w, dy, stride, padding):
    """``(x_padded, y, dw, dx_padded)`` of a convolution, straight from the definition
    ``y[n, oy, ox, o] = sum_{i, j, c} x_padded[n, oy * s + i, ox * s + j, c] *
    w[i, j, c, o]``: one window at a time, in Python loops (x ``(N, H, W, C)``, w
    ``(kh, kw, C, O)``, dy shaped like y)."""
    batch, height, width, _ = x.shape
    kernel_h, kernel_w, _, _ = w.shape
    s, p = stride, padding
    x_padded = np.zeros((batch, height + 2 * p, width + 2 * p, x.shape[3]), np.int64)
    x_padded[:, p:p + height, p:p + width, :] = x
    out_h = (height + 2 * p - kernel_h) // s + 1
    out_w = (width + 2 * p - kernel_w) // s + 1
    y = np.zeros((batch, out_h, out_w, w.shape[3]), np.int64)
    dw = np.zeros(w.shape, np.int64)
    dx_padded = np.zeros(x_padded.shape, np.int64)
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                window = x_padded[n, oy * s:oy * s + kernel_h, ox * s:ox * s + kernel_w]
                for o in range(w.shape[3]):
                    y[n, oy, ox, o] = np.sum(window * w[..., o])
                    dw[..., o] += window * dy[n, oy, ox, o]
                    dx_padded[n, oy * s:oy * s + kernel_h, ox * s:ox * s + kernel_w] += \
                        w[..., o] * dy[n, oy, ox, o]
    return x_padded, y, dw, dx_padded


def run_conv(config, rng, batch, height, width, in_channels, out_channels, kernel_h,
             kernel_w, stride, padding, low=-20, high=20, kernel_operands=None):
    """Run both blocks on a golden runtime with random operands; return what they
    wrote and the reference's values."""
    x = rng.integers(low, high + 1, (batch, height, width, in_channels))
    w = rng.integers(low, high + 1, (kernel_h, kernel_w, in_channels, out_channels))
    out_h = (height + 2 * padding - kernel_h) // stride + 1
    out_w = (width + 2 * padding - kernel_w) // stride + 1
    dy = rng.integers(low, high + 1, (batch, out_h, out_w, out_channels))
    x_padded, y, dw, dx_padded = reference(x, w, dy, stride, padding)
    addresses, end = {}, 0
    for name, array in (("x", x_padded), ("w", w), ("y", y), ("dy", dy), ("dw", dw),
                        ("dx", dx_padded)):
        addresses[name], end = end, end + array.size
    kernel = kernel_operands or {"kernel_h": kernel_h, "kernel_w": kernel_w}
    sizes = dict(batch=batch, height=height, width=width, in_channels=in_channels,
                 out_channels=out_channels, stride=stride, padding=padding, **kernel)
    runtime = Runtime(config, "golden", memory_size=end + 7)
    runtime.write(addresses["x"], x_padded.ravel())
    runtime.write(addresses["w"], w.ravel())
    runtime.write(addresses["dy"], dy.ravel())
    runtime.write(addresses["y"], np.full(y.size, 12345))     # overwritten, not added to
    runtime.write(addresses["dw"], np.full(dw.size, -999))
    forward = conv2d_forward_words(config, x=addresses["x"], w=addresses["w"],
                                   y=addresses["y"], **sizes)
    backward = conv2d_backward_words(config, x=addresses["x"], w=addresses["w"],
                                     dy=addresses["dy"], dw=addresses["dw"],
                                     dx=addresses["dx"], **sizes)
    for words in (forward, backward):
        for word in words:
            assert instruction_error(config, word) is None, disassemble(word)
        report = runtime.run(words)
        assert not report.error
    got = {name: runtime.read(addresses[name], array.shape)
           for name, array in (("y", y), ("dw", dw), ("dx", dx_padded))}
    # nothing written past the last buffer
    assert not runtime.read(end, (7,)).any()
    return got, {"y": y, "dw": dw, "dx": dx_padded}, forward, backward, sizes


def gemm_count(words):
    return sum(decode(word)[0] == Opcode.GEMM for word in words)


CASES = [
    # config, batch, height, width, in, out, kernel_h, kernel_w, stride, padding
    (TINY, 2, 5, 7, 3, 5, 3, 3, 1, 1),       # channels > the 2x2 array, padding 1
    (TINY, 1, 6, 5, 4, 3, 1, 1, 2, 0),       # 1x1, stride 2
    (TINY, 2, 7, 6, 3, 2, 3, 3, 2, 1),       # stride 2 with padding
    (TINY, 1, 4, 6, 3, 3, 2, 2, 2, 0),       # stride >= kernel: one dx GEMM per kernel row
    (TINY, 1, 5, 4, 2, 3, 3, 2, 1, 0),       # a non-square kernel
    (TINY, 1, 3, 4, 200, 3, 3, 3, 1, 1),     # k = 600 > max_reduction_depth: k split
    (DEFAULT, 2, 8, 8, 1, 8, 3, 3, 1, 1),    # a digits CNN's first layer
    (DEFAULT, 2, 8, 6, 10, 12, 3, 3, 1, 1),  # channels > the 8x8 array
    (DEFAULT, 1, 9, 7, 9, 10, 3, 3, 2, 1),
    (DEFAULT, 3, 6, 5, 10, 9, 1, 1, 1, 0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0].name}-" + "x".join(
    map(str, case[1:])))
def test_conv_blocks_equal_a_direct_convolution(case):
    config, *sizes = case
    low, high = (-8, 7) if sizes[3] > 100 else (-20, 20)   # the k split: no saturation
    got, expected, forward, backward, shape = run_conv(config, np.random.default_rng(
        sum(sizes)), *sizes, low=low, high=high)
    for name in ("y", "dw", "dx"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    counts = conv2d_gemms(config, **shape)
    assert gemm_count(forward) == counts["forward"]
    assert gemm_count(backward) == counts["weight_gradient"] + counts["input_gradient"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0].name}-" + "x".join(
    map(str, case[1:])))
def test_the_input_gradient_block_alone_equals_a_direct_convolution(case):
    """conv2d_input_gradient adds the reference's dx into a zeroed padded buffer, writes
    nothing else (w, dy and the guard past dx unchanged) and has the input-gradient
    GEMMs of conv2d_gemms, every one adding."""
    config, batch, height, width, in_channels, out_channels, kernel_h, kernel_w, stride, \
        padding = case
    rng = np.random.default_rng(sum(case[1:]) + 1)
    low, high = (-8, 7) if in_channels > 100 else (-20, 20)
    x = np.zeros((batch, height, width, in_channels), np.int64)
    w = rng.integers(low, high + 1, (kernel_h, kernel_w, in_channels, out_channels))
    out_h = (height + 2 * padding - kernel_h) // stride + 1
    out_w = (width + 2 * padding - kernel_w) // stride + 1
    dy = rng.integers(low, high + 1, (batch, out_h, out_w, out_channels))
    _, _, _, dx = reference(x, w, dy, stride, padding)
    memory = np.concatenate([w.ravel(), dy.ravel(), np.zeros(dx.size + 5, np.int64)])
    sizes = dict(batch=batch, height=height, width=width, in_channels=in_channels,
                 out_channels=out_channels, kernel_h=kernel_h, kernel_w=kernel_w,
                 stride=stride, padding=padding)
    words = conv2d_input_gradient_words(config, w=0, dy=w.size, dx=w.size + dy.size,
                                        **sizes)
    runtime = Runtime(config, "golden", memory_size=memory.size)
    runtime.write(0, memory)
    assert not runtime.run(words).error
    got = runtime.memory
    np.testing.assert_array_equal(got[:w.size + dy.size], memory[:w.size + dy.size])
    np.testing.assert_array_equal(got[w.size + dy.size:-5], dx.ravel())
    assert not got[-5:].any()
    fields = [fields for opcode, fields in map(decode, words) if opcode == Opcode.GEMM]
    assert len(fields) == conv2d_gemms(config, **sizes)["input_gradient"]
    assert all(f["add"] for f in fields)


def test_the_input_gradient_block_in_assembly_text_and_its_errors():
    """The ``conv2d_input_gradient`` statement expands to the Python function's words;
    a missing dx and a dx past the address field are errors at the statement and the
    operand."""
    sizes = "batch=1, height=4, width=4, in_channels=1, out_channels=2, kernel=3, padding=1"
    program = assemble(f"output\nconv2d_input_gradient w=36, dy=86, dx=136, {sizes}",
                       DEFAULT)
    expected = conv2d_input_gradient_words(DEFAULT, w=36, dy=86, dx=136, batch=1,
                                           height=4, width=4, in_channels=1,
                                           out_channels=2, kernel=3, padding=1)
    assert list(program.words[1:]) == expected
    # docs/ISA.md's worked example: 36 GEMMs gemm 4, 1, 2, add
    gemms = [disassemble(word) for word in expected if decode(word)[0] == Opcode.GEMM]
    assert gemms == ["gemm 4, 1, 2, add, saturate_bits=27"] * 36
    source = f"conv2d_input_gradient w=0, dy=0, {sizes}"
    with pytest.raises(ValueError) as caught:
        assemble(source, DEFAULT)
    check_error(caught.value, source, 1, 1, "conv2d_input_gradient: missing operand dx")
    source = f"conv2d_input_gradient w=0, dy=0, dx=16777200, {sizes}"
    # the last dx GEMM: kernel offset (2, 2), output row 3: padded pixel (3 + 2, 2) of
    # the 6x6 buffer, (5 * 6 + 2) * 1 = 32 elements after dx
    with pytest.raises(ValueError) as caught:
        assemble(source, DEFAULT)
    check_error(caught.value, source, 1, source.index("dx=") + len("dx=") + 1,
                "conv2d_input_gradient: dx: the sub-matrix at (0, 0) starts at element "
                "address 16777232, beyond the 24-bit address field (0 .. 16777215)")


def test_a_square_kernel_operand_and_full_operand_range():
    """``kernel=3`` is ``kernel_h = kernel_w = 3``; 8-bit operands at their extremes."""
    got, expected, *_ = run_conv(TINY, np.random.default_rng(5), 2, 4, 5, 3, 3, 3, 3, 1,
                                 1, low=-128, high=127, kernel_operands={"kernel": 3})
    for name in ("y", "dw", "dx"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@settings(max_examples=20, deadline=None, database=None, derandomize=True)
@given(batch=st.integers(1, 2), height=st.integers(1, 6), width=st.integers(1, 6),
       in_channels=st.integers(1, 5), out_channels=st.integers(1, 5),
       kernel_h=st.integers(1, 3), kernel_w=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_random_small_convolutions(batch, height, width, in_channels, out_channels,
                                   kernel_h, kernel_w, stride, padding, seed):
    kernel_h = min(kernel_h, height + 2 * padding)
    kernel_w = min(kernel_w, width + 2 * padding)
    got, expected, *_ = run_conv(TINY, np.random.default_rng(seed), batch, height, width,
                                 in_channels, out_channels, kernel_h, kernel_w, stride,
                                 padding)
    for name in ("y", "dw", "dx"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_gemm_counts_of_the_worked_example():
    """docs/ISA.md's example (one 4x4x1 image, 3x3 kernel, padding 1, two output
    channels): 3 kernel rows x 4 output rows GEMMs forward and for dw, 9 kernel
    offsets x 4 rows for dx; each GEMM's m, n, k."""
    sizes = dict(batch=1, height=4, width=4, in_channels=1, out_channels=2, kernel=3,
                 padding=1)
    assert conv2d_gemms(DEFAULT, **sizes) == {"forward": 12, "weight_gradient": 12,
                                              "input_gradient": 36}
    forward = conv2d_forward_words(DEFAULT, x=0, w=36, y=54, **sizes)
    backward = conv2d_backward_words(DEFAULT, x=0, w=36, dy=86, dw=118, dx=136, **sizes)
    fields = [fields for opcode, fields in map(decode, forward + backward)
              if opcode == Opcode.GEMM]
    assert [(f["m"], f["n"], f["k"]) for f in fields] == \
        [(4, 2, 3)] * 12 + [(3, 2, 4)] * 12 + [(4, 1, 2)] * 36
    assert [f["add"] for f in fields] == [0] * 4 + [1] * 8 + [0] * 3 + [1] * 9 + [1] * 36
    text = "\n".join(map(disassemble, forward[:9]))
    assert text == ("load a, 0, stride=1\nload b, 36, stride=2\nstore 54, stride=2\n"
                    "gemm 4, 2, 3\nload a, 6, stride=1\nstore 62, stride=2\ngemm 4, 2, 3\n"
                    "load a, 12, stride=1\nstore 70, stride=2")


def test_no_descriptor_is_set_twice_to_the_same_value():
    words = conv2d_forward_words(TINY, x=0, w=1000, y=2000, batch=2, height=6, width=6,
                                 in_channels=3, out_channels=4, kernel=3, padding=1)
    current = {}
    for opcode, fields in map(decode, words):
        if opcode in (Opcode.LOAD, Opcode.STORE):
            key = (opcode, fields.get("operand"))
            value = (fields["address"], fields["stride"], fields["transpose"])
            assert current.get(key) != value
            current[key] = value


def test_the_blocks_in_assembly_text():
    text = """
        .const N = 2
        output
        conv2d_forward x=x, w=w, y=y, batch=N, height=5, width=4, in_channels=3, out_channels=2, kernel_h=3, kernel_w=2, padding=1, stride=2
        conv2d_backward x=x, w=w, dy=y, dw=dw, dx=dx, batch=N, height=5, width=4, in_channels=3, out_channels=2, kernel_h=3, kernel_w=2, padding=1, stride=2
        .data
        x: .zero N * 7 * 6 * 3
        w: .zero 3 * 2 * 3 * 2
        y: .zero N * 3 * 3 * 2
        dw: .zero 3 * 2 * 3 * 2
        dx: .zero N * 7 * 6 * 3
    """
    program = assemble(text, TINY)
    symbols = program.symbols
    sizes = dict(batch=2, height=5, width=4, in_channels=3, out_channels=2, kernel_h=3,
                 kernel_w=2, padding=1, stride=2)
    expected = conv2d_forward_words(TINY, x=symbols["x"], w=symbols["w"], y=symbols["y"],
                                    **sizes) \
        + conv2d_backward_words(TINY, x=symbols["x"], w=symbols["w"], dy=symbols["y"],
                                dw=symbols["dw"], dx=symbols["dx"], **sizes)
    assert list(program.words[1:]) == expected
    assert {"conv2d_forward", "conv2d_backward", "conv2d_input_gradient"} <= set(BLOCKS)


# ---------------------------------------------------------------- errors
GOOD = dict(x=0, w=1000, y=2000, batch=2, height=5, width=5, in_channels=3,
            out_channels=4, kernel=3)


@pytest.mark.parametrize("change, message, operand", [
    ({"batch": 0}, "batch = 0: must be an integer of at least 1", "batch"),
    ({"height": -1}, "height = -1: must be an integer of at least 1", "height"),
    ({"in_channels": True}, "in_channels = True: must be an integer of at least 1",
     "in_channels"),
    ({"out_channels": 1.5}, "out_channels = 1.5: must be an integer of at least 1",
     "out_channels"),
    ({"stride": 0}, "stride = 0: must be an integer of at least 1", "stride"),
    ({"padding": -1}, "padding = -1: must be an integer of at least 0", "padding"),
    ({"kernel": 0}, "kernel = 0: must be an integer of at least 1", "kernel"),
    ({"kernel": 6}, "kernel = 6: larger than height + 2 * padding = 5 (the output would "
     "have no rows)", "kernel"),
    ({"kernel": None, "kernel_h": 3, "kernel_w": 8, "padding": 1},
     "kernel_w = 8: larger than width + 2 * padding = 7 (the output would have no "
     "columns)", "kernel_w"),
    ({"kernel_h": 3}, "kernel and kernel_h both given: give either kernel (a square "
     "kernel) or kernel_h and kernel_w", "kernel_h"),
    ({"kernel": None}, "missing the kernel size: give kernel (a square kernel) or "
     "kernel_h and kernel_w", "kernel"),
    ({"kernel": None, "kernel_h": 3}, "kernel_h given without kernel_w: give both, or "
     "kernel", "kernel_h"),
    ({"kernel": None, "kernel_w": 0}, "kernel_w given without kernel_h: give both, or "
     "kernel", "kernel_w"),
    ({"y": 1 << 24}, "y = 16777216: element addresses and strides are 0 .. 16777215",
     "y"),
    ({"x": -1}, "x = -1: element addresses and strides are 0 .. 16777215", "x"),
    ({"in_channels": 1 << 23, "stride": 2}, "stride * in_channels = 16777216: at most "
     "16777215 (it is a row stride, and strides are 0 .. 16777215)", "in_channels"),
    ({"out_channels": 1 << 24}, "out_channels = 16777216: at most 16777215 (it is a row "
     "stride, and strides are 0 .. 16777215)", "out_channels"),
    # y's last output row (image 1, row 2 of 3x3x4) starts 60 elements after y
    ({"y": (1 << 24) - 40}, "y: the sub-matrix at (0, 0) starts at element address "
     "16777236, beyond the 24-bit address field (0 .. 16777215)", "y"),
    # x's last row read (image 1, row 4 of 5x5x3) starts 135 elements after x
    ({"x": (1 << 24) - 100}, "x: the sub-matrix at (0, 0) starts at element address "
     "16777251, beyond the 24-bit address field (0 .. 16777215)", "x"),
])
def test_forward_argument_errors(change, message, operand):
    arguments = {**GOOD, **change}
    with pytest.raises(BlockError) as caught:
        conv2d_forward_words(TINY, **{k: v for k, v in arguments.items() if v is not None})
    assert str(caught.value) == message
    assert caught.value.operand == operand


def test_backward_argument_errors():
    good = {key: value for key, value in GOOD.items() if key != "y"}
    with pytest.raises(BlockError, match=r"^dw = 16777216: element addresses and strides "
                       r"are 0 \.\. 16777215$"):
        conv2d_backward_words(TINY, dy=3000, dw=1 << 24, **good)
    with pytest.raises(BlockError, match=r"^dx = -3: element addresses and strides are "
                       r"0 \.\. 16777215$"):
        conv2d_backward_words(TINY, dy=3000, dw=4000, dx=-3, **good)
    with pytest.raises(BlockError) as caught:
        conv2d_backward_words(TINY, dy=3000, dw=4000, dx=(1 << 24) - 100, **good)
    # dx's last GEMM: image 1, padded row 2 + 2, kernel column 2: (9 * 5 + 2) * 3 = 141
    assert str(caught.value) == ("dx: the sub-matrix at (0, 0) starts at element address "
                                 "16777257, beyond the 24-bit address field "
                                 "(0 .. 16777215)")
    with pytest.raises(BlockError, match="needs a hardware configuration"):
        conv2d_backward_words(None, dy=3000, dw=4000, **good)


def test_the_gemm_bound_is_checked_before_expanding():
    sizes = dict(batch=100, height=30, width=30, in_channels=1, out_channels=1, kernel=3,
                 padding=1)
    counts = conv2d_gemms(TINY, **sizes)
    assert counts == {"forward": 9000, "weight_gradient": 9000, "input_gradient": 27000}
    with pytest.raises(BlockError) as caught:
        conv2d_backward_words(TINY, x=0, w=0, dy=0, dw=0, dx=0, max_gemms=1 << 14, **sizes)
    assert str(caught.value) == ("the lowering needs 36000 GEMMs (weight gradient 9000, "
                                 "input gradient 27000 on 'tiny'), more than the 16384 "
                                 "one block may expand to (split the batch over several "
                                 "blocks)")
    assert caught.value.operand == "batch"
    # huge sizes fail a bound at once instead of expanding
    with pytest.raises(BlockError, match="beyond the 24-bit address field"):
        conv2d_forward_words(TINY, x=0, w=0, y=0, batch=10**12, height=10**6,
                             width=10**6, in_channels=1, out_channels=1, kernel=1)


def test_assembler_errors_point_at_the_operand():
    source = ("conv2d_forward x=0, w=0, y=0, batch=1, height=4, width=4, in_channels=1, "
              "out_channels=1, kernel=3, padding=-1")
    with pytest.raises(ValueError) as caught:
        assemble(source, TINY)
    check_error(caught.value, source, 1, source.index("padding=") + len("padding=") + 1,
                "conv2d_forward: padding = -1: must be an integer of at least 0")
    source = ("conv2d_backward x=0, w=0, dy=0, dw=0, batch=1, height=4, width=4, "
              "in_channels=1, out_channels=1, kernel_w=3")
    with pytest.raises(ValueError) as caught:
        assemble(source, TINY)
    check_error(caught.value, source, 1, source.index("kernel_w=") + len("kernel_w=") + 1,
                "conv2d_backward: kernel_w given without kernel_h: give both, or kernel")


# ---------------------------------------------------------------- on the Verilog
@pytest.mark.rtl
@pytest.mark.skipif(shutil.which("verilator") is None, reason="Verilator not installed")
def test_conv2d_forward_on_the_programmable_core():
    """One small convolution (2 images 4x5x3, 3x3 kernel, padding 1, 3 output channels)
    on the Verilog of tiny's core: the golden machine's memory bit for bit, the direct
    convolution, and the cycle model's count."""
    config = TINY
    rng = np.random.default_rng(15)
    x = rng.integers(-128, 128, (2, 4, 5, 3))
    w = rng.integers(-128, 128, (3, 3, 3, 3))
    x_padded, y, _dw, _dx = reference(x, w, np.zeros((2, 4, 5, 3), np.int64), 1, 1)
    words = conv2d_forward_words(config, x=0, w=x_padded.size, y=x_padded.size + w.size,
                                 batch=2, height=4, width=5, in_channels=3,
                                 out_channels=3, kernel=3, padding=1)
    memory = np.concatenate([x_padded.ravel(), w.ravel(), np.zeros(y.size, np.int64)])
    memories = {}
    for backend in ("golden", "rtl"):
        with Runtime(config, backend, memory_size=memory.size) as runtime:
            runtime.write(0, memory)
            report = runtime.run(words)
            assert not report.error
            memories[backend] = runtime.memory.copy()
            if backend == "rtl":
                assert report.cycles == program_cycles(config, words, memory).total
    np.testing.assert_array_equal(memories["rtl"], memories["golden"])
    np.testing.assert_array_equal(memories["rtl"][memory.size - y.size:], y.ravel())
