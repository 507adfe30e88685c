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


def test_help_names_the_pe_designs_without_zero_skipping(capsys):
    # The designs the description names are those whose configurations cannot be built
    # as the zero-skipping array (tiny with two lanes per PE, K = 4, W = 8, P = 2, suits
    # every design: "fused" pairs its lanes; the preset tiny is P = 1).
    from qforge.sim.apps.benchmark import zero_skipping_not_applicable
    from qforge.sim.model.spec import PE_DESIGNS
    from tests.configs import two_lane_tiny, with_pe


    code, out, _ = run_qforge(capsys, "bench", "--help")
    help_text = " ".join(out.split())
    assert code == 0 and ("reported as not applicable, with the reason (null in --json, "
                          "sparse_not_applicable the reason)") in help_text
    dense_only = {pe for pe in PE_DESIGNS
                  if zero_skipping_not_applicable(with_pe(two_lane_tiny(), pe))}
    assert dense_only == {"shared_shift", "fused"}
    assert {pe for pe in PE_DESIGNS if f'"{pe}"' in help_text} == dense_only
