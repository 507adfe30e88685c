"""The assembled program (qforge.gen.asm.program): bytes, listing and configuration."""

from qforge.gen.asm import Program, assemble
from tests.gen.asm.shared import DEFAULT, TINY


def test_program_bytes_and_listing():
    program = assemble("nop\ngemm 1, 2, 3  ; go\n.data\nx: .word 9", TINY)
    assert isinstance(program, Program)
    assert program.to_bytes() == b"".join(w.to_bytes(8, "little") for w in program.words)
    listing = program.listing().splitlines()
    assert listing[1].split()[:2] == ["1", f"{program.words[1]:016x}"]
    assert "gemm 1, 2, 3" in listing[1] and "go" in listing[1]
    assert any("symbol x = 0" in line for line in listing)


def test_a_program_knows_its_configuration():
    program = assemble("gemm 1, 2, 3", DEFAULT)
    assert program.config is DEFAULT and assemble("gemm 1, 2, 3").config is None
    assert program == assemble("gemm 1, 2, 3", TINY)   # not part of equality
