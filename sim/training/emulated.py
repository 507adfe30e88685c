"""Emulated low-precision training: an MLP on scikit-learn's digits, every GEMM bit-exact.

This module measures what the accelerator's arithmetic does to *training* (ApproxTrain's
question, brief item 7): every forward and backward GEMM of a small network runs through
the golden model (:mod:`qforge.sim.model.numerics`, :mod:`qforge.sim.model.quantize`), and the
weights live only in a low-precision fixed-point format that each step updates with
stochastic or round-to-nearest rounding (Gupta et al., brief item 4). A float32 run of
the same network with the same initial weights, batches and epochs is the reference.

The network
-----------
``64 -> hidden -> 10``, ReLU, softmax cross-entropy, minibatch SGD (no momentum) whose
learning rate decays along a half cosine from ``learning_rate`` to
``learning_rate_final`` over the run's steps (:meth:`TrainConfig.learning_rate_at`).
Biases are folded into the weights: a constant 1 is appended to each layer's input, so
``W1`` is ``65 x hidden`` and ``W2`` is ``(hidden + 1) x 10``, and the biases go through the
emulated GEMMs and the weight format like every other weight. Inputs are the digits'
pixel values divided by 16 (so in ``[0, 1]``). One step on a batch ``X`` (``n x 65``)::

    Z1 = X @ W1            H = [relu(Z1), 1]      Z2 = H @ W2          (forward)
    dZ2 = (softmax(Z2) - onehot) / n                                    (host, float)
    dW2 = H^T @ dZ2        dH = dZ2 @ W2^T        dZ1 = dH[:, :hidden] * (Z1 > 0)
    dW1 = X^T @ dZ1                                                     (backward)
    W <- Q_w(W - lr * dW)                                               (update)

The five GEMMs are *emulated hardware GEMMs* (:func:`emulated_matmul`); softmax, the
ReLU and its mask, the loss and the update arithmetic run on the host in float64
(float32 for the float32 reference). ``dX = dZ1 @ W1^T`` is not needed (X is the data).

Operands
--------
Each tensor a GEMM reads is quantized **once, as stored** (row-major, in its own
coordinates), into the configured operand format (:func:`quantize_operand`); a
transposed read (``H^T``, ``W2^T``, ``X^T``) uses the same quantized tensor transposed,
as the hardware reads the same buffer contents in transposed order. Formats
(:class:`OperandFormat`):

* ``int``: ``bits``-bit two's-complement codes, one power-of-two scale per tensor from
  its largest magnitude: unit ``2**(E - bits + 2)`` with ``E = floor(log2 max|x|)`` (this
  is :func:`~qforge.sim.model.quantize.address_block_encode` with one block covering the whole
  tensor). The GEMM is :func:`qforge.sim.model.numerics.gemm` on the codes with the
  configured :class:`~qforge.sim.model.numerics.Precision` (all blocks: exact; fewer kept
  blocks: Ax-BxP approximation), so ``bits`` must be a multiple of the block width ``K``
  and at most the operand width ``W``: 8-bit operands are the ``exact`` mode of the
  default preset, 4-bit operands its ``reduced`` mode (2 blocks of 2 bits).
* ``vrq``: value-range quantization (:func:`~qforge.sim.model.quantize.vrq_encode`) with a
  :class:`~qforge.sim.model.quantize.VrqFormat`; the PE multiplies the integer forms of
  :func:`~qforge.sim.model.quantize.vrq_integer`. With fewer kept blocks, the kept-block
  approximation (:func:`~qforge.sim.model.numerics.operand_value`) applies to each ``N``-bit
  code (``ceil(code_width / K)`` blocks) before it is shifted by its range.
* ``address_block``: Cambricon-Q's baseline
  (:func:`~qforge.sim.model.quantize.address_block_encode`): ``bits``-bit codes with one
  power-of-two scale per ``block`` contiguous elements (row-major in the stored tensor;
  the block is a hardware buffer size). The integer form shifts each code by its block's
  unit above the tensor's smallest unit.

The VRQ and address-block GEMMs are exact integer GEMMs of the integer forms
(``qforge.sim.model.numerics._exact_integer_matmul``, float BLAS kept exact by a bound), then
scaled back by ``2**(exponent_a + exponent_b)``. Two limits: if ``max|a| * max|b| *
depth`` reaches ``2**62`` (integer forms wider than about 27 bits: a VRQ format with a
wide span such as ``N = 4, S = 4, G = 8``, 32 bits, or an address-block tensor whose
block scales differ by more than about 20 bits), the product falls back to a float64
matmul of the exact operand values, which rounds only the sums; these GEMMs are counted
(:attr:`GemmCounter.float64_fallbacks`, reported per run). And an exact integer result
above ``2**53`` is rounded once when it is converted to float64. Neither happens for the
int formats, whose results stay below ``2**25``.

Rounding and random bits
------------------------
Operand quantization rounds to nearest (ties to even) or stochastically. Stochastic
rounding uses :func:`qforge.sim.model.quantize.random_bits` keyed by the run's seed and a
**tensor counter** that is distinct for every tensor of every step (``step * 8 + slot``,
slots listed in :data:`SLOTS`), indexed by the element's coordinates in the stored
tensor, so no random bits are ever reused. The counter is split into Speck's key words
by :func:`random_key`: ``tensor = counter mod 2**16``, ``seed word = seed * 2**16 +
counter // 2**16`` (so ``seed < 2**16``).

Weights and the update
----------------------
Low-precision runs keep **no float master copy**: the weights are integer codes of a
``weight_bits``-bit two's-complement fixed-point format covering ``[-range, range)``
(:class:`WeightFormat`, unit ``2 * range / 2**weight_bits``). The initial float weights
are rounded to nearest into it. Each step computes ``W - lr * dW`` and rounds it back
into the format (:meth:`WeightFormat.quantize`) to nearest or stochastically (with
rounding up probability equal to the discarded fraction), saturating at the range.
With round-to-nearest, any update smaller than half a weight LSB is lost entirely: the
Gupta et al. effect. :attr:`RunResult.small_update_fraction` measures how many updates
that is.

Evaluation
----------
After every epoch the forward pass runs on the whole test set (and epoch 0 is the
initial network) with the same operand format, rounding operands to nearest: stochastic
rounding matters for accumulating many small updates, not for one inference, and nearest
makes the evaluation deterministic. Accuracy and mean cross-entropy are recorded.

Everything is vectorized over whole tensors; Python loops only over epochs, steps,
layers and configurations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qforge.sim.model.spec import Config, ConfigError, load_preset, preset_names, read_toml
from qforge.sim.model.numerics import (OperandPrecision, Precision, Selection, _exact_integer_matmul,
                                 gemm, operand_value)
from qforge.sim.model.quantize import (Rounding, VrqFormat, address_block_encode, random_bits,
                                 vrq_encode, vrq_exponent, vrq_integer)

__all__ = ["TrainConfigError", "OperandFormat", "WeightFormat", "Quantized", "HardwareConfig",
           "TrainConfig", "GemmCounter", "RunResult", "SLOTS", "random_key",
           "quantize_operand", "emulated_matmul", "hardware_matmul", "load_digits_split",
           "train_run", "train_all", "load_train_config", "train_config_from_dict",
           "default_config_path", "rtl_config_path", "format_table",
           "format_program_table", "plot_curves", "describe_schedule",
           "initial_weights", "FORMATS", "ROUNDINGS"]


class TrainConfigError(ConfigError):
    """A training configuration value is missing, unknown, of the wrong type or out of
    range. A :class:`~qforge.sim.model.spec.ConfigError`, so the CLI reports it in one line."""


#: Operand formats a hardware configuration may name.
FORMATS = ("float32", "int", "vrq", "address_block")
#: Rounding rules by name.
ROUNDINGS = {"nearest": Rounding.NEAREST_EVEN, "stochastic": Rounding.STOCHASTIC}
#: Tensor slots of one training step: each quantized tensor and each weight update gets
#: its own slot, so its stochastic-rounding bits are never shared with another tensor.
SLOTS = ("x", "w1", "h", "w2", "dz2", "dz1", "update_w1", "update_w2")
_SLOT = {name: index for index, name in enumerate(SLOTS)}


def random_key(seed: int, counter: int) -> tuple[int, int]:
    """Speck key words ``(seed word, tensor id)`` for tensor number ``counter`` of a run.

    ``tensor = counter mod 2**16`` and ``seed word = seed * 2**16 + counter // 2**16``,
    so distinct ``(seed, counter)`` pairs (``seed < 2**16``, ``counter < 2**32``) never
    share random bits.

    >>> random_key(1, 5), random_key(1, 65536 + 5)
    ((65536, 5), (65537, 5))
    """
    if not 0 <= seed < 1 << 16:
        raise ValueError(f"seed = {seed!r}: allowed range is 0 .. 65535")
    if not 0 <= counter < 1 << 32:
        raise ValueError(f"tensor counter = {counter!r}: allowed range is 0 .. 2**32 - 1")
    return (seed << 16) | (counter >> 16), counter & 0xFFFF


# ---- formats --------------------------------------------------------------------------

@dataclass(frozen=True)
class OperandFormat:
    """How the hardware stores and multiplies GEMM operands in one training run.

    ``kind`` is ``"int"``, ``"vrq"`` or ``"address_block"``; ``config`` is the hardware
    (its block width ``K`` and operand width ``W`` matter); ``bits`` are the code bits of
    ``int``/``address_block``; ``vrq`` the :class:`VrqFormat`; ``block`` the
    address-block size; ``kept`` the blocks kept per operand (``None``: all, exact) with
    ``selection``.

    >>> fmt = OperandFormat("int", load_preset("default"), bits=8, kept=2)
    >>> fmt.precision.describe(), fmt.describe()
    ('4 blocks, dynamic top 2', 'int8, 4 blocks, dynamic top 2')
    >>> OperandFormat("vrq", load_preset("default"), vrq=VrqFormat(4, 2, 8)).describe()
    'vrq N=4 S=2 G=8 (8 bits), 2 blocks'
    """

    kind: str
    config: Config
    bits: int = 8
    vrq: VrqFormat | None = None
    block: int = 64
    kept: int | None = None
    selection: Selection = Selection.DYNAMIC

    @property
    def code_blocks(self) -> int:
        """Blocks of ``K`` bits in a code's magnitude (VRQ: the ``N``-bit code)."""
        width = self.vrq.code_width if self.kind == "vrq" else self.bits
        return -(-width // self.config.block_width)

    @property
    def precision(self) -> OperandPrecision:
        """The per-operand precision mode the PE applies to the codes."""
        blocks = self.code_blocks
        kept = blocks if self.kept is None else self.kept
        return OperandPrecision(blocks, kept, self.selection if kept < blocks
                                else Selection.STATIC)

    @property
    def storage_bits(self) -> int:
        return self.vrq.storage_bits if self.kind == "vrq" else self.bits

    def describe(self) -> str:
        if self.kind == "vrq":
            v = self.vrq
            name = (f"vrq N={v.code_width} S={v.range_stride} G={v.ranges} "
                    f"({v.storage_bits} bits)")
        elif self.kind == "int":
            name = f"int{self.bits}"
        else:
            name = f"address-block int{self.bits}/{self.block}"
        return f"{name}, {self.precision.describe()}"


@dataclass(frozen=True)
class WeightFormat:
    """``bits``-bit two's-complement fixed point covering ``[-range, range)``.

    >>> fmt = WeightFormat(8, 2.0)
    >>> fmt.unit, fmt.quantize(np.array([[0.01, 0.02, -3.0, 1.999]]), Rounding.NEAREST_EVEN)
    (0.015625, array([[   1,    1, -128,  127]]))
    """

    bits: int
    range: float = 2.0

    @property
    def unit(self) -> float:
        """The weight LSB, ``2 * range / 2**bits``."""
        return 2.0 * self.range / (1 << self.bits)

    def quantize(self, values, rounding: Rounding, *, seed: int = 0,
                 tensor: int = 0) -> np.ndarray:
        """Round ``values`` (2-D, float) to codes: nearest (ties to even) or stochastic
        (``floor(v / unit + r)`` with ``r`` the element's :func:`random_bits` / 2**32,
        so up with probability equal to the discarded fraction; computed in float64,
        which holds all 32 random bits next to the code for formats up to 21 bits);
        saturate."""
        values = np.asarray(values, dtype=np.float64)
        scaled = values / self.unit
        if rounding == Rounding.STOCHASTIC:
            rows, cols = np.indices(values.shape)
            fraction = random_bits(seed, tensor, rows, cols).astype(np.float64) / 2.0 ** 32
            codes = np.floor(scaled + fraction)
        elif rounding == Rounding.NEAREST_EVEN:
            codes = np.rint(scaled)
        else:
            raise ValueError(f"update rounding = {rounding!r}: nearest or stochastic")
        limit = 1 << (self.bits - 1)
        return np.clip(codes, -limit, limit - 1).astype(np.int64)

    def value(self, codes) -> np.ndarray:
        """The real values of weight codes, ``codes * unit``."""
        return np.asarray(codes, dtype=np.float64) * self.unit


# ---- quantized operands and the emulated GEMM -----------------------------------------

@dataclass(frozen=True)
class Quantized:
    """A quantized tensor as the PE sees it: ``value = integer form * 2**exponent``.

    ``integers`` are the codes for ``int`` (the GEMM applies ``fmt.precision`` to them),
    and the already approximated, range-shifted integer forms for ``vrq`` and
    ``address_block``. ``floats`` holds the exact values instead when an integer form
    would not fit in int64 (address-block only; see the module docstring).
    """

    fmt: OperandFormat
    integers: np.ndarray | None
    exponent: int
    floats: np.ndarray | None = None

    @property
    def T(self) -> "Quantized":   # noqa: N802 - mirrors numpy's .T
        """The same stored tensor read transposed."""
        return Quantized(self.fmt, None if self.integers is None else self.integers.T,
                         self.exponent, None if self.floats is None else self.floats.T)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.integers if self.integers is not None else self.floats).shape

    def values(self) -> np.ndarray:
        """The real values the PE multiplies (after any kept-block approximation)."""
        if self.integers is None:
            return self.floats
        integers = self.integers
        if self.fmt.kind == "int" and not self.fmt.precision.exact:
            integers = operand_value(integers, self.fmt.config, self.fmt.precision)
        return np.ldexp(integers.astype(np.float64), self.exponent)


