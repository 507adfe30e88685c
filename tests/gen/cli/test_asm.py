"""qforge asm: options and file errors (the language's own tests: tests/gen/test_asm.py)."""

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("asm")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--output", "--hex", "--listing"}
    assert table["--output"].option_strings == ["-o", "--output"]
    assert [action.dest for action in parser._actions if not action.option_strings] == ["file"]
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


def test_missing_or_folder_program(capsys, tmp_path):
    assert run_qforge(capsys, "asm", tmp_path / "none.qasm") == (
        2, "", f"qforge: error: {tmp_path / 'none.qasm'}: no such file\n")
    assert run_qforge(capsys, "asm", tmp_path) == (
        2, "", f"qforge: error: {tmp_path}: is a folder, not a file\n")


def test_unwritable_output(capsys, tmp_path):
    source = tmp_path / "prog.qasm"
    source.write_text("fence\n")
    assert run_qforge(capsys, "asm", source, "-o", tmp_path) == (
        2, "", f"qforge: error: -o {tmp_path}: is a folder, not a file\n")
    assert run_qforge(capsys, "asm", source, "-o", "/dev/null/x.bin") == (
        2, "", "qforge: error: -o /dev/null/x.bin: /dev/null is a file, not a folder\n")
