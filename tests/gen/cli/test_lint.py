"""qforge lint: options and a missing file."""

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
