"""The assembler, pass 2: the parsed statements (:mod:`qforge.gen.asm.parser`) into
instruction words, a data section and the value of every symbol.

Symbols are evaluated when first needed, so a label may be used before its line: a text
label is the index of the next word (counting the words each block expands to), a data
label the element address of the next data statement. A value that depends on itself
(``.const A = A``, a ``.zero`` count or a block size that depends on a later address)
is a "circular definition" error. With a configuration, every word is checked by the
golden model's rule (:func:`qforge.sim.model.machine.instruction_error`).

Every resource is bounded before it is used (:mod:`qforge.gen.asm.limits`): the values
of expressions, ``.word`` values (host memory elements), the size of the data section
(checked before anything is allocated), the GEMMs of a block (counted before it is
expanded), the words of a program and the depth of nested forward references.
"""

from __future__ import annotations

import re
from pathlib import Path

from qforge.gen.asm.registry import BLOCKS
from qforge.gen.asm.disassembler import disassemble
from qforge.gen.asm.errors import BlockError, SourceText, did_you_mean
from qforge.gen.asm.expressions import evaluate
from qforge.gen.asm.limits import (DATA_LIMIT, ELEMENT_RANGE, MAX_BLOCK_GEMMS,
                                   MAX_PROGRAM_WORDS, MAX_REFERENCE_DEPTH, count_text)
from qforge.gen.asm.parser import Operand, Statement, parse
from qforge.gen.asm.program import Program
from qforge.gen.asm.syntax import FIELDS, MNEMONICS, NAMED_VALUES, POSITIONAL, REQUIRED
from qforge.sim.model.errors import InputError, shown
from qforge.sim.model.isa import EncodingError, Opcode, encode
from qforge.sim.model.machine import instruction_error
from qforge.sim.model.spec import Config

__all__ = ["assemble", "assemble_file"]


def assemble(text: str, config=None, *, source: str = "<string>") -> Program:
    """Assemble ``text`` into a :class:`~qforge.gen.asm.program.Program`.

    With a configuration (:class:`qforge.sim.model.spec.Config`) every word is checked
    against its limits and the blocks (``matmul``, ...) can be expanded; without one
    only the encoding is checked and blocks are an error. Any mistake raises
    :class:`~qforge.gen.asm.errors.AsmError` with ``source``, line and column.

    >>> program = assemble('''
    ... .const N = 4
    ...     load a, x, stride=N
    ... .data
    ... x:  .zero 2 * N
    ... y:  .word 1, -2
    ... ''')
    >>> program.symbols, program.data, program.memory_size
    ({'N': 4, 'x': 0, 'y': 8}, ((8, (1, -2)),), 10)
    """
    if not isinstance(text, str):
        raise InputError(f"assemble: text = {shown(text)}: must be a str (the assembly "
                         f"source), not {type(text).__name__}")
    if config is not None and not isinstance(config, Config):
        raise InputError(f"assemble: config = {shown(config)}: must be a Config "
                         f"(qforge.api.load_config) or None, not {type(config).__name__}")
    return _Assembler(SourceText(source, tuple(text.splitlines())), config).run()


