"""``qforge train --emulate`` end to end (the training package driven by the command
line): help, errors, a tiny run writing its table, plot and JSON."""

import json

import pytest

from tests.cli import run_qforge


def test_train_help_explains_every_option(capsys):
    code, out, _ = run_qforge(capsys, "train", "--help")
    assert code == 0
    for option in ("--emulate", "--backend", "--check", "--config", "--epochs", "--seed",
                   "--plot", "--json", "--jobs", "weight_bits", "update_rounding", "update"):
        assert option in out


def test_train_without_emulate_or_backend_is_a_clear_error(capsys):
    code, _, err = run_qforge(capsys, "train")
    assert code == 2 and err.startswith("qforge: error: ")
    assert "--emulate" in err and "--backend rtl|golden" in err
    code, _, err = run_qforge(capsys, "train", "--emulate", "--check")
    assert code == 2 and "--check compares the rtl backend" in err


def test_tiny_training_run_from_the_command_line(capsys, tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\nhidden = 16\nepochs = 5\nbatch_size = 32\n'
                    'learning_rate = 0.3\nseed = 2\ntrain_samples = 256\n\n'
                    '[[hardware]]\nname = "float32"\nformat = "float32"\n\n'
                    '[[hardware]]\nname = "ab8"\nformat = "address_block"\nbits = 8\n'
                    'block = 64\nweight_bits = 10\n')
    plot, report = tmp_path / "curves.png", tmp_path / "out" / "report.json"
    code, out, err = run_qforge(capsys, "train", "--emulate", "--config", str(spec), "--epochs", "1",
                         "--plot", str(plot), "--json", str(report), "--jobs", "1")
    assert code == 0, err
    assert "| float32 |" in out and "| ab8 |" in out and "vs float32" in out
    assert "epoch   1/1" in err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(report.read_text())
    assert data["epochs"] == 1 and [run["name"] for run in data["runs"]] == ["float32", "ab8"]


def test_train_errors_are_one_line(capsys):
    code, _, err = run_qforge(capsys, "train", "--emulate", "--config", "missing.toml")
    assert (code, err) == (2, "qforge: error: missing.toml: cannot read training config: "
                              "No such file or directory\n")


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "argument --seed: -1: allowed range is 0 .. 65535"),
    (["--epochs", "0"], "argument --epochs: 0: allowed range is 1 .. 10000"),
])
def test_bad_numbers_are_usage_errors(capsys, argv, message):
    """Numeric options are checked by argparse: its usage, then one error line."""
    code, out, err = run_qforge(capsys, "train", "--emulate", *argv)
    assert (code, out) == (2, "") and err.startswith("usage: qforge train ")
    assert err.endswith(f"\nqforge train: error: {message}\n")


def test_bad_config_file_is_one_line(capsys, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('hidden = 16\nepochs = 1\nbatch_size = 8\nlearning_rate = 0.1\nseed = 1\n'
                    '[[hardware]]\nname = "q"\nformat = "int"\nbits = 3\n')
    code, _, err = run_qforge(capsys, "train", "--emulate", "--config", str(spec))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{spec}: hardware[0] (q).bits = 3: must be a multiple" in err
