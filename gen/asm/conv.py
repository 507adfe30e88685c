"""2-D convolution lowered to GEMMs: the ``conv2d_forward`` and ``conv2d_backward``
blocks, built only from LOAD/STORE descriptors (address, row stride, transposition)
and GEMMs that accumulate with ``add``.

**Layouts** (element addresses, every tensor row-major, channels last):

* ``x``: the input, *padded by the host*: ``(batch, height + 2 * padding, width + 2 *
  padding, in_channels)``; the ``padding`` rows and columns around each image must be
  zero (the block reads them as the convolution's zero padding).
* ``w``: the weights ``(kernel_h, kernel_w, in_channels, out_channels)``.
* ``y`` and ``dy``: the output and its gradient ``(batch, out_height, out_width,
  out_channels)`` with ``out_height = (height + 2 * padding - kernel_h) // stride + 1``
  (the same for the width).
* ``dw``: the weight gradient, shaped like ``w``.
* ``dx``: the input gradient, *padded like x*; every element must be zero before the
  block (it only adds into ``dx``). Afterwards the interior (without the padding rows
  and columns) is the gradient of the unpadded input; the padding ring holds the
  gradient of the padding, which the host ignores.

**Lowering.** With ``s = stride``, ``C = in_channels``, ``O = out_channels``, the input
pixels of one output row that kernel row ``i`` reads, ``x[n, oy * s + i, ox * s + j,
c]`` for ``ox`` in ``0 .. out_width - 1``, ``j`` in ``0 .. kernel_w - 1``, are the
``out_width x (kernel_w * C)`` matrix at ``x + ((n * Hp + oy * s + i) * Wp) * C`` with
row stride ``s * C`` (rows overlap when ``s < kernel_w``: the descriptor reads an
im2col row of one kernel row directly), and kernel row ``i`` of the weights,
``w[i]``, is the row-major ``(kernel_w * C) x O`` matrix at ``w + i * kernel_w * C *
O``. So:

* forward: ``y[n, oy] = sum_i X(n, oy, i) @ w[i]``: ``kernel_h`` GEMMs per output row
  (``m = out_width``, ``n = O``, ``k = kernel_w * C``), the first plain, the later
  ones adding onto ``y``;
* weight gradient: ``dw[i] = sum_{n, oy} X(n, oy, i)^T @ dy[n, oy]`` (X read
  transposed: ``m = kernel_w * C``, ``n = O``, ``k = out_width``), the first term of
  each ``dw[i]`` plain, the later ones adding;
* input gradient: ``dx[n, oy * s + i, ox * s + j] += dy[n, oy] @ w[i, j]^T`` (w read
  transposed: ``m = out_width``, ``n = C``, ``k = O``) into the padded ``dx`` with row
  stride ``s * C``; when ``stride >= kernel_w`` the windows of one row do not overlap
  and one GEMM takes a whole kernel row (``n = kernel_w * C``, ``w[i]^T``).

Each of these products is tiled like ``matmul`` (:func:`~qforge.gen.asm.blocks.chunk_sizes`);
every GEMM after a product's first (and every ``dx`` GEMM) has ``add = 1``,
``saturate_bits = accumulator_width``: **exact only with the raw output stage**
(``OUTPUT quantize=0``), which the blocks leave as it is (the host applies a requantizing
shift or ReLU afterwards). A ``LOAD`` or ``STORE`` is only emitted when the
descriptor changes within the block.

**GEMM order**, chosen so that consecutive GEMMs write different memory (the data mover
then need not wait for one GEMM's results before the next starts): forward: kernel row
``i``, then image ``n``, then output row ``oy``; weight gradient: ``n``, ``oy``, then
``i``; input gradient: ``i``, kernel column (group) ``j``, ``n``, ``oy``.
:func:`conv2d_gemms` gives the GEMM count of each pass (docs/ISA.md, *Convolution*).

**Blocks**: :func:`conv2d_forward_words` (the forward pass),
:func:`conv2d_backward_words` (the weight gradient and, with ``dx``, the input
gradient) and :func:`conv2d_input_gradient_words` (the input gradient alone: for a
trainer whose weight gradient is another block, e.g. a fused ``sgd_update``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from qforge.gen.asm.blocks import (ADDRESS_BITS, _check_address, _check_config, _check_count,
                                   _Matrix, _tiled, chunk_sizes)
from qforge.gen.asm.errors import BlockError
from qforge.sim.model.capacity import tiles
from qforge.sim.model.isa import OPCODE_WIDTH, OPERAND_FIELDS, Opcode

__all__ = ["Conv2dShape", "conv2d_shape", "conv2d_gemms", "conv2d_forward_words",
           "conv2d_backward_words", "conv2d_input_gradient_words"]

#: The largest row stride the LOAD/STORE stride field holds.
_STRIDE_LIMIT = (1 << ADDRESS_BITS) - 1


@dataclass(frozen=True)
class Conv2dShape:
    """The sizes of one convolution layer (validated by :func:`conv2d_shape`)."""

    batch: int
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride: int
    padding: int

    @property
    def padded_height(self) -> int:
        return self.height + 2 * self.padding

    @property
    def padded_width(self) -> int:
        return self.width + 2 * self.padding

    @property
    def out_height(self) -> int:
        return (self.padded_height - self.kernel_h) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.padded_width - self.kernel_w) // self.stride + 1

    @property
    def dx_group(self) -> int:
        """Kernel columns one input-gradient GEMM takes: all of them when the windows
        of one output row do not overlap (``stride >= kernel_w``), else one."""
        return self.kernel_w if self.stride >= self.kernel_w else 1


def _kernel(kernel, kernel_h, kernel_w) -> tuple[int, int, str, str]:
    """``(kernel_h, kernel_w)`` and the operand names to blame for each."""
    if kernel is not None:
        if kernel_h is not None or kernel_w is not None:
            given = "kernel_h" if kernel_h is not None else "kernel_w"
            raise BlockError(f"kernel and {given} both given: give either kernel (a square "
                             "kernel) or kernel_h and kernel_w", given)
        _check_count("kernel", kernel)
        return kernel, kernel, "kernel", "kernel"
    if kernel_h is None and kernel_w is None:
        raise BlockError("missing the kernel size: give kernel (a square kernel) or "
                         "kernel_h and kernel_w", "kernel")
    for name, value, other in (("kernel_h", kernel_h, "kernel_w"),
                               ("kernel_w", kernel_w, "kernel_h")):
        if value is None:
            raise BlockError(f"{other} given without {name}: give both, or kernel",
                             other)
    return (_check_count("kernel_h", kernel_h), _check_count("kernel_w", kernel_w),
            "kernel_h", "kernel_w")


def conv2d_shape(*, batch, height, width, in_channels, out_channels, kernel=None,
                 kernel_h=None, kernel_w=None, stride=1, padding=0) -> Conv2dShape:
    """The validated :class:`Conv2dShape`: every size an integer of at least 1,
    ``padding`` at least 0, the kernel given as ``kernel`` (square) or as both
    ``kernel_h`` and ``kernel_w``, an output of at least one row and column, and the row
    strides ``stride * in_channels`` and ``out_channels`` inside the 24-bit stride field;
    otherwise a :class:`BlockError` naming the operand.

    >>> conv2d_shape(batch=2, height=8, width=6, in_channels=1, out_channels=8,
    ...              kernel=3, padding=1).out_width
    6
    >>> conv2d_shape(batch=1, height=2, width=2, in_channels=1, out_channels=1, kernel=3)
    Traceback (most recent call last):
    ...
    qforge.gen.asm.errors.BlockError: kernel = 3: larger than height + 2 * padding = 2 (the output would have no rows)
    """
    for name, value in (("batch", batch), ("height", height), ("width", width),
                        ("in_channels", in_channels), ("out_channels", out_channels),
                        ("stride", stride)):
        _check_count(name, value)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise BlockError(f"padding = {padding!r}: must be an integer of at least 0",
                         "padding")
    kernel_h, kernel_w, h_name, w_name = _kernel(kernel, kernel_h, kernel_w)
    for name, value, size, size_name in ((h_name, kernel_h, height, "height"),
                                         (w_name, kernel_w, width, "width")):
        if value > size + 2 * padding:
            raise BlockError(f"{name} = {value}: larger than {size_name} + 2 * padding = "
                             f"{size + 2 * padding} (the output would have no "
                             f"{'rows' if size_name == 'height' else 'columns'})", name)
    for name, value, what in (("in_channels", stride * in_channels,
                               f"stride * in_channels = {stride * in_channels}"),
                              ("out_channels", out_channels,
                               f"out_channels = {out_channels}")):
        if value > _STRIDE_LIMIT:
            raise BlockError(f"{what}: at most {_STRIDE_LIMIT} (it is a row stride, and "
                             f"strides are 0 .. {_STRIDE_LIMIT})", name)
    return Conv2dShape(batch, height, width, in_channels, out_channels, kernel_h, kernel_w,
                       stride, padding)


@dataclass(frozen=True)
class _Product:
    """One ``C (+)= A @ B`` of the lowering (``accumulate``: add onto C)."""

    a: _Matrix
    b: _Matrix
    c: _Matrix
    m: int
    n: int
    k: int
    accumulate: bool


def _pixel(shape: Conv2dShape, base: int, n: int, row: int, column: int = 0) -> int:
    """Address of pixel ``(row, column)`` of image ``n`` in a padded channels-last buffer."""
    return base + ((n * shape.padded_height + row) * shape.padded_width + column) \
        * shape.in_channels


def _span(count: int, last: bool, step: int = 1) -> range:
    """The indices ``0, step, ...`` below ``count``, or only the last of them."""
    return range((count - 1) // step * step, count, step) if last else range(0, count, step)


def _forward(shape: Conv2dShape, x: int, w: int, y: int, *,
             last: bool = False) -> Iterator[_Product]:
    """The products of the forward pass in order (``last``: only the last one)."""
    s, c, o = shape.stride, shape.in_channels, shape.out_channels
    for i in _span(shape.kernel_h, last):
        for n in _span(shape.batch, last):
            for oy in _span(shape.out_height, last):
                yield _Product(_Matrix("x", _pixel(shape, x, n, oy * s + i), s * c),
                               _Matrix("w", w + i * shape.kernel_w * c * o, o),
                               _Matrix("y", y + (n * shape.out_height + oy)
                                       * shape.out_width * o, o),
                               shape.out_width, o, shape.kernel_w * c, i > 0)


def _weight_gradient(shape: Conv2dShape, x: int, dy: int, dw: int, *,
                     last: bool = False) -> Iterator[_Product]:
    """The products of the weight gradient in order (``last``: only the last one)."""
    s, c, o = shape.stride, shape.in_channels, shape.out_channels
    for n in _span(shape.batch, last):
        for oy in _span(shape.out_height, last):
            for i in _span(shape.kernel_h, last):
                yield _Product(_Matrix("x", _pixel(shape, x, n, oy * s + i), s * c, True),
                               _Matrix("dy", dy + (n * shape.out_height + oy)
                                       * shape.out_width * o, o),
                               _Matrix("dw", dw + i * shape.kernel_w * c * o, o),
                               shape.kernel_w * c, o, shape.out_width, n > 0 or oy > 0)


def _input_gradient(shape: Conv2dShape, w: int, dy: int, dx: int, *,
                    last: bool = False) -> Iterator[_Product]:
    """The products of the input gradient in order (``last``: only the last one)."""
    s, c, o, group = shape.stride, shape.in_channels, shape.out_channels, shape.dx_group
    for i in _span(shape.kernel_h, last):
        for j in _span(shape.kernel_w, last, group):
            for n in _span(shape.batch, last):
                for oy in _span(shape.out_height, last):
                    yield _Product(_Matrix("dy", dy + (n * shape.out_height + oy)
                                           * shape.out_width * o, o),
                                   _Matrix("w", w + (i * shape.kernel_w + j) * c * o, o,
                                           True),
                                   _Matrix("dx", _pixel(shape, dx, n, oy * s + i, j),
                                           s * c),
                                   shape.out_width, group * c, o, True)


def _terms(shape: Conv2dShape, which: str) -> int:
    """How many products the pass ``which`` has."""
    rows = shape.kernel_h * shape.batch * shape.out_height
    return rows * shape.kernel_w // shape.dx_group if which == "input_gradient" else rows


def _product_size(shape: Conv2dShape, which: str) -> tuple[int, int, int]:
    """``(m, n, k)`` of every product of the pass ``which``."""
    c, o, wide = shape.in_channels, shape.out_channels, shape.kernel_w * shape.in_channels
    return {"forward": (shape.out_width, o, wide),
            "weight_gradient": (wide, o, shape.out_width),
            "input_gradient": (shape.out_width, shape.dx_group * c, o)}[which]


def _pass_gemms(config, shape: Conv2dShape, which: str) -> int:
    m, n, k = _product_size(shape, which)
    mc, nc, kc = chunk_sizes(config, m, n, k)
    return _terms(shape, which) * tiles(m, mc) * tiles(n, nc) * tiles(k, kc)


def conv2d_gemms(config, **sizes) -> dict[str, int]:
    """GEMMs of each pass of a convolution on ``config``: ``{"forward": ...,
    "weight_gradient": ..., "input_gradient": ...}`` (``sizes``: the keyword arguments
    of :func:`conv2d_shape`). With ``T(m, n, k)`` the GEMMs of one tiled product
    (``ceil(m / mc) * ceil(n / nc) * ceil(k / kc)``, :func:`chunk_sizes`), ``Ho, Wo``
    the output size, ``g`` = ``kernel_w`` if ``stride >= kernel_w`` else 1:

    * forward: ``kernel_h * batch * Ho * T(Wo, out_channels, kernel_w * in_channels)``;
    * weight gradient: ``kernel_h * batch * Ho * T(kernel_w * in_channels,
      out_channels, Wo)``;
    * input gradient: ``kernel_h * (kernel_w / g) * batch * Ho * T(Wo, g *
      in_channels, out_channels)``.

    >>> from qforge.sim.model.spec import load_preset
    >>> conv2d_gemms(load_preset("default"), batch=1, height=4, width=4, in_channels=1,
    ...              out_channels=2, kernel=3, padding=1)
    {'forward': 12, 'weight_gradient': 12, 'input_gradient': 36}
    """
    config = _check_config(config, "conv2d")
    shape = conv2d_shape(**sizes)
    return {which: _pass_gemms(config, shape, which)
            for which in ("forward", "weight_gradient", "input_gradient")}


def _check_reach(config, product: _Product) -> None:
    """The last sub-matrix of each operand of ``product`` starts inside the address
    field (as :func:`~qforge.gen.asm.blocks._tiled` checks it): checked on a pass's last
    product, whose addresses are the highest, before any word is made."""
    mc, nc, kc = chunk_sizes(config, product.m, product.n, product.k)
    last_m = (product.m - 1) // mc * mc
    last_n = (product.n - 1) // nc * nc
    last_k = (product.k - 1) // kc * kc
    product.a.sub(last_m, last_k)
    product.b.sub(last_k, last_n)
    product.c.sub(last_m, last_n)


_PASSES = {"forward": _forward, "weight_gradient": _weight_gradient,
           "input_gradient": _input_gradient}


def _words(config, shape: Conv2dShape, passes: dict[str, dict[str, int]],
           max_gemms: int | None) -> list[int]:
    """The words of ``passes`` (each pass's name and its operands' addresses), in that
    order, after every pass's last product (the highest addresses) has been checked
    against the address field and the GEMM count against ``max_gemms``."""
    for which, addresses in passes.items():
        _check_reach(config, next(_PASSES[which](shape, **addresses, last=True)))
    gemms = {which: _pass_gemms(config, shape, which) for which in passes}
    total = sum(gemms.values())
    if max_gemms is not None and total > max_gemms:
        detail = ", ".join(f"{which.replace('_', ' ')} {count}"
                           for which, count in gemms.items())
        raise BlockError(f"the lowering needs {total} GEMMs ({detail} on "
                         f"{config.name!r}), more than the {max_gemms} one block may "
                         "expand to (split the batch over several blocks)", "batch")
    words: list[int] = []
    for which, addresses in passes.items():
        for product in _PASSES[which](shape, **addresses):
            # A product that accumulates adds with every GEMM, its k chunks included
            # (exact with the raw output stage, as matmul's k split is).
            words += _tiled(config, product.a, product.b, product.c, product.m,
                            product.n, product.k,
                            update_bits=config.accumulator_width
                            if product.accumulate else None)
    return _without_repeated_descriptors(words)


def _without_repeated_descriptors(words: list[int]) -> list[int]:
    """``words`` without the LOAD and STORE words that set a descriptor to the value the
    previous one of that operand set (each product is tiled on its own, so its first
    descriptors repeat the previous product's when they are the same). A LOAD or STORE
    word holds its whole descriptor, so equal descriptors are equal words: only the
    opcode (the low ``OPCODE_WIDTH`` bits) and LOAD's operand field (the next bits) are
    decoded, which keeps this pass cheap on a block of ``2**14`` GEMMs."""
    opcode_mask = (1 << OPCODE_WIDTH) - 1
    operand_mask = (1 << OPERAND_FIELDS[Opcode.LOAD]["operand"]) - 1
    kept: list[int] = []
    current: dict[tuple[int, int], int] = {}
    for word in words:
        opcode = word & opcode_mask
        if opcode in (Opcode.LOAD, Opcode.STORE):
            key = (opcode, (word >> OPCODE_WIDTH) & operand_mask
                   if opcode == Opcode.LOAD else 0)
            if current.get(key) == word:
                continue
            current[key] = word
        kept.append(word)
    return kept


def conv2d_forward_words(config, *, x: int, w: int, y: int, batch: int, height: int,
                         width: int, in_channels: int, out_channels: int,
                         kernel: int | None = None, kernel_h: int | None = None,
                         kernel_w: int | None = None, stride: int = 1, padding: int = 0,
                         max_gemms: int | None = None) -> list[int]:
    """``y = conv2d(x, w)`` (layouts, lowering and GEMM order: the module's docstring):
    x padded by the host, ``(batch, height + 2 * padding, width + 2 * padding,
    in_channels)`` with zero padding; w ``(kernel_h, kernel_w, in_channels,
    out_channels)``; y ``(batch, out_height, out_width, out_channels)``, raw
    accumulators (issue ``output`` with ``quantize = 0`` first). The kernel is
    ``kernel`` (square) or ``kernel_h`` and ``kernel_w``. With ``max_gemms``, a lowering
    of more GEMMs is a :class:`BlockError` before anything is expanded.

    >>> from qforge.gen.asm import disassemble
    >>> from qforge.sim.model.spec import load_preset
    >>> words = conv2d_forward_words(load_preset("default"), x=0, w=100, y=200, batch=1,
    ...                              height=2, width=2, in_channels=1, out_channels=2,
    ...                              kernel=3, padding=1)
    >>> for word in words:
    ...     print(disassemble(word))
    load a, 0, stride=1
    load b, 100, stride=2
    store 200, stride=2
    gemm 2, 2, 3
    load a, 4, stride=1
    store 204, stride=2
    gemm 2, 2, 3
    load b, 106, stride=2
    load addend, 200, stride=2
    store 200, stride=2
    gemm 2, 2, 3, add, saturate_bits=27
    load a, 8, stride=1
    load addend, 204, stride=2
    store 204, stride=2
    gemm 2, 2, 3, add, saturate_bits=27
    load b, 112, stride=2
    load addend, 200, stride=2
    store 200, stride=2
    gemm 2, 2, 3, add, saturate_bits=27
    load a, 12, stride=1
    load addend, 204, stride=2
    store 204, stride=2
    gemm 2, 2, 3, add, saturate_bits=27
    """
    config = _check_config(config, "conv2d_forward")
    shape = conv2d_shape(batch=batch, height=height, width=width, in_channels=in_channels,
                         out_channels=out_channels, kernel=kernel, kernel_h=kernel_h,
                         kernel_w=kernel_w, stride=stride, padding=padding)
    for name, value in (("x", x), ("w", w), ("y", y)):
        _check_address(name, value)
    return _words(config, shape, {"forward": {"x": x, "w": w, "y": y}}, max_gemms)


def conv2d_backward_words(config, *, x: int, w: int, dy: int, dw: int, batch: int,
                          height: int, width: int, in_channels: int, out_channels: int,
                          kernel: int | None = None, kernel_h: int | None = None,
                          kernel_w: int | None = None, stride: int = 1, padding: int = 0,
                          dx: int | None = None, max_gemms: int | None = None) -> list[int]:
    """The gradients of :func:`conv2d_forward_words` (same sizes and layouts): the
    weight gradient ``dw`` (``(kernel_h, kernel_w, in_channels, out_channels)``, from x
    read transposed and dy) and, when ``dx`` is given, the input gradient into the
    padded ``dx`` buffer (``(batch, height + 2 * padding, width + 2 * padding,
    in_channels)``, which must hold zeros before: the block adds into it), from dy and
    w read transposed. Raw accumulators (issue ``output`` with ``quantize = 0`` first).
    ``max_gemms`` bounds the GEMMs of both passes together."""
    config = _check_config(config, "conv2d_backward")
    shape = conv2d_shape(batch=batch, height=height, width=width, in_channels=in_channels,
                         out_channels=out_channels, kernel=kernel, kernel_h=kernel_h,
                         kernel_w=kernel_w, stride=stride, padding=padding)
    for name, value in (("x", x), ("w", w), ("dy", dy), ("dw", dw)):
        _check_address(name, value)
    passes = {"weight_gradient": {"x": x, "dy": dy, "dw": dw}}
    if dx is not None:
        passes["input_gradient"] = {"w": w, "dy": dy, "dx": _check_address("dx", dx)}
    return _words(config, shape, passes, max_gemms)


def conv2d_input_gradient_words(config, *, w: int, dy: int, dx: int, batch: int,
                                height: int, width: int, in_channels: int,
                                out_channels: int, kernel: int | None = None,
                                kernel_h: int | None = None, kernel_w: int | None = None,
                                stride: int = 1, padding: int = 0,
                                max_gemms: int | None = None) -> list[int]:
    """Only the input gradient of :func:`conv2d_forward_words` (same sizes and
    layouts): ``dx += conv2d_input_gradient(dy, w)`` into the padded ``dx`` buffer
    (``(batch, height + 2 * padding, width + 2 * padding, in_channels)``, which must
    hold zeros before: the block adds into it; afterwards its interior is the gradient
    of the unpadded input), from dy and w read transposed. The same words, in the same
    order, as the input-gradient part of :func:`conv2d_backward_words` with ``dx``
    (``conv2d_gemms(...)["input_gradient"]`` GEMMs, every one with ``add = 1``): for a
    trainer that computes the weight gradient otherwise (a fused ``sgd_update`` over
    gathered inputs). Raw accumulators (issue ``output`` with ``quantize = 0`` first);
    ``max_gemms`` bounds its GEMMs.

    >>> from qforge.gen.asm import disassemble
    >>> from qforge.sim.model.spec import load_preset
    >>> words = conv2d_input_gradient_words(load_preset("default"), w=0, dy=18, dx=26,
    ...                                     batch=1, height=2, width=2, in_channels=1,
    ...                                     out_channels=2, kernel=3, padding=1)
    >>> for word in words[:5]:
    ...     print(disassemble(word))
    load a, 18, stride=2
    load b, 0, stride=2, transpose
    load addend, 26, stride=1
    store 26, stride=1
    gemm 2, 1, 2, add, saturate_bits=27
    """
    config = _check_config(config, "conv2d_input_gradient")
    shape = conv2d_shape(batch=batch, height=height, width=width, in_channels=in_channels,
                         out_channels=out_channels, kernel=kernel, kernel_h=kernel_h,
                         kernel_w=kernel_w, stride=stride, padding=padding)
    for name, value in (("w", w), ("dy", dy), ("dx", dx)):
        _check_address(name, value)
    return _words(config, shape, {"input_gradient": {"w": w, "dy": dy, "dx": dx}},
                  max_gemms)
