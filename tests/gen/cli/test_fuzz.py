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
    (["--programs", "0"], "--programs = 0: allowed 1 .. 100000"),
    (["--instructions", "0"], "--instructions = 0: allowed 1 .. 100000"),
    (["--stall", "1"], "--invalid: allowed 0 .. 1; --stall: allowed 0 .. below 1"),
])
def test_out_of_range_is_one_line(capsys, argv, message):
    assert run_qforge(capsys, "fuzz", *argv) == (2, "", f"qforge: error: {message}\n")
