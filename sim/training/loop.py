"""Emulated low-precision training: the training loop of the digits MLP, every GEMM
bit-exact.

This module measures what the accelerator's arithmetic does to *training* (ApproxTrain's
question): every forward and backward GEMM of a small network runs through the golden
model (:mod:`qforge.sim.training.emulated_gemm`), and the weights live only in a
low-precision fixed-point format that each step updates with stochastic or
round-to-nearest rounding (Gupta et al.; :class:`~qforge.sim.training.formats.WeightFormat`).
A float32 run of the same network with the same initial weights, batches and epochs is
the reference. The network and its step are described in
:mod:`qforge.sim.training.network`, the operand and weight formats in
:mod:`qforge.sim.training.formats`.

Evaluation
----------
After every epoch the forward pass runs on the whole test set (and epoch 0 is the
initial network) with the same operand format, rounding operands to nearest: stochastic
rounding matters for accumulating many small updates, not for one inference, and nearest
makes the evaluation deterministic. Accuracy and mean cross-entropy are recorded.

Everything is vectorized over whole tensors; Python loops only over epochs, steps,
layers and configurations. Progress lines go to the ``log`` callable when one is given;
nothing is printed otherwise.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from qforge.sim.model.capacity import tiles
from qforge.sim.model.errors import InputError
from qforge.sim.model.rounding import Rounding
from qforge.sim.training.config import (HardwareConfig, TrainConfig, TrainConfigError,
                                        check_cnn_depth)
from qforge.sim.training.data import batches, training_data
from qforge.sim.training.datasets import Dataset, train_dataset
from qforge.sim.training.emulated_gemm import GemmCounter, emulated_matmul
from qforge.sim.training.formats import quantize_operand, slot_key
from qforge.sim.progress import Progress
import qforge.sim.training.cnn as cnn
from qforge.sim.training.cnn_hardware import layer_arithmetic, train_cnn_program_run
from qforge.sim.training.hardware import train_program_run
from qforge.sim.training.network import initial_weights, log_softmax, loss_accuracy, with_ones
from qforge.sim.training.report import RunResult

__all__ = ["train_run", "train_all"]


class _FloatNetwork:
    """The float32 reference: weights, activations, gradients and GEMMs in float32."""

    def __init__(self, train: TrainConfig, w1, w2, x_test, y_test):
        self.hidden = train.hidden
        self.w1, self.w2 = w1.astype(np.float32), w2.astype(np.float32)
        self.x_test, self.y_test = x_test.astype(np.float32), y_test

    def evaluate(self) -> tuple[float, float]:
        h = with_ones(np.maximum(self.x_test @ self.w1, 0))
        return loss_accuracy((h @ self.w2).astype(np.float64), self.y_test)

    def step(self, x, t, n: int, step: int, lr: float) -> float:
        """One SGD step on a float32 batch; returns its loss."""
        w1, w2 = self.w1, self.w2
        z1 = x @ w1
        h = with_ones(np.maximum(z1, 0))
        z2 = h @ w2
        log_p = log_softmax(z2)
        loss = -float((log_p * t).sum() / n)
        dz2 = (np.exp(log_p) - t) / np.float32(n)
        dw2 = h.T @ dz2
        dz1 = (dz2 @ w2.T)[:, :self.hidden] * (z1 > 0)
        dw1 = x.T @ dz1
        self.w1 = w1 - np.float32(lr) * dw1
        self.w2 = w2 - np.float32(lr) * dw2
        return loss

    def finish(self, result: RunResult) -> None:
        result.max_abs_weight = float(max(np.abs(self.w1).max(), np.abs(self.w2).max()))


class _EmulatedNetwork:
    """A low-precision configuration: quantized operands, emulated GEMMs, weight codes
    updated on the host (``update = "float"``), with the update statistics of
    :class:`RunResult`."""

    def __init__(self, train: TrainConfig, hardware: HardwareConfig, w1, w2, x_test, y_test):
        self.train, self.hardware = train, hardware
        self.fmt, self.wfmt, self.counter = hardware.operand, hardware.weights, GemmCounter()
        self.codes = [self.wfmt.quantize(w, Rounding.NEAREST_EVEN) for w in (w1, w2)]
        self.x_test, self.y_test = x_test, y_test
        self.small = self.changed = self.small_mass = self.total_mass = 0.0
        self.updates = 0

    def quantize(self, values, slot: str, step: int, rounding: Rounding | None = None):
        seed_word, tensor = slot_key(self.train.seed, step, slot)
        return quantize_operand(values, self.fmt, self.hardware.rounding
                                if rounding is None else rounding,
                                seed=seed_word, tensor=tensor)

    def evaluate(self) -> tuple[float, float]:
        nearest, counter = Rounding.NEAREST_EVEN, self.counter
        q_w1, q_w2 = (self.quantize(self.wfmt.value(c), "w1", 0, nearest)
                      for c in self.codes)
        q_x = self.quantize(self.x_test, "x", 0, nearest)
        h = with_ones(np.maximum(emulated_matmul(q_x, q_w1, counter), 0))
        q_h = self.quantize(h, "h", 0, nearest)
        return loss_accuracy(emulated_matmul(q_h, q_w2, counter), self.y_test)

    def step(self, x, t, n: int, step: int, lr: float) -> float:
        """One SGD step: the five emulated GEMMs, then both weight updates; returns the
        batch's loss."""
        wfmt, counter, codes = self.wfmt, self.counter, self.codes
        q_x = self.quantize(x, "x", step)
        q_w1 = self.quantize(wfmt.value(codes[0]), "w1", step)
        z1 = emulated_matmul(q_x, q_w1, counter)
        q_h = self.quantize(with_ones(np.maximum(z1, 0)), "h", step)
        q_w2 = self.quantize(wfmt.value(codes[1]), "w2", step)
        z2 = emulated_matmul(q_h, q_w2, counter)
        log_p = log_softmax(z2)
        loss = -float((log_p * t).sum() / n)
        q_dz2 = self.quantize((np.exp(log_p) - t) / n, "dz2", step)
        dw2 = emulated_matmul(q_h.T, q_dz2, counter)
        dh = emulated_matmul(q_dz2, q_w2.T, counter)
        q_dz1 = self.quantize(dh[:, :self.train.hidden] * (z1 > 0), "dz1", step)
        dw1 = emulated_matmul(q_x.T, q_dz1, counter)
        for i, (slot, grad) in enumerate((("update_w1", dw1), ("update_w2", dw2))):
            self._update(i, slot, lr * grad, step)
        return loss

    def _update(self, index: int, slot: str, update, step: int) -> None:
        """``W <- Q_w(W - update)`` for weight matrix ``index``, counting the updates
        below half an LSB and the codes that change."""
        wfmt, codes = self.wfmt, self.codes
        size = np.abs(update)
        below = size < wfmt.unit / 2
        self.small += float(below.mean())
        self.small_mass += float(size[below].sum())
        self.total_mass += float(size.sum())
        seed_word, tensor = slot_key(self.train.seed, step, slot)
        new = wfmt.quantize(wfmt.value(codes[index]) - update,
                            self.hardware.update_rounding, seed=seed_word, tensor=tensor)
        self.changed += float((new != codes[index]).mean())
        codes[index] = new
        self.updates += 1

    def finish(self, result: RunResult) -> None:
        wfmt, updates = self.wfmt, max(self.updates, 1)
        result.max_abs_weight = float(max(np.abs(wfmt.value(c)).max() for c in self.codes))
        result.saturated_weights = wfmt.saturated_count(self.codes)
        result.small_update_fraction = self.small / updates
        result.small_update_mass = (self.small_mass / self.total_mass if self.total_mass
                                    else 0.0)
        result.changed_fraction = self.changed / updates
        result.gemms = self.counter.gemms
        result.float64_fallbacks = self.counter.float64_fallbacks


