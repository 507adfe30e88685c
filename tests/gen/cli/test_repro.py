"""qforge repro: options and --shapes."""

import pytest

from tests.cli import command_parser, options, run_qforge


def test_options():
    table = options(command_parser("repro"))
    assert set(table) == {"--shapes", "--seed"}
    assert table["--seed"].default == 7


@pytest.mark.parametrize("shapes, message", [
    ("2x2,4by8", "--shapes: '4by8' is not ROWSxCOLS (e.g. 2x2,4x8,8x8)"),
    ("2x2", "--shapes: give at least two shapes to compare"),
    ("2x2,4x8,2X2", "--shapes: 2x2 given twice (a shape compared with itself proves nothing)"),
])
def test_bad_shapes_are_one_line(capsys, shapes, message):
    assert run_qforge(capsys, "repro", "--shapes", shapes) == (
        2, "", f"qforge: error: {message}\n")
