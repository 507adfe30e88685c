"""Every number rule is written once, in the golden model: no second copy remains.

Each rule below has the expressions that characterise an implementation of it (the
two's-complement bounds of saturation, ``np.rint`` of a scaled value, the ceiling
division of tiling, ``(ranges - 1).bit_length()``...). The test scans the code of every
Python source file of ``hdl/``, ``gen/``, ``sim/`` and ``fpga/`` (comments and
docstrings removed, other string literals kept) and fails, naming file and line, for any
match outside the rule's defining module. Other code calls the rule instead.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE_FOLDERS = ("hdl", "gen", "sim", "fpga")


class Rule(NamedTuple):
    """A number rule: where it is defined and what a copy of it looks like."""

    name: str
    #: Regular expressions that match a line of code implementing the rule.
    patterns: tuple[str, ...]
    #: The defining module (relative to the repository root) and a regular expression
    #: that matches its definition (so the rule's patterns are checked against a real
    #: file, and renaming the definition is noticed).
    defined_in: str
    definition: str
    #: Other files that may match, each with its reason.
    exceptions: tuple[tuple[str, str], ...] = ()
    #: The source folders searched.
    folders: tuple[str, ...] = SOURCE_FOLDERS


RULES = (
    Rule("two's-complement range and saturation",
         (r"\(\s*1\s*<<\s*\([^()]*-\s*1\s*\)\s*\)\s*-\s*1\b",        # (1 << (b - 1)) - 1
          r"-\s*\(\s*1\s*<<\s*\([^()]*-\s*1\s*\)\s*\)",               # -(1 << (b - 1))
          r"2\s*\*\*\s*\([^()]*-\s*1\s*\)\s*-\s*1\b"),                # 2**(b - 1) - 1
         "sim/model/saturation.py", r"def (signed_range|saturate)\("),
    Rule("rounding of scaled reals",
         (r"\bnp\.(rint|floor|round|around|ceil|trunc|fix)\s*\(",
          r"2\.0\s*\*\*\s*32\b"),                                     # r / 2**32 fraction
         "sim/model/rounding.py", r"def round_scaled\(",
         (("sim/bench/stimulus.py", "draws random integer test operands (rounded normal "
           "samples): test data, not a rounding the accelerator performs"),)),
    Rule("integer round-shift",
         (r"1\s*<<\s*\(\s*shift\s*-\s*1\s*\)",                        # half = 2**(s-1)
          r">>\s*\(\s*32\s*-\s*shift\s*\)",                           # top s random bits
          r"\bremainder\s*==\s*half\b"),
         "sim/model/rounding.py", r"def round_shift\("),
    Rule("round-shift in the HDL",
         (r"(==|!=)\s*Rounding\.(NEAREST_EVEN|TRUNCATE|STOCHASTIC)\b",),
         "hdl/rounding.py", r"def round_shift_addend\(", folders=("hdl",)),
    Rule("rounding codes as literals",
         (r"\brounding[\"']?\s*(==|!=|=|:)\s*[0-3]\b",                # rounding != 3
          r"\bRounding\.\w+\s*:\s*\d"),                               # {Rounding.X: 2}
         "sim/model/rounding.py", r"class Rounding\(enum\.IntEnum\)",
         (("sim/model/isa.py", "OPERAND_FIELDS gives field widths in bits ('rounding': 2 "
           "is the width of the rounding field), not rounding codes"),)),
    Rule("VRQ range bits and limits",
         (r"ranges\s*-\s*1\s*\)\s*\.bit_length\(\)",
          r"[\"'](code_width|range_stride|ranges)[\"']\s*,\s*(1\s*,\s*)?\d+\s*[,)]",
          r"self\.(code_width|range_stride|ranges)\s*,\s*1\s*,\s*\d+"),
         "sim/model/vrq_format.py", r"def vrq_range_bits\("),
    Rule("tiling ceiling division",
         (r"-\s*\(\s*-[^()]*(\([^()]*\)[^()]*)*//",),                  # -(-count // size)
         "sim/model/capacity.py", r"def tiles\("),
    Rule("buffer capacity",
         (r"(\*\s*words|\b[a-z]_words|\bwords)\s*(<=|>=|<|>)\s*config\.(pe_)?buffer_depth\b",
          r"\bdef\s+check_capacity\b"),
         "sim/model/capacity.py", r"def gemm_capacity_error\(",
         (("hdl/loader.py", "the same rule built in gates on a command's runtime fields "
           "(the comment there cites gemm_capacity_error); tests/hdl/test_loader.py checks "
           "the gates against the rule"),
          ("hdl/decoder.py", "the same rule built in gates on a GEMM word's runtime fields "
           "(the comment there cites gemm_capacity_error); tests/hdl/test_decoder.py checks "
           "the gates against the rule"))),
)


def _code_lines(path: Path) -> list[str]:
    """The file's lines with comments and docstrings blanked (line numbers kept)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    blank = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                blank.update(range(first.lineno, first.end_lineno + 1))
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            lines[row - 1] = lines[row - 1][:column]
    return ["" if number in blank else line for number, line in enumerate(lines, start=1)]


