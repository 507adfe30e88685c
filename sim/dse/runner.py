"""Running a sweep (:func:`run_sweep`): its points expanded, the tasks they need
(:mod:`qforge.sim.dse.tasks`) run on a local process pool or a Ray cluster and cached,
then one row per (hardware point, workload, policy) assembled in the driver.

Order of work: every ``area``, ``fmax``, ``train`` (fixed policies and the float32
reference) and ``calibrate`` task at once; then the ``auto`` policies are chosen with
each point's cycles and their trainings run. A task whose result is cached
(``build/dse/cache/``) is not run again, so a sweep stopped by a crash or Ctrl-C
resumes where it stopped; results come back to the driver, which alone writes the
cache (a Ray cluster needs no shared storage for it).

Rows are deterministic: the same sweep gives the same rows on the pool, on Ray, cold or
cached (timings go to the run summary, not the rows).
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from qforge.sim.dse.sweep import HardwarePoint, Sweep, SweepError, config_key, expand
from qforge.sim.dse.tasks import TaskCache, run_task, task_key
from qforge.sim.dse.workload import (choose_auto_policy, dataset_shape, epoch_cycles,
                                     float32_spec, load_training, numerics_key,
                                     training_spec)
from qforge.sim.model.errors import QforgeError
from qforge.sim.progress import Progress

__all__ = ["ROW_FIELDS", "SweepResult", "run_sweep", "DEFAULT_CACHE"]

DEFAULT_CACHE = Path("build") / "dse" / "cache"

#: The columns of a row, in order (docs/DSE.md defines each).
ROW_FIELDS = (
    "point", "baseline", "rows", "cols", "operand_width", "block_width",
    "block_multipliers", "pe", "zero_skipping", "output_lanes", "buffer_depth",
    "transistors", "logic_transistors", "memory_bits", "pe_transistors", "ecp5_lut4", "ecp5_carry", "ecp5_ff", "ecp5_dsp", "ecp5_bram", "fits",
    "fmax_mhz", "workload", "policy", "policy_layers", "status", "reason",
    "cycles_per_epoch", "utilization", "macs_per_epoch", "macs_per_cycle",
    "accuracy", "accuracy_seeds", "accuracy_float32", "accuracy_delta",
    "throughput_per_area_cmos", "throughput_per_area_logic", "throughput_per_area_ecp5")


@dataclass
class SweepResult:
    sweep: Sweep
    points: list[HardwarePoint]
    rows: list[dict]
    tasks_run: int = 0
    tasks_cached: int = 0
    seconds: float = 0.0
    task_seconds: dict = field(default_factory=dict)     #: kind -> summed seconds

    def summary(self) -> dict:
        pruned = [p for p in self.points if p.pruned]
        return {"sweep": self.sweep.name, "source": self.sweep.source,
                "points": len(self.points), "pruned": len(pruned),
                "rows": len(self.rows), "tasks_run": self.tasks_run,
                "tasks_cached": self.tasks_cached, "seconds": round(self.seconds, 1),
                "task_seconds": {k: round(v, 1) for k, v in self.task_seconds.items()},
                "pruned_points": [{"point": p.name, "reason": p.pruned} for p in pruned]}


class _Executor:
    """Runs tasks on a process pool (``jobs`` processes; 1: in this process) or on Ray
    (``ray``: an address, ``"auto"``, or ``"local"`` for a new local instance)."""

    def __init__(self, jobs: int, ray: str | None):
        self.jobs, self.ray = jobs, ray
        self._pool = None
        self._remote = None
        if ray is not None:
            try:
                import ray as ray_module
            except ImportError:
                raise QforgeError("--ray: Ray is not installed (pip install \"ray==2.60.0\","
                                  " or qforge's [dse] extra)") from None
            if not ray_module.is_initialized():
                options = {"include_dashboard": False, "log_to_driver": False,
                           "configure_logging": False}
                if ray == "local":
                    ray_module.init(num_cpus=jobs, **options)
                else:
                    _check_reachable(ray)
                    try:
                        ray_module.init(address=ray, **options)
                    except (ConnectionError, RuntimeError, ValueError) as error:
                        raise QforgeError(f"--ray {ray}: cannot connect to a Ray cluster: "
                                          f"{error}") from None
            self._ray = ray_module
            self._remote = ray_module.remote(run_task)
        elif jobs > 1:
            self._pool = concurrent.futures.ProcessPoolExecutor(jobs)

    def run(self, tasks: list[dict], done) -> None:
        """Run ``tasks``, calling ``done(task, result)`` as each finishes."""
        if not tasks:
            return
        if self._remote is not None:
            pending = {self._remote.remote(task): task for task in tasks}
            while pending:
                ready, _ = self._ray.wait(list(pending), num_returns=1)
                task = pending.pop(ready[0])
                done(task, self._ray.get(ready[0]))
        elif self._pool is not None:
            futures = {self._pool.submit(run_task, task): task for task in tasks}
            for future in concurrent.futures.as_completed(futures):
                done(futures[future], future.result())
        else:
            for task in tasks:
                done(task, run_task(task))

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
        if self._remote is not None and self.ray == "local":
            self._ray.shutdown()


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A ``host:port`` Ray address answers a TCP connection within ``seconds``, or one
    :class:`QforgeError` (``ray.init`` itself retries for minutes on a dead address)."""
    import socket
    if address == "auto" or address.startswith("ray://") or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise QforgeError(f"--ray {address}: not an address; allowed: host:port, 'auto' "
                          f"or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise QforgeError(f"--ray {address}: no Ray cluster answers there "
                          f"({error.strerror or error}); start one with `ray start --head` "
                          f"(docs/DSE.md)") from None


