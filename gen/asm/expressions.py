"""Integer expressions of operands and constants: parsed from tokens into a tree, then
evaluated with the values of the names they use.

Precedence, lowest first: ``<< >>``, ``+ -``, ``* / %``, then the unary ``- + ~`` and
parentheses; binary operators group left to right. ``/`` and ``%`` are Python's floor
division and modulo. A tree is a tuple: ``("num", value, line, column)``, ``("name",
text, line, column)``, ``("unary", operator, operand, line, column)`` or ``("binary",
operator, left, right, line, column)``.

>>> from qforge.gen.asm.lexer import tokenize
>>> source = SourceText("<string>", ("(K + 1) * 2 << 1",))
>>> tree = parse_expression(source, 1, tokenize(source, 1, source.lines[0]), 1)
>>> evaluate(tree, lambda name, line, column: {"K": 3}[name], source)
16
"""

from __future__ import annotations

from typing import Callable

from qforge.gen.asm.errors import SourceText
from qforge.gen.asm.lexer import Token

__all__ = ["MAX_SHIFT", "parse_expression", "evaluate"]

#: Largest shift count an expression may use (keeps ``1 << huge`` from eating memory).
MAX_SHIFT = 256

#: Binary operators by precedence level, lowest first.
_BINARY_LEVELS = (("<<", ">>"), ("+", "-"), ("*", "/", "%"))


def parse_expression(source: SourceText, line: int, tokens: list[Token], end: int) -> tuple:
    """Parse ``tokens`` (all of them) as one expression; ``end`` is the column to blame
    when the expression is missing or cut short."""
    position = 0

    def peek() -> Token | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> Token:
        nonlocal position
        token = peek()
        if token is None:
            last = tokens[-1] if tokens else None
            column = last.column + len(last.text) if last else end
            raise source.error(line, column, "expected a value (a number, a name or "
                               "'(')" if last else "expected a value")
        position += 1
        return token

    def binary(level: int) -> tuple:
        if level == len(_BINARY_LEVELS):
            return unary()
        left = binary(level + 1)
        while (token := peek()) is not None and token.kind == "op" \
                and token.text in _BINARY_LEVELS[level]:
            take()
            right = binary(level + 1)
            left = ("binary", token.text, left, right, line, token.column)
        return left

    def unary() -> tuple:
        token = take()
        if token.kind == "op" and token.text in ("-", "+", "~"):
            return ("unary", token.text, unary(), line, token.column)
        if token.kind == "num":
            return ("num", token.value, line, token.column)
        if token.kind == "name":
            return ("name", token.text, line, token.column)
        if token.text == "(":
            inner = binary(0)
            closing = peek()
            if closing is None or closing.text != ")":
                column = closing.column if closing else (tokens[-1].column
                                                         + len(tokens[-1].text))
                raise source.error(line, column, "expected ')'")
            take()
            return inner
        raise source.error(line, token.column, f"unexpected {token.text!r} in an "
                           "expression")

    tree = binary(0)
    extra = peek()
    if extra is not None:
        raise source.error(line, extra.column, f"unexpected {extra.text!r} (missing ',' "
                           "or an operator?)")
    return tree


def evaluate(tree: tuple, lookup: Callable[[str, int, int], int], source: SourceText) -> int:
    """The value of ``tree``; ``lookup(name, line, column)`` gives a name's value (or
    raises the error for it). Division by zero and shift counts outside
    ``0 .. MAX_SHIFT`` are errors at the operator."""
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "name":
        return lookup(tree[1], tree[2], tree[3])
    if kind == "unary":
        value = evaluate(tree[2], lookup, source)
        return {"-": -value, "+": value, "~": ~value}[tree[1]]
    _, operator, left, right, line, column = tree
    a, b = evaluate(left, lookup, source), evaluate(right, lookup, source)
    if operator in ("/", "%") and b == 0:
        raise source.error(line, column, "division by zero")
    if operator in ("<<", ">>") and not 0 <= b <= MAX_SHIFT:
        raise source.error(line, column, f"shift count {b} outside 0 .. {MAX_SHIFT}")
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
            "/": lambda: a // b, "%": lambda: a % b, "<<": lambda: a << b,
            ">>": lambda: a >> b}[operator]()
