"""``qforge demo``: generate, simulate random GEMMs in every precision mode on the
RTL, compare with the golden model and report."""

from __future__ import annotations

from qforge.gen.cli.common import (COUNT_MAXIMUM, SEED_MAXIMUM, add_config_arguments,
                                   add_output_argument, config_from_arguments, log_to_stderr,
                                   prepare_output, uses_build_folder, whole_number)


def register(commands) -> None:
    """Add ``qforge demo`` to the subcommands ``commands``."""
    demo = commands.add_parser(
        "demo", help="generate, simulate random GEMMs in every mode, report",
        description="Generate the configuration's Verilog, compile it with Verilator "
                    "(once; cached under build/rtl), run random GEMMs in every standard "
                    "precision mode through the cocotb bench, compare every result with "
                    "the golden model and print cycles, utilization and MACs/cycle per "
                    "mode, then measure one 128x128x128 GEMM per mode on the RTL; last, "
                    "run random instruction streams on the programmable top (qforge_core, "
                    "docs/ISA.md) against the golden machine. Exit status 1 if any result, "
                    "error flag or cycle count differs.")
    add_config_arguments(demo, default="default")
    demo.add_argument("--per-mode", type=whole_number(1, 1000), default=2, metavar="N",
                      help="random GEMMs per precision mode, 1 .. 1000 (default: 2)")
    demo.add_argument("--seed", type=whole_number(0, SEED_MAXIMUM), default=1, metavar="N",
                      help=f"random seed, 0 .. {SEED_MAXIMUM} (default: 1)")
    demo.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator",
                      help="simulator (default: verilator; icarus needs apt's iverilog)")
    demo.add_argument("--no-large", action="store_true",
                      help="skip the 128x128x128 GEMM per mode (about a minute on the "
                           "default preset)")
    add_output_argument(demo, "--output", folder=True, metavar="DIR",
                        help="where to write report.json and report.md (default: "
                             "build/demo)")
    demo.add_argument("--programs", type=whole_number(0, COUNT_MAXIMUM), default=10,
                      metavar="N",
                      help="random instruction streams on the programmable top, 0 .. "
                           f"{COUNT_MAXIMUM} (default 10; 0 skips it and its Verilator "
                           "build)")
    uses_build_folder(demo)
    demo.set_defaults(handler=handle)


def handle(arguments) -> int:
    from qforge.sim.apps.demo import format_report, run_demo
    from qforge.sim.bench.rtl import default_build_root

    config = config_from_arguments(arguments)
    output = arguments.output
    folder = output or default_build_root() / "demo"
    prepare_output(folder, "--output", folder=True)    # the default is checked here
    for name in ("report.json", "report.md"):
        prepare_output(folder / name, "--output")
    report = run_demo(config, per_mode=arguments.per_mode, seed=arguments.seed,
                      simulator=arguments.simulator, large=not arguments.no_large,
                      programs=arguments.programs, output=output,
                      log=log_to_stderr)
    print(format_report(report))
    print(f"\nreport written to {folder / 'report.json'} and {folder / 'report.md'}")
    programs = report.get("programs")
    programs_ok = programs is None or (
        programs["error_flags_match"] == programs["memory_matches"] == programs["programs"]
        and programs["cycles"] == programs["model_cycles"])
    return 0 if report["mismatched_beats"] == 0 and \
        report["stalled_run_mismatched_beats"] == 0 and programs_ok else 1
