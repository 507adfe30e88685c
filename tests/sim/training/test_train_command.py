"""``qforge train --emulate`` end to end (the training package driven by the command
line): help, errors, a tiny run writing its table, plot and JSON."""

import json

import pytest

from tests.cli import run_qforge


def test_train_help_explains_every_option(capsys):
    code, out, _ = run_qforge(capsys, "train", "--help")
    assert code == 0
    for option in ("--emulate", "--backend", "--check", "--config", "--epochs", "--seed",
                   "--plot", "--json", "--jobs", "weight_bits", "update_rounding", "update",
                   "--plot-from", "NAME_cycles.png"):
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


# --- the accuracy vs cycles plot --------------------------------------------------------

TINY_CNN = ('name = "tinycnn"\nmodel = "cnn"\nepochs = 1\nbatch_size = 16\n'
            'learning_rate = 0.2\nseed = 1\ntrain_samples = 48\n\n'
            '[[hardware]]\nname = "float32"\nformat = "float32"\n\n'
            '[[hardware]]\nname = "int8"\nformat = "int"\nbits = 8\n\n'
            '[[hardware]]\nname = "int4"\nformat = "int"\nbits = 4\n')


def test_the_cnn_also_plots_accuracy_against_cycles(capsys, tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_CNN)
    plot, report = tmp_path / "curves.png", tmp_path / "report.json"
    code, out, err = run_qforge(capsys, "train", "--emulate", "--config", spec, "--plot",
                                plot, "--json", report, "--jobs", "1")
    assert code == 0, err
    cycles_plot = tmp_path / "curves_cycles.png"
    assert f"accuracy vs cycles per epoch saved to {cycles_plot}" in out
    assert cycles_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(report.read_text())["baseline"] == "int8"


def cnn_report(path, seed, accuracies, cycles=None):
    """A CNN ``--json`` report of one epoch with the final accuracies ``accuracies``
    (float32 has no cycles; int8 1000 per epoch, int4 400, split over two layers)."""
    cycles = cycles or {"int8": 1000, "int4": 400}
    runs = [{"name": name, "test_accuracy": [0.1, accuracy], "backend": "emulator",
             "layer_cycles": None if name == "float32" else
             {"conv1": {"forward": {"gemms": 1, "cycles": cycles[name] - 100}},
              "fc": {"forward": {"gemms": 1, "cycles": 100}}}}
            for name, accuracy in accuracies.items()]
    path.write_text(json.dumps({"name": "cnn", "model": "cnn", "epochs": 1, "seed": seed,
                                "batch_size": 16, "runs": runs, "baseline": "int8"}))
    return path


def test_plot_from_reports_prints_the_mean_over_seeds(capsys, tmp_path):
    first = cnn_report(tmp_path / "a.json", 1, {"float32": 0.98, "int8": 0.97, "int4": 0.90})
    second = cnn_report(tmp_path / "b.json", 2, {"float32": 0.96, "int8": 0.99, "int4": 0.91})
    plot = tmp_path / "out" / "means.png"
    code, out, err = run_qforge(capsys, "train", "--plot-from", first, second,
                                "--plot", plot)
    assert (code, err) == (0, "")
    # by hand: float32 (98 + 96) / 2 = 97, int8 98 (+1.00), int4 90.5 (-6.50), 2.50x
    assert "| float32 | 98.00% | 96.00% | 97.00% |  |  |  |" in out
    assert "| int8 | 97.00% | 99.00% | 98.00% | +1.00 | 1,000 | 1.00x |" in out
    assert "| int4 | 90.00% | 91.00% | 90.50% | -6.50 | 400 | 2.50x |" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


MLP_REPORT = json.dumps({"epochs": 1, "seed": 1, "runs": [
    {"name": "float32", "test_accuracy": [0.1, 0.9], "layer_cycles": None},
    {"name": "int8", "test_accuracy": [0.1, 0.8], "layer_cycles": None}]})


@pytest.mark.parametrize("name, text, message", [
    ("mlp.json", MLP_REPORT, "qforge: error: accuracy vs cycles: no configuration with "
                             "accelerator cycles"),
    ("bad.json", "{", "qforge: error: --plot-from {tmp}/bad.json: not JSON"),
    ("none.json", None, "qforge: error: --plot-from {tmp}/none.json: cannot read it: No "
                        "such file"),
])
def test_plot_from_bad_reports_are_one_line(capsys, tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    code, out, err = run_qforge(capsys, "train", "--plot-from", tmp_path / name, "--plot",
                                tmp_path / "p.png")
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert err.startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "p.png").exists()


def test_plot_from_refuses_training_options(capsys, tmp_path):
    report = cnn_report(tmp_path / "a.json", 1, {"int8": 0.97})
    code, _, err = run_qforge(capsys, "train", "--plot-from", report, "--seed", "2",
                              "--jobs", "1")
    assert code == 2 and err == ("qforge: error: --plot-from reads finished reports and "
                                 "trains nothing: --seed, --jobs do not apply\n")
    code, _, err = run_qforge(capsys, "train", "--plot-from", report, "--emulate")
    assert code == 2 and "not allowed with argument" in err
