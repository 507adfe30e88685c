"""Benchmarks: figures measured side by side in one run, reported as ratios.

* ``dense_utilization``: ideal cycles / measured cycles of a 128x128x128 exact-mode GEMM
  on the configured array. Cycles come from :func:`qforge.sim.model.cycles.gemm_cycles`, which
  the integration tests prove equal to the RTL's count (``tests/sim/bench/test_rtl.py``), or,
  with ``rtl=True``, from running the generated Verilog in Verilator.
* ``precision_speedup_vs_ideal``: for every standard precision mode, measured MACs per PE
  per cycle divided by the ideal ``P / q_issued``; the lowest ratio over the modes. A
  mode's ``q = La * Lb`` (``block_products``, shown) is the block products a MAC needs;
  ``q_issued`` (``issued_block_products``) those the PE design issues per MAC
  (:func:`qforge.sim.model.cycles.issued_block_products`: q, but e.g. ``n * n`` for a
  dynamic mode with ``arithmetic.pe = "shared_shift"``), which every cycle and ideal
  figure uses.
* ``emulator_vs_float32``: time of the bit-exact emulated 256x256x256 exact-mode GEMM
  divided by a float32 ``numpy.matmul`` of the same shape, timed alternately in the same
  run (best of N each, so background load affects both alike).
* ``sparse_speedup_50`` and ``sparse_vs_ideal`` (:func:`sparse_scaling`): the
  zero-skipping array (the configured array built with ``[zero_skipping]``,
  :func:`skipping_hardware`: the ``sparse`` preset for ``default``) runs the 128x128x128 exact-mode
  GEMM on A matrices of uniformly random density, once with ``skip_zeros`` off (dense)
  and once on, on the same hardware and the same A. ``sparse_speedup_50``: dense cycles /
  skipping cycles at 50% density. ``sparse_vs_ideal``: the lowest, over densities 10% ..
  100%, of ideal / measured skipping cycles, with ideal = non-zero MACs / the array's
  peak MACs per cycle, ``nnz(A) * n * q_issued / (R * C * P)``. Not applicable (both
  ``None``, ``sparse_not_applicable`` the reason: :func:`zero_skipping_not_applicable`)
  where the configuration cannot be built as the zero-skipping array, e.g. a PE design
  that needs the dense systolic array (``arithmetic.pe = "shared_shift"`` or ``"fused"``).
* ``paired_speedup`` (:func:`paired_scaling`): the configured array built with the paired
  mode (``arithmetic.paired``, :func:`paired_hardware`: the ``paired`` preset for
  ``default``) runs the same 128x128x128 GEMM (same A and B) in the exact mode and in
  the paired mode (symmetric windows of ``n / 2`` blocks); exact cycles / paired cycles,
  against the ideal 2.0 (two MACs per slot; ``paired_vs_ideal`` the ratio). The paired
  cycles do not depend on the data (hdl/scheduler.py). ``None``, with
  ``paired_not_applicable`` the reason, where the configuration cannot be built with it.

(Over 500 lines because it is one concept: the figures of ``qforge bench``, each measured
side by side against its baseline in one run, and their plots.)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np

from qforge.sim.model.spec import Config, ConfigError, load_preset, preset_names
from qforge.sim.model.capacity import tiles
from qforge.sim.model.cycles import (gemm_cycles, gemm_shape, issued_block_products,
                                     skipping_shape)
from qforge.sim.model.numerics import gemm, standard_modes, zero_operands
from qforge.sim.bench.stimulus import operand_range, random_operands, sparse_operands

__all__ = ["run_benchmark", "precision_table", "q_label", "emulator_ratio", "area_efficiency",
           "plot_precision_scaling",
           "skipping_hardware", "zero_skipping_not_applicable", "sparse_point", "sparse_scaling", "plot_sparse_scaling",
           "paired_hardware", "paired_not_applicable", "paired_scaling",
           "DENSE_SHAPE", "SPARSE_DENSITIES", "SPARSE_PLOT_DENSITIES",
           "SPARSE_RTL_DENSITIES", "SPARSE_SEED"]

#: The GEMM (m, n, depth) used for the utilization figures.
DENSE_SHAPE = (128, 128, 128)
#: Activation densities (fractions of non-zero A operands) of the zero-skipping figures:
#: ``sparse_vs_ideal`` is the worst over these.
SPARSE_DENSITIES = tuple(tenth / 10 for tenth in range(1, 11))
#: Lower densities measured for the plot only.
SPARSE_PLOT_DENSITIES = (0.01, 0.05)
#: Densities whose skipping cycles ``--rtl`` measures on the generated Verilog (with the
#: dense run at 50%); the others come from the cycle model.
SPARSE_RTL_DENSITIES = (0.1, 0.5, 1.0)
#: Seed of the sparse operands (each density draws from its own stream of it).
SPARSE_SEED = 0

_LOGGER = logging.getLogger(__name__)


def _rtl_cycles(config: Config, shape, precision, simulator, log) -> int:
    """Cycles of one GEMM on the generated Verilog (its results are checked too)."""
    from qforge.sim.bench.scenarios import Job

    rng = np.random.default_rng(0)
    m, n, depth = shape
    job = Job(random_operands(rng, (m, depth), *operand_range(config, precision.a), "uniform"),
              random_operands(rng, (depth, n), *operand_range(config, precision.b), "uniform"),
              precision)
    return _rtl_job_cycles(config, [job], simulator, log, name="bench")[0]


def _rtl_job_cycles(config: Config, jobs, simulator, log, *, name: str) -> list[int]:
    """Cycles of each of ``jobs`` (:class:`~qforge.sim.bench.scenarios.Job`), each run alone
    on an otherwise idle accelerator in one simulator run; results are checked too."""
    from qforge.sim.bench.rtl import build, run_scenario
    from qforge.sim.bench.scenarios import Scenario

    built = build(config, simulator, log=log)
    report = run_scenario(built, Scenario(list(jobs), isolated=True, timeout_cycles=100000),
                          name=name)
    return [group["cycles"] for group in report["jobs"]]


def q_label(block_products: int, issued_block_products: int) -> str:
    """A mode's q as the tables show it: ``q = La * Lb``, followed by the block products
    the PE design issues per MAC where they differ (the count every cycle and ideal
    figure uses; :func:`~qforge.sim.model.cycles.issued_block_products`).

    >>> q_label(4, 4), q_label(4, 16)
    ('4', '4 (issues 16)')
    """
    if issued_block_products == block_products:
        return str(block_products)
    return f"{block_products} (issues {issued_block_products})"


def precision_table(config: Config, shape=DENSE_SHAPE, *, rtl: bool = False,
                    simulator: str = "verilator",
                    log: Callable[[str], None] | None = None) -> list[dict]:
    """Per standard mode: ``block_products`` (the mode's q = La * Lb),
    ``issued_block_products`` (q_issued, those the PEs issue per MAC:
    :func:`~qforge.sim.model.cycles.issued_block_products`), cycles, ideal cycles,
    utilization, MACs/cycle/PE and the ideal ``P / q_issued``; cycles and ideals come
    from q_issued (:func:`~qforge.sim.model.cycles.gemm_shape`).

    ``log`` receives progress lines (default: this module's logger, at INFO level).
    """
    log = log or _LOGGER.info
    m, n, depth = shape
    rows = []
    for name, precision in standard_modes(config).items():
        command = gemm_shape(config, m, n, depth, precision)
        report = gemm_cycles(config, [command])
        cycles = (_rtl_cycles(config, shape, precision, simulator, log) if rtl
                  else report.total)
        pes = config.rows * config.cols
        macs_per_cycle = m * n * depth / (pes * cycles)
        ideal = config.block_multipliers / command.block_products
        rows.append({"mode": name, "precision": precision.describe(),
                     "block_products": precision.block_products,
                     "issued_block_products": command.block_products,
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


def sparse_point(config: Config, a, n: int, precision) -> dict:
    """Cycle-model figures of one ``a @ (depth x n)`` GEMM on a zero-skipping array:
    dense cycles (``skip_zeros`` off) and skipping cycles (on) on the same hardware and
    the same A, and the ideal: non-zero MACs / peak MACs per cycle,
    ``nnz(A) * n * q_issued / (R * C * P)`` (q_issued:
    :func:`~qforge.sim.model.cycles.issued_block_products`)."""
    if not config.zero_skipping:
        raise ValueError(f"configuration {config.name!r} has no [zero_skipping] section; "
                         "use config.with_zero_skipping()")
    a = np.asarray(a, dtype=np.int64)
    dense = gemm_cycles(config, [skipping_shape(config, a, n, precision, False)]).total
    sparse = gemm_cycles(config, [skipping_shape(config, a, n, precision, True)]).total
    computed = ~zero_operands(a, config, precision.a)
    nonzero = int(np.count_nonzero(computed))
    ideal = (nonzero * n * issued_block_products(config, precision)
             / config.peak_block_products_per_cycle)
    lanes = config.block_multipliers
    words = tiles(a.shape[1], lanes)
    padded = np.zeros((a.shape[0], words * lanes), dtype=bool)
    padded[:, :a.shape[1]] = computed
    zero_words = float((~padded.reshape(a.shape[0], words, lanes).any(axis=2)).mean())
    return {"nonzero": nonzero, "density": nonzero / a.size, "zero_words": zero_words,
            "dense_cycles": dense, "sparse_cycles": sparse, "model_dense_cycles": dense,
            "model_sparse_cycles": sparse, "ideal_cycles": ideal,
            "speedup": dense / sparse, "vs_ideal": ideal / sparse,
            "dense_source": "cycle model", "sparse_source": "cycle model"}


def _sparse_a(config: Config, shape, precision, density: float, seed: int,
              stream: int) -> np.ndarray:
    # One random stream per (seed, mode, density): adding a density or a mode never
    # changes the others' operands.
    rng = np.random.default_rng([seed, stream, round(density * 1000)])
    m, _, depth = shape
    return sparse_operands(rng, (m, depth), *operand_range(config, precision.a), density)


def skipping_hardware(config: Config) -> Config:
    """``config`` built as the zero-skipping array (itself if it already is one): the
    preset with that hardware where one exists (``default`` -> ``sparse``, so the bench
    shares its name and RTL build), else :meth:`Config.with_zero_skipping`.

    >>> from qforge.sim.model.spec import load_preset
    >>> skipping_hardware(load_preset("default")).name, skipping_hardware(load_preset("tiny")).name
    ('sparse', 'tiny_skipping')
    """
    hardware = config.with_zero_skipping()
    if hardware is config:
        return config
    for name in preset_names():
        preset = load_preset(name)
        if dataclasses.replace(preset, name=hardware.name) == hardware:
            return preset
    return hardware


def zero_skipping_not_applicable(config: Config) -> str | None:
    """Why the bench's zero-skipping figures do not apply to ``config``
    (:meth:`Config.zero_skipping_error`), or ``None`` where they do."""
    return config.zero_skipping_error()


def sparse_scaling(config: Config, shape=DENSE_SHAPE, *, densities=SPARSE_DENSITIES,
                   plot_densities=SPARSE_PLOT_DENSITIES, seed: int = SPARSE_SEED,
                   rtl: bool = False, rtl_densities=SPARSE_RTL_DENSITIES,
                   simulator: str = "verilator",
                   log: Callable[[str], None] | None = None) -> dict:
    """Zero-skipping figures of ``config`` built as the zero-skipping array
    (:func:`skipping_hardware`).

    Exact mode, ``shape`` = (m, n, depth); A of each density in ``densities`` (and
    ``plot_densities``, reported but left out of the figures) drawn by
    :func:`~qforge.sim.bench.stimulus.sparse_operands` (exactly ``round(density * m * depth)``
    non-zero operands at uniformly random positions, values uniform over the operand
    range without 0), B dense uniform. Per density: dense cycles (``skip_zeros`` off),
    skipping cycles (on), ideal cycles (:func:`sparse_point`). ``speedup_50``: dense /
    skipping cycles at 50% density (``0.5`` must be in ``densities``). ``vs_ideal``: the
    lowest ideal / skipping cycles over ``densities``. ``modes``: every standard mode at
    50% density; in modes with ``q < P`` a word of P operands costs one cycle unless all
    of them are zero, so the speedup there is the fraction of all-zero words, not 2.

    Cycles come from the cycle model (equal to the RTL's); with ``rtl``, the skipping
    cycles at ``rtl_densities`` and the dense cycles at 50% are measured on the
    generated Verilog in one simulator run (results checked), and each point says where
    its cycles came from. ``log`` receives progress lines (default: this module's
    logger, at INFO level).
    """
    log = log or _LOGGER.info
    hardware = skipping_hardware(config)
    if 0.5 not in densities:
        raise ValueError("densities must include 0.5 (sparse_speedup_50)")
    m, n, depth = shape
    modes = standard_modes(hardware)
    exact = modes["exact"]
    points, matrices = [], {}
    for density in sorted(set(densities) | set(plot_densities)):
        matrices[density] = a = _sparse_a(hardware, shape, exact, density, seed, 0)
        points.append({"target_density": density, "in_figures": density in densities}
                      | sparse_point(hardware, a, n, exact))

    rtl_equals_model = None
    if rtl:
        from qforge.sim.bench.scenarios import Job

        b = random_operands(np.random.default_rng([seed, 1 << 16]), (depth, n),
                            *operand_range(hardware, exact.b), "uniform")
        measured = [point for point in points if point["target_density"] in rtl_densities]
        half = next(point for point in points if point["target_density"] == 0.5)
        jobs = [Job(matrices[point["target_density"]], b, exact,
                    label=f"skip {point['target_density']:.0%}", skip_zeros=True)
                for point in measured]
        jobs.append(Job(matrices[0.5], b, exact, label="dense 50%", skip_zeros=False))
        log(f"measuring {len(jobs)} GEMMs of {m}x{n}x{depth} on {hardware.name}'s RTL "
            f"({simulator}) ...")
        cycles = _rtl_job_cycles(hardware, jobs, simulator, log, name="bench_sparse")
        for point, count in zip(measured, cycles):
            point["sparse_cycles"], point["sparse_source"] = count, f"rtl ({simulator})"
        half["dense_cycles"], half["dense_source"] = cycles[-1], f"rtl ({simulator})"
        for point in measured + [half]:
            point["speedup"] = point["dense_cycles"] / point["sparse_cycles"]
            point["vs_ideal"] = point["ideal_cycles"] / point["sparse_cycles"]
        rtl_equals_model = all(point["sparse_cycles"] == point["model_sparse_cycles"]
                               and point["dense_cycles"] == point["model_dense_cycles"]
                               for point in measured + [half])

    mode_rows = []
    for index, (name, precision) in enumerate(modes.items()):
        a = _sparse_a(hardware, shape, precision, 0.5, seed, index + 1)
        mode_rows.append({"mode": name, "precision": precision.describe(),
                          "block_products": precision.block_products,
                          "issued_block_products": issued_block_products(hardware,
                                                                         precision)}
                         | sparse_point(hardware, a, n, precision))

    in_figures = [point for point in points if point["in_figures"]]
    worst = min(in_figures, key=lambda point: point["vs_ideal"])
    half = next(point for point in points if point["target_density"] == 0.5)
    rtl_points = sorted(point["target_density"] for point in points
                        if point["sparse_source"] != "cycle model")
    source = ("cycle model (equal to RTL)" if not rtl_points else
              f"rtl ({simulator}) for skip on at "
              f"{', '.join(f'{d:.0%}' for d in rtl_points)} and skip off at 50%; "
              "cycle model (equal to RTL) elsewhere")
    return {
        "hardware": hardware.name,
        "array": f"{hardware.rows}x{hardware.cols}",
        "block_multipliers": hardware.block_multipliers,
        "pe_buffer_depth": hardware.pe_buffer_depth,
        "shape": [m, n, depth],
        "mode": "exact",
        "block_products": exact.block_products,
        "seed": seed,
        "workload": "A: exactly round(density * m * depth) non-zero operands at uniformly "
                    "random positions, values uniform over the operand range without 0; "
                    "B: dense uniform",
        "cycles_source": source,
        "rtl_equals_model": rtl_equals_model,
        "speedup_50": half["speedup"],
        "vs_ideal": worst["vs_ideal"],
        "vs_ideal_worst_density": worst["target_density"],
        "points": points,
        "modes": mode_rows,
    }


def paired_hardware(config: Config) -> Config:
    """``config`` built with the paired mode (itself if it already is): the preset with
    that hardware where one exists (``default`` -> ``paired``, so the bench shares its
    name and RTL build), else ``<name>_paired`` (a :class:`~qforge.sim.model.spec.
    ConfigError` where the design cannot have it: :func:`paired_not_applicable`).

    >>> from qforge.sim.model.spec import load_preset
    >>> paired_hardware(load_preset("default")).name
    'paired'
    """
    if config.paired:
        return config
    hardware = dataclasses.replace(config, name=f"{config.name}_paired", paired=True)
    for name in preset_names():
        preset = load_preset(name)
        if dataclasses.replace(preset, name=hardware.name) == hardware:
            return preset
    return hardware


def paired_not_applicable(config: Config) -> str | None:
    """Why ``config`` cannot be built with the paired mode (the configuration's own
    error, e.g. a PE design whose lanes share positions), or ``None``.

    >>> from qforge.sim.model.spec import load_preset
    >>> paired_not_applicable(load_preset("default")) is None
    True
    >>> print(paired_not_applicable(load_preset("tiny")))   # doctest: +ELLIPSIS
    arithmetic.block_multipliers = 1: with arithmetic.paired must be even ...
    """
    try:
        paired_hardware(config)
    except ConfigError as error:
        return str(error)
    return None


def paired_scaling(config: Config, shape=DENSE_SHAPE, *, rtl: bool = False,
                   simulator: str = "verilator",
                   log: Callable[[str], None] | None = None) -> dict:
    """The paired mode's speedup on ``config`` built with it (:func:`paired_hardware`):
    one ``shape`` GEMM (A and B uniform over the signed operand range, seed 0) in the
    exact mode and in the paired mode with symmetric windows of ``max(1, n // 2)``
    blocks, RAW; ``speedup`` = exact / paired cycles, ``vs_ideal`` = speedup / 2. Cycles
    from the cycle model, or with ``rtl`` both measured on the generated Verilog in one
    simulator run (results checked; ``rtl_equals_model`` says whether both equal the
    model's). ``modes``: the model's paired cycles for every window option of ``n``."""
    from qforge.sim.model.numerics import OperandPrecision, Precision
    from qforge.sim.model.paired import PairedPrecision

    log = log or _LOGGER.info
    hardware = paired_hardware(config)
    m, n, depth = shape
    blocks = hardware.blocks
    exact = standard_modes(hardware)["exact"]

    def paired(high, low):
        return Precision(OperandPrecision(blocks, blocks,
                                          paired=PairedPrecision(high, low)), exact.b)

    half = max(1, blocks // 2)
    mode = paired(half, half)
    model = [gemm_cycles(hardware, [gemm_shape(hardware, m, n, depth, precision)]).total
             for precision in (exact, mode)]
    cycles, source, equal = model, "cycle model", None
    if rtl:
        from qforge.sim.bench.scenarios import Job
        rng = np.random.default_rng(0)
        a = random_operands(rng, (m, depth), *operand_range(hardware, exact.a), "uniform")
        b = random_operands(rng, (depth, n), *operand_range(hardware, exact.b), "uniform")
        log(f"paired mode: exact and paired {m}x{n}x{depth} GEMMs on {hardware.name}'s RTL")
        cycles = _rtl_job_cycles(hardware, [Job(a, b, exact), Job(a, b, mode)], simulator,
                                 log, name="bench_paired")
        source, equal = f"rtl ({simulator})", cycles == model
    modes = []
    for high in range(1, blocks):
        for low in range(1, min(high, blocks - high) + 1):
            precision = paired(high, low)
            modes.append({"mode": precision.a.paired.describe(),
                          "model_cycles": gemm_cycles(hardware, [gemm_shape(
                              hardware, m, n, depth, precision)]).total})
    return {"hardware": hardware.name, "array": f"{hardware.rows}x{hardware.cols}",
            "shape": [m, n, depth], "paired_mode": mode.a.paired.describe(),
            "exact_cycles": cycles[0], "paired_cycles": cycles[1],
            "model_exact_cycles": model[0], "model_paired_cycles": model[1],
            "speedup": cycles[0] / cycles[1], "ideal": 2.0,
            "vs_ideal": cycles[0] / cycles[1] / 2.0, "cycles_source": source,
            "rtl_equals_model": equal, "modes": modes}


def area_efficiency(config: Config, *, log: Callable[[str], None] | None = None) -> dict:
    """Throughput per area of ``config``'s PE against the FxP8 baseline
    (:data:`qforge.fpga.pe_area.BASELINE`, one exact 8x8 MAC per PE per cycle): MACs per
    cycle per transistor of the generic CMOS estimate of the interior PE
    (:func:`qforge.fpga.pe_area.pe_area`, Yosys, seconds per PE, cached in build/area),
    relative to the baseline's, for the exact mode and for the 4-bit mode (the standard
    ``reduced`` mode, 4x4 magnitude bits; ``None`` where the configuration has none),
    both from :func:`qforge.fpga.pe_area.throughput_table` (``per_area``)."""
    from qforge.fpga.pe_area import BASELINE, pe_area, throughput_table

    baseline = pe_area(load_preset(BASELINE), families=(), log=log)
    area = baseline if config == baseline.config else pe_area(config, families=(), log=log)
    rows = throughput_table([area], baseline)
    exact = next(row for row in rows if row["mode"] == "exact")
    four_bit = next((row for row in rows if row["mode"] == "reduced"
                     and row["bits"] == "4x4"), None)
    return {"baseline": BASELINE,
            "pe_transistors": area.pe_cmos.transistors,
            "baseline_pe_transistors": baseline.pe_cmos.transistors,
            "exact": exact["per_area"],
            "four_bit": None if four_bit is None else four_bit["per_area"],
            "four_bit_block_products": None if four_bit is None
            else four_bit["block_products"]}


def run_benchmark(config: Config, *, rtl: bool = False,
                  log: Callable[[str], None] | None = None) -> dict:
    """All figures of ``qforge bench`` for one configuration, in one run. ``log``
    receives progress lines (default: this module's logger, at INFO level).

    Where the configuration cannot be built as the zero-skipping array
    (:func:`zero_skipping_not_applicable`), ``sparse_not_applicable`` is the reason and
    ``sparse``, ``sparse_speedup_50`` and ``sparse_vs_ideal`` are ``None`` (every other
    figure is measured); else ``sparse_not_applicable`` is ``None``."""
    log = log or _LOGGER.info
    table = precision_table(config, rtl=rtl, log=log)
    exact = next(row for row in table if row["mode"] == "exact")
    not_applicable = zero_skipping_not_applicable(config)
    sparse = None if not_applicable else sparse_scaling(config, rtl=rtl, log=log)
    paired_reason = paired_not_applicable(config)
    paired = None if paired_reason else paired_scaling(config, rtl=rtl, log=log)
    emulator = emulator_ratio(config)
    area = area_efficiency(config, log=log)
    return {
        "config": config.name,
        "array": f"{config.rows}x{config.cols}",
        "block_multipliers": config.block_multipliers,
        "cycles_source": "rtl (verilator)" if rtl else "cycle model (equal to RTL, tests/sim/bench/test_rtl.py)",
        "dense_shape": list(DENSE_SHAPE),
        "dense_utilization": exact["utilization"],
        "precision_speedup_vs_ideal": min(row["speedup_vs_ideal"] for row in table),
        "emulator_vs_float32": emulator["ratio"],
        "sparse_speedup_50": None if sparse is None else sparse["speedup_50"],
        "sparse_vs_ideal": None if sparse is None else sparse["vs_ideal"],
        "sparse_not_applicable": not_applicable,
        "paired_speedup": None if paired is None else paired["speedup"],
        "paired_vs_ideal": None if paired is None else paired["vs_ideal"],
        "paired_not_applicable": paired_reason,
        "area_efficiency_exact": area["exact"],
        "area_efficiency_4bit": area["four_bit"],
        "modes": table,
        "emulator": emulator,
        "sparse": sparse,
        "paired": paired,
        "area": area,
    }


def plot_precision_scaling(result: dict, path) -> None:
    """Bar chart of measured MACs per PE per cycle against the ideal ``P / q_issued`` for
    every mode of a :func:`run_benchmark` result, with the utilization over each pair
    (a mode whose PEs issue more than its q is labelled with both)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["modes"]
    names = [f"{row['mode']}\nq="
             f"{q_label(row['block_products'], row['issued_block_products'])}"
             for row in rows]
    positions = np.arange(len(rows))
    figure, axes = plt.subplots(figsize=(8, 4.2), layout="constrained")
    axes.bar(positions - 0.2, [row["ideal_macs_per_pe_cycle"] for row in rows], 0.4,
             label="ideal P/q (q issued per MAC)", color="#c8c8c8")
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


def plot_sparse_scaling(result: dict, path) -> None:
    """Cycles against A density of a :func:`run_benchmark` result (or of its
    ``"sparse"`` part, :func:`sparse_scaling`): ``skip_zeros`` on, off (flat) and the
    ideal line (non-zero MACs / peak), annotated with the speedup at 50% and, per mode,
    the speedup at 50%."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sparse = result.get("sparse", result)
    points = sparse["points"]
    x = [100 * point["target_density"] for point in points]
    figure, axes = plt.subplots(figsize=(8, 4.8), layout="constrained")
    axes.plot(x, [point["dense_cycles"] for point in points], color="#888888",
              linestyle="--", label="skip_zeros off (dense)")
    axes.plot([0] + x, [0] + [point["ideal_cycles"] for point in points], color="#c05621",
              linestyle=":", label="ideal: non-zero MACs / peak")
    axes.plot(x, [point["sparse_cycles"] for point in points], color="#2b6cb0",
              marker="o", markersize=4, label="skip_zeros on (cycle model)")
    measured = [point for point in points if point["sparse_source"] != "cycle model"]
    if measured:
        axes.plot([100 * point["target_density"] for point in measured],
                  [point["sparse_cycles"] for point in measured], linestyle="none",
                  marker="s", markersize=8, markerfacecolor="none", color="#2f855a",
                  label=f"skip_zeros on, measured ({measured[0]['sparse_source']})")
    half = next(point for point in points if point["target_density"] == 0.5)
    axes.annotate(f"{half['speedup']:.2f}x fewer cycles at 50%\n"
                  f"ideal/measured >= {sparse['vs_ideal']:.3f} over 10..100%",
                  (50, half["sparse_cycles"]), xytext=(58, 0.36 * half["dense_cycles"]),
                  fontsize=8, arrowprops={"arrowstyle": "->", "color": "#444444"})
    modes = "\n".join(f"{row['mode']:16s} q={row['block_products']:<2d} "
                      f"{row['speedup']:.2f}x" for row in sparse["modes"])
    note = (f"\n(q < P={sparse['block_multipliers']}: a word of P operands is skipped "
            "only if all are zero)")
    axes.text(0.02, 0.74, "speedup at 50% per mode\n" + modes + note,
              transform=axes.transAxes,
              va="top", fontsize=7, family="monospace",
              bbox={"facecolor": "white", "edgecolor": "#cccccc"})
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 1.2 * max(point["dense_cycles"] for point in points))
    axes.set_xlabel("A density (% non-zero operands)")
    axes.set_ylabel("cycles")
    m, n, depth = sparse["shape"]
    axes.set_title(f"qforge {sparse['hardware']} ({sparse['array']}, P="
                   f"{sparse['block_multipliers']}): {m}x{n}x{depth} {sparse['mode']} GEMM, "
                   "zero skipping")
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
