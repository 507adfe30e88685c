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

Every argument is checked before anything runs, and a bad one raises one
:class:`~qforge.sim.model.errors.InputError` naming the argument, the value and what is
allowed. Addresses, sizes, shapes and instruction words must be exact integers (``int``
or a numpy integer; ``bool`` and floats are refused, even integral ones such as
``2.0``: nothing is rounded or truncated), and the values written must be an integer
array (a numpy integer array or nested lists of ints within int64):

>>> runtime.write(0, [1.7])
Traceback (most recent call last):
...
qforge.sim.model.errors.InputError: Runtime.write: values = [1.7]: must be integers (int or a numpy integer array), not floats
>>> runtime.read(0, (-1, 2))
Traceback (most recent call last):
...
qforge.sim.model.errors.InputError: Runtime.read: shape = (-1, 2): each dimension must be an integer >= 0
"""

from __future__ import annotations

import inspect
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

from qforge.sim.model.errors import InputError, QforgeError, shown
from qforge.sim.model.spec import Config
from qforge.sim.model.machine import MEMORY_DTYPE, Machine, MachineError

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


def _is_integer(value) -> bool:
    """An exact integer: a Python ``int`` or a numpy integer, not a ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _integer(where: str, name: str, value, minimum: int = 0) -> int:
    """``value`` as an ``int`` if it is an exact integer >= ``minimum``, else one
    :class:`InputError` naming ``where``, ``name`` and ``value``."""
    if not _is_integer(value):
        raise InputError(f"{where}: {name} = {value!r}: must be an integer >= {minimum} "
                         f"(int or numpy integer), not {type(value).__name__}")
    if value < minimum:
        raise InputError(f"{where}: {name} = {value!r}: must be an integer >= {minimum}")
    return int(value)


def _shape(where: str, shape) -> tuple[int, ...]:
    """``shape`` (an integer or a tuple/list of integers, each >= 0) as a tuple."""
    dimensions = (shape,) if _is_integer(shape) else shape
    if isinstance(dimensions, np.ndarray) and dimensions.ndim == 1:
        dimensions = list(dimensions)
    if not isinstance(dimensions, (tuple, list)) \
            or not all(_is_integer(size) and size >= 0 for size in dimensions):
        raise InputError(f"{where}: shape = {shape!r}: each dimension must be an integer "
                         f">= 0")
    return tuple(int(size) for size in dimensions)


_INT64 = np.iinfo(MEMORY_DTYPE)
#: What a numpy dtype kind is called in an error.
_KIND_NAMES = {"b": "booleans", "f": "floats", "c": "complex numbers", "U": "strings",
               "S": "bytes", "O": "objects", "M": "dates", "m": "time deltas", "V": "records"}


