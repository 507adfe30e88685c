"""Every command checks its options before its work: numbers by argparse (one usage
error naming the option), output paths in :func:`qforge.gen.cli.main` before the
handler. The ``no_work`` fixture makes every expensive entry point fail the test if it
is reached, so each error here is proven to come before the work."""

import argparse
import io
import sys

import pytest

from qforge.gen import cli
from qforge.gen.cli import common
from qforge.sim.model.errors import shown_path
from tests.cli import command_parser, options, run_qforge

#: The expensive function behind each command (module, attribute): what must not run
#: when an option is bad.
WORK = [("qforge.gen.generate", "generate"), ("qforge.sim.apps.demo", "run_demo"),
        ("qforge.sim.apps.benchmark", "run_benchmark"), ("qforge.sim.training", "train_all"),
        ("qforge.sim.apps.repro", "run_repro"), ("qforge.fpga.area", "config_area"),
        ("qforge.sim.runtime", "Runtime"), ("qforge.api", "gemm"),
        ("qforge.fpga.flow", "build"), ("qforge.gen.cli.results", "results"),
        ("qforge.sim.training.policy_search", "tune")]


@pytest.fixture
def no_work(monkeypatch):
    """Replace every command's expensive work with a failure."""
    def work(*_arguments, **_keywords):
        raise AssertionError("the work started before the options were checked")

    for module, name in WORK:
        monkeypatch.setattr(f"{module}.{name}", work)


def usage_error(outcome, command: str, option: str, message: str) -> None:
    """``outcome`` is argparse's usage error for ``option``: exit status 2, nothing on
    stdout, the usage and then exactly this error line."""
    assert (outcome.status, outcome.out) == (2, "")
    assert outcome.err.startswith(f"usage: qforge {command} ")
    assert outcome.err.endswith(f"\nqforge {command}: error: argument {option}: {message}\n")


def one_line_error(outcome, message: str) -> None:
    assert outcome == (2, "", f"qforge: error: {message}\n")


#: (argv, option as argparse names it, message) for every numeric option of every
#: command but ``host`` (another module) and ``gemm``'s precision and output-stage
#: numbers (checked by the golden model, which names them: tests/gen/cli/test_gemm.py).
BAD_NUMBERS = [
    (["demo", "--per-mode", "0"], "--per-mode", "0: allowed range is 1 .. 1000"),
    (["demo", "--per-mode", "-5"], "--per-mode", "-5: allowed range is 1 .. 1000"),
    (["demo", "--per-mode", "1001"], "--per-mode", "1001: allowed range is 1 .. 1000"),
    (["demo", "--per-mode", "two"], "--per-mode",
     "'two' is not a whole number (allowed range is 1 .. 1000)"),
    (["demo", "--programs", "-1"], "--programs", "-1: allowed range is 0 .. 100000"),
    (["demo", "--seed", "-1"], "--seed", "-1: allowed range is 0 .. 4294967295"),
    (["demo", "--seed", "4294967296"], "--seed", "4294967296: allowed range is 0 .. 4294967295"),
    (["train", "--emulate", "--epochs", "0"], "--epochs", "0: allowed range is 1 .. 10000"),
    (["train", "--emulate", "--seed", "1.5"], "--seed",
     "'1.5' is not a whole number (allowed range is 0 .. 65535)"),
    (["train", "--emulate", "--jobs", "0"], "--jobs", "0: allowed range is 1 .. 1024"),
    (["run", "prog.qasm", "--seed", "-3"], "--seed", "-3: allowed range is 0 .. 4294967295"),
    (["repro", "--seed", "x"], "--seed",
     "'x' is not a whole number (allowed range is 0 .. 4294967295)"),
    (["area", "--jobs", "65"], "--jobs", "65: allowed range is 1 .. 64"),
    (["fuzz", "--programs", "100001"], "--programs", "100001: allowed range is 1 .. 100000"),
    (["fuzz", "--instructions", "0"], "--instructions", "0: allowed range is 1 .. 100000"),
    (["fuzz", "--invalid", "-0.1"], "--invalid", "-0.1: allowed range is 0 .. 1"),
    (["fuzz", "--stall", "nan"], "--stall",
     "'nan' is not a number (allowed range is 0 .. below 1)"),
    (["fuzz", "--seed", "-1"], "--seed", "-1: allowed range is 0 .. 4294967295"),
    (["build", "--board", "icebreaker", "--preset", "tiny", "--clock", "0"], "--clock",
     "0.0: allowed range is above 0 .. 10000"),
    (["build", "--board", "icebreaker", "--preset", "tiny", "--clock", "inf"], "--clock",
     "'inf' is not a number (allowed range is above 0 .. 10000)"),
    (["build", "--board", "icebreaker", "--preset", "tiny", "--baud", "0"], "--baud",
     "0: allowed range is 1 .. 100000000"),
    (["demo", "--per-mode", "9" * 5000], "--per-mode",
     "'9999999999999999999...99999999999999999999999999999' (5002 characters) is not a "
     "whole number (allowed range is 1 .. 1000)"),
]


