"""The emulated hardware GEMM (``qforge.sim.training.emulated_gemm``) against float and
integer references, and its float64 fallback."""

import numpy as np
import pytest

from qforge.sim.model.numerics import Selection, operand_value
from qforge.sim.model.rounding import Rounding
from qforge.sim.model.vrq_format import VrqFormat
from qforge.sim.training.emulated_gemm import GemmCounter, emulated_matmul, hardware_matmul
from qforge.sim.training.formats import OperandFormat, quantize_operand
from tests.sim.training.operands import DEFAULT, FORMATS, ROUNDINGS, error_bound, operands


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=["nearest", "stochastic"])
@pytest.mark.parametrize("name", FORMATS)
def test_emulated_gemm_is_within_the_quantization_error_of_float(name, rounding):
    fmt = FORMATS[name]
    for seed in range(3):
        a, b = operands(seed)
        da, db = error_bound(a, fmt), error_bound(b, fmt)
        qa = quantize_operand(a, fmt, rounding, seed=seed, tensor=1)
        qb = quantize_operand(b, fmt, rounding, seed=seed, tensor=2)
        assert (np.abs(qa.values() - a) <= da).all()
        assert (np.abs(qb.values() - b) <= db).all()
        result = emulated_matmul(qa, qb)
        bound = da @ np.abs(b) + np.abs(a) @ db + da @ db
        assert (np.abs(result - a @ b) <= bound * (1 + 1e-9)).all()
        # And the GEMM is exactly the product of the values it quantized to.
        np.testing.assert_allclose(result, qa.values() @ qb.values(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bits, kept, selection", [
    (8, None, Selection.DYNAMIC), (8, 2, Selection.DYNAMIC), (8, 1, Selection.DYNAMIC),
    (8, 2, Selection.STATIC), (4, None, Selection.DYNAMIC), (4, 1, Selection.DYNAMIC),
    (4, 1, Selection.STATIC)])
def test_int_gemm_equals_an_independent_integer_computation(bits, kept, selection):
    fmt = OperandFormat("int", DEFAULT, bits=bits, kept=kept, selection=selection)
    for seed in range(3):
        a, b = operands(seed, 16, 65, 10)
        qa = quantize_operand(a, fmt, Rounding.STOCHASTIC, seed=seed, tensor=3)
        qb = quantize_operand(b, fmt, Rounding.STOCHASTIC, seed=seed, tensor=4)
        assert np.abs(qa.integers).max() <= 1 << (bits - 1)
        # numpy's integer matmul (no BLAS, no float) of the kept-block operand values.
        ia = operand_value(qa.integers, DEFAULT, fmt.precision)
        ib = operand_value(qb.integers, DEFAULT, fmt.precision)
        expected = np.ldexp((ia @ ib).astype(np.float64), qa.exponent + qb.exponent)
        assert (emulated_matmul(qa, qb) == expected).all()
        assert (emulated_matmul(qb.T, qa.T) == expected.T).all()   # transposed reads


@pytest.mark.parametrize("name", ["vrq8", "vrq6_2", "ab8"])
def test_vrq_and_address_block_gemms_are_exact_integer_gemms(name):
    fmt = FORMATS[name]
    counter = GemmCounter()
    for seed in range(3):
        a, b = operands(seed, 16, 65, 10)
        qa = quantize_operand(a, fmt, Rounding.STOCHASTIC, seed=seed, tensor=5)
        qb = quantize_operand(b, fmt, Rounding.STOCHASTIC, seed=seed, tensor=6)
        exact = qa.integers.astype(object) @ qb.integers.astype(object)   # Python ints
        expected = np.ldexp(exact.astype(np.float64), qa.exponent + qb.exponent)
        assert (emulated_matmul(qa, qb, counter) == expected).all()
    assert counter.gemms == 3 and counter.float64_fallbacks == 0