def _values(where: str, values) -> np.ndarray:
    """``values`` as a flat int64 array if they are integers within int64 (an integer
    array, or nested lists of ints), else one :class:`InputError`."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):          # ragged nested lists
        raise InputError(f"{where}: values = {shown(values)}: must be a rectangular array "
                         f"of integers") from None
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    exact = array.dtype.kind in "iu" or (
        array.dtype == object and all(_is_integer(value) for value in array.flat))
    if not exact:
        kind = _KIND_NAMES.get(array.dtype.kind, array.dtype.name)
        raise InputError(f"{where}: values = {shown(values)}: must be integers (int or a "
                         f"numpy integer array), not {kind}")
    if array.min() < _INT64.min or array.max() > _INT64.max:
        raise InputError(f"{where}: values = {shown(values)}: out of range for the int64 "
                         f"memory ({_INT64.min} .. {_INT64.max})")
    return array.astype(np.int64).ravel()


def _words(program) -> list[int]:
    """The instruction words of a :class:`~qforge.gen.asm.Program` or of a sequence of
    integers, each checked to be an exact integer ``0 .. 2**64 - 1``."""
    words = getattr(program, "words", program)
    if isinstance(words, (str, bytes)) or not hasattr(words, "__iter__"):
        raise InputError(f"Runtime.run: program = {shown(program)}: must be an assembled "
                         f"Program or a sequence of instruction words (integers)")
    checked = []
    for index, word in enumerate(words):
        if not _is_integer(word) or not 0 <= word < 1 << 64:
            raise InputError(f"Runtime.run: program word {index} = {word!r}: must be an "
                             f"integer 0 .. 2**64 - 1")
        checked.append(int(word))
    return checked


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


#: Simulators the rtl backend can run.
RTL_SIMULATORS = ("verilator", "icarus")


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

        # Checked before the build, which takes minutes.
        if simulator not in RTL_SIMULATORS:
            raise InputError(f"Runtime: simulator = {simulator!r}: allowed: "
                             f"{', '.join(RTL_SIMULATORS)}")
        if isinstance(stall, bool) or not isinstance(stall, (int, float)) \
                or not 0 <= stall < 1:
            raise InputError(f"Runtime: stall = {stall!r}: must be a probability, "
                             f"0 <= stall < 1 (1 would stall every port for ever)")
        seed = _integer("Runtime", "seed", seed)
        timeout_cycles = _integer("Runtime", "timeout_cycles", timeout_cycles, minimum=1)
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


_BACKEND_CLASSES = {"golden": GoldenBackend, "rtl": RtlBackend, "board": BoardBackend}


def _make_backend(config: Config, name: str, options: dict):
    """The backend ``name`` built with ``options``, each checked first: one
    :class:`InputError` for an unknown backend, an unknown option or a missing board."""
    if name not in BACKENDS:
        raise InputError(f"Runtime: backend = {name!r}: allowed: {', '.join(BACKENDS)}")
    backend_class = _BACKEND_CLASSES[name]
    parameters = inspect.signature(backend_class).parameters
    allowed = [option for option in parameters if option != "config"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"Runtime: {unknown[0]} = {options[unknown[0]]!r}: not an option of "
                         f"backend {name!r}; allowed: {', '.join(allowed) or 'none'}")
    if name == "board" and options.get("board") is None:
        raise InputError("Runtime: backend = 'board' needs board= a connected Board "
                         "(qforge.api.open_board(config, port))")
    return backend_class(config, **options)


class Runtime:
    """Host memory plus a backend: write operands, run programs, read results.

    ``backend``: a name from :data:`BACKENDS` (``board`` needs ``board=`` a
    :class:`qforge.fpga.host.Board`) or a backend object. Extra keyword arguments go to
    the backend's constructor.
    """

    def __init__(self, config: Config, backend="golden", *, memory_size: int = 0,
                 **options):
        if not isinstance(config, Config):
            raise InputError(f"Runtime: config = {shown(config)}: must be a Config "
                             f"(qforge.api.load_config), not {type(config).__name__}")
        self.config = config
        memory_size = _integer("Runtime", "memory_size", memory_size)
        if isinstance(backend, str):
            backend = _make_backend(config, backend, options)
        elif options:
            raise InputError(f"Runtime: {', '.join(sorted(options))}: options are for a "
                             f"backend given by name ({', '.join(BACKENDS)})")
        self.memory = np.zeros(memory_size, dtype=MEMORY_DTYPE)
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
        memory_size = _integer("Runtime.resize", "memory_size", memory_size)
        if memory_size > len(self.memory):
            grown = np.zeros(memory_size, dtype=MEMORY_DTYPE)
            grown[:len(self.memory)] = self.memory
            self.memory = grown

    def write(self, address: int, values) -> None:
        """Store ``values`` (integers within int64, any shape, row-major) from
        ``address`` on; floats, strings and booleans are refused, not converted."""
        address = _integer("Runtime.write", "address", address)
        flat = _values("Runtime.write", values)
        if address + flat.size > len(self.memory):
            raise InputError(f"Runtime.write: {flat.size} elements at address = {address}: "
                             f"the memory has {len(self.memory)} elements (addresses 0 .. "
                             f"{len(self.memory) - 1}; Runtime.resize grows it)")
        self.memory[address:address + flat.size] = flat

    def read(self, address: int, shape) -> np.ndarray:
        """A copy of the elements from ``address`` on, in ``shape`` (an integer or a tuple
        of integers >= 0, row-major)."""
        address = _integer("Runtime.read", "address", address)
        shape = _shape("Runtime.read", shape)
        count = int(np.prod(shape, dtype=object))
        if address + count > len(self.memory):
            raise InputError(f"Runtime.read: {count} elements at address = {address}: the "
                             f"memory has {len(self.memory)} elements (addresses 0 .. "
                             f"{len(self.memory) - 1})")
        return self.memory[address:address + count].reshape(shape).copy()

    def run(self, program) -> RunReport:
        """Execute a program (an assembled :class:`qforge.gen.asm.Program` or instruction
        words) on the backend.

        A program assembled for another configuration (its ``config``, where it has
        one, differs from the runtime's in any hardware field) is refused before it
        runs: its words encode that configuration's fields."""
        assembled_for = getattr(program, "config", None)
        if assembled_for is not None and isinstance(assembled_for, Config):
            differences = assembled_for.differences(self.config)
            if differences:
                raise InputError(
                    f"Runtime.run: the program was assembled for configuration "
                    f"{assembled_for.name!r}, the runtime runs {self.config.name!r}; they "
                    f"differ in {', '.join(differences)}: assemble it for "
                    f"{self.config.name!r}")
        words = _words(program)
        started = time.monotonic()
        report = self.backend.run(words, self.memory)
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
