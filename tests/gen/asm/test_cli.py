"""``qforge asm``: the language in its help, listing, hex and binary output, errors."""

import pytest

from qforge.gen.asm import assemble, assemble_file
from qforge.gen.cli import main
from tests.cli import run_qforge
from tests.gen.asm.shared import DEFAULT, EXAMPLE, words_of


def test_cli_help_explains_the_language(capsys):
    with pytest.raises(SystemExit) as info:
        main(["asm", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "docs/ISA.md" in out and ".const" in out and "matmul" in out


def test_cli_listing_hex_and_binary(capsys, tmp_path):
    code, out, _ = run_qforge(capsys, "asm", EXAMPLE)
    program = assemble_file(EXAMPLE, DEFAULT)
    assert code == 0 and len(out.splitlines()) > len(program.words)

    source = tmp_path / "prog.qasm"
    source.write_text("gemm 2, 2, 2\nfence\n")
    code, out, _ = run_qforge(capsys, "asm", source, "--preset", "tiny", "--hex")
    assert code == 0
    assert out.split() == [f"{word:016x}" for word in words_of("gemm 2, 2, 2\nfence")]

    binary = tmp_path / "prog.bin"
    code, out, err = run_qforge(capsys, "asm", source, "-o", binary)
    assert code == 0 and out == "" and "wrote 2 words" in err
    assert binary.read_bytes() == assemble("gemm 2, 2, 2\nfence").to_bytes()
    code, out, _ = run_qforge(capsys, "asm", source, "-o", binary, "--listing")
    assert code == 0 and "gemm 2, 2, 2" in out


def test_cli_errors_exit_2_with_line_and_column(capsys, tmp_path):
    source = tmp_path / "bad.qasm"
    source.write_text("nop\n  gemm 1, 1, 600\n")
    code, out, err = run_qforge(capsys, "asm", source, "--preset", "tiny")
    lines = err.splitlines()
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(lines) == 3 and lines[0].startswith(f"{source}:2:")
    assert ": error: " in lines[0] and lines[1] == "  gemm 1, 1, 600"

    source.write_text("nop\ngemm 1, 1, k\n")
    code, _, err = run_qforge(capsys, "asm", source)
    assert code == 2 and err.splitlines()[0] == f"{source}:2:12: error: undefined name 'k'"

    code, _, err = run_qforge(capsys, "asm", tmp_path / "missing.qasm")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such file" in err
