"""The assembler's high-level block statements: each mnemonic (``matmul``,
``linear_forward``, ``conv2d_forward``, ...) with its expansion function and operands.

The functions live where their lowering is written (:mod:`qforge.gen.asm.blocks` for the
matrix blocks, :mod:`qforge.gen.asm.conv` for the convolutions); this registry is what the
parser and the assembler look up, and imports both, so neither imports the other's
registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from qforge.gen.asm.blocks import (linear_backward_words, linear_forward_words,
                                   matmul_words, sgd_update_words)
from qforge.gen.asm.conv import (conv2d_backward_words, conv2d_forward_words,
                                 conv2d_input_gradient_words)

__all__ = ["Block", "BLOCKS"]


@dataclass(frozen=True)
class Block:
    """A high-level block: its expansion function and operands."""

    function: Callable[..., list[int]]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    summary: str = ""


_CONV_SIZES = ("batch", "height", "width", "in_channels", "out_channels")
_CONV_OPTIONS = ("kernel", "kernel_h", "kernel_w", "stride", "padding")

#: The high-level blocks, by mnemonic.
BLOCKS: dict[str, Block] = {
    "matmul": Block(matmul_words, ("a", "b", "c", "m", "n", "k"),
                    ("a_stride", "b_stride", "c_stride"),
                    ("transpose_a", "transpose_b", "skip_zeros"),
                    "C = A @ B tiled to fit the configuration; k chunks accumulate"),
    "linear_forward": Block(linear_forward_words,
                            ("x", "w", "y", "batch", "inputs", "outputs"),
                            summary="y = x @ w"),
    "linear_backward": Block(linear_backward_words,
                             ("x", "w", "dy", "dw", "batch", "inputs", "outputs"), ("dx",),
                             summary="dw = x^T @ dy and, with dx, dx = dy @ w^T"),
    "sgd_update": Block(sgd_update_words,
                        ("w", "x", "dy", "batch", "inputs", "outputs", "shift",
                         "weight_bits", "seed"), ("tensor",),
                        summary="W <- clamp(W + round_stochastic((x^T @ dy) / 2**shift))"),
    "conv2d_forward": Block(conv2d_forward_words, ("x", "w", "y", *_CONV_SIZES),
                            _CONV_OPTIONS,
                            summary="y = conv2d(x, w), channels last, x padded by the host"),
    "conv2d_backward": Block(conv2d_backward_words, ("x", "w", "dy", "dw", *_CONV_SIZES),
                             ("dx", *_CONV_OPTIONS),
                             summary="dw of conv2d_forward and, with dx, the input gradient"),
    "conv2d_input_gradient": Block(conv2d_input_gradient_words,
                                   ("w", "dy", "dx", *_CONV_SIZES), _CONV_OPTIONS,
                                   summary="dx += the input gradient of conv2d_forward "
                                           "(dx padded like x, zeroed by the host)"),
}
