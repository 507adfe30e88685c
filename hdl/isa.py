"""Amaranth views of the instruction words defined in :mod:`qforge.sim.model.isa`.

The opcodes, field names, widths and order are defined once, in the golden model
(:data:`~qforge.sim.model.isa.OPERAND_FIELDS`); this module only builds the
:class:`~amaranth.lib.data.StructLayout` of each opcode that the hardware decoder
views a word with, so the layouts cannot disagree with
:func:`~qforge.sim.model.isa.encode`.

>>> from qforge.sim.model.isa import Opcode, operand_fields
>>> fields = layout_fields(operand_layout(Opcode.SEED))
>>> [(name, offset + 8, width) for name, offset, width, _ in fields]
[('seed', 8, 32), ('tensor', 40, 16)]
>>> _ == operand_fields(Opcode.SEED)
True
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data

from qforge.hdl.layouts import layout_fields  # noqa: F401 - the module doctest uses it
from qforge.sim.model.isa import OPCODE_WIDTH, OPERAND_BITS, OPERAND_FIELDS, Opcode

__all__ = ["instruction_layout", "operand_layout"]


def operand_layout(opcode: Opcode) -> data.StructLayout:
    """The operand fields of ``opcode``, from bit 8 of the word upwards (at most 56 bits).

    >>> operand_layout(Opcode.SEED).size
    48
    """
    return data.StructLayout({name: unsigned(width)
                              for name, width in OPERAND_FIELDS[Opcode(opcode)].items()})


def instruction_layout() -> data.StructLayout:
    """One instruction word: ``opcode`` (8 bits) and ``operands`` (56 bits, viewed with
    the opcode's :func:`operand_layout`; the bits above its fields are reserved)."""
    return data.StructLayout({"opcode": unsigned(OPCODE_WIDTH),
                              "operands": unsigned(OPERAND_BITS)})
