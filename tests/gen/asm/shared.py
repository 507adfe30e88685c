"""Configurations, the example program and helpers shared by the assembler tests."""

from pathlib import Path

from hypothesis import settings

import qforge.gen
from qforge.gen.asm import assemble
from qforge.sim.model.spec import Config, load_preset

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
EXAMPLE = Path(qforge.gen.__file__).parent / "programs" / "example.qasm"

TINY = load_preset("tiny")
DEFAULT = load_preset("default")
#: A small array whose limits force splits of m, n and k at small sizes.
SMALL = Config(name="small", rows=2, cols=3, operand_width=8, block_width=4,
               block_multipliers=2, max_reduction_depth=12, output_width=8, buffer_depth=8)
SMALL_SKIPPING = SMALL.with_zero_skipping()
CONFIGS = [TINY, DEFAULT, SMALL, SMALL_SKIPPING, load_preset("sparse")]


def words_of(text, config=None):
    return list(assemble(text, config).words)


def check_error(error, source, line, column, fragment, name="<string>"):
    assert isinstance(error, ValueError)
    assert (error.source, error.line, error.column) == (name, line, column), str(error)
    headline, text, caret = str(error).splitlines()
    assert headline.startswith(f"{name}:{line}:{column}: error: "), headline
    assert fragment in headline, headline
    assert text == source.splitlines()[line - 1]
    assert caret == " " * (column - 1) + "^"
