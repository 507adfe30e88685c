"""The CNN trained as programs: every GEMM and weight update of a CNN training step runs
as qforge instructions on a runtime backend (:mod:`qforge.sim.runtime`, golden or rtl).

The network (:mod:`qforge.sim.training.cnn`: conv1 3x3 ``C -> 8`` padding 1, conv2 3x3
stride 2 ``8 -> 16`` padding 1, fc ``256 -> classes``, channels last, every stored
tensor quantized once), data, initial weights, batches, schedule and random keys are
those of the emulated CNN; the update rule is the MLP's hardware rule
(:func:`qforge.sim.training.hardware.update_operands`): ``-lr`` is folded into the
output gradient before it is quantized, and each weight update is one fused GEMM
``W <- clamp(W + round(A^T @ g / 2**s), weight_bits)`` (``sgd_update``) with the
output stage's rounding keyed by the layer's ``update_weights`` tensor.

**On the accelerator** (one program per line, each starting with the PRECISION words
and a raw ``OUTPUT``):

* conv1 forward, conv2 forward: ``conv2d_forward`` over the host-padded channels-last
  input codes (raw accumulators, the kernel rows summed with ``add``);
* fc forward: ``matmul``;
* fc: input gradient ``dZ3 @ W3^T`` (``matmul``, W read transposed) and the fc update
  (``sgd_update`` over the fc input codes);
* conv2: input gradient (``conv2d_input_gradient``: the input-gradient pass of
  ``conv2d_backward`` alone, into a zeroed padded buffer) and the conv2 update;
* conv1: the conv1 update.

**Why the convolutions' weight gradients are single GEMMs over host-gathered im2col
codes.** The fused stochastic update rounds ``A^T @ g`` *once*, so the whole reduction
over ``batch * out_height * out_width`` rows must be one GEMM (``sgd_update`` refuses to
split ``k``); ``conv2d_backward``'s weight gradient sums ``kernel_h * batch *
out_height`` GEMMs with ``add`` in the raw stage, and a raw ``dW`` cannot enter a
second GEMM as an operand. So the host gathers the layer's stored input codes by
:func:`~qforge.sim.training.cnn.im2col` (``(N * Ho * Wo) x (9 * Cin)``, column order
``(kh, kw, cin)``: the weights' row order) and ``sgd_update`` reads them transposed.
That gather is host work (a copy of codes), as are: quantizing every stored tensor
(inputs, weights, gradients, as the emulator does, with its keys), padding the conv
inputs and zeroing the padded input-gradient buffer, cropping the padding ring off
that gradient, the ReLU and its mask, the bias add, softmax and the loss, and the
**bias update** ``b <- Q_w(b - lr * db)`` (biases are host values, as in the emulator).

**Formats.** ``format = "int"``, ``update = "hardware"`` (gen/train/cnn_rtl.toml); a
per-layer policy (``[hardware.policy.LAYER]``) gives each layer its own formats, as the
emulated CNN takes them (:func:`layer_arithmetic`): the layer's input and weights in
its ``forward`` entry's operand format and rounding, its output gradient in its
``gradient`` entry's, its weights and biases in its ``update`` entry's weight format and
update rounding (every named format ``int`` on the entry's preset, weights at most the
accumulator width: the config's check). Each program's ``PRECISION`` words set operand
A and B to the formats its GEMMs read (forward: input and weights; input gradient:
gradient and weights; update: input and gradient), a word again only where the next
block's operand changes format.

**Paired mode and unsigned inputs** (the layer's ``forward`` entry's ``paired``,
``paired_passes``, ``unsigned_activations``; a preset with ``arithmetic.paired``): the
input codes are stored unsigned, and a paired pass's ``PRECISION`` word for A carries
the pairs' windows (:func:`~qforge.sim.model.machine.precision_word`). The machine pairs
the reduction dimension *of each GEMM it runs*: the ``conv2d_*`` blocks split a
convolution into one GEMM per kernel row (depth ``kernel * Cin``), so their pairs, and
the numbers, differ from the emulator's one im2col GEMM of depth ``9 * Cin`` (``fc``'s
GEMMs and the fused updates are the emulator's GEMMs, paired alike).

**Cycles per layer and pass** (:attr:`RunResult.layer_cycles`, one epoch's training
steps): each program's cycle-model count (:func:`~qforge.sim.model.cycles.program_cycles`)
goes to its layer: a forward program to ``forward``; a backward program is split at the
end of its input-gradient words (``input_gradient``: the count of the program up to
there, its ``PRECISION``/``OUTPUT`` words included; ``weight_gradient``: the rest). The
fused ``sgd_update`` *is* the weight gradient and the update in one GEMM and is counted
as ``weight_gradient``; ``update`` has no GEMM (0, 0), and the bias update is host work.
So a layer's passes add up to its programs' counts, and the layers to the epoch's
``epoch_model_cycles``.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from qforge.gen.asm import matmul_words, sgd_update_words
from qforge.gen.asm.conv import conv2d_forward_words, conv2d_input_gradient_words
from qforge.sim.model.cycles import program_cycles
from qforge.sim.model.isa import Opcode, Operand, decode, encode
from qforge.sim.model.machine import precision_word
from qforge.sim.model.rounding import Rounding
from qforge.sim.runtime import Runtime
import qforge.sim.training.cnn as cnn
from qforge.sim.training.config import HardwareConfig, TrainConfig
from qforge.sim.training.data import training_data
from qforge.sim.training.datasets import Dataset
from qforge.sim.training.emulated_gemm import gemm_precision
from qforge.sim.training.formats import Quantized, random_key
from qforge.sim.training.hardware import ProgramTrainer, _Tensor, run_epochs
from qforge.sim.training.network import log_softmax, loss_accuracy
from qforge.sim.training.report import RunResult

__all__ = ["CnnProgramTrainer", "train_cnn_program_run", "layer_arithmetic"]


def layer_arithmetic(hardware: HardwareConfig, layer: str) -> cnn.LayerArithmetic:
    """Layer ``layer``'s formats and roundings: its policy entry's configurations, or
    ``hardware``'s (:meth:`HardwareConfig.layer`), as the emulated CNN takes them; the
    paired mode, its passes and unsigned inputs are the ``forward`` entry's."""
    forward, gradient, update = hardware.layer(layer)
    return cnn.LayerArithmetic(forward.operand, forward.rounding, gradient.operand,
                               gradient.rounding, update.weights, update.update_rounding,
                               forward.paired, forward.paired_passes,
                               forward.unsigned_activations)