def quantize_operand(values, fmt: OperandFormat, rounding: Rounding = Rounding.NEAREST_EVEN,
                     *, seed: int = 0, tensor: int = 0) -> Quantized:
    """Quantize a stored 2-D float tensor into ``fmt`` (see the module docstring).

    ``seed``/``tensor`` key the stochastic-rounding bits (coordinates: row and column).

    >>> cfg = load_preset("default")
    >>> q = quantize_operand(np.array([[0.75, -0.1], [0.3, 0.0]]), OperandFormat("int", cfg))
    >>> q.integers.tolist(), q.exponent, q.values().tolist()
    ([[96, -13], [38, 0]], -7, [[0.75, -0.1015625], [0.296875, 0.0]])
    >>> v = quantize_operand(np.array([[0.75, -0.1], [0.3, 0.0]]),
    ...                      OperandFormat("vrq", cfg, vrq=VrqFormat(4, 2, 8)))
    >>> v.values().tolist()      # N = 4 code bits: -0.1 is in range 1, 0.3 in range 0
    [[0.75, -0.09375], [0.3125, 0.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values: must be a 2-D tensor, got shape {values.shape}")
    config, precision = fmt.config, fmt.precision
    if fmt.kind == "int":
        codes, units = address_block_encode(values, fmt.bits, max(values.size, 1),
                                            rounding=rounding, seed=seed, tensor=tensor)
        return Quantized(fmt, codes, int(units[0]))
    if fmt.kind == "vrq":
        exponent = vrq_exponent(values)
        sign, code, group = vrq_encode(values, fmt.vrq, exponent, rounding=rounding,
                                       seed=seed, tensor=tensor)
        if not precision.exact:
            code = operand_value(code, config, precision)
        integers, offset = vrq_integer(sign, code, group, fmt.vrq)
        return Quantized(fmt, integers, (0 if exponent is None else exponent) + offset)
    if fmt.kind == "address_block":
        codes, units = address_block_encode(values, fmt.bits, fmt.block, rounding=rounding,
                                            seed=seed, tensor=tensor)
        if not precision.exact:
            codes = operand_value(codes, config, precision)
        element_units = np.repeat(units, fmt.block)[:values.size].reshape(values.shape)
        nonzero = codes != 0
        if not nonzero.any():
            return Quantized(fmt, np.zeros_like(codes), 0)
        low = int(element_units[nonzero].min())
        shifts = np.where(nonzero, element_units - low, 0)
        if int(shifts.max()) + fmt.bits > 62:       # integer form would not fit in int64
            return Quantized(fmt, None, 0, np.ldexp(codes.astype(np.float64), element_units))
        return Quantized(fmt, codes << shifts, low)
    raise ValueError(f"format = {fmt.kind!r}: allowed: int, vrq, address_block")


@dataclass
class GemmCounter:
    """Counts emulated GEMMs and the float64 fallbacks (integer forms too wide for an
    exact int64 GEMM; see the module docstring)."""

    gemms: int = 0
    float64_fallbacks: int = 0


def emulated_matmul(a: Quantized, b: Quantized, counter: GemmCounter | None = None
                    ) -> np.ndarray:
    """The hardware GEMM ``a @ b`` of two quantized operands, as float64.

    ``int``: :func:`qforge.sim.model.numerics.gemm` on the codes with
    ``Precision(a.fmt.precision, b.fmt.precision)`` (bit-exact, the golden model itself).
    ``vrq``/``address_block``: an exact integer GEMM of the integer forms, or, when
    ``max|a| * max|b| * depth`` reaches ``2**62``, a float64 matmul of the exact values
    (counted in ``counter.float64_fallbacks``). Then scaled by
    ``2**(a.exponent + b.exponent)``.

    >>> cfg = load_preset("default")
    >>> fmt = OperandFormat("int", cfg)
    >>> a = quantize_operand(np.array([[0.5, -0.3]]), fmt)     # unit 2**-7: 64, -38
    >>> b = quantize_operand(np.array([[1.0], [3.0]]), fmt)    # unit 2**-5: 32, 96
    >>> a.integers.tolist(), b.integers.tolist()
    ([[64, -38]], [[32], [96]])
    >>> emulated_matmul(a, b)                                  # -1600 * 2**-12
    array([[-0.390625]])
    """
    if counter is not None:
        counter.gemms += 1
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: {a.shape} @ {b.shape}")
    scale = a.exponent + b.exponent
    if a.fmt.kind == "int" and b.fmt.kind == "int":
        result = gemm(a.integers, b.integers, a.fmt.config,
                      Precision(a.fmt.precision, b.fmt.precision))
        return np.ldexp(result.astype(np.float64), scale)
    if a.integers is not None and b.integers is not None:
        max_a = int(np.abs(a.integers).max(initial=0))
        max_b = int(np.abs(b.integers).max(initial=0))
        bound = max_a * max_b * a.shape[1]
        if bound < 1 << 62:
            result = _exact_integer_matmul(a.integers, b.integers, bound)
            return np.ldexp(result.astype(np.float64), scale)
    if counter is not None:
        counter.float64_fallbacks += 1
    return a.values() @ b.values()


def hardware_matmul(a, b, fmt: OperandFormat, rounding: Rounding = Rounding.NEAREST_EVEN,
                    *, seed: int = 0, tensors: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Quantize float ``a`` and ``b`` (tensor ids ``tensors``) and multiply on the
    emulated hardware: ``emulated_matmul(quantize_operand(a), quantize_operand(b))``.

    >>> cfg = load_preset("default")
    >>> hardware_matmul(np.array([[0.5, -0.3]]), np.array([[1.0], [3.0]]),
    ...                 OperandFormat("vrq", cfg, vrq=VrqFormat(4, 2, 8)))  # 0.5 - 0.3125 * 3
    array([[-0.4375]])
    """
    return emulated_matmul(quantize_operand(a, fmt, rounding, seed=seed, tensor=tensors[0]),
                           quantize_operand(b, fmt, rounding, seed=seed, tensor=tensors[1]))


