"""Helpers every ``qforge`` command module shares: the ``--preset``/``--spec`` options
and the configuration they name."""

from __future__ import annotations

import argparse
from pathlib import Path

from qforge.sim.model.spec import (SCHEMA, VRQ_SCHEMA, ZERO_SKIPPING_SCHEMA, load_preset,
                                   load_spec, preset_names)

__all__ = ["SPEC_EPILOG", "FAMILY_NAMES", "AppendDesign", "add_config_arguments",
           "load_config", "config_from_arguments"]

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
