"""Host side of the stream interfaces: pack commands and operands into beats, unpack
results. Bit positions come from the same :mod:`qforge.hdl.layouts` the HDL is built
from, so host, testbench and hardware cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.lib import data  # noqa: F401 - the doctests use it

from qforge.sim.model.spec import Config
from qforge.hdl.layouts import (a_beat_layout, b_beat_layout, command_layout,
                                layout_fields, result_layout)
from qforge.sim.model.numerics import Precision, check_operands, gemm
from qforge.sim.model.machine import tiles, unsigned_paired_fields
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands

__all__ = ["leaf_fields", "pack_fields", "unpack_fields", "command_bits",
           "pack_operands", "GemmJob", "ResultAssembler", "result_order"]


def leaf_fields(layout) -> list[tuple[int, int, bool]]:
    """``(offset, width, signed)`` of every scalar leaf of a layout, in field order
    (:func:`qforge.hdl.layouts.layout_fields` without the names).

    >>> from amaranth.hdl import signed
    >>> leaf_fields(data.ArrayLayout(signed(4), 3))
    [(0, 4, True), (4, 4, True), (8, 4, True)]
    """
    return [(offset, width, is_signed)
            for _path, offset, width, is_signed in layout_fields(layout)]


def pack_fields(fields, values) -> int:
    """Pack integers (one per leaf, in :func:`leaf_fields` order) into one beat."""
    bits = 0
    for (offset, width, _signed), value in zip(fields, values, strict=True):
        bits |= (int(value) & ((1 << width) - 1)) << offset
    return bits


def unpack_fields(fields, bits: int) -> list[int]:
    """The inverse of :func:`pack_fields` (signed leaves sign-extended)."""
    values = []
    for offset, width, is_signed in fields:
        value = (bits >> offset) & ((1 << width) - 1)
        if is_signed and value >> (width - 1):
            value -= 1 << width
        values.append(value)
    return values


def command_bits(config: Config, m: int, n: int, depth: int, precision: Precision,
                 output: OutputParameters | None = None, skip_zeros: bool = False) -> int:
    """The ``cmd`` beat for an ``m x depth`` by ``depth x n`` GEMM; ``output`` None
    returns raw accumulators. ``skip_zeros`` (zero-skipping configurations only) skips
    zero A operands."""
    if skip_zeros and not config.zero_skipping:
        raise ValueError(f"skip_zeros: configuration {config.name!r} has no "
                         f"[zero_skipping] section, so it cannot skip zero operands")
    tile_limit = 1 << config.tiles_field_width
    for name, count, size in (("m", m, config.rows), ("n", n, config.cols)):
        if not 1 <= count <= tile_limit * size:
            # The command field holds tiles - 1: a larger count would wrap silently.
            raise ValueError(f"{name} = {count}: allowed 1 .. {tile_limit * size} "
                             f"({tile_limit} tiles of {size}, the command's field width)")
    if not 1 <= depth <= config.max_reduction_depth:
        raise ValueError(f"depth = {depth}: allowed 1 .. {config.max_reduction_depth} "
                         f"(arithmetic.max_reduction_depth)")
    def operand(p):
        fields = {"blocks_minus_one": p.blocks - 1, "kept_minus_one": p.kept - 1,
                  "dynamic": int(p.selection), "vrq": int(p.vrq)}
        if config.paired:
            fields |= unsigned_paired_fields(p)
        return fields
    stage = {"quantize": 0, "shift": 0, "rounding": int(Rounding.NEAREST_EVEN), "relu": 0,
             "seed": 0, "tensor": 0, "vrq": 0, "exponent": 0, "wide": 0}
    if output is not None:
        vrq = output.vrq_exponent is not None
        stage = {"quantize": 1, "shift": output.shift, "rounding": int(output.rounding),
                 "relu": int(output.relu), "seed": output.seed, "tensor": output.tensor,
                 "vrq": int(vrq), "exponent": output.vrq_exponent if vrq else 0,
                 "wide": int(output.wide)}
    fields = {
        "m_tiles_minus_one": tiles(m, config.rows) - 1,
        "n_tiles_minus_one": tiles(n, config.cols) - 1,
        "depth_minus_one": depth - 1,
        "a": operand(precision.a), "b": operand(precision.b),
        "output": stage,
    }
    if config.zero_skipping:
        fields["skip_zeros"] = int(skip_zeros)
    return command_layout(config).const(fields).as_bits()


def pack_operands(config: Config, a: np.ndarray, b: np.ndarray) -> tuple[list[int], list[int]]:
    """The ``a_in`` and ``b_in`` beats for operands ``a`` (M x D) and ``b`` (D x N).

    Both are zero-padded to whole tiles and words. A beats go ``for mt: for word:``,
    each holding rows ``mt*R .. mt*R+R-1`` and operands ``word*P .. word*P+P-1``; B beats
    likewise with columns.
    """
    rows, cols, lanes = config.rows, config.cols, config.block_multipliers
    m, depth = a.shape
    n = b.shape[1]
    words = tiles(depth, lanes)
    padded_a = np.zeros((tiles(m, rows) * rows, words * lanes), dtype=np.int64)
    padded_a[:m, :depth] = a
    padded_b = np.zeros((words * lanes, tiles(n, cols) * cols), dtype=np.int64)
    padded_b[:depth, :n] = b
    # (tile, row, word, lane) -> (tile, word, row, lane): a beat is one (tile, word).
    a_beats = padded_a.reshape(-1, rows, words, lanes).transpose(0, 2, 1, 3)
    a_beats = a_beats.reshape(-1, rows * lanes)
    # (word, lane, tile, col) -> (tile, word, col, lane)
    b_beats = padded_b.reshape(words, lanes, -1, cols).transpose(2, 0, 3, 1)
    b_beats = b_beats.reshape(-1, cols * lanes)
    a_fields = leaf_fields(a_beat_layout(config))
    b_fields = leaf_fields(b_beat_layout(config))
    return ([pack_fields(a_fields, beat) for beat in a_beats.tolist()],
            [pack_fields(b_fields, beat) for beat in b_beats.tolist()])


@dataclass
class GemmJob:
    """One GEMM as the host sends it: the command, operand beats and expected result."""

    config: Config
    a: np.ndarray
    b: np.ndarray
    precision: Precision
    command: int
    a_beats: list[int]
    b_beats: list[int]
    expected: np.ndarray

    output: OutputParameters | None = None
    skip_zeros: bool = False

    @classmethod
    def build(cls, config: Config, a, b, precision: Precision, model=gemm,
              output: OutputParameters | None = None,
              skip_zeros: bool = False) -> "GemmJob":
        """Check the operands and compute the expected result with ``model`` (and the
        output stage, when ``output`` is given; element coordinates are the result's
        row and column, whatever the array shape). Skipping zeros never changes the
        expected result."""
        a, b = check_operands(a, b, config, precision)
        if output is not None:
            output.validate(config)
        a_beats, b_beats = pack_operands(config, a, b)
        expected = model(a, b, config, precision)
        if output is not None:
            expected = output_operands(expected, config, output)
        return cls(config, a, b, precision,
                   command_bits(config, a.shape[0], b.shape[1], a.shape[1], precision,
                                output, skip_zeros),
                   a_beats, b_beats, expected, output, skip_zeros)

    @property
    def result_beats(self) -> int:
        config = self.config
        return (tiles(self.a.shape[0], config.rows) * tiles(self.b.shape[1], config.cols)
                * config.rows)

    def expected_beats(self) -> list[tuple[list[int], int]]:
        """``(row values, last)`` of every result beat in stream order (padding is 0)."""
        config = self.config
        rows, cols = config.rows, config.cols
        m_tiles, n_tiles = tiles(self.a.shape[0], rows), tiles(self.b.shape[1], cols)
        padded = np.zeros((m_tiles * rows, n_tiles * cols), dtype=np.int64)
        padded[:self.expected.shape[0], :self.expected.shape[1]] = self.expected
        # (row, nt, c) in stream order: see result_order.
        beats = [(values, 0) for values in result_order(config, padded).tolist()]
        beats[-1] = (beats[-1][0], 1)
        return beats


class ResultAssembler:
    """Collect ``result`` beats of one GEMM into its ``M x N`` matrix."""

    def __init__(self, config: Config, m: int, n: int):
        self.config = config
        self.m, self.n = m, n
        self._fields = leaf_fields(result_layout(config))
        self._rows: list[list[int]] = []
        self.last_flags: list[int] = []

    def add(self, bits: int) -> tuple[list[int], int]:
        """Add one beat; return its ``(row values, last)``."""
        values = unpack_fields(self._fields, bits)
        row, last = values[:-1], values[-1]
        self.add_row(row)
        self.last_flags.append(last)
        return row, last

    def add_row(self, row: list[int]) -> None:
        """Add one beat's already unpacked row values."""
        self._rows.append(list(row))

    @property
    def rows(self) -> list[list[int]]:
        return self._rows

    def matrix(self) -> np.ndarray:
        config = self.config
        rows, cols = config.rows, config.cols
        m_tiles, n_tiles = tiles(self.m, rows), tiles(self.n, cols)
        beats = np.array(self._rows, dtype=np.int64)
        if config.zero_skipping:
            full = beats.reshape(m_tiles * rows, n_tiles * cols)
        else:
            full = beats.reshape(m_tiles, n_tiles, rows, cols).transpose(0, 2, 1, 3)
            full = full.reshape(m_tiles * rows, n_tiles * cols)
        return full[:self.m, :self.n]


