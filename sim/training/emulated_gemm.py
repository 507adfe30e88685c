"""The emulated hardware GEMM of training: two quantized operands multiplied as the
accelerator does, bit-exact for the ``int`` format (the golden model itself).

The VRQ and address-block GEMMs are exact integer GEMMs of the integer forms
(:func:`qforge.sim.model.exact_matmul.exact_integer_matmul`, float BLAS kept exact by a bound), then
scaled back by ``2**(exponent_a + exponent_b)``. Two limits: if ``max|a| * max|b| *
depth`` reaches ``2**62`` (integer forms wider than about 27 bits: a VRQ format with a
wide span such as ``N = 4, S = 4, G = 8``, 32 bits, or an address-block tensor whose
block scales differ by more than about 20 bits), the product falls back to a float64
matmul of the exact operand values, which rounds only the sums; these GEMMs are counted
(:attr:`GemmCounter.float64_fallbacks`, reported per run). And an exact integer result
above ``2**53`` is rounded once when it is converted to float64. Neither happens for the
int formats, whose results stay below ``2**25``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qforge.sim.model.exact_matmul import exact_integer_matmul
from qforge.sim.model.numerics import Precision, gemm
from qforge.sim.model.rounding import Rounding
from qforge.sim.training.formats import OperandFormat, Quantized, quantize_operand

__all__ = ["GemmCounter", "emulated_matmul", "hardware_matmul"]


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

    >>> from qforge.sim.model.spec import load_preset
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
                      Precision(a.gemm_precision, b.gemm_precision))
        return np.ldexp(result.astype(np.float64), scale)
    if a.integers is not None and b.integers is not None:
        max_a = int(np.abs(a.integers).max(initial=0))
        max_b = int(np.abs(b.integers).max(initial=0))
        bound = max_a * max_b * a.shape[1]
        if bound < 1 << 62:
            result = exact_integer_matmul(a.integers, b.integers, bound)
            return np.ldexp(result.astype(np.float64), scale)
    if counter is not None:
        counter.float64_fallbacks += 1
    return a.values() @ b.values()


def hardware_matmul(a, b, fmt: OperandFormat, rounding: Rounding = Rounding.NEAREST_EVEN,
                    *, seed: int = 0, tensors: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Quantize float ``a`` and ``b`` (tensor ids ``tensors``) and multiply on the
    emulated hardware: ``emulated_matmul(quantize_operand(a), quantize_operand(b))``.

    >>> from qforge.sim.model.spec import load_preset
    >>> from qforge.sim.model.vrq_format import VrqFormat
    >>> cfg = load_preset("default")
    >>> hardware_matmul(np.array([[0.5, -0.3]]), np.array([[1.0], [3.0]]),
    ...                 OperandFormat("vrq", cfg, vrq=VrqFormat(4, 2, 8)))  # 0.5 - 0.3125 * 3
    array([[-0.4375]])
    """
    return emulated_matmul(quantize_operand(a, fmt, rounding, seed=seed, tensor=tensors[0]),
                           quantize_operand(b, fmt, rounding, seed=seed, tensor=tensors[1]))