def _record_epoch(result: RunResult, name: str, epoch: int, epochs: int, losses: list,
                  loss: float, accuracy: float, *, log: Callable[[str], None] | None) -> None:
    """Append one epoch's test loss and accuracy and mean training loss to ``result``,
    and report them through ``log`` when given."""
    result.test_loss.append(loss)
    result.test_accuracy.append(accuracy)
    result.train_loss.append(float(np.mean(losses)))
    if log is not None:
        log(f"{name:>16s} epoch {epoch:3d}/{epochs}: train loss "
            f"{result.train_loss[-1]:.4f}, test loss {loss:.4f}, "
            f"test accuracy {100 * accuracy:.2f}%")


def train_run(train: TrainConfig, hardware: HardwareConfig, data=None, *,
              epochs: int | None = None, log: Callable[[str], None] | None = None,
              log_every: int = 5, progress: bool = False) -> RunResult:
    """Train one configuration; return its curves. ``data`` defaults to the split of
    :func:`~qforge.sim.training.data.load_digits_split` (a
    :class:`~qforge.sim.training.datasets.Dataset` or the four arrays); ``epochs`` overrides
    ``train.epochs``; ``log`` (if given) receives a progress line every ``log_every``
    epochs and after the last. Configurations with ``update = "hardware"`` run as
    programs on the golden machine (:func:`qforge.sim.training.hardware.train_program_run`;
    the CNN's: :func:`qforge.sim.training.cnn_hardware.train_cnn_program_run`).
    ``train.model == "cnn"`` trains the CNN (:func:`_cnn_run`), with a progress bar
    over its steps on stderr if ``progress``."""
    if hardware.update == "hardware":
        run = train_cnn_program_run if train.model == "cnn" else train_program_run
        return run(train, hardware, data, epochs=epochs, log=log, log_every=log_every)
    if train.model == "cnn":
        return _cnn_run(train, hardware, data, epochs, log, log_every, progress)
    classes = data.classes if isinstance(data, Dataset) else 10
    x_train, y_train, x_test, y_test = training_data(train, data)
    epochs = train.epochs if epochs is None else epochs
    result = RunResult(hardware.name, hardware.describe())
    start = time.perf_counter()
    w1, w2 = initial_weights(train.hidden, train.seed, x_train.shape[1], classes)
    x_train, x_test = with_ones(x_train), with_ones(x_test)
    onehot = np.eye(classes)[y_train]
    steps_total = epochs * tiles(len(x_train), train.batch_size)
    if hardware.is_float:
        x_train, onehot = x_train.astype(np.float32), onehot.astype(np.float32)
        network = _FloatNetwork(train, w1, w2, x_test, y_test)
    else:
        network = _EmulatedNetwork(train, hardware, w1, w2, x_test, y_test)
    loss, accuracy = network.evaluate()
    result.test_loss.append(loss)
    result.test_accuracy.append(accuracy)
    result.train_loss.append(None)             # no training before epoch 1
    step = 0
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in batches(len(x_train), train.batch_size, train.seed, epoch):
            lr = train.learning_rate_at(step, steps_total)
            losses.append(network.step(x_train[batch], onehot[batch], len(batch), step, lr))
            step += 1
        _record_epoch(result, hardware.name, epoch, epochs, losses, *network.evaluate(),
                      log=log if epoch % log_every == 0 or epoch == epochs else None)
    network.finish(result)
    result.seconds = time.perf_counter() - start
    return result


