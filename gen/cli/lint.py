"""``qforge lint``: ``verilator --lint-only -Wall`` with qforge's waivers, on a
configuration's Verilog or a given file."""

from __future__ import annotations

from pathlib import Path

from qforge.gen.cli.common import OptionError, add_config_arguments, config_from_arguments


def register(commands) -> None:
    """Add ``qforge lint`` to the subcommands ``commands``."""
    lint = commands.add_parser(
        "lint", help="lint generated Verilog with verilator -Wall",
        description="Run `verilator --lint-only -Wall` with qforge's documented waivers "
                    "(gen/lint.vlt) on a configuration's Verilog (generated into "
                    "build/lint/NAME) or on a given file. Exit status 1 on any warning.")
    add_config_arguments(lint, default="default")
    lint.add_argument("--verilog", type=Path, metavar="FILE",
                      help="lint this Verilog file instead of generating one")
    lint.add_argument("--programmable", action="store_true",
                      help="lint the programmable top (qforge_core: decoder, accelerator, "
                           "addend stage) instead of qforge_top")
    lint.set_defaults(handler=handle)


def report_lint(verilog_path) -> int:
    """Lint ``verilog_path`` and print the outcome; 0 if clean, 1 on any warning."""
    from qforge.gen.generate import lint, lint_waivers

    messages = lint(verilog_path)
    if messages:
        print(f"verilator --lint-only -Wall: {len(messages)} warning(s) not waived:")
        for message in messages:
            print("  " + message)
        return 1
    print(f"verilator --lint-only -Wall: clean (waivers with reasons: {lint_waivers()})")
    return 0


def handle(arguments) -> int:
    from qforge.gen.generate import generate

    if arguments.verilog:
        if not arguments.verilog.is_file():
            raise OptionError(f"--verilog {arguments.verilog}: no such file")
        return report_lint(arguments.verilog)
    config = config_from_arguments(arguments)
    folder = config.name + ("-core" if arguments.programmable else "")
    design = generate(config, Path("build") / "lint" / folder,
                      programmable=arguments.programmable)
    return report_lint(design.verilog)
