"""Helpers every ``qforge`` command module shares: the ``--preset``/``--spec`` options
and the configuration they name, the error a bad option value raises, the checked
number and path options, output folders and progress messages on stderr.

Every option a user can get wrong is checked before any work starts:

* numbers: the argparse ``type=`` functions :func:`whole_number` (counts, seeds, jobs)
  and :func:`real_number` (fractions, frequencies) reject a bad value while the command
  line is parsed, so the error is argparse's own (``qforge CMD: error: argument
  --per-mode: 0: allowed range is 1 .. 1000``, exit status 2);
* output paths: :func:`add_output_argument` declares an option as a file or folder the
  command writes (with the file's suffix where the format depends on it); its text is
  checked while parsing (not empty, the right suffix) and :func:`prepare_outputs`,
  which :func:`qforge.gen.cli.main` calls before the command's handler, creates the
  folders and proves each one writable, so a bad path fails in milliseconds, not after
  minutes of elaboration or training. Handlers whose default output depends on the
  configuration call :func:`prepare_output` for it themselves, before the work;
  commands that write under the build folder declare it (:func:`uses_build_folder`);
* input files: a device, FIFO or socket is refused (:func:`refuse_special_file`,
  :func:`require_file`): reading ``/dev/zero`` never ends.

A path over 200 characters is shown in an error as its two ends and its length, so the
message stays one readable line.
"""

from __future__ import annotations

import argparse
import math
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from qforge.sim.model.errors import QforgeError
from qforge.sim.model.errors import shown_path
from qforge.sim.model.spec import (DEFAULT_PE, OUTPUT_STAGE_SCHEMA, PE_DESIGNS, SCHEMA,
                                   VRQ_SCHEMA, ZERO_SKIPPING_SCHEMA, Config, load_preset,
                                   load_spec, preset_names)

__all__ = ["SPEC_EPILOG", "FAMILY_NAMES", "AppendDesign", "OptionError",
           "add_config_arguments", "load_config", "config_from_arguments", "make_folder",
           "require_file", "refuse_special_file", "log_to_stderr", "whole_number",
           "real_number", "SEED_MAXIMUM", "COUNT_MAXIMUM", "Output", "add_output_argument",
           "prepare_output", "prepare_outputs", "remove_empty_folders", "uses_build_folder",
           "announce_generation"]


class OptionError(QforgeError, ValueError):
    """A command-line option's value is not allowed: the message names the option, the
    value given and what is allowed (``qforge`` prints it as one line and exits 2)."""

def _spec_epilog() -> str:
    """The spec keys for ``--help``: every field with its range, the optional
    ``arithmetic.pe`` with its designs after the other ``[arithmetic]`` keys, then the
    optional sections."""
    def line(field):
        return f"  {field.path:34s} {field.minimum} .. {field.maximum}: {field.help}"

    keys = [line(field) for field in SCHEMA]
    after_arithmetic = 1 + max(index for index, field in enumerate(SCHEMA)
                               if field.section == "arithmetic")
    keys[after_arithmetic:after_arithmetic] = (
        [f"  {'arithmetic.pe':34s} optional, the PE datapath (default \"{DEFAULT_PE}\"):"]
        + [f"  {'':34s}   \"{name}\": {meaning}" for name, meaning in PE_DESIGNS.items()])
    optional = [line(field) for field in VRQ_SCHEMA + ZERO_SKIPPING_SCHEMA + OUTPUT_STAGE_SCHEMA]
    return ("spec keys (TOML sections):\n" + "\n".join(keys)
            + "\noptional sections (present = enabled):\n" + "\n".join(optional))


SPEC_EPILOG = _spec_epilog()


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
    if kind == "spec":
        refuse_special_file(Path(value), "--spec")
        return load_spec(value)
    return load_preset(value)


