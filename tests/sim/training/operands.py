"""Shared test operands for the training formats and the emulated GEMM: the formats
swept, a heavy-tailed A and a normal B, and an a-priori bound on the quantization error."""

import numpy as np

from qforge.sim.model.spec import load_preset
from qforge.sim.model.rounding import Rounding
from qforge.sim.model.vrq_format import VrqFormat
from qforge.sim.training.formats import OperandFormat

DEFAULT = load_preset("default")
VRQ8 = VrqFormat(4, 2, 8)
FORMATS = {
    "int8": OperandFormat("int", DEFAULT, bits=8),
    "int4": OperandFormat("int", DEFAULT, bits=4),
    "vrq8": OperandFormat("vrq", DEFAULT, vrq=VRQ8),
    "vrq6_2": OperandFormat("vrq", DEFAULT, vrq=VrqFormat(6, 4, 2)),
    "ab8": OperandFormat("address_block", DEFAULT, bits=8, block=16),
}
ROUNDINGS = [Rounding.NEAREST_EVEN, Rounding.STOCHASTIC]


def operands(seed, m=9, d=23, n=7):
    """A heavy-tailed A (with zeros) and a normal B."""
    rng = np.random.default_rng(seed)
    a = rng.standard_t(2, (m, d)) * 0.3
    a[rng.random((m, d)) < 0.2] = 0
    return a, rng.normal(0, 0.05, (d, n))


def error_bound(values, fmt: OperandFormat):
    """A priori bound on |x - Q(x)| per element: one unit of the element's scale
    (nearest needs only half; stochastic rounding and saturation need a whole one)."""
    magnitude = np.abs(values)
    if fmt.kind == "int":
        top = int(np.frexp(magnitude.max())[1]) - 1
        return np.full(values.shape, 2.0 ** (top - fmt.bits + 2))
    if fmt.kind == "vrq":
        v = fmt.vrq
        top = int(np.frexp(magnitude.max())[1]) - 1
        exponent = np.frexp(np.where(magnitude > 0, magnitude, 1))[1] - 1
        group = np.clip((top - exponent) // v.range_stride, 0, v.ranges - 1)
        return np.where(magnitude > 0, np.ldexp(1.0, top - group * v.range_stride
                                                - v.code_width + 1), 0)
    flat = magnitude.ravel()
    blocks = np.zeros(-(-flat.size // fmt.block) * fmt.block)
    blocks[:flat.size] = flat
    largest = blocks.reshape(-1, fmt.block).max(axis=1)
    units = np.ldexp(1.0, np.frexp(np.where(largest > 0, largest, 1))[1] - 1 - fmt.bits + 2)
    return np.repeat(units, fmt.block)[:flat.size].reshape(values.shape)
