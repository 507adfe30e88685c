"""Scenarios: what a cocotb run of the accelerator does, described outside the simulator.

A :class:`Scenario` lists GEMM jobs (operand matrices and precision modes), the stall
probability of each stream port, how jobs are issued (all queued back to back, or each
in isolation on an otherwise idle accelerator for clean cycle counts), invalid commands
to interleave, and which model computes the expected results. It is saved as JSON plus
an ``.npz`` of the matrices and read back inside the simulator by
:mod:`qforge.sim.bench.cocotb_tests`.

``model = "wrong_rounding"`` selects a deliberately wrong golden model (dropped blocks
rounded to nearest instead of truncated): the negative control that proves the
scoreboard can fail; ``model = "skip_drops_last"`` is the zero-skipping array's (each
A row's last operand that is not zero left out). ``output_model`` does the same for the
output stage (the command carries the job's settings, the expectation comes from a
wrong model of the stage).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from qforge.sim.model.spec import Config
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands
from qforge.sim.model.paired import PairedPrecision, WindowRounding
from qforge.sim.model.numerics import (OperandPrecision, Precision, Selection,
                                 _exact_integer_matmul, check_operands, gemm,
                                 operand_value, select_blocks, zero_operands)

__all__ = ["Job", "Scenario", "MODELS", "OUTPUT_MODELS", "wrong_rounding_gemm",
           "skip_drops_last_gemm",
           "precision_to_dict", "precision_from_dict"]


def wrong_rounding_gemm(a, b, config: Config, precision: Precision) -> np.ndarray:
    """A deliberately WRONG model: approximate modes round the dropped blocks to nearest
    instead of truncating them. Only for the negative control."""
    a, b = check_operands(a, b, config, precision)

    def rounded(x, operand: OperandPrecision):
        value = operand_value(x, config, operand)
        if operand.exact:
            return value
        _, _, exponent = select_blocks(x, config, operand)
        unit = np.left_shift(1, exponent * config.block_width)  # lowest kept block's weight
        dropped = np.abs(x) - np.abs(value)
        bump = np.where((exponent > 0) & (2 * dropped >= unit), unit, 0)
        return np.sign(x) * (np.abs(value) + bump)

    return _exact_integer_matmul(rounded(a, precision.a), rounded(b, precision.b))


def skip_drops_last_gemm(a, b, config: Config, precision: Precision) -> np.ndarray:
    """A deliberately WRONG model of the zero-skipping array: in each A row the last
    operand that is not zero (:func:`~qforge.sim.model.numerics.zero_operands`: for VRQ
    operands, the last with a non-zero code) is left out, as if the scheduler stopped
    one operand early. Otherwise the golden :func:`~qforge.sim.model.numerics.gemm`. Only for
    the negative control.

    >>> from qforge.sim.model.spec import load_preset
    >>> from qforge.sim.model.numerics import standard_modes
    >>> cfg = load_preset("tiny")
    >>> a = np.array([[1, 0, 2, 0], [0, 0, 0, 0]]); b = np.ones((4, 1), dtype=np.int64)
    >>> skip_drops_last_gemm(a, b, cfg, standard_modes(cfg)["exact"]).ravel().tolist()
    [1, 0]
    """
    a, b = check_operands(a, b, config, precision)
    a = a.copy()
    computed = ~zero_operands(a, config, precision.a)
    for row in np.flatnonzero(computed.any(axis=1)):
        a[row, np.flatnonzero(computed[row])[-1]] = 0
    return gemm(a, b, config, precision)


#: Models a scenario may name for its expected results.
MODELS = {"golden": gemm, "wrong_rounding": wrong_rounding_gemm,
          "skip_drops_last": skip_drops_last_gemm}

#: Output-stage models ``(accumulators, config, parameters) -> expected`` a scenario may
#: name (``Scenario.output_model``): the golden one, and wrong ones for negative
#: controls: random bits keyed by another seed, or by transposed coordinates.
OUTPUT_MODELS = {
    "golden": output_operands,
    "wrong_seed": lambda acc, config, p: output_operands(
        acc, config, replace(p, seed=p.seed ^ 1)),
    "transposed_coordinates": lambda acc, config, p: output_operands(
        np.asarray(acc).T, config, p).T,
}


def precision_to_dict(precision: Precision) -> dict:
    def operand(p: OperandPrecision):
        out = {"blocks": p.blocks, "kept": p.kept, "selection": p.selection.name.lower(),
               "vrq": p.vrq, "unsigned": p.unsigned}
        if p.paired is not None:
            out["paired"] = {"high": p.paired.kept_high, "low": p.paired.kept_low,
                             "rounding": p.paired.rounding.name.lower()}
        return out
    return {"a": operand(precision.a), "b": operand(precision.b)}


def precision_from_dict(data: dict) -> Precision:
    def operand(d):
        paired = d.get("paired")
        if paired is not None:
            paired = PairedPrecision(paired["high"], paired["low"],
                                     WindowRounding[paired["rounding"].upper()])
        return OperandPrecision(d["blocks"], d["kept"], Selection[d["selection"].upper()],
                                d.get("vrq", False), unsigned=d.get("unsigned", False),
                                paired=paired)
    return Precision(operand(data["a"]), operand(data["b"]))


@dataclass
class Job:
    """One GEMM of a scenario (``output``: output-stage settings, None = raw)."""

    a: np.ndarray
    b: np.ndarray
    precision: Precision
    label: str = ""
    output: OutputParameters | None = None
    skip_zeros: bool = False        #: zero-skipping configurations: skip zero A operands


@dataclass
class Scenario:
    """A cocotb run: jobs, port stalls, issue style and expectation."""

    jobs: list[Job]
    seed: int = 0
    stalls: dict[str, float] = field(default_factory=dict)
    isolated: bool = False          #: run each job alone, idle I/O, to count cycles
    model: str = "golden"
    expect_mismatch: bool = False   #: negative control: the run must detect errors
    invalid_commands: list[int] = field(default_factory=list)  #: raw cmd beats sent first
    timeout_cycles: int = 20000
    record: bool = False            #: save every received result matrix (results.npz)
    output_model: str = "golden"    #: OUTPUT_MODELS entry for jobs with output settings

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {}
        jobs = []
        for index, job in enumerate(self.jobs):
            arrays[f"a{index}"] = np.asarray(job.a, dtype=np.int64)
            arrays[f"b{index}"] = np.asarray(job.b, dtype=np.int64)
            output = None if job.output is None else {
                "shift": job.output.shift, "rounding": int(job.output.rounding),
                "relu": job.output.relu, "seed": job.output.seed, "tensor": job.output.tensor,
                "vrq_exponent": job.output.vrq_exponent}
            jobs.append({"precision": precision_to_dict(job.precision), "label": job.label,
                         "output": output, "skip_zeros": job.skip_zeros})
        np.savez(directory / "operands.npz", **arrays)
        description = asdict(self) | {"jobs": jobs}
        path = directory / "scenario.json"
        path.write_text(json.dumps(description))
        return path

    @classmethod
    def load(cls, path: Path) -> "Scenario":
        description = json.loads(Path(path).read_text())
        arrays = np.load(Path(path).parent / "operands.npz")
        jobs = [Job(arrays[f"a{i}"], arrays[f"b{i}"], precision_from_dict(j["precision"]),
                    j["label"],
                    None if j.get("output") is None else OutputParameters(
                        j["output"]["shift"], Rounding(j["output"]["rounding"]),
                        j["output"]["relu"], j["output"]["seed"], j["output"]["tensor"],
                        j["output"].get("vrq_exponent"), j["output"].get("wide", False)),
                    j.get("skip_zeros", False))
                for i, j in enumerate(description["jobs"])]
        return cls(**(description | {"jobs": jobs}))
