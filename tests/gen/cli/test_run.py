"""qforge run: options, labels and a run on the golden machine."""

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("run")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--backend", "--compare", "--random", "--seed",
                          "--show"}
    assert table["--backend"].choices == ("golden", "rtl")
    assert table["--backend"].default == "golden" and table["--seed"].default == 1
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


def test_golden_run_and_an_unknown_label(capsys, tmp_path):
    source = tmp_path / "prog.qasm"
    source.write_text(".data\nx: .word 1, 2, 3, 4\ny: .zero 4\n.text\n"
                      "load a, x, stride=2\nload b, x, stride=2\nstore y, stride=2\n"
                      "gemm 2, 2, 2\n")
    code, out, _ = run_qforge(capsys, "run", source, "--preset", "tiny", "--show", "y")
    assert code == 0 and "1 GEMMs, error flag 0" in out
    assert out.splitlines()[-1] == "y @ 4 (4 elements): 7 10 15 22"
    assert run_qforge(capsys, "run", source, "--preset", "tiny", "--random", "z") == (
        2, "", f"qforge: error: --random z: not a data label of {source}; its data labels: "
               "x, y\n")
