"""Random instruction streams for the programmable accelerator (fuzzing).

:func:`random_program` draws a program of valid and invalid instructions and the host
memory it runs on. Valid GEMMs read operands drawn fresh for the precision in force
(so the data mover never meets an out-of-range operand) from their own memory areas, or
now and then an earlier GEMM's result, which makes the data mover wait for it. Invalid
words are of every kind :func:`qforge.sim.model.machine.instruction_error` knows: unknown
opcodes, reserved bits, fields out of the configuration's range and random 64-bit
words. The golden machine says which are invalid; the hardware must raise its sticky
``error`` for exactly those programs that hold one, execute every valid GEMM exactly as
the golden machine does, and never hang.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qforge.sim.model.spec import Config
from qforge.sim.model.isa import OPCODE_WIDTH, Opcode, Operand, encode, operand_bits
from qforge.sim.model.machine import (Machine, gemm_capacity_error, instruction_error,
                                     precision_word)
from qforge.sim.model.numerics import OperandPrecision
from qforge.sim.model.paired import PairedPrecision, WindowRounding
from qforge.sim.model.quantize import Rounding
from qforge.sim.model.saturation import signed_range

__all__ = ["FuzzProgram", "random_program", "ProgramCheck", "check_program"]


@dataclass
class FuzzProgram:
    """A program and its initial memory; ``invalid`` counts its invalid words."""

    words: list[int]
    memory: np.ndarray
    invalid: int
    gemms: int


def _operand_values(rng, config: Config, operand, shape) -> np.ndarray:
    """Random operands valid for an :class:`~qforge.sim.model.numerics.OperandPrecision`:
    integers of ``blocks * K`` bits, or VRQ words whose code fits the blocks."""
    if operand.vrq:
        from qforge.sim.model.numerics import vrq_pack
        limit = 1 << min(operand.blocks * config.block_width, config.vrq_code_width)
        code = rng.integers(0, limit, size=shape)
        code[rng.random(shape) < 0.25] = 0
        return vrq_pack(rng.integers(0, 2, size=shape) * (code != 0), code,
                        rng.integers(0, config.vrq_ranges, size=shape) * (code != 0),
                        config)
    bits = operand.blocks * config.block_width
    low, high = signed_range(bits)
    values = rng.integers(low, high + 1, size=shape)
    # Zeros and extremes are where block selection and zero skipping are interesting.
    values[rng.random(shape) < 0.2] = 0
    values[rng.random(shape) < 0.05] = low
    return values


def _gemm_size(rng, config: Config, max_tiles: int) -> tuple[int, int, int]:
    while True:
        m = int(rng.integers(1, max_tiles * config.rows + 1))
        n = int(rng.integers(1, max_tiles * config.cols + 1))
        k = int(rng.integers(1, 4 * config.block_multipliers + 1))
        if gemm_capacity_error(config, m, n, k) is None:
            return m, n, k


def _invalid_word(rng, config: Config) -> int:
    """A word :func:`instruction_error` rejects (the caller checks)."""
    kind = int(rng.integers(0, 7))
    if kind == 0:                                       # unknown opcode
        return int(rng.integers(max(Opcode) + 1, 1 << OPCODE_WIDTH)) \
            | int(rng.integers(0, 1 << 56)) << OPCODE_WIDTH
    if kind == 1:                                       # a reserved bit
        # (GEMM's fields fill its word: it has no reserved bits.)
        spare = [op for op in Opcode if OPCODE_WIDTH + operand_bits(op) < 64]
        opcode = spare[int(rng.integers(0, len(spare)))]
        used = OPCODE_WIDTH + operand_bits(opcode)
        return encode(opcode) | 1 << int(rng.integers(used, 64))
    if kind == 2:                                       # precision out of range
        blocks = int(rng.integers(config.blocks + 1, 16))
        return encode(Opcode.PRECISION, operand=int(rng.integers(0, 2)), blocks=blocks,
                      kept=1)
    if kind == 3:                                       # rounding 3, shift too large
        if rng.random() < 0.5:
            # The first code after the rounding rules: not a rounding rule, rejected.
            return encode(Opcode.OUTPUT, quantize=1, rounding=max(Rounding) + 1)
        return encode(Opcode.OUTPUT, quantize=1,
                      shift=int(rng.integers(config.accumulator_width, 64)))
    if kind == 4:                                       # GEMM beyond the buffers or zero
        choice = int(rng.integers(0, 3))
        if choice == 0:
            return encode(Opcode.GEMM, m=0, n=1, k=1)
        if choice == 1:
            return encode(Opcode.GEMM, m=(1 << 16) - 1, n=1,
                          k=config.max_reduction_depth)
        return encode(Opcode.GEMM, m=1, n=1, k=1, add=1, saturate_bits=1)
    if kind == 5:
        return encode(Opcode.LOAD, operand=3)
    return int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))


def random_program(config: Config, seed: int, *, instructions: int = 40,
                   invalid_fraction: float = 0.1, max_tiles: int = 2) -> FuzzProgram:
    """A random program of about ``instructions`` words with valid GEMMs of at most
    ``max_tiles`` tiles per side and a share ``invalid_fraction`` of invalid words.

    >>> from qforge.sim.model.spec import load_preset
    >>> program = random_program(load_preset("tiny"), 1, instructions=30)
    >>> program.gemms > 0 and len(program.words) >= 30
    True
    """
    rng = np.random.default_rng(seed)
    golden = Machine(config, memory_size=0, compute=False)
    chunks: list[np.ndarray] = []
    size = 0
    words: list[int] = []
    # (address, rows, cols, bits) of results that are output operands of ``bits`` bits.
    results: list[tuple[int, int, int, int]] = []

    def allocate(values: np.ndarray) -> int:
        nonlocal size
        address = size
        chunks.append(values.ravel().astype(np.int64))
        size += values.size
        return address

    def emit(word: int) -> None:
        words.append(word)
        golden.step(word)

    invalid = 0
    while len(words) < instructions:
        roll = rng.random()
        if roll < invalid_fraction:
            word = _invalid_word(rng, config)
            if instruction_error(config, word) is None:
                continue
            invalid += 1
            emit(word)
        elif roll < 0.25:
            vrq = int(config.vrq is not None and rng.random() < 0.4)
            blocks = int(rng.integers(1, (config.vrq_code_blocks if vrq else config.blocks)
                                      + 1))
            if config.paired and rng.random() < 0.4:
                # The paired mode on A (signed: memory holds signed operands).
                n = config.blocks
                high = int(rng.integers(1, n))
                low = int(rng.integers(1, min(high, n - high) + 1))
                emit(precision_word(Operand.A, OperandPrecision(n, n, paired=PairedPrecision(
                    high, low, WindowRounding(int(rng.integers(0, 2)))))))
                continue
            emit(encode(Opcode.PRECISION, operand=int(rng.integers(0, 2)), blocks=blocks,
                        kept=int(rng.integers(1, blocks + 1)),
                        dynamic=int(rng.integers(0, 2)), vrq=vrq))
        elif roll < 0.35:
            quantize = int(rng.integers(0, 2))
            vrq = int(quantize and config.vrq is not None and rng.random() < 0.4)
            emit(encode(Opcode.OUTPUT, quantize=quantize,
                        shift=int(rng.integers(0, config.accumulator_width)),
                        rounding=int(rng.integers(0, len(Rounding))),
                        relu=int(rng.integers(0, 2)), vrq=vrq,
                        exponent=vrq * int(rng.integers(0, config.accumulator_width)),
                        wide=quantize * (1 - vrq) * int(rng.integers(0, 2))))
        elif roll < 0.4:
            emit(encode(Opcode.SEED, seed=int(rng.integers(0, 1 << 32)),
                        tensor=int(rng.integers(0, 1 << 16))))
        elif roll < 0.45:
            emit(encode(Opcode(int(rng.choice([Opcode.NOP, Opcode.FENCE])))))
        else:
            m, n, k = _gemm_size(rng, config, max_tiles)
            precision = golden.precision
            a = _operand_values(rng, config, precision.a, (m, k))
            b = _operand_values(rng, config, precision.b, (k, n))
            a_transposed = bool(rng.integers(0, 2))
            a_address = allocate(a.T if a_transposed else a)
            # Now and then A is an earlier result, if its values are operands: the output
            # stage saturated them to output_width bits, and A takes that many.
            for address, rows, cols, bits in reversed(results[-3:]):
                if (rows, cols) == (m, k) and not precision.a.vrq \
                        and bits <= precision.a.blocks * config.block_width \
                        and rng.random() < 0.7:
                    a_address, a_transposed = address, False
                    break
            b_address = allocate(b)
            emit(encode(Opcode.LOAD, operand=Operand.A, address=a_address,
                        stride=m if a_transposed else k, transpose=int(a_transposed)))
            emit(encode(Opcode.LOAD, operand=Operand.B, address=b_address, stride=n))
            add = rng.random() < 0.3
            bits = 0
            if add:
                bits = int(rng.integers(2, config.accumulator_width + 1))
                low, high = signed_range(bits)
                addend = rng.integers(low, high + 1, size=(m, n))
                emit(encode(Opcode.LOAD, operand=Operand.ADDEND, address=allocate(addend),
                            stride=n))
            transposed = bool(rng.integers(0, 2))
            result_address = allocate(np.zeros((m, n), dtype=np.int64))
            emit(encode(Opcode.STORE, address=result_address, stride=m if transposed else n,
                        transpose=int(transposed)))
            output = golden.output
            if not transposed and not add and output is not None and not output.wide \
                    and output.vrq_exponent is None:
                results.append((result_address, m, n, config.output_width))
            skip = int(config.zero_skipping and rng.integers(0, 2))
            emit(encode(Opcode.GEMM, m=m, n=n, k=k, add=int(add), saturate_bits=bits,
                        skip_zeros=skip))
    memory = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return FuzzProgram(words, memory, invalid, golden.gemms)



@dataclass
class ProgramCheck:
    """One random program on the RTL backend and on the golden machine."""

    seed: int
    words: int
    invalid: int
    gemms: int
    error: bool                 #: the RTL's sticky error after the program
    expected_error: bool        #: the golden machine's
    memory_matches: bool
    cycles: int | None          #: simulated
    model_cycles: int           #: :func:`qforge.sim.model.cycles.program_cycles`

    @property
    def error_as_predicted(self) -> bool:
        """Raised exactly when the program holds an invalid word, as the golden
        machine says."""
        return self.error == self.expected_error == (self.invalid > 0)

    def problems(self, *, check_cycles: bool) -> list[str]:
        """What differs (cycles only when ``check_cycles``: no stalls)."""
        out = []
        if not self.error_as_predicted:
            out.append(f"error flag {int(self.error)}, golden {int(self.expected_error)}, "
                       f"{self.invalid} invalid words")
        if not self.memory_matches:
            out.append("memory differs from the golden machine")
        if check_cycles and self.cycles != self.model_cycles:
            out.append(f"{self.cycles} cycles, model {self.model_cycles}")
        return out


def check_program(rtl, seed: int, *, instructions: int = 60,
                  invalid_fraction: float = 0.1) -> ProgramCheck:
    """Run :func:`random_program` ``seed`` from reset on ``rtl`` (a
    :class:`qforge.sim.runtime.Runtime`) and on a golden runtime, and compare. A hang
    or a broken result stream raises :class:`qforge.sim.runtime.BackendError`."""
    from qforge.sim.model.cycles import program_cycles
    from qforge.sim.runtime import Runtime

    config = rtl.config
    program = random_program(config, seed, instructions=instructions,
                             invalid_fraction=invalid_fraction)
    golden = Runtime(config, "golden")
    for runtime in (rtl, golden):
        runtime.reset()
        runtime.memory = program.memory.copy()
    report = rtl.run(program.words)
    expected = golden.run(program.words)
    return ProgramCheck(seed, len(program.words), program.invalid, report.gemms,
                        report.error, expected.error,
                        bool(np.array_equal(rtl.memory, golden.memory)), report.cycles,
                        program_cycles(config, program.words, program.memory).total)
