"""qforge demo: options and the errors found before anything is built."""

import pytest

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("demo")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--per-mode", "--seed", "--simulator",
                          "--no-large", "--output", "--programs"}
    assert (table["--per-mode"].default, table["--seed"].default,
            table["--programs"].default) == (2, 1, 10)
    assert table["--simulator"].choices == ["verilator", "icarus"]
    assert table["--simulator"].default == "verilator"
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


@pytest.mark.parametrize("option", ["--programs", "--per-mode"])
def test_negative_counts_are_one_line(capsys, option):
    code, _, err = run_qforge(capsys, "demo", "--preset", "tiny", option, "-1")
    assert (code, err) == (2, f"qforge: error: {option} = -1: must be at least 0\n")


def test_output_below_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = run_qforge(capsys, "demo", "--preset", "tiny", "--output",
                              tmp_path / "file" / "report")
    assert code == 2 and err.startswith("qforge: error: --output ")
    assert err.endswith("is a file, not a folder\n")
