"""Bad specs through the public API (:func:`qforge.api.load_config`) and the command line
(``qforge asm --spec``, which loads a spec and does no elaboration): each is one
:class:`ConfigError` (exit status 2, one ``qforge: error:`` line) naming the field, the
value and what is allowed."""

import dataclasses
import re
import time
import tomllib

import pytest

from qforge import api
from qforge.sim.model.spec import MAX_DESIGN_SIZE, from_dict, load_preset
from tests.cli import run_qforge

DEFAULT = load_preset("default").to_toml()


def spec_file(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_section(text, section):
    return text + "\n" + section


def assert_refused(capsys, tmp_path, text, message):
    """The spec ``text`` is refused with exactly ``message`` (after the file name) by the
    API and by the command line."""
    path = spec_file(tmp_path, text)
    with pytest.raises(api.ConfigError, match=f"^{re.escape(f'{path}: {message}')}$"):
        api.load_config(spec=path)
    program = spec_file(tmp_path, "", "empty.qasm")
    status, out, err = run_qforge(capsys, "asm", "--spec", path, program)
    assert (status, out, err) == (2, "", f"qforge: error: {path}: {message}\n")


def test_a_vrq_section_of_zeros_is_an_error(capsys, tmp_path):
    assert_refused(capsys, tmp_path, with_section(
        DEFAULT, "[vrq]\ncode_width = 0\nrange_stride = 0\nranges = 0\n"),
        "vrq.code_width = 0: allowed range is 1 .. 15 (N: code bits of a VRQ operand (its "
        "magnitude)) (leave out the [vrq] section for a configuration without VRQ "
        "operands)")


def test_a_vrq_section_too_wide_for_the_accumulator_names_the_vrq_fields(capsys, tmp_path):
    assert_refused(capsys, tmp_path, with_section(
        DEFAULT, "[vrq]\ncode_width = 2\nrange_stride = 2\nranges = 14\n"),
        "vrq.ranges = 14: with vrq.code_width = 2 and vrq.range_stride = 2 the largest VRQ "
        "operand magnitude, (2**2 - 1) << 26 = 201326592, needs a 68-bit accumulator for "
        "dot products of arithmetic.max_reduction_depth = 2048; at most 64 bits are "
        "allowed; vrq.ranges must be at most 13 (or lower vrq.code_width, "
        "vrq.range_stride or arithmetic.max_reduction_depth)")
    # The limit it offers is the real one: 13 ranges load, with a 64-bit accumulator.
    path = spec_file(tmp_path, with_section(
        DEFAULT, "[vrq]\ncode_width = 2\nrange_stride = 2\nranges = 13\n"), "ok.toml")
    assert api.load_config(spec=path).accumulator_width == 64


@pytest.mark.parametrize("value, message", [
    ("99999999999999999999999", "array.rows = 99999999999999999999999: allowed range is "
                                "1 .. 64 (PE rows of the systolic array (R))"),
    ("8.0", "array.rows = 8.0: must be an integer in 1 .. 64 (PE rows of the systolic "
            "array (R)), not float"),
    ("nan", "array.rows = nan: must be an integer in 1 .. 64 (PE rows of the systolic "
            "array (R)), not float"),
    ("inf", "array.rows = inf: must be an integer in 1 .. 64 (PE rows of the systolic "
            "array (R)), not float"),
    ("true", "array.rows = True: must be an integer in 1 .. 64 (PE rows of the systolic "
             "array (R)), not bool"),
    ('"8"', "array.rows = '8': must be an integer in 1 .. 64 (PE rows of the systolic "
            "array (R)), not str"),
])
def test_numbers_of_the_wrong_kind_name_the_field(capsys, tmp_path, value, message):
    assert_refused(capsys, tmp_path, DEFAULT.replace("rows = 8", f"rows = {value}"), message)


@pytest.mark.parametrize("name, shown", [
    ("é", "'é'"), ("a" * 5000, "'" + "a" * 59 + "...(5002 characters)")])
def test_names_are_short_ascii_identifiers(capsys, tmp_path, name, shown):
    assert_refused(capsys, tmp_path, DEFAULT.replace('name = "default"', f'name = "{name}"'),
                   f"name = {shown}: must be a non-empty identifier of at most 64 ASCII "
                   f"characters (letters, digits, _; not starting with a digit)")


def test_differences_name_every_differing_key():
    tiny = load_preset("tiny")
    vrq = dataclasses.replace(tiny, vrq_code_width=4, vrq_range_stride=4, vrq_ranges=2)
    assert tiny.differences(vrq) == ["vrq.code_width", "vrq.range_stride", "vrq.ranges"]
    assert vrq.differences(tiny) == ["vrq.code_width", "vrq.range_stride", "vrq.ranges"]
    assert tiny.differences(dataclasses.replace(tiny, buffer_depth=1024)) == ["buffers.depth"]


@pytest.mark.parametrize("text, message", [
    ("name = " + "9" * 5000 + "\n", "a number has more than 4300 digits"),
    ("name = " + "[" * 5000 + "]" * 5000 + "\n",
     "arrays or inline tables nested too deeply"),
    (DEFAULT.replace("rows = 8", "rows = " + "9" * 4000),
     "array.rows = " + "9" * 60 + "...(4000 characters): allowed range is 1 .. 64 (PE rows "
     "of the systolic array (R))"),
])
def test_toml_beyond_the_parsers_limits_is_one_error(capsys, tmp_path, text, message):
    assert_refused(capsys, tmp_path, text, message)


HUGE = """name = "huge"
[array]
rows = 64
cols = 64
[arithmetic]
operand_width = 16
block_width = 1
block_multipliers = 64
max_reduction_depth = 1024
output_width = 8
[buffers]
depth = 1024
"""


def test_a_design_too_large_to_generate_is_refused_at_once(capsys, tmp_path):
    """64x64 PEs of 64 one-bit block multipliers elaborated for hours (issue 14, item
    7); now every command refuses the spec when it loads it, ``generate`` included."""
    message = ("array.rows = 64, array.cols = 64, arithmetic.block_multipliers = 64, "
               "arithmetic.operand_width = 16: the design is too large to generate: its "
               "size, rows x cols x (block_multipliers x lane-sum bits + accumulator bits) "
               "= 64 x 64 x (64 x 39 + 42) = 10,395,648, is above the limit 262,144 (about "
               "5 minutes of generation); use fewer rows, columns or block multipliers, or "
               "narrower operands")
    assert_refused(capsys, tmp_path, HUGE, message)
    path = tmp_path / "spec.toml"
    started = time.monotonic()
    status, out, err = run_qforge(capsys, "generate", "--spec", path, "-o", tmp_path / "out")
    assert (status, err) == (2, f"qforge: error: {path}: {message}\n")
    assert time.monotonic() - started < 5 and not (tmp_path / "out").exists()


def test_the_design_size_limit_is_exact():
    """The largest preset is well inside; the limit itself is accepted, one PE more is
    not, and the zero-skipping array counts 5/2 of the dense one."""
    assert load_preset("large").design_size < MAX_DESIGN_SIZE // 8
    # 8 x 8 PEs of P = 16, K = 1, W = 16 (lane sum 37 bits, accumulator 42): 634 each.
    spec = tomllib.loads(HUGE.replace("rows = 64", "rows = 8").replace("cols = 64", "cols = 8")
                         .replace("block_multipliers = 64", "block_multipliers = 16"))
    assert from_dict(spec).design_size == 64 * 634
    largest_rows = MAX_DESIGN_SIZE // (8 * 634)
    spec["array"]["rows"] = largest_rows
    assert from_dict(spec).design_size <= MAX_DESIGN_SIZE
    spec["array"]["rows"] = largest_rows + 1
    with pytest.raises(api.ConfigError, match="the design is too large to generate"):
        from_dict(spec)
    sparse = load_preset("sparse")
    assert sparse.design_size == load_preset("default").design_size * 5 // 2


def test_a_device_or_a_huge_file_is_not_read_as_a_spec(tmp_path):
    """The loader itself refuses what could be read for ever or fill the memory (the
    command line refuses devices too, before it calls the loader)."""
    from qforge.sim.model.spec import MAX_TOML_BYTES, ConfigError, load_spec
    from qforge.sim.training.config import TrainConfigError, load_train_config

    with pytest.raises(ConfigError) as raised:
        load_spec("/dev/zero")
    assert str(raised.value) == "/dev/zero: cannot read spec: not a regular file"
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (MAX_TOML_BYTES + 1))
    with pytest.raises(ConfigError) as raised:
        load_spec(huge)
    assert str(raised.value) == (f"{huge}: spec of {MAX_TOML_BYTES + 1} bytes: at most "
                                 f"{MAX_TOML_BYTES} (1024 KiB) are read")
    with pytest.raises(TrainConfigError) as raised:
        load_train_config(huge)
    assert "training config of 1048577 bytes: at most 1048576" in str(raised.value)


def test_a_long_spec_path_is_shown_by_its_ends(capsys):
    path = "s" * 5000 + ".toml"
    assert run_qforge(capsys, "asm", "--spec", path, "missing.qasm") == (
        2, "", f"qforge: error: {'s' * 20}...{'s' * 25}.toml (5005 characters): cannot read "
               f"spec: File name too long\n")