def _config_values(point: HardwarePoint) -> dict:
    config = point.config
    return {"rows": config.rows, "cols": config.cols,
            "operand_width": config.operand_width, "block_width": config.block_width,
            "block_multipliers": config.block_multipliers, "pe": config.pe,
            "zero_skipping": config.zero_skipping, "output_lanes": config.output_lanes,
            "buffer_depth": config.buffer_depth}


def run_sweep(sweep: Sweep, *, jobs: int = 1, ray: str | None = None,
              cache: Path = DEFAULT_CACHE, area_root: Path | None = None,
              progress: bool = True, log=None) -> SweepResult:
    """Run ``sweep`` (module docstring) and return its rows. ``jobs``: worker
    processes (or Ray CPUs for ``ray = "local"``); ``cache``: the task cache folder;
    ``area_root``: where module syntheses run (default ``build/area``)."""
    log = log or (lambda message: print(message, file=sys.stderr))
    started = time.monotonic()
    points = expand(sweep)
    live = [p for p in points if p.pruned is None]
    if not live:
        raise SweepError(f"{sweep.source}: every point is pruned: "
                         + "; ".join(f"{p.name}: {p.pruned}" for p in points[:3]))
    store = TaskCache(cache)
    result = SweepResult(sweep, points, [])
    results: dict[str, dict] = {}
    plan = _Plan(sweep, live, area_root)
    executor = _Executor(jobs, ray)
    try:
        first = plan.first_tasks()
        total = len(first) + plan.auto_estimate()
        bar = (Progress(total, f"dse {sweep.name}", eta=True, every=1) if progress
               else None)

        def run(tasks):
            todo = []
            for task in tasks:
                cached = store.get(task["key"])
                if cached is not None:
                    results[task["key"]] = cached
                    result.tasks_cached += 1
                    if bar is not None:
                        bar.advance(note=f"{task['label']} (cached)")
                else:
                    todo.append(task)
            left = {}
            for task in todo:
                left[task["kind"]] = left.get(task["kind"], 0) + 1

            def done(task, value):
                store.put(task["key"], value)
                results[task["key"]] = value
                result.tasks_run += 1
                kind = task["kind"]
                result.task_seconds[kind] = (result.task_seconds.get(kind, 0)
                                             + value.get("task_seconds", 0))
                durations.setdefault(kind, []).append(value.get("task_seconds", 0))
                left[kind] -= 1
                if bar is not None:
                    bar.advance(note=task["label"], seconds_left=_seconds_left(left))
            executor.run(todo, done)

        durations: dict[str, list[float]] = {}

        def _seconds_left(left: dict) -> float:
            """The tasks left, each at the mean time of the finished ones of its kind
            (area tasks take minutes, trainings seconds), over the workers."""
            every = [s for times in durations.values() for s in times]
            overall = sum(every) / len(every)
            total = sum(count * (sum(durations[kind]) / len(durations[kind])
                                 if durations.get(kind) else overall)
                        for kind, count in left.items())
            return total / max(1, jobs)

        run(first)
        second = plan.auto_tasks(results)
        if bar is not None:
            bar.total = max(bar.total, bar.done + len(second))
        run(second)
        if bar is not None:
            bar.close()
    except KeyboardInterrupt:
        executor.close(cancel=True)
        log(f"qforge dse: interrupted; {result.tasks_run} task(s) finished and cached in "
            f"{cache}: run the same command again to resume")
        raise
    else:
        executor.close()
    result.rows = plan.rows(results)
    result.seconds = time.monotonic() - started
    return result