@pytest.mark.parametrize("argv, option, message", BAD_NUMBERS,
                         ids=[" ".join(argv)[:40] for argv, _, _ in BAD_NUMBERS])
def test_a_bad_number_is_argparse_s_usage_error(capsys, no_work, argv, option, message):
    usage_error(run_qforge(capsys, *argv), argv[0], option, message)


#: Options whose numbers the command's own model checks and names (gemm's precision and
#: output stage); every other int or float option must use a checked type.
MODEL_CHECKED = {("gemm", option) for option in (
    "--a-blocks", "--a-kept", "--b-blocks", "--b-kept", "--shift", "--seed", "--tensor",
    "--vrq-exponent")}


@pytest.mark.parametrize("command", ["generate", "presets", "lint", "demo", "bench", "train",
                                     "tune", "repro", "area", "run", "gemm", "fuzz", "build",
                                     "results"])
def test_every_number_option_is_checked_while_parsing(command):
    for option, action in options(command_parser(command)).items():
        if action.type in (int, float):
            assert (command, option) in MODEL_CHECKED, f"qforge {command} {option}: plain " \
                f"{action.type.__name__}, no range check"


#: (argv before the path, the option, the command's name, whether a file (suffix) or a
#: folder) of every output option of every command but ``asm`` and ``host``.
OUTPUTS = [
    (["generate", "--preset", "tiny", "-o"], "-o", "folder", ""),
    (["demo", "--preset", "tiny", "--output"], "--output", "folder", ""),
    (["bench", "--plot-dir"], "--plot-dir", "folder", ""),
    (["bench", "--plot"], "--plot", "file", ".png"),
    (["bench", "--sparse-plot"], "--sparse-plot", "file", ".png"),
    (["train", "--emulate", "--plot"], "--plot", "file", ".png"),
    (["train", "--emulate", "--json"], "--json", "file", ".json"),
    (["tune", "--config", "gen/train/cnn.toml", "--budget", "0.1", "--json"], "--json", "file",
     ".json"),
    (["tune", "--config", "gen/train/cnn.toml", "--budget", "0.1", "--write-policy"],
     "--write-policy", "file", ".toml"),
    (["tune", "--config", "gen/train/cnn.toml", "--budget", "0.1", "--plot"], "--plot", "file",
     ".png"),
    (["gemm", "--preset", "tiny", "--a", "a.npy", "--b", "b.npy", "-o"], "-o", "file", ".npy"),
    (["build", "--board", "icebreaker", "--preset", "tiny", "--build-dir"], "--build-dir",
     "folder", ""),
    (["results", "--reuse", "--output"], "--output", "file", ""),
]
OUTPUT_IDS = [" ".join(argv[:1] + argv[-1:]) for argv, *_ in OUTPUTS]


@pytest.mark.parametrize("argv, option, kind, suffix", OUTPUTS, ids=OUTPUT_IDS)
def test_an_output_below_a_file_fails_before_the_work(capsys, tmp_path, no_work, argv,
                                                      option, kind, suffix):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / f"out{suffix}"
    one_line_error(run_qforge(capsys, *argv, target),
                   f"{option} {target}: {tmp_path / 'file'} is a file, not a folder")


@pytest.mark.parametrize("argv, option, kind, suffix", OUTPUTS, ids=OUTPUT_IDS)
def test_an_output_under_dev_null_fails_before_the_work(capsys, no_work, argv, option, kind,
                                                        suffix):
    one_line_error(run_qforge(capsys, *argv, f"/dev/null/x{suffix}"),
                   f"{option} /dev/null/x{suffix}: /dev/null is a file, not a folder")


@pytest.mark.parametrize("argv, option, kind, suffix", OUTPUTS, ids=OUTPUT_IDS)
def test_an_empty_output_path_is_a_usage_error(capsys, no_work, argv, option, kind, suffix):
    name = "/".join(command_parser(argv[0])._option_string_actions[option].option_strings)
    message = "an empty path (give a folder, e.g. '.')" if kind == "folder" else \
        "an empty path"
    usage_error(run_qforge(capsys, *argv, ""), argv[0], name, message)


