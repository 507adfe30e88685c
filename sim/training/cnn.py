"""The digits CNN: its architecture, the lowering of its convolutions to GEMMs (im2col),
its host arithmetic, and one emulated or float32 training step.

The network
-----------
Images are ``N x 8 x 8 x 1`` (channels last, pixels / 16)::

    conv1  3x3, 1 -> 8,  padding 1, stride 1   N x 8 x 8 x 8     ReLU
    conv2  3x3, 8 -> 16, padding 1, stride 2   N x 4 x 4 x 16    ReLU
    fc     flatten (h, w, c order) 256 -> 10                      softmax cross-entropy

The stride of ``conv2`` keeps every GEMM's depth within the default preset's
``max_reduction_depth`` (2048) at batch 32 (``conv1``'s weight gradient reduces over
``N * 64`` rows) and the fully connected layer small (256 inputs, not 1024). Another
dataset's ``H x W x C`` images (``dataset = "npz:PATH"``) get the same layers with
``conv1`` taking ``C`` channels, ``fc`` all of conv2's outputs and one output per class
(:func:`convolutions`, :func:`fc_inputs`).

Lowering to GEMMs
-----------------
Activations are stored channels last, ``N x H x W x C``, as a ``(N*H*W) x C`` matrix;
a convolution's weights ``kh x kw x Cin x Cout`` as the ``(kh*kw*Cin) x Cout`` matrix
of that row-major order. :func:`im2col` gathers the input into the ``(N*Ho*Wo) x
(kh*kw*Cin)`` matrix whose row ``(n, oh, ow)`` (row-major) holds the receptive field in
**column order (kh, kw, cin)** (row-major: ``column = (i * kw + j) * Cin + c``), zeros
where the window reaches into the padding. Then, for a layer with stored input ``X``,
columns ``C = im2col(X)``, weights ``W`` and output gradient ``dZ`` (``(N*Ho*Wo) x
Cout``)::

    Z  = C @ W                 forward               depth kh*kw*Cin
    dW = C^T @ dZ              weight gradient       depth N*Ho*Wo
    dX = col2im(dZ @ W^T)      input gradient        depth Cout

:func:`col2im` (host) adds every column back onto the input element it was gathered
from. The fully connected layer is the same with ``C`` the flattened input. Every GEMM
is an emulated hardware GEMM; the first layer's input gradient is not computed.

Quantization: each stored tensor (input activations, weights, output gradients) is
quantized **once, as stored** (:func:`~qforge.sim.training.formats.quantize_operand` on
its ``(N*H*W) x C`` or weight matrix) and the GEMMs read its integer forms gathered by
:func:`im2col` (padding reads zero) or transposed, as a data mover gathering stored codes
would. The biases are not folded into the GEMMs (a ones column would have to be
quantized with the gathered activations): they are kept in the layer's weight format
and added on the host, and their gradient (``dZ`` summed over rows) is host work, like
the ReLU and its mask, col2im, softmax and the loss.

Paired mode and unsigned activations
------------------------------------
A layer may run some of its GEMMs in the paired precision mode
(:mod:`qforge.sim.model.paired`; :class:`LayerArithmetic` ``paired`` and
``paired_passes``): the GEMM's A operand, walked in pairs along the reduction axis, is
reduced to the pairs' windows by the golden model's rule, B stays exact, and the cycle
model counts ``ceil(depth / 2)`` slots. A is the layer's input columns in ``forward``
(``C @ W``: pairs of the receptive field) and ``weight_gradient`` (``C^T @ dZ``: pairs
of rows, images and positions), the output gradient in ``input_gradient`` (``dZ @
W^T``: pairs of output channels). Every layer input is non-negative (the digits'
pixels, then post-ReLU activations), so it may be stored as unsigned codes
(``unsigned_input``: one more bit, ``0 .. 255`` for 8 bits;
:class:`~qforge.sim.training.formats.OperandFormat` ``unsigned``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qforge.sim.model.cycles import gemm_cycles, gemm_shape
from qforge.sim.model.paired import PairedPrecision
from qforge.sim.model.random_bits import random_words_batch
from qforge.sim.model.rounding import Rounding
from qforge.sim.training.emulated_gemm import GemmCounter, emulated_matmul, gemm_precision
from qforge.sim.training.formats import Quantized, quantize_operand, random_key
from qforge.sim.training.network import log_softmax, loss_accuracy

__all__ = ["IMAGE", "CLASSES", "ConvShape", "convolutions", "CONV1", "CONV2", "fc_inputs",
           "FC_INPUTS", "LAYERS", "PASSES", "GEMM_PASSES", "ROLES", "SLOTS", "im2col", "col2im", "gather",
           "mixed_matmul", "relu_mask", "initial_parameters", "layer_shapes", "gemm_shapes",
           "Network", "FloatOps", "LayerArithmetic", "EmulatedOps"]

#: Input images: height, width, channels.
IMAGE = (8, 8, 1)
#: Output classes.
CLASSES = 10


@dataclass(frozen=True)
class ConvShape:
    """A square convolution: ``kernel x kernel``, ``inputs -> outputs`` channels."""

    inputs: int
    outputs: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1

    def output_size(self, size: int) -> int:
        """Output height (width) of an input of height (width) ``size``.

        >>> ConvShape(8, 16, stride=2).output_size(8), ConvShape(1, 8).output_size(8)
        (4, 8)
        """
        return (size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def depth(self) -> int:
        """The forward GEMM's depth, ``kernel * kernel * inputs``."""
        return self.kernel * self.kernel * self.inputs


