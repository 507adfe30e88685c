"""``qforge asm``: assemble a .qasm program into 64-bit instruction words (listing,
hex or a binary file)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from qforge.gen.cli.common import (OptionError, add_config_arguments, add_output_argument,
                                   config_from_arguments, require_file)


def _block_list() -> str:
    """The block mnemonics, from the assembler's registry, wrapped for the help text."""
    from qforge.gen.asm.registry import BLOCKS

    return textwrap.fill(", ".join(BLOCKS), width=78, initial_indent="  ",
                         subsequent_indent="  ")


def register(commands) -> None:
    """Add ``qforge asm`` to the subcommands ``commands``."""
    asm = commands.add_parser(
        "asm", help="assemble a program into 64-bit instruction words",
        description="Assemble a qforge assembly program (.qasm) into instruction words for\n"
                    "the accelerator's decoder, checking every word against the hardware\n"
                    "configuration. One statement a line; ';' or '#' starts a comment.\n\n"
                    "  gemm 32, 64, 65                 instruction: mnemonic and operands\n"
                    "  load a, x, stride=K, transpose  positional, name=value and flags\n"
                    "  .const K = 4 * 16 + 1           constant (+ - * / % << >> ( ))\n"
                    "  loop:                           label (text: word index)\n"
                    "  .data / .text                   sections (default .text)\n"
                    "  x: .zero 64                     reserve host memory elements\n"
                    "  y: .word 1, 2, 3                reserve and initialise\n"
                    "  .inst 0x04                      a raw instruction word\n\n"
                    "Instructions: nop, precision, output, seed, gemm, fence, load, store.\n"
                    f"Blocks (tiled to fit the configuration):\n{_block_list()}.\n"
                    "The language, the blocks and every instruction's fields and rules:\n"
                    "docs/ISA.md. An error prints FILE:LINE:COLUMN: error: MESSAGE with\n"
                    "the source line and exits 2.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  qforge asm gen/programs/example.qasm\n"
               "  qforge asm prog.qasm --preset tiny --hex\n"
               "  qforge asm prog.qasm -o prog.bin --listing")
    asm.add_argument("file", type=Path, metavar="FILE", help="the program (.qasm)")
    add_config_arguments(asm, default="default")
    add_output_argument(asm, "-o", "--output", metavar="OUT.bin",
                        help="write the words here, little-endian 64-bit each (the path "
                             "is checked before assembling)")
    asm.add_argument("--hex", action="store_true",
                     help="print the words in hex, one per line")
    asm.add_argument("--listing", action="store_true",
                     help="print the listing: index, hex word, disassembly, source line "
                          "(the default when neither -o nor --hex is given)")
    asm.set_defaults(handler=handle)


def assemble_program(arguments, config):
    """``arguments.file`` assembled for ``config``, or None after printing the error gcc
    style (FILE:LINE:COLUMN: error: MESSAGE, the source line and a caret) on stderr."""
    from qforge.gen.asm import AsmError, assemble_file

    require_file(arguments.file)
    try:
        return assemble_file(arguments.file, config)
    except AsmError as error:
        print(error.formatted(), file=sys.stderr)
        return None


def handle(arguments) -> int:
    config = config_from_arguments(arguments)
    program = assemble_program(arguments, config)
    if program is None:
        return 2
    if arguments.output:
        try:
            arguments.output.write_bytes(program.to_bytes())
        except OSError as error:
            raise OptionError(f"-o {arguments.output}: cannot write: "
                             f"{error.strerror or error}") from None
        print(f"wrote {len(program.words)} words ({8 * len(program.words)} bytes) to "
              f"{arguments.output}; the data section reserves {program.memory_size} "
              f"elements", file=sys.stderr)
    if arguments.hex:
        for word in program.words:
            print(f"{word:016x}")
    if arguments.listing or not (arguments.output or arguments.hex):
        print(program.listing())
    return 0
