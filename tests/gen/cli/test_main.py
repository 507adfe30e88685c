"""qforge's entry point: the command list, help, and which errors become one line."""

import argparse

import pytest

from qforge.gen import cli
from qforge.gen.cli import presets
from qforge.sim.model.spec import ConfigError
from tests.cli import command_parser, options, run_qforge

#: Every subcommand, in the order ``qforge --help`` lists them.
COMMANDS = ["generate", "presets", "lint", "demo", "bench", "train", "tune", "dse", "repro", "area", "asm",
            "run", "gemm", "fuzz", "build", "results", "host"]


def test_help_lists_every_command(capsys):
    status, out, _ = run_qforge(capsys, "--help")
    assert status == 0
    parser = cli.build_parser()
    commands = next(action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction))
    assert list(commands.choices) == COMMANDS
    assert commands.required and commands.metavar == "COMMAND"
    for command in ("generate", "presets", "lint", "demo", "bench", "train", "dse", "repro", "area",
                    "asm", "run", "fuzz", "gemm"):
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(capsys, command):
    status, out, _ = run_qforge(capsys, command, "--help")
    assert status == 0 and out.startswith(f"usage: qforge {command} ")
    parser = command_parser(command)
    assert parser.description
    if command != "host":     # host's options live on its own subcommands
        assert options(parser)
    for option, action in options(parser).items():
        assert action.help, f"qforge {command} {option} has no help"


def test_a_user_error_is_one_line_with_status_2(capsys):
    status, out, err = run_qforge(capsys, "presets", "--show", "nope")
    assert status == 2 and out == ""
    assert err == ("qforge: error: preset = 'nope': unknown preset; allowed: default, fused, "
                   "fxp8, large, paired, shared, sparse, tiny, ulx3s\n")


def test_only_qforge_errors_become_one_line(capsys, monkeypatch):
    def config_error(arguments):
        raise ConfigError("spec.toml: rows = 0: allowed range is 1 .. 64")

    monkeypatch.setattr(presets, "handle", config_error)
    assert run_qforge(capsys, "presets") == (
        2, "", "qforge: error: spec.toml: rows = 0: allowed range is 1 .. 64\n")

    def bug(arguments):
        raise ValueError("an internal bug")

    monkeypatch.setattr(presets, "handle", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["presets"])


def test_a_usage_error_is_argparse_s(capsys):
    status, _, err = run_qforge(capsys, "generate", "--preset", "tiny")
    assert status == 2 and "the following arguments are required: -o/--output" in err


def test_a_reader_that_stops_early_gets_no_traceback():
    """``qforge presets | head -1``: the pipe is closed before qforge writes; the command
    ends quietly with status 1, as the Python docs' SIGPIPE recipe does."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from qforge.gen.cli import main; "
                               "sys.exit(main(['presets']))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with process.stderr:
        process.stdout.close()           # before the interpreter has even started qforge
        err = process.stderr.read()
    assert (process.wait(timeout=60), err) == (1, b"")
