"""A sweep's outputs: rows as CSV and JSON, its Pareto fronts, plots (accuracy against
cycles, throughput per area against accuracy, area against fmax) with the FxP8
baseline marked, and a Markdown report (``qforge dse --report``).

Fronts (:func:`fronts`), per workload among the rows that ran (``status = "ok"``, and
``fits`` unless false):

* ``accuracy_cycles``: no other row has at most its cycles per epoch and at least its
  accuracy (better in one);
* ``throughput_accuracy``: no other row has at least its throughput per area (CMOS,
  against FxP8) and at least its accuracy;
* ``area_fmax`` (when fmax was measured, per hardware point): fewer transistors and a
  higher fmax.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from qforge.sim.dse.runner import ROW_FIELDS, SweepResult
from qforge.sim.training.cycles_report import pareto_front

__all__ = ["fronts", "write_csv", "write_json", "write_plots", "write_points",
           "markdown_report", "write_outputs"]


def _usable(row: dict) -> bool:
    return row["status"] == "ok" and row.get("fits") is not False


def fronts(rows: list[dict]) -> dict[str, list[int]]:
    """Row indices on each front (module docstring), ``name[:workload]`` -> indices.

    >>> rows = [dict(status="ok", workload="w", cycles_per_epoch=c, accuracy=a,
    ...              throughput_per_area_cmos=t, transistors=None, fmax_mhz=None)
    ...         for c, a, t in [(10, 97.0, 1.0), (5, 96.0, 2.0), (20, 96.5, 0.5)]]
    >>> fronts(rows)
    {'accuracy_cycles:w': [1, 0], 'throughput_accuracy:w': [1, 0]}
    """
    result = {}
    for workload in dict.fromkeys(r["workload"] for r in rows if r.get("workload")):
        indices = [i for i, r in enumerate(rows) if r["workload"] == workload
                   and _usable(r) and r.get("accuracy") is not None]
        if not indices:
            continue
        pairs = [(rows[i]["cycles_per_epoch"], rows[i]["accuracy"]) for i in indices]
        result[f"accuracy_cycles:{workload}"] = [indices[j] for j in pareto_front(pairs)]
        rated = [i for i in indices if rows[i].get("throughput_per_area_cmos") is not None]
        if rated:
            pairs = [(-rows[i]["throughput_per_area_cmos"], rows[i]["accuracy"])
                     for i in rated]
            result[f"throughput_accuracy:{workload}"] = [rated[j]
                                                         for j in pareto_front(pairs)]
    seen, hardware = set(), []
    for i, row in enumerate(rows):
        if row.get("fmax_mhz") and row.get("transistors") and row["point"] not in seen:
            seen.add(row["point"])
            hardware.append(i)
    if hardware:
        pairs = [(rows[i]["transistors"], rows[i]["fmax_mhz"]) for i in hardware]
        result["area_fmax"] = [hardware[j] for j in pareto_front(pairs)]
    return result


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=ROW_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row[key] is None else row[key] for key in ROW_FIELDS})


def write_json(result: SweepResult, front: dict, path: Path) -> None:
    path.write_text(json.dumps({"summary": result.summary(), "rows": result.rows,
                                "fronts": front}, indent=1, default=str) + "\n")


def _label(row: dict) -> str:
    policy = row["policy"] or ""
    return f"{row['point']} {policy}".strip()


def write_plots(rows: list[dict], front: dict, folder: Path) -> list[Path]:
    """The plots (module docstring) as PNG files in ``folder``; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    workloads = [key.split(":", 1)[1] for key in front if key.startswith("accuracy_cycles:")]
    for workload in workloads:
        for name, x_key, x_label, front_key in (
                ("accuracy_cycles", "cycles_per_epoch", "cycles per epoch (cycle model)",
                 f"accuracy_cycles:{workload}"),
                ("throughput_accuracy", "throughput_per_area_cmos",
                 "throughput per transistor / FxP8's (CMOS estimate)",
                 f"throughput_accuracy:{workload}")):
            chosen = [r for r in rows if r["workload"] == workload and _usable(r)
                      and r.get(x_key) is not None and r.get("accuracy") is not None]
            if not chosen:
                continue
            figure, axes = plt.subplots(figsize=(7.5, 4.8))
            for policy, marker in (("exact", "o"), ("approx", "s"), ("reduced", "v"),
                                   ("auto", "D")):
                subset = [r for r in chosen if r["policy"] == policy and not r["baseline"]]
                if subset:
                    axes.scatter([r[x_key] for r in subset], [r["accuracy"] for r in subset],
                                 marker=marker, label=f"block-wise, {policy}", alpha=0.8)
            others = [r for r in chosen if r["policy"] not in ("exact", "approx", "reduced",
                                                               "auto") and not r["baseline"]]
            if others:
                axes.scatter([r[x_key] for r in others], [r["accuracy"] for r in others],
                             marker="x", label="block-wise, other policies")
            base = [r for r in chosen if r["baseline"]]
            if base:
                axes.scatter([r[x_key] for r in base], [r["accuracy"] for r in base],
                             marker="*", s=180, color="black", label="FxP8 baseline")
            on_front = sorted((rows[i] for i in front.get(front_key, [])),
                              key=lambda r: r[x_key])
            if on_front:
                # The best accuracy at most this many cycles (post), or at least this
                # much throughput per area (pre).
                axes.step([r[x_key] for r in on_front], [r["accuracy"] for r in on_front],
                          where="post" if x_key == "cycles_per_epoch" else "pre",
                          color="grey", linestyle="--", label="Pareto front")
            if chosen[0].get("accuracy_float32") is not None:
                axes.axhline(chosen[0]["accuracy_float32"], color="tab:red", linewidth=0.8,
                             linestyle=":", label="float32")
            if x_key == "cycles_per_epoch":
                axes.set_xscale("log")
            axes.set_xlabel(x_label)
            axes.set_ylabel("test accuracy (%)")
            axes.set_title(f"{workload}: {x_label.split(' (')[0]} vs accuracy")
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
            figure.tight_layout()
            path = folder / f"{name}_{workload}.png"
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
    hardware = {r["point"]: r for r in rows if r.get("fmax_mhz") and r.get("transistors")}
    if hardware:
        figure, axes = plt.subplots(figsize=(7, 4.5))
        points = list(hardware.values())
        axes.scatter([r["transistors"] for r in points], [r["fmax_mhz"] for r in points],
                     c=["black" if r["baseline"] else "tab:blue" for r in points])
        for r in points:
            axes.annotate(r["point"], (r["transistors"], r["fmax_mhz"]), fontsize=6)
        axes.set_xlabel("transistors (CMOS estimate)")
        axes.set_ylabel("fmax (MHz, nextpnr)")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path = folder / "area_fmax.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_report(result: SweepResult, front: dict, plots: list[Path],
                    folder: Path) -> str:
    """The sweep as Markdown: what ran, every row, the fronts, the plots."""
    sweep, rows = result.sweep, result.rows
    summary = result.summary()
    lines = [f"# Design-space sweep `{sweep.name}`", "",
             f"From `{sweep.source}`: {summary['points']} hardware points "
             f"({summary['pruned']} pruned), {len(rows)} rows; {summary['tasks_run']} "
             f"tasks run, {summary['tasks_cached']} taken from the cache; "
             f"{summary['seconds']} s.", ""]
    if result.rows and result.rows[0].get("transistors") is not None:
        lines += ["Area is composed from modules synthesized once each "
                  "(`qforge.fpga.design_area`: PEs, block selectors, output stage, "
                  "control; within 3.4% of whole-design synthesis on six configurations, "
                  "docs/DSE.md). "
                  "Throughput per area is MACs per cycle of the epoch's training GEMMs "
                  "(cycle model) per transistor (CMOS estimate: the whole design with "
                  "memories at 6 per bit, `_cmos`, or without memories, `_logic`) or per "
                  "ECP5 logic cell (LUT4 + 2 x CCU2C, `_ecp5`), relative to the FxP8 "
                  "baseline at the same array shape under the exact policy.", ""]
    columns = ("point", "policy", "transistors", "logic_transistors", "ecp5_lut4",
               "ecp5_dsp", "fits", "fmax_mhz", "cycles_per_epoch", "utilization",
               "accuracy", "accuracy_delta", "throughput_per_area_cmos",
               "throughput_per_area_logic", "throughput_per_area_ecp5")
    shown = [c for c in columns if any(r.get(c) is not None for r in rows)]
    on_any = {i for indices in front.values() for i in indices}
    for workload in dict.fromkeys(r["workload"] for r in rows):
        chosen = [(i, r) for i, r in enumerate(rows) if r["workload"] == workload]
        lines += [f"## Workload `{workload}`" if workload else "## Hardware", "",
                  "| " + " | ".join([*shown, "front"]) + " |",
                  "|" + "---|" * (len(shown) + 1)]
        for i, row in chosen:
            cells = [_cell(row.get(c)) for c in shown]
            if row["baseline"]:
                cells[0] = f"**{cells[0]}** (FxP8)"
            if row["status"] != "ok":
                cells[shown.index("policy")] += f" ({row['status']})"
            lines.append("| " + " | ".join([*cells, "yes" if i in on_any else ""]) + " |")
        lines.append("")
        autos = [r for _, r in chosen if r.get("policy_layers")]
        if autos:
            lines += ["Automatic policies (forward/gradient mode per layer):", ""]
            lines += [f"- {r['point']}: {r['policy_layers']}" for r in autos]
            lines.append("")
        for name in ("accuracy_cycles", "throughput_accuracy"):
            indices = front.get(f"{name}:{workload}", [])
            if indices:
                lines.append(f"Front `{name}`: " + ", ".join(
                    f"{_label(rows[i])}" for i in indices) + ".")
        lines.append("")
    if summary["pruned_points"]:
        lines += ["## Pruned points", ""]
        lines += [f"- {p['point']}: {p['reason']}" for p in summary["pruned_points"]]
        lines.append("")
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{path.stem}]({path.relative_to(folder)})" for path in plots]
        lines.append("")
    return "\n".join(lines)