def assemble_file(path, config=None) -> Program:
    """Assemble the file at ``path`` (errors name the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") \
            from None
    return assemble(text, config, source=str(path))


class _Assembler:
    """Pass 2 over one parsed program; every value is computed once and memoized."""

    def __init__(self, source: SourceText, config):
        self.config = config
        self.source = source
        self.error = source.error
        self.parsed = parse(source)
        self.values: dict[str, int] = {}
        self.evaluating: set[str] = set()
        self.text_offsets = [0]
        self.data_offsets = [0]
        self.expanded: dict[int, list[int]] = {}
        self.expanding: set[int] = set()
        self.data_sizes: dict[int, int] = {}
        self.sizing_data: set[int] = set()

    # ---- symbols -------------------------------------------------------------------------
    def evaluate(self, tree: tuple) -> int:
        return evaluate(tree, self.symbol, self.source)

    def symbol(self, name: str, line: int, column: int) -> int:
        if name in self.values:
            return self.values[name]
        definition = self.parsed.definitions.get(name)
        if definition is None:
            raise self.error(line, column, f"undefined name {name!r}")
        if name in self.evaluating:
            raise self.error(line, column, f"circular definition: {name!r} depends on "
                             "itself")
        if len(self.evaluating) > MAX_REFERENCE_DEPTH:
            raise self.error(line, column, f"{name!r}: forward references nest too deeply "
                             f"(more than {MAX_REFERENCE_DEPTH} names, each needing a name "
                             "defined after it; define names before they are used)")
        self.evaluating.add(name)
        try:
            if definition.kind == "const":
                value = self.evaluate(definition.expr)
            elif definition.kind == "text":
                value = self.text_offset(definition.position)
            else:
                value = self.data_offset(definition.position)
        finally:
            self.evaluating.discard(name)
        self.values[name] = value
        return value

    # ---- layout --------------------------------------------------------------------------
    def text_offset(self, position: int) -> int:
        while len(self.text_offsets) <= position:
            index = len(self.text_offsets) - 1
            statement = self.parsed.text[index]
            size = len(self.expand(index)) if statement.name in BLOCKS else 1
            self.text_offsets.append(self.text_offsets[index] + size)
            self.check_program_size(statement, self.text_offsets[-1])
        return self.text_offsets[position]

    def check_program_size(self, statement: Statement, words: int) -> None:
        """The error of a program that has ``words`` words up to ``statement``, if
        more than :data:`~qforge.gen.asm.limits.MAX_PROGRAM_WORDS`."""
        if words > MAX_PROGRAM_WORDS:
            raise self.error(statement.line, statement.column,
                             f"the program reaches {words} instruction words here, more "
                             f"than the {count_text(MAX_PROGRAM_WORDS)} a program may "
                             "have")

    def data_offset(self, position: int) -> int:
        """The element address of data statement ``position``; an error as soon as the
        data section would reserve more than
        :data:`~qforge.gen.asm.limits.DATA_LIMIT` elements (nothing is allocated)."""
        while len(self.data_offsets) <= position:
            index = len(self.data_offsets) - 1
            size = self.data_size(index)
            end = self.data_offsets[index] + size
            if end > DATA_LIMIT:
                statement = self.parsed.data[index]
                column = (statement.operands[0].column if statement.name == ".zero"
                          else statement.column)
                raise self.error(statement.line, column,
                                 f"the data section reaches {end} elements with this "
                                 f"{statement.name} ({size} from element address "
                                 f"{self.data_offsets[index]}), more than the "
                                 f"{count_text(DATA_LIMIT)} that the "
                                 f"{DATA_LIMIT.bit_length() - 1}-bit LOAD/STORE address "
                                 f"field reaches (0 .. {DATA_LIMIT - 1})")
            self.data_offsets.append(end)
        return self.data_offsets[position]

    def data_size(self, index: int) -> int:
        if index in self.data_sizes:
            return self.data_sizes[index]
        statement = self.parsed.data[index]
        if statement.name == ".word":
            size = len(statement.operands)
        else:
            if index in self.sizing_data:
                raise self.error(statement.line, statement.operands[0].column,
                                 "circular definition: this .zero count depends on an "
                                 "address after it")
            self.sizing_data.add(index)
            try:
                size = self.evaluate(statement.operands[0].expr)
            finally:
                self.sizing_data.discard(index)
            if size < 0:
                raise self.error(statement.line, statement.operands[0].column,
                                 f".zero count {size}: must be at least 0")
        self.data_sizes[index] = size
        return size

    # ---- instructions --------------------------------------------------------------------
    def field_value(self, statement: Statement, opcode: Opcode, name: str,
                    operand: Operand) -> int:
        names = NAMED_VALUES.get((opcode, name))
        if names is not None and operand.bare is not None:
            if operand.bare.lower() in names:
                return int(names[operand.bare.lower()])
            if operand.bare not in self.parsed.definitions:
                raise self.error(statement.line, operand.column,
                                 f"{name} = {operand.bare!r}: expected "
                                 f"{', '.join(names)} or a number")
        return self.evaluate(operand.expr)

    def field_values(self, statement: Statement,
                     opcode: Opcode) -> dict[str, tuple[int, Operand]]:
        """Every field the operands of ``statement`` set, with its value and operand:
        positional operands first, then ``name=value`` ones and bare one-bit flags."""
        mnemonic = statement.name
        fields = FIELDS[opcode]
        positional = list(POSITIONAL.get(opcode, ()))
        values: dict[str, tuple[int, Operand]] = {}
        seen_keyword = False

        def set_field(name: str, operand: Operand, column: int, value: int | None = None):
            if name in values:
                raise self.error(statement.line, column, f"{mnemonic}: field {name!r} "
                                 "given twice")
            operand.field = name
            values[name] = (self.field_value(statement, opcode, name, operand)
                            if value is None else value, operand)

        for operand in statement.operands:
            if operand.key is not None:
                seen_keyword = True
                if operand.key not in fields:
                    raise self.error(statement.line, operand.key_column,
                                     f"{mnemonic} has no field {operand.key!r}"
                                     f"{did_you_mean(operand.key, fields)}; its "
                                     f"fields: {', '.join(fields) or 'none'}")
                set_field(operand.key, operand, operand.key_column)
                continue
            bare = operand.bare.lower() if operand.bare else None
            if bare is not None and fields.get(bare) == 1:
                set_field(bare, operand, operand.column, 1)
                continue
            if seen_keyword:
                raise self.error(statement.line, operand.column, f"{mnemonic}: a positional "
                                 "operand after name=value operands")
            while positional and positional[0] in values:
                positional.pop(0)
            if not positional:
                order = ", ".join(POSITIONAL.get(opcode, ()))
                raise self.error(statement.line, operand.column,
                                 f"{mnemonic}: too many positional operands"
                                 + (f" (it takes {order}, then name=value)" if order
                                    else " (it takes name=value operands only)"
                                    if fields else " (it takes none)"))
            set_field(positional.pop(0), operand, operand.column)
        return values

    def instruction(self, statement: Statement) -> int:
        """The word of an instruction or ``.inst`` statement (its encoding checked, not
        yet the configuration's limits)."""
        mnemonic = statement.name
        if mnemonic == ".inst":
            value = self.evaluate(statement.operands[0].expr)
            if not 0 <= value < 1 << 64:
                raise self.error(statement.line, statement.operands[0].column,
                                 f".inst {value}: a word is 0 .. 2**64 - 1")
            return value
        opcode = MNEMONICS[mnemonic]
        values = self.field_values(statement, opcode)
        required = list(REQUIRED.get(opcode, ()))
        if opcode == Opcode.GEMM and values.get("add", (0,))[0]:
            required.append("saturate_bits")
        for name in required:
            if name not in values:
                extra = " (required with add)" if name == "saturate_bits" else ""
                raise self.error(statement.line, statement.column,
                                 f"{mnemonic}: missing operand {name}{extra}")
        for name, (value, operand) in values.items():
            try:
                encode(opcode, **{name: value})
            except EncodingError as error:
                raise self.error(statement.line, operand.column, str(error)) from None
        return encode(opcode, **{name: value for name, (value, _) in values.items()})

    # ---- blocks --------------------------------------------------------------------------
    def expand(self, index: int) -> list[int]:
        if index in self.expanded:
            return self.expanded[index]
        statement = self.parsed.text[index]
        if index in self.expanding:
            raise self.error(statement.line, statement.column,
                             f"circular definition: the size of this {statement.name} "
                             "depends on a label after it")
        self.expanding.add(index)
        try:
            words = self.block(statement)
        finally:
            self.expanding.discard(index)
        self.expanded[index] = words
        return words

    def block_arguments(self, statement: Statement) -> tuple[dict, dict[str, int]]:
        """The keyword arguments of a block statement's function, and the column of
        each."""
        block = BLOCKS[statement.name]
        allowed = block.required + block.optional + block.flags
        arguments: dict[str, object] = {}
        columns: dict[str, int] = {}
        for operand in statement.operands:
            bare = operand.bare.lower() if operand.bare else None
            if operand.key is None and bare in block.flags:
                key, value = bare, True
            elif operand.key is None:
                raise self.error(statement.line, operand.column,
                                 f"{statement.name} takes name=value operands: "
                                 f"{', '.join(allowed)}")
            else:
                key = operand.key
                if key not in allowed:
                    raise self.error(statement.line, operand.key_column,
                                     f"{statement.name} has no operand {key!r}"
                                     f"{did_you_mean(key, allowed)}; its "
                                     f"operands: {', '.join(allowed)}")
                value = self.evaluate(operand.expr)
                if key in block.flags:
                    value = bool(value)
            if key in arguments:
                raise self.error(statement.line, operand.key_column,
                                 f"{statement.name}: operand {key!r} given twice")
            arguments[key] = value
            columns[key] = operand.column
        return arguments, columns

    def block(self, statement: Statement) -> list[int]:
        block = BLOCKS[statement.name]
        arguments, columns = self.block_arguments(statement)
        if self.config is None:
            raise self.error(statement.line, statement.column,
                             f"{statement.name} needs a hardware configuration to choose "
                             "its chunk sizes (assemble(..., config=...), or qforge asm "
                             "--preset/--spec)")
        for name in block.required:
            if name not in arguments:
                raise self.error(statement.line, statement.column,
                                 f"{statement.name}: missing operand {name}")
        try:
            return block.function(self.config, max_gemms=MAX_BLOCK_GEMMS, **arguments)
        except BlockError as error:
            column = columns.get(error.operand, statement.column)
            raise self.error(statement.line, column,
                             f"{statement.name}: {error}") from None
        except EncodingError as error:
            raise self.error(statement.line, statement.column,
                             f"{statement.name}: {error}") from None

    # ---- checks and the program ----------------------------------------------------------
    def check(self, statement: Statement, word: int, expanded: bool) -> None:
        """Raise the error of ``word`` unless it is valid on the configuration (if
        any), at the column of the operand its reason names first."""
        if self.config is None:
            return
        reason = instruction_error(self.config, word)
        if reason is None:
            return
        column = statement.column
        if not expanded:
            best = None
            for operand in statement.operands:
                if operand.field is None:
                    continue
                match = re.search(rf"\b{re.escape(operand.field)}\b", reason)
                if match and (best is None or match.start() < best[0]):
                    best = (match.start(), operand.column)
            if best is not None:
                column = best[1]
            raise self.error(statement.line, column,
                             f"{statement.name}: not valid on {self.config.name!r}: {reason}")
        raise self.error(statement.line, column,
                         f"{statement.name} expands to {disassemble(word)!r}, not valid on "
                         f"{self.config.name!r}: {reason}")

    def run(self) -> Program:
        words: list[int] = []
        lines: list[int] = []
        data: list[tuple[int, tuple[int, ...]]] = []
        parsed = self.parsed
        for kind, item in parsed.order:
            if kind == "symbol":
                definition = parsed.definitions[item]
                self.symbol(item, definition.line, definition.column)
            elif kind == "text":
                statement = parsed.text[item]
                if statement.name in BLOCKS:
                    block_words = self.expand(item)
                else:
                    block_words = [self.instruction(statement)]
                for word in block_words:
                    self.check(statement, word, statement.name in BLOCKS)
                words += block_words
                lines += [statement.line] * len(block_words)
                self.check_program_size(statement, len(words))
            else:
                statement = parsed.data[item]
                self.data_offset(item + 1)
                if statement.name == ".word":
                    values = tuple(self.word_value(statement, operand)
                                   for operand in statement.operands)
                    data.append((self.data_offset(item), values))
        memory_size = self.data_offset(len(parsed.data))
        symbols = {name: self.values[name] for name in parsed.definitions}
        return Program(tuple(words), tuple(lines), symbols, tuple(data), memory_size,
                       self.source.name, self.source.lines, self.regions(memory_size),
                       config=self.config)

    def word_value(self, statement: Statement, operand: Operand) -> int:
        """A ``.word`` value: one host memory element
        (:data:`~qforge.gen.asm.limits.ELEMENT_RANGE`)."""
        value = self.evaluate(operand.expr)
        low, high = ELEMENT_RANGE
        if not low <= value <= high:
            raise self.error(statement.line, operand.column,
                             f".word {value}: a host memory element is {low} .. {high} "
                             f"(-2**{high.bit_length()} .. 2**{high.bit_length()} - 1)")
        return value

    def regions(self, memory_size: int) -> dict[str, tuple[int, int]]:
        """Every data label's ``(address, elements)``, up to the next one or the end."""
        starts = sorted((self.values[name], name) for name, definition
                        in self.parsed.definitions.items() if definition.kind == "data")
        ends = [address for address, _ in starts[1:]] + [memory_size]
        return {name: (address, end - address)
                for (address, name), end in zip(starts, ends)}
