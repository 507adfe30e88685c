"""Payload layouts of every stream and internal bus, defined once.

The HDL components build their ports from these functions and the testbenches and host
driver pack and unpack beats with the same layouts (see :mod:`qforge.sim.host.packing`), so
a field can never be read at a different bit position than it was written.

Host-visible streams (ports of :class:`qforge.hdl.top.Accelerator`):

* ``cmd`` carries a :func:`command_layout`: a GEMM of ``m_tiles x n_tiles`` output tiles
  (each ``R x C``) over a dot product of ``depth`` operands, with its precision mode.
* ``a_in`` carries an :func:`a_beat_layout`: one buffer word for each of the R row banks,
  i.e. an ``R x P`` block of A (rows of one tile, P consecutive k).
* ``b_in`` carries a :func:`b_beat_layout`: one word for each of the C column banks, a
  ``P x C`` block of B.
* ``result`` carries a :func:`result_layout`: one row of an output tile (C accumulators)
  and ``last`` on the final beat of a GEMM.

Counts encode ``value - 1`` (``*_minus_one``) so that a zero-sized GEMM cannot be
expressed.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

from qforge.sim.model.rounding import Rounding
from qforge.sim.model.spec import Config

__all__ = ["operand_word_layout", "a_beat_layout", "b_beat_layout",
           "operand_precision_layout", "output_layout", "command_layout", "result_layout",
           "epilogue_layout", "addend_layout",
           "row_entry_layout", "entry_count_layout",
           "block_lane_layout", "lanes_layout", "lane_select_layout", "flags_layout",
           "layout_fields"]


def operand_word_layout(config: Config) -> data.ArrayLayout:
    """One buffer word: P consecutive operands along k (element 0 = lowest k)."""
    return data.ArrayLayout(signed(config.operand_width), config.block_multipliers)


def a_beat_layout(config: Config) -> data.ArrayLayout:
    """One ``a_in`` beat: a word for each row bank (element r = array row r)."""
    return data.ArrayLayout(operand_word_layout(config), config.rows)


def b_beat_layout(config: Config) -> data.ArrayLayout:
    """One ``b_in`` beat: a word for each column bank (element c = array column c)."""
    return data.ArrayLayout(operand_word_layout(config), config.cols)


def operand_precision_layout(config: Config) -> data.StructLayout:
    """Per-operand precision (see :class:`qforge.sim.model.numerics.OperandPrecision`).

    ``vrq``: the operand words are VRQ-coded (:func:`qforge.sim.model.numerics.vrq_pack`);
    ``blocks``/``kept`` then count blocks of the code. Only valid when the
    configuration has a ``[vrq]`` section.

    Configurations with ``arithmetic.paired`` add ``unsigned`` (the operand words are
    ``W``-bit unsigned integers) and the paired mode of operand A
    (:class:`qforge.sim.model.paired.PairedPrecision`): ``paired``, the window sizes
    ``high`` and ``low`` in blocks (``1 <= low <= high``, ``high + low <= n``: they fit
    ``blocks_minus_one``'s width) and ``round`` (:class:`~qforge.sim.model.paired.
    WindowRounding`); B's are always 0.
    """
    fields = {
        "blocks_minus_one": unsigned(config.blocks_field_width),
        "kept_minus_one": unsigned(config.blocks_field_width),
        "dynamic": unsigned(1),
        "vrq": unsigned(1),
    }
    if config.paired:
        fields |= {"unsigned": unsigned(1), "paired": unsigned(1),
                   "high": unsigned(config.blocks_field_width),
                   "low": unsigned(config.blocks_field_width), "round": unsigned(1)}
    return data.StructLayout(fields)


def output_layout(config: Config) -> data.StructLayout:
    """Per-GEMM output stage settings (see :class:`qforge.sim.model.quantize.OutputParameters`).

    ``quantize = 0`` returns raw accumulators; with ``quantize = 1`` each accumulator is
    round-shifted right by ``shift`` (``rounding``, shaped by the golden model's
    :class:`~qforge.sim.model.rounding.Rounding`: nearest-even, truncate, or stochastic
    with random bits keyed by ``seed`` and ``tensor``), optionally passed
    through ReLU, and saturated to ``output_width`` bits. With ``vrq = 1`` (VRQ
    configurations) the ReLU'd accumulator is instead encoded as a VRQ operand word with
    ``E = exponent`` (:func:`qforge.sim.model.quantize.output_operands`). ``wide = 1`` skips the
    saturation (:attr:`qforge.sim.model.quantize.OutputParameters.wide`).
    """
    return data.StructLayout({
        "quantize": unsigned(1),
        "shift": unsigned(max(1, (config.accumulator_width - 1).bit_length())),
        "rounding": Rounding,             # a standard IntEnum: unsigned(2)
        "relu": unsigned(1),
        "seed": unsigned(32),
        "tensor": unsigned(16),
        "vrq": unsigned(1),
        "exponent": unsigned(max(1, (config.accumulator_width - 1).bit_length())),
        "wide": unsigned(1),
    })


def command_layout(config: Config) -> data.StructLayout:
    """A GEMM command: tile counts, dot-product depth, the precision mode and the
    output stage settings.

    Zero-skipping configurations (:attr:`Config.zero_skipping`) add ``skip_zeros``: 1
    skips zero A operands (:func:`qforge.sim.model.numerics.zero_operands`), 0 runs the same
    hardware densely.
    """
    fields = {
        "m_tiles_minus_one": unsigned(config.tiles_field_width),
        "n_tiles_minus_one": unsigned(config.tiles_field_width),
        "depth_minus_one": unsigned(config.depth_field_width),
        "a": operand_precision_layout(config),
        "b": operand_precision_layout(config),
        "output": output_layout(config),
    }
    if config.zero_skipping:
        fields["skip_zeros"] = unsigned(1)
    return data.StructLayout(fields)


def epilogue_layout(config: Config) -> data.StructLayout:
    """What the addend stage needs of a GEMM (docs/ISA.md, ``GEMM``): ``add`` (1: add the
    ``addend`` stream's rows to the results) and ``saturate_bits`` (the sum's width)."""
    return data.StructLayout({"add": unsigned(1), "saturate_bits": unsigned(6)})


def addend_layout(config: Config) -> data.ArrayLayout:
    """One ``addend`` beat: C signed ``accumulator_width`` elements, added to the result
    beat of the same position (the result's tile order)."""
    return data.ArrayLayout(signed(config.accumulator_width), config.cols)


def row_entry_layout(config: Config) -> data.StructLayout:
    """One entry of a zero-skipping A bank: a word of P operands that holds at least one
    operand to compute, its word index within the row (``k // P``) and the mask of the
    operands to compute (bit l: operand ``word * P + l``). See
    :class:`qforge.hdl.compactor.RowCompactor`."""
    return data.StructLayout({
        "operands": operand_word_layout(config),
        "word": unsigned(config.word_index_width),
        "mask": unsigned(config.block_multipliers),
    })


def entry_count_layout(config: Config) -> data.ArrayLayout:
    """The entry counts of one row tile: element r = entries of row ``mt * R + r``
    (0 .. ``max_depth_words``)."""
    return data.ArrayLayout(unsigned(config.max_depth_words.bit_length()), config.rows)


def result_layout(config: Config) -> data.StructLayout:
    """One ``result`` beat: a row of an output tile and the end-of-GEMM marker."""
    return data.StructLayout({
        "row": data.ArrayLayout(signed(config.accumulator_width), config.cols),
        "last": unsigned(1),
    })


def block_lane_layout(config: Config) -> data.StructLayout:
    """One multiplier lane's operand: a K-bit block, its sign and block position; with
    :attr:`~qforge.sim.model.spec.Config.plain_lanes` (``K = W``, integer operands) the
    ``W``-bit two's-complement operand ``value`` alone (0 for an invalid lane).

    With ``arithmetic.paired`` an A lane also says which MAC
    of its pair the block belongs to (``second``), and a B lane carries the same block
    of the pair's second B operand (``partner``: block, sign, position); the PE
    multiplies A's block by B's ``partner`` when A's ``second`` is set. Each side drives
    its own field and 0 in the other's (constant registers that synthesis removes)."""
    if config.plain_lanes:
        return data.StructLayout({"value": signed(config.operand_width)})
    operand = {
        "block": unsigned(config.block_width),
        "sign": unsigned(1),
        "position": unsigned(config.position_width),
    }
    if config.paired:
        return data.StructLayout(operand | {"second": unsigned(1),
                                            "partner": data.StructLayout(operand)})
    return data.StructLayout(operand)


def lanes_layout(config: Config) -> data.ArrayLayout:
    """The P lanes entering a PE from one side in one cycle."""
    return data.ArrayLayout(block_lane_layout(config), config.block_multipliers)


def flags_layout(config: Config | None = None) -> data.StructLayout:
    """Tile markers that travel with the A lanes through the array.

    ``first``: the cycle's products start a new tile's accumulation; ``last``: the
    cycle completes the tile; ``gemm_last``: with ``last``, the tile is the GEMM's final.
    With ``config.pe = "fused"`` also ``wide``: each lane pair carries one MAC's kept
    operands whole (a mode with two kept blocks on a side), else two one-block MACs
    (:class:`qforge.hdl.pe.ProcessingElement`).
    """
    fields = {"first": 1, "last": 1, "gemm_last": 1}
    if config is not None and config.pe == "fused":
        fields["wide"] = 1
    return data.StructLayout(fields)


def lane_select_layout(config: Config) -> data.StructLayout:
    """What the scheduler tells an edge selector for one lane: which operand of the
    word (``offset``), which of its kept blocks (``index``), and whether it is in range.
    """
    return data.StructLayout({
        "offset": unsigned(max(1, (config.block_multipliers - 1).bit_length())),
        "index": unsigned(config.blocks_field_width),
        "valid": unsigned(1),
    })


def layout_fields(layout) -> list[tuple[str, int, int, bool]]:
    """``(path, offset, width, signed)`` of every scalar leaf, in bit order of fields.

    Paths join struct field names and array indices with dots, as in the manifest:

    >>> layout_fields(data.StructLayout({"row": data.ArrayLayout(signed(4), 2), "last": 1}))
    [('row.0', 0, 4, True), ('row.1', 4, 4, True), ('last', 8, 1, False)]
    """
    out: list[tuple[str, int, int, bool]] = []

    def walk(shape, base, path):
        if isinstance(shape, data.ArrayLayout):
            element = Shape.cast(shape.elem_shape).width
            for index in range(shape.length):
                walk(shape.elem_shape, base + index * element, path + [str(index)])
        elif isinstance(shape, data.Layout):
            for name, field in shape:
                walk(field.shape, base + field.offset, path + [str(name)])
        else:
            cast = Shape.cast(shape)
            out.append((".".join(path), base, cast.width, cast.signed))

    walk(layout, 0, [])
    return out
