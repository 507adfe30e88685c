"""One Python API to run qforge programs, on three backends.

>>> from qforge.sim.model.spec import load_preset
>>> from qforge.gen.asm import assemble
>>> runtime = Runtime(load_preset("tiny"), "golden", memory_size=12)
>>> runtime.write(0, np.array([[1, 2], [3, 4]])); runtime.write(4, np.eye(2, dtype=int))
>>> report = runtime.run(assemble('''
...     load a, 0, stride=2
...     load b, 4, stride=2
...     store 8, stride=2
...     gemm 2, 2, 2'''))
>>> runtime.read(8, (2, 2)).tolist(), report.error
([[1, 2], [3, 4]], False)

A :class:`Runtime` owns the host memory (a flat int64 array, the memory side of
docs/ISA.md) and a backend that executes instruction words on it:

* ``golden``: :class:`GoldenBackend`, the golden machine (:mod:`qforge.sim.model.machine`);
* ``rtl``: :class:`RtlBackend`, the generated Verilog of :class:`qforge.hdl.core.Core`
  in Verilator (or Icarus) through cocotb, with the data mover feeding its ports;
* ``board``: :class:`BoardBackend`, a board running the accelerator behind its UART
  link (:class:`qforge.fpga.host.Board`; or the link's Python model for tests).

Registers and the sticky error persist from one :meth:`Runtime.run` to the next on
every backend, as in hardware; :meth:`Runtime.reset` clears them.
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qforge.sim.model.errors import QforgeError
from qforge.sim.model.spec import Config
from qforge.sim.model.machine import Machine, MachineError

__all__ = ["Runtime", "RunReport", "GoldenBackend", "RtlBackend", "BoardBackend",
           "BackendError", "BACKENDS"]

#: Backend names :class:`Runtime` accepts.
BACKENDS = ("golden", "rtl", "board")


class BackendError(QforgeError, RuntimeError):
    """A backend failed: the simulator stopped, the hardware hung, or the data mover
    met memory it cannot execute (the message says which)."""


@dataclass
class RunReport:
    """What one :meth:`Runtime.run` did."""

    error: bool                     #: the sticky error after the program
    gemms: int                      #: valid GEMMs executed
    cycles: int | None = None       #: simulated cycles (rtl backend), else None
    wall_seconds: float = 0.0
    details: dict = field(default_factory=dict)


def _words(program) -> list[int]:
    words = getattr(program, "words", program)
    return [int(word) for word in words]


class GoldenBackend:
    """The golden machine: every instruction as :mod:`qforge.sim.model.machine` defines it."""

    name = "golden"

    def __init__(self, config: Config):
        self.config = config
        self.machine = Machine(config, memory_size=0)

    def run(self, words: list[int], memory: np.ndarray) -> RunReport:
        self.machine.memory = memory
        before = self.machine.gemms
        try:
            self.machine.run(words)
        except MachineError as error:
            raise BackendError(str(error)) from None
        return RunReport(self.machine.error, self.machine.gemms - before)

    def reset(self) -> None:
        self.machine.reset_registers()

    def close(self) -> None:
        pass


def _write_message(fd: int, message) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = struct.pack("<Q", len(body)) + body
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exact(fd: int, count: int, alive) -> bytes:
    chunks = []
    while count:
        chunk = os.read(fd, count)
        if not chunk:
            if not alive():
                raise BackendError("the simulator stopped (see its sim.log)")
            time.sleep(0.01)
            continue
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


class RtlBackend:
    """The generated Verilog of :class:`qforge.hdl.core.Core`, simulated with cocotb.

    Builds the design (cached in ``build/rtl/``), starts the simulator once with the
    program server :mod:`qforge.sim.bench.cocotb_core` and sends it each program with the
    memory; the hardware's results come back in the memory. ``stall`` > 0 adds random
    stalls on every port (for tests; cycle counts then include them). ``log`` receives
    the build's progress lines (default: :mod:`qforge.sim.bench.rtl`'s logger, at INFO
    level).
    """

    name = "rtl"

    def __init__(self, config: Config, *, simulator: str = "verilator",
                 build_root: Path | None = None, stall: float = 0.0, seed: int = 0,
                 timeout_cycles: int = 200000, log: Callable[[str], None] | None = None):
        from qforge.sim.bench.rtl import build

        self.config = config
        self.stall, self.seed, self.timeout_cycles = stall, seed, timeout_cycles
        self.built = build(config, simulator, root=build_root, programmable=True, log=log)
        self._directory = Path(tempfile.mkdtemp(prefix="server-",
                                                dir=self.built.build_dir))
        requests, replies = self._directory / "requests", self._directory / "replies"
        os.mkfifo(requests)
        os.mkfifo(replies)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, args=(requests, replies),
                                        daemon=True)
        self._thread.start()
        # Opening a FIFO blocks until the other end opens it: poll, so that a simulator
        # that fails to start is reported instead of hanging here.
        self._requests = self._open(requests, os.O_WRONLY)
        self._replies = self._open(replies, os.O_RDONLY)
        self._runs = 0

    def _serve(self, requests: Path, replies: Path) -> None:
        from qforge.sim.bench.rtl import _run_cocotb

        try:
            _run_cocotb(self.built, "qforge.sim.bench.cocotb_core", self._directory,
                        {"QFORGE_REQUESTS": str(requests), "QFORGE_REPLIES": str(replies)})
        except BaseException as error:      # reported by the next request
            self._failure = error

    def _alive(self) -> bool:
        return self._thread.is_alive()

    def _open(self, path: Path, flags: int) -> int:
        deadline = time.monotonic() + 300
        while True:
            try:
                fd = os.open(path, flags | os.O_NONBLOCK)
                os.set_blocking(fd, True)
                return fd
            except OSError:
                pass
            if not self._alive() or time.monotonic() > deadline:
                raise BackendError(f"the simulator did not start (see "
                                    f"{self._directory / 'sim.log'}): {self._failure}")
            time.sleep(0.05)

    def _request(self, message) -> dict:
        if not self._alive():
            raise BackendError(f"the simulator has stopped (see "
                                f"{self._directory / 'sim.log'})")
        _write_message(self._requests, message)
        (length,) = struct.unpack("<Q", _read_exact(self._replies, 8, self._alive))
        return pickle.loads(_read_exact(self._replies, length, self._alive))

    def run(self, words: list[int], memory: np.ndarray) -> RunReport:
        reply = self._request({"op": "run", "words": words, "memory": memory,
                               "stall": self.stall, "seed": self.seed + self._runs,
                               "timeout_cycles": self.timeout_cycles})
        self._runs += 1
        if "exception" in reply:
            raise BackendError(f"rtl backend: {reply['exception']}")
        if reply["hang"]:
            raise BackendError(f"rtl backend: the hardware hung: {reply['hang']}")
        if reply["errors"]:
            raise BackendError(f"rtl backend: bad result stream: {reply['errors'][:3]}")
        memory[:] = reply["memory"]
        return RunReport(reply["error"], reply["gemms"], reply["cycles"],
                         details={"idle": reply["idle"]})

    def reset(self) -> None:
        self._request({"op": "reset"})

    def close(self) -> None:
        """End the simulator; its folder (logs, pipes) is removed unless it failed."""
        clean = self._alive()
        if clean:
            try:
                _write_message(self._requests, {"op": "quit"})
            except OSError:
                clean = False
            self._thread.join(timeout=60)
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        if clean and self._failure is None and not self._thread.is_alive():
            shutil.rmtree(self._directory, ignore_errors=True)


class BoardBackend:
    """A board with the accelerator behind its UART link (:class:`qforge.fpga.host.
    Board`).

    The boards' link carries accelerator *commands*, not instruction words (the board
    tops predate the decoder), so this backend decodes the program on the host with
    the golden machine's rules (``compute=False``, the same rules as the decoder),
    runs every valid GEMM on the board with :meth:`Board.gemm` and applies the addend
    step (:func:`qforge.sim.model.machine.add_saturate`) on the host. Register instructions
    and the sticky error are the host's. Results are the board's.
    """

    name = "board"

    def __init__(self, config: Config, board):
        self.config = config
        self.board = board
        self.machine = Machine(config, memory_size=0, compute=False)

    def run(self, words: list[int], memory: np.ndarray) -> RunReport:
        from qforge.sim.model.machine import add_saturate

        machine = self.machine
        machine.memory = memory
        gemms = 0
        for word in words:
            plan = machine.step(word)
            if plan is None:
                continue
            a, b, addend = machine.operands(plan)
            values = self.board.gemm(a, b, plan.precision, output=plan.output)
            if addend is not None:
                values = add_saturate(addend, values, plan.saturate_bits)
            machine.write(plan.store, np.asarray(values, dtype=np.int64),
                          f"GEMM {plan.index}: result")
            gemms += 1
        return RunReport(machine.error, gemms)

    def reset(self) -> None:
        self.machine.reset_registers()

    def close(self) -> None:
        pass


class Runtime:
    """Host memory plus a backend: write operands, run programs, read results.

    ``backend``: a name from :data:`BACKENDS` (``board`` needs ``board=`` a
    :class:`qforge.fpga.host.Board`) or a backend object. Extra keyword arguments go to
    the backend's constructor.
    """

    def __init__(self, config: Config, backend="golden", *, memory_size: int = 0,
                 **options):
        self.config = config
        self.memory = np.zeros(memory_size, dtype=np.int64)
        if isinstance(backend, str):
            if backend not in BACKENDS:
                raise ValueError(f"backend = {backend!r}: allowed: {', '.join(BACKENDS)}")
            backend = {"golden": GoldenBackend, "rtl": RtlBackend,
                       "board": BoardBackend}[backend](config, **options)
        self.backend = backend
        self.cycles = 0
        self.runs = 0
        self.error = False

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resize(self, memory_size: int) -> None:
        """Grow the memory to at least ``memory_size`` elements (contents kept)."""
        if memory_size > len(self.memory):
            grown = np.zeros(memory_size, dtype=np.int64)
            grown[:len(self.memory)] = self.memory
            self.memory = grown

    def write(self, address: int, values) -> None:
        """Store ``values`` (any shape, row-major) from ``address`` on."""
        flat = np.asarray(values, dtype=np.int64).ravel()
        if address < 0 or address + flat.size > len(self.memory):
            raise ValueError(f"write of {flat.size} elements at {address}: memory has "
                             f"{len(self.memory)} elements")
        self.memory[address:address + flat.size] = flat

    def read(self, address: int, shape) -> np.ndarray:
        """A copy of the elements from ``address`` on, in ``shape`` (row-major)."""
        count = int(np.prod(shape))
        if address < 0 or address + count > len(self.memory):
            raise ValueError(f"read of {count} elements at {address}: memory has "
                             f"{len(self.memory)} elements")
        return self.memory[address:address + count].reshape(shape).copy()

    def run(self, program) -> RunReport:
        """Execute a program (an assembled :class:`qforge.gen.asm.Program` or instruction
        words) on the backend."""
        started = time.monotonic()
        report = self.backend.run(_words(program), self.memory)
        report.wall_seconds = time.monotonic() - started
        self.runs += 1
        self.cycles += report.cycles or 0
        self.error = report.error
        return report

    def reset(self) -> None:
        """Registers and the sticky error back to their reset values (memory kept)."""
        self.backend.reset()
        self.error = False

    def close(self) -> None:
        self.backend.close()
