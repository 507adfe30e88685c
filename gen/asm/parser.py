"""The parser, pass 1 of the assembler: program text into statements of the ``.text``
and ``.data`` sections and the definitions of labels and constants, in source order.
Nothing is evaluated yet (a label may be used before its line), so operands keep their
expression trees (:mod:`qforge.gen.asm.expressions`).

A line is ``label: label: ... statement ; comment`` (``#`` also starts a comment); a
statement is a mnemonic, a block name or a directive (:data:`DIRECTIVES`) with
comma-separated operands, each an expression or ``name=expression``.

>>> parsed = parse(SourceText("<string>", ("start: gemm 1, 2, k=K", ".const K = 3")))
>>> [(statement.name, [operand.key for operand in statement.operands])
...  for statement in parsed.text]
[('gemm', [None, None, 'k'])]
>>> parsed.order
[('symbol', 'start'), ('text', 0), ('symbol', 'K')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qforge.gen.asm.registry import BLOCKS
from qforge.gen.asm.errors import SourceText, did_you_mean
from qforge.gen.asm.expressions import parse_expression
from qforge.gen.asm.lexer import Token, tokenize
from qforge.gen.asm.limits import MAX_PROGRAM_WORDS, count_text
from qforge.gen.asm.syntax import MNEMONICS

__all__ = ["DIRECTIVES", "Operand", "Statement", "Definition", "ParsedProgram", "parse"]

#: The directives, with their leading dot.
DIRECTIVES = (".const", ".data", ".text", ".zero", ".word", ".inst")


@dataclass
class Operand:
    """One operand of a statement."""

    key: str | None        # lower-case field name of name=value operands
    key_column: int
    expr: tuple | None     # expression tree
    column: int            # column of the value
    bare: str | None       # the value's text when it is a single name
    field: str | None = None   # the field it ended up setting (set by the assembler)


@dataclass
class Statement:
    """An instruction, block or directive and its operands."""

    line: int
    column: int            # of the mnemonic or directive
    name: str              # lower-case mnemonic or directive
    operands: list[Operand]


@dataclass
class Definition:
    """Where a name is defined: a constant (its expression), or a label of the ``text``
    or ``data`` section (``position``: the index of the section's next statement)."""

    kind: str              # const, text, data
    line: int
    column: int
    expr: tuple | None = None
    position: int = 0


@dataclass
class ParsedProgram:
    """The statements of both sections and the definitions; ``order`` lists them as
    ``("symbol", name)``, ``("text", index)`` or ``("data", index)`` in source order
    (the order in which pass 2 evaluates them, and so reports their errors)."""

    text: list[Statement] = field(default_factory=list)
    data: list[Statement] = field(default_factory=list)
    definitions: dict[str, Definition] = field(default_factory=dict)
    order: list[tuple[str, object]] = field(default_factory=list)


def parse(source: SourceText) -> ParsedProgram:
    """Parse every line of ``source``; the first mistake raises its
    :class:`~qforge.gen.asm.errors.AsmError`."""
    parser = _Parser(source)
    parser.parse()
    return parser.program


class _Parser:
    def __init__(self, source: SourceText):
        self.source = source
        self.program = ParsedProgram()

    def parse(self) -> None:
        section = "text"
        for line, raw in enumerate(self.source.lines, 1):
            code = re.split(r"[;#]", raw, maxsplit=1)[0]
            tokens = tokenize(self.source, line, code)
            end = len(code.rstrip()) + 1
            index = 0
            while index + 1 < len(tokens) and tokens[index].kind == "name" \
                    and tokens[index + 1].text == ":":
                label = tokens[index]
                statements = self.program.text if section == "text" else self.program.data
                self.define(label.text, Definition(section, line, label.column,
                                                   position=len(statements)))
                index += 2
            if index == len(tokens):
                continue
            head, rest = tokens[index], tokens[index + 1:]
            if head.kind == "dir":
                section = self.directive(line, head, rest, section, end)
            elif head.kind == "name":
                self.instruction(line, head, rest, section, end)
            else:
                raise self.source.error(line, head.column, f"expected a label, mnemonic or "
                                        f"directive, got {head.text!r}")

    def instruction(self, line: int, head: Token, rest: list[Token], section: str,
                    end: int) -> None:
        name = head.text.lower()
        if name not in MNEMONICS and name not in BLOCKS:
            raise self.source.error(line, head.column, f"unknown mnemonic {head.text!r}"
                                    + did_you_mean(name, [*MNEMONICS, *BLOCKS]))
        if section != "text":
            raise self.source.error(line, head.column, f"instruction {head.text!r} in the "
                                    ".data section (write .text before it)")
        self.add_text(Statement(line, head.column, name, self.operands(line, rest, end)))

    def add_text(self, statement: Statement) -> None:
        """Append a ``.text`` statement (each makes at least one word, so more than
        :data:`~qforge.gen.asm.limits.MAX_PROGRAM_WORDS` of them is an error at once)."""
        if len(self.program.text) >= MAX_PROGRAM_WORDS:
            raise self.source.error(statement.line, statement.column,
                                    f"more than {count_text(MAX_PROGRAM_WORDS)} "
                                    "instructions: a program may have at most that many "
                                    "words")
        self.program.order.append(("text", len(self.program.text)))
        self.program.text.append(statement)

    def define(self, name: str, definition: Definition) -> None:
        earlier = self.program.definitions.get(name)
        if earlier is not None:
            what = "constant" if earlier.kind == "const" else "label"
            raise self.source.error(definition.line, definition.column,
                                    f"{name!r} is already defined (as a {what} at line "
                                    f"{earlier.line})")
        self.program.definitions[name] = definition
        self.program.order.append(("symbol", name))

    def directive(self, line: int, head: Token, rest: list[Token], section: str,
                  end: int) -> str:
        """Parse a directive line; the section that follows it."""
        name = head.text.lower()
        error = self.source.error
        if name not in DIRECTIVES:
            raise error(line, head.column, f"unknown directive {head.text!r}"
                        + did_you_mean(name, DIRECTIVES))
        if name in (".data", ".text"):
            if rest:
                raise error(line, rest[0].column, f"{name} takes no operands")
            return name[1:]
        if name == ".const":
            if not rest or rest[0].kind != "name":
                raise error(line, rest[0].column if rest else end,
                            "expected a name after .const (.const NAME = EXPRESSION)")
            if len(rest) < 2 or rest[1].text != "=":
                raise error(line, rest[1].column if len(rest) > 1 else end,
                            "expected '=' (.const NAME = EXPRESSION)")
            expr = parse_expression(self.source, line, rest[2:], end)
            self.define(rest[0].text, Definition("const", line, rest[0].column, expr))
            return section
        operands = self.operands(line, rest, end)
        for operand in operands:
            if operand.key is not None:
                raise error(line, operand.key_column, f"{name} takes values, not "
                            "name=value operands")
        if name in (".zero", ".word"):
            if section != "data":
                raise error(line, head.column, f"{name} outside the .data section "
                            "(write .data before it)")
            if not operands or (name == ".zero" and len(operands) != 1):
                raise error(line, head.column if not operands else operands[1].column,
                            ".zero takes one count (.zero N)" if name == ".zero"
                            else ".word takes one or more values")
            self.program.order.append(("data", len(self.program.data)))
            self.program.data.append(Statement(line, head.column, name, operands))
            return section
        # .inst: one raw instruction word
        if section != "text":
            raise error(line, head.column, ".inst outside the .text section")
        if len(operands) != 1:
            raise error(line, head.column if not operands else operands[1].column,
                        ".inst takes one value (the raw 64-bit word)")
        self.add_text(Statement(line, head.column, name, operands))
        return section

    def operands(self, line: int, tokens: list[Token], end: int) -> list[Operand]:
        """The comma-separated operands of ``tokens`` (commas inside parentheses do not
        separate)."""
        groups: list[list[Token]] = [[]]
        commas: list[int] = []
        depth = 0
        for token in tokens:
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
            if token.text == "," and depth <= 0:
                groups.append([])
                commas.append(token.column)
            else:
                groups[-1].append(token)
        if not tokens:
            return []
        operands = []
        for index, group in enumerate(groups):
            if not group:
                column = commas[index] if index < len(commas) else end
                raise self.source.error(line, column, "expected an operand")
            if len(group) >= 2 and group[0].kind == "name" and group[1].text == "=":
                after = group[2].column if len(group) > 2 else (
                    commas[index] if index < len(commas) else end)
                expr = parse_expression(self.source, line, group[2:], after)
                operands.append(Operand(group[0].text.lower(), group[0].column, expr,
                                        after, group[2].text if len(group) == 3
                                        and group[2].kind == "name" else None))
            else:
                expr = parse_expression(self.source, line, group, group[0].column)
                operands.append(Operand(None, group[0].column, expr, group[0].column,
                                        group[0].text if len(group) == 1
                                        and group[0].kind == "name" else None))
        return operands
