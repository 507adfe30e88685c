"""An assembled program: its instruction words, symbols and data section, and the
listing ``qforge asm`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qforge.gen.asm.disassembler import disassemble
from qforge.sim.model.machine import MEMORY_DTYPE

__all__ = ["Program"]


@dataclass(frozen=True)
class Program:
    """An assembled program.

    ``words`` are the instruction words and ``lines`` the source line of each;
    ``symbols`` the value of every label and constant; ``data`` the initialised ranges
    of host memory as ``(address, values)`` (from ``.word``) and ``memory_size`` the
    elements the data section reserves (addresses ``0 .. memory_size - 1``).
    """

    words: tuple[int, ...]
    lines: tuple[int, ...]
    symbols: dict[str, int]
    data: tuple[tuple[int, tuple[int, ...]], ...] = ()
    memory_size: int = 0
    source: str = "<string>"
    source_lines: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: Every data label's ``(address, elements)``: up to the next data label or the end
    #: of the data section.
    regions: dict = field(default_factory=dict, repr=False, compare=False)
    #: The configuration (:class:`qforge.sim.model.spec.Config`) the program was
    #: assembled and checked for, or None (assembled without one, or a word list): a
    #: runtime refuses to run it on another.
    config: object = field(default=None, repr=False, compare=False)

    def memory(self) -> np.ndarray:
        """The data section as ``memory_size`` host memory elements
        (:data:`~qforge.sim.model.machine.MEMORY_DTYPE`): zeros, with the ``.word``
        values in place (built in place: the data section may reach 2**24 elements)."""
        image = np.zeros(self.memory_size, dtype=MEMORY_DTYPE)
        for address, values in self.data:
            image[address:address + len(values)] = values
        return image

    def to_bytes(self) -> bytes:
        """The words as little-endian 64-bit integers (what ``qforge asm -o`` writes)."""
        return b"".join(word.to_bytes(8, "little") for word in self.words)

    def listing(self) -> str:
        """One line per word: index, hex word, disassembly and the source line (shown
        on the first word of each source line), then the data ranges and symbols.

        >>> from qforge.gen.asm import assemble
        >>> print(assemble("nop\\ngemm 1, 2, 3 ; go").listing())
             0  0000000000000000  nop                                      ;    1  nop
             1  0000030002000104  gemm 1, 2, 3                             ;    2  gemm 1, 2, 3 ; go
        """
        out = []
        previous = None
        for index, (word, line) in enumerate(zip(self.words, self.lines)):
            text = ""
            if line != previous:
                source = (self.source_lines[line - 1].rstrip()
                          if 0 < line <= len(self.source_lines) else "")
                text = f"{line:4d}  {source.strip()}"
            previous = line
            out.append(f"{index:6d}  {word:016x}  {disassemble(word):40s} ; {text}".rstrip())
        for address, values in self.data:
            shown = ", ".join(str(value) for value in values[:8])
            more = ", ..." if len(values) > 8 else ""
            out.append(f"; data {address:6d}: .word {shown}{more}")
        if self.memory_size:
            out.append(f"; memory: {self.memory_size} elements reserved by .data")
        for name, value in self.symbols.items():
            out.append(f"; symbol {name} = {value}")
        return "\n".join(out)