def write_points(result: SweepResult, folder: Path) -> Path:
    """Every measured hardware point as a spec file ``<point>.toml`` in ``folder``, for
    spot checks with the other commands (``qforge area --spec``, ``qforge bench
    --spec``, ``qforge generate --spec``)."""
    import dataclasses
    folder.mkdir(parents=True, exist_ok=True)
    for point in result.points:
        if point.config is None:
            continue
        name = point.name if point.name.isidentifier() and len(point.name) <= 64 else "dse"
        config = dataclasses.replace(point.config, name=name)
        (folder / f"{point.name[:200]}.toml").write_text(config.to_toml())
    return folder


def write_outputs(result: SweepResult, folder: Path, *, plots: bool = True,
                  report: bool = False) -> dict[str, Path]:
    """Write ``rows.csv``, ``rows.json`` (rows, fronts, summary), ``points/`` (each
    point's spec), the plots and, with ``report``, ``report.md`` into ``folder``;
    returns what was written by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    front = fronts(result.rows)
    written = {"csv": folder / "rows.csv", "json": folder / "rows.json"}
    write_csv(result.rows, written["csv"])
    write_json(result, front, written["json"])
    written["points"] = write_points(result, folder / "points")
    images = write_plots(result.rows, front, folder) if plots else []
    for path in images:
        written[path.stem] = path
    if report:
        written["report"] = folder / "report.md"
        written["report"].write_text(markdown_report(result, front, images, folder))
    return written
