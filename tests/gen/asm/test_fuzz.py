"""The assembly fuzz tier: random assembly text through ``qforge asm`` (random tokens,
deep nesting, long chains, huge numbers, random directives, instructions and blocks,
random bytes). Whatever the input, the command ends with status 0 and no error, or
status 2 and one error line, never a traceback, within a few seconds."""

import time

from hypothesis import given
from hypothesis import strategies as st

from qforge.gen.asm import BLOCKS, MNEMONICS
from qforge.gen.asm.parser import DIRECTIVES
from qforge.gen.asm.syntax import FIELDS
from tests.cli import run_qforge
from tests.fuzz import fuzz_settings

#: Seconds one example may take (the slowest valid block, 2**14 GEMMs, takes about one).
SECONDS = 5

NAMES = st.sampled_from(["x", "y", "K", "N", "start", "a", "b", "addend", "nearest",
                         "stochastic", "relu", "transpose", "dynamic", "undefined"])
FIELD_NAMES = sorted({name for fields in FIELDS.values() for name in fields}
                     | {name for block in BLOCKS.values()
                        for name in block.required + block.optional + block.flags})
NUMBERS = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(-2**70, 2**70).map(str),
    st.sampled_from([2**64, 2**64 - 1, 2**63, 2**24, 2**24 - 1, 1 << 40, 16_000_000])
    .map(str),
    st.integers(0, 2**80).map(hex),
    st.text("0123456789_xXbBoOaAfF", min_size=1, max_size=120),
)
VALUES = st.one_of(NUMBERS, NAMES)
OPERATORS = st.sampled_from(["+", "-", "*", "/", "%", "<<", ">>"])


@st.composite
def expressions(draw):
    """A value, or a deep, long or wide expression around values."""
    shape = draw(st.sampled_from(["value", "nested", "chain", "unary", "mixed"]))
    if shape == "nested":
        depth = draw(st.integers(0, 3000))
        return "(" * depth + draw(VALUES) + ")" * draw(st.sampled_from([depth, depth - 1,
                                                                         depth + 1]))
    if shape == "chain":
        return draw(OPERATORS).join([draw(VALUES)] * draw(st.integers(1, 5000)))
    if shape == "unary":
        return draw(st.sampled_from(["-", "~", "+", "- "])) * draw(st.integers(1, 3000)) \
            + draw(VALUES)
    if shape == "mixed":
        parts = draw(st.lists(st.tuples(VALUES, OPERATORS), min_size=1, max_size=6))
        return " ".join(f"{value} {operator}" for value, operator in parts) + draw(VALUES)
    return draw(VALUES)


@st.composite
def operands(draw, keys):
    """Comma-separated operands: expressions, ``name=expression`` and bare names."""
    items = draw(st.lists(st.one_of(
        expressions(),
        st.builds(lambda key, value: f"{key}={value}", st.sampled_from(keys), expressions()),
        st.sampled_from(keys)), max_size=10))
    return ", ".join(items)


@st.composite
def blocks(draw):
    """A block with all its required operands (small, large or huge values) and some
    optional ones: one that may well expand, or fail a bound."""
    name = draw(st.sampled_from(sorted(BLOCKS)))
    block = BLOCKS[name]
    extra = block.optional + block.flags
    keys = list(block.required) + (draw(st.lists(st.sampled_from(extra), max_size=3,
                                                 unique=True)) if extra else [])
    sizes = st.one_of(st.integers(0, 300), st.integers(0, 1 << 25),
                      st.sampled_from([16_000_000, 65535, 65536, 2**64]))
    return f"{name} " + ", ".join(f"{key}={draw(sizes)}" for key in keys)


TOKENS = st.one_of(st.sampled_from([*MNEMONICS, *BLOCKS, *DIRECTIVES, "(", ")", ",", "=",
                                    ":", "+", "-", "*", "<<", "~", ";", "#", ".", "0x",
                                    "\t", "é", "\x00"]), NUMBERS, NAMES)
LINES = st.one_of(
    st.lists(TOKENS, max_size=14).map(" ".join),                                 # tokens
    st.builds(lambda name, value: f".const {name} = {value}", NAMES, expressions()),
    st.builds(lambda directive, rest: f"{directive} {rest}", st.sampled_from(DIRECTIVES),
              operands(FIELD_NAMES)),
    st.builds(lambda mnemonic, rest: f"{mnemonic} {rest}", st.sampled_from(sorted(MNEMONICS)),
              operands(FIELD_NAMES)),
    st.builds(lambda block, rest: f"{block} {rest}", st.sampled_from(sorted(BLOCKS)),
              operands(FIELD_NAMES)),
    blocks(),
    st.builds(lambda label, line: f"{label}: {line}", NAMES, st.sampled_from(
        ["nop", ".zero 4", ".word 1, -2", "gemm 1, 2, 3", ".data", ".text"])),
    st.text(max_size=60),
)
@st.composite
def programs(draw):
    """The bytes of a file: lines of text, or (one time in ten) any bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    return "\n".join(draw(st.lists(LINES, max_size=8))).encode("utf-8")


PROGRAMS = programs()


@fuzz_settings
@given(source=PROGRAMS, preset=st.sampled_from(["default", "tiny", "sparse"]))
def test_qforge_asm_never_crashes_on_random_text(capsys, tmp_path, source, preset):
    path = tmp_path / "fuzz.qasm"
    path.write_bytes(source)
    start = time.perf_counter()
    status, out, err = run_qforge(capsys, "asm", path, "--preset", preset)
    seconds = time.perf_counter() - start
    assert seconds < SECONDS, f"{seconds:.1f} s"
    assert status in (0, 2), (status, err)
    if status == 0:
        assert err == ""
        return
    lines = err.splitlines()   # the headline, then (for a located error) line and caret
    assert out == "" and len(lines) in (1, 3) and ": error: " in lines[0], err
    assert lines[0].startswith((f"{path}:", "qforge: error: ")), err