def refuse_special_file(path: Path, option: str) -> None:
    """Raise :class:`OptionError` if ``path`` is a device, a FIFO or a socket: reading
    ``/dev/zero`` or a pipe nobody writes to never ends. A missing file or a folder is
    left to the loader, whose message names it.

    >>> refuse_special_file(Path("/dev/zero"), "--spec")
    Traceback (most recent call last):
    ...
    qforge.gen.cli.common.OptionError: --spec /dev/zero: not a regular file (a device, FIFO or socket)
    """
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise OptionError(f"{option} {shown_path(path)}: not a regular file (a device, FIFO or "
                          "socket)")


def config_from_arguments(arguments):
    """The configuration named by ``--spec FILE`` or ``--preset NAME``."""
    if getattr(arguments, "spec", None):
        return load_config("spec", arguments.spec)
    return load_config("preset", arguments.preset)


def make_folder(folder: Path, option: str, given: Path) -> list[Path]:
    """Create ``folder`` for an output option, or raise :class:`OptionError` naming the
    option (``given``: the value as the user wrote it). Returns the folders it created,
    outermost first (:func:`remove_empty_folders` takes them back).

    >>> make_folder(Path("/dev/null/plots"), "--plot-dir", Path("/dev/null/plots"))
    Traceback (most recent call last):
    ...
    qforge.gen.cli.common.OptionError: --plot-dir /dev/null/plots: /dev/null is a file, not a folder
    """
    created = []
    try:
        existing = next((parent for parent in (folder, *folder.parents) if parent.exists()),
                        None)
        if existing is None or existing.is_dir():
            created = [parent for parent in (folder, *folder.parents)
                       if existing is None or parent not in (existing, *existing.parents)]
            folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as error:      # ValueError: a NUL byte in the name
        which = "it" if str(folder) == str(given) else f"folder {shown_path(folder)}"
        raise OptionError(f"{option} {shown_path(given)}: cannot create {which}: "
                          f"{_reason(error)}") from None
    if existing is not None and not existing.is_dir():
        raise OptionError(f"{option} {shown_path(given)}: {shown_path(existing)} is a file, not a "
                          "folder")
    return created[::-1]


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove those of ``folders`` (outermost first, as :func:`make_folder` returns them)
    that are still empty: a command that fails leaves no folders behind it made for
    nothing."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:                 # not empty (the command wrote there), or gone
            pass


def _reason(error: Exception) -> str:
    """The operating system's words for ``error`` (``File name too long``), without the
    file name it repeats."""
    return getattr(error, "strerror", None) or str(error)


def require_file(path: Path, option: str | None = None) -> None:
    """Raise :class:`OptionError` unless ``path`` is an existing file (the message starts
    with ``option`` when given, else with the path).

    >>> require_file(Path("/nonexistent.npy"), "--a")
    Traceback (most recent call last):
    ...
    qforge.gen.cli.common.OptionError: --a /nonexistent.npy: no such file
    >>> require_file(Path("x" * 300 + ".npy"), "--a")
    Traceback (most recent call last):
    ...
    qforge.gen.cli.common.OptionError: --a xxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxx.npy (304 characters): File name too long
    """
    where = f"{option} {shown_path(path)}" if option else shown_path(path)
    try:
        exists, folder, regular = path.exists(), path.is_dir(), path.is_file()
    except (OSError, ValueError) as error:
        raise OptionError(f"{where}: {_reason(error)}") from None
    if not exists:
        raise OptionError(f"{where}: no such file")
    if not regular:
        raise OptionError(f"{where}: is a folder, not a file" if folder
                          else f"{where}: not a regular file")


_WHOLE = re.compile(r"[+-]?[0-9]+")

#: The largest seed the seed options accept: seeds feed numpy's generators and the
#: benches' stimulus, and 32 bits reproduce any run anyone will ask for.
SEED_MAXIMUM = 2**32 - 1

#: The largest count (GEMMs, programs, words, jobs) an option accepts: each one costs
#: simulation time, so a count beyond this is a typo, not a plan (a day of CPU).
COUNT_MAXIMUM = 100_000