def convolutions(image: tuple[int, int, int] = IMAGE) -> tuple[ConvShape, ConvShape]:
    """``conv1`` (3x3, ``C -> 8``) and ``conv2`` (3x3, stride 2, ``8 -> 16``) for
    ``H x W x C`` images."""
    return ConvShape(image[2], 8), ConvShape(8, 16, stride=2)


CONV1, CONV2 = convolutions()


def fc_inputs(image: tuple[int, int, int] = IMAGE) -> int:
    """The fully connected layer's inputs: conv2's output, flattened (256 for digits'
    ``8 x 8 x 1``: ``4 x 4 x 16``).

    >>> fc_inputs(), fc_inputs((28, 28, 1))
    (256, 3136)
    """
    conv1, conv2 = convolutions(image)
    height = conv2.output_size(conv1.output_size(image[0]))
    width = conv2.output_size(conv1.output_size(image[1]))
    return height * width * conv2.outputs


FC_INPUTS = fc_inputs()
#: The layers in order; their names are the keys of a per-layer precision policy.
LAYERS = ("conv1", "conv2", "fc")


def im2col(x: np.ndarray, conv: ConvShape) -> np.ndarray:
    """The ``(N*Ho*Wo) x (kernel*kernel*Cin)`` column matrix of ``x`` (``N x H x W x
    Cin``): row ``(n, oh, ow)`` row-major, column ``(i * kernel + j) * Cin + c`` holding
    ``x[n, oh*stride + i - padding, ow*stride + j - padding, c]``, 0 in the padding.
    Works on any dtype (codes or floats).

    >>> x = np.arange(4).reshape(1, 2, 2, 1)
    >>> im2col(x, ConvShape(1, 1, kernel=2, padding=0)).tolist()
    [[0, 1, 2, 3]]
    >>> im2col(x, ConvShape(1, 1, kernel=3))[0].tolist()   # output (0, 0): top-left pad
    [0, 0, 0, 0, 0, 1, 0, 2, 3]
    """
    n, height, width, channels = x.shape
    k, s, p = conv.kernel, conv.stride, conv.padding
    out_h, out_w = conv.output_size(height), conv.output_size(width)
    padded = np.zeros((n, height + 2 * p, width + 2 * p, channels), dtype=x.dtype)
    padded[:, p:p + height, p:p + width] = x
    columns = np.empty((n, out_h, out_w, k, k, channels), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            columns[:, :, :, i, j] = padded[:, i:i + s * out_h:s, j:j + s * out_w:s]
    return columns.reshape(n * out_h * out_w, k * k * channels)


def col2im(columns: np.ndarray, shape: tuple[int, int, int, int],
           conv: ConvShape) -> np.ndarray:
    """The adjoint of :func:`im2col`: every entry of ``columns`` added onto the element of
    an ``N x H x W x Cin`` tensor (``shape``) it was gathered from (padding dropped).

    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> col2im(np.ones((4, 18)), x.shape, ConvShape(2, 1))[0, :, :, 0].tolist()
    [[4.0, 4.0], [4.0, 4.0]]
    """
    n, height, width, channels = shape
    k, s, p = conv.kernel, conv.stride, conv.padding
    out_h, out_w = conv.output_size(height), conv.output_size(width)
    blocks = columns.reshape(n, out_h, out_w, k, k, channels)
    padded = np.zeros((n, height + 2 * p, width + 2 * p, channels), dtype=columns.dtype)
    for i in range(k):
        for j in range(k):
            padded[:, i:i + s * out_h:s, j:j + s * out_w:s] += blocks[:, :, :, i, j]
    return padded[:, p:p + height, p:p + width]


def gather(q: Quantized, shape: tuple[int, int, int, int], conv: ConvShape) -> Quantized:
    """The stored, quantized ``(N*H*W) x C`` tensor ``q`` of an ``N x H x W x C``
    activation (``shape``), gathered by :func:`im2col` into the GEMM operand (same
    format and exponent; padding reads integer 0, value 0)."""
    if q.integers is None:
        return q.with_integers(None, im2col(q.floats.reshape(shape), conv))
    return q.with_integers(im2col(q.integers.reshape(shape), conv))


def _exact_form(q: Quantized) -> Quantized:
    """An ``int`` operand with kept-block approximation as exact integer forms (the
    approximation applied), for a GEMM whose other operand is another format."""
    fmt = q.fmt
    if fmt.kind != "int" or fmt.precision.exact:
        return q
    return Quantized(replace(fmt, kept=None), q.approximate().integers, q.exponent)


def mixed_matmul(a: Quantized, b: Quantized, counter: GemmCounter | None = None, *,
                 paired: PairedPrecision | None = None) -> np.ndarray:
    """:func:`~qforge.sim.training.emulated_gemm.emulated_matmul`, also when ``a`` and
    ``b`` are in different formats (a per-layer policy's forward and gradient formats):
    then an approximate ``int`` operand enters as its approximated integer forms, which
    the exact integer GEMM of mixed formats multiplies. ``paired``: A's paired mode
    (both operands ``int``; else the :class:`ValueError` of ``emulated_matmul``)."""
    if a.fmt.kind != b.fmt.kind:
        a, b = _exact_form(a), _exact_form(b)
    return emulated_matmul(a, b, counter, paired=paired)


def relu_mask(z: np.ndarray) -> np.ndarray:
    """The ReLU's derivative mask, ``z > 0``, in ``z``'s dtype."""
    return (z > 0).astype(z.dtype)


def initial_parameters(seed: int, image: tuple[int, int, int] = IMAGE,
                       classes: int = CLASSES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """He-uniform weights and zero biases per layer from ``default_rng(seed)``: conv
    weights ``(kernel*kernel*Cin) x Cout`` (column order of :func:`im2col`), fc weights
    ``fc_inputs(image) x classes``."""
    rng = np.random.default_rng(seed)
    parameters = {}
    conv1, conv2 = convolutions(image)
    for name, fan_in, outputs in (("conv1", conv1.depth, conv1.outputs),
                                  ("conv2", conv2.depth, conv2.outputs),
                                  ("fc", fc_inputs(image), classes)):
        weights = rng.uniform(-1, 1, (fan_in, outputs)) * math.sqrt(6 / fan_in)
        parameters[name] = (weights, np.zeros((1, outputs)))
    return parameters


#: Training passes of a layer, the keys of the per-layer cycle report. ``update`` is
#: the weight update: on the host in the emulator (0 GEMMs); the accelerator fuses it
#: into the weight gradient GEMM (W as the addend, ``sgd_update``).
PASSES = ("forward", "weight_gradient", "input_gradient", "update")
#: The passes that are GEMMs in the emulator (those a layer may run paired).
GEMM_PASSES = PASSES[:3]
#: The tensors of one step that get their own stochastic-rounding bits, per layer.
ROLES = ("input", "weights", "gradient", "update_weights", "update_bias")
#: Tensor slots of one CNN step (``step * len(SLOTS) + index`` is a tensor's counter
#: of :func:`~qforge.sim.training.formats.random_key`).
SLOTS = tuple(f"{layer}_{role}" for layer in LAYERS for role in ROLES)


def _slot_parts(slot: str) -> tuple[str, str]:
    """``(layer, role)`` of a :data:`SLOTS` name."""
    layer, role = slot.split("_", 1)
    return layer, role


def layer_shapes(batch: int, image: tuple[int, int, int] = IMAGE) -> dict[str, tuple]:
    """Per layer: the input's ``N x H x W x C`` shape and the :class:`ConvShape`
    (``None`` for fc, whose input is flattened), for a batch of ``batch`` images."""
    conv1, conv2 = convolutions(image)
    height, width = conv1.output_size(image[0]), conv1.output_size(image[1])
    return {"conv1": ((batch, *image), conv1),
            "conv2": ((batch, height, width, conv1.outputs), conv2),
            "fc": ((batch, fc_inputs(image)), None)}


def gemm_shapes(batch: int, image: tuple[int, int, int] = IMAGE,
                classes: int = CLASSES) -> dict[tuple[str, str], tuple[int, int, int]]:
    """``(m, n, depth)`` of every GEMM of one training step on ``batch`` images, keyed
    by ``(layer, pass)``.

    >>> gemm_shapes(32)[("conv1", "weight_gradient")], gemm_shapes(32)[("fc", "forward")]
    ((9, 8, 2048), (32, 10, 256))
    """
    shapes = {}
    for layer, (shape, conv) in layer_shapes(batch, image).items():
        if conv is None:
            rows, depth, outputs = batch, shape[1], classes
        else:
            rows = batch * conv.output_size(shape[1]) * conv.output_size(shape[2])
            depth, outputs = conv.depth, conv.outputs
        shapes[(layer, "forward")] = (rows, outputs, depth)
        shapes[(layer, "weight_gradient")] = (depth, outputs, rows)
        if layer != LAYERS[0]:
            shapes[(layer, "input_gradient")] = (rows, depth, outputs)
    return shapes


class Network:
    """The CNN's training step and evaluation over an arithmetic ``ops`` (float32 or
    emulated hardware: :class:`FloatOps`, :class:`EmulatedOps`), which stores
    (quantizes) tensors, gathers, multiplies and updates the parameters."""

    def __init__(self, ops, image: tuple[int, int, int] = IMAGE):
        self.ops, self.image = ops, image

    def forward(self, x, step: int, training: bool):
        """Logits of images ``x`` (``N x H x W x C``) and, per layer, what the backward
        pass needs: ``(GEMM input (columns), stored weights, pre-activation Z)``.
        ``training``: stochastic rounding and the per-pass cycle counts (else nearest,
        not counted: the evaluation)."""
        ops, n, saved = self.ops, len(x), {}
        activation = x
        for layer, (shape, conv) in layer_shapes(n, self.image).items():
            if conv is None:
                stored = ops.store(activation.reshape(n, -1), layer, "input", step,
                                   training)
                columns = stored
            else:
                stored = ops.store(activation.reshape(-1, shape[3]), layer, "input", step,
                                   training)
                columns = ops.gather(stored, activation.shape, conv)
            weights = ops.store(ops.weights(layer), layer, "weights", step, training)
            z = ops.matmul(columns, weights, layer, "forward", training) + ops.bias(layer)
            saved[layer] = (columns, weights, z)
            if conv is not None:
                activation = np.maximum(z, 0).reshape(
                    n, conv.output_size(activation.shape[1]),
                    conv.output_size(activation.shape[2]), conv.outputs)
        return z, saved

    def step(self, x, onehot, n: int, step: int, lr: float) -> float:
        """One SGD step on images ``x`` with one-hot targets; returns the batch's loss."""
        ops = self.ops
        ops.begin_step(step, n, self.image)
        logits, saved = self.forward(x, step, True)
        log_p = log_softmax(logits)
        loss = -float((log_p * onehot).sum() / n)
        dz = (np.exp(log_p) - onehot) / log_p.dtype.type(n)
        shapes = layer_shapes(n, self.image)
        for index in range(len(LAYERS) - 1, -1, -1):
            layer = LAYERS[index]
            columns, weights, _ = saved[layer]
            gradient = ops.store(dz, layer, "gradient", step, True)
            dw = ops.matmul(columns.T, gradient, layer, "weight_gradient", True)
            db = dz.sum(axis=0, keepdims=True)
            if index > 0:
                dcolumns = ops.matmul(gradient, weights.T, layer, "input_gradient", True)
                shape, conv = shapes[layer]
                below = saved[LAYERS[index - 1]][2]
                if conv is None:
                    dinput = dcolumns
                else:
                    dinput = col2im(dcolumns, shape, conv).reshape(-1, shape[3])
                dz = dinput.reshape(below.shape) * relu_mask(below)
            ops.update(layer, lr * dw, lr * db, step)
        return loss

    def evaluate(self, x, labels) -> tuple[float, float]:
        """Test loss and accuracy of the forward pass on ``x`` (nearest rounding)."""
        logits, _ = self.forward(x, 0, False)
        return loss_accuracy(np.asarray(logits, dtype=np.float64), labels)


class FloatOps:
    """The float32 reference: tensors stored as float32, numpy GEMMs, ``W - lr * dW``."""

    def __init__(self, parameters):
        self.parameters = {layer: (w.astype(np.float32), b.astype(np.float32))
                           for layer, (w, b) in parameters.items()}

    def begin_step(self, step, n, image):
        """Nothing to prepare: float32 rounds nothing stochastically."""

    def store(self, values, layer, role, step, training):
        return np.asarray(values, dtype=np.float32)

    @staticmethod
    def gather(stored, shape, conv):
        return im2col(stored.reshape(shape), conv)

    @staticmethod
    def matmul(a, b, layer, pass_, training):
        return a @ b

    def weights(self, layer):
        return self.parameters[layer][0]

    def bias(self, layer):
        return self.parameters[layer][1]

    def update(self, layer, dw, db, step):
        w, b = self.parameters[layer]
        self.parameters[layer] = (w - dw.astype(np.float32), b - db.astype(np.float32))

    def max_abs_weight(self) -> float:
        return float(max(np.abs(w).max() for w, _ in self.parameters.values()))


@dataclass(frozen=True)
class LayerArithmetic:
    """One layer's arithmetic: the operand format and rounding of its forward operands
    (input activations, weights) and of its output gradient, and its weight format and
    update rounding (from a :class:`~qforge.sim.training.config.HardwareConfig` and its
    policy: :meth:`~qforge.sim.training.config.HardwareConfig.layer`). ``paired``: the
    paired mode of the layer's GEMMs of ``paired_passes`` (of :data:`GEMM_PASSES`;
    ``None``: none paired); ``unsigned_input``: the layer's input stored as unsigned
    codes of the forward format (the module docstring)."""

    forward: object            # OperandFormat
    forward_rounding: Rounding
    gradient: object           # OperandFormat
    gradient_rounding: Rounding
    weights: object            # WeightFormat
    update_rounding: Rounding
    paired: PairedPrecision | None = None
    paired_passes: tuple[str, ...] = ()
    unsigned_input: bool = False

    def pass_paired(self, pass_: str) -> PairedPrecision | None:
        """The paired mode of the layer's ``pass_`` GEMM, or ``None``."""
        return self.paired if pass_ in self.paired_passes else None


class EmulatedOps:
    """Emulated hardware: tensors quantized once as stored into their layer's formats,
    GEMMs by :func:`mixed_matmul`, weights and biases as codes of each layer's weight
    format updated on the host (``W <- Q_w(W - lr * dW)``), with the update statistics
    of :class:`~qforge.sim.training.report.RunResult` and the GEMM count and cycle-model
    cycles of every training GEMM per ``(layer, pass)``."""

    def __init__(self, layers: dict[str, LayerArithmetic], parameters, seed: int):
        self.layers, self.seed, self.counter = layers, seed, GemmCounter()
        self.codes = {layer: tuple(layers[layer].weights.quantize(p, Rounding.NEAREST_EVEN)
                                   for p in parameters[layer]) for layer in LAYERS}
        self.passes = {(layer, pass_): [0, 0] for layer in LAYERS for pass_ in PASSES}
        self._cycles: dict = {}
        self.small = self.changed = self.small_mass = self.total_mass = 0.0
        self.updates = 0
        self._words: dict[str, np.ndarray] = {}

    def _key(self, slot: str, step: int) -> tuple[int, int]:
        return random_key(self.seed, step * len(SLOTS) + SLOTS.index(slot))

    def _rounding(self, layer: str, role: str) -> Rounding:
        arithmetic = self.layers[layer]
        if role == "gradient":
            return arithmetic.gradient_rounding
        if role.startswith("update"):
            return arithmetic.update_rounding
        return arithmetic.forward_rounding

    def begin_step(self, step: int, n: int, image) -> None:
        """Draw the random bits of every tensor this training step rounds
        stochastically, in one pass of the cipher
        (:func:`~qforge.sim.model.random_bits.random_words_batch`; the same bits as
        drawing them tensor by tensor: numpy's cost per call made the cipher most of an
        epoch). The shapes are those :meth:`Network.step` stores: layer inputs as
        :func:`layer_shapes`' ``(N*H*W) x C`` (fc: ``N x inputs``), output gradients
        as the forward GEMM's ``rows x outputs`` (:func:`gemm_shapes`), weights and
        biases as their codes."""
        classes = self.codes[LAYERS[-1]][0].shape[1]
        gemms = gemm_shapes(n, image, classes)
        shapes = {}
        for layer, (shape, _) in layer_shapes(n, image).items():
            rows, outputs, _ = gemms[(layer, "forward")]
            weights, bias = (codes.shape for codes in self.codes[layer])
            shapes.update({f"{layer}_input": (math.prod(shape[:-1]), shape[-1]),
                           f"{layer}_weights": weights, f"{layer}_gradient": (rows, outputs),
                           f"{layer}_update_weights": weights,
                           f"{layer}_update_bias": bias})
        slots = [slot for slot in SLOTS
                 if self._rounding(*_slot_parts(slot)) == Rounding.STOCHASTIC]
        words = random_words_batch([self._key(slot, step) for slot in slots],
                                   [shapes[slot] for slot in slots])
        self._words = dict(zip(slots, words))

    def store(self, values, layer, role, step, training):
        arithmetic = self.layers[layer]
        fmt = arithmetic.gradient if role == "gradient" else arithmetic.forward
        if role == "input" and arithmetic.unsigned_input:
            fmt = replace(fmt, unsigned=True)
        rounding = self._rounding(layer, role) if training else Rounding.NEAREST_EVEN
        seed_word, tensor = self._key(f"{layer}_{role}", step)
        words = self._words.pop(f"{layer}_{role}", None) if training else None
        # Approximated once as stored, not in every GEMM that reads it (gathered 9x).
        return quantize_operand(values, fmt, rounding, seed=seed_word, tensor=tensor,
                                words=words).approximate()

    @staticmethod
    def gather(stored, shape, conv):
        return gather(stored, shape, conv)

    def matmul(self, a, b, layer, pass_, training):
        paired = self.layers[layer].pass_paired(pass_)
        result = mixed_matmul(a, b, self.counter, paired=paired)
        if training:
            m, depth = a.shape
            config = a.fmt.config
            # The PEs' block products per MAC (gemm_shape), not always La x Lb; a paired
            # GEMM walks ceil(depth / 2) slots.
            shape = gemm_shape(config, m, b.shape[1], depth,
                               gemm_precision(a.fmt.precision, b.fmt.precision, paired))
            key = (shape, config)
            if key not in self._cycles:
                self._cycles[key] = gemm_cycles(config, [shape]).total
            counts = self.passes[(layer, pass_)]
            counts[0] += 1
            counts[1] += self._cycles[key]
        return result

    def weights(self, layer):
        return self.layers[layer].weights.value(self.codes[layer][0])

    def bias(self, layer):
        return self.layers[layer].weights.value(self.codes[layer][1])

    def update(self, layer, dw, db, step):
        """``W <- Q_w(W - dw)``, ``b <- Q_w(b - db)`` in the layer's weight format,
        counting the updates below half an LSB and the codes that change."""
        arithmetic = self.layers[layer]
        wfmt, new_codes = arithmetic.weights, []
        for role, codes, update in (("update_weights", self.codes[layer][0], dw),
                                    ("update_bias", self.codes[layer][1], db)):
            size = np.abs(update)
            below = size < wfmt.unit / 2
            self.small += np.count_nonzero(below) / below.size
            self.small_mass += float(size[below].sum())
            self.total_mass += float(size.sum())
            seed_word, tensor = self._key(f"{layer}_{role}", step)
            new = wfmt.quantize(wfmt.value(codes) - update, arithmetic.update_rounding,
                                seed=seed_word, tensor=tensor,
                                words=self._words.pop(f"{layer}_{role}", None))
            self.changed += np.count_nonzero(new != codes) / new.size
            self.updates += 1
            new_codes.append(new)
        self.codes[layer] = tuple(new_codes)

    def max_abs_weight(self) -> float:
        return float(max(np.abs(self.layers[layer].weights.value(c)).max()
                         for layer in LAYERS for c in self.codes[layer]))

    def saturated_weights(self) -> int:
        return sum(self.layers[layer].weights.saturated_count(self.codes[layer])
                   for layer in LAYERS)