def _cnn_run(train: TrainConfig, hardware: HardwareConfig, data, epochs, log, log_every,
             progress: bool) -> RunResult:
    """:func:`train_run` of the CNN: the same schedule, batches and evaluation as the
    MLP's; images reshaped to ``N x 8 x 8 x 1``. Low-precision runs also record the
    GEMMs and cycle-model cycles of one epoch's training steps per layer and pass
    (:attr:`RunResult.layer_cycles`) and every epoch's training seconds."""
    image, classes = cnn.IMAGE, cnn.CLASSES          # the digits, or their flat arrays
    if isinstance(data, Dataset):
        image, classes = data.image_shape, data.classes
    x_train, y_train, x_test, y_test = training_data(train, data, flat=False)
    epochs = train.epochs if epochs is None else epochs
    result = RunResult(hardware.name, hardware.describe())
    start = time.perf_counter()
    parameters = cnn.initial_parameters(train.seed, image, classes)
    x_train, x_test = (x.reshape(-1, *image) for x in (x_train, x_test))
    onehot = np.eye(classes)[y_train]
    if hardware.is_float:
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
        onehot = onehot.astype(np.float32)
        ops = cnn.FloatOps(parameters)
    else:
        ops = cnn.EmulatedOps({layer: layer_arithmetic(hardware, layer)
                               for layer in cnn.LAYERS}, parameters, train.seed)
    network = cnn.Network(ops, image)
    steps_total = epochs * tiles(len(x_train), train.batch_size)
    bar = Progress(steps_total, f"{hardware.name:>16s}") if progress else None
    loss, accuracy = network.evaluate(x_test, y_test)
    result.test_loss.append(loss)
    result.test_accuracy.append(accuracy)
    result.train_loss.append(None)             # no training before epoch 1
    step = 0
    for epoch in range(1, epochs + 1):
        losses, epoch_start = [], time.perf_counter()
        for batch in batches(len(x_train), train.batch_size, train.seed, epoch):
            lr = train.learning_rate_at(step, steps_total)
            losses.append(network.step(x_train[batch], onehot[batch], len(batch), step, lr))
            step += 1
            if bar is not None:
                bar.advance(note=f"epoch {epoch}/{epochs}")
        result.epoch_seconds.append(time.perf_counter() - epoch_start)
        _record_epoch(result, hardware.name, epoch, epochs, losses,
                      *network.evaluate(x_test, y_test),
                      log=log if epoch % log_every == 0 or epoch == epochs else None)
    if bar is not None:
        bar.close()
    result.max_abs_weight = ops.max_abs_weight()
    if not hardware.is_float:
        updates = max(ops.updates, 1)
        result.saturated_weights = ops.saturated_weights()
        result.small_update_fraction = ops.small / updates
        result.small_update_mass = ops.small_mass / ops.total_mass if ops.total_mass else 0.0
        result.changed_fraction = ops.changed / updates
        result.gemms = ops.counter.gemms
        result.float64_fallbacks = ops.counter.float64_fallbacks
        result.layer_cycles = {layer: {pass_: {"gemms": ops.passes[(layer, pass_)][0] // epochs,
                                               "cycles": ops.passes[(layer, pass_)][1] // epochs}
                                       for pass_ in cnn.PASSES} for layer in cnn.LAYERS}
    result.seconds = time.perf_counter() - start
    return result


def _log_to_stderr(message: str) -> None:
    import sys
    print(message, file=sys.stderr, flush=True)


def _train_job(arguments):
    """One configuration's run in a worker process. A worker cannot receive the caller's
    ``log`` callable (it is not picklable), so with ``verbose`` its progress lines go
    to stderr."""
    train, hardware, data, epochs, verbose = arguments
    return train_run(train, hardware, data, epochs=epochs,
                     log=_log_to_stderr if verbose else None)


#: Runtime backends a training run can use (the board runs commands, not programs).
TRAIN_BACKENDS = ("golden", "rtl")


def _check_arguments(train, epochs, jobs, backend) -> None:
    """Each of :func:`train_all`'s arguments is what it allows, or one InputError."""
    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    if epochs is not None and not integer(epochs):
        raise InputError(f"train: epochs = {epochs!r}: must be an integer >= 1 (None: the "
                         f"config's epochs)")
    if not integer(jobs):
        raise InputError(f"train: jobs = {jobs!r}: must be an integer >= 1 (worker "
                         f"processes)")
    if backend is not None and backend not in TRAIN_BACKENDS:
        raise InputError(f"train: backend = {backend!r}: allowed: "
                         f"{', '.join(TRAIN_BACKENDS)} (None: the bit-exact emulator)")
    if not isinstance(train, TrainConfig):
        raise InputError(f"train: config = {train!r}: must be a TrainConfig "
                         f"(qforge.sim.training.load_train_config)")


def _check_dataset(train: TrainConfig, dataset: Dataset) -> None:
    """What a dataset read for ``train`` must also be: images for the CNN, whose GEMMs
    fit every configuration's preset; the MLP's ``X @ W1`` depth (features + 1) too.
    One :class:`TrainConfigError` otherwise."""
    where = f"{train.source}: dataset = {train.dataset!r}"
    if train.model == "cnn" and dataset.image_shape is None:
        raise TrainConfigError(f"{where}: model = \"cnn\" needs images (N x H x W [x C] "
                               f"arrays), not flat vectors of {dataset.features} values")
    for hardware in train.hardware:
        if hardware.is_float:
            continue
        smallest = min(float(dataset.x_train.min(initial=0)),
                       float(dataset.x_test.min(initial=0)))
        if _unsigned_inputs(hardware) and smallest < 0:
            raise TrainConfigError(
                f"{where}: {hardware.name} stores the CNN's layer inputs as unsigned codes "
                f"(unsigned_activations = true), and the images hold negative values "
                f"(smallest {smallest:g}); allowed: images >= 0, or unsigned_activations "
                f"= false")
        if train.model == "cnn":
            try:
                check_cnn_depth(train.batch_size, hardware, dataset.image_shape,
                                dataset.classes)
            except TrainConfigError as error:
                raise TrainConfigError(f"{where}: {error}") from None
        elif dataset.features + 1 > hardware.operand.config.max_reduction_depth:
            raise TrainConfigError(
                f"{where}: {dataset.features} features: the GEMM X @ W1 has depth "
                f"{dataset.features + 1}, over max_reduction_depth "
                f"{hardware.operand.config.max_reduction_depth} of {hardware.name}'s preset")


def _unsigned_inputs(hardware: HardwareConfig) -> bool:
    """Some layer of ``hardware`` (its own or a policy's forward entry) stores its
    input as unsigned codes."""
    return hardware.unsigned_activations or any(
        entry.forward.unsigned_activations for entry in hardware.policy)


def train_all(train: TrainConfig, *, epochs: int | None = None,
              log: Callable[[str], None] | None = None, jobs: int = 1,
              backend: str | None = None, check: bool = False,
              progress: bool = False, runtime_options: dict | None = None) -> dict:
    """Train every hardware configuration of ``train``; return a JSON-ready report.

    ``jobs > 1`` trains configurations in that many worker processes (``spawn``); the
    results are identical, since every run depends only on its configuration and seed.
    Workers print their progress lines to stderr whenever ``log`` is given.

    With ``progress``, the CNN's emulated runs show a progress bar on stderr (over each
    run's steps; with ``jobs > 1``, over finished configurations).

    ``backend`` (``"golden"`` or ``"rtl"``) runs the configurations with
    ``update = "hardware"`` as programs on that runtime backend, in this process, with
    a progress bar if ``progress`` and, with ``check``, compared with the golden machine
    after every program; float32 runs as the reference; any other configuration is a
    :class:`TrainConfigError`.

    Bad arguments are one :class:`~qforge.sim.model.errors.InputError` each, before any
    training:

    >>> train_all(None, epochs=0)
    Traceback (most recent call last):
    ...
    qforge.sim.model.errors.InputError: train: epochs = 0: must be an integer >= 1 (None: the config's epochs)
    """
    _check_arguments(train, epochs, jobs, backend)
    data = train_dataset(train)
    _check_dataset(train, data)
    if train.dataset == "digits" and any(h.update == "hardware" for h in train.hardware):
        data = data.arrays(flat=True)    # the programs read the digits' flat arrays
    if backend is not None:
        unsupported = [h.name for h in train.hardware
                       if not h.is_float and h.update != "hardware"]
        if unsupported:
            raise TrainConfigError(
                f"{train.source}: --backend {backend}: configuration(s) "
                f"{', '.join(unsupported)} update the weights on the host (update = "
                f"\"float\"); only update = \"hardware\" runs as programs (see "
                f"gen/train/rtl.toml, gen/train/cnn_rtl.toml)")
        program_run = train_cnn_program_run if train.model == "cnn" else train_program_run
        runs = [train_run(train, hardware, data, epochs=epochs, log=log)
                if hardware.is_float else
                program_run(train, hardware, data, backend=backend, epochs=epochs,
                            check=check, log=log, progress=progress,
                            runtime_options=runtime_options)
                for hardware in train.hardware]
    elif jobs > 1 and len(train.hardware) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        context = multiprocessing.get_context("spawn")
        # The CNN's runs are long: with progress, a bar over finished configurations.
        bar = Progress(len(train.hardware), "configurations trained") \
            if progress and train.model == "cnn" else None
        with ProcessPoolExecutor(min(jobs, len(train.hardware)), mp_context=context) as pool:
            futures = [pool.submit(_train_job, (train, hardware, data, epochs,
                                                log is not None))
                       for hardware in train.hardware]
            for future in as_completed(futures):
                if bar is not None:
                    bar.advance(note=future.result().name)
            runs = [future.result() for future in futures]
        if bar is not None:
            bar.close()
    else:
        runs = [train_run(train, hardware, data, epochs=epochs, log=log,
                          progress=progress and train.model == "cnn")
                for hardware in train.hardware]
    x_train, _, x_test, _ = data.arrays() if isinstance(data, Dataset) else data
    return {
        "name": train.name,
        "source": train.source,
        "model": train.model,
        "epochs": train.epochs if epochs is None else epochs,
        "batch_size": train.batch_size,
        "learning_rate": train.learning_rate,
        "learning_rate_final": train.learning_rate if train.learning_rate_final is None
        else train.learning_rate_final,
        "hidden": train.hidden,
        "seed": train.seed,
        "split_seed": train.split_seed,
        "dataset": train.dataset,
        "image": list(data.image_shape) if isinstance(data, Dataset) and data.image_shape
        else None,
        "features": x_train[0].size,
        "classes": data.classes if isinstance(data, Dataset) else 10,
        "train_samples": len(x_train) if train.train_samples is None
        else min(train.train_samples, len(x_train)),
        "test_samples": len(x_test),
        "runs": [run.to_dict() for run in runs],
    }
