"""qforge train: options and the checks made before training."""

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("train")
    table = options(parser)
    assert set(table) == {"--emulate", "--backend", "--check", "--config", "--epochs",
                          "--seed", "--plot", "--json", "--jobs", "--plot-from"}
    assert table["--backend"].choices == ("rtl", "golden")
    assert exclusive_groups(parser) == [({"--emulate", "--backend", "--plot-from"}, False)]
    for key in ("weight_bits", "update_rounding", "update (float | hardware)"):
        assert key in parser.epilog


def test_needs_emulate_or_backend(capsys):
    code, _, err = run_qforge(capsys, "train")
    assert code == 2 and err.startswith("qforge: error: train needs --emulate")


def test_check_needs_the_rtl_backend(capsys):
    code, _, err = run_qforge(capsys, "train", "--backend", "golden", "--check")
    assert code == 2 and "use it with --backend rtl" in err


def test_seed_out_of_range(capsys):
    code, _, err = run_qforge(capsys, "train", "--emulate", "--seed", "70000")
    assert code == 2 and err.endswith(
        "\nqforge train: error: argument --seed: 70000: allowed range is 0 .. 65535\n")
