"""The assembler's errors: :class:`AsmError` points at a line and column of the program
text (gcc style), :class:`BlockError` at an operand of a high-level block;
:class:`SourceText` makes the first from a position.

>>> source = SourceText("prog.qasm", ("nop", "gemm 1, 2"))
>>> print(source.error(2, 6, "gemm: missing operand k"))
prog.qasm:2:6: error: gemm: missing operand k
gemm 1, 2
     ^
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from qforge.sim.model.errors import QforgeError

__all__ = ["AsmError", "BlockError", "SourceText", "did_you_mean"]


class AsmError(QforgeError, ValueError):
    """A mistake in a program: ``source:line:column: error: message``, then the source
    line and a caret under the column (like gcc). ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, source: str = "<string>", line: int = 0,
                 column: int = 0, text: str | None = None):
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.text = text
        super().__init__(self.formatted())

    @property
    def headline(self) -> str:
        """The one-line form: ``FILE:LINE:COLUMN: error: MESSAGE``."""
        return f"{self.source}:{self.line}:{self.column}: error: {self.message}"

    def formatted(self) -> str:
        """The headline, the source line and a caret line under the column."""
        if self.text is None:
            return self.headline
        indent = "".join("\t" if char == "\t" else " "
                         for char in self.text[:max(0, self.column - 1)])
        return f"{self.headline}\n{self.text}\n{indent}^"


class BlockError(QforgeError, ValueError):
    """A high-level block cannot be expanded: ``operand`` names the offending operand
    (``None`` when no single one is to blame)."""

    def __init__(self, message: str, operand: str | None = None):
        super().__init__(message)
        self.operand = operand


@dataclass(frozen=True)
class SourceText:
    """A program's text, split in lines, and the name its errors give it."""

    name: str
    lines: tuple[str, ...]

    def error(self, line: int, column: int, message: str) -> AsmError:
        """The :class:`AsmError` for ``message`` at 1-based ``line`` and ``column``
        (with the source line shown when ``line`` is one of the text's)."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return AsmError(message, source=self.name, line=line, column=column, text=text)


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'CHOICE'?)`` for the choice closest to a misspelt ``word``, or
    the empty string when none is close.

    >>> did_you_mean("gemn", ["gemm", "load"]), did_you_mean("xyz", ["gemm"])
    (" (did you mean 'gemm'?)", '')
    """
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
