"""``qforge dse SWEEP.toml``: design-space exploration (:mod:`qforge.sim.dse`)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from qforge.gen.cli.common import (add_output_argument, log_to_stderr, refuse_special_file,
                                   require_file, whole_number)


def _build_root() -> Path:
    """``build/``, or ``$QFORGE_BUILD`` if set (as every command's build folder)."""
    return Path(os.environ.get("QFORGE_BUILD", "build"))


def register(commands) -> None:
    """Add ``qforge dse`` to the subcommands ``commands``."""
    dse = commands.add_parser(
        "dse", help="design-space exploration: area, cycles and accuracy of a sweep of "
                    "configurations, with Pareto fronts",
        description="Expand the sweep file's hardware axes (grid or random sampling;\n"
                    "constraints prune points), measure every point: area composed from\n"
                    "modules synthesized once (CMOS transistor estimate, ECP5 cells), fmax\n"
                    "when asked (place and route), cycles per epoch and utilization of each\n"
                    "workload and precision policy (cycle model), accuracy from emulated\n"
                    "training (once per numerics), throughput per area against the FxP8\n"
                    "baseline. Tasks run on a local process pool (--jobs) or a Ray cluster\n"
                    "(--ray) and are cached: an interrupted sweep resumes where it stopped.\n"
                    "Writes rows.csv, rows.json (rows, Pareto fronts, summary) and plots\n"
                    "into --out; --report also writes report.md. docs/DSE.md describes the\n"
                    "sweep file and every column.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  qforge dse gen/dse/cnn_small.toml --jobs 2 --report\n"
               "  qforge dse gen/dse/cnn_small.toml --points        # list the points only\n"
               "  ray start --head && qforge dse gen/dse/cnn_small.toml --ray auto")
    dse.add_argument("sweep", type=Path, metavar="SWEEP.toml",
                     help="the sweep file (gen/dse/*.toml are examples)")
    dse.add_argument("--jobs", type=whole_number(1, 256), metavar="N",
                     default=os.cpu_count() or 1,
                     help="worker processes (default: one per core; with --ray local, "
                          "the local instance's CPUs)")
    dse.add_argument("--ray", metavar="ADDRESS",
                     help="run the tasks as Ray tasks: a cluster's address "
                          "(host:port), 'auto' (the cluster `ray start --head` "
                          "started on this machine) or 'local' (a new local instance); "
                          "needs Ray installed on every node with qforge")
    add_output_argument(dse, "--out", folder=True, metavar="DIR",
                        help="where the outputs go (default: build/dse/<sweep name>)")
    add_output_argument(dse, "--cache", folder=True, metavar="DIR",
                        default=_build_root() / "dse" / "cache",
                        help="the task cache (default: build/dse/cache, under "
                             "$QFORGE_BUILD if set)")
    dse.add_argument("--report", action="store_true",
                     help="also write report.md (Markdown: rows, fronts, plots)")
    dse.add_argument("--no-plots", action="store_true", help="write no plots")
    dse.add_argument("--points", action="store_true",
                     help="list the hardware points (and why any are pruned), run nothing")
    dse.add_argument("--json", action="store_true",
                     help="print the summary and the rows as JSON instead of a table")
    dse.set_defaults(handler=handle)


def _table(rows: list[dict]) -> str:
    columns = ("point", "policy", "transistors", "ecp5_lut4", "cycles_per_epoch",
               "accuracy", "accuracy_delta", "throughput_per_area_cmos",
               "throughput_per_area_logic")
    shown = [c for c in columns if any(r.get(c) is not None for r in rows)]
    lines = ["  ".join(f"{c:>14s}" if i else f"{c:<28s}" for i, c in enumerate(shown))]
    for row in rows:
        cells = []
        for i, column in enumerate(shown):
            value = row.get(column)
            text = "" if value is None else (f"{value:.4g}" if isinstance(value, float)
                                             else str(value))
            if column == "policy" and row["status"] != "ok":
                text = f"{text} (n/a)"
            cells.append(f"{text:<28s}" if i == 0 else f"{text:>14s}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def handle(arguments) -> int:
    from qforge.sim.dse.report import write_outputs
    from qforge.sim.dse.runner import run_sweep
    from qforge.sim.dse.sweep import expand, load_sweep

    require_file(arguments.sweep, "SWEEP.toml")
    refuse_special_file(arguments.sweep, "SWEEP.toml")
    sweep = load_sweep(arguments.sweep)
    if arguments.points:
        for point in expand(sweep):
            state = f"pruned: {point.pruned}" if point.pruned else (
                "baseline" if point.baseline else "")
            print(f"{point.name:<40s} {state}")
        return 0
    try:
        result = run_sweep(sweep, jobs=arguments.jobs, ray=arguments.ray,
                           cache=arguments.cache, log=log_to_stderr)
    except KeyboardInterrupt:
        return 130
    folder = arguments.out or _build_root() / "dse" / sweep.name
    written = write_outputs(result, Path(folder), plots=not arguments.no_plots,
                            report=arguments.report)
    if arguments.json:
        print(json.dumps({"summary": result.summary(), "rows": result.rows}, indent=1,
                         default=str))
    else:
        print(_table(result.rows))
        summary = result.summary()
        print(f"\n{summary['rows']} rows from {summary['points']} points "
              f"({summary['pruned']} pruned); {summary['tasks_run']} tasks run, "
              f"{summary['tasks_cached']} cached; {summary['seconds']} s")
    for kind, path in written.items():
        log_to_stderr(f"qforge dse: {kind} written to {path}")
    return 0