def _sources() -> dict[str, list[str]]:
    return {path.relative_to(ROOT).as_posix(): _code_lines(path)
            for folder in SOURCE_FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))}


SOURCES = _sources()


def copies(rule: Rule, sources: dict[str, list[str]]) -> list[str]:
    """``path:line: code`` of every match of ``rule`` in its folders, outside its
    defining module and its exceptions."""
    allowed = {rule.defined_in, *(path for path, _ in rule.exceptions)}
    found = []
    for path, lines in sources.items():
        if path in allowed or path.split("/")[0] not in rule.folders:
            continue
        for number, line in enumerate(lines, start=1):
            if any(re.search(pattern, line) for pattern in rule.patterns):
                found.append(f"{path}:{number}: {line.strip()}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_rule_has_no_second_copy(rule):
    found = copies(rule, SOURCES)
    assert not found, (f"{rule.name} (defined in {rule.defined_in}): written again; call "
                       f"the rule instead:\n" + "\n".join(found))


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_rule_is_defined_where_it_says(rule):
    assert any(re.search(rule.definition, line) for line in SOURCES[rule.defined_in]), \
        f"{rule.name}: no {rule.definition!r} in {rule.defined_in}"


def test_patterns_match_the_copies_they_describe():
    """Each pattern finds the kind of copy it is written for (so a typo in a pattern
    cannot make its rule pass vacuously)."""
    samples = {
        "two's-complement range and saturation": "low, high = -(1 << (bits - 1)), 7",
        "rounding of scaled reals": "codes = np.rint(scaled)",
        "integer round-shift": "half = 1 << (shift - 1)",
        "round-shift in the HDL": "Mux(code == Rounding.STOCHASTIC, a, b)",
        "rounding codes as literals": "checks.append(output.rounding != 3)",
        "VRQ range bits and limits": "bits = max(1, (config.vrq_ranges - 1).bit_length())",
        "tiling ceiling division": "words = -(-a.shape[1] // lanes)",
        "buffer capacity": "if m_tiles * words > config.buffer_depth:",
    }
    assert set(samples) == {rule.name for rule in RULES}
    for rule in RULES:
        assert copies(rule, {f"{rule.folders[0]}/sample.py": [samples[rule.name]]}), rule.name


def test_comments_and_docstrings_are_not_code(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""x = -(-a // b)"""\n\n\ndef f(a, b):\n    """np.rint(a)"""\n'
                      '    return a  # np.floor(a)\n\n\nVALUE = "-(-1 // 2)"\n')
    assert _code_lines(sample) == ["", "", "", "def f(a, b):", "", "    return a  ", "",
                                   "", 'VALUE = "-(-1 // 2)"']
