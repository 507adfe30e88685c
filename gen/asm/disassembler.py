"""The disassembler: one instruction word back to the assembly text that makes it."""

from __future__ import annotations

from qforge.gen.asm.syntax import OPERAND_NAMES, ROUNDING_NAMES
from qforge.sim.model.isa import Opcode, decode, reserved_bits

__all__ = ["disassemble"]


def disassemble(word: int) -> str:
    """Assembly text of one word that :func:`qforge.gen.asm.assemble` turns back into
    the same word. A word that is not an instruction (unknown opcode, reserved bits set)
    becomes ``.inst 0x...``, the raw-word directive.

    >>> from qforge.sim.model.isa import encode
    >>> from qforge.sim.model.rounding import Rounding
    >>> disassemble(encode(Opcode.LOAD, operand=1, address=64, stride=65, transpose=1))
    'load b, 64, stride=65, transpose'
    >>> disassemble(encode(Opcode.OUTPUT, quantize=1, shift=6, rounding=Rounding.STOCHASTIC,
    ...                      relu=1))
    'output quantize, shift=6, rounding=stochastic, relu'
    >>> disassemble(0x1ff)
    '.inst 0x00000000000001ff  ; unknown opcode 0xff'
    """
    opcode, fields = decode(word)
    if not isinstance(opcode, Opcode):
        return f".inst {word:#018x}  ; unknown opcode {opcode:#04x}"
    if reserved_bits(word):
        return f".inst {word:#018x}  ; reserved bits set"
    mnemonic = opcode.name.lower()
    parts: list[str] = []

    def flag(name):
        if fields[name]:
            parts.append(name)

    def keyword(name, always=False):
        if fields[name] or always:
            parts.append(f"{name}={fields[name]}")

    if opcode == Opcode.PRECISION:
        parts.append(OPERAND_NAMES[fields["operand"]])
        keyword("blocks", True)
        keyword("kept", True)
        flag("dynamic")
        flag("vrq")
        flag("unsigned")
        flag("paired")
        keyword("high")
        keyword("low")
        flag("round")
    elif opcode == Opcode.OUTPUT:
        flag("quantize")
        keyword("shift")
        if fields["rounding"]:
            parts.append("rounding=" + ROUNDING_NAMES.get(fields["rounding"],
                                                           str(fields["rounding"])))
        flag("relu")
        flag("vrq")
        keyword("exponent")
        flag("wide")
    elif opcode == Opcode.SEED:
        parts.append(f"{fields['seed']:#x}")
        keyword("tensor")
    elif opcode == Opcode.GEMM:
        parts += [str(fields["m"]), str(fields["n"]), str(fields["k"])]
        flag("skip_zeros")
        flag("add")
        keyword("saturate_bits", bool(fields["add"]))   # required with add
    elif opcode == Opcode.LOAD:
        parts.append(OPERAND_NAMES.get(fields["operand"], str(fields["operand"])))
        parts.append(str(fields["address"]))
        keyword("stride", True)
        flag("transpose")
    elif opcode == Opcode.STORE:
        parts.append(str(fields["address"]))
        keyword("stride", True)
        flag("transpose")
    return mnemonic + (" " + ", ".join(parts) if parts else "")