class _Plan:
    """The tasks of a sweep and how its rows are assembled from their results."""

    def __init__(self, sweep: Sweep, points: list[HardwarePoint], area_root):
        self.sweep, self.points, self.area_root = sweep, points, area_root
        self.shapes = {w.name: dataset_shape(w, points[0].config) for w in sweep.workloads}
        self._entries: dict = {}    # (point, workload, policy) -> (spec, entry) or reason
        self._autos: dict = {}      # (point, workload) -> _auto's choice

    def _task(self, kind: str, point: HardwarePoint, label: str, key_fields: dict,
              **extra) -> dict:
        task = {"kind": kind, "config": point.config.to_dict(), "label": label,
                **key_fields, **extra, "key_fields": sorted(key_fields)}
        task["key"] = task_key(task)
        return task

    def area_task(self, point):
        return self._task("area", point, f"area {point.name}",
                          {"hardware": config_key(point.config)},
                          area_root=str(self.area_root) if self.area_root else None)

    def fmax_task(self, point):
        key = config_key(point.config)
        return self._task("fmax", point, f"fmax {point.name}",
                          {"hardware": key, "board": self.sweep.measures.fmax},
                          build_dir=str(Path("build") / "dse" / "fmax" /
                                        f"{self.sweep.measures.fmax}-{key}"))

    def train_task(self, point, workload, spec, entry, seed, policy_key):
        return self._task("train", point, f"train {workload.name} {entry} seed {seed}",
                          {"numerics": numerics_key(point.config), "workload": workload.key(),
                           "policy": policy_key, "seed": seed, "spec": spec, "entry": entry},
                          source=workload.source)

    def float32_task(self, workload, seed):
        """The workload's float32 reference training (the same on every point)."""
        return self._task("train", self.points[0],
                          f"train {workload.name} float32 seed {seed}",
                          {"workload": workload.key(), "policy": "float32", "seed": seed},
                          spec=float32_spec(workload), entry="float32",
                          source=workload.source)

    def calibrate_task(self, point, workload, seed):
        """The auto policy's sensitivities on ``point``'s numerics."""
        spec, _ = self.entry(point, workload, "auto")
        return self._task("calibrate", point, f"calibrate {workload.name} seed {seed}",
                          {"numerics": numerics_key(point.config),
                           "workload": workload.key(), "seed": seed},
                          spec=spec, seed=seed, source=workload.source)

    def entry(self, point, workload, policy):
        """``(spec, entry name)`` of a fixed policy on ``point``, or the reason it does
        not apply there (a string)."""
        key = (point.name, workload.name, policy)
        if key not in self._entries:
            spec = training_spec(workload, point.config, (policy,))
            try:
                train = load_training(spec, point.config, workload.source)
            except QforgeError as error:
                self._entries[key] = f"not applicable: {error}"
                return self._entries[key]
            names = {h.name for h in train.hardware}
            wanted = "exact" if policy == "auto" else policy
            if wanted not in names:
                self._entries[key] = (f"not applicable: {policy} needs more than one block "
                                      f"per operand (W = {point.config.operand_width}, "
                                      f"K = {point.config.block_width})")
            elif policy == "auto" and not {"approx", "reduced"} <= names:
                self._entries[key] = ("not applicable: auto chooses among exact, approx and "
                                      "reduced; one-block operands have only exact")
            else:
                self._entries[key] = (spec, wanted)
        return self._entries[key]

    def first_tasks(self) -> list[dict]:
        tasks, seen = [], set()

        def add(task):
            if task["key"] not in seen:
                seen.add(task["key"])
                tasks.append(task)

        measures = self.sweep.measures
        for point in self.points:
            if measures.area:
                add(self.area_task(point))
            if measures.fmax:
                add(self.fmax_task(point))
        if not measures.accuracy:
            return tasks
        for workload in self.sweep.workloads:
            for seed in workload.seeds:
                add(self.float32_task(workload, seed))
            for point in self.points:
                for policy in self._policies(point, workload):
                    entry = self.entry(point, workload, policy)
                    if isinstance(entry, str):
                        continue
                    spec, name = entry
                    for seed in workload.seeds:
                        if policy == "auto":
                            add(self.calibrate_task(point, workload, seed))
                        else:
                            add(self.train_task(point, workload, spec, name, seed, policy))
        return tasks

    def _policies(self, point, workload):
        return ("exact",) if point.baseline else workload.policies

    def auto_estimate(self) -> int:
        """Trainings the auto policies will add at most (for the progress bar)."""
        if not self.sweep.measures.accuracy:
            return 0
        numerics = {numerics_key(p.config) for p in self.points if not p.baseline}
        return sum(len(numerics) * len(w.seeds) for w in self.sweep.workloads
                   if "auto" in w.policies)

    def _auto(self, point, workload, results):
        """``(spec, entry, policy)`` of the auto policy chosen on ``point``: the
        sensitivities of every seed averaged. Chosen once per point and workload (its
        trainings are planned with it, and its row is assembled with it)."""
        key = (point.name, workload.name)
        if key not in self._autos:
            spec, _ = self.entry(point, workload, "auto")
            tables = [results[self.calibrate_task(point, workload, seed)["key"]]
                      ["sensitivity"] for seed in workload.seeds]
            mean = [[*row[:3], sum(table[i][3] for table in tables) / len(tables)]
                    for i, row in enumerate(tables[0])]
            self._autos[key] = choose_auto_policy(spec, point.config, mean, workload.budget,
                                                  workload.source,
                                                  self.shapes[workload.name])
        return self._autos[key]

    def auto_tasks(self, results) -> list[dict]:
        if not self.sweep.measures.accuracy:
            return []
        tasks, seen = [], set()
        for workload in self.sweep.workloads:
            if "auto" not in workload.policies:
                continue
            for point in self.points:
                if point.baseline or isinstance(self.entry(point, workload, "auto"), str):
                    continue
                spec, name, policy = self._auto(point, workload, results)
                for seed in workload.seeds:
                    task = self.train_task(point, workload, spec, name, seed,
                                           "auto:" + _policy_text(policy))
                    if task["key"] not in seen:
                        seen.add(task["key"])
                        tasks.append(task)
        return tasks

    def rows(self, results) -> list[dict]:
        rows = []
        for point in self.points:
            hardware = {"point": point.name, "baseline": point.baseline,
                        **_config_values(point), **self._area(point, results)}
            workloads = self.sweep.workloads or ()
            if not workloads:
                rows.append(_row(hardware, {"status": "ok"}))
            for workload in workloads:
                for policy in self._policies(point, workload):
                    rows.append(_row(hardware, self._measure(point, workload, policy,
                                                             results)))
        _derive(rows)
        return rows

    def _area(self, point, results) -> dict:
        values = {}
        if self.sweep.measures.area:
            area = results[self.area_task(point)["key"]]
            for key in ("transistors", "logic_transistors", "memory_bits",
                        "pe_transistors"):
                values[key] = area[key]
            for key, count in area["ecp5"].items():
                values[f"ecp5_{key}"] = count
            board = self.sweep.constraints.fits
            if board is not None:
                from qforge.fpga.boards import BOARDS
                resources = BOARDS[board].resources
                values["fits"] = all(area["ecp5"].get(key, 0) <= resources[key]
                                     for key in ("lut4", "ff", "dsp", "bram"))
        if self.sweep.measures.fmax:
            values["fmax_mhz"] = results[self.fmax_task(point)["key"]].get("fmax_mhz")
        return values

    def _measure(self, point, workload, policy, results) -> dict:
        values = {"workload": workload.name, "policy": policy}
        entry = self.entry(point, workload, policy)
        if isinstance(entry, str):
            return {**values, "status": "not applicable", "reason": entry}
        spec, name = entry
        policy_key = policy
        if policy == "auto" and self.sweep.measures.accuracy:
            spec, name, layers = self._auto(point, workload, results)
            policy_key = "auto:" + _policy_text(layers)
            values["policy_layers"] = _policy_text(layers)
        train = load_training(spec, point.config, workload.source)
        hardware = next(h for h in train.hardware if h.name == name)
        cycles = epoch_cycles(point.config, hardware, train, self.shapes[workload.name])
        values.update({"status": "ok", "cycles_per_epoch": cycles.cycles,
                       "utilization": round(cycles.utilization, 6),
                       "macs_per_epoch": cycles.macs,
                       "macs_per_cycle": round(cycles.macs / cycles.cycles, 6)})
        if self.sweep.measures.accuracy:
            seeds = [results[self.train_task(point, workload, spec, name, seed,
                                             policy_key)["key"]]["accuracy"]
                     for seed in workload.seeds]
            reference = [results[self.float32_task(workload, seed)["key"]]["accuracy"]
                         for seed in workload.seeds]
            mean = sum(seeds) / len(seeds)
            float32 = sum(reference) / len(reference)
            values.update({"accuracy": round(100 * mean, 4),
                           "accuracy_seeds": " ".join(f"{100 * a:.2f}" for a in seeds),
                           "accuracy_float32": round(100 * float32, 4),
                           "accuracy_delta": round(100 * (mean - float32), 4)})
        return values


