"""The qforge hardware configuration: one frozen, validated object loaded from TOML.

A configuration fixes everything that is decided when Verilog is generated: the array
shape, the operand and block widths, the number of block multipliers per PE, the buffer
depth and the deepest reduction the accumulators must hold without overflow. Everything
chosen per GEMM at run time (the precision mode) lives in :mod:`qforge.sim.model.numerics`.

Every derived width is computed here, in :class:`Config`, and nowhere else; components
and testbenches read them from the config object (or from the manifest written next to
the generated Verilog, which is this object serialized).

A TOML spec looks like this (every key is listed in :data:`SCHEMA`)::

    name = "default"

    [array]
    rows = 8
    cols = 8

    [arithmetic]
    operand_width = 8
    block_width = 2
    block_multipliers = 4
    max_reduction_depth = 2048
    output_width = 8

    [buffers]
    depth = 512

Three optional sections change the hardware: ``[vrq]`` (:data:`VRQ_SCHEMA`, VRQ
operands), ``[zero_skipping]`` (:data:`ZERO_SKIPPING_SCHEMA`, the zero-skipping array)
and ``[output_stage]`` (:data:`OUTPUT_STAGE_SCHEMA`, a narrower output stage)::

    [zero_skipping]
    pe_buffer_depth = 512

    [output_stage]
    lanes_per_cycle = 1

One optional key of ``[arithmetic]`` chooses the PE's datapath, with the same numbers:
``pe = "shifted"`` (the default, also when the key is left out), ``pe =
"signed_product"`` (the same cycles) or ``pe = "shared_shift"`` (another lane schedule
and so other cycles; integer operands and the dense array only) or ``pe = "fused"``
(lane pairs as one multiplier each, the FPGA's DSP block; two blocks per operand)
(:data:`PE_DESIGNS`; docs/ARCHITECTURE.md, "A cheaper PE"). Another, ``paired = true``,
builds the paired precision mode and unsigned operands (:data:`PAIRED_HELP`).

Any mistake gives one :class:`ConfigError` naming the field, the value and what is
allowed. The configuration space is bounded: a design too large to generate in minutes
(:attr:`Config.design_size` above :data:`MAX_DESIGN_SIZE`) is refused when the spec is
loaded, naming the fields that size it.

(Over 500 lines because it is one concept: the schema, the derived widths and size,
the validation and the loaders of the configuration, which read best together.)
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from qforge.sim.model.capacity import tiles
from qforge.sim.model.errors import QforgeError, shown, shown_path
from qforge.sim.model.saturation import signed_range
from qforge.sim.model.vrq_format import VRQ_LIMITS, VrqFormat, range_stride_error, vrq_range_bits

__all__ = ["Config", "ConfigError", "SCHEMA", "PE_DESIGNS", "DEFAULT_PE",
           "FUSED_MAX_BLOCK_WIDTH", "VRQ_SCHEMA", "ZERO_SKIPPING_SCHEMA",
           "OUTPUT_STAGE_SCHEMA", "PAIRED_HELP", "PRESETS", "read_toml",
           "load_preset", "load_spec", "from_dict", "preset_names"]


class ConfigError(QforgeError, ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Field:
    """One configuration key: its section, its limits and what it means."""

    section: str
    name: str
    minimum: int
    maximum: int
    help: str
    power_of_two: bool = False

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"


#: Every key a spec may (and must) contain, with its allowed range.
SCHEMA: tuple[Field, ...] = (
    Field("array", "rows", 1, 64, "PE rows of the systolic array (R)"),
    Field("array", "cols", 1, 64, "PE columns of the systolic array (C)"),
    Field("arithmetic", "operand_width", 2, 16,
          "bits of a two's-complement input operand (W)"),
    Field("arithmetic", "block_width", 1, 16,
          "bits per magnitude block (K); must divide operand_width"),
    Field("arithmetic", "block_multipliers", 1, 64,
          "K x K block multipliers per PE (P); a power of two", power_of_two=True),
    Field("arithmetic", "max_reduction_depth", 1, 1 << 20,
          "longest dot product (GEMM inner dimension) one command may have"),
    Field("arithmetic", "output_width", 2, 64,
          "bits of an output operand produced by the output stage"),
    Field("buffers", "depth", 1, 1 << 16,
          "words per operand buffer bank and half (one word = P operands)"),
)

#: The PE datapaths ``arithmetic.pe`` may name (an optional key; :data:`DEFAULT_PE` when
#: left out). All compute every lane's ``(-1)**(sa ^ sb) * (block_a * block_b) <<
#: ((pos_a + pos_b) * K)`` (:class:`qforge.hdl.pe.ProcessingElement`); the first two
#: differ only in where the sign is applied and take the same cycles; the third needs
#: the lanes of a cycle to share their block positions, which another lane schedule
#: gives (:func:`qforge.sim.model.cycles.issued_block_products`):
PE_DESIGNS = {
    "shifted": "each block product is shifted, then negated at its shifted width",
    "signed_product": "each 2K-bit block product is negated, then shifted as a signed "
                      "value: fewer gates per lane",
    "shared_shift": "the lanes of a cycle are P operands at one block pair, their signed "
                    "products summed and the sum shifted once: fewer gates still, but "
                    "dynamic approximation takes the cycles of all n blocks, partial "
                    "words whole cycles; no [vrq] or [zero_skipping] section",
    "fused": "W = 2K: each pair of lanes is one multiplier of 3K+1 bits a side (one "
             "ECP5 MULT18X18D or iCE40 SB_MAC16) that multiplies one operand pair whole "
             "(both kept blocks: 2 lanes per MAC) or two one-block operand pairs at once "
             "(1 lane per MAC); block_width <= 5, an even block_multipliers, no [vrq] or "
             "[zero_skipping] section",
}
#: The widest block of ``pe = "fused"``: its multiplier operands are ``3K + 1`` bits,
#: and an SB_MAC16 multiplies 16 bits a side (a MULT18X18D 18).
FUSED_MAX_BLOCK_WIDTH = 5
DEFAULT_PE = "shifted"
#: What the optional key ``arithmetic.paired`` (a boolean, false when left out) builds.
PAIRED_HELP = ("the paired precision mode (two MACs share a PE's block multipliers, "
               "qforge.sim.model.paired) and unsigned operands; the B lanes carry a second "
               "block and the accumulator one bit more; needs pe = \"shifted\" or "
               "\"signed_product\", an even block_multipliers, an even number of blocks "
               "(operand_width / block_width) and no [vrq] or [zero_skipping] section")

#: The optional ``[vrq]`` section: value-range-quantized operands (see
#: :class:`qforge.sim.model.vrq_format.VrqFormat`, whose :data:`VRQ_LIMITS` these are).
#: Without it the PEs take integer operands only.
VRQ_SCHEMA: tuple[Field, ...] = (
    Field("vrq", "code_width", *VRQ_LIMITS["code_width"],
          "N: code bits of a VRQ operand (its magnitude)"),
    Field("vrq", "range_stride", *VRQ_LIMITS["range_stride"],
          "S: binary exponents per value range; a multiple of block_width, at most N"),
    Field("vrq", "ranges", *VRQ_LIMITS["ranges"], "G: value ranges per tensor"),
)

#: The optional ``[zero_skipping]`` section: the zero-skipping array (docs/ARCHITECTURE.md,
#: "Zero skipping"). Without it the generator emits the dense systolic array.
ZERO_SKIPPING_SCHEMA: tuple[Field, ...] = (
    Field("zero_skipping", "pe_buffer_depth", 1, 1 << 16,
          "words (of P operands) of B per PE-local bank and half; at least the words "
          "of one max_reduction_depth dot product"),
)

_FIELDS_BY_SECTION: dict[str, dict[str, Field]] = {}
for _field in SCHEMA:
    _FIELDS_BY_SECTION.setdefault(_field.section, {})[_field.name] = _field
_VRQ_FIELDS = {field.name: field for field in VRQ_SCHEMA}
#: The optional ``[output_stage]`` section: how many of a result beat's C elements the
#: output stage rounds per cycle (docs/ARCHITECTURE.md, "Output stage"). Without it all
#: C, one beat per cycle; with fewer, the random-bit generators and rounding units are
#: shared and the stage takes ``C / lanes_per_cycle`` cycles per beat (the area of the
#: stage, mostly its random-bit generators, shrinks by about that factor).
OUTPUT_STAGE_SCHEMA: tuple[Field, ...] = (
    Field("output_stage", "lanes_per_cycle", 1, 64,
          "result elements the output stage rounds per cycle; must divide array.cols"),
)

_ZERO_SKIPPING_FIELDS = {field.name: field for field in ZERO_SKIPPING_SCHEMA}
_OUTPUT_STAGE_FIELDS = {field.name: field for field in OUTPUT_STAGE_SCHEMA}

#: The accumulator may not be wider than this (the golden model computes in int64).
MAX_ACCUMULATOR_WIDTH = 64

#: The largest :attr:`Config.design_size`: about 5 minutes of CPU and 3 GB of memory to
#: generate. Measured (CPU seconds of ``qforge generate``): the two-lane ``tiny`` of
#: stop 22 (244) 1.9, ``default`` (6,592) 9.1, ``sparse`` (16,480) 20.4, ``large``
#: (26,624) 32.4, 8x8 with P = 16, K = 1, W = 16 (40,576) 58.8, 32x32 with P = 4, K = 4 (106,496) 100. A 64x64
#: array with P = 64, K = 1, W = 16 (10,395,648) would take hours.
MAX_DESIGN_SIZE = 1 << 18

#: CPU seconds ``qforge generate`` takes per unit of :attr:`Config.design_size`, and its
#: fixed start-up cost (the measurements above): the estimate the command line prints
#: before a generation that takes more than a few seconds.
GENERATION_SECONDS_PER_UNIT = 1.2e-3
GENERATION_SECONDS_FIXED = 1.5

#: A configuration's name names folders, files and Verilog modules: a short ASCII
#: identifier keeps every path within the file system's limits.
MAX_NAME_LENGTH = 64


@dataclass(frozen=True)
class Config:
    """A validated accelerator configuration. Construct with :func:`from_dict`,
    :func:`load_spec` or :func:`load_preset`; direct construction validates too.

    Derived quantities (properties) are the single place where widths are computed.
    """

    name: str
    rows: int
    cols: int
    operand_width: int
    block_width: int
    block_multipliers: int
    max_reduction_depth: int
    output_width: int
    buffer_depth: int
    #: VRQ operand format (the optional [vrq] section); 0 = no VRQ support.
    vrq_code_width: int = 0
    vrq_range_stride: int = 0
    vrq_ranges: int = 0
    #: Zero-skipping array (the optional [zero_skipping] section); None = dense systolic.
    pe_buffer_depth: int | None = None
    #: Output-stage lanes per cycle (the optional [output_stage] section); None = cols.
    output_lanes_per_cycle: int | None = None
    #: The PE datapath (the optional key ``arithmetic.pe``): a key of :data:`PE_DESIGNS`.
    pe: str = DEFAULT_PE
    #: The paired precision mode and unsigned operands (the optional key
    #: ``arithmetic.paired``; :data:`PAIRED_HELP`).
    paired: bool = False

    def __post_init__(self):
        _validate(self)

    # ---- derived quantities -------------------------------------------------------
    @property
    def blocks(self) -> int:
        """B: magnitude blocks per operand, ``operand_width // block_width``."""
        return self.operand_width // self.block_width

    @property
    def max_magnitude(self) -> int:
        """Largest operand magnitude, ``2**(W-1)`` (that of the most negative value)."""
        return 1 << (self.operand_width - 1)

    @property
    def vrq(self):
        """The :class:`~qforge.sim.model.vrq_format.VrqFormat` of VRQ operands, or ``None``."""
        if not self.vrq_code_width:
            return None
        return VrqFormat(self.vrq_code_width, self.vrq_range_stride, self.vrq_ranges)

    @property
    def output_lanes(self) -> int:
        """Result elements the output stage rounds per cycle (``[output_stage]
        lanes_per_cycle``, else ``cols``)."""
        return self.cols if self.output_lanes_per_cycle is None else self.output_lanes_per_cycle

    @property
    def output_cycles_per_beat(self) -> int:
        """Cycles the output stage takes per result beat: ``cols / output_lanes``.

        >>> load_preset("default").output_cycles_per_beat
        1
        """
        return self.cols // self.output_lanes

    @property
    def zero_skipping(self) -> bool:
        """True for the zero-skipping array (a ``[zero_skipping]`` section): A rows are
        broadcast to all PEs, each PE holds its own B columns, and zero A operands are
        skipped when a command sets ``skip_zeros``."""
        return self.pe_buffer_depth is not None

    @property
    def pe_buffer_address_width(self) -> int:
        """Address bits of one PE-local B bank (two halves of ``pe_buffer_depth`` words;
        zero-skipping configurations only)."""
        return max(1, (2 * self.pe_buffer_depth - 1).bit_length())

    @property
    def word_index_width(self) -> int:
        """Bits of a word index within one dot product (0 .. max_depth_words - 1)."""
        return max(1, (self.max_depth_words - 1).bit_length())

    @property
    def vrq_code_blocks(self) -> int:
        """Blocks of a VRQ code, ``ceil(N / K)`` (0 without VRQ)."""
        return tiles(self.vrq_code_width, self.block_width)

    @property
    def vrq_range_bits(self) -> int:
        """Bits of a VRQ operand's range index (0 without VRQ)."""
        return vrq_range_bits(self.vrq_ranges) if self.vrq_code_width else 0

    @property
    def max_position(self) -> int:
        """Highest block position a PE lane can receive: ``B - 1`` for integer operands;
        with VRQ, range ``g``'s code blocks sit ``(G - 1 - g) * S / K`` blocks up, so up
        to ``(G - 1) * S / K + ceil(N / K) - 1``."""
        position = self.blocks - 1
        if self.vrq_code_width:
            position = max(position, (self.vrq_ranges - 1) * self.vrq_range_stride
                           // self.block_width + self.vrq_code_blocks - 1)
        return position

    @property
    def plain_lanes(self) -> bool:
        """One block per operand (``K = W``, ``B = 1``) and no ``[vrq]`` section: every
        mode is exact, so a PE lane carries the two's-complement operand itself and the
        PE is a plain multiply-accumulate, with no sign-magnitude split and no block
        shift (:func:`qforge.hdl.layouts.block_lane_layout`; the ``fxp8`` baseline).
        The numbers are the same."""
        return self.blocks == 1 and not self.vrq_code_width

    @property
    def pe_multipliers(self) -> int:
        """Hardware multipliers per PE: one per lane (P), or one per lane pair (P / 2)
        with ``pe = "fused"`` (hdl/pe.py; what an FPGA puts in its DSP blocks).

        >>> load_preset("tiny").pe_multipliers, load_preset("fused").pe_multipliers
        (1, 2)
        """
        return self.block_multipliers // 2 if self.pe == "fused" else self.block_multipliers

    @property
    def pe_multiplier_width(self) -> int:
        """Operand bits of each of :attr:`pe_multipliers` (unsigned, both sides): ``K``;
        ``3K + 1`` with ``pe = "fused"`` (two blocks ``2K + 1`` bits apart).

        >>> load_preset("default").pe_multiplier_width, load_preset("fused").pe_multiplier_width
        (2, 13)
        """
        return 3 * self.block_width + 1 if self.pe == "fused" else self.block_width

    @property
    def position_width(self) -> int:
        """Bits of a block position (0 .. :attr:`max_position`)."""
        return max(1, self.max_position.bit_length())

    @property
    def magnitude_width(self) -> int:
        """Bits of the widest operand magnitude a PE handles, ``K * (max_position + 1)``
        (``W`` without VRQ)."""
        return self.block_width * (self.max_position + 1)

    @property
    def max_operand_magnitude(self) -> int:
        """Largest magnitude of any operand: ``2**(W-1)``, an unsigned operand's
        ``2**W - 1`` with :attr:`paired`, or a VRQ code ``(2**N - 1) << ((G - 1) * S)`` if
        larger.

        >>> load_preset("default").max_operand_magnitude, load_preset("paired").max_operand_magnitude
        (128, 255)
        """
        largest = self.max_magnitude
        if self.paired:
            largest = (1 << self.operand_width) - 1
        if self.vrq_code_width:
            largest = max(largest, ((1 << self.vrq_code_width) - 1)
                          << ((self.vrq_ranges - 1) * self.vrq_range_stride))
        return largest

    @property
    def product_width(self) -> int:
        """Bits of an unsigned block product (K x K)."""
        return 2 * self.block_width

    @property
    def lane_sum_width(self) -> int:
        """Signed width of the sum of one cycle's P shifted block products.

        Each shifted product is below ``2**(2M)`` with ``M`` = :attr:`magnitude_width`
        (``W`` without VRQ); P of them with signs fit in ``2M + ceil(log2 P) + 1`` bits.
        """
        return 2 * self.magnitude_width + (self.block_multipliers - 1).bit_length() + 1

    @property
    def accumulator_width(self) -> int:
        """Signed accumulator width that cannot overflow.

        Every product has magnitude at most ``2**(2W-2)`` (both operands most
        negative; with VRQ, :attr:`max_operand_magnitude` squared), and every
        kept-block approximation only shrinks magnitudes, so any partial sum of a dot
        product of depth at most ``max_reduction_depth`` is bounded by
        ``max_reduction_depth * 2**(2W-2)``. The accumulator is the narrowest
        two's-complement width holding that bound (and the lane sum).
        See docs/NUMERICS.md, "Accumulation".
        """
        bound = self.max_reduction_depth * (self.max_operand_magnitude ** 2)
        return max(bound.bit_length() + 1, self.lane_sum_width)

    @property
    def max_depth_words(self) -> int:
        """Buffer words a dot product of ``max_reduction_depth`` occupies."""
        return tiles(self.max_reduction_depth, self.block_multipliers)

    @property
    def depth_field_width(self) -> int:
        """Bits of the command's ``depth_minus_one`` field."""
        return max(1, (self.max_reduction_depth - 1).bit_length())

    @property
    def tiles_field_width(self) -> int:
        """Bits of the command's ``*_tiles_minus_one`` fields (at most buffer_depth tiles)."""
        return max(1, (self.buffer_depth - 1).bit_length())

    @property
    def blocks_field_width(self) -> int:
        """Bits of a precision field holding ``blocks - 1`` or ``kept - 1``."""
        return max(1, (self.blocks - 1).bit_length())

    @property
    def buffer_address_width(self) -> int:
        """Address bits of one buffer bank (two halves of ``buffer_depth`` words)."""
        return max(1, (2 * self.buffer_depth - 1).bit_length())

    @property
    def peak_block_products_per_cycle(self) -> int:
        """Block products the whole array performs per cycle: ``R * C * P``."""
        return self.rows * self.cols * self.block_multipliers

    @property
    def generation_seconds(self) -> float:
        """About how many CPU seconds generating this design takes (from
        :attr:`design_size` and the measured cost per unit; the real time varies with the
        machine by a factor of about two).

        >>> round(load_preset("default").generation_seconds)
        9
        """
        return GENERATION_SECONDS_FIXED + GENERATION_SECONDS_PER_UNIT * self.design_size

    @property
    def design_size(self) -> int:
        """An estimate of the work of generating this design (elaborating it with
        Amaranth and writing its Verilog), in adder and register bits of the array:
        ``R * C * (P * lane_sum_width + accumulator_width)`` (each PE's P shifted lanes
        into its adder tree, and its accumulator), 5/2 of that for the zero-skipping
        array (its PEs also select their own B blocks). Generation time grew in
        proportion: ``qforge generate`` took about 1 to 1.4 ms of CPU per bit plus a
        fixed 1.5 s, and about 10 kB of memory per bit, on the development machine
        (see :data:`MAX_DESIGN_SIZE`). At most :data:`MAX_DESIGN_SIZE`.

        >>> [load_preset(name).design_size for name in ("tiny", "default", "large",
        ...                                              "sparse")]
        [168, 6592, 26624, 16480]
        """
        per_pe = self.block_multipliers * self.lane_sum_width + self.accumulator_width
        size = self.rows * self.cols * per_pe
        return size * 5 // 2 if self.zero_skipping else size

    def with_zero_skipping(self, pe_buffer_depth: int | None = None) -> "Config":
        """The same array built as the zero-skipping array (``self`` if it already is):
        name ``<name>_skipping``, ``pe_buffer_depth`` defaulting to one
        ``max_reduction_depth`` dot product (the ``sparse`` preset is ``default``'s).

        >>> load_preset("default").with_zero_skipping() == dataclasses.replace(
        ...     load_preset("sparse"), name="default_skipping")
        True
        """
        if self.zero_skipping:
            return self
        if pe_buffer_depth is None:
            pe_buffer_depth = self.max_depth_words
        return dataclasses.replace(self, name=f"{self.name}_skipping",
                                   pe_buffer_depth=pe_buffer_depth)

    def zero_skipping_error(self) -> str | None:
        """Why this array cannot be built as the zero-skipping array (the
        :class:`ConfigError` of :meth:`with_zero_skipping`, e.g. a PE design that needs the
        dense systolic array), or ``None`` where it can.

        >>> load_preset("default").zero_skipping_error() is None
        True
        >>> print(load_preset("fused").zero_skipping_error())  # doctest: +ELLIPSIS
        arithmetic.pe = 'fused': needs integer operands on the dense systolic array: ...
        """
        try:
            self.with_zero_skipping()
        except ConfigError as error:
            return str(error)
        return None

    # ---- conversions ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as nested sections, the inverse of :func:`from_dict`."""
        values = dataclasses.asdict(self)
        out: dict[str, Any] = {"name": values["name"]}
        for field in SCHEMA:
            attribute = _attribute_name(field)
            out.setdefault(field.section, {})[field.name] = values[attribute]
        if self.pe != DEFAULT_PE:     # left out when default: existing specs are unchanged
            out["arithmetic"]["pe"] = self.pe
        if self.paired:
            out["arithmetic"]["paired"] = True
        if self.vrq_code_width:
            out["vrq"] = {field.name: values[_attribute_name(field)] for field in VRQ_SCHEMA}
        if self.zero_skipping:
            out["zero_skipping"] = {field.name: values[_attribute_name(field)]
                                    for field in ZERO_SKIPPING_SCHEMA}
        if self.output_lanes_per_cycle is not None:
            out["output_stage"] = {field.name: values[_attribute_name(field)]
                                   for field in OUTPUT_STAGE_SCHEMA}
        return out

    def differences(self, other: "Config") -> list[str]:
        """The spec keys (``section.key``, as in :data:`SCHEMA`) whose values differ
        between this configuration and ``other``, in spec order; the ``name`` is not
        compared (two names for the same hardware build the same design). An optional
        section present in only one of them differs in each of its keys.

        >>> load_preset("default").differences(load_preset("sparse"))
        ['zero_skipping.pe_buffer_depth']
        >>> load_preset("tiny").differences(dataclasses.replace(load_preset("tiny"), name="x"))
        []
        """
        def flat(config: "Config") -> dict[str, Any]:
            return {f"{section}.{key}": value
                    for section, table in config.to_dict().items() if section != "name"
                    for key, value in table.items()}

        mine, theirs = flat(self), flat(other)
        keys = [*mine, *(key for key in theirs if key not in mine)]
        return [key for key in keys if mine.get(key) != theirs.get(key)]

    def derived(self) -> dict[str, int]:
        """Every derived width, by name (written into the manifest)."""
        return {name: getattr(self, name) for name in (
            "blocks", "max_magnitude", "max_operand_magnitude", "max_position",
            "position_width", "magnitude_width", "product_width",
            "lane_sum_width", "accumulator_width", "max_depth_words",
            "depth_field_width", "tiles_field_width", "blocks_field_width",
            "buffer_address_width", "peak_block_products_per_cycle", "output_lanes",
            "output_cycles_per_beat")} | ({
            "pe_buffer_address_width": self.pe_buffer_address_width,
            "word_index_width": self.word_index_width} if self.zero_skipping else {})

    def to_toml(self) -> str:
        """The spec as TOML text that :func:`load_spec` reads back."""
        spec = self.to_dict()
        lines = [f'name = "{spec["name"]}"']
        for section in [*_FIELDS_BY_SECTION, "vrq", "zero_skipping", "output_stage"]:
            if section not in spec:
                continue
            lines.append("")
            lines.append(f"[{section}]")
            for key, value in spec[section].items():
                lines.append(f'{key} = "{value}"' if isinstance(value, str)
                             else f"{key} = {str(value).lower()}" if isinstance(value, bool)
                             else f"{key} = {value}")
        return "\n".join(lines) + "\n"


def _attribute_name(field: Field) -> str:
    if field.section == "vrq":
        return f"vrq_{field.name}"
    if field.section == "zero_skipping":
        return field.name
    if field.section == "output_stage":
        return "output_lanes_per_cycle"
    return "buffer_depth" if field.path == "buffers.depth" else field.name


def _fail(path: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{path} = {shown(value)}: {allowed}")


def _check_integer(field: Field, value: Any) -> None:
    """The value must be an int (not a bool) within the field's range."""
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field.path, value, f"must be an integer in {field.minimum} .. "
              f"{field.maximum} ({field.help}), not {type(value).__name__}")
    if not field.minimum <= value <= field.maximum:
        _fail(field.path, value,
              f"allowed range is {field.minimum} .. {field.maximum} ({field.help})")


def _validate(config: Config) -> None:
    name = config.name
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() \
            or len(name) > MAX_NAME_LENGTH:
        _fail("name", name, f"must be a non-empty identifier of at most "
              f"{MAX_NAME_LENGTH} ASCII characters (letters, digits, _; not starting with "
              f"a digit)")
    for field in SCHEMA:
        value = getattr(config, _attribute_name(field))
        _check_integer(field, value)
        if field.power_of_two and value & (value - 1):
            powers = ", ".join(str(1 << i) for i in range(field.maximum.bit_length())
                               if 1 << i >= field.minimum)
            _fail(field.path, value, f"must be a power of two: {powers}")
    if not isinstance(config.pe, str) or config.pe not in PE_DESIGNS:
        _fail("arithmetic.pe", config.pe, "allowed: " + "; ".join(
            f'"{name}" ({meaning})' for name, meaning in PE_DESIGNS.items()))
    if config.pe == "shared_shift" and (config.vrq_code_width or config.zero_skipping):
        _fail("arithmetic.pe", config.pe, "needs integer operands on the dense systolic "
              "array: leave out the [vrq] and [zero_skipping] sections (their block "
              "positions differ per operand)")
    if config.pe == "fused":
        _validate_fused(config)
    _validate_paired(config)
    _validate_vrq(config)
    width = config.operand_width
    if config.block_width > width or width % config.block_width:
        divisors = ", ".join(str(k) for k in range(1, width + 1) if width % k == 0)
        _fail("arithmetic.block_width", config.block_width,
              f"must divide arithmetic.operand_width ({width}); allowed: {divisors}")
    if config.accumulator_width > MAX_ACCUMULATOR_WIDTH:
        _fail_accumulator(config)
    if config.max_depth_words > config.buffer_depth:
        _fail("arithmetic.max_reduction_depth", config.max_reduction_depth,
              f"one dot product must fit in a buffer bank: at most buffers.depth * "
              f"block_multipliers = {config.buffer_depth * config.block_multipliers}")
    _validate_zero_skipping(config)
    _validate_output_stage(config)
    if config.output_width > config.accumulator_width:
        _fail("arithmetic.output_width", config.output_width,
              f"must not exceed the accumulator width ({config.accumulator_width})")
    if config.design_size > MAX_DESIGN_SIZE:
        _fail_design_size(config)


def _fail_design_size(config: Config) -> None:
    """The design is too large to generate in minutes: name the fields that size it."""
    per_pe = (f"{config.block_multipliers} x {config.lane_sum_width} + "
              f"{config.accumulator_width}")
    skipping = " x 5/2 (zero skipping)" if config.zero_skipping else ""
    raise ConfigError(
        f"array.rows = {config.rows}, array.cols = {config.cols}, "
        f"arithmetic.block_multipliers = {config.block_multipliers}, "
        f"arithmetic.operand_width = {config.operand_width}: the design is too large to "
        f"generate: its size, rows x cols x (block_multipliers x lane-sum bits + "
        f"accumulator bits){skipping} = {config.rows} x {config.cols} x ({per_pe})"
        f"{' x 5/2' if skipping else ''} = {config.design_size:,}, is above the limit "
        f"{MAX_DESIGN_SIZE:,} (about 5 minutes of generation); use fewer rows, columns "
        f"or block multipliers, or narrower operands")


def _unvalidated(config: Config, **changes) -> Config:
    """A copy of ``config`` with ``changes``, *not* validated: only to ask a candidate
    configuration's derived widths while validating (validating it would recurse)."""
    copy = object.__new__(Config)
    for field in dataclasses.fields(Config):
        object.__setattr__(copy, field.name, changes.get(field.name,
                                                         getattr(config, field.name)))
    return copy


def _fail_accumulator(config: Config) -> None:
    """The accumulator ``config`` needs is wider than :data:`MAX_ACCUMULATOR_WIDTH`:
    blame the VRQ fields when the integer operands alone fit (VRQ operands are then
    the cause), else the reduction depth, each with the real limit."""
    depth, width = config.max_reduction_depth, config.accumulator_width
    needs = (f"needs a {width}-bit accumulator for dot products of "
             f"arithmetic.max_reduction_depth = {depth}; at most {MAX_ACCUMULATOR_WIDTH} "
             f"bits are allowed")
    integer_only = _unvalidated(config, vrq_code_width=0, vrq_range_stride=0, vrq_ranges=0)
    if config.vrq_code_width and integer_only.accumulator_width <= MAX_ACCUMULATOR_WIDTH:
        code, stride, ranges = (config.vrq_code_width, config.vrq_range_stride,
                                config.vrq_ranges)
        # Fewer ranges only shrink the widths, and one range always fits (a code is
        # narrower than an integer operand), so a largest count that fits exists.
        largest = max(g for g in range(1, ranges)
                      if _unvalidated(config, vrq_ranges=g).accumulator_width
                      <= MAX_ACCUMULATOR_WIDTH)
        _fail("vrq.ranges", ranges,
              f"with vrq.code_width = {code} and vrq.range_stride = {stride} the largest "
              f"VRQ operand magnitude, (2**{code} - 1) << {(ranges - 1) * stride} = "
              f"{config.max_operand_magnitude}, {needs}; vrq.ranges must be at most "
              f"{largest} (or lower vrq.code_width, vrq.range_stride or "
              f"arithmetic.max_reduction_depth)")
    _fail("arithmetic.max_reduction_depth", depth,
          f"{needs} with {config.operand_width}-bit operands, so the depth must be at "
          f"most {signed_range(MAX_ACCUMULATOR_WIDTH)[1] // config.max_operand_magnitude ** 2}")


def _validate_fused(config: Config) -> None:
    """The limits of ``pe = "fused"`` (:data:`PE_DESIGNS`), one :class:`ConfigError` each."""
    if config.vrq_code_width or config.zero_skipping:
        _fail("arithmetic.pe", config.pe, "needs integer operands on the dense systolic "
              "array: leave out the [vrq] and [zero_skipping] sections")
    if config.operand_width != 2 * config.block_width:
        _fail("arithmetic.block_width", config.block_width,
              f'with arithmetic.pe = "fused" must be half of arithmetic.operand_width '
              f"({config.operand_width}): two blocks per operand, one lane pair per MAC")
    if config.block_width > FUSED_MAX_BLOCK_WIDTH:
        _fail("arithmetic.block_width", config.block_width,
              f'with arithmetic.pe = "fused" allowed: 1 .. {FUSED_MAX_BLOCK_WIDTH} (a '
              f"lane pair's multiplier takes 3K + 1 bits a side; an SB_MAC16 takes 16)")
    if config.block_multipliers % 2:
        _fail("arithmetic.block_multipliers", config.block_multipliers,
              'with arithmetic.pe = "fused" must be even (lanes are used in pairs)')


def _validate_paired(config: Config) -> None:
    """The limits of ``arithmetic.paired`` (:data:`PAIRED_HELP`), one :class:`ConfigError`
    each: a slot's ``n x Lb`` block products fill whole cycles of a word's ``P / 2`` pairs
    only with ``n`` and ``P`` even (hdl/scheduler.py)."""
    if not isinstance(config.paired, bool):
        _fail("arithmetic.paired", config.paired, "must be true or false")
    if not config.paired:
        return
    if config.pe not in ("shifted", "signed_product"):
        _fail("arithmetic.paired", True, f'needs arithmetic.pe = "shifted" or '
              f'"signed_product" (not "{config.pe}"): its lanes take products of any '
              f"block positions")
    if config.vrq_code_width or config.pe_buffer_depth is not None:
        _fail("arithmetic.paired", True, "needs integer operands on the dense systolic "
              "array: leave out the [vrq] and [zero_skipping] sections")
    if config.block_multipliers % 2:
        _fail("arithmetic.block_multipliers", config.block_multipliers,
              "with arithmetic.paired must be even (a word holds P / 2 pairs)")
    blocks = config.operand_width // max(1, config.block_width)
    if blocks % 2:
        _fail("arithmetic.block_width", config.block_width,
              f"with arithmetic.paired operand_width / block_width must be even (now "
              f"{blocks} blocks): a slot of n x Lb block products must fill whole cycles")


def _validate_vrq(config: Config) -> None:
    values = [getattr(config, _attribute_name(field)) for field in VRQ_SCHEMA]
    if values == [0, 0, 0]:
        return
    for field, value in zip(VRQ_SCHEMA, values):
        _check_integer(field, value)
    code, stride, ranges = values
    reason = range_stride_error(code, stride)
    if reason:
        _fail("vrq.range_stride", stride, reason)
    if stride % config.block_width:
        _fail("vrq.range_stride", stride, f"must be a multiple of arithmetic.block_width "
              f"({config.block_width}): a range moves the code by whole blocks")
    storage = 1 + code + vrq_range_bits(ranges)
    if storage > config.operand_width:
        _fail("vrq.code_width", code, f"a VRQ operand (sign, {code} code bits, "
              f"{vrq_range_bits(ranges)} range bits = {storage} bits) must fit "
              f"in arithmetic.operand_width ({config.operand_width})")


def _validate_zero_skipping(config: Config) -> None:
    if config.pe_buffer_depth is None:
        return
    (field,) = ZERO_SKIPPING_SCHEMA
    _check_integer(field, config.pe_buffer_depth)
    if config.pe_buffer_depth < config.max_depth_words:
        _fail(field.path, config.pe_buffer_depth,
              f"must hold one dot product of arithmetic.max_reduction_depth "
              f"({config.max_reduction_depth} operands = {config.max_depth_words} words "
              f"of {config.block_multipliers}): at least {config.max_depth_words}")


def _validate_output_stage(config: Config) -> None:
    if config.output_lanes_per_cycle is None:
        return
    (field,) = OUTPUT_STAGE_SCHEMA
    _check_integer(field, config.output_lanes_per_cycle)
    if config.cols % config.output_lanes_per_cycle:
        divisors = ", ".join(str(d) for d in range(1, config.cols + 1) if config.cols % d == 0)
        _fail(field.path, config.output_lanes_per_cycle,
              f"must divide array.cols ({config.cols}); allowed: {divisors}")


def _read_section(source: str, section: str, table: Any, fields: dict[str, Field],
                  values: dict[str, Any]) -> None:
    """Copy one TOML table's keys into ``values``: it must be a table holding exactly
    the section's keys."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {section} must be a table [{section}], "
                          f"not {type(table).__name__}")
    for key in table:
        if key not in fields:
            unknown = f"{section}.{key}"
            raise ConfigError(f"{source}: unknown key {shown(unknown)}; allowed keys "
                              f"in [{section}]: {', '.join(fields)}")
    for name, field in fields.items():
        if name not in table:
            raise ConfigError(f"{source}: missing key {field.path} ({field.help}; "
                              f"{field.minimum} .. {field.maximum})")
        values[_attribute_name(field)] = table[name]


def from_dict(spec: dict[str, Any], *, source: str = "spec") -> Config:
    """Validate a nested spec dictionary (as read from TOML) into a :class:`Config`.

    Unknown sections or keys, missing keys and wrong types are errors.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: a spec must be a table of sections, "
                          f"not {type(spec).__name__}")
    known_top = {"name", "vrq", "zero_skipping", "output_stage", *_FIELDS_BY_SECTION}
    for key in spec:
        if key not in known_top:
            raise ConfigError(f"{source}: unknown key {shown(key)}; allowed top-level keys: "
                              f"{', '.join(sorted(known_top))}")
    values: dict[str, Any] = {"name": spec.get("name", "custom")}
    for section, fields in _FIELDS_BY_SECTION.items():
        table = spec.get(section)
        if table is None:
            raise ConfigError(f"{source}: missing section [{section}] with keys "
                              f"{', '.join(fields)}")
        if section == "arithmetic" and isinstance(table, dict) and "pe" in table:
            table = dict(table)             # the optional key: validated by Config
            values["pe"] = table.pop("pe")
        if section == "arithmetic" and isinstance(table, dict) and "paired" in table:
            table = dict(table)             # the optional key: validated by Config
            values["paired"] = table.pop("paired")
        _read_section(source, section, table, fields, values)
    if "vrq" in spec:
        _read_section(source, "vrq", spec["vrq"], _VRQ_FIELDS, values)
        # Zeros are how a Config says "no VRQ": a [vrq] section must not say it silently.
        for field in VRQ_SCHEMA:
            try:
                _check_integer(field, values[_attribute_name(field)])
            except ConfigError as error:
                raise ConfigError(f"{source}: {error} (leave out the [vrq] section for a "
                                  f"configuration without VRQ operands)") from None
    if "zero_skipping" in spec:
        _read_section(source, "zero_skipping", spec["zero_skipping"],
                      _ZERO_SKIPPING_FIELDS, values)
    if "output_stage" in spec:
        _read_section(source, "output_stage", spec["output_stage"], _OUTPUT_STAGE_FIELDS,
                      values)
    try:
        return Config(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


#: The largest TOML file (spec, training config) read: a spec is a few hundred bytes; a
#: bound keeps one bad argument (a log file, an image) from filling the memory.
MAX_TOML_BYTES = 1 << 20


def read_toml(path, source: str, what: str, error: type[ConfigError] = ConfigError) -> dict:
    """Read a UTF-8 TOML file (a path or a package resource) into a dictionary.

    Any failure raises ``error`` naming ``source``: unreadable (``cannot read WHAT``), not
    a regular file (a device or FIFO could be read for ever), larger than
    :data:`MAX_TOML_BYTES`, not UTF-8 or not valid TOML.
    """
    try:
        if isinstance(path, Path):      # a package resource is always a small file
            if not path.is_file() and path.exists():
                raise error(f"{source}: cannot read {what}: not a regular file")
            if path.exists() and path.stat().st_size > MAX_TOML_BYTES:
                raise error(f"{source}: {what} of {path.stat().st_size} bytes: at most "
                            f"{MAX_TOML_BYTES} ({MAX_TOML_BYTES // 1024} KiB) are read")
        text = path.read_text(encoding="utf-8")
    except OSError as failure:
        raise error(f"{source}: cannot read {what}: {failure.strerror}") from None
    except UnicodeDecodeError as failure:
        raise error(f"{source}: not valid TOML (TOML files are UTF-8): {failure}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as failure:
        raise error(f"{source}: not valid TOML: {failure}") from None
    except ValueError:          # Python's limit on the digits of an int it converts
        raise error(f"{source}: a number has more than {sys.get_int_max_str_digits()} "
                    f"digits") from None
    except RecursionError:      # tomllib parses nested arrays and tables recursively
        raise error(f"{source}: arrays or inline tables nested too deeply") from None


def load_spec(path: str | Path) -> Config:
    """Read and validate a TOML spec file."""
    path = Path(path)
    return from_dict(read_toml(path, shown_path(path), "spec"), source=shown_path(path))


def preset_names() -> list[str]:
    """Names of the built-in presets (``gen/presets/*.toml``)."""
    folder = resources.files("qforge.gen") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name: str) -> Config:
    """Load a built-in preset by name."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"preset = {name!r}: unknown preset; allowed: {', '.join(names)}")
    path = resources.files("qforge.gen") / "presets" / f"{name}.toml"
    source = f"preset {name}"
    return from_dict(read_toml(path, source, "preset"), source=source)


PRESETS = ("tiny", "default", "large", "sparse", "ulx3s", "fxp8", "shared", "fused",
           "paired")
