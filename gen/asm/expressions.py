"""Integer expressions of operands and constants: parsed from tokens into postfix
steps, then evaluated with the values of the names they use.

Precedence, lowest first: ``<< >>``, ``+ -``, ``* / %``, then the unary ``- + ~`` and
parentheses; binary operators group left to right. ``/`` and ``%`` are Python's floor
division and modulo.

Both steps are loops over an explicit stack, never recursion, so an expression may nest
parentheses or chain operators as deep and as long as its line is (no RecursionError):
the parser is the shunting-yard algorithm and an expression is a tuple of postfix steps,
each ``("num", value, line, column)``, ``("name", text, line, column)``, ``("unary",
operator, line, column)`` or ``("binary", operator, line, column)``. Every value the
evaluation computes, intermediate ones included, must lie within
:data:`~qforge.gen.asm.limits.VALUE_LIMIT` (a 64-bit instruction word): the first one
outside is an error at its operator, so no expression can grow without end.

>>> from qforge.gen.asm.lexer import tokenize
>>> source = SourceText("<string>", ("(K + 1) * 2 << 1",))
>>> steps = parse_expression(source, 1, tokenize(source, 1, source.lines[0]), 1)
>>> [step[1] for step in steps]
['K', 1, '+', 2, '*', 1, '<<']
>>> evaluate(steps, lambda name, line, column: {"K": 3}[name], source)
16
"""

from __future__ import annotations

from typing import Callable

from qforge.gen.asm.errors import SourceText
from qforge.gen.asm.lexer import Token
from qforge.gen.asm.limits import value_error

__all__ = ["MAX_SHIFT", "parse_expression", "evaluate"]

#: Largest shift count an expression may use (keeps ``1 << huge`` from eating memory).
MAX_SHIFT = 256

#: Binary operators and their precedence levels, lowest first.
_PRECEDENCE = {"<<": 0, ">>": 0, "+": 1, "-": 1, "*": 2, "/": 2, "%": 2}
_UNARY = ("-", "+", "~")


def parse_expression(source: SourceText, line: int, tokens: list[Token], end: int) -> tuple:
    """Parse ``tokens`` (all of them) as one expression, into postfix steps; ``end`` is
    the column to blame when the expression is missing or cut short."""
    steps: list[tuple] = []
    pending: list[tuple[str, str, int]] = []   # (kind, operator, column); kind unary/binary/(
    open_parentheses = 0
    expect_value = True
    last = tokens[-1] if tokens else None
    after_last = last.column + len(last.text) if last else end

    def flush(stop) -> None:
        while pending and pending[-1][0] != "(" and stop(pending[-1]):
            kind, operator, column = pending.pop()
            steps.append((kind, operator, line, column))

    for token in tokens:
        if expect_value:
            if token.kind == "op" and token.text in _UNARY:
                pending.append(("unary", token.text, token.column))
            elif token.kind == "num":
                steps.append(("num", token.value, line, token.column))
                expect_value = False
            elif token.kind == "name":
                steps.append(("name", token.text, line, token.column))
                expect_value = False
            elif token.text == "(":
                pending.append(("(", "(", token.column))
                open_parentheses += 1
            else:
                raise source.error(line, token.column, f"unexpected {token.text!r} in an "
                                   "expression")
        elif token.kind == "op" and token.text in _PRECEDENCE:
            level = _PRECEDENCE[token.text]
            flush(lambda top: top[0] == "unary" or _PRECEDENCE[top[1]] >= level)
            pending.append(("binary", token.text, token.column))
            expect_value = True
        elif token.text == ")" and open_parentheses:
            flush(lambda top: True)
            pending.pop()
            open_parentheses -= 1
        elif open_parentheses:
            raise source.error(line, token.column, "expected ')'")
        else:
            raise source.error(line, token.column, f"unexpected {token.text!r} (missing "
                               "',' or an operator?)")
    if expect_value:
        raise source.error(line, after_last, "expected a value (a number, a name or '(')"
                           if last else "expected a value")
    if open_parentheses:
        raise source.error(line, after_last, "expected ')'")
    flush(lambda top: True)
    return tuple(steps)


def evaluate(steps: tuple, lookup: Callable[[str, int, int], int], source: SourceText) -> int:
    """The value of the postfix ``steps``; ``lookup(name, line, column)`` gives a
    name's value (or raises the error for it). Division by zero, shift counts outside
    ``0 .. MAX_SHIFT`` and any value outside ``-VALUE_LIMIT .. VALUE_LIMIT`` are errors
    at the operator (or the name)."""
    stack: list[int] = []
    for kind, item, line, column in steps:
        if kind == "num":
            value = item
        elif kind == "name":
            value = lookup(item, line, column)
        elif kind == "unary":
            operand = stack.pop()
            value = -operand if item == "-" else ~operand if item == "~" else operand
        else:
            b = stack.pop()
            a = stack.pop()
            if item in ("/", "%") and b == 0:
                raise source.error(line, column, "division by zero")
            if item in ("<<", ">>") and not 0 <= b <= MAX_SHIFT:
                raise source.error(line, column, f"shift count {b} outside 0 .. {MAX_SHIFT}")
            value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                     "/": lambda: a // b, "%": lambda: a % b, "<<": lambda: a << b,
                     ">>": lambda: a >> b}[item]()
        reason = value_error(value)
        if reason is not None:
            what = (f"{item!r} = {value} is" if kind == "name" else f"{value} is"
                    if kind == "num" else f"'{item}' gives {value},")
            raise source.error(line, column, f"{what} {reason}")
        stack.append(value)
    return stack[0]
