"""Run ``qforge`` in-process for the command-line tests, and read its parser.

:func:`run_qforge` is the one way tests run a command: through :func:`qforge.gen.cli.main`
and its error handling, argparse's own exits included. :func:`command_parser` and
:func:`options` give the real argparse objects, so help tests assert on the options a
command has rather than on the text of its help.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

from qforge.gen.cli import build_parser, main

__all__ = ["Outcome", "run_qforge", "command_parser", "options", "exclusive_groups"]


class Outcome(NamedTuple):
    """What one ``qforge`` run did: its exit status and everything it printed."""

    status: int
    out: str
    err: str


def run_qforge(capsys, *argv) -> Outcome:
    """``qforge ARGV...`` (each argument ``str()``-ed, so paths may be passed as they are)
    in this process: the exit status (argparse's exits included: 0 for ``--help``, 2 for
    a usage error) and the captured stdout and stderr. A user error must be one line,
    never a traceback."""
    try:
        status = main([str(argument) for argument in argv])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Outcome(status, captured.out, captured.err)


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``qforge NAME`` as :func:`qforge.gen.cli.build_parser` builds it."""
    parser = build_parser()
    commands = next(action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction))
    return commands.choices[name]


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every optional argument of ``parser`` but ``--help``, by its longest option
    string (``--output`` for ``-o/--output``)."""
    return {max(action.option_strings, key=len): action for action in parser._actions
            if action.option_strings and not isinstance(action, argparse._HelpAction)}


def exclusive_groups(parser: argparse.ArgumentParser) -> list[tuple[set[str], bool]]:
    """``(options, required)`` of each mutually exclusive group of ``parser``."""
    return [({max(action.option_strings, key=len) for action in group._group_actions},
             group.required) for group in parser._mutually_exclusive_groups]
