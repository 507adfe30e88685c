"""The qforge instruction set: opcodes and instruction word fields, defined once.

Every instruction is one 64-bit word (:data:`INSTRUCTION_WIDTH`): an 8-bit ``opcode``
in bits 0-7 and up to 56 bits of operand fields above it, laid out by the
:data:`OPERAND_FIELDS` of the opcode (fields from bit 8 upwards in the order listed);
every bit above an opcode's fields is *reserved* and must be zero. The encoding does
not depend on the hardware configuration: field widths are architectural, and each
configuration checks the values against its own limits
(:func:`qforge.sim.model.machine.instruction_error`, the same rules the
:class:`qforge.hdl.decoder.InstructionDecoder` applies). docs/ISA.md describes every
instruction with its semantics and rules.

The hardware decoder, the golden machine (:mod:`qforge.sim.model.machine`), the assembler
(:mod:`qforge.gen.asm`) and the runtimes encode and decode words with
:func:`encode` and :func:`decode`, which read the bit positions from these layouts.

>>> word = encode(Opcode.GEMM, m=32, n=64, k=65)
>>> hex(word)
'0x410040002004'
>>> decode(word)
(<Opcode.GEMM: 4>, {'m': 32, 'n': 64, 'k': 65, 'skip_zeros': 0, 'add': 0, 'saturate_bits': 0})
"""

from __future__ import annotations

import enum

from qforge.sim.model.errors import QforgeError

__all__ = ["INSTRUCTION_WIDTH", "OPCODE_WIDTH", "OPERAND_BITS", "Opcode", "Operand",
           "OPERAND_FIELDS", "operand_fields", "operand_bits", "encode", "decode",
           "reserved_bits", "EncodingError"]

#: Bits of one instruction word.
INSTRUCTION_WIDTH = 64
#: Bits of the opcode field (bits 0 .. 7).
OPCODE_WIDTH = 8
#: Bits available for operand fields (bits 8 .. 63).
OPERAND_BITS = INSTRUCTION_WIDTH - OPCODE_WIDTH


class Opcode(enum.IntEnum):
    """Instruction opcodes (bits 0-7 of a word). Any other value is invalid."""

    NOP = 0x00        #: nothing
    PRECISION = 0x01  #: set the precision mode of operand A or B for later GEMMs
    OUTPUT = 0x02     #: set the output stage (quantize, shift, rounding, ReLU, VRQ)
    SEED = 0x03       #: set the random-bit key (seed, tensor) of stochastic rounding
    GEMM = 0x04       #: C = A @ B through the output stage, optionally added to an addend
    FENCE = 0x05      #: wait until every earlier instruction's results have left
    LOAD = 0x06       #: memory side: where the next GEMM's A, B or addend is read
    STORE = 0x07      #: memory side: where the next GEMM's results are written


class Operand(enum.IntEnum):
    """Which operand a PRECISION or LOAD instruction names."""

    A = 0
    B = 1
    #: The addend of a GEMM with ``add = 1`` (LOAD only).
    ADDEND = 2


#: The operand fields of every opcode: name -> width in bits, laid out from bit 8 of the
#: word upwards in this order (at most :data:`OPERAND_BITS` bits in all).
OPERAND_FIELDS: dict[Opcode, dict[str, int]] = {
    Opcode.NOP: {},
    # blocks and kept hold the counts themselves (1 .. 15); 0 is invalid. unsigned and
    # the paired mode's fields (paired, high, low, round) need arithmetic.paired.
    Opcode.PRECISION: {"operand": 1, "blocks": 4, "kept": 4, "dynamic": 1, "vrq": 1,
                       "unsigned": 1, "paired": 1, "high": 4, "low": 4, "round": 1},
    Opcode.OUTPUT: {"quantize": 1, "shift": 6, "rounding": 2, "relu": 1, "vrq": 1,
                    "exponent": 6, "wide": 1},
    Opcode.SEED: {"seed": 32, "tensor": 16},
    # m, n, k hold the sizes themselves (1 .. 65535); 0 is invalid.
    Opcode.GEMM: {"m": 16, "n": 16, "k": 16, "skip_zeros": 1, "add": 1,
                  "saturate_bits": 6},
    Opcode.FENCE: {},
    Opcode.LOAD: {"operand": 2, "transpose": 1, "address": 24, "stride": 24},
    Opcode.STORE: {"transpose": 1, "address": 24, "stride": 24},
}


def operand_bits(opcode: Opcode) -> int:
    """Bits used by the operand fields of ``opcode`` (those above are reserved).

    >>> operand_bits(Opcode.SEED)
    48
    """
    return sum(OPERAND_FIELDS[Opcode(opcode)].values())


def operand_fields(opcode: Opcode) -> list[tuple[str, int, int]]:
    """``(name, offset, width)`` of each operand field of ``opcode``, the offset counted
    from bit 0 of the instruction word.

    >>> operand_fields(Opcode.SEED)
    [('seed', 8, 32), ('tensor', 40, 16)]
    """
    fields, offset = [], OPCODE_WIDTH
    for name, width in OPERAND_FIELDS[Opcode(opcode)].items():
        fields.append((name, offset, width))
        offset += width
    return fields


for _opcode in Opcode:
    assert operand_bits(_opcode) <= OPERAND_BITS, _opcode


class EncodingError(QforgeError, ValueError):
    """A value does not fit its instruction field, or a word is not an instruction."""


def encode(opcode: Opcode, **values: int) -> int:
    """The 64-bit word of ``opcode`` with the given field values (missing fields are 0).

    Only the encoding is checked (every value fits its field); whether the values are
    allowed on a configuration is :func:`qforge.sim.model.machine.instruction_error`'s call.

    >>> encode(Opcode.SEED, seed=1, tensor=2) == 0x03 | 1 << 8 | 2 << 40
    True
    >>> encode(Opcode.GEMM, m=1 << 16)
    Traceback (most recent call last):
    ...
    EncodingError: GEMM.m = 65536: the field has 16 bits (0 .. 65535)
    """
    opcode = Opcode(opcode)
    fields = operand_fields(opcode)
    names = {path for path, _, _ in fields}
    unknown = sorted(set(values) - names)
    if unknown:
        raise EncodingError(f"{opcode.name} has no field {unknown[0]!r}; its fields: "
                            + (", ".join(path for path, _, _ in fields) or "none"))
    word = int(opcode)
    for path, offset, width in fields:
        value = values.get(path, 0)
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int) or not 0 <= value < (1 << width):
            raise EncodingError(f"{opcode.name}.{path} = {value!r}: the field has {width} "
                                f"bits (0 .. {(1 << width) - 1})")
        word |= value << offset
    return word


def decode(word: int) -> tuple[Opcode | int, dict[str, int]]:
    """``(opcode, fields)`` of a word; an unknown opcode comes back as its integer with
    no fields. Reserved bits are not looked at (see :func:`reserved_bits`).
    """
    if isinstance(word, bool) or not isinstance(word, int) \
            or not 0 <= word < (1 << INSTRUCTION_WIDTH):
        raise EncodingError(f"instruction word {word!r}: must be an integer 0 .. 2**64 - 1")
    raw = word & ((1 << OPCODE_WIDTH) - 1)
    try:
        opcode = Opcode(raw)
    except ValueError:
        return raw, {}
    return opcode, {path: (word >> offset) & ((1 << width) - 1)
                    for path, offset, width in operand_fields(opcode)}


def reserved_bits(word: int) -> int:
    """The bits of ``word`` above its opcode's fields (must be 0), shifted down to bit 0;
    0 for an unknown opcode (that is invalid anyway).

    >>> reserved_bits(encode(Opcode.NOP) | 1 << 63) == 1 << 55
    True
    """
    opcode, _ = decode(word)
    if not isinstance(opcode, Opcode):
        return 0
    used = OPCODE_WIDTH + operand_bits(opcode)
    return word >> used