def result_order(config: Config, padded: np.ndarray) -> np.ndarray:
    """The ``result`` beats (one row of C elements each) of a result zero-padded to
    whole tiles, in stream order.

    Systolic array: ``for mt: for nt: for r:``, row r of output tile (mt, nt). The
    zero-skipping array computes one output row at a time (its tiles are one A row by
    ``R * C`` columns), so its beats are row-major: ``for row: for nt:``.

    >>> from qforge.sim.model.spec import load_preset
    >>> y = np.arange(16).reshape(4, 4)
    >>> result_order(load_preset("tiny"), y)[:3].tolist()      # 2 x 2 tiles
    [[0, 1], [4, 5], [2, 3]]
    >>> spec = load_preset("tiny").to_dict() | {"zero_skipping": {"pe_buffer_depth": 512}}
    >>> from qforge.sim.model.spec import from_dict
    >>> result_order(from_dict(spec), y)[:3].tolist()
    [[0, 1], [2, 3], [4, 5]]
    """
    rows, cols = config.rows, config.cols
    if config.zero_skipping:
        return padded.reshape(-1, cols)
    m_tiles, n_tiles = padded.shape[0] // rows, padded.shape[1] // cols
    return padded.reshape(m_tiles, rows, n_tiles, cols).transpose(0, 2, 1, 3).reshape(-1, cols)