# ---- configuration --------------------------------------------------------------------

@dataclass(frozen=True)
class HardwareConfig:
    """One named arithmetic to train with: ``operand`` is ``None`` for float32.

    ``update``: ``"float"`` computes ``W - lr * dW`` on the host in float64 and rounds it
    into the weight format (the emulation of :func:`train_run`); ``"hardware"`` runs the
    whole step as instruction-set programs, the update on the accelerator
    (:mod:`qforge.sim.training.hardware`), so it can train on the RTL.
    """

    name: str
    operand: OperandFormat | None
    rounding: Rounding = Rounding.STOCHASTIC
    weights: WeightFormat | None = None
    update_rounding: Rounding = Rounding.STOCHASTIC
    update: str = "float"

    @property
    def is_float(self) -> bool:
        return self.operand is None

    def describe(self) -> str:
        if self.is_float:
            return "float32 (weights, activations, gradients, GEMMs)"
        rounding = {Rounding.NEAREST_EVEN: "nearest", Rounding.STOCHASTIC: "stochastic"}
        where = " on the accelerator" if self.update == "hardware" else ""
        return (f"{self.operand.describe()}, {rounding[self.rounding]} operands; "
                f"weights {self.weights.bits}-bit in [-{self.weights.range:g}, "
                f"{self.weights.range:g}), {rounding[self.update_rounding]} update{where}")


