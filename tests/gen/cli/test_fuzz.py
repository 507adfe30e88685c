"""qforge fuzz: options and their ranges (checked before the RTL is built)."""

import pytest

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("fuzz")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--programs", "--instructions", "--invalid",
                          "--stall", "--seed"}
    assert table["--preset"].default == "tiny"
    assert [table[name].default for name in ("--programs", "--instructions", "--invalid",
                                             "--stall", "--seed")] == [20, 60, 0.1, 0.0, 1]
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


@pytest.mark.parametrize("argv, message", [
    (["--programs", "0"], "--programs: 0: allowed range is 1 .. 100000"),
    (["--instructions", "0"], "--instructions: 0: allowed range is 1 .. 100000"),
    (["--stall", "1"], "--stall: 1.0: allowed range is 0 .. below 1"),
    (["--invalid", "1.5"], "--invalid: 1.5: allowed range is 0 .. 1"),
    (["--invalid", "inf"], "--invalid: 'inf' is not a number (allowed range is 0 .. 1)"),
])
def test_out_of_range_is_one_line(capsys, argv, message):
    code, out, err = run_qforge(capsys, "fuzz", *argv)
    assert (code, out) == (2, "")
    assert err.endswith(f"\nqforge fuzz: error: argument {message}\n")
