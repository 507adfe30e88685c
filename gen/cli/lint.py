"""``qforge lint``: ``verilator --lint-only -Wall`` on a configuration's Verilog (with
qforge's waivers) or on a given file (with the waivers only if qforge wrote it,
:func:`qforge.gen.generate.is_generated`: a user's own Verilog gets every warning)."""

from __future__ import annotations

from pathlib import Path

from qforge.gen.cli.common import (add_config_arguments, announce_generation,
                                   config_from_arguments, require_file, uses_build_folder)


def register(commands) -> None:
    """Add ``qforge lint`` to the subcommands ``commands``."""
    lint = commands.add_parser(
        "lint", help="lint generated Verilog with verilator -Wall",
        description="Run `verilator --lint-only -Wall` with qforge's documented waivers "
                    "(gen/lint.vlt) on a configuration's Verilog (generated into "
                    "build/lint/NAME, or $QFORGE_BUILD/lint/NAME), or on a given file: "
                    "with the waivers only if qforge generated it (its manifest.json "
                    "beside it, unchanged), else with every warning. Exit status 1 on "
                    "any warning.")
    add_config_arguments(lint, default="default")
    lint.add_argument("--verilog", type=Path, metavar="FILE",
                      help="lint this Verilog file instead of generating one (qforge's "
                           "waivers apply only to a file qforge wrote)")
    lint.add_argument("--programmable", action="store_true",
                      help="lint the programmable top (qforge_core: decoder, accelerator, "
                           "addend stage) instead of qforge_top")
    uses_build_folder(lint, lambda arguments: arguments.verilog is None)
    lint.set_defaults(handler=handle)


def report_lint(verilog_path, *, waivers: bool = True) -> int:
    """Lint ``verilog_path`` (with qforge's waivers when ``waivers``) and print the
    outcome; 0 if clean, 1 on any warning."""
    from qforge.gen.generate import lint, lint_waivers

    messages = lint(verilog_path, waivers=waivers)
    if messages:
        print(f"verilator --lint-only -Wall: {len(messages)} warning(s)"
              f"{' not waived' if waivers else ''}:")
        for message in messages:
            print("  " + message)
        return 1
    print("verilator --lint-only -Wall: clean" + (
        f" (waivers with reasons: {lint_waivers()})" if waivers else " (no waivers)"))
    return 0


def handle(arguments) -> int:
    from qforge.gen.generate import generate

    from qforge.gen.generate import is_generated
    from qforge.sim.bench.rtl import default_build_root

    if arguments.verilog:
        require_file(arguments.verilog, "--verilog")
        return report_lint(arguments.verilog, waivers=is_generated(arguments.verilog))
    config = config_from_arguments(arguments)
    folder = config.name + ("-core" if arguments.programmable else "")
    announce_generation(config)
    design = generate(config, default_build_root() / "lint" / folder,
                      programmable=arguments.programmable)
    return report_lint(design.verilog)
