"""The golden machine: what every instruction of docs/ISA.md does, defined once.

:func:`instruction_error` is the validity rule (the hardware decoder,
:class:`qforge.hdl.decoder.InstructionDecoder`, implements exactly it, and the
assembler and data movers apply it); :class:`Machine` executes programs on a flat host
memory of integer elements with the golden arithmetic (:func:`qforge.sim.model.numerics.gemm`,
:func:`qforge.sim.model.quantize.output_operands`, :func:`add_saturate`). It is the runtime's
golden backend and the reference the RTL is compared with. The buffer-capacity rule
(:func:`~qforge.sim.model.capacity.gemm_capacity_error`, with
:func:`~qforge.sim.model.capacity.tiles`) is defined in :mod:`qforge.sim.model.capacity`
and importable from here too.

>>> from qforge.sim.model.spec import load_preset
>>> from qforge.sim.model.isa import Opcode, Operand, encode
>>> machine = Machine(load_preset("tiny"), memory_size=16)
>>> machine.memory[0:4] = [1, 2, 3, 4]                  # A = [[1, 2], [3, 4]] at 0
>>> machine.memory[4:8] = [1, 0, 0, 1]                  # B = identity at 4
>>> machine.run([encode(Opcode.LOAD, operand=Operand.A, address=0, stride=2),
...              encode(Opcode.LOAD, operand=Operand.B, address=4, stride=2, transpose=1),
...              encode(Opcode.STORE, address=8, stride=2),
...              encode(Opcode.GEMM, m=2, n=2, k=2)])
>>> machine.memory[8:12].tolist(), machine.error
([1, 2, 3, 4], False)
>>> machine.run([encode(Opcode.GEMM, m=0, n=2, k=2)]); machine.error
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from qforge.sim.model.capacity import gemm_capacity_error, tiles
from qforge.sim.model.errors import QforgeError
from qforge.sim.model.saturation import saturate
from qforge.sim.model.spec import Config
from qforge.sim.model.isa import (EncodingError, Opcode, Operand, decode, encode,
                                  reserved_bits)
from qforge.sim.model.paired import PairedPrecision, WindowRounding, check_paired
from qforge.sim.model.numerics import OperandError, OperandPrecision, Precision, Selection, gemm
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands

__all__ = ["MEMORY_DTYPE", "tiles", "instruction_error", "precision_word", "paired_fields",
           "unsigned_paired_fields", "gemm_capacity_error", "add_saturate", "Descriptor",
           "GemmPlan", "Machine", "MachineError", "Trace", "span", "overlaps"]


class MachineError(QforgeError, RuntimeError):
    """The data mover cannot execute a valid GEMM: an address outside memory, or an
    element that is not an operand of the current precision. (Invalid *instructions*
    do not raise: they set the sticky error, as in hardware.)"""



def instruction_error(config: Config, word: int) -> str | None:
    """Why ``word`` is an invalid instruction on ``config``'s hardware, or None.

    The rules of docs/ISA.md, which the hardware decoder implements bit for bit: an
    unknown opcode or a reserved bit set; ``PRECISION`` with counts out of
    ``1 <= kept <= blocks <= B`` (VRQ operands: the configuration has ``[vrq]`` and
    ``blocks <= ceil(N / K)``); ``OUTPUT`` with rounding code 3, ``shift`` or
    ``exponent`` above ``accumulator_width - 1``, VRQ without ``[vrq]``, or ``wide``
    without integer quantization; ``GEMM`` outside the command fields or the buffers
    (:func:`~qforge.sim.model.capacity.gemm_capacity_error`), ``skip_zeros`` without ``[zero_skipping]``, or an
    ``add``/``saturate_bits`` pair out of range; ``LOAD`` of operand 3.

    >>> from qforge.sim.model.spec import load_preset
    >>> from qforge.sim.model.isa import encode
    >>> tiny = load_preset("tiny")
    >>> instruction_error(tiny, encode(Opcode.PRECISION, blocks=2, kept=3))
    'PRECISION.kept = 3: allowed 1 .. blocks (2)'
    >>> instruction_error(tiny, encode(Opcode.OUTPUT, quantize=1, rounding=2)) is None
    True
    >>> instruction_error(tiny, 0xFF)
    'opcode 0xff: not an instruction (allowed: 0x00 NOP .. 0x07 STORE)'
    """
    try:
        opcode, fields = decode(word)
    except EncodingError as error:
        return str(error)
    if not isinstance(opcode, Opcode):
        return (f"opcode {opcode:#04x}: not an instruction (allowed: "
                f"{min(Opcode):#04x} {min(Opcode).name} .. {max(Opcode):#04x} "
                f"{max(Opcode).name})")
    extra = reserved_bits(word)
    if extra:
        return (f"{opcode.name}: reserved bits set ({extra:#x} above its fields); "
                f"they must be 0")
    check = _FIELD_CHECKS.get(opcode)
    return None if check is None else check(config, opcode.name, fields)


def _precision_error(config: Config, name: str, fields: dict) -> str | None:
    if (fields["unsigned"] or fields["paired"]) and not config.paired:
        key = "unsigned" if fields["unsigned"] else "paired"
        return (f"{name}.{key} = 1: this configuration is not built with "
                f"arithmetic.paired = true (the paired mode and unsigned operands)")
    if fields["unsigned"] and fields["vrq"]:
        return f"{name}.unsigned = 1: not with vrq = 1 (a VRQ word has its own sign bit)"
    if fields["paired"]:
        return _paired_error(config, name, fields)
    for key in ("high", "low", "round"):
        if fields[key]:
            return f"{name}.{key} = {fields[key]}: must be 0 unless paired = 1"
    if fields["vrq"]:
        if config.vrq is None:
            return (f"{name}.vrq = 1: this configuration has no [vrq] section, so "
                    f"its PEs take integer operands only")
        limit, what = config.vrq_code_blocks, "blocks of the VRQ code"
    else:
        limit, what = config.blocks, "blocks of the operand"
    if not 1 <= fields["blocks"] <= limit:
        return f"{name}.blocks = {fields['blocks']}: allowed 1 .. {limit} ({what})"
    if not 1 <= fields["kept"] <= fields["blocks"]:
        return (f"{name}.kept = {fields['kept']}: allowed 1 .. blocks "
                f"({fields['blocks']})")
    return None


def _paired_error(config: Config, name: str, fields: dict) -> str | None:
    """``PRECISION`` with ``paired = 1``: operand A, exact integer with all ``B`` blocks,
    and windows the golden model accepts (:func:`qforge.sim.model.paired.check_paired`)."""
    n = config.blocks
    if fields["operand"] != Operand.A:
        return f"{name}.paired = 1: only operand A (0) is paired, not {fields['operand']}"
    if fields["vrq"] or fields["dynamic"]:
        key = "vrq" if fields["vrq"] else "dynamic"
        return f"{name}.{key} = 1: not with paired = 1 (A is an exact integer operand)"
    if fields["blocks"] != n or fields["kept"] != n:
        key = "blocks" if fields["blocks"] != n else "kept"
        return (f"{name}.{key} = {fields[key]}: with paired = 1 must be {n} (A exact, all "
                f"its blocks; the pairs' windows reduce it)")
    try:
        check_paired(config, paired_fields(fields))
    except OperandError as error:
        return f"{name}: {error}"
    return None


def paired_fields(fields: dict) -> PairedPrecision:
    """The :class:`~qforge.sim.model.paired.PairedPrecision` a ``PRECISION`` word's
    ``high``, ``low`` and ``round`` fields say (not validated)."""
    return PairedPrecision(fields["high"], fields["low"], WindowRounding(fields["round"]))


def precision_word(operand: Operand, precision: OperandPrecision) -> int:
    """The ``PRECISION`` word that sets ``operand``'s register to ``precision`` (the
    inverse of the golden machine's decoding; the one place a mode becomes fields).

    >>> from qforge.sim.model.spec import load_preset
    >>> word = precision_word(Operand.A, OperandPrecision(
    ...     4, 4, unsigned=True, paired=PairedPrecision(3, 1, WindowRounding.ROUND)))
    >>> decode(word)[1]
    {'operand': 0, 'blocks': 4, 'kept': 4, 'dynamic': 0, 'vrq': 0, 'unsigned': 1, 'paired': 1, 'high': 3, 'low': 1, 'round': 1}
    >>> instruction_error(load_preset("paired"), word) is None
    True
    >>> instruction_error(load_preset("default"), word)
    'PRECISION.unsigned = 1: this configuration is not built with arithmetic.paired = true (the paired mode and unsigned operands)'
    """
    return encode(Opcode.PRECISION, operand=int(operand), blocks=precision.blocks,
                  kept=precision.kept, dynamic=int(precision.selection),
                  vrq=int(precision.vrq), **unsigned_paired_fields(precision))


def unsigned_paired_fields(precision: OperandPrecision) -> dict[str, int]:
    """``precision``'s ``unsigned``, ``paired``, ``high``, ``low`` and ``round`` field
    values (the inverse of :func:`paired_fields`), as the ``PRECISION`` word and the
    command layout (:func:`qforge.hdl.layouts.operand_precision_layout`) both name them.

    >>> unsigned_paired_fields(OperandPrecision(4, 4, paired=PairedPrecision(2, 1)))
    {'unsigned': 0, 'paired': 1, 'high': 2, 'low': 1, 'round': 0}
    """
    paired = precision.paired
    return {"unsigned": int(precision.unsigned), "paired": int(paired is not None),
            "high": 0 if paired is None else paired.kept_high,
            "low": 0 if paired is None else paired.kept_low,
            "round": 0 if paired is None else int(paired.rounding)}


def _output_error(config: Config, name: str, fields: dict) -> str | None:
    accumulator_limit = config.accumulator_width - 1
    if fields["rounding"] not in tuple(Rounding):
        return (f"{name}.rounding = {fields['rounding']}: allowed "
                + ", ".join(f"{r.value} ({r.name.lower()})" for r in Rounding))
    for key in ("shift", "exponent"):
        if fields[key] > accumulator_limit:
            return (f"{name}.{key} = {fields[key]}: allowed 0 .. {accumulator_limit} "
                    f"(accumulator_width - 1)")
    if fields["vrq"] and config.vrq is None:
        return (f"{name}.vrq = 1: this configuration has no [vrq] section, so its "
                f"output stage cannot emit VRQ words")
    if fields["wide"] and not (fields["quantize"] and not fields["vrq"]):
        return (f"{name}.wide = 1: only with quantize = 1 and vrq = 0 (it skips the "
                f"saturation of integer outputs)")
    return None


def _gemm_error(config: Config, name: str, fields: dict) -> str | None:
    reason = gemm_capacity_error(config, fields["m"], fields["n"], fields["k"])
    if reason:
        return reason
    if fields["skip_zeros"] and not config.zero_skipping:
        return (f"{name}.skip_zeros = 1: this configuration has no [zero_skipping] "
                f"section")
    bits = fields["saturate_bits"]
    if fields["add"] and not 2 <= bits <= config.accumulator_width:
        return (f"{name}.saturate_bits = {bits}: with add = 1 allowed 2 .. "
                f"{config.accumulator_width} (accumulator_width)")
    if not fields["add"] and bits:
        return f"{name}.saturate_bits = {bits}: must be 0 unless add = 1"
    return None


def _load_error(config: Config, name: str, fields: dict) -> str | None:
    if fields["operand"] not in tuple(Operand):
        return (f"{name}.operand = {fields['operand']}: allowed "
                + ", ".join(f"{o.value} ({o.name.lower()})" for o in Operand))
    return None


#: The field rules of each opcode that has any (the others are valid once decoded).
_FIELD_CHECKS = {Opcode.PRECISION: _precision_error, Opcode.OUTPUT: _output_error,
                 Opcode.GEMM: _gemm_error, Opcode.LOAD: _load_error}


def add_saturate(addend, values, bits: int) -> np.ndarray:
    """``addend + values`` saturated to ``bits``-bit two's complement: the ``add`` step
    of a GEMM (docs/ISA.md, ``GEMM``), after the output stage.

    With the output stage's stochastic rounding of ``G / 2**s`` (``wide``) and an integer
    weight code ``W`` as the addend, this is stochastic rounding of ``W + G / 2**s``:
    ``W + floor((G + r) / 2**s) == floor((W * 2**s + G + r) / 2**s)``.

    >>> add_saturate(np.array([100, -100, 5]), np.array([50, -50, -3]), 8)
    array([ 127, -128,    2])
    """
    total = np.asarray(addend, dtype=np.int64) + np.asarray(values, dtype=np.int64)
    return saturate(total, bits)


@dataclass(frozen=True)
class Descriptor:
    """Where a matrix is in memory (docs/ISA.md, *Memory*)."""

    address: int = 0
    stride: int = 0
    transpose: bool = False

    def indices(self, rows: int, cols: int) -> np.ndarray:
        """The memory index of every element ``(i, j)`` of a ``rows x cols`` matrix.

        >>> Descriptor(10, 4, True).indices(2, 3).tolist()
        [[10, 14, 18], [11, 15, 19]]
        """
        i, j = np.indices((rows, cols))
        if self.transpose:
            i, j = j, i
        return self.address + i * self.stride + j


@dataclass(frozen=True)
class GemmPlan:
    """A valid GEMM as decoded: its sizes and flags, the registers it uses and the
    memory descriptors it reads and writes. The data mover executes plans
    (:meth:`Machine.execute` for the golden backend)."""

    index: int
    m: int
    n: int
    k: int
    skip_zeros: bool
    add: bool
    saturate_bits: int
    precision: Precision
    output: OutputParameters | None
    a: Descriptor
    b: Descriptor
    addend: Descriptor | None
    store: Descriptor

    def reads(self) -> list[tuple[Descriptor, int, int]]:
        """``(descriptor, rows, cols)`` of every matrix the GEMM reads."""
        out = [(self.a, self.m, self.k), (self.b, self.k, self.n)]
        if self.addend is not None:
            out.append((self.addend, self.m, self.n))
        return out

    def writes(self) -> tuple[Descriptor, int, int]:
        return self.store, self.m, self.n


def span(descriptor: Descriptor, rows: int, cols: int) -> tuple[int, int]:
    """The lowest and highest memory index a matrix occupies (inclusive)."""
    indices = descriptor.indices(rows, cols)
    return int(indices.min()), int(indices.max())


def overlaps(first: tuple[int, int], second: tuple[int, int]) -> bool:
    return first[0] <= second[1] and second[0] <= first[1]


@dataclass
class Trace:
    """What one valid GEMM did: its plan, the operands it read and its result."""

    plan: GemmPlan
    a: np.ndarray
    b: np.ndarray
    addend: np.ndarray | None
    result: np.ndarray


def _reset_precision(config: Config) -> OperandPrecision:
    return OperandPrecision(config.blocks, config.blocks)


#: The element type of host memory (the golden machine's, the runtime's and the data
#: mover's): one signed 64-bit integer per element. ``.word`` values and operand
#: matrices must fit it (the assembler's limits read it from here).
MEMORY_DTYPE = np.int64


@dataclass
class Machine:
    """The golden machine: registers, sticky error and a host memory of int64 elements.

    :meth:`run` executes instruction words in order; an invalid word sets
    :attr:`error` and changes nothing else. Each valid GEMM is appended to
    :attr:`traces` (when ``keep_traces``) and counted in :attr:`gemms`. With
    ``compute = False`` the machine only decodes: :meth:`step` returns each valid GEMM's
    :class:`GemmPlan` without touching memory (what a data mover in front of real
    hardware needs).
    """

    config: Config
    memory_size: int = 0
    memory: np.ndarray = None
    keep_traces: bool = False
    compute: bool = True
    error: bool = False
    precision: Precision = None
    output: OutputParameters | None = None
    seed: int = 0
    tensor: int = 0
    loads: dict = field(default_factory=dict)
    store: Descriptor = field(default_factory=Descriptor)
    traces: list = field(default_factory=list)
    gemms: int = 0
    invalid: int = 0
    executed: int = 0

    def __post_init__(self):
        if self.memory is None:
            self.memory = np.zeros(self.memory_size, dtype=MEMORY_DTYPE)
        self.reset_registers()

    def reset_registers(self) -> None:
        """The state after ``rst`` (memory is the host's and keeps its contents)."""
        exact = _reset_precision(self.config)
        self.precision = Precision(exact, exact)
        self.output = None
        self._output_fields = {"quantize": 0, "shift": 0,
                               "rounding": int(Rounding.NEAREST_EVEN), "relu": 0,
                               "vrq": 0, "exponent": 0, "wide": 0}
        self.seed = self.tensor = 0
        self.loads = {operand: Descriptor() for operand in Operand}
        self.store = Descriptor()
        self.error = False

    # ---- execution ---------------------------------------------------------------------
    def run(self, words) -> None:
        """Execute instruction words in order."""
        for word in words:
            self.step(int(word))

    def step(self, word: int) -> GemmPlan | None:
        """Execute one instruction word; return the GEMM's :class:`GemmPlan` if it was a
        valid GEMM (executed too, when :attr:`compute`)."""
        self.executed += 1
        if instruction_error(self.config, word) is not None:
            self.error = True
            self.invalid += 1
            return None
        opcode, fields = decode(word)
        if opcode == Opcode.PRECISION:
            operand = OperandPrecision(
                fields["blocks"], fields["kept"], Selection(fields["dynamic"]),
                bool(fields["vrq"]), unsigned=bool(fields["unsigned"]),
                paired=paired_fields(fields) if fields["paired"] else None)
            self.precision = (replace(self.precision, a=operand) if fields["operand"] == 0
                              else replace(self.precision, b=operand))
        elif opcode == Opcode.OUTPUT:
            self._output_fields = dict(fields)
            self.output = self._output_parameters()
        elif opcode == Opcode.SEED:
            self.seed, self.tensor = fields["seed"], fields["tensor"]
            self.output = self._output_parameters()
        elif opcode == Opcode.LOAD:
            self.loads[Operand(fields["operand"])] = Descriptor(
                fields["address"], fields["stride"], bool(fields["transpose"]))
        elif opcode == Opcode.STORE:
            self.store = Descriptor(fields["address"], fields["stride"],
                                    bool(fields["transpose"]))
        elif opcode == Opcode.GEMM:
            plan = GemmPlan(
                self.gemms, fields["m"], fields["n"], fields["k"],
                bool(fields["skip_zeros"]), bool(fields["add"]), fields["saturate_bits"],
                self.precision, self.output, self.loads[Operand.A], self.loads[Operand.B],
                self.loads[Operand.ADDEND] if fields["add"] else None, self.store)
            self.gemms += 1
            if self.compute:
                self.execute(plan)
            return plan
        return None

    def _output_parameters(self) -> OutputParameters | None:
        fields = self._output_fields
        if not fields["quantize"]:
            return None
        return OutputParameters(shift=fields["shift"], rounding=Rounding(fields["rounding"]),
                                relu=bool(fields["relu"]), seed=self.seed,
                                tensor=self.tensor,
                                vrq_exponent=fields["exponent"] if fields["vrq"] else None,
                                wide=bool(fields["wide"]))

    def read(self, descriptor: Descriptor, rows: int, cols: int, what: str) -> np.ndarray:
        """The ``rows x cols`` matrix at ``descriptor`` (a copy)."""
        indices = descriptor.indices(rows, cols)
        if indices.min() < 0 or indices.max() >= len(self.memory):
            raise MachineError(f"{what}: a {rows} x {cols} matrix at address "
                               f"{descriptor.address}, stride {descriptor.stride}"
                               f"{', transposed' if descriptor.transpose else ''} reaches "
                               f"element {int(indices.max())}; memory has "
                               f"{len(self.memory)} elements")
        return self.memory[indices]

    def write(self, descriptor: Descriptor, values: np.ndarray, what: str) -> None:
        rows, cols = values.shape
        indices = descriptor.indices(rows, cols)
        if indices.min() < 0 or indices.max() >= len(self.memory):
            raise MachineError(f"{what}: a {rows} x {cols} result at address "
                               f"{descriptor.address}, stride {descriptor.stride} reaches "
                               f"element {int(indices.max())}; memory has "
                               f"{len(self.memory)} elements")
        self.memory[indices] = values

    def operands(self, plan: GemmPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A, B and the addend (None without ``add``) of a GEMM, read from memory."""
        what = f"GEMM {plan.index}"
        a = self.read(plan.a, plan.m, plan.k, f"{what}: A")
        b = self.read(plan.b, plan.k, plan.n, f"{what}: B")
        addend = (self.read(plan.addend, plan.m, plan.n, f"{what}: addend")
                  if plan.addend is not None else None)
        return a, b, addend

    def result(self, plan: GemmPlan, a, b, addend) -> np.ndarray:
        """What a GEMM writes: the golden arithmetic."""
        try:
            accumulators = gemm(a, b, self.config, plan.precision)
        except OperandError as error:
            raise MachineError(f"GEMM {plan.index}: {error}") from None
        values = (accumulators if plan.output is None
                  else output_operands(accumulators, self.config, plan.output))
        if addend is not None:
            values = add_saturate(addend, values, plan.saturate_bits)
        return values

    def execute(self, plan: GemmPlan) -> Trace:
        """Read a GEMM's operands, compute and store its result."""
        a, b, addend = self.operands(plan)
        values = self.result(plan, a, b, addend)
        self.write(plan.store, values, f"GEMM {plan.index}: result")
        trace = Trace(plan, a, b, addend, values)
        if self.keep_traces:
            self.traces.append(trace)
        return trace
