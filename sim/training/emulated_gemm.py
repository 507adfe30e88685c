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

The paired precision mode (:mod:`qforge.sim.model.paired`) is a property of a GEMM, not
of a stored tensor: ``emulated_matmul(a, b, paired=mode)`` runs the GEMM with A's pairs'
windows, :func:`gemm_precision` being the one place that puts ``mode`` on A's
:class:`~qforge.sim.model.numerics.OperandPrecision` (the GEMM and its cycle count use it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qforge.sim.model.exact_matmul import exact_integer_matmul
from qforge.sim.model.numerics import OperandPrecision, Precision, gemm
from qforge.sim.model.paired import PairedPrecision
from qforge.sim.model.rounding import Rounding
from qforge.sim.training.formats import OperandFormat, Quantized, quantize_operand

__all__ = ["GemmCounter", "gemm_precision", "emulated_matmul", "hardware_matmul"]


@dataclass
class GemmCounter:
    """Counts emulated GEMMs and the float64 fallbacks (integer forms too wide for an
    exact int64 GEMM; see the module docstring)."""

    gemms: int = 0
    float64_fallbacks: int = 0


def gemm_precision(a: OperandPrecision, b: OperandPrecision,
                   paired: PairedPrecision | None = None) -> Precision:
    """The :class:`~qforge.sim.model.numerics.Precision` of a GEMM of operands in modes
    ``a`` and ``b``, A's ``paired`` field set to ``paired`` (``None``: not paired). The
    golden model validates it when it runs (A must then be exact with all blocks, on a
    preset with ``arithmetic.paired``).

    >>> from qforge.sim.model.paired import PairedPrecision
    >>> gemm_precision(OperandPrecision(4, 4), OperandPrecision(4, 4),
    ...                PairedPrecision(2, 2)).a.describe()
    '4 blocks, paired, symmetric 2 blocks, raw'
    """
    return Precision(a if paired is None else replace(a, paired=paired), b)


def emulated_matmul(a: Quantized, b: Quantized, counter: GemmCounter | None = None, *,
                    paired: PairedPrecision | None = None) -> np.ndarray:
    """The hardware GEMM ``a @ b`` of two quantized operands, as float64.

    ``int``: :func:`qforge.sim.model.numerics.gemm` on the codes with
    ``gemm_precision(a.gemm_precision, b.gemm_precision, paired)`` (bit-exact, the
    golden model itself; ``paired``: the paired mode's windows on A, both operands
    ``int``, else :class:`ValueError`).
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
    if paired is not None and not a.fmt.kind == b.fmt.kind == "int":
        raise ValueError(f"paired = {paired.describe()!r}: the paired mode needs two int "
                         f"operands, not {a.fmt.kind} x {b.fmt.kind}")
    if a.fmt.kind == "int" and b.fmt.kind == "int":
        result = gemm(a.integers, b.integers, a.fmt.config,
                      gemm_precision(a.gemm_precision, b.gemm_precision, paired))
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
