"""Tests for the hardware configuration, :mod:`qforge.sim.model.spec`.

The spec is the single source of every width in the generated hardware, so these tests
check three things: the presets load and round-trip; every bad value (per field in
``SCHEMA``, and every cross-field rule) is one ``ConfigError`` that names the field, the
value and what is allowed; and the derived accumulator width agrees with an independent
computation from its documented definition and really cannot overflow.
"""

import copy
import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.sim.model import spec
from qforge.sim.model.spec import (
    PRESETS,
    SCHEMA,
    Config,
    ConfigError,
    from_dict,
    load_preset,
    load_spec,
    preset_names,
)

PRESET_DIR = Path(__file__).parents[3] / "gen" / "presets"
SECTIONS = sorted({field.section for field in SCHEMA})
POWERS_OF_TWO_TEXT = "1, 2, 4, 8, 16, 32, 64"

# Deterministic and quick: the whole file must run in a few seconds.
FAST = settings(max_examples=60, deadline=None, database=None, derandomize=True)


# ---- helpers ----------------------------------------------------------------------------

def default_spec():
    """A fresh nested spec dictionary of the default preset."""
    return load_preset("default").to_dict()


def with_value(spec_dict, path, value):
    """A copy of ``spec_dict`` with the dotted key ``path`` set to ``value``."""
    out = copy.deepcopy(spec_dict)
    section, name = path.split(".")
    out[section][name] = value
    return out


def make_spec(name="custom", *, rows=4, cols=4, operand_width=8, block_width=2,
              block_multipliers=4, max_reduction_depth=1024, output_width=8, depth=512):
    return {
        "name": name,
        "array": {"rows": rows, "cols": cols},
        "arithmetic": {
            "operand_width": operand_width,
            "block_width": block_width,
            "block_multipliers": block_multipliers,
            "max_reduction_depth": max_reduction_depth,
            "output_width": output_width,
        },
        "buffers": {"depth": depth},
    }


def error_of(spec_dict, **kwargs):
    """The message of the ConfigError that ``from_dict(spec_dict)`` must raise."""
    with pytest.raises(ConfigError) as info:
        from_dict(spec_dict, **kwargs)
    return str(info.value)


def toml_value(value):
    """``value`` written as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


def write_toml(path, spec_dict):
    lines = [f"name = {toml_value(spec_dict['name'])}"]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}"
                     for key, value in spec_dict[section].items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fits_signed(value, width):
    """Whether ``value`` is representable in ``width``-bit two's complement."""
    return -(1 << (width - 1)) <= value <= (1 << (width - 1)) - 1


def expected_accumulator_width(config):
    """The accumulator width from its documented definition, computed independently:
    the narrowest two's-complement width holding ``max_reduction_depth * 2**(2W-2)``,
    and at least the lane-sum width ``2W + ceil(log2 P) + 1``; with ``arithmetic.paired``
    (unsigned operands, up to ``2**W - 1``) ``max_reduction_depth * (2**W - 1)**2``."""
    bound = config.max_reduction_depth * 2 ** (2 * config.operand_width - 2)
    if config.paired:
        bound = config.max_reduction_depth * (2 ** config.operand_width - 1) ** 2
    width = 1
    while not fits_signed(bound, width):
        width += 1
    lane = 2 * config.operand_width + math.ceil(math.log2(config.block_multipliers)) + 1
    return max(width, lane)