def _policy_text(policy: dict) -> str:
    """``conv1 exact/exact, conv2 approx/reduced, ...`` (forward/gradient per layer)."""
    return ", ".join(f"{layer} {forward}/{gradient}"
                     for layer, (forward, gradient) in policy.items())


def _row(hardware: dict, values: dict) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(hardware)
    row.update(values)
    return row


def _derive(rows: list[dict]) -> None:
    """Throughput per area against the baseline
    (:data:`~qforge.sim.dse.sweep.BASELINE_PRESET`, exact policy) at the same array
    shape and workload: ``(MACs/cycle / area) /
    (baseline MACs/cycle / baseline area)``, area in CMOS transistors (the whole
    design, memories at 6 per bit: ``_cmos``; without the memories: ``_logic``) and in
    ECP5 logic cells (LUT4 + 2 x CCU2C; DSP blocks are listed, not counted)."""
    baselines = {(r["rows"], r["cols"], r["workload"]): r for r in rows
                 if r["baseline"] and r["status"] == "ok"}
    for row in rows:
        base = baselines.get((row["rows"], row["cols"], row["workload"]))
        if base is None or row["status"] != "ok" or row["macs_per_cycle"] is None:
            continue
        for column, area in (("throughput_per_area_cmos", "transistors"),
                             ("throughput_per_area_logic", "logic_transistors")):
            if row[area] and base[area]:
                row[column] = round((row["macs_per_cycle"] / row[area])
                                    / (base["macs_per_cycle"] / base[area]), 4)
        if row["ecp5_lut4"] and base["ecp5_lut4"]:
            logic = row["ecp5_lut4"] + 2 * (row["ecp5_carry"] or 0)
            base_logic = base["ecp5_lut4"] + 2 * (base["ecp5_carry"] or 0)
            row["throughput_per_area_ecp5"] = round(
                (row["macs_per_cycle"] / logic) / (base["macs_per_cycle"] / base_logic), 4)
