"""Reproducibility across hardware shapes: the Cambricon-Q redesign's central claim.

One two-layer workload runs on several generated array shapes. Everything that affects
its numbers depends only on the data, the arithmetic configuration and element
coordinates: VRQ groups values by value range relative to a tensor-wide maximum, the
stochastic-rounding bits are keyed by (seed, tensor, row, column), and integer
accumulation is exact. So the results are bit-identical on every shape.

The address-block baseline (Cambricon-Q: one scale per ``block`` contiguous elements,
the block tied to a hardware tile size) runs the same workload with ``block`` = the
array's tile (rows x cols elements): its results change with the hardware.

Each step of the VRQ workload runs on the generated Verilog and feeds on what the RTL
produced (not on the golden model), which is also checked beat by beat:

1. ``A1 = X @ W1`` with raw accumulators; the host takes the tensor-wide statistic
   ``E1 = vrq_exponent(relu(A1))`` (a max: independent of the array);
2. the same GEMM with the output stage emitting VRQ words: ``Y1 = VRQ(relu(A1), E1)``,
   stochastic rounding;
3. ``A2 = Y1 @ W2`` raw, ``shift`` from its tensor-wide maximum, then
   ``Y2 = round(A2 / 2**shift)`` with stochastic rounding, saturated to the output width.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qforge.sim.model.spec import Config, from_dict
from qforge.sim.model.numerics import OperandPrecision, Precision, vrq_pack
from qforge.sim.model.quantize import (OutputParameters, Rounding, address_block_decode,
                                 address_block_encode, vrq_encode, vrq_exponent)

__all__ = ["SHAPES", "shape_config", "Workload", "make_workload", "run_vrq_on_rtl",
           "run_address_block", "run_repro", "format_repro"]

_LOGGER = logging.getLogger(__name__)

#: Array shapes (rows, cols) the proof compares.
SHAPES = ((2, 2), (4, 8), (8, 8))

#: The arithmetic shared by every shape: 8-bit operands in 2-bit blocks, 4 block
#: multipliers per PE, VRQ with 4-bit codes, range stride 2 and 8 ranges (8 bits stored).
BASE_SPEC = {
    "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 4,
                   "max_reduction_depth": 256, "output_width": 8},
    "buffers": {"depth": 64},
    "vrq": {"code_width": 4, "range_stride": 2, "ranges": 8},
}


def shape_config(rows: int, cols: int) -> Config:
    """The shared arithmetic on a ``rows x cols`` array."""
    return from_dict({"name": f"repro{rows}x{cols}", "array": {"rows": rows, "cols": cols},
                      **BASE_SPEC}, source="repro")


@dataclass
class Workload:
    """Float data of the two-layer workload (M x D0 inputs, two weight matrices)."""

    x: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    seed: int


def make_workload(seed: int = 7, m: int = 11, d0: int = 23, d1: int = 13,
                  d2: int = 9) -> Workload:
    """Random data with a wide dynamic range (so VRQ ranges and underflow matter);
    shapes that are not multiples of any array."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((m, d0)), 0) * np.exp2(rng.integers(-6, 2, (m, d0)))
    w1 = rng.standard_normal((d0, d1)) * 0.3
    w2 = rng.standard_normal((d1, d2)) * 0.3
    return Workload(x, w1, w2, seed)


def _vrq_words(values, config: Config, tensor: int, seed: int) -> np.ndarray:
    sign, code, group = vrq_encode(values, config.vrq, rounding=Rounding.STOCHASTIC,
                                   seed=seed, tensor=tensor)
    return vrq_pack(sign, code, group, config)


