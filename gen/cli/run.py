"""``qforge run``: assemble a program and run it with the runtime on a backend (the
golden machine or the RTL), optionally compared with the golden machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qforge.gen.cli.asm import assemble_program
from qforge.gen.cli.common import (SEED_MAXIMUM, OptionError, add_config_arguments,
                                   config_from_arguments, uses_build_folder,
                                   whole_number)
from qforge.sim.model.saturation import signed_range


def register(commands) -> None:
    """Add ``qforge run`` to the subcommands ``commands``."""
    run = commands.add_parser(
        "run", help="assemble a program and run it on a backend (golden, rtl)",
        description="Assemble a .qasm program for a configuration, initialise host memory\n"
                    "from its data section (optionally random operands for chosen labels),\n"
                    "and run it with the runtime (qforge.sim.runtime) on the golden machine\n"
                    "or on the generated Verilog of the programmable accelerator in\n"
                    "Verilator. Reports GEMMs, the sticky error flag, the simulated cycles\n"
                    "against the cycle model, and, with --compare, whether the memory is\n"
                    "bit-identical with the golden machine's (exit 1 if not).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  qforge run gen/programs/example.qasm --backend rtl --compare "
               "--random x --random wq --random dy --show y")
    run.add_argument("file", type=Path, metavar="FILE", help="the program (.qasm)")
    add_config_arguments(run, default="default")
    run.add_argument("--backend", choices=("golden", "rtl"), default="golden",
                     help="where the program runs (default: golden)")
    run.add_argument("--compare", action="store_true",
                     help="also run it on the golden machine and compare the memory "
                          "(with --backend rtl)")
    run.add_argument("--random", action="append", metavar="LABEL",
                     help="fill this data label with random operands first (repeatable)")
    run.add_argument("--seed", type=whole_number(0, SEED_MAXIMUM), default=1, metavar="N",
                     help=f"seed of --random, 0 .. {SEED_MAXIMUM} (default 1)")
    run.add_argument("--show", action="append", metavar="LABEL",
                     help="print this data label's elements after the run (repeatable)")
    uses_build_folder(run, lambda arguments: arguments.backend == "rtl")
    run.set_defaults(handler=handle)


def handle(arguments) -> int:
    import numpy as np

    from qforge.sim.model.cycles import program_cycles
    from qforge.sim.runtime import Runtime, BackendError

    if arguments.compare and arguments.backend == "golden":
        raise OptionError("--compare compares a backend with the golden machine: use it "
                          "with --backend rtl (--backend golden would compare the golden "
                          "machine with itself)")
    config = config_from_arguments(arguments)
    program = assemble_program(arguments, config)
    if program is None:
        return 2
    for option, names in (("--show", arguments.show), ("--random", arguments.random)):
        for name in names or ():
            if name not in program.regions:
                raise OptionError(f"{option} {name}: not a data label of {arguments.file}; "
                                 f"its data labels: {', '.join(program.regions) or 'none'}")
    memory = program.memory()
    rng = np.random.default_rng(arguments.seed)
    for name in arguments.random or ():
        address, size = program.regions[name]
        low, high = signed_range(config.operand_width)
        memory[address:address + size] = rng.integers(low, high + 1, size=size)
    backends = [arguments.backend] + (["golden"] if arguments.compare else [])
    results = {}
    for backend in backends:
        options = {"log": lambda message: print(message, file=sys.stderr)} \
            if backend == "rtl" else {}
        try:
            with Runtime(config, backend, **options) as runtime:
                runtime.memory = memory.copy()
                report = runtime.run(program)
                results[backend] = (report, runtime.memory.copy())
        except BackendError as error:
            raise BackendError(f"{backend} backend: {error}") from None
    report, final = results[arguments.backend]
    model = program_cycles(config, program.words, memory)
    print(f"qforge run {arguments.file} on {arguments.backend} ({config.name}): "
          f"{len(program.words)} words, {report.gemms} GEMMs, error flag "
          f"{int(report.error)}")
    if report.cycles is not None:
        print(f"cycles: {report.cycles} simulated, {model.total} predicted by the cycle "
              f"model ({report.cycles / model.total:.4f})")
    else:
        print(f"cycles: {model.total} predicted by the cycle model")
    status = 0
    if "golden" in results and arguments.backend != "golden":
        golden = results["golden"][1]
        differing = [name for name, (address, size) in program.regions.items()
                     if not np.array_equal(final[address:address + size],
                                           golden[address:address + size])]
        same_error = results["golden"][0].error == report.error
        if np.array_equal(final, golden) and same_error:
            print(f"bit-identical with the golden machine: all {len(final)} memory "
                  f"elements and the error flag")
        else:
            print(f"DIFFERENT from the golden machine: {', '.join(differing) or 'memory'}"
                  f"{'' if same_error else '; error flag'}")
            status = 1
    for name in arguments.show or ():
        address, size = program.regions[name]
        print(f"{name} @ {address} ({size} elements): "
              f"{' '.join(str(int(v)) for v in final[address:address + size])}")
    return status