def whole_number(minimum: int, maximum: int):
    """An argparse ``type=`` function for a whole-number option in ``minimum ..
    maximum``; a bad value becomes argparse's usage error naming the option (exit 2).

    >>> seed = whole_number(0, SEED_MAXIMUM)
    >>> seed("12")
    12
    >>> seed("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: -1: allowed range is 0 .. 4294967295
    >>> seed("1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '1.5' is not a whole number (allowed range is 0 .. 4294967295)
    """
    allowed = f"allowed range is {minimum} .. {maximum}"

    def parse(text: str) -> int:
        # ASCII digits only: Python's int() also takes "1_000" and other scripts' digits
        digits = text.strip()
        value = int(digits) if len(digits) <= 40 and _WHOLE.fullmatch(digits) else None
        if value is None:
            raise argparse.ArgumentTypeError(
                f"{shown_path(repr(text))} is not a whole number ({allowed})")
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value}: {allowed}")
        return value

    parse.__name__ = "whole number"
    return parse


def real_number(minimum: float, maximum: float, *, below_maximum: bool = False,
                above_minimum: bool = False):
    """An argparse ``type=`` function for a finite real-number option in ``minimum ..
    maximum`` (``above_minimum``/``below_maximum``: the bound itself excluded).

    >>> stall = real_number(0, 1, below_maximum=True)
    >>> stall("0.25")
    0.25
    >>> stall("1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 1.0: allowed range is 0 .. below 1
    >>> stall("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'nan' is not a number (allowed range is 0 .. below 1)
    """
    allowed = (f"allowed range is {'above ' if above_minimum else ''}{minimum:g} .. "
               f"{'below ' if below_maximum else ''}{maximum:g}")

    def parse(text: str) -> float:
        try:                    # ASCII only, no "1_0" (float() takes both)
            value = float(text) if len(text) <= 40 and text.isascii() and "_" not in text \
                else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{shown_path(repr(text))} is not a number ({allowed})")
        if (value < minimum or value > maximum or (above_minimum and value == minimum)
                or (below_maximum and value == maximum)):
            raise argparse.ArgumentTypeError(f"{value!r}: {allowed}")
        return value

    parse.__name__ = "number"
    return parse


class Output(NamedTuple):
    """An option naming something the command writes: a ``folder``, or a file (which
    must end in one of ``suffixes`` when given, since the suffix picks the format)."""

    dest: str
    option: str
    folder: bool
    suffixes: tuple[str, ...]


def _output_text(folder: bool, suffixes: tuple[str, ...]):
    """The argparse ``type=`` function of an output option: the text's own checks
    (not empty, no NUL byte, the suffix), no file system access."""

    def parse(text: str) -> Path:
        if text == "":
            raise argparse.ArgumentTypeError(
                "an empty path (give a folder, e.g. '.')" if folder else "an empty path")
        if "\0" in text:
            raise argparse.ArgumentTypeError(f"{shown_path(repr(text))}: a NUL byte in the path")
        path = Path(text)
        if not folder and (text.endswith("/") or text.rsplit("/", 1)[-1] in (".", "..")):
            # Path() would drop the trailing "/" or "/." and write a file of that name
            raise argparse.ArgumentTypeError(f"{shown_path(text)}: names a folder, not a file")
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{shown_path(text)}: the file name must end in {' or '.join(suffixes)}")
        return path

    parse.__name__ = "path"
    return parse


def add_output_argument(parser: argparse.ArgumentParser, *flags: str, folder: bool = False,
                        suffixes: tuple[str, ...] = (), **keywords) -> argparse.Action:
    """Add an output option (``parser.add_argument(*flags, **keywords)``) and declare it,
    so :func:`prepare_outputs` checks it before the command runs: a ``folder`` is
    created, a file's folder is created and the file must not be a folder; both must be
    writable. ``suffixes`` (lower case, with the dot): the file's allowed endings. Errors
    name the option by its first flag (``-o``)."""
    action = parser.add_argument(*flags, type=_output_text(folder, suffixes), **keywords)
    declared = list(parser.get_default("outputs") or [])
    declared.append(Output(action.dest, flags[0], folder, suffixes))
    parser.set_defaults(outputs=declared)
    return action


