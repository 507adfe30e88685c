"""The spec fuzz tier (issue 14): random spec TOML (random sections, keys and values of
every TOML type, huge numbers, unicode, missing and extra fields, now and then broken
TOML), loaded by :func:`qforge.sim.model.spec.load_spec` and by ``qforge asm --spec``
(which loads the spec and elaborates nothing). Properties: loading succeeds or raises
one :class:`ConfigError`, never another exception; the command exits 0, or 2 with one
``qforge: error:`` line and no traceback; an accepted spec round-trips through
:meth:`Config.to_toml`; each input takes well under a second.

Budget: :data:`tests.fuzz.fuzz_settings` (25 inputs per property in ``make test``, 500
with ``QFORGE_FUZZ_EXAMPLES=500``).
"""

from __future__ import annotations

import json
import math
import time

from hypothesis import event, given
from hypothesis import strategies as st

from qforge.sim.model.spec import (OUTPUT_STAGE_SCHEMA, PRESETS, SCHEMA, VRQ_SCHEMA,
                                   ZERO_SKIPPING_SCHEMA, Config, ConfigError, load_preset,
                                   load_spec)
from tests.cli import run_qforge
from tests.fuzz import fuzz_settings

#: Seconds one input may take (load, or one in-process command run).
SECONDS = 2.0

FIELDS = (*SCHEMA, *VRQ_SCHEMA, *ZERO_SKIPPING_SCHEMA, *OUTPUT_STAGE_SCHEMA)
SECTIONS = sorted({field.section for field in FIELDS})
KEYS = sorted({field.name for field in FIELDS})

# Text TOML can carry: no lone surrogates (they cannot be written as UTF-8).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
SCALARS = st.one_of(
    st.integers(0, 80),                                       # mostly near the limits
    st.sampled_from([1 << 16, 1 << 20, (1 << 20) + 1, 1 << 63, (1 << 64) + 1, -(1 << 63),
                     10 ** 40, -1]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    TEXT,
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6)


def toml_value(value) -> str:
    """``value`` as TOML text (mixed arrays and inline tables are TOML 1.0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)     # repr: inf, -inf, 1e+100
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(key, ensure_ascii=False)} = {toml_value(item)}"
                           for key, item in value.items()) + "}"


def toml_text(spec: dict) -> str:
    """A nested dictionary as a TOML document: plain keys first, then one [section]
    per dictionary value (every key quoted, so any text is a key)."""
    lines = [f"{json.dumps(key, ensure_ascii=False)} = {toml_value(value)}"
             for key, value in spec.items() if not isinstance(value, dict)]
    for section, table in spec.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(section, ensure_ascii=False)}]")
            lines += [f"{json.dumps(key, ensure_ascii=False)} = {toml_value(value)}"
                      for key, value in table.items()]
    return "\n".join(lines) + "\n"


@st.composite
def mutated_presets(draw) -> dict:
    """A preset's spec with a few random edits: a key set to a random value, a key or a
    section removed, an unknown key or section added, an optional section added."""
    spec = load_preset(draw(st.sampled_from(PRESETS))).to_dict()
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from([*SECTIONS, "name"]))
        edit = draw(st.sampled_from(["set", "remove", "extra", "section"]))
        if section == "name" or edit == "section":
            spec[section] = draw(st.one_of(VALUES, st.dictionaries(
                st.sampled_from(KEYS), st.integers(0, 70), max_size=3)))
            continue
        table = spec.setdefault(section, {})
        if not isinstance(table, dict):
            continue
        key = draw(st.sampled_from(KEYS)) if edit != "extra" else draw(TEXT)
        if edit == "remove":
            table.pop(key, None)
        else:
            table[key] = draw(VALUES)
    return spec


RANDOM_SPECS = st.dictionaries(
    st.one_of(st.sampled_from([*SECTIONS, "name"]), TEXT),
    st.one_of(VALUES, st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), VALUES,
                                      max_size=5)), max_size=6)

SPEC_TEXTS = st.one_of(
    st.builds(toml_text, st.one_of(mutated_presets(), RANDOM_SPECS)),
    st.builds(lambda spec, junk: toml_text(spec) + junk, mutated_presets(), TEXT),
    TEXT,
)


@fuzz_settings
@given(SPEC_TEXTS)
def test_random_specs_load_or_raise_one_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    try:
        config = load_spec(path)
    except ConfigError as error:
        event("refused")
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
    else:
        event("accepted")
        assert isinstance(config, Config)
        copy = path.with_name("copy.toml")
        copy.write_text(config.to_toml(), encoding="utf-8")
        assert load_spec(copy) == config
    assert time.monotonic() - started < SECONDS


@fuzz_settings
@given(SPEC_TEXTS)
def test_random_specs_on_the_command_line(capsys, tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("spec")
    path, program = folder / "spec.toml", folder / "empty.qasm"
    path.write_text(text, encoding="utf-8")
    program.write_text("", encoding="utf-8")
    started = time.monotonic()
    status, out, err = run_qforge(capsys, "asm", "--spec", path, program)
    assert time.monotonic() - started < SECONDS
    if status == 0:
        assert err == ""
    else:
        assert status == 2 and out == ""
        assert err.startswith("qforge: error: ") and err.count("\n") == 1, err
