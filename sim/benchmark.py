"""Benchmarks: figures measured side by side in one run, reported as ratios.

* ``dense_utilization``: ideal cycles / measured cycles of a 128x128x128 exact-mode GEMM
  on the configured array. Cycles come from :func:`qforge.sim.cycles.gemm_cycles`, which
  the integration tests prove equal to the RTL's count (``tests/sim/test_rtl.py``), or,
  with ``rtl=True``, from running the generated Verilog in Verilator.
* ``precision_speedup_vs_ideal``: for every standard precision mode, measured MACs per PE
  per cycle divided by the ideal ``P / q``; the lowest ratio over the modes.
* ``emulator_vs_float32``: time of the bit-exact emulated 256x256x256 exact-mode GEMM
  divided by a float32 ``numpy.matmul`` of the same shape, timed alternately in the same
  run (best of N each, so background load affects both alike).
"""

from __future__ import annotations

import time

import numpy as np

from qforge.gen.spec import Config
from qforge.sim.cycles import GemmShape, gemm_cycles
from qforge.sim.numerics import gemm, standard_modes
from qforge.sim.stimulus import operand_range, random_operands

__all__ = ["run_benchmark", "precision_table", "emulator_ratio", "plot_precision_scaling",
           "DENSE_SHAPE"]

#: The GEMM (m, n, depth) used for the utilization figures.
DENSE_SHAPE = (128, 128, 128)


def _rtl_cycles(config: Config, shape, precision, simulator, log) -> int:
    """Cycles of one GEMM on the generated Verilog (its results are checked too)."""
    from qforge.sim.rtl import build, run_scenario
    from qforge.sim.scenarios import Job, Scenario

    built = build(config, simulator, log=log)
    rng = np.random.default_rng(0)
    m, n, depth = shape
    job = Job(random_operands(rng, (m, depth), *operand_range(config, precision.a), "uniform"),
              random_operands(rng, (depth, n), *operand_range(config, precision.b), "uniform"),
              precision)
    report = run_scenario(built, Scenario([job], isolated=True, timeout_cycles=100000),
                          name="bench")
    return report["jobs"][0]["cycles"]


def precision_table(config: Config, shape=DENSE_SHAPE, *, rtl: bool = False,
                    simulator: str = "verilator", log=print) -> list[dict]:
    """Per standard mode: q, cycles, ideal cycles, utilization, MACs/cycle/PE vs P/q."""
    m, n, depth = shape
    rows = []
    for name, precision in standard_modes(config).items():
        q = precision.block_products
        report = gemm_cycles(config, [GemmShape(m, n, depth, q)])
        cycles = (_rtl_cycles(config, shape, precision, simulator, log) if rtl
                  else report.total)
        pes = config.rows * config.cols
        macs_per_cycle = m * n * depth / (pes * cycles)
        ideal = config.block_multipliers / q
        rows.append({"mode": name, "precision": precision.describe(), "block_products": q,
                     "cycles": cycles, "model_cycles": report.total,
                     "ideal_cycles": report.ideal,
                     "utilization": report.ideal / cycles,
                     "macs_per_pe_cycle": macs_per_cycle, "ideal_macs_per_pe_cycle": ideal,
                     "speedup_vs_ideal": macs_per_cycle / ideal})
    return rows


def emulator_ratio(config: Config, size: int = 256, repeats: int = 30,
                   seed: int = 0) -> dict:
    """Time the exact-mode emulated GEMM and float32 matmul alternately; best of each."""
    rng = np.random.default_rng(seed)
    precision = standard_modes(config)["exact"]
    a = random_operands(rng, (size, size), *operand_range(config, precision.a), "uniform")
    b = random_operands(rng, (size, size), *operand_range(config, precision.b), "uniform")
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    emulated, native = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = gemm(a, b, config, precision)
        emulated.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.matmul(a32, b32)
        native.append(time.perf_counter() - start)
    # The emulated result is checked against int64 matmul so the timing is of a
    # correct computation.
    if not np.array_equal(result, a @ b):
        raise AssertionError("emulated GEMM disagrees with int64 matmul")
    return {"emulated_seconds": min(emulated), "float32_seconds": min(native),
            "ratio": min(emulated) / min(native), "size": size, "repeats": repeats}


def run_benchmark(config: Config, *, rtl: bool = False, log=print) -> dict:
    """All figures of ``qforge bench`` for one configuration, in one run."""
    table = precision_table(config, rtl=rtl, log=log)
    exact = next(row for row in table if row["mode"] == "exact")
    emulator = emulator_ratio(config)
    return {
        "config": config.name,
        "array": f"{config.rows}x{config.cols}",
        "block_multipliers": config.block_multipliers,
        "cycles_source": "rtl (verilator)" if rtl else "cycle model (equal to RTL, tests/sim/test_rtl.py)",
        "dense_shape": list(DENSE_SHAPE),
        "dense_utilization": exact["utilization"],
        "precision_speedup_vs_ideal": min(row["speedup_vs_ideal"] for row in table),
        "emulator_vs_float32": emulator["ratio"],
        "modes": table,
        "emulator": emulator,
    }


def plot_precision_scaling(result: dict, path) -> None:
    """Bar chart of measured MACs per PE per cycle against the ideal ``P / q`` for every
    mode of a :func:`run_benchmark` result, with the utilization over each pair."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["modes"]
    names = [f"{row['mode']}\nq={row['block_products']}" for row in rows]
    positions = np.arange(len(rows))
    figure, axes = plt.subplots(figsize=(8, 4.2), layout="constrained")
    axes.bar(positions - 0.2, [row["ideal_macs_per_pe_cycle"] for row in rows], 0.4,
             label="ideal P/q", color="#c8c8c8")
    axes.bar(positions + 0.2, [row["macs_per_pe_cycle"] for row in rows], 0.4,
             label=f"measured ({result['cycles_source'].split(' (')[0]})", color="#2b6cb0")
    for x, row in zip(positions, rows):
        axes.annotate(f"{row['speedup_vs_ideal']:.3f}", (x + 0.2, row["macs_per_pe_cycle"]),
                      ha="center", va="bottom", fontsize=8)
    axes.set_xticks(positions, names, fontsize=8)
    axes.set_yscale("log", base=2)
    axes.set_ylabel("MACs per PE per cycle")
    m, n, depth = result["dense_shape"]
    axes.set_title(f"qforge {result['config']} ({result['array']}, P="
                   f"{result['block_multipliers']}): {m}x{n}x{depth} GEMM per precision mode")
    axes.legend(loc="upper left", fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