@st.composite
def valid_specs(draw):
    """Nested spec dictionaries that satisfy every rule of the schema."""
    width = draw(st.integers(2, 16))
    block = draw(st.sampled_from([k for k in range(1, width + 1) if width % k == 0]))
    multipliers = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64]))
    depth = draw(st.integers(1, 1 << 16))
    reduction = draw(st.integers(1, min(1 << 20, depth * multipliers)))
    # lane_sum_width >= 2W + 1, so this never exceeds the accumulator.
    output = draw(st.integers(2, 2 * width + 1))
    name = draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True))
    # Within the design size limit: an upper bound of each PE's share (lane sum at most
    # 2W + 7 bits, accumulator at most 64) bounds the array.
    per_pe = multipliers * (2 * width + 7) + 64
    rows = draw(st.integers(1, max(1, min(64, spec.MAX_DESIGN_SIZE // per_pe))))
    cols = draw(st.integers(1, max(1, min(64, spec.MAX_DESIGN_SIZE // (rows * per_pe)))))
    return make_spec(name, rows=rows, cols=cols,
                     operand_width=width, block_width=block,
                     block_multipliers=multipliers, max_reduction_depth=reduction,
                     output_width=output, depth=depth)


# ---- presets ----------------------------------------------------------------------------

def test_preset_names_are_the_presets():
    assert preset_names() == sorted(PRESETS) == ["default", "fused", "fxp8", "large", "paired",
                                                 "shared", "sparse", "tiny", "ulx3s"]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads(name):
    config = load_preset(name)
    assert isinstance(config, Config)
    assert config.name == name
    # The packaged resource and the file in gen/presets are the same spec.
    assert load_spec(PRESET_DIR / f"{name}.toml") == config
    assert load_spec(str(PRESET_DIR / f"{name}.toml")) == config


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_frozen(name):
    config = load_preset(name)
    for attribute in [f.name for f in dataclasses.fields(Config)]:
        before = getattr(config, attribute)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, attribute, before)
        assert getattr(config, attribute) == before


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_toml_file(name, tmp_path):
    config = load_preset(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    again = load_spec(path)
    assert again == config
    assert hash(again) == hash(config)
    assert tomllib.loads(config.to_toml()) == config.to_dict()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_dict(name):
    config = load_preset(name)
    assert from_dict(config.to_dict()) == config
    # to_dict lays the values out exactly as SCHEMA says.
    as_dict = config.to_dict()
    optional = ({"zero_skipping"} if config.zero_skipping else set()) | (
        {"output_stage"} if config.output_lanes_per_cycle is not None else set())
    assert set(as_dict) == {"name", *SECTIONS} | optional
    for section in SECTIONS:
        optional_keys = ["pe"] if section == "arithmetic" and config.pe != "shifted" else []
        if section == "arithmetic" and config.paired:
            optional_keys.append("paired")
        assert list(as_dict[section]) == [f.name for f in SCHEMA
                                          if f.section == section] + optional_keys


@pytest.mark.parametrize("name", PRESETS)
def test_presets_match_their_toml_text(name):
    raw = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    assert load_preset(name).to_dict() == raw


def test_direct_construction_validates():
    config = load_preset("default")
    with pytest.raises(ConfigError, match=r"array\.rows = 0"):
        dataclasses.replace(config, rows=0)
    with pytest.raises(ConfigError, match=r"buffers\.depth = -3"):
        dataclasses.replace(config, buffer_depth=-3)


def test_name_defaults_when_absent():
    spec_dict = default_spec()
    del spec_dict["name"]
    assert from_dict(spec_dict).name == "custom"


# ---- every field, every kind of bad value ------------------------------------------------

BAD_KINDS = ("zero", "negative", "above_maximum", "bool", "float", "string")


def bad_value(field, kind):
    good = default_spec()[field.section][field.name]
    return {
        "zero": 0,
        "negative": -1,
        "above_maximum": field.maximum + 1,
        "bool": True,
        "float": float(good),        # integral and in range, still not an integer
        "string": str(good),
    }[kind]


@pytest.mark.parametrize("route", ["dict", "toml"])
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("field", SCHEMA, ids=lambda f: f.path)
def test_bad_field_value(field, kind, route, tmp_path):
    value = bad_value(field, kind)
    spec_dict = with_value(default_spec(), field.path, value)
    if route == "dict":
        message, source = error_of(spec_dict), "spec"
    else:
        source = write_toml(tmp_path / "bad.toml", spec_dict)
        with pytest.raises(ConfigError) as info:
            load_spec(source)
        message = str(info.value)
    # One error, about this field: source, dotted path, the value, then what is allowed.
    assert message.startswith(f"{source}: {field.path} = {value!r}: ")
    assert f"{field.minimum} .. {field.maximum}" in message
    assert field.help in message
    if kind in ("bool", "float", "string"):
        assert "integer" in message and f"not {type(value).__name__}" in message


@pytest.mark.parametrize("field", SCHEMA, ids=lambda f: f.path)
def test_range_ends_are_checked_exactly(field):
    """``minimum - 1`` is rejected as out of range; ``minimum`` passes the range check
    (it may still break a cross-field rule, but then not with a range message)."""
    below = with_value(default_spec(), field.path, field.minimum - 1)
    assert "allowed range is" in error_of(below)
    for value in (field.minimum, field.maximum):
        try:
            from_dict(with_value(default_spec(), field.path, value))
        except ConfigError as error:
            assert "allowed range is" not in str(error)


def test_smallest_and_largest_configs_are_valid():
    smallest = from_dict(make_spec(rows=1, cols=1, operand_width=2, block_width=1,
                                   block_multipliers=1, max_reduction_depth=1,
                                   output_width=2, depth=1))
    assert smallest.accumulator_width == expected_accumulator_width(smallest)
    widest = from_dict(make_spec(rows=1, cols=1, operand_width=16, block_width=16,
                                 block_multipliers=64, max_reduction_depth=1 << 20,
                                 output_width=8, depth=1 << 16))
    assert widest.accumulator_width == expected_accumulator_width(widest)
    assert widest.accumulator_width <= spec.MAX_ACCUMULATOR_WIDTH
    largest_array = from_dict(make_spec(rows=64, cols=64, operand_width=8, block_width=8,
                                        block_multipliers=1, max_reduction_depth=512,
                                        output_width=8, depth=512))
    assert largest_array.design_size <= spec.MAX_DESIGN_SIZE


# ---- cross-field rules -------------------------------------------------------------------

@pytest.mark.parametrize("width,block", [(8, 3), (8, 5), (8, 6), (8, 16), (6, 4),
                                         (12, 5), (16, 3), (2, 16)])
def test_block_width_must_divide_operand_width(width, block):
    message = error_of(make_spec(operand_width=width, block_width=block))
    divisors = ", ".join(str(k) for k in range(1, width + 1) if width % k == 0)
    assert f"arithmetic.block_width = {block!r}" in message
    assert "arithmetic.operand_width" in message
    assert f"allowed: {divisors}" in message


@pytest.mark.parametrize("width", range(2, 17))
def test_every_divisor_is_accepted(width):
    for block in range(1, width + 1):
        if width % block == 0:
            config = from_dict(make_spec(operand_width=width, block_width=block))
            assert config.blocks * block == width


@pytest.mark.parametrize("multipliers", [3, 5, 6, 7, 12, 48, 63])
def test_block_multipliers_must_be_power_of_two(multipliers):
    message = error_of(make_spec(block_multipliers=multipliers))
    assert f"arithmetic.block_multipliers = {multipliers!r}" in message
    assert f"power of two: {POWERS_OF_TWO_TEXT}" in message


@pytest.mark.parametrize("multipliers", [1, 2, 4, 8, 16, 32, 64])
def test_powers_of_two_are_accepted(multipliers):
    assert from_dict(make_spec(block_multipliers=multipliers, depth=1024)) \
        .block_multipliers == multipliers


@pytest.mark.parametrize("name", PRESETS)
def test_reduction_depth_must_fit_the_buffer(name):
    config = load_preset(name)
    capacity = config.buffer_depth * config.block_multipliers
    at_capacity = with_value(config.to_dict(), "arithmetic.max_reduction_depth", capacity)
    assert from_dict(at_capacity).max_depth_words == config.buffer_depth
    too_deep = with_value(config.to_dict(), "arithmetic.max_reduction_depth", capacity + 1)
    message = error_of(too_deep)
    assert f"arithmetic.max_reduction_depth = {capacity + 1}" in message
    assert "buffers.depth" in message
    assert str(capacity) in message


@pytest.mark.parametrize("limit", [40, 45, 48])
def test_accumulator_too_wide(monkeypatch, limit):
    """The schema's limits keep every accumulator within 64 bits (the widest,
    16-bit operands and depth 2**20, needs 52), so the rule is exercised with a
    lowered limit; the depth the message offers must be exactly the largest that
    passes."""
    monkeypatch.setattr(spec, "MAX_ACCUMULATOR_WIDTH", limit)
    wide = make_spec(operand_width=16, block_width=4, block_multipliers=64,
                     max_reduction_depth=1 << 20, depth=1 << 16)
    message = error_of(wide)
    assert f"arithmetic.max_reduction_depth = {1 << 20}" in message
    assert "52-bit accumulator" in message and f"at most {limit} bits" in message
    deepest = ((1 << (limit - 1)) - 1) // (1 << 30)   # independent: bound < 2**(limit-1)
    assert f"depth must be at most {deepest}" in message
    ok = from_dict(with_value(wide, "arithmetic.max_reduction_depth", deepest))
    assert ok.accumulator_width == limit
    with pytest.raises(ConfigError, match="accumulator"):
        from_dict(with_value(wide, "arithmetic.max_reduction_depth", deepest + 1))


@pytest.mark.parametrize("name", PRESETS)
def test_output_width_not_above_accumulator(name):
    config = load_preset(name)
    accumulator = config.accumulator_width
    at_limit = with_value(config.to_dict(), "arithmetic.output_width", accumulator)
    assert from_dict(at_limit).output_width == accumulator
    above = with_value(config.to_dict(), "arithmetic.output_width", accumulator + 1)
    message = error_of(above)
    assert f"arithmetic.output_width = {accumulator + 1}" in message
    assert f"accumulator width ({accumulator})" in message


def test_output_width_above_small_accumulator():
    # 2-bit operands, P = 1, depth 1: the lane sum (5 bits) sets the accumulator.
    small = make_spec(operand_width=2, block_width=1, block_multipliers=1,
                      max_reduction_depth=1, output_width=5, depth=1)
    assert from_dict(small).accumulator_width == 5
    message = error_of(with_value(small, "arithmetic.output_width", 6))
    assert "arithmetic.output_width = 6" in message and "(5)" in message


# ---- structure of the spec ---------------------------------------------------------------

def test_unknown_top_level_key():
    spec_dict = default_spec()
    spec_dict["arrays"] = {"rows": 2}
    message = error_of(spec_dict)
    assert "'arrays'" in message
    assert "arithmetic, array, buffers, name" in message


@pytest.mark.parametrize("section", SECTIONS)
def test_unknown_key_in_section(section):
    spec_dict = default_spec()
    spec_dict[section]["bogus"] = 1
    message = error_of(spec_dict)
    assert f"'{section}.bogus'" in message
    allowed = ", ".join(f.name for f in SCHEMA if f.section == section)
    assert f"allowed keys in [{section}]: {allowed}" in message


@pytest.mark.parametrize("section", SECTIONS)
def test_missing_section(section):
    spec_dict = default_spec()
    del spec_dict[section]
    message = error_of(spec_dict)
    assert f"missing section [{section}]" in message
    for field in SCHEMA:
        if field.section == section:
            assert field.name in message


@pytest.mark.parametrize("field", SCHEMA, ids=lambda f: f.path)
def test_missing_key(field):
    spec_dict = default_spec()
    del spec_dict[field.section][field.name]
    message = error_of(spec_dict)
    assert f"missing key {field.path}" in message
    assert f"{field.minimum} .. {field.maximum}" in message


@pytest.mark.parametrize("value", [5, "rows", [1, 2], True])
@pytest.mark.parametrize("section", SECTIONS)
def test_section_not_a_table(section, value):
    spec_dict = default_spec()
    spec_dict[section] = value
    message = error_of(spec_dict)
    assert f"{section} must be a table [{section}]" in message
    assert type(value).__name__ in message


def test_section_not_a_table_in_toml(tmp_path):
    path = tmp_path / "flat.toml"
    path.write_text('name = "flat"\narray = 8\n[arithmetic]\n[buffers]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"array must be a table"):
        load_spec(path)


@pytest.mark.parametrize("name", ["", "two words", "8x8", "a-b", "x.y", 7, True, ["a"]])
def test_name_must_be_identifier(name):
    spec_dict = default_spec()
    spec_dict["name"] = name
    message = error_of(spec_dict)
    assert f"name = {name!r}" in message
    assert "identifier" in message


@pytest.mark.parametrize("value", [[1, 2], "default", 3, None])
def test_spec_must_be_a_table(value):
    assert "must be a table of sections" in error_of(value)


def test_source_prefixes_the_message():
    spec_dict = with_value(default_spec(), "array.cols", 0)
    assert error_of(spec_dict, source="my.toml").startswith("my.toml: array.cols = 0")


# ---- files and presets by name -----------------------------------------------------------

def test_load_spec_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(path) in str(info.value) and "cannot read" in str(info.value)


def test_load_spec_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_spec(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("text", ["name = = 3\n", "[array\nrows = 2\n", "rows = 0x\n",
                                  'name = "a"\nname = "b"\n'])
def test_load_spec_invalid_toml(tmp_path, text):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(path) in str(info.value) and "not valid TOML" in str(info.value)


def test_load_spec_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_load_spec_validation_error_names_file(tmp_path):
    path = write_toml(tmp_path / "zero.toml", with_value(default_spec(), "array.rows", 0))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: array.rows = 0")


@pytest.mark.parametrize("name", ["huge", "Default", "", "default.toml"])
def test_load_preset_unknown(name):
    with pytest.raises(ConfigError) as info:
        load_preset(name)
    assert f"preset = {name!r}" in str(info.value)
    assert "allowed: default, fused, fxp8, large, paired, shared, sparse, tiny, ulx3s" in str(info.value)


# ---- derived widths ----------------------------------------------------------------------

@pytest.mark.parametrize("name", PRESETS)
def test_accumulator_width_of_presets(name):
    config = load_preset(name)
    assert config.accumulator_width == expected_accumulator_width(config)
    assert config.derived()["accumulator_width"] == config.accumulator_width


@FAST
@given(valid_specs())
def test_valid_specs_load_and_derive(spec_dict):
    config = from_dict(spec_dict)
    assert config.to_dict() == spec_dict
    assert from_dict(tomllib.loads(config.to_toml())) == config
    assert config.accumulator_width == expected_accumulator_width(config)
    assert config.accumulator_width <= spec.MAX_ACCUMULATOR_WIDTH
    # The extreme sums of max_reduction_depth products fit.
    most = -(1 << (config.operand_width - 1))
    least = (1 << (config.operand_width - 1)) - 1
    assert fits_signed(config.max_reduction_depth * most * most, config.accumulator_width)
    assert fits_signed(config.max_reduction_depth * most * least, config.accumulator_width)


@pytest.mark.parametrize("width,depth,accumulator", [
    (2, (1 << 20) - 1, 23), (4, 1023, 17), (8, 2047, 26), (8, 4095, 27),
    (12, 511, 32), (16, (1 << 20) - 1, 51)])
def test_accumulator_bound_is_tight(width, depth, accumulator):
    """With ``depth + 1`` a power of two and the product bound (not the lane sum,
    ``2W + 7`` bits here) setting the width, ``depth`` products of two most-negative
    operands fit and one more overflows."""
    config = from_dict(make_spec(operand_width=width, block_width=1,
                                 block_multipliers=64, max_reduction_depth=depth,
                                 output_width=2, depth=1 << 16))
    assert config.accumulator_width == accumulator > config.lane_sum_width
    product = (-(1 << (width - 1))) * (-(1 << (width - 1)))
    assert fits_signed(depth * product, accumulator)
    assert not fits_signed((depth + 1) * product, accumulator)


# ---- every error is a ConfigError --------------------------------------------------------

def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)
    assert not issubclass(ConfigError, (KeyError, TypeError))


ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


@FAST
@given(valid_specs(), st.data())
def test_arbitrary_changes_give_config_or_config_error(spec_dict, data):
    mutated = copy.deepcopy(spec_dict)
    choice = data.draw(st.sampled_from(["set", "delete", "add", "top"]))
    section = data.draw(st.sampled_from(SECTIONS))
    key = data.draw(st.sampled_from(list(mutated[section])))
    if choice == "set":
        mutated[section][key] = data.draw(ANY_VALUE)
    elif choice == "delete":
        del mutated[section][key]
    elif choice == "add":
        mutated[section][data.draw(st.text(max_size=8))] = data.draw(ANY_VALUE)
    else:
        mutated[data.draw(st.sampled_from(["name", *SECTIONS, "extra"]))] = \
            data.draw(ANY_VALUE)
    try:
        config = from_dict(mutated)
    except ConfigError as error:
        assert str(error)
    else:
        assert config.to_dict() == mutated


# ---- the optional [vrq] section ---------------------------------------------------------

def _with_vrq(**vrq):
    spec = load_preset("default").to_dict()
    spec["vrq"] = {"code_width": 4, "range_stride": 2, "ranges": 8} | vrq
    return spec


def test_vrq_section_round_trips_and_widens_the_pe():
    config = from_dict(_with_vrq())
    assert config.vrq is not None and config.to_dict()["vrq"]["ranges"] == 8
    assert from_dict(config.to_dict()) == config
    # Highest position (G-1)*S/K + ceil(N/K) - 1 = 7 + 2 - 1; magnitude K*(8+1) bits.
    assert (config.max_position, config.magnitude_width) == (8, 18)
    assert config.max_operand_magnitude == 15 << 14
    assert load_preset("default").vrq is None


@pytest.mark.parametrize("vrq, field, message", [
    ({"range_stride": 3}, "vrq.range_stride", "multiple of arithmetic.block_width"),
    ({"range_stride": 6}, "vrq.range_stride", "must not exceed vrq.code_width"),
    ({"code_width": 6}, "vrq.code_width", "must fit in arithmetic.operand_width"),
    ({"ranges": 0}, "vrq.ranges", "allowed range is 1 .. 64"),
    ({"ranges": "8"}, "vrq.ranges", "must be an integer"),
])
def test_vrq_section_errors_name_the_field(vrq, field, message):
    with pytest.raises(ConfigError, match=message) as error:
        from_dict(_with_vrq(**vrq))
    assert field in str(error.value)


def test_vrq_section_unknown_and_missing_keys():
    spec = _with_vrq()
    spec["vrq"]["bananas"] = 1
    with pytest.raises(ConfigError, match="unknown key 'vrq.bananas'"):
        from_dict(spec)
    spec = _with_vrq()
    del spec["vrq"]["ranges"]
    with pytest.raises(ConfigError, match="missing key vrq.ranges"):
        from_dict(spec)


# ---- the optional [zero_skipping] section ----------------------------------------------

def _with_zero_skipping(**section):
    spec = load_preset("default").to_dict()
    spec["zero_skipping"] = {"pe_buffer_depth": 512} | section
    return spec


def test_zero_skipping_section_round_trips():
    """The section enables the zero-skipping array, survives dict and TOML round trips
    and adds its derived widths (and only then) to the manifest's list."""
    config = from_dict(_with_zero_skipping())
    assert config.zero_skipping and config.pe_buffer_depth == 512
    assert from_dict(config.to_dict()) == config
    assert from_dict(tomllib.loads(config.to_toml())) == config
    assert "[zero_skipping]" in config.to_toml()
    assert config.derived()["pe_buffer_address_width"] == 10     # 2 * 512 words
    assert config.derived()["word_index_width"] == 9             # words 0 .. 511
    default = load_preset("default")
    assert not default.zero_skipping and "zero_skipping" not in default.to_dict()
    assert "pe_buffer_address_width" not in default.derived()


def test_with_zero_skipping_sizes_the_pe_banks_for_the_deepest_dot_product():
    default = load_preset("default")
    skipping = default.with_zero_skipping()
    assert skipping.pe_buffer_depth == default.max_depth_words == 512
    assert skipping.name == "default_skipping"
    assert skipping.with_zero_skipping() is skipping
    assert default.with_zero_skipping(1024).pe_buffer_depth == 1024


@pytest.mark.parametrize("value, message", [
    (511, "must hold one dot product of arithmetic.max_reduction_depth (2048 operands "
          "= 512 words of 4): at least 512"),
    (0, "allowed range is 1 .. 65536"),
    ("512", "must be an integer"),
    (True, "must be an integer"),
])
def test_zero_skipping_errors_name_the_field(value, message):
    text = error_of(_with_zero_skipping(pe_buffer_depth=value))
    assert "zero_skipping.pe_buffer_depth" in text and message in text


def test_zero_skipping_section_unknown_missing_and_malformed():
    spec = _with_zero_skipping(bananas=1)
    assert "unknown key 'zero_skipping.bananas'" in error_of(spec)
    spec = _with_zero_skipping()
    del spec["zero_skipping"]["pe_buffer_depth"]
    assert "missing key zero_skipping.pe_buffer_depth" in error_of(spec)
    spec = _with_zero_skipping()
    spec["zero_skipping"] = 512
    assert "zero_skipping must be a table [zero_skipping]" in error_of(spec)


@pytest.mark.parametrize("lanes, message", [
    (0, r"output_stage.lanes_per_cycle = 0: allowed range is 1 \.\. 64"),
    (3, r"output_stage.lanes_per_cycle = 3: must divide array.cols \(2\); allowed: 1, 2"),
    (True, r"output_stage.lanes_per_cycle = True: must be an integer"),
])
def test_output_stage_section_is_validated(lanes, message):
    spec = load_preset("tiny").to_dict() | {"output_stage": {"lanes_per_cycle": lanes}}
    with pytest.raises(ConfigError, match=message):
        from_dict(spec)


def test_output_stage_section_sets_cycles_per_beat():
    spec = load_preset("default").to_dict() | {"output_stage": {"lanes_per_cycle": 2}}
    config = from_dict(spec)
    assert (config.output_lanes, config.output_cycles_per_beat) == (2, 4)
    assert load_preset("default").output_lanes == 8
    assert "output_cycles_per_beat" in config.derived()
    with pytest.raises(ConfigError, match="unknown key 'output_stage.lanes'"):
        from_dict(spec | {"output_stage": {"lanes": 2}})
