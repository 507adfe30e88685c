"""The assembler's resource bounds: how large a value, a data section, a block and a
program may be, so that no input (one line or a whole file) can exhaust memory or time.

Each bound is what the ISA can hold, read from the golden model
(:mod:`qforge.sim.model.isa`), or, where the ISA has no limit (the length of a program),
a documented constant:

* :data:`VALUE_LIMIT`: every value an expression computes (each number, name and
  intermediate result) lies in ``-VALUE_LIMIT .. VALUE_LIMIT``, ``2**64``: the widest
  thing the ISA holds is a 64-bit instruction word (``.inst``), so a larger value is a
  mistake, and bounding every intermediate keeps ``A * A`` chains from growing without
  end.
* :data:`ELEMENT_RANGE`: a ``.word`` value is one element of host memory, a signed
  64-bit integer (the golden machine's and the runtime's memory, ``int64``).
* :data:`DATA_LIMIT`: the data section reserves at most ``2**24`` elements, the
  addresses ``0 .. 2**24 - 1`` that the LOAD/STORE address field can name; checked
  before anything is allocated.
* :data:`MAX_BLOCK_GEMMS` and :data:`MAX_PROGRAM_WORDS`: a block (``matmul``, ...) may
  expand to at most ``2**14`` GEMMs and a program to at most ``2**18`` words (2 MiB of
  instructions). The ISA streams programs and has no limit of its own; these keep the
  worst program a few seconds of work. The count is checked before a block expands.
* :data:`MAX_REFERENCE_DEPTH`: resolving one name may need at most 64 other names
  resolved first (a constant defined by a later constant, defined by a later one ...):
  names are resolved recursively, and this keeps the recursion far from Python's limit.

>>> VALUE_LIMIT == 2**64, ELEMENT_RANGE, DATA_LIMIT
(True, (-9223372036854775808, 9223372036854775807), 16777216)
"""

from __future__ import annotations

import numpy as np

from qforge.sim.model.isa import INSTRUCTION_WIDTH, OPERAND_FIELDS, Opcode
from qforge.sim.model.saturation import signed_range
from qforge.sim.model.machine import MEMORY_DTYPE

__all__ = ["VALUE_LIMIT", "ELEMENT_RANGE", "DATA_LIMIT", "MAX_BLOCK_GEMMS",
           "MAX_PROGRAM_WORDS", "MAX_REFERENCE_DEPTH", "power_text", "count_text",
           "value_error"]

#: Largest magnitude of any value an expression computes: a 64-bit instruction word.
VALUE_LIMIT = 1 << INSTRUCTION_WIDTH

#: ``(low, high)`` of a ``.word`` value: one element of host memory (:data:`~qforge.sim.model.machine.MEMORY_DTYPE`, the
#: dtype of :attr:`qforge.sim.model.machine.Machine.memory`).
ELEMENT_RANGE = signed_range(np.iinfo(MEMORY_DTYPE).bits)

#: Elements the data section may reserve: every address must fit the LOAD/STORE
#: ``address`` field.
DATA_LIMIT = 1 << OPERAND_FIELDS[Opcode.LOAD]["address"]

#: GEMMs one block statement may expand to.
MAX_BLOCK_GEMMS = 1 << 14

#: Instruction words one program may have.
MAX_PROGRAM_WORDS = 1 << 18

#: Names that resolving one name may need resolved first, one inside the other.
MAX_REFERENCE_DEPTH = 64


def power_text(limit: int) -> str:
    """``limit`` as ``2**N`` when it is a power of two (for messages), else decimal.

    >>> power_text(1 << 64), power_text(1000)
    ('2**64', '1000')
    """
    if limit > 0 and limit & (limit - 1) == 0:
        return f"2**{limit.bit_length() - 1}"
    return str(limit)


def count_text(count: int) -> str:
    """``count`` in decimal, followed by its :func:`power_text` when that differs.

    >>> count_text(1 << 18), count_text(3)
    ('262144 (2**18)', '3')
    """
    power = power_text(count)
    return str(count) if power == str(count) else f"{count} ({power})"


def value_error(value: int) -> str | None:
    """Why ``value`` cannot be a value of an expression, or None when it can.

    >>> value_error(1 << 64), value_error((1 << 64) + 1)
    (None, 'outside -2**64 .. 2**64 (the widest value the ISA holds is a 64-bit instruction word)')
    """
    if -VALUE_LIMIT <= value <= VALUE_LIMIT:
        return None
    limit = power_text(VALUE_LIMIT)
    return (f"outside -{limit} .. {limit} (the widest value the ISA holds is a "
            f"{VALUE_LIMIT.bit_length() - 1}-bit instruction word)")