@pytest.mark.parametrize("argv, option, kind, suffix", OUTPUTS, ids=OUTPUT_IDS)
def test_an_over_long_output_name_is_one_line(capsys, tmp_path, no_work, argv, option, kind,
                                              suffix):
    target = f"{tmp_path}/{'n' * 5000}{suffix}"
    outcome = run_qforge(capsys, *argv, target)
    assert (outcome.status, outcome.out) == (2, "") and len(outcome.err.splitlines()) == 1
    shown = shown_path(target)
    assert outcome.err.startswith(f"qforge: error: {option} {shown}: ")
    assert outcome.err.endswith(": File name too long\n") and len(outcome.err) < 400


@pytest.mark.parametrize("argv, option, kind, suffix",
                         [entry for entry in OUTPUTS if entry[2] == "file"],
                         ids=[i for i, entry in zip(OUTPUT_IDS, OUTPUTS) if entry[2] == "file"])
def test_an_output_file_that_is_a_folder_fails_before_the_work(capsys, tmp_path, no_work,
                                                                argv, option, kind, suffix):
    folder = tmp_path / f"taken{suffix}"
    folder.mkdir()
    one_line_error(run_qforge(capsys, *argv, folder),
                   f"{option} {folder}: is a folder, not a file")


@pytest.mark.parametrize("argv, option, kind, suffix",
                         [entry for entry in OUTPUTS if entry[3]],
                         ids=[i for i, entry in zip(OUTPUT_IDS, OUTPUTS) if entry[3]])
def test_an_output_file_needs_its_format_s_suffix(capsys, tmp_path, no_work, argv, option,
                                                  kind, suffix):
    name = "/".join(command_parser(argv[0])._option_string_actions[option].option_strings)
    for wrong in ("out.txt", "out", "/tmp"):
        usage_error(run_qforge(capsys, *argv, wrong), argv[0], name,
                    f"{wrong}: the file name must end in {suffix}")


@pytest.mark.parametrize("argv, option, kind, suffix",
                         [entry for entry in OUTPUTS if entry[2] == "file"],
                         ids=[i for i, entry in zip(OUTPUT_IDS, OUTPUTS) if entry[2] == "file"])
def test_an_output_file_written_as_a_folder_is_a_usage_error(capsys, tmp_path, no_work, argv,
                                                             option, kind, suffix):
    name = "/".join(command_parser(argv[0])._option_string_actions[option].option_strings)
    for folder in (f"{tmp_path}/c{suffix}/", f"{tmp_path}/.", "/dev/null/.."):
        usage_error(run_qforge(capsys, *argv, folder), argv[0], name,
                    f"{folder}: names a folder, not a file")


def test_generate_under_sys_fails_before_elaborating(capsys, no_work):
    outcome = run_qforge(capsys, "generate", "--preset", "tiny", "-o", "/sys/qforge-out")
    assert outcome.status == 2 and outcome.err in (
        "qforge: error: -o /sys/qforge-out: cannot create it: Operation not permitted\n",
        "qforge: error: -o /sys/qforge-out: cannot create it: Permission denied\n",
        "qforge: error: -o /sys/qforge-out: cannot create it: Read-only file system\n")


def test_train_s_default_plot_is_checked_before_training(capsys, tmp_path, monkeypatch,
                                                         no_work):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build").write_text("")          # build/train/NAME.png cannot be made
    outcome = run_qforge(capsys, "train", "--emulate")
    assert outcome.status == 2
    assert outcome.err.startswith("qforge: error: --plot build/train/")
    assert outcome.err.endswith(".png: build is a file, not a folder\n")


def test_demo_s_default_folder_is_checked_before_the_build(capsys, tmp_path, monkeypatch,
                                                           no_work):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path))
    (tmp_path / "demo").write_text("")
    one_line_error(run_qforge(capsys, "demo", "--preset", "tiny"),
                   f"--output {tmp_path / 'demo'}: {tmp_path / 'demo'} is a file, not a folder")


@pytest.mark.parametrize("argv, taken", [
    (["generate", "--preset", "tiny", "-o"], "qforge_top.v"),
    (["generate", "--preset", "tiny", "--programmable", "-o"], "qforge_core.v"),
    (["generate", "--preset", "tiny", "-o"], "manifest.json"),
    (["demo", "--preset", "tiny", "--output"], "report.md")], ids=lambda value: str(value))
