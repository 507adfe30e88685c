"""The lexer: one line of code (comment already cut off) into tokens, each with its
1-based column.

Tokens are numbers (decimal, ``0x``, ``0b``, ``0o``, with single ``_`` between digits),
names, directives (``.name``) and the operators ``<< >> - + * / % ( ) , = : ~``.

>>> source = SourceText("<string>", ("x: load a, 0x1_0",))
>>> [(token.kind, token.text) for token in tokenize(source, 1, source.lines[0])]
[('name', 'x'), ('op', ':'), ('name', 'load'), ('name', 'a'), ('op', ','), ('num', '0x1_0')]
>>> [token.column for token in tokenize(source, 1, source.lines[0])]
[1, 2, 4, 9, 10, 12]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qforge.gen.asm.errors import SourceText
from qforge.gen.asm.limits import value_error

__all__ = ["MAX_DIGITS", "Token", "number", "tokenize"]

_TOKEN = re.compile(r"(?P<space>\s+)|(?P<num>[0-9][0-9A-Za-z_]*)"
                    r"|(?P<dir>\.[A-Za-z_][A-Za-z0-9_]*)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op><<|>>|[-+*/%(),=:~])")


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is ``num``, ``name``, ``dir`` or ``op``; ``value`` the
    number's value (``num`` only)."""

    kind: str
    text: str
    column: int    # 1-based
    value: int = 0


#: Longest run of digits a number may have: enough for ``2**64`` in binary (65 digits)
#: with leading zeros to spare; longer ones are refused before they are converted.
MAX_DIGITS = 100


def number(text: str) -> int:
    """The value of a number token; ValueError unless it is well formed, OverflowError
    when it has more than :data:`MAX_DIGITS` digits (no value that long can fit the
    ISA, and converting it would take time).

    >>> number("0x1f"), number("1_000"), number("0b101")
    (31, 1000, 5)
    """
    lower = text.lower()
    base = {"0x": 16, "0b": 2, "0o": 8}.get(lower[:2], 10)
    digits = lower[2:] if base != 10 else lower
    if not digits or digits[0] == "_" or digits[-1] == "_" or "__" in digits:
        raise ValueError(text)
    if len(digits) - digits.count("_") > MAX_DIGITS:
        raise OverflowError(text)
    return int(digits, base)


def _shortened(text: str) -> str:
    """``text`` cut to 40 characters (with ``...``) for a message."""
    return text if len(text) <= 40 else text[:37] + "..."


def tokenize(source: SourceText, line: int, code: str) -> list[Token]:
    """The tokens of ``code``, line ``line`` of ``source`` without its comment; an
    :class:`~qforge.gen.asm.errors.AsmError` at an unexpected character or a malformed
    number."""
    tokens = []
    position = 0
    while position < len(code):
        match = _TOKEN.match(code, position)
        if match is None:
            raise source.error(line, position + 1, f"unexpected character {code[position]!r}")
        kind, text = match.lastgroup, match.group()
        if kind == "num":
            try:
                value = number(text)
            except ValueError:
                raise source.error(line, position + 1,
                                   f"invalid number {_shortened(text)!r}") from None
            except OverflowError:
                value = None
            reason = (f"too long (more than {MAX_DIGITS} digits)" if value is None
                      else value_error(value))
            if reason is not None:
                raise source.error(line, position + 1,
                                   f"number {_shortened(text)!r} is {reason}")
            tokens.append(Token(kind, text, position + 1, value))
        elif kind != "space":
            tokens.append(Token(kind, text, position + 1))
        position = match.end()
    return tokens