def prepare_output(path: Path, option: str, *, folder: bool = False) -> list[Path]:
    """Make ``path`` ready to be written, or raise :class:`OptionError` naming ``option``:
    a ``folder`` is created; for a file its folder is created, and the file must not be a
    folder. Either way one file is created and removed in the folder, since only writing
    tells (root may create nothing under /sys, whatever the permission bits say).
    Returns the folders it created (:func:`make_folder`)."""
    shown = shown_path(path)
    where = path if folder else path.parent
    created = make_folder(where, option, path)
    problem = None
    try:
        if not folder and path.is_dir():
            problem = "is a folder, not a file"
        elif not folder and path.exists():
            with open(path, "ab"):                  # writable, and left as it was
                pass
        else:
            with tempfile.TemporaryFile(dir=where):
                pass
    except (OSError, ValueError) as error:          # ValueError: a NUL byte in the name
        problem = f"cannot write there: {_reason(error)}"
    if problem is not None:
        remove_empty_folders(created)
        raise OptionError(f"{option} {shown}: {problem}")
    return created


def uses_build_folder(parser: argparse.ArgumentParser, when=lambda arguments: True) -> None:
    """Declare that the command writes under the build folder (``build/``, or
    ``$QFORGE_BUILD``: :func:`qforge.sim.bench.rtl.default_build_root`) when ``when(arguments)``
    is true, so :func:`prepare_outputs` checks that folder before the work too."""
    parser.set_defaults(build_folder=when)


def prepare_outputs(arguments) -> list[Path]:
    """:func:`prepare_output` for every output option the command declared with
    :func:`add_output_argument` and was given (or has a default for), and for the build
    folder if it declared :func:`uses_build_folder`; returns the folders created, for
    :func:`remove_empty_folders` should the command fail."""
    created: list[Path] = []
    try:
        when = getattr(arguments, "build_folder", None)
        if when is not None and when(arguments):
            import os

            from qforge.sim.bench.rtl import default_build_root
            created += prepare_output(default_build_root(), "QFORGE_BUILD" if os.environ.get(
                "QFORGE_BUILD") else "build folder", folder=True)
        for output in getattr(arguments, "outputs", None) or ():
            path = getattr(arguments, output.dest, None)
            if path is not None:
                created += prepare_output(Path(path), output.option, folder=output.folder)
    except OptionError:
        remove_empty_folders(created)
        raise
    return created


def log_to_stderr(message: str) -> None:
    """Progress messages of the long-running commands: on stderr, flushed at once, so
    stdout holds only the result (a table or JSON)."""
    print(message, file=sys.stderr, flush=True)


#: A generation estimated to take longer than this (CPU seconds) is announced on
#: stderr before it starts, with its estimate: Amaranth's elaboration prints nothing.
ANNOUNCE_GENERATION_SECONDS = 20


def announce_generation(config: Config) -> None:
    """Tell the user, on stderr, that generating ``config`` will take a while (only when
    :attr:`~qforge.sim.model.spec.Config.generation_seconds` is above
    :data:`ANNOUNCE_GENERATION_SECONDS`), so a long elaboration is not taken for a hang.
    """
    seconds = config.generation_seconds
    if seconds > ANNOUNCE_GENERATION_SECONDS:
        print(f"qforge: generating {config.name!r} ({config.rows}x{config.cols} array, design "
              f"size {config.design_size:,}): about {seconds / 60:.0f} minute(s) of CPU "
              f"({seconds:.0f} s), nothing is printed meanwhile", file=sys.stderr, flush=True)
