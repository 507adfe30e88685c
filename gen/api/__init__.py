"""qforge's stable public API (installed as ``qforge.api``; the source lives in gen/api/).

The few things a user needs, as thin functions over the internals (the golden model in
:mod:`qforge.sim.model`, the generator, the runtime and its backends):

* configurations: :func:`load_config` (a preset or a TOML spec), :func:`preset_names`;
* Verilog: :func:`generate` (and :func:`lint`);
* one GEMM on a backend (``golden``, ``rtl``, ``board``): :func:`gemm`, in a
  :class:`Precision` (:func:`precision` names the standard modes) with an optional
  output stage (:class:`OutputParameters`); :func:`open_board` connects to a board;
* programs: :func:`assemble` / :func:`assemble_file` and :class:`Runtime`, which runs
  them on a backend;
* training: :func:`train`.

Every mistake in the input raises a :class:`QforgeError` (for example
:class:`ConfigError`, :class:`OperandError`, :class:`BackendError`) whose message names
the value and what is allowed.

>>> import numpy as np
>>> config = load_config("tiny")
>>> a = np.array([[1, -2, 3], [4, 5, -6]])
>>> b = np.array([[7, 8], [9, 10], [11, -12]])
>>> run = gemm(config, a, b)                       # exact mode, raw accumulators
>>> run.result.tolist(), run.cycles_source
([[22, -48], [7, 154]], 'model')
>>> gemm(config, a, b, output=OutputParameters(shift=2, relu=True)).result.tolist()
[[6, 0], [2, 38]]
>>> gemm(config, a * 100, b)
Traceback (most recent call last):
...
qforge.sim.model.errors.OperandError: a[0, 1] = -200: out of range for 2 blocks of 4 bits; allowed -128 .. 127
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qforge.gen.asm import AsmError, Program, assemble, assemble_file
from qforge.sim.model.errors import InputError, QforgeError
from qforge.sim.model.numerics import (OperandError, OperandPrecision, Precision, Selection,
                                       standard_modes)
from qforge.sim.model.paired import PairedPrecision, WindowRounding
from qforge.sim.model.quantize import OutputParameters, Rounding
from qforge.sim.model.spec import Config, ConfigError, load_preset, load_spec, preset_names
from qforge.sim.runtime import BACKENDS, BackendError, RunReport, Runtime

__all__ = [
    # configurations
    "Config", "load_config", "preset_names",
    # Verilog
    "generate", "lint",
    # one GEMM
    "Precision", "OperandPrecision", "Selection", "PairedPrecision", "WindowRounding",
    "precision", "OutputParameters",
    "Rounding", "GemmResult", "gemm", "open_board",
    # programs
    "Program", "assemble", "assemble_file", "Runtime", "RunReport", "BACKENDS",
    # training
    "train",
    # errors
    "QforgeError", "ConfigError", "OperandError", "AsmError", "BackendError", "InputError",
]


def _check_config(where: str, config) -> None:
    """``config`` must be a :class:`Config`; anything else is one :class:`InputError`."""
    if not isinstance(config, Config):
        raise InputError(f"{where}: config = {config!r}: must be a Config "
                         f"(qforge.api.load_config), not {type(config).__name__}")


def load_config(preset: str | None = None, *, spec: str | Path | None = None) -> Config:
    """The configuration of a built-in ``preset`` or of a TOML ``spec`` file (give
    exactly one); raises :class:`ConfigError` naming the bad key or file.

    >>> config = load_config("default")
    >>> config.rows, config.cols, config.operand_width
    (8, 8, 8)
    >>> load_config("huge")
    Traceback (most recent call last):
    ...
    qforge.sim.model.spec.ConfigError: preset = 'huge': unknown preset; allowed: default, fused, fxp8, large, paired, shared, sparse, tiny, ulx3s
    >>> load_config()
    Traceback (most recent call last):
    ...
    qforge.sim.model.spec.ConfigError: load_config: give a preset name or spec=FILE.toml, not both or neither
    """
    if (preset is None) == (spec is None):
        raise ConfigError("load_config: give a preset name or spec=FILE.toml, not both or "
                          "neither")
    return load_preset(preset) if spec is None else load_spec(Path(spec))


def generate(config: Config, directory: str | Path, *, programmable: bool = False):
    """Write ``config``'s Verilog and manifest into ``directory`` (created if missing):
    ``qforge_top.v`` (module ``qforge_top``), or with ``programmable`` ``qforge_core.v``
    (the accelerator with its instruction decoder), and ``manifest.json``. Returns the
    :class:`qforge.gen.generate.Design` (paths and the Verilog's fingerprint)."""
    from qforge.gen.generate import generate as write_design

    _check_config("generate", config)
    return write_design(config, directory, programmable=programmable)


def lint(verilog: str | Path) -> list[str]:
    """``verilator --lint-only -Wall`` with qforge's waivers on a Verilog file: the
    warnings not waived (empty: clean)."""
    from qforge.gen.generate import lint as lint_verilog

    return lint_verilog(verilog)


def precision(config: Config, mode: str = "exact") -> Precision:
    """A standard precision mode of ``config`` by name (``exact``, ``reduced``,
    ``mixed``, ``approx_static``, ``approx_dynamic``, ``approx_dynamic_1``).

    >>> precision(load_config("default"), "mixed").describe()
    'A: 4 blocks; B: 2 blocks'
    """
    _check_config("precision", config)
    modes = standard_modes(config)
    if not isinstance(mode, str) or mode not in modes:
        raise ConfigError(f"mode = {mode!r}: allowed: {', '.join(modes)}")
    return modes[mode]


@dataclass(frozen=True)
class GemmResult:
    """What :func:`gemm` returns."""

    result: np.ndarray      #: the ``M x N`` int64 result (output operands or accumulators)
    cycles: int             #: from the first command cycle to the last result beat
    cycles_source: str      #: "rtl": measured in simulation; "model": the cycle model
    backend: str            #: where it ran: golden, rtl or board


def gemm(config: Config, a, b, mode: Precision | None = None, *,
         output: OutputParameters | None = None, skip_zeros: bool = False,
         backend: str = "golden", board=None, simulator: str = "verilator",
         log=None) -> GemmResult:
    """``a @ b`` (``M x D`` by ``D x N`` integers) as ``config``'s accelerator computes it
    in one command, in precision ``mode`` (a :class:`Precision`, or a mode's name as
    :func:`precision` takes it; default: exact), through the output stage ``output``
    (None: raw accumulators); ``skip_zeros`` (zero-skipping configurations) skips zero
    A operands.

    ``backend``: ``golden`` (the golden model; cycles from the cycle model), ``rtl``
    (the generated Verilog of the stream top in Verilator, through the cocotb bench,
    which also checks every result beat against the golden model; cycles measured) or
    ``board`` (``board``: a connected :class:`qforge.fpga.host.Board`, see
    :func:`open_board`; cycles from the cycle model). ``log``: progress messages of the
    RTL build (None: quiet).

    Raises :class:`OperandError` for operands or settings the hardware cannot take (the
    message names the operand or field, the value and what is allowed).
    """
    from qforge.sim.host.packing import GemmJob

    if backend not in BACKENDS:
        raise BackendError(f"backend = {backend!r}: allowed: {', '.join(BACKENDS)}")
    if backend == "board" and board is None:
        raise BackendError("backend = 'board' needs board= a connected Board "
                           "(qforge.api.open_board)")
    _check_config("gemm", config)
    if mode is None or isinstance(mode, str):
        mode = precision(config, mode or "exact")
    elif not isinstance(mode, Precision):
        raise OperandError(f"mode = {mode!r}: must be a Precision or a mode name "
                           f"({', '.join(standard_modes(config))})")
    try:
        job = GemmJob.build(config, a, b, mode, output=output, skip_zeros=skip_zeros)
    except OperandError:
        raise
    except ValueError as error:
        # Precision.validate, OutputParameters.validate and packing.command_bits report
        # settings out of range as plain ValueError: user errors here.
        raise OperandError(str(error)) from None
    if backend == "rtl":
        result, cycles = _run_on_rtl(job, simulator, log)
        return GemmResult(result, cycles, "rtl", backend)
    result = job.expected if backend == "golden" else board.run(job)
    return GemmResult(np.asarray(result, dtype=np.int64), _model_cycles(job), "model",
                      backend)


def _model_cycles(job) -> int:
    """The cycle model's count for one GEMM job alone on an idle accelerator."""
    from qforge.sim.model.cycles import gemm_cycles, gemm_shape, skipping_shape

    if job.skip_zeros:
        shape = skipping_shape(job.config, job.a, job.b.shape[1], job.precision, True)
    else:
        shape = gemm_shape(job.config, job.a.shape[0], job.b.shape[1], job.a.shape[1],
                           job.precision)
    return gemm_cycles(job.config, [shape]).total


def _run_on_rtl(job, simulator: str, log) -> tuple[np.ndarray, int]:
    """Run one GEMM alone on the generated Verilog (built once, cached under build/rtl):
    ``(result, measured cycles)``. The bench checks every beat against the golden model
    (a difference raises :class:`qforge.sim.bench.rtl.ScenarioFailed`)."""
    import os

    from qforge.sim.bench.rtl import build, run_scenario
    from qforge.sim.bench.scenarios import Job, Scenario

    if job.output is not None and job.output.wide:
        # The bench's scenario files do not carry output.wide (Scenario.save).
        raise BackendError("output.wide: the rtl backend's bench cannot run wide outputs "
                           "yet; use the golden backend")
    built = build(job.config, simulator, log=log or (lambda message: None))
    scenario = Scenario([Job(job.a, job.b, job.precision, "gemm", job.output,
                             job.skip_zeros)],
                        isolated=True, record=True,
                        timeout_cycles=2 * _model_cycles(job) + 10000)
    report = run_scenario(built, scenario, name=f"gemm-{os.getpid()}")
    return (np.asarray(report["results"][0], dtype=np.int64),
            int(report["jobs"][0]["cycles"]))


def open_board(config: Config, port: str, *, baud_rate: int | None = None,
               timeout: float = 1.0, retries: int = 3, log=None):
    """A :class:`qforge.fpga.host.Board` for a board built from ``config`` on serial
    ``port`` (needs pyserial), or, with ``port="loopback"``, on the link's pure-Python
    model of a board (no hardware). Use it as a context manager, or call ``close()``."""
    from qforge.fpga.host import DEFAULT_BAUD_RATE, Board, SerialTransport

    _check_config("open_board", config)
    if not isinstance(port, str) or not port:
        raise InputError(f"open_board: port = {port!r}: must be a serial port name (such as "
                         f"/dev/ttyUSB0) or \"loopback\"")
    baud_rate = baud_rate or DEFAULT_BAUD_RATE
    if port == "loopback":
        from qforge.fpga.board_model import BoardModel
        from qforge.fpga.loopback import LoopbackTransport

        transport = LoopbackTransport(BoardModel(config), bytes_per_second=baud_rate / 10)
    else:
        transport = SerialTransport(port, baud_rate)
    return Board(transport, config, timeout=timeout, retries=retries, log=log)


def train(config: str | Path | None = None, *, epochs: int | None = None,
          backend: str | None = None, check: bool = False, jobs: int = 1,
          log=None) -> dict:
    """Train the MLP on digits once per hardware configuration of the training config
    ``config`` (a TOML file; default gen/train/digits.toml, or gen/train/rtl.toml with a
    ``backend``) and return the report (curves and final figures per configuration).

    Without ``backend`` every GEMM runs on the bit-exact emulator; ``backend``
    (``golden`` or ``rtl``) runs the ``update = "hardware"`` configurations as programs
    on that runtime backend (``check``: compare the rtl backend's memory with the golden
    machine's after every program). ``jobs``: worker processes (results do not depend
    on it)."""
    from qforge.sim.training import load_train_config, rtl_config_path, train_all

    if config is None and backend is not None:
        config = rtl_config_path()
    return train_all(load_train_config(config), epochs=epochs, jobs=jobs, backend=backend,
                     check=check, log=log)