@dataclass(frozen=True)
class TrainConfig:
    """A comparison run: the network, the schedule and the hardware configurations."""

    name: str
    hidden: int
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    hardware: tuple[HardwareConfig, ...]
    split_seed: int = 0
    test_fraction: float = 0.25
    train_samples: int | None = None
    source: str = "config"
    #: The learning rate decays from ``learning_rate`` to this along a half cosine over
    #: the run's steps (equal to ``learning_rate``: constant).
    learning_rate_final: float | None = None

    def learning_rate_at(self, step: int, steps: int) -> float:
        """The learning rate of step ``step`` (0-based) of ``steps``.

        >>> t = TrainConfig("t", 8, 1, 8, 0.2, 1, (), learning_rate_final=0.02)
        >>> [round(t.learning_rate_at(s, 4), 4) for s in range(5)]   # steps 0 .. 3, end
        [0.2, 0.1736, 0.11, 0.0464, 0.02]
        """
        final = self.learning_rate if self.learning_rate_final is None \
            else self.learning_rate_final
        return final + (self.learning_rate - final) * (1 + math.cos(math.pi * step / steps)) / 2


_TOP_KEYS = {"name", "dataset", "model", "hidden", "epochs", "batch_size", "learning_rate",
             "learning_rate_final", "seed", "split_seed", "test_fraction", "train_samples",
             "preset", "hardware"}
_FORMAT_KEYS = {
    "float32": set(),
    "int": {"bits", "kept_blocks", "selection"},
    "vrq": {"code_width", "range_stride", "ranges", "kept_blocks", "selection"},
    "address_block": {"bits", "block", "kept_blocks", "selection"},
}
_LOW_PRECISION_KEYS = {"preset", "rounding", "weight_bits", "weight_range", "update_rounding",
                       "update"}


def _fail(path: str, value: Any, allowed: str):
    raise TrainConfigError(f"{path} = {value!r}: {allowed}")


def _integer(table, key, path, low, high, default=None):
    value = table.get(key, default)
    if value is None:
        raise TrainConfigError(f"missing key {path} (an integer in {low} .. {high})")
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, value, f"must be an integer in {low} .. {high}, "
                           f"not {type(value).__name__}")
    if not low <= value <= high:
        _fail(path, value, f"allowed range is {low} .. {high}")
    return value


def _number(table, key, path, low, high, default=None):
    value = table.get(key, default)
    if value is None:
        raise TrainConfigError(f"missing key {path} (a number, {low} < value <= {high})")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(path, value, f"must be a number, {low} < value <= {high}, "
                           f"not {type(value).__name__}")
    if not (low < value <= high) or math.isnan(value):
        _fail(path, value, f"allowed range is {low} < value <= {high}")
    return float(value)


def _choice(table, key, path, choices, default=None):
    value = table.get(key, default)
    if value is None:
        raise TrainConfigError(f"missing key {path} (one of {', '.join(choices)})")
    if value not in choices:
        _fail(path, value, f"allowed: {', '.join(choices)}")
    return value


