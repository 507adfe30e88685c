"""qforge lint: options and a missing file."""

import pytest

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("lint")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--verilog", "--programmable"}
    assert table["--preset"].default == "default"
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


def test_missing_verilog_is_one_line(capsys, tmp_path):
    code, _, err = run_qforge(capsys, "lint", "--verilog", tmp_path / "none.v")
    assert (code, err) == (2, f"qforge: error: --verilog {tmp_path / 'none.v'}: no such file\n")


TRUNCATING = ("module trunc(input wire [7:0] a, output wire [3:0] y);\n"
              "  assign y = a;\nendmodule\n")


@pytest.mark.rtl          # runs Verilator (a few lines: well under a second)
def test_user_verilog_gets_every_warning(capsys, tmp_path):
    """qforge's waivers are for its own output: a user's width truncation is reported."""
    (tmp_path / "trunc.v").write_text(TRUNCATING)
    code, out, err = run_qforge(capsys, "lint", "--verilog", tmp_path / "trunc.v")
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == "verilator --lint-only -Wall: 2 warning(s):"
    assert lines[1].startswith(f"  %Warning-WIDTHTRUNC: {tmp_path / 'trunc.v'}:2:12: ")
    assert lines[2].startswith(f"  %Warning-UNUSEDSIGNAL: {tmp_path / 'trunc.v'}:1:31: ")


@pytest.mark.rtl
def test_a_file_named_like_an_option_is_linted_as_a_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-Wno-fatal.v").write_text(TRUNCATING)
    code, out, _ = run_qforge(capsys, "lint", "--verilog=-Wno-fatal.v")
    assert code == 1
    assert f"%Warning-WIDTHTRUNC: {tmp_path / '-Wno-fatal.v'}:2:12: " in out


def test_a_missing_file_named_like_an_option_is_one_line(capsys):
    code, _, err = run_qforge(capsys, "lint", "--verilog=-Wall")
    assert (code, err) == (2, "qforge: error: --verilog -Wall: no such file\n")
