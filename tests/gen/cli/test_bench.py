"""qforge bench: options and the plot paths checked before the benchmark runs."""

import pytest

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("bench")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--json", "--rtl", "--plot-dir", "--plot",
                          "--sparse-plot"}
    assert table["--plot"].metavar == table["--sparse-plot"].metavar == "FILE.png"
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


@pytest.mark.parametrize("option", ["--plot", "--sparse-plot"])
def test_plot_must_be_a_png(capsys, tmp_path, option):
    code, _, err = run_qforge(capsys, "bench", option, tmp_path / "plot.txt")
    assert code == 2 and err.endswith(
        f"\nqforge bench: error: argument {option}: {tmp_path / 'plot.txt'}: the file name "
        "must end in .png\n")


def test_plot_dir_below_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = run_qforge(capsys, "bench", "--plot-dir", tmp_path / "file" / "plots")
    assert code == 2 and err.endswith("is a file, not a folder\n")