def run_vrq_on_rtl(config: Config, workload: Workload,
                   log: Callable[[str], None] | None = None) -> dict:
    """Run the VRQ workload on ``config``'s generated Verilog; return its tensors.
    ``log`` receives progress lines (default: this module's logger, at INFO level)."""
    log = log or _LOGGER.info
    from qforge.sim.bench.rtl import build, run_scenario
    from qforge.sim.bench.scenarios import Job, Scenario

    built = build(config, log=log)
    vrq = OperandPrecision(config.vrq_code_blocks, config.vrq_code_blocks, vrq=True)
    mode = Precision(vrq, vrq)
    seed = workload.seed
    x = _vrq_words(workload.x, config, tensor=1, seed=seed)
    w1 = _vrq_words(workload.w1, config, tensor=2, seed=seed)
    w2 = _vrq_words(workload.w2, config, tensor=3, seed=seed)

    def rtl(a, b, output, name):
        report = run_scenario(built, Scenario([Job(a, b, mode, name, output)],
                                              record=True, timeout_cycles=50000),
                              name=f"repro_{name}")
        return report["results"][0]

    log(f"  {config.name}: layer 1 accumulators")
    accumulators = rtl(x, w1, None, "layer1_raw")
    exponent = vrq_exponent(np.maximum(accumulators, 0))
    log(f"  {config.name}: layer 1 as VRQ words (E = {exponent}, stochastic rounding, ReLU)")
    y1 = rtl(x, w1, OutputParameters(rounding=Rounding.STOCHASTIC, relu=True, seed=seed,
                                      tensor=4, vrq_exponent=exponent), "layer1_vrq")
    log(f"  {config.name}: layer 2 accumulators")
    accumulators2 = rtl(y1, w2, None, "layer2_raw")
    # Scale so the largest result just fits the output width: from the tensor-wide
    # maximum again, so the same on every array.
    shift = max((vrq_exponent(accumulators2) or 0) - (config.output_width - 2), 0)
    log(f"  {config.name}: layer 2, shift {shift}, stochastic rounding to "
        f"{config.output_width} bits")
    y2 = rtl(y1, w2, OutputParameters(shift=shift, rounding=Rounding.STOCHASTIC,
                                      seed=seed, tensor=5), "layer2")
    return {"accumulators": accumulators, "exponent": exponent, "y1": y1, "y2": y2,
            "shift": shift}


def run_address_block(workload: Workload, block: int, bits: int = 8) -> np.ndarray:
    """The same two layers with Cambricon-Q address-block quantization (golden model,
    float arithmetic on the exactly representable dequantized codes)."""
    seed = workload.seed

    def quantized(values, tensor):
        codes, units = address_block_encode(values, bits, block,
                                            rounding=Rounding.STOCHASTIC, seed=seed,
                                            tensor=tensor)
        return address_block_decode(codes, units, block)

    h = np.maximum(quantized(workload.x, 1) @ quantized(workload.w1, 2), 0)
    return quantized(h, 4) @ quantized(workload.w2, 3)


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def run_repro(shapes=SHAPES, seed: int = 7,
              log: Callable[[str], None] | None = None) -> dict:
    """Run both schemes on every shape and compare. ``log`` receives progress lines
    (default: this module's logger, at INFO level)."""
    log = log or _LOGGER.info
    workload = make_workload(seed)
    rows = []
    for rows_count, cols_count in shapes:
        config = shape_config(rows_count, cols_count)
        log(f"{config.name}: VRQ workload on the RTL")
        vrq = run_vrq_on_rtl(config, workload, log=log)
        block = rows_count * cols_count
        baseline = run_address_block(workload, block)
        rows.append({"shape": f"{rows_count}x{cols_count}", "block": block,
                     "vrq_y1": vrq["y1"], "vrq_y2": vrq["y2"], "vrq_exponent": vrq["exponent"],
                     "address_block": baseline,
                     "vrq_digest": _digest(vrq["y2"]) + "/" + _digest(vrq["y1"]),
                     "address_block_digest": _digest(baseline)})
    first = rows[0]
    for row in rows:
        row["vrq_identical"] = bool(np.array_equal(row["vrq_y1"], first["vrq_y1"])
                                    and np.array_equal(row["vrq_y2"], first["vrq_y2"]))
        row["address_block_identical"] = bool(np.array_equal(row["address_block"],
                                                             first["address_block"]))
        row["address_block_max_difference"] = float(
            np.abs(row["address_block"] - first["address_block"]).max())
    return {"rows": rows, "vrq_reproducible": all(r["vrq_identical"] for r in rows),
            "address_block_reproducible": all(r["address_block_identical"] for r in rows)}


def format_repro(result: dict) -> str:
    lines = ["| array | VRQ + SR (RTL): digest Y2/Y1 | identical | address-block "
             "(block = tile) digest | identical | max abs difference |",
             "|---|---|---|---|---|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['shape']} | {row['vrq_digest']} | "
                     f"{'yes' if row['vrq_identical'] else 'NO'} | "
                     f"{row['address_block_digest']} (block {row['block']}) | "
                     f"{'yes' if row['address_block_identical'] else 'no'} | "
                     f"{row['address_block_max_difference']:.4g} |")
    lines.append("")
    lines.append(f"VRQ with stochastic rounding: "
                 f"{'bit-identical on every shape' if result['vrq_reproducible'] else 'DIFFERS'}"
                 f"; address-block baseline: "
                 f"{'identical' if result['address_block_reproducible'] else 'changes with the hardware block size'}.")
    return "\n".join(lines)