def test_the_files_an_output_folder_will_hold_are_checked_before_the_work(
        capsys, tmp_path, no_work, argv, taken):
    (tmp_path / taken).mkdir()
    one_line_error(run_qforge(capsys, *argv, tmp_path),
                   f"{argv[-1]} {tmp_path / taken}: is a folder, not a file")


def test_bench_s_plot_dir_files_are_checked_before_the_benchmark(capsys, tmp_path, no_work):
    (tmp_path / "precision_scaling.png").mkdir()
    one_line_error(run_qforge(capsys, "bench", "--plot-dir", tmp_path),
                   f"--plot-dir {tmp_path / 'precision_scaling.png'}: is a folder, not a file")


def test_a_failed_command_leaves_no_output_folder_behind(capsys, tmp_path, no_work):
    target = tmp_path / "new" / "out"
    outcome = run_qforge(capsys, "generate", "--spec", tmp_path / "missing.toml", "-o", target)
    assert outcome.status == 2 and "missing.toml" in outcome.err
    assert not (tmp_path / "new").exists()


def test_an_output_is_prepared_before_the_handler_runs(capsys, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("qforge.gen.cli.generate.handle",
                        lambda arguments: seen.append((tmp_path / "a" / "b").is_dir()) or 0)
    assert run_qforge(capsys, "generate", "--preset", "tiny", "-o", tmp_path / "a" / "b") \
        == (0, "", "")
    assert seen == [True]


@pytest.mark.parametrize("argv", [
    ["lint", "--preset", "tiny"], ["demo", "--preset", "tiny"], ["repro"], ["fuzz"],
    ["area", "--preset", "tiny"], ["bench", "--rtl"], ["run", "prog.qasm", "--backend", "rtl"],
    ["gemm", "--preset", "tiny", "--a", "a.npy", "--b", "b.npy", "-o", "c.npy", "--backend",
     "rtl"], ["train", "--backend", "rtl"], ["build", "--board", "icebreaker", "--preset", "tiny"],
    ["results"]], ids=lambda argv: argv[0])
def test_the_build_folder_is_checked_before_the_work(capsys, tmp_path, monkeypatch, no_work,
                                                     argv):
    monkeypatch.setenv("QFORGE_BUILD", str(tmp_path / "file" / "build"))
    (tmp_path / "file").write_text("")
    one_line_error(run_qforge(capsys, *argv), f"QFORGE_BUILD {tmp_path / 'file' / 'build'}: "
                                              f"{tmp_path / 'file'} is a file, not a folder")


@pytest.mark.parametrize("argv, option", [
    (["lint", "--spec"], "--spec"), (["generate", "-o", "out", "--spec"], "--spec"),
    (["area", "--spec"], "--spec"), (["train", "--emulate", "--config"], "--config"),
    (["lint", "--verilog"], "--verilog"), (["run"], None), (["gemm", "--preset", "tiny",
                                                            "--b", "b.npy", "-o", "c.npy",
                                                            "--a"], "--a")],
    ids=["lint", "generate", "area", "train", "lint-verilog", "run", "gemm"])
def test_a_device_as_input_is_refused_not_read_forever(capsys, no_work, argv, option):
    reason = "not a regular file (a device, FIFO or socket)" if option in ("--spec",
                                                                          "--config") \
        else "not a regular file"
    one_line_error(run_qforge(capsys, *argv, "/dev/zero"),
                   f"{option + ' ' if option else ''}/dev/zero: {reason}")


def test_run_compare_on_golden_is_an_error(capsys, no_work):
    one_line_error(run_qforge(capsys, "run", "prog.qasm", "--compare"),
                   "--compare compares a backend with the golden machine: use it with "
                   "--backend rtl (--backend golden would compare the golden machine with "
                   "itself)")


def test_train_plot_without_png_is_an_error_not_a_renamed_file(capsys, tmp_path, no_work):
    usage_error(run_qforge(capsys, "train", "--emulate", "--plot", tmp_path), "train",
                "--plot", f"{tmp_path}: the file name must end in .png")


def test_version(capsys):
    from importlib.metadata import version

    assert run_qforge(capsys, "--version") == (0, f"qforge {version('qforge')}\n", "")


def test_a_closed_pipe_ends_quietly(capsys, monkeypatch):
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["presets"]) == 1
    assert capsys.readouterr().err == ""


def test_whole_number_keeps_argparse_s_contract():
    with pytest.raises(argparse.ArgumentTypeError, match=r"^-1: allowed range is 0 \.\. 9$"):
        common.whole_number(0, 9)("-1")
    assert common.whole_number(0, 9)(" 7 ") == 7
