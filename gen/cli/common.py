"""Helpers every ``qforge`` command module shares: the ``--preset``/``--spec`` options
and the configuration they name, the error a bad option value raises, output folders
and progress messages on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qforge.sim.model.errors import QforgeError
from qforge.sim.model.spec import (SCHEMA, VRQ_SCHEMA, ZERO_SKIPPING_SCHEMA, load_preset,
                                   load_spec, preset_names)

__all__ = ["SPEC_EPILOG", "FAMILY_NAMES", "AppendDesign", "OptionError",
           "add_config_arguments", "load_config", "config_from_arguments", "make_folder",
           "require_file", "log_to_stderr"]


class OptionError(QforgeError, ValueError):
    """A command-line option's value is not allowed: the message names the option, the
    value given and what is allowed (``qforge`` prints it as one line and exits 2)."""

SPEC_EPILOG = "spec keys (TOML sections):\n" + "\n".join(
    f"  {field.path:34s} {field.minimum} .. {field.maximum}: {field.help}"
    for field in SCHEMA) + "\noptional sections (present = enabled):\n" + "\n".join(
    f"  {field.path:34s} {field.minimum} .. {field.maximum}: {field.help}"
    for field in VRQ_SCHEMA + ZERO_SKIPPING_SCHEMA)


def add_config_arguments(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    """Add the mutually exclusive ``--preset NAME`` / ``--spec FILE.toml`` options
    (required when ``default`` is None)."""
    group = parser.add_mutually_exclusive_group(required=default is None)
    group.add_argument("--preset", metavar="NAME", default=default,
                       help=f"a built-in configuration: {', '.join(preset_names())}"
                       + (f" (default: {default})" if default else ""))
    group.add_argument("--spec", metavar="FILE.toml", type=Path,
                       help="a TOML spec file (see `qforge presets --show default` for one)")


#: FPGA families `qforge area` knows (kept here so `--help` needs no Yosys import).
FAMILY_NAMES = ("ecp5", "ice40")


class AppendDesign(argparse.Action):
    """Collect ``--preset NAME`` and ``--spec FILE`` in the order given, as
    ``(kind, value)`` pairs in one list."""

    def __call__(self, parser, namespace, value, option_string=None):
        designs = list(getattr(namespace, self.dest, None) or [])
        kind = "spec" if option_string == "--spec" else "preset"
        designs.append((kind, Path(value) if kind == "spec" else value))
        setattr(namespace, self.dest, designs)


def load_config(kind: str, value):
    """A configuration from ``--spec FILE`` (``kind`` "spec") or ``--preset NAME``."""
    return load_spec(value) if kind == "spec" else load_preset(value)


def config_from_arguments(arguments):
    """The configuration named by ``--spec FILE`` or ``--preset NAME``."""
    if getattr(arguments, "spec", None):
        return load_config("spec", arguments.spec)
    return load_config("preset", arguments.preset)


def make_folder(folder: Path, option: str, given: Path) -> None:
    """Create ``folder`` for an output option, or raise :class:`OptionError` naming the
    option (``given``: the value as the user wrote it).

    >>> make_folder(Path("/dev/null/plots"), "--plot-dir", Path("/dev/null/plots"))
    Traceback (most recent call last):
    ...
    qforge.gen.cli.common.OptionError: --plot-dir /dev/null/plots: /dev/null is a file, not a folder
    """
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OptionError(f"{option} {given}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OptionError(f"{option} {given}: cannot create folder {folder}: "
                          f"{error.strerror or error}") from None


def require_file(path: Path, option: str | None = None) -> None:
    """Raise :class:`OptionError` unless ``path`` is an existing file (the message starts
    with ``option`` when given, else with the path).

    >>> require_file(Path("/nonexistent.npy"), "--a")
    Traceback (most recent call last):
    ...
    qforge.gen.cli.common.OptionError: --a /nonexistent.npy: no such file
    """
    where = f"{option} {path}" if option else f"{path}"
    if not path.exists():
        raise OptionError(f"{where}: no such file")
    if not path.is_file():
        raise OptionError(f"{where}: is a folder, not a file" if path.is_dir()
                          else f"{where}: not a regular file")


def log_to_stderr(message: str) -> None:
    """Progress messages of the long-running commands: on stderr, flushed at once, so
    stdout holds only the result (a table or JSON)."""
    print(message, file=sys.stderr, flush=True)
