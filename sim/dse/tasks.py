"""The units of work of a sweep (:func:`run_task`): each a JSON-ready dictionary in, a
JSON-ready dictionary out, so that a process pool or a Ray cluster can run it and the
driver can cache its result (:class:`TaskCache`) by :func:`task_key`.

Kinds:

* ``area``: the whole accelerator's area composed from modules synthesized once
  (:func:`qforge.fpga.design_area.composed_area`): CMOS transistors and ECP5 cells;
* ``fmax``: a place and route on a board (``qforge build --report-only``);
* ``train``: one emulated training run's final test accuracy and loss;
* ``calibrate``: the ``auto`` policy's sensitivities.

A task names its inputs whole (the point's spec, the training spec), so a worker needs
nothing but qforge installed; its key hashes exactly those inputs that change its
result (a training task's numerics, not its array shape: :mod:`qforge.sim.dse.workload`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

from qforge.sim.dse.sweep import _hash

__all__ = ["TASK_SOURCES", "source_digest", "task_key", "run_task", "TaskCache"]

#: Bumped when what a kind of task computes changes, so old cached results are not used.
TASK_VERSION = {"area": 2, "fmax": 1, "train": 1, "calibrate": 1}


#: The source folders whose code a kind of task's result depends on: a change there
#: (a new random-bit rule, another synthesis script) makes new keys, so a cache never
#: answers with a result the current code would not give.
TASK_SOURCES = {"area": ("hdl", "sim/model", "fpga"), "fmax": ("hdl", "sim/model", "fpga"),
                "train": ("sim/model", "sim/training", "sim/dse/workload.py"),
                "calibrate": ("sim/model", "sim/training", "sim/dse/workload.py")}


@functools.lru_cache(maxsize=None)
def source_digest(kind: str) -> str:
    """A hash of the Python sources (folders, or files) of :data:`TASK_SOURCES` ``[kind]``."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for name in TASK_SOURCES[kind]:
        where = root / name
        for path in sorted(where.rglob("*.py")) if where.is_dir() else [where]:
            digest.update(str(path.relative_to(root)).encode() + b"\0"
                          + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def task_key(task: dict) -> str:
    """``kind-hash`` of the task's result-determining fields (``key_fields``) and of
    the code that computes it (:func:`source_digest`)."""
    fields = {name: task[name] for name in task["key_fields"]}
    return (f"{task['kind']}-"
            f"{_hash([TASK_VERSION[task['kind']], source_digest(task['kind']), fields])}")


def run_task(task: dict) -> dict:
    """Run one task (module docstring) in this process and return its result."""
    from qforge.sim.model.spec import from_dict

    config = from_dict(task["config"], source="point")
    started = time.monotonic()
    kind = task["kind"]
    if kind == "area":
        from qforge.fpga.design_area import composed_area
        root = Path(task["area_root"]) if task.get("area_root") else None
        area = composed_area(config, families=("ecp5",), root=root)
        cells = area.cells("ecp5")
        result = {"transistors": area.transistors,
                  "logic_transistors": area.logic_transistors,
                  "memory_bits": area.memory_bits,
                  "pe_transistors": area.part("pe").transistors,
                  "ecp5": {key: cells.get(key, 0)
                           for key in ("lut4", "carry", "ff", "dsp", "bram")},
                  "parts": [part.to_dict() for part in area.parts]}
    elif kind == "fmax":
        from qforge.fpga.flow import build
        report = build(config, task["board"], report_only=True,
                       build_dir=Path(task["build_dir"]), log=lambda message: None)
        result = {"fmax_mhz": min((clock.achieved_mhz for clock in report.clocks),
                                  default=None),
                  "status": report.status, "error": report.error}
    elif kind == "train":
        from qforge.sim.dse.workload import train_accuracy
        result = train_accuracy(task["spec"], config, task["entry"], task["seed"],
                                task["source"])
    elif kind == "calibrate":
        from qforge.sim.dse.workload import calibration
        result = calibration(task["spec"], config, task["seed"], task["source"])
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    result["task_seconds"] = time.monotonic() - started
    return result


class TaskCache:
    """Finished tasks' results, one JSON file each in ``root``
    (``<kind>-<hash>.json``), written atomically: a sweep killed midway keeps every
    result it finished, and the next run takes them instead of running them again."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, result: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(result, sort_keys=True, default=str))
        os.replace(temporary, self.path(key))