@pytest.mark.parametrize("vrq, kept, selection", [
    (VrqFormat(6, 4, 2), None, Selection.STATIC), (VrqFormat(6, 4, 2), 2, Selection.DYNAMIC),
    (VrqFormat(6, 4, 2), 1, Selection.DYNAMIC), (VrqFormat(6, 4, 2), 1, Selection.STATIC),
    (VrqFormat(4, 2, 8), None, Selection.STATIC), (VrqFormat(4, 2, 8), 1, Selection.DYNAMIC),
    (VrqFormat(4, 2, 8), 1, Selection.STATIC)])
def test_vrq_gemm_equals_the_golden_models_vrq_operand_gemm(vrq, kept, selection):
    """The training emulator's VRQ GEMM (integer forms) is the PE's VRQ GEMM:
    ``numerics.gemm`` on packed VRQ operand words of a configuration with that [vrq]."""
    from qforge.sim.model.spec import from_dict
    from qforge.sim.model.numerics import OperandPrecision, Precision, gemm, vrq_pack
    from qforge.sim.model.quantize import vrq_encode
    config = from_dict(DEFAULT.to_dict() | {"vrq": {"code_width": vrq.code_width,
                                                     "range_stride": vrq.range_stride,
                                                     "ranges": vrq.ranges}})
    fmt = OperandFormat("vrq", config, vrq=vrq, kept=kept, selection=selection)
    a, b = operands(11, 16, 65, 10)
    qa = quantize_operand(a, fmt, Rounding.STOCHASTIC, seed=2, tensor=1)
    qb = quantize_operand(b, fmt, Rounding.STOCHASTIC, seed=2, tensor=2)
    words = [vrq_pack(*vrq_encode(x, vrq, rounding=Rounding.STOCHASTIC, seed=2, tensor=t),
                      config) for x, t in ((a, 1), (b, 2))]
    p = fmt.precision
    mode = OperandPrecision(p.blocks, p.kept, p.selection, vrq=True)
    expected = gemm(words[0], words[1], config, Precision(mode, mode))
    assert (emulated_matmul(qa, qb) == np.ldexp(expected.astype(np.float64),
                                                qa.exponent + qb.exponent)).all()


def test_vrq_kept_block_approximation_applies_to_the_codes():
    exact = OperandFormat("vrq", DEFAULT, vrq=VrqFormat(6, 2, 4))
    approx = OperandFormat("vrq", DEFAULT, vrq=VrqFormat(6, 2, 4), kept=1)
    values = np.array([[0.75, -0.4, 0.1, 0.01]])
    # 0.75 has code 48 (blocks [0, 0, 3]): exact either way; 0.4 -> code 51 -> 48 kept.
    q_exact, q_approx = quantize_operand(values, exact), quantize_operand(values, approx)
    assert q_exact.values()[0, 0] == q_approx.values()[0, 0] == 0.75
    assert abs(q_approx.values()[0, 1]) <= abs(q_exact.values()[0, 1])
    assert (np.sign(q_approx.values()) == np.sign(values)).all()


def test_wide_integer_forms_fall_back_to_float64_and_are_counted():
    fmt = OperandFormat("vrq", DEFAULT, vrq=VrqFormat(4, 4, 8))      # 32-bit integer forms
    a, b = operands(7)
    counter = GemmCounter()
    qa, qb = quantize_operand(a, fmt), quantize_operand(b, fmt)
    result = emulated_matmul(qa, qb, counter)
    assert counter.float64_fallbacks == 1
    np.testing.assert_allclose(result, qa.values() @ qb.values(), rtol=1e-12)


def test_hardware_matmul_is_quantize_then_emulated_gemm():
    a, b = operands(3)
    fmt = FORMATS["vrq8"]
    expected = emulated_matmul(quantize_operand(a, fmt, Rounding.STOCHASTIC, seed=9, tensor=1),
                               quantize_operand(b, fmt, Rounding.STOCHASTIC, seed=9, tensor=2))
    result = hardware_matmul(a, b, fmt, Rounding.STOCHASTIC, seed=9, tensors=(1, 2))
    assert (result == expected).all()