def _hardware_from_dict(entry, index: int, default_preset: str) -> HardwareConfig:
    if not isinstance(entry, dict):
        raise TrainConfigError(f"hardware[{index}]: must be a table [[hardware]], "
                               f"not {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        _fail(f"hardware[{index}].name", name,
              "must be a non-empty identifier (letters, digits, _)")
    prefix = f"hardware[{index}] ({name})"
    kind = _choice(entry, "format", f"{prefix}.format", FORMATS)
    allowed = {"name", "format"} | _FORMAT_KEYS[kind] | (
        _LOW_PRECISION_KEYS if kind != "float32" else set())
    for key in entry:
        if key not in allowed:
            owners = [f for f, keys in _FORMAT_KEYS.items() if key in keys]
            if key in _LOW_PRECISION_KEYS:
                owners = [f for f in FORMATS if f != "float32"]
            if owners:
                _fail(f"{prefix}.{key}", entry[key], "only allowed with format = "
                      + " or ".join(f'"{f}"' for f in owners))
            _fail(f"{prefix}.{key}", entry[key],
                  f"unknown key; allowed with format = \"{kind}\": "
                  f"{', '.join(sorted(allowed))}")
    if kind == "float32":
        return HardwareConfig(name, None)
    preset = _choice(entry, "preset", f"{prefix}.preset", preset_names(), default_preset)
    config = load_preset(preset)
    k, width = config.block_width, config.operand_width
    vrq = None
    bits = 8
    if kind == "vrq":
        values = {key: _integer(entry, key, f"{prefix}.{key}", 1, high) for key, high in
                  (("code_width", 15), ("range_stride", 15), ("ranges", 64))}
        try:
            vrq = VrqFormat(**values)
        except ValueError as error:
            raise TrainConfigError(f"{prefix}.{error}") from None
        if vrq.range_stride % k:
            _fail(f"{prefix}.range_stride", vrq.range_stride,
                  f"must be a multiple of the block width {k} of preset {preset!r} (the PE "
                  f"shifts a range's code blocks by whole blocks)")
    else:
        choices = [b for b in range(k, width + 1, k) if b >= 2]
        bits = _integer(entry, "bits", f"{prefix}.bits", 2, width)
        if bits % k:
            _fail(f"{prefix}.bits", bits, f"must be a multiple of the block width {k} of "
                  f"preset {preset!r}: {', '.join(map(str, choices))}")
    block = _integer(entry, "block", f"{prefix}.block", 1, 1 << 16, 64) \
        if kind == "address_block" else 64
    code_blocks = -(-(vrq.code_width if vrq else bits) // k)
    kept = _integer(entry, "kept_blocks", f"{prefix}.kept_blocks", 1, code_blocks,
                    code_blocks)
    selection = {"dynamic": Selection.DYNAMIC, "static": Selection.STATIC}[
        _choice(entry, "selection", f"{prefix}.selection", ("dynamic", "static"), "dynamic")]
    operand = OperandFormat(kind, config, bits=bits, vrq=vrq, block=block,
                            kept=None if kept == code_blocks else kept, selection=selection)
    rounding = ROUNDINGS[_choice(entry, "rounding", f"{prefix}.rounding", tuple(ROUNDINGS),
                                 "stochastic")]
    weight_bits = _integer(entry, "weight_bits", f"{prefix}.weight_bits", 2, 32, 16)
    weight_range = _number(entry, "weight_range", f"{prefix}.weight_range", 0, 1024, 2.0)
    if math.frexp(weight_range)[0] != 0.5:
        _fail(f"{prefix}.weight_range", entry.get("weight_range"),
              "must be a power of two (weights cover [-weight_range, weight_range))")
    update = ROUNDINGS[_choice(entry, "update_rounding", f"{prefix}.update_rounding",
                               tuple(ROUNDINGS), "stochastic")]
    where = _choice(entry, "update", f"{prefix}.update", ("float", "hardware"), "float")
    if where == "hardware":
        if kind != "int":
            _fail(f"{prefix}.update", where, 'only with format = "int" (the programs keep '
                  "integer operand codes in memory)")
        if weight_bits > config.accumulator_width:
            _fail(f"{prefix}.weight_bits", weight_bits, f"with update = \"hardware\" at "
                  f"most the accumulator width {config.accumulator_width} of preset "
                  f"{preset!r} (the update saturates there)")
    return HardwareConfig(name, operand, rounding, WeightFormat(weight_bits, weight_range),
                          update, where)


def train_config_from_dict(spec: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """Validate a training TOML (as a dict) into a :class:`TrainConfig`.

    Every error is one :class:`TrainConfigError` naming the source, the field, the value
    and what is allowed:

    >>> train_config_from_dict({"name": "x", "hidden": 0}, source="t.toml")
    Traceback (most recent call last):
    ...
    TrainConfigError: t.toml: hidden = 0: allowed range is 1 .. 1024
    """
    try:
        return _train_config(spec, source)
    except TrainConfigError as error:
        raise TrainConfigError(f"{source}: {error}") from None


def _train_config(spec, source) -> TrainConfig:
    if not isinstance(spec, dict):
        raise TrainConfigError(f"a training config must be a table, not {type(spec).__name__}")
    for key in spec:
        if key not in _TOP_KEYS:
            raise TrainConfigError(f"unknown key {key!r}; allowed top-level keys: "
                                   f"{', '.join(sorted(_TOP_KEYS))}")
    name = spec.get("name", "train")
    if not isinstance(name, str) or not name.isidentifier():
        _fail("name", name, "must be a non-empty identifier (letters, digits, _)")
    _choice(spec, "dataset", "dataset", ("digits",), "digits")
    _choice(spec, "model", "model", ("mlp",), "mlp")
    hidden = _integer(spec, "hidden", "hidden", 1, 1024)
    epochs = _integer(spec, "epochs", "epochs", 1, 10000)
    batch_size = _integer(spec, "batch_size", "batch_size", 1, 1024)
    learning_rate = _number(spec, "learning_rate", "learning_rate", 0, 100)
    learning_rate_final = _number(spec, "learning_rate_final", "learning_rate_final", 0,
                                  learning_rate, learning_rate)
    seed = _integer(spec, "seed", "seed", 0, 65535)
    split_seed = _integer(spec, "split_seed", "split_seed", 0, 2**32 - 1, 0)
    test_fraction = _number(spec, "test_fraction", "test_fraction", 0, 0.9, 0.25)
    train_samples = spec.get("train_samples")
    if train_samples is not None:
        train_samples = _integer(spec, "train_samples", "train_samples", 1, 1797)
    preset = _choice(spec, "preset", "preset", preset_names(), "default")
    entries = spec.get("hardware")
    if not isinstance(entries, list) or not entries:
        _fail("hardware", entries, "must be a non-empty array of tables [[hardware]] "
                                   "(one per configuration to train)")
    hardware = tuple(_hardware_from_dict(entry, i, preset) for i, entry in enumerate(entries))
    names = [h.name for h in hardware]
    for i, h in enumerate(hardware):
        if names.index(h.name) != i:
            _fail(f"hardware[{i}].name", h.name, "must be unique (already used by "
                  f"hardware[{names.index(h.name)}])")
        if h.operand is not None:
            depth = max(hidden + 1, batch_size)
            if depth > h.operand.config.max_reduction_depth:
                _fail("batch_size" if batch_size >= hidden + 1 else "hidden",
                      batch_size if batch_size >= hidden + 1 else hidden,
                      f"GEMM depth {depth} exceeds max_reduction_depth "
                      f"{h.operand.config.max_reduction_depth} of {h.name}'s preset")
    return TrainConfig(name, hidden, epochs, batch_size, learning_rate, seed, hardware,
                       split_seed, test_fraction, train_samples, source, learning_rate_final)


def default_config_path():
    """The packaged comparison run, ``gen/train/digits.toml``."""
    from importlib import resources
    return resources.files("qforge.gen") / "train" / "digits.toml"


def rtl_config_path():
    """The packaged training-on-the-accelerator run, ``gen/train/rtl.toml``."""
    from importlib import resources
    return resources.files("qforge.gen") / "train" / "rtl.toml"


def load_train_config(path=None) -> TrainConfig:
    """Read and validate a training TOML file (default: :func:`default_config_path`).

    >>> [h.name for h in load_train_config().hardware][:3]
    ['float32', 'int8', 'int8_approx']
    """
    if path is None:
        path = default_config_path()
        source = "gen/train/digits.toml"
    elif path == rtl_config_path():
        source = "gen/train/rtl.toml"
    else:
        source = str(path)
    if isinstance(path, str):
        path = Path(path)
    spec = read_toml(path, source, "training config", TrainConfigError)
    return train_config_from_dict(spec, source=source)


# ---- data -----------------------------------------------------------------------------

_DIGITS_CACHE: dict = {}


def load_digits_split(split_seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's digits (ships with the package, no download): ``(x_train,
    y_train, x_test, y_test)``, pixels scaled to ``[0, 1]``, split by a permutation from
    ``numpy.random.default_rng(split_seed)``; the test set is the first
    ``round(1797 * test_fraction)`` permuted samples."""
    if "digits" not in _DIGITS_CACHE:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ValueError("dataset = 'digits': needs scikit-learn (its digits ship with "
                             "the package); install it with `pip install -e '.[dev]'`") \
                from None
        digits = load_digits()
        _DIGITS_CACHE["digits"] = (digits.data / 16.0, digits.target.astype(np.int64))
    x, y = _DIGITS_CACHE["digits"]
    order = np.random.default_rng(split_seed).permutation(len(x))
    test = int(round(len(x) * test_fraction))
    return x[order[test:]], y[order[test:]], x[order[:test]], y[order[:test]]


# ---- training -------------------------------------------------------------------------

@dataclass
class RunResult:
    """Curves and final figures of one configuration's run (index 0: before training)."""

    name: str
    description: str
    test_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    #: Fraction of weight updates ``|lr * dW|`` below half a weight LSB (lost entirely by
    #: round-to-nearest), over all steps and weights; None for float32.
    small_update_fraction: float | None = None
    #: Share of the total update magnitude ``sum |lr * dW|`` carried by those small
    #: updates: what round-to-nearest loses; None for float32.
    small_update_mass: float | None = None
    #: Fraction of weights whose stored code changed, averaged over steps; None for float32.
    changed_fraction: float | None = None
    #: Largest weight magnitude at the end (the weight format saturates at its range).
    max_abs_weight: float = 0.0
    #: Weights at the end whose code is the format's most negative or most positive
    #: (saturated, or exactly there); None for float32.
    saturated_weights: int | None = None
    gemms: int = 0
    float64_fallbacks: int = 0
    seconds: float = 0.0
    #: Where the GEMMs and updates ran: "emulator" (float update, emulated GEMMs), or a
    #: runtime backend for ``update = "hardware"`` ("golden", "rtl"; see
    #: :mod:`qforge.sim.training.hardware`).
    backend: str = "emulator"
    #: Per epoch (programs only): the backend's cycles for the training steps (rtl; 0
    #: on the golden machine), the cycle model's prediction, the same for the
    #: evaluation, and the wall-clock seconds.
    epoch_cycles: list[int] = field(default_factory=list)
    epoch_model_cycles: list[int] = field(default_factory=list)
    eval_cycles: list[int] = field(default_factory=list)
    eval_model_cycles: list[int] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    #: The rtl run was compared with the golden machine after every program.
    checked: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _with_ones(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _loss_accuracy(logits, labels) -> tuple[float, float]:
    log_p = _log_softmax(logits)
    loss = -float(log_p[np.arange(len(labels)), labels].mean())
    return loss, float((logits.argmax(axis=1) == labels).mean())


def initial_weights(hidden: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """He-uniform weights (biases 0, folded as the last row) from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, (65, hidden)) * math.sqrt(6 / 64)
    w2 = rng.uniform(-1, 1, (hidden + 1, 10)) * math.sqrt(6 / hidden)
    w1[-1] = 0
    w2[-1] = 0
    return w1, w2


def training_data(train: TrainConfig, data=None):
    """``(x_train, y_train, x_test, y_test)`` of a run: ``data`` or the split of
    :func:`load_digits_split`, the training set cut to ``train.train_samples``."""
    if data is None:
        data = load_digits_split(train.split_seed, train.test_fraction)
    x_train, y_train, x_test, y_test = data
    if train.train_samples is not None:
        x_train, y_train = x_train[:train.train_samples], y_train[:train.train_samples]
    return x_train, y_train, x_test, y_test


def _batches(count: int, batch_size: int, seed: int, epoch: int):
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


def train_run(train: TrainConfig, hardware: HardwareConfig, data=None, *,
              epochs: int | None = None, log: Callable[[str], None] | None = None,
              log_every: int = 5) -> RunResult:
    """Train one configuration; return its curves. ``data`` defaults to the split of
    :func:`load_digits_split`; ``epochs`` overrides ``train.epochs``. Configurations
    with ``update = "hardware"`` run as programs on the golden machine
    (:func:`qforge.sim.training.hardware.train_program_run`)."""
    if hardware.update == "hardware":
        from qforge.sim.training.hardware import train_program_run
        return train_program_run(train, hardware, data, epochs=epochs, log=log,
                                 log_every=log_every)
    x_train, y_train, x_test, y_test = training_data(train, data)
    epochs = train.epochs if epochs is None else epochs
    result = RunResult(hardware.name, hardware.describe())
    start = time.perf_counter()
    w1, w2 = initial_weights(train.hidden, train.seed)
    x_train, x_test = _with_ones(x_train), _with_ones(x_test)
    onehot = np.eye(10)[y_train]
    steps_total = epochs * -(-len(x_train) // train.batch_size)
    hidden = train.hidden
    if hardware.is_float:
        w1, w2 = w1.astype(np.float32), w2.astype(np.float32)
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
        onehot = onehot.astype(np.float32)

        def evaluate():
            h = _with_ones(np.maximum(x_test @ w1, 0))
            return _loss_accuracy((h @ w2).astype(np.float64), y_test)
    else:
        fmt, wfmt, counter = hardware.operand, hardware.weights, GemmCounter()
        codes = [wfmt.quantize(w, Rounding.NEAREST_EVEN) for w in (w1, w2)]
        small = changed = small_mass = total_mass = 0.0
        steps = 0

        def quantize(values, slot, step, rounding=hardware.rounding):
            seed_word, tensor = random_key(train.seed, step * len(SLOTS) + _SLOT[slot])
            return quantize_operand(values, fmt, rounding, seed=seed_word, tensor=tensor)

        def evaluate():
            q_w1, q_w2 = (quantize(wfmt.value(c), "w1", 0, Rounding.NEAREST_EVEN)
                          for c in codes)
            q_x = quantize(x_test, "x", 0, Rounding.NEAREST_EVEN)
            h = _with_ones(np.maximum(emulated_matmul(q_x, q_w1, counter), 0))
            q_h = quantize(h, "h", 0, Rounding.NEAREST_EVEN)
            return _loss_accuracy(emulated_matmul(q_h, q_w2, counter), y_test)

    loss, accuracy = evaluate()
    result.test_loss.append(loss)
    result.test_accuracy.append(accuracy)
    result.train_loss.append(None)             # no training before epoch 1
    step = 0
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in _batches(len(x_train), train.batch_size, train.seed, epoch):
            x, t, n = x_train[batch], onehot[batch], len(batch)
            lr = train.learning_rate_at(step, steps_total)
            if hardware.is_float:
                z1 = x @ w1
                h = _with_ones(np.maximum(z1, 0))
                z2 = h @ w2
                log_p = _log_softmax(z2)
                losses.append(-float((log_p * t).sum() / n))
                dz2 = (np.exp(log_p) - t) / np.float32(n)
                dw2 = h.T @ dz2
                dz1 = (dz2 @ w2.T)[:, :hidden] * (z1 > 0)
                dw1 = x.T @ dz1
                w1 = w1 - np.float32(lr) * dw1
                w2 = w2 - np.float32(lr) * dw2
            else:
                q_x = quantize(x, "x", step)
                q_w1 = quantize(wfmt.value(codes[0]), "w1", step)
                z1 = emulated_matmul(q_x, q_w1, counter)
                q_h = quantize(_with_ones(np.maximum(z1, 0)), "h", step)
                q_w2 = quantize(wfmt.value(codes[1]), "w2", step)
                z2 = emulated_matmul(q_h, q_w2, counter)
                log_p = _log_softmax(z2)
                losses.append(-float((log_p * t).sum() / n))
                q_dz2 = quantize((np.exp(log_p) - t) / n, "dz2", step)
                dw2 = emulated_matmul(q_h.T, q_dz2, counter)
                dh = emulated_matmul(q_dz2, q_w2.T, counter)
                q_dz1 = quantize(dh[:, :hidden] * (z1 > 0), "dz1", step)
                dw1 = emulated_matmul(q_x.T, q_dz1, counter)
                for i, (slot, grad) in enumerate((("update_w1", dw1), ("update_w2", dw2))):
                    update = lr * grad
                    size = np.abs(update)
                    below = size < wfmt.unit / 2
                    small += float(below.mean())
                    small_mass += float(size[below].sum())
                    total_mass += float(size.sum())
                    seed_word, tensor = random_key(train.seed, step * len(SLOTS) + _SLOT[slot])
                    new = wfmt.quantize(wfmt.value(codes[i]) - update, hardware.update_rounding,
                                        seed=seed_word, tensor=tensor)
                    changed += float((new != codes[i]).mean())
                    codes[i] = new
                steps += 2
            step += 1
        loss, accuracy = evaluate()
        result.test_loss.append(loss)
        result.test_accuracy.append(accuracy)
        result.train_loss.append(float(np.mean(losses)))
        if log is not None and (epoch % log_every == 0 or epoch == epochs):
            log(f"{hardware.name:>16s} epoch {epoch:3d}/{epochs}: train loss "
                f"{result.train_loss[-1]:.4f}, test loss {loss:.4f}, "
                f"test accuracy {100 * accuracy:.2f}%")
    if hardware.is_float:
        result.max_abs_weight = float(max(np.abs(w1).max(), np.abs(w2).max()))
    else:
        result.max_abs_weight = float(max(np.abs(wfmt.value(c)).max() for c in codes))
        limit = 1 << (wfmt.bits - 1)
        result.saturated_weights = sum(int(((c == -limit) | (c == limit - 1)).sum())
                                       for c in codes)
        result.small_update_fraction = small / max(steps, 1)
        result.small_update_mass = small_mass / total_mass if total_mass else 0.0
        result.changed_fraction = changed / max(steps, 1)
        result.gemms = counter.gemms
        result.float64_fallbacks = counter.float64_fallbacks
    result.seconds = time.perf_counter() - start
    return result


def _train_job(arguments):
    """One configuration's run in a worker process (progress lines go to stderr)."""
    import sys
    train, hardware, data, epochs, verbose = arguments
    log = (lambda message: print(message, file=sys.stderr, flush=True)) if verbose else None
    return train_run(train, hardware, data, epochs=epochs, log=log)


def train_all(train: TrainConfig, *, epochs: int | None = None,
              log: Callable[[str], None] | None = None, jobs: int = 1,
              backend: str | None = None, check: bool = False,
              progress: bool = False, runtime_options: dict | None = None) -> dict:
    """Train every hardware configuration of ``train``; return a JSON-ready report.

    ``jobs > 1`` trains configurations in that many worker processes (``spawn``); the
    results are identical, since every run depends only on its configuration and seed.
    Workers print their progress lines to stderr whenever ``log`` is given.

    ``backend`` (``"golden"`` or ``"rtl"``) runs the configurations with
    ``update = "hardware"`` as programs on that runtime backend, in this process, with
    a progress bar if ``progress`` and, with ``check``, compared with the golden machine
    after every program; float32 runs as the reference; any other configuration is a
    :class:`TrainConfigError`.
    """
    data = load_digits_split(train.split_seed, train.test_fraction)
    if backend is not None:
        from qforge.sim.training.hardware import train_program_run
        unsupported = [h.name for h in train.hardware
                       if not h.is_float and h.update != "hardware"]
        if unsupported:
            raise TrainConfigError(
                f"{train.source}: --backend {backend}: configuration(s) "
                f"{', '.join(unsupported)} update the weights on the host (update = "
                f"\"float\"); only update = \"hardware\" runs as programs (see "
                f"gen/train/rtl.toml)")
        runs = [train_run(train, hardware, data, epochs=epochs, log=log)
                if hardware.is_float else
                train_program_run(train, hardware, data, backend=backend, epochs=epochs,
                                  check=check, log=log, progress=progress,
                                  runtime_options=runtime_options)
                for hardware in train.hardware]
    elif jobs > 1 and len(train.hardware) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(train.hardware)), mp_context=context) as pool:
            runs = list(pool.map(_train_job, [(train, hardware, data, epochs, log is not None)
                                              for hardware in train.hardware]))
    else:
        runs = [train_run(train, hardware, data, epochs=epochs, log=log)
                for hardware in train.hardware]
    return {
        "name": train.name,
        "source": train.source,
        "epochs": train.epochs if epochs is None else epochs,
        "batch_size": train.batch_size,
        "learning_rate": train.learning_rate,
        "learning_rate_final": train.learning_rate if train.learning_rate_final is None
        else train.learning_rate_final,
        "hidden": train.hidden,
        "seed": train.seed,
        "split_seed": train.split_seed,
        "train_samples": len(data[0]) if train.train_samples is None
        else min(train.train_samples, len(data[0])),
        "test_samples": len(data[2]),
        "runs": [run.to_dict() for run in runs],
    }


def describe_schedule(report: dict) -> str:
    """The learning-rate schedule of a :func:`train_all` report, in words.

    >>> describe_schedule({"learning_rate": 0.5, "learning_rate_final": 0.005})
    '0.5 -> 0.005 (cosine)'
    """
    start, final = report["learning_rate"], report["learning_rate_final"]
    return f"{start:g}" if start == final else f"{start:g} -> {final:g} (cosine)"


def format_table(report: dict) -> str:
    """The Markdown table of final test accuracy and loss, with the difference to the
    float32 run (if there is one)."""
    reference = next((run for run in report["runs"] if run["name"] == "float32"), None)
    lines = ["| configuration | arithmetic | test accuracy | vs float32 | test loss "
             "| updates < LSB/2: count, magnitude | time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for run in report["runs"]:
        accuracy = 100 * run["test_accuracy"][-1]
        delta = ("" if reference is None or run is reference else
                 f"{accuracy - 100 * reference['test_accuracy'][-1]:+.2f}")
        small = ("" if run["small_update_fraction"] is None
                 else f"{100 * run['small_update_fraction']:.1f}%, "
                      f"{100 * run['small_update_mass']:.1f}%")
        lines.append(f"| {run['name']} | {run['description']} | {accuracy:.2f}% | {delta} "
                     f"| {run['test_loss'][-1]:.4f} | {small} | {run['seconds']:.1f} s |")
    return "\n".join(lines)


def format_program_table(report: dict) -> str:
    """Per epoch of every configuration that ran as programs: test accuracy, the
    backend's simulated cycles of the training steps against the cycle model's
    prediction, the evaluation's cycles and the wall-clock time ("" if none ran so)."""
    lines = ["| configuration | backend | epoch | test accuracy | cycles | model cycles "
             "| cycles / model | evaluation cycles | wall clock |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = 0
    for run in report["runs"]:
        if run.get("backend", "emulator") == "emulator" or not run.get("epoch_model_cycles"):
            continue
        simulated = run["backend"] == "rtl"
        epochs = list(enumerate(run["epoch_model_cycles"], start=1))
        if not simulated and len(set(run["epoch_model_cycles"])) == 1:
            # Nothing measured, and every epoch predicts the same: one row.
            epochs = epochs[-1:]
        for epoch, model in epochs:
            cycles = run["epoch_cycles"][epoch - 1]
            evaluation = run["eval_cycles"][epoch - 1] if simulated \
                else run["eval_model_cycles"][epoch - 1]
            # A range: every epoch's predicted cycles are those shown; accuracy after
            # the last.
            label = epoch if simulated or len(epochs) > 1 or epoch == 1 else f"1-{epoch}"
            lines.append(
                f"| {run['name']} | {run['backend']}{' (checked)' if run['checked'] else ''}"
                f" | {label} | {100 * run['test_accuracy'][epoch]:.2f}% "
                f"| {cycles if simulated else ''} | {model} "
                f"| {f'{cycles / model:.4f}' if simulated and model else ''} "
                f"| {evaluation}{'' if simulated else ' (model)'} "
                f"| {run['epoch_seconds'][epoch - 1]:.1f} s |")
            rows += 1
    return "\n".join(lines) if rows else ""


def plot_curves(report: dict, path) -> None:
    """Save test accuracy and training loss per epoch for every configuration (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    colors = plt.get_cmap("tab10" if len(report["runs"]) <= 11 else "tab20")
    for index, run in enumerate(report["runs"]):
        epochs = np.arange(len(run["test_accuracy"]))
        style = (dict(linewidth=2.2, color="black") if run["name"] == "float32"
                 else dict(linewidth=1.3, color=colors((index - 1) % colors.N)))
        left.plot(epochs, 100 * np.array(run["test_accuracy"]), label=run["name"], **style)
        right.plot(epochs[1:], run["train_loss"][1:], label=run["name"], **style)
    from matplotlib.ticker import MaxNLocator
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("epoch")
    left.set_ylabel("test accuracy (%)")
    left.set_ylim(bottom=max(0, min(100 * min(run["test_accuracy"][1:] or [0])
                                    for run in report["runs"]) - 5))
    left.grid(alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel("training loss (cross-entropy)")
    right.set_yscale("log")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="upper right")
    backends = {run.get("backend", "emulator") for run in report["runs"]}
    what = ("training on the RTL (Verilator)" if "rtl" in backends else
            "training as programs (golden machine)" if "golden" in backends else
            "emulated training")
    figure.suptitle(f"qforge {what}: {report['name']} (MLP 64-{report['hidden']}"
                    f"-10, batch {report['batch_size']}, lr {describe_schedule(report)}, "
                    f"seed {report['seed']})")
    figure.savefig(path, dpi=110)
    plt.close(figure)
