"""The instruction forms of the assembly language: which mnemonic is which opcode, which
fields positional operands fill, which fields an instruction must name, and the names
some field values go by. The parser reads them one way, the disassembler the other.

>>> MNEMONICS["gemm"], POSITIONAL[Opcode.GEMM]
(<Opcode.GEMM: 4>, ('m', 'n', 'k'))
>>> ROUNDING_NAMES[Rounding.STOCHASTIC], OPERAND_NAMES[Operand.ADDEND]
('stochastic', 'addend')
"""

from __future__ import annotations

from qforge.sim.model.isa import OPERAND_FIELDS, Opcode, Operand
from qforge.sim.model.rounding import Rounding

__all__ = ["FIELDS", "MNEMONICS", "POSITIONAL", "REQUIRED", "NAMED_VALUES",
           "ROUNDING_NAMES", "OPERAND_NAMES"]

#: Field names and widths of every opcode, in word order.
FIELDS: dict[Opcode, dict[str, int]] = OPERAND_FIELDS

#: Instruction mnemonics: the opcode names in lower case.
MNEMONICS: dict[str, Opcode] = {opcode.name.lower(): opcode for opcode in Opcode}

#: Fields that positional operands fill, in order, per opcode.
POSITIONAL: dict[Opcode, tuple[str, ...]] = {
    Opcode.PRECISION: ("operand", "blocks", "kept"),
    Opcode.SEED: ("seed", "tensor"),
    Opcode.GEMM: ("m", "n", "k"),
    Opcode.LOAD: ("operand", "address", "stride"),
    Opcode.STORE: ("address", "stride"),
}

#: Fields an instruction must name (the others default to 0).
REQUIRED: dict[Opcode, tuple[str, ...]] = {
    Opcode.PRECISION: ("operand", "blocks", "kept"),
    Opcode.SEED: ("seed",),
    Opcode.GEMM: ("m", "n", "k"),
    Opcode.LOAD: ("operand", "address", "stride"),
    Opcode.STORE: ("address", "stride"),
}

#: Names accepted as values of some fields (besides numbers).
NAMED_VALUES: dict[tuple[Opcode, str], dict[str, int]] = {
    (Opcode.PRECISION, "operand"): {"a": Operand.A, "b": Operand.B},
    (Opcode.LOAD, "operand"): {"a": Operand.A, "b": Operand.B, "addend": Operand.ADDEND},
    (Opcode.OUTPUT, "rounding"): {"nearest": Rounding.NEAREST_EVEN,
                                  "truncate": Rounding.TRUNCATE,
                                  "stochastic": Rounding.STOCHASTIC},
}

#: The assembly name of every rounding code.
ROUNDING_NAMES: dict[int, str] = {value: name for name, value
                                  in NAMED_VALUES[(Opcode.OUTPUT, "rounding")].items()}
#: The assembly name of every operand code.
OPERAND_NAMES: dict[int, str] = {int(value): name for name, value
                                 in NAMED_VALUES[(Opcode.LOAD, "operand")].items()}
