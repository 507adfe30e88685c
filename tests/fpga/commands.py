"""Run ``qforge`` subcommands in-process for the command-line tests."""

from qforge.gen.cli import main


def run_qforge(capsys, *argv):
    """``qforge ARGV...`` through the CLI's own error handling: (exit status, captured
    output). A usage error must be one line, never a traceback."""
    try:
        status = main(list(argv))
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured
