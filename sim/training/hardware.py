"""Training as programs: every GEMM and weight update of the digits MLP runs as qforge
instructions on a runtime backend (:mod:`qforge.sim.runtime`).

A hardware configuration with ``update = "hardware"`` (:mod:`qforge.sim.training.config`)
trains here. The network, data, initial weights, batches, learning-rate schedule and
random keys are those of :func:`qforge.sim.training.loop.train_run`; what differs from the
float-update emulation is where the arithmetic happens and the weight-update rule:

* **On the accelerator** (programs of the instruction set, docs/ISA.md): the five GEMMs
  of a step (raw accumulators), the forward passes of the evaluation, and both weight
  updates, each ``W <- clamp(W + round(G / 2**s), weight_bits)`` by a GEMM with
  ``add = 1`` (:func:`qforge.gen.asm.sgd_update_words`; the rounding is the output
  stage's, stochastic with the random bits of the update's tensor key).
* **On the host**: quantizing the tensors a GEMM reads into operand codes (as in the
  emulation: once per tensor as stored, stochastic, keyed by slot and step), softmax,
  the loss, the ReLU and its mask.

The update rule, defined once here (:func:`update_operands`): the learning rate is folded
into the output gradient before it is quantized, ``g2 = -lr * (softmax - onehot) / n``,
so the backward GEMMs carry it (``dH`` and ``dZ1`` are ``-lr`` times the gradients) and
``G = A^T @ g``'s accumulators are already the update in units of
``2**(e_A + e_g)``. The weight LSB is ``2**e_w``, so ``s = e_w - e_A - e_g``; when that
is outside ``0 .. accumulator_width - 1`` the gradient is quantized with the unit that
puts ``s`` at the nearest limit instead (coarser for tiny gradients, finer, saturating,
for huge ones).

The golden backend (``qforge train --emulate``) and the RTL backend (``qforge train
--backend rtl``) run the same programs on the same memory, so they agree bit for bit;
``check`` compares the RTL's memory with the golden machine's after every program.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from qforge.gen.asm import matmul_words, sgd_update_words
from qforge.sim.model.capacity import tiles
from qforge.sim.model.cycles import program_cycles
from qforge.sim.model.isa import Opcode, Operand, encode
from qforge.sim.model.machine import precision_word
from qforge.sim.model.quantize import fixed_point_encode
from qforge.sim.model.rounding import Rounding
from qforge.sim.runtime import Runtime
from qforge.sim.training.config import HardwareConfig, TrainConfig
from qforge.sim.training.data import batches, training_data
from qforge.sim.training.formats import Quantized, quantize_operand, slot_key
from qforge.sim.training.network import initial_weights, log_softmax, loss_accuracy, with_ones
from qforge.sim.training.report import RunResult

__all__ = ["update_operands", "ProgramTrainer", "train_program_run", "run_epochs",
           "MismatchError"]


class MismatchError(AssertionError):
    """With ``check``: the backend's memory differs from the golden machine's."""


def update_operands(a_exponent: int, g_exponent: int, weight_exponent: int,
                    max_shift: int) -> tuple[int, int]:
    """``(shift, gradient exponent)`` of a weight update ``W += round(A^T @ g / 2**s)``.

    ``s = weight_exponent - a_exponent - g_exponent`` when that is in
    ``0 .. max_shift``; otherwise ``s`` is the nearest limit and the gradient's unit
    exponent is moved to match (the gradient is then re-quantized with it).

    >>> update_operands(-6, -13, -14, 26)      # natural: s = 5
    (5, -13)
    >>> update_operands(-6, -6, -14, 26)       # huge gradient: s = 0, finer unit
    (0, -8)
    >>> update_operands(-6, -40, -14, 26)      # tiny gradient: s = 26, coarser unit
    (26, -34)
    """
    shift = weight_exponent - a_exponent - g_exponent
    if shift < 0:
        return 0, weight_exponent - a_exponent
    if shift > max_shift:
        return max_shift, weight_exponent - a_exponent - max_shift
    return shift, g_exponent


@dataclass(frozen=True)
class _Tensor:
    address: int
    rows: int
    cols: int


class ProgramTrainer:
    """One configuration's training as programs on a :class:`Runtime`.

    ``runtime`` executes the programs; ``golden`` (optional) is a golden runtime run in
    lockstep and compared after every program (``MismatchError`` on a difference).
    """

    def __init__(self, train: TrainConfig, hardware: HardwareConfig, runtime: Runtime,
                 *, test_samples: int, golden: Runtime | None = None):
        if hardware.operand is None or hardware.operand.kind != "int":
            raise ValueError(f"{hardware.name}: update = \"hardware\" needs format = \"int\"")
        self.train, self.hardware, self.runtime, self.golden = train, hardware, runtime, golden
        self.config = hardware.operand.config
        self.fmt, self.wfmt = hardware.operand, hardware.weights
        self.weight_exponent = int(math.log2(self.wfmt.unit))
        self.max_shift = min(self.config.accumulator_width - 1, 63)
        hidden = train.hidden
        rows = max(train.batch_size, test_samples)
        shapes = {"x": (rows, 65), "w1q": (65, hidden), "w2q": (hidden + 1, 10),
                  "w1": (65, hidden), "w2": (hidden + 1, 10), "z1": (rows, hidden),
                  "h": (rows, hidden + 1), "z2": (rows, 10),
                  "dz2": (train.batch_size, 10), "dh": (train.batch_size, hidden + 1),
                  "dz1": (train.batch_size, hidden)}
        self.tensors, address = {}, 0
        for name, (r, c) in shapes.items():
            self.tensors[name] = _Tensor(address, r, c)
            address += r * c
        for target in (runtime, golden):
            if target is not None:
                target.resize(address)
        precision = self.fmt.precision
        self._prologue = [precision_word(operand, precision)
                          for operand in (Operand.A, Operand.B)] + [encode(Opcode.OUTPUT)]
        self.gemms = 0                # GEMMs the backend executed
        self.cycles = 0               # backend cycles (rtl), accumulated
        self.model_cycles = 0         # the cycle model's prediction, accumulated
        self.programs = 0
        #: The shifts of the last step's updates (host choices, for tests and reports).
        self.shifts: dict[str, int] = {}
        self._model_cache: dict[tuple, int] = {}

    # ---- memory -------------------------------------------------------------------------
    def _write(self, name: str, values: np.ndarray) -> None:
        tensor = self.tensors[name]
        assert values.shape[1] == tensor.cols and values.shape[0] <= tensor.rows, name
        for target in (self.runtime, self.golden):
            if target is not None:
                target.write(tensor.address, values)

    def _read(self, name: str, rows: int | None = None) -> np.ndarray:
        tensor = self.tensors[name]
        return self.runtime.read(tensor.address, (rows or tensor.rows, tensor.cols))

    def _run(self, words: list[int], what: str, key: tuple) -> None:
        report = self.runtime.run(words)
        if report.error:
            raise RuntimeError(f"{what}: the accelerator raised its error flag")
        self.cycles += report.cycles or 0
        self.gemms += report.gemms
        model = self._model_cache.get(key)
        if model is None:
            model = self._model_cache[key] = program_cycles(self.config, words).total
        self.model_cycles += model
        self.programs += 1
        if self.golden is not None:
            self.golden.run(words)
            if not np.array_equal(self.golden.memory, self.runtime.memory):
                where = np.flatnonzero(self.golden.memory != self.runtime.memory)
                names = sorted({name for name, t in self.tensors.items()
                                for i in where[:50]
                                if t.address <= i < t.address + t.rows * t.cols})
                raise MismatchError(f"{what}: {len(where)} elements differ from the golden "
                                    f"machine (in {', '.join(names)})")

    # ---- quantization (host) ------------------------------------------------------------
    def _key(self, slot: str, step: int) -> tuple[int, int]:
        return slot_key(self.train.seed, step, slot)

    def _format(self, slot: str):
        """The operand format tensor ``slot`` is stored in (one for every slot here; the
        CNN's trainer picks its layer's)."""
        return self.fmt

    def _rounding(self, slot: str) -> Rounding:
        """The rounding tensor ``slot`` is stored with in a training step."""
        return self.hardware.rounding

    def _quantize(self, values, slot: str, step: int,
                  rounding: Rounding | None = None) -> Quantized:
        seed, tensor = self._key(slot, step)
        return quantize_operand(values, self._format(slot), self._rounding(slot)
                                if rounding is None else rounding, seed=seed, tensor=tensor)

    def _gradient(self, values, slot: str, step: int, a_exponent: int,
                  weight_exponent: int | None = None) -> tuple[Quantized, int]:
        """The gradient operand of an update and its shift (:func:`update_operands`);
        ``weight_exponent``: the updated weights' LSB exponent (None: this trainer's)."""
        quantized = self._quantize(values, slot, step)
        shift, exponent = update_operands(
            a_exponent, quantized.exponent,
            self.weight_exponent if weight_exponent is None else weight_exponent,
            self.max_shift)
        if exponent != quantized.exponent:
            seed, tensor = self._key(slot, step)
            codes = fixed_point_encode(values, quantized.fmt.bits, exponent,
                                       rounding=self._rounding(slot), seed=seed,
                                       tensor=tensor)
            quantized = Quantized(quantized.fmt, codes, exponent)
        return quantized, shift

    def _weights(self, slot: str, step: int, rounding=None) -> Quantized:
        codes = self._read(slot[:2])
        return self._quantize(self.wfmt.value(codes), slot, step, rounding)

    # ---- programs -----------------------------------------------------------------------
    def _matmul(self, a: str, b: str, c: str, m: int, n: int, k: int,
                transpose_b: bool = False) -> list[int]:
        t = self.tensors
        return matmul_words(self.config, a=t[a].address, b=t[b].address, c=t[c].address,
                            m=m, n=n, k=k, transpose_b=transpose_b,
                            b_stride=t[b].cols if transpose_b else None)

    def _update(self, weights: str, x: str, gradient: str, rows: int, shift: int,
                slot: str, step: int) -> list[int]:
        t = self.tensors
        seed, tensor = self._key(slot, step)
        return sgd_update_words(self.config, w=t[weights].address, x=t[x].address,
                                dy=t[gradient].address, batch=rows,
                                inputs=t[weights].rows, outputs=t[weights].cols,
                                shift=shift, weight_bits=self.wfmt.bits, seed=seed,
                                tensor=tensor, rounding=self.hardware.update_rounding)

    def _forward(self, x_codes: Quantized, step: int, rounding=None):
        """Z1, H and Z2 of a batch (float) with the operand codes on the way."""
        n, hidden = x_codes.shape[0], self.train.hidden
        q_w1 = self._weights("w1", step, rounding)
        self._write("x", x_codes.integers)
        self._write("w1q", q_w1.integers)
        self._run(self._prologue + self._matmul("x", "w1q", "z1", n, hidden, 65),
                  f"step {step}: Z1 = X @ W1", ("z1", n))
        z1 = np.ldexp(self._read("z1", n).astype(np.float64),
                      x_codes.exponent + q_w1.exponent)
        q_h = self._quantize(with_ones(np.maximum(z1, 0)), "h", step, rounding)
        q_w2 = self._weights("w2", step, rounding)
        self._write("h", q_h.integers)
        self._write("w2q", q_w2.integers)
        self._run(self._prologue + self._matmul("h", "w2q", "z2", n, 10, hidden + 1),
                  f"step {step}: Z2 = H @ W2", ("z2", n))
        z2 = np.ldexp(self._read("z2", n).astype(np.float64), q_h.exponent + q_w2.exponent)
        return z1, q_h, q_w2, z2

    def initialize(self) -> None:
        w1, w2 = initial_weights(self.train.hidden, self.train.seed)
        self._write("w1", self.wfmt.quantize(w1, Rounding.NEAREST_EVEN))
        self._write("w2", self.wfmt.quantize(w2, Rounding.NEAREST_EVEN))

    def step(self, x: np.ndarray, onehot: np.ndarray, step: int, lr: float) -> float:
        """One SGD step on a batch (``x`` with the column of ones); returns its loss."""
        n, hidden = x.shape[0], self.train.hidden
        q_x = self._quantize(x, "x", step)
        z1, q_h, q_w2, z2 = self._forward(q_x, step)
        log_p = log_softmax(z2)
        loss = -float((log_p * onehot).sum() / n)
        q_dz2, shift2 = self._gradient(-lr * (np.exp(log_p) - onehot) / n, "dz2", step,
                                       q_h.exponent)
        self.shifts["w2"] = shift2
        self._write("dz2", q_dz2.integers)
        words = (self._prologue + self._matmul("dz2", "w2q", "dh", n, hidden + 1, 10,
                                               transpose_b=True)
                 + self._update("w2", "h", "dz2", n, shift2, "update_w2", step))
        self._run(words, f"step {step}: dH = dZ2 @ W2^T; W2 update", ("dh", n, shift2))
        dh = np.ldexp(self._read("dh", n).astype(np.float64), q_dz2.exponent + q_w2.exponent)
        q_dz1, shift1 = self._gradient(dh[:, :hidden] * (z1 > 0), "dz1", step, q_x.exponent)
        self.shifts["w1"] = shift1
        self._write("dz1", q_dz1.integers)
        self._run(self._prologue + self._update("w1", "x", "dz1", n, shift1, "update_w1",
                                                step),
                  f"step {step}: W1 update", ("w1", n, shift1))
        return loss

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
        """Test loss and accuracy; operands rounded to nearest, as the emulation does."""
        q_x = self._quantize(x_test, "x", 0, Rounding.NEAREST_EVEN)
        _, _, _, z2 = self._forward(q_x, 0, Rounding.NEAREST_EVEN)
        return loss_accuracy(z2, y_test)

    def weight_codes(self) -> tuple[np.ndarray, np.ndarray]:
        return self._read("w1"), self._read("w2")


def train_program_run(train: TrainConfig, hardware: HardwareConfig, data=None, *,
                      backend: str = "golden", epochs: int | None = None,
                      check: bool = False, log: Callable[[str], None] | None = None,
                      progress: bool = False, log_every: int = 5,
                      runtime_options: dict | None = None) -> RunResult:
    """Train ``hardware`` (``update = "hardware"``) with every GEMM and update as a
    program on ``backend``; curves as :func:`qforge.sim.training.loop.train_run` returns
    them, plus the backend's and the cycle model's cycles per epoch."""
    x_train, y_train, x_test, y_test = training_data(train, data)
    epochs = train.epochs if epochs is None else epochs
    result = RunResult(hardware.name, hardware.describe())
    result.backend = backend
    start = time.perf_counter()
    x_train, x_test = with_ones(x_train), with_ones(x_test)
    onehot = np.eye(10)[y_train]
    config = hardware.operand.config
    runtime = Runtime(config, backend, **(runtime_options or {}))
    golden = Runtime(config, "golden") if check and backend != "golden" else None
    try:
        trainer = ProgramTrainer(train, hardware, runtime, test_samples=len(x_test),
                                 golden=golden)
        run_epochs(trainer, result, train, (x_train, onehot, x_test, y_test),
                   backend=backend, epochs=epochs, log=log, progress=progress, log_every=log_every,
                   stored_codes=trainer.weight_codes)
    finally:
        runtime.close()
    result.seconds = time.perf_counter() - start
    return result


def run_epochs(trainer, result: RunResult, train: TrainConfig, data, *, backend: str,
               epochs: int, log: Callable[[str], None] | None, progress: bool, log_every: int,
               stored_codes: Callable[[], tuple[np.ndarray, ...]],
               time_evaluation: bool = True) -> None:
    """The training loop of a program trainer (:class:`ProgramTrainer` or the CNN's):
    initialise, evaluate, then per epoch every batch's step and an evaluation, filling
    ``result``'s curves, the backend's and the cycle model's cycles of the training steps
    and of the evaluation, and, at the end, the stored weights' largest magnitude and
    saturation (``stored_codes()``), the GEMM count and whether a golden machine checked.

    ``data`` is ``(x_train, onehot_train, x_test, y_test)`` as the trainer takes them;
    ``time_evaluation``: whether an epoch's seconds include its evaluation.
    """
    from qforge.sim.progress import Progress

    x_train, onehot, x_test, y_test = data
    hardware = trainer.hardware
    batches_per_epoch = tiles(len(x_train), train.batch_size)
    steps_total = epochs * batches_per_epoch
    trainer.initialize()
    loss, accuracy = trainer.evaluate(x_test, y_test)
    result.test_loss.append(loss)
    result.test_accuracy.append(accuracy)
    result.train_loss.append(None)
    step = 0
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        cycles0, model0 = trainer.cycles, trainer.model_cycles
        bar = Progress(batches_per_epoch + 1, f"{hardware.name} ({backend}) epoch "
                       f"{epoch}/{epochs}") if progress else None
        losses = []
        for batch in batches(len(x_train), train.batch_size, train.seed, epoch):
            lr = train.learning_rate_at(step, steps_total)
            losses.append(trainer.step(x_train[batch], onehot[batch], step, lr))
            step += 1
            if bar:
                bar.advance(note=f"loss {np.mean(losses):.4f}")
        train_cycles = trainer.cycles - cycles0
        train_model = trainer.model_cycles - model0
        if not time_evaluation:
            result.epoch_seconds.append(time.perf_counter() - epoch_start)
        loss, accuracy = trainer.evaluate(x_test, y_test)
        if bar:
            bar.advance(note=f"test accuracy {100 * accuracy:.2f}%")
            bar.close()
        result.test_loss.append(loss)
        result.test_accuracy.append(accuracy)
        result.train_loss.append(float(np.mean(losses)))
        result.epoch_cycles.append(train_cycles)
        result.epoch_model_cycles.append(train_model)
        result.eval_cycles.append(trainer.cycles - cycles0 - train_cycles)
        result.eval_model_cycles.append(trainer.model_cycles - model0 - train_model)
        if time_evaluation:
            result.epoch_seconds.append(time.perf_counter() - epoch_start)
        if log is not None and (epoch % log_every == 0 or epoch == epochs):
            cycles = (f", {train_cycles} cycles (model {train_model})"
                      if backend == "rtl" else f", model {train_model} cycles")
            log(f"{hardware.name:>16s} epoch {epoch:3d}/{epochs}: train loss "
                f"{result.train_loss[-1]:.4f}, test loss {loss:.4f}, "
                f"test accuracy {100 * accuracy:.2f}%{cycles}")
    codes = stored_codes()
    result.max_abs_weight = float(max(np.abs(trainer.wfmt.value(c)).max() for c in codes))
    result.saturated_weights = trainer.wfmt.saturated_count(codes)
    result.gemms = trainer.gemms
    result.checked = trainer.golden is not None