def _padded(codes: np.ndarray, shape: tuple[int, int, int, int], padding: int) -> np.ndarray:
    """``(N*H*W) x C`` codes as the ``(N*(H+2p)*(W+2p)) x C`` zero-padded buffer the
    conv2d blocks read."""
    n, height, width, channels = shape
    padded = np.zeros((n, height + 2 * padding, width + 2 * padding, channels),
                      dtype=codes.dtype)
    padded[:, padding:padding + height, padding:padding + width] = \
        codes.reshape(shape)
    return padded.reshape(-1, channels)


class CnnProgramTrainer(ProgramTrainer):
    """The CNN's training step and evaluation as programs on a :class:`Runtime`
    (``golden``: a golden runtime run in lockstep and compared after every program, as
    :class:`~qforge.sim.training.hardware.ProgramTrainer` does; its memory, running,
    checking and gradient-quantization helpers are reused, its buffers are the CNN's).

    Memory (element addresses, row-major, in this order): per conv layer the padded
    input codes, the weight operand codes, the raw output; the fc input codes, weight
    operand codes and raw logits (rows for ``max(batch, test_samples)`` images); the
    weight codes of each layer (``(9 * Cin) x Cout`` and ``256 x classes``, updated in
    place); per layer the gradient codes, the gathered im2col input codes of the
    updates and the raw input gradients (rows for one batch).
    """

    def __init__(self, train: TrainConfig, hardware: HardwareConfig, runtime: Runtime, *,
                 test_samples: int, golden: Runtime | None = None,
                 image: tuple[int, int, int] = cnn.IMAGE, classes: int = cnn.CLASSES):
        # ProgramTrainer.__init__ lays out the MLP's buffers; this one the CNN's.
        if hardware.operand is None or hardware.operand.kind != "int":
            raise ValueError(f"{hardware.name}: update = \"hardware\" needs format = \"int\"")
        self.train, self.hardware, self.runtime, self.golden = train, hardware, runtime, golden
        self.image, self.classes = image, classes
        self.config = hardware.operand.config
        self.fmt, self.wfmt = hardware.operand, hardware.weights
        self.weight_exponent = int(math.log2(self.wfmt.unit))
        #: Per layer: its formats and roundings (the policy's, or the entry's own).
        self.arithmetic = {layer: layer_arithmetic(hardware, layer) for layer in cnn.LAYERS}
        for layer, arithmetic in self.arithmetic.items():
            for fmt in (arithmetic.forward, arithmetic.gradient):
                if fmt.kind != "int" or fmt.config.name != self.config.name:
                    raise ValueError(f"{hardware.name}: {layer}'s format {fmt.describe()} "
                                     f"on {fmt.config.name!r}: the programs need format = "
                                     f"\"int\" on {self.config.name!r}")
        self.weight_exponents = {layer: int(math.log2(a.weights.unit))
                                 for layer, a in self.arithmetic.items()}
        self.max_shift = min(self.config.accumulator_width - 1, 63)
        rows, batch = max(train.batch_size, test_samples), train.batch_size
        shapes = {}
        for layer, (shape, conv) in cnn.layer_shapes(rows, image).items():
            if conv is None:
                inputs = shape[1]
                shapes.update({"fc_x": (rows, inputs), "fc_wq": (inputs, classes),
                               "fc_z": (rows, classes)})
                continue
            height, width, channels = shape[1:]
            out = conv.output_size(height) * conv.output_size(width)
            padded = (height + 2 * conv.padding) * (width + 2 * conv.padding)
            shapes.update({f"{layer}_x": (rows * padded, channels),
                           f"{layer}_wq": (conv.depth, conv.outputs),
                           f"{layer}_z": (rows * out, conv.outputs)})
        for layer, (m, n, depth) in ((layer, shape) for (layer, pass_), shape
                                     in cnn.gemm_shapes(batch, image, classes).items()
                                     if pass_ == "forward"):
            shapes[layer] = (depth, n)                        # the weight codes
        for layer, (shape, conv) in cnn.layer_shapes(batch, image).items():
            m, n, depth = cnn.gemm_shapes(batch, image, classes)[(layer, "forward")]
            shapes[f"{layer}_g"] = (m, n)
            if conv is not None:
                shapes[f"{layer}_columns"] = (m, depth)
            if layer != cnn.LAYERS[0]:
                if conv is None:
                    shapes[f"{layer}_dx"] = (batch, shape[1])
                else:
                    padded = (shape[1] + 2 * conv.padding) * (shape[2] + 2 * conv.padding)
                    shapes[f"{layer}_dx"] = (batch * padded, shape[3])
        self.tensors, address = {}, 0
        for name, (r, c) in shapes.items():
            self.tensors[name] = _Tensor(address, r, c)
            address += r * c
        for target in (runtime, golden):
            if target is not None:
                target.resize(address)
        self.gemms = self.cycles = self.model_cycles = self.programs = 0
        self.shifts: dict[str, int] = {}
        self._model_cache: dict[tuple, int] = {}
        #: Per ``(layer, pass)`` (:data:`cnn.PASSES`): ``[GEMMs, cycle-model cycles]`` of
        #: the training steps' programs so far (:meth:`_run_passes`).
        self.passes = {(layer, pass_): [0, 0] for layer in cnn.LAYERS for pass_ in cnn.PASSES}
        self._prefix_cache: dict[tuple, tuple[int, int]] = {}
        self._gemm_cache: dict[tuple, int] = {}
        self._counting = False                # inside a training step
        #: The biases' codes of the weight format, per layer (host values).
        self.bias_codes: dict[str, np.ndarray] = {}
        self._batch = train.batch_size        # the images of the current step

    # ---- keys and quantization (host) ---------------------------------------------------
    def _key(self, slot: str, step: int) -> tuple[int, int]:
        """The emulated CNN's key of tensor ``slot`` (:data:`cnn.SLOTS`) of ``step``."""
        return random_key(self.train.seed, step * len(cnn.SLOTS) + cnn.SLOTS.index(slot))

    def _format(self, slot: str):
        """Slot ``LAYER_ROLE``'s operand format: the layer's gradient format for its
        output gradient, its forward format for its input (unsigned with
        ``unsigned_input``) and weights (as the emulator's ``EmulatedOps.store``)."""
        layer, role = slot.split("_", 1)
        arithmetic = self.arithmetic[layer]
        if role == "gradient":
            return arithmetic.gradient
        if role == "input" and arithmetic.unsigned_input:
            return replace(arithmetic.forward, unsigned=True)
        return arithmetic.forward

    def _rounding(self, slot: str) -> Rounding:
        layer, role = slot.split("_", 1)
        arithmetic = self.arithmetic[layer]
        return (arithmetic.gradient_rounding if role == "gradient"
                else arithmetic.forward_rounding)

    def _precision(self, layer: str, pass_: str, a: Quantized, b: Quantized,
                   current=None) -> tuple[list[int], object]:
        """``PRECISION`` words (:func:`~qforge.sim.model.machine.precision_word`) that
        set operands A and B to the precisions of layer ``layer``'s ``pass_`` GEMM of
        ``a`` and ``b`` (their formats', A paired if the layer pairs the pass:
        :func:`~qforge.sim.training.emulated_gemm.gemm_precision`), less those already
        set (``current``: the program's earlier GEMM's precision); and that precision."""
        precision = gemm_precision(a.fmt.precision, b.fmt.precision,
                                   self.arithmetic[layer].pass_paired(pass_))
        words = [precision_word(operand, mode)
                 for operand, mode, now in ((Operand.A, precision.a,
                                             current and current.a),
                                            (Operand.B, precision.b,
                                             current and current.b))
                 if mode != now]
        return words, precision

    def _run_passes(self, layer: str, parts: list[tuple[str, list[int]]], what: str,
                    key: tuple) -> None:
        """Run the program made of ``parts`` (``(pass, words)`` in order; ``key`` as
        :meth:`_run` takes it) and, inside a training step, add each part's GEMMs and
        cycles to :attr:`passes` of ``layer``: a part's cycles are the cycle model's
        count of the program up to the part's end
        (:func:`~qforge.sim.model.cycles.program_cycles`) less that up to the previous
        part's end, so the parts add up to the program's count exactly (a later part's
        overlap with the earlier one's tail is counted once, in the earlier part)."""
        words = [word for _, part in parts for word in part]
        self._run(words, what, key)
        if not self._counting:
            return
        prefix, before = [], (0, 0)
        for index, (pass_, part) in enumerate(parts):
            prefix += part
            if index == len(parts) - 1:          # the whole program: _run costed it
                if key not in self._gemm_cache:
                    self._gemm_cache[key] = sum(decode(word)[0] == Opcode.GEMM
                                                for word in words)
                now = (self._gemm_cache[key], self._model_cache[key])
            else:       # a prefix's words hold no shift or key: the same every step
                now = self._prefix_cache.get(tuple(prefix))
                if now is None:
                    report = program_cycles(self.config, prefix)
                    now = self._prefix_cache[tuple(prefix)] = (report.gemms, report.total)
            entry = self.passes[(layer, pass_)]
            entry[0] += now[0] - before[0]
            entry[1] += now[1] - before[1]
            before = now

    def layer_cycles(self, epochs: int) -> dict:
        """:attr:`RunResult.layer_cycles` of one epoch of ``epochs`` counted: per layer
        and pass ``{"gemms": n, "cycles": c}`` (every epoch runs the same programs)."""
        return {layer: {pass_: {"gemms": self.passes[(layer, pass_)][0] // epochs,
                                "cycles": self.passes[(layer, pass_)][1] // epochs}
                        for pass_ in cnn.PASSES} for layer in cnn.LAYERS}

    def _conv_sizes(self, layer: str, n: int) -> dict[str, int]:
        """The conv2d blocks' size operands of conv layer ``layer`` on ``n`` images."""
        shape, conv = cnn.layer_shapes(n, self.image)[layer]
        return dict(batch=n, height=shape[1], width=shape[2], in_channels=shape[3],
                    out_channels=conv.outputs, kernel=conv.kernel, stride=conv.stride,
                    padding=conv.padding)

    # ---- the passes ---------------------------------------------------------------------
    def _layer_forward(self, layer: str, activation: np.ndarray, step: int,
                       rounding) -> tuple[Quantized, Quantized, np.ndarray]:
        """One layer's forward programs: ``(stored input, weight operand, Z)`` with Z =
        the raw GEMM result scaled, plus the bias (host)."""
        n = len(activation)
        shape, conv = cnn.layer_shapes(n, self.image)[layer]
        t = self.tensors
        if conv is None:
            stored = self._quantize(activation.reshape(n, -1), f"{layer}_input", step,
                                    rounding)
            self._write("fc_x", stored.integers)
        else:
            stored = self._quantize(activation.reshape(-1, shape[3]), f"{layer}_input",
                                    step, rounding)
            self._write(f"{layer}_x", _padded(stored.integers, shape, conv.padding))
        arithmetic = self.arithmetic[layer]
        weights = self._quantize(arithmetic.weights.value(self._read(layer)),
                                 f"{layer}_weights", step, rounding)
        self._write(f"{layer}_wq", weights.integers)
        # One program per batch_size images: the evaluation's programs are the training
        # step's shapes (the cycle model, whose cost grows with a program's GEMMs, runs
        # once per shape; its cycles do not depend on where the operands lie), over the
        # whole tensor quantized once.
        chunk = self.train.batch_size
        for first in range(0, n, chunk):
            size = min(chunk, n - first)
            if conv is None:
                words = matmul_words(self.config, a=t["fc_x"].address + first * shape[1],
                                     b=t["fc_wq"].address,
                                     c=t["fc_z"].address + first * self.classes,
                                     m=size, n=self.classes, k=shape[1])
            else:
                padded = (shape[1] + 2 * conv.padding) * (shape[2] + 2 * conv.padding)
                out = conv.output_size(shape[1]) * conv.output_size(shape[2])
                words = conv2d_forward_words(
                    self.config, x=t[f"{layer}_x"].address + first * padded * shape[3],
                    w=t[f"{layer}_wq"].address,
                    y=t[f"{layer}_z"].address + first * out * conv.outputs,
                    **self._conv_sizes(layer, size))
            prologue = self._precision(layer, "forward", stored, weights)[0] \
                + [encode(Opcode.OUTPUT)]
            self._run_passes(layer, [("forward", prologue + words)],
                             f"step {step}: {layer} forward (images {first} .. "
                             f"{first + size - 1})", (layer, "forward", size))
        rows = n if conv is None else \
            n * conv.output_size(shape[1]) * conv.output_size(shape[2])
        raw = self._read(f"{layer}_z", rows)
        z = np.ldexp(raw.astype(np.float64), stored.exponent + weights.exponent) \
            + arithmetic.weights.value(self.bias_codes[layer])
        return stored, weights, z

    def forward(self, x: np.ndarray, step: int, rounding=None):
        """Logits of images ``x`` (``N x H x W x C``) and per layer ``(stored input,
        weight operand, Z)``; ``rounding`` overrides the operands' (the evaluation's
        nearest)."""
        saved, activation = {}, x
        for layer in cnn.LAYERS:
            stored, weights, z = self._layer_forward(layer, activation, step, rounding)
            saved[layer] = (stored, weights, z)
            shape, conv = cnn.layer_shapes(len(x), self.image)[layer]
            if conv is not None:
                activation = np.maximum(z, 0).reshape(
                    len(x), conv.output_size(shape[1]), conv.output_size(shape[2]),
                    conv.outputs)
        return z, saved

    def _update_bias(self, layer: str, gradient: np.ndarray, step: int) -> None:
        """``b <- Q_w(b + sum(g))`` on the host (``g`` carries ``-lr``), the emulator's
        bias rule and key."""
        seed, tensor = self._key(f"{layer}_update_bias", step)
        arithmetic = self.arithmetic[layer]
        wfmt = arithmetic.weights
        self.bias_codes[layer] = wfmt.quantize(
            wfmt.value(self.bias_codes[layer]) + gradient.sum(axis=0, keepdims=True),
            arithmetic.update_rounding, seed=seed, tensor=tensor)

    def _layer_backward(self, layer: str, saved, dz: np.ndarray, step: int):
        """One layer's backward program (input gradient, if any, and the fused weight
        update) for the output gradient ``dz`` (``-lr`` folded in); returns the input
        gradient below the layer (before the mask), or None for the first layer."""
        stored, weights, _ = saved[layer]
        n = self._batch
        shape, conv = cnn.layer_shapes(n, self.image)[layer]
        t = self.tensors
        arithmetic = self.arithmetic[layer]
        wfmt = arithmetic.weights
        gradient, shift = self._gradient(dz, f"{layer}_gradient", step, stored.exponent,
                                         self.weight_exponents[layer])
        self.shifts[layer] = shift
        self._write(f"{layer}_g", gradient.integers)
        if conv is None:
            columns, inputs = "fc_x", shape[1]
        else:
            columns, inputs = f"{layer}_columns", conv.depth
            self._write(columns, cnn.im2col(stored.integers.reshape(shape), conv))
        below = layer != cnn.LAYERS[0]
        # The input gradient reads the gradient as A and the weights as B; the update
        # the layer's input codes as A (transposed) and the gradient as B.
        parts, current = [], None
        if below:
            words, current = self._precision(layer, "input_gradient", gradient, weights)
            words += [encode(Opcode.OUTPUT)]
        if below and conv is None:
            words += self._matmul(f"{layer}_g", f"{layer}_wq", f"{layer}_dx", n, inputs,
                                  self.classes, transpose_b=True)
        elif below:
            self._write(f"{layer}_dx", np.zeros((t[f"{layer}_dx"].rows,
                                                 t[f"{layer}_dx"].cols), dtype=np.int64))
            words += conv2d_input_gradient_words(
                self.config, w=t[f"{layer}_wq"].address, dy=t[f"{layer}_g"].address,
                dx=t[f"{layer}_dx"].address, **self._conv_sizes(layer, n))
        if below:
            parts.append(("input_gradient", words))
            words = self._precision(layer, "weight_gradient", stored, gradient, current)[0]
        else:
            words = self._precision(layer, "weight_gradient", stored, gradient)[0] \
                + [encode(Opcode.OUTPUT)]
        seed, tensor = self._key(f"{layer}_update_weights", step)
        rows = len(gradient.integers)
        words += sgd_update_words(self.config, w=t[layer].address, x=t[columns].address,
                                  dy=t[f"{layer}_g"].address, batch=rows, inputs=inputs,
                                  outputs=t[layer].cols, shift=shift,
                                  weight_bits=wfmt.bits, seed=seed, tensor=tensor,
                                  rounding=arithmetic.update_rounding)
        # The fused update is the weight gradient and the update in one GEMM: counted
        # as the layer's weight gradient (its update pass has no GEMM of its own).
        parts.append(("weight_gradient", words))
        self._run_passes(layer, parts, f"step {step}: {layer} backward and update",
                         (layer, "backward", n, shift))
        self._update_bias(layer, dz, step)
        if not below:
            return None
        scale = gradient.exponent + weights.exponent
        if conv is None:
            return np.ldexp(self._read(f"{layer}_dx", n).astype(np.float64), scale)
        p = conv.padding
        padded = self._read(f"{layer}_dx", n * (shape[1] + 2 * p) * (shape[2] + 2 * p)
                            ).reshape(n, shape[1] + 2 * p, shape[2] + 2 * p, shape[3])
        interior = padded[:, p:p + shape[1], p:p + shape[2]].reshape(-1, shape[3])
        return np.ldexp(interior.astype(np.float64), scale)

    # ---- the public steps ---------------------------------------------------------------
    def initialize(self) -> None:
        for layer, (weights, bias) in cnn.initial_parameters(
                self.train.seed, self.image, self.classes).items():
            wfmt = self.arithmetic[layer].weights
            self._write(layer, wfmt.quantize(weights, Rounding.NEAREST_EVEN))
            self.bias_codes[layer] = wfmt.quantize(bias, Rounding.NEAREST_EVEN)

    def step(self, x: np.ndarray, onehot: np.ndarray, step: int, lr: float) -> float:
        """One SGD step on images ``x`` (``N x H x W x C``); returns the batch's loss."""
        n = self._batch = len(x)
        self._counting = True
        logits, saved = self.forward(x, step)
        log_p = log_softmax(logits)
        loss = -float((log_p * onehot).sum() / n)
        dz = -lr * (np.exp(log_p) - onehot) / n
        for index in range(len(cnn.LAYERS) - 1, -1, -1):
            layer = cnn.LAYERS[index]
            dinput = self._layer_backward(layer, saved, dz, step)
            if dinput is not None:
                below = saved[cnn.LAYERS[index - 1]][2]
                dz = dinput.reshape(below.shape) * cnn.relu_mask(below)
        self._counting = False
        return loss

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
        """Test loss and accuracy; operands rounded to nearest, keys of step 0."""
        logits, _ = self.forward(x_test, 0, Rounding.NEAREST_EVEN)
        return loss_accuracy(logits, y_test)

    def weight_codes(self) -> tuple[np.ndarray, ...]:
        return tuple(self._read(layer) for layer in cnn.LAYERS)


def train_cnn_program_run(train: TrainConfig, hardware: HardwareConfig, data=None, *,
                          backend: str = "golden", epochs: int | None = None,
                          check: bool = False, log: Callable[[str], None] | None = None,
                          progress: bool = False, log_every: int = 5,
                          runtime_options: dict | None = None) -> RunResult:
    """:func:`~qforge.sim.training.hardware.train_program_run` for ``model = "cnn"``:
    the CNN's schedule, batches and evaluation (:func:`qforge.sim.training.loop.train_run`),
    every GEMM and weight update a program on ``backend``; the backend's and the cycle
    model's cycles per epoch (training steps; the evaluation apart) and, per layer and
    pass, the GEMMs and cycle-model cycles of one epoch's training steps
    (:attr:`RunResult.layer_cycles`, :meth:`CnnProgramTrainer._run_passes`)."""
    image, classes = cnn.IMAGE, cnn.CLASSES
    if isinstance(data, Dataset):
        image, classes = data.image_shape, data.classes
    x_train, y_train, x_test, y_test = training_data(train, data, flat=False)
    x_train, x_test = (np.asarray(x).reshape(-1, *image) for x in (x_train, x_test))
    epochs = train.epochs if epochs is None else epochs
    result = RunResult(hardware.name, hardware.describe())
    result.backend = backend
    start = time.perf_counter()
    onehot = np.eye(classes)[y_train]
    config = hardware.operand.config
    runtime = Runtime(config, backend, **(runtime_options or {}))
    golden = Runtime(config, "golden") if check and backend != "golden" else None
    try:
        trainer = CnnProgramTrainer(train, hardware, runtime, test_samples=len(x_test),
                                    golden=golden, image=image, classes=classes)
        run_epochs(trainer, result, train, (x_train, onehot, x_test, y_test),
                   backend=backend, epochs=epochs, log=log, progress=progress,
                   log_every=log_every, time_evaluation=False,
                   stored_codes=lambda: (trainer.weight_codes()
                                         + tuple(trainer.bias_codes.values())))
        result.layer_cycles = trainer.layer_cycles(epochs)
        # run_epochs reads every stored code in the entry's weight format; with a
        # policy each layer's codes are in its own.
        stored = {layer: (trainer.arithmetic[layer].weights,
                          (codes, trainer.bias_codes[layer]))
                  for layer, codes in zip(cnn.LAYERS, trainer.weight_codes())}
        result.max_abs_weight = max(float(np.abs(wfmt.value(c)).max())
                                    for wfmt, codes in stored.values() for c in codes)
        result.saturated_weights = sum(wfmt.saturated_count(codes)
                                       for wfmt, codes in stored.values())
    finally:
        runtime.close()
    result.seconds = time.perf_counter() - start
    return result
