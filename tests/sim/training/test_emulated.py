"""Emulated training (``qforge.sim.training.emulated``): the emulated GEMM against float and
integer references, the weight-update rounding, a short training run, the TOML
validation and the ``qforge train`` command."""

import json
from pathlib import Path

import numpy as np
import pytest

from qforge.gen.cli import main
from qforge.sim.model.spec import load_preset
from qforge.sim.model.numerics import Selection, operand_value
from qforge.sim.model.quantize import Rounding, VrqFormat
from qforge.sim.training.emulated import (SLOTS, GemmCounter, OperandFormat, TrainConfigError,
                                 WeightFormat, emulated_matmul, hardware_matmul,
                                 load_digits_split, load_train_config, quantize_operand,
                                 random_key, train_all, train_config_from_dict, train_run)

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


def test_stochastic_weight_update_is_unbiased_and_nearest_loses_small_updates():
    fmt = WeightFormat(8, 2.0)
    codes = np.full((200, 250), 17, dtype=np.int64)
    update = 0.3 * fmt.unit                           # below half an LSB
    target = fmt.value(codes) - update
    nearest = fmt.quantize(target, Rounding.NEAREST_EVEN)
    assert (nearest == codes).all()                   # the update is lost entirely
    draws = [fmt.quantize(target, Rounding.STOCHASTIC, seed=1, tensor=t) for t in range(4)]
    # 50000 Bernoulli(0.3) draws per tensor: standard deviation of the mean 0.002.
    for draw in draws:
        assert abs(draw.mean() - (17 - 0.3)) < 0.01
    assert len({draw.tobytes() for draw in draws}) == 4   # other tensors, other bits
    sr = fmt.quantize(target, Rounding.STOCHASTIC, seed=1, tensor=0)
    assert set(np.unique(sr)) == {16, 17}             # rounds to a neighbour only


def test_weight_format_saturates():
    fmt = WeightFormat(6, 1.0)
    codes = fmt.quantize(np.array([[5.0, -5.0, 0.999]]), Rounding.STOCHASTIC, seed=0, tensor=0)
    assert codes.tolist() == [[31, -32, 31]]


def test_random_keys_never_repeat_within_or_across_seeds():
    keys = {random_key(seed, counter) for seed in (0, 1, 65535)
            for counter in (0, 1, 65535, 65536, 123456789, 2**32 - 1)}
    assert len(keys) == 18
    with pytest.raises(ValueError, match="seed = 65536"):
        random_key(65536, 0)
    assert len(SLOTS) == 8


def test_digits_split_is_fixed_and_scaled():
    x_train, y_train, x_test, y_test = load_digits_split(0, 0.25)
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert x_train.min() == 0 and x_train.max() == 1
    again = load_digits_split(0, 0.25)
    assert (again[3] == y_test).all() and set(y_train.tolist()) == set(range(10))


SMALL = {"name": "small", "hidden": 32, "epochs": 2, "batch_size": 16, "learning_rate": 0.2,
         "seed": 3, "train_samples": 400,
         "hardware": [{"name": "float32", "format": "float32"},
                      {"name": "vrq8", "format": "vrq", "code_width": 4, "range_stride": 2,
                       "ranges": 8, "rounding": "stochastic", "weight_bits": 12,
                       "update_rounding": "stochastic"},
                      {"name": "int8_approx", "format": "int", "bits": 8, "kept_blocks": 2,
                       "rounding": "nearest", "update_rounding": "nearest"}]}


def test_short_training_run_learns_and_is_reproducible():
    train = train_config_from_dict(SMALL)
    report = train_all(train)
    for run in report["runs"]:
        assert run["test_accuracy"][0] < 0.3                  # chance is 0.1
        assert run["test_accuracy"][-1] > 0.6, run["name"]
        assert len(run["test_accuracy"]) == 3 and len(run["train_loss"]) == 3
    low = report["runs"][1]
    assert low["gemms"] == 2 * 25 * 5 + 3 * 2 and low["float64_fallbacks"] == 0
    assert 0 <= low["small_update_fraction"] <= 1 and 0 < low["changed_fraction"] <= 1
    assert 0 <= low["small_update_mass"] <= 1
    again = train_run(train, train.hardware[1])
    assert again.test_accuracy == low["test_accuracy"]
    assert again.train_loss[1:] == low["train_loss"][1:]


def test_parallel_workers_give_the_same_results():
    train = train_config_from_dict(dict(SMALL, epochs=1, train_samples=160))
    serial = train_all(train)
    parallel = train_all(train, jobs=2)
    for one, two in zip(serial["runs"], parallel["runs"]):
        assert one["test_accuracy"] == two["test_accuracy"]
        assert one["test_loss"] == two["test_loss"]


def test_packaged_comparison_config():
    train = load_train_config()
    names = [h.name for h in train.hardware]
    assert names[0] == "float32" and len(set(names)) == len(names)
    assert {"int8", "int8_approx", "int4", "vrq8_g8_sr", "vrq8_g8_nearest", "vrq8_g2_sr",
            "ab8", "w8_nearest", "w8_sr"} <= set(names)
    formats = {h.operand.kind for h in train.hardware if h.operand}
    assert formats == {"int", "vrq", "address_block"}
    for name in ("vrq8_g8_sr", "vrq8_g2_sr"):
        vrq8 = next(h for h in train.hardware if h.name == name)
        assert vrq8.operand.storage_bits == 8 and vrq8.rounding == Rounding.STOCHASTIC
    low = {h.name: h for h in train.hardware if h.weights and h.weights.bits == 8}
    assert low["w8_nearest"].update_rounding == Rounding.NEAREST_EVEN
    assert low["w8_sr"].update_rounding == Rounding.STOCHASTIC
    sweep = load_train_config(Path(__file__).parents[3] / "gen" / "train" / "weight_bits.toml")
    assert len(sweep.hardware) == 13


def hardware(**entry):
    """SMALL with one hardware entry: an int8 named x changed by ``entry`` (None: drop)."""
    merged = {"name": "x", "format": "int", "bits": 8} | entry
    return dict(SMALL, hardware=[{k: v for k, v in merged.items() if v is not None}])


@pytest.mark.parametrize("spec, message", [
    (dict(SMALL, hidden=0), "hidden = 0: allowed range is 1 .. 1024"),
    (dict(SMALL, learning_rate="fast"), "learning_rate = 'fast': must be a number"),
    (dict(SMALL, seed=70000), "seed = 70000: allowed range is 0 .. 65535"),
    (dict(SMALL, banana=1), "unknown key 'banana'"),
    (dict(SMALL, dataset="mnist"), "dataset = 'mnist': allowed: digits"),
    (dict(SMALL, hardware=[]), "hardware = []: must be a non-empty array"),
    ({k: v for k, v in SMALL.items() if k != "epochs"}, "missing key epochs"),
    (hardware(format="fp8"), "hardware[0] (x).format = 'fp8': allowed: float32, int, vrq, "
                             "address_block"),
    (hardware(bits=7), "hardware[0] (x).bits = 7: must be a multiple of the block width 2"),
    (hardware(bits=10), "hardware[0] (x).bits = 10: allowed range is 2 .. 8"),
    (hardware(kept_blocks=5), "hardware[0] (x).kept_blocks = 5: allowed range is 1 .. 4"),
    (hardware(selection="random"), "hardware[0] (x).selection = 'random': allowed: dynamic, "
                                   "static"),
    (hardware(rounding="up"), "hardware[0] (x).rounding = 'up': allowed: nearest, stochastic"),
    (hardware(weight_bits=1), "hardware[0] (x).weight_bits = 1: allowed range is 2 .. 32"),
    (hardware(weight_range=3), "hardware[0] (x).weight_range = 3: must be a power of two"),
    (hardware(code_width=4), "hardware[0] (x).code_width = 4: only allowed with format = "
                             "\"vrq\""),
    (hardware(block=64), "hardware[0] (x).block = 64: only allowed with format = "
                         "\"address_block\""),
    (hardware(format="float32", bits=8), "hardware[0] (x).bits = 8: only allowed with format"),
    (hardware(format="vrq", bits=None, code_width=4, range_stride=3, ranges=8),
     "range_stride = 3: must be a multiple of the block width 2"),
    (hardware(format="vrq", bits=None, code_width=4, range_stride=2, ranges=99),
     "hardware[0] (x).ranges = 99: allowed range is 1 .. 64"),
    (hardware(format="vrq", bits=None, code_width=2, range_stride=4, ranges=8),
     "vrq.range_stride = 4: must not exceed vrq.code_width (2)"),
    (hardware(format="vrq", bits=None, code_width=4, range_stride=2),
     "missing key hardware[0] (x).ranges"),
    (hardware(preset="huge"), "hardware[0] (x).preset = 'huge': allowed: default, large, sparse, tiny"),
    (dict(SMALL, hardware=[{"name": "a", "format": "float32"},
                           {"name": "a", "format": "float32"}]),
     "hardware[1].name = 'a': must be unique"),
    (dict(SMALL, hardware=[{"name": "not a name", "format": "float32"}]),
     "hardware[0].name = 'not a name': must be a non-empty identifier"),
])
def test_bad_training_config_names_the_field(spec, message):
    with pytest.raises(TrainConfigError) as error:
        train_config_from_dict(spec, source="t.toml")
    assert str(error.value).startswith("t.toml: ")
    assert message in str(error.value), str(error.value)


# ---- the command line -------------------------------------------------------------------

def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--emulate", "--backend", "--check", "--config", "--epochs", "--seed",
                   "--plot", "--json", "--jobs", "weight_bits", "update_rounding", "update"):
        assert option in out


def test_train_without_emulate_or_backend_is_a_clear_error(capsys):
    code, _, err = run(capsys, "train")
    assert code == 2 and err.startswith("qforge: error: ")
    assert "--emulate" in err and "--backend rtl|golden" in err
    code, _, err = run(capsys, "train", "--emulate", "--check")
    assert code == 2 and "--check compares the rtl backend" in err


def test_tiny_training_run_from_the_command_line(capsys, tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\nhidden = 16\nepochs = 5\nbatch_size = 32\n'
                    'learning_rate = 0.3\nseed = 2\ntrain_samples = 256\n\n'
                    '[[hardware]]\nname = "float32"\nformat = "float32"\n\n'
                    '[[hardware]]\nname = "ab8"\nformat = "address_block"\nbits = 8\n'
                    'block = 64\nweight_bits = 10\n')
    plot, report = tmp_path / "curves.png", tmp_path / "out" / "report.json"
    code, out, err = run(capsys, "train", "--emulate", "--config", str(spec), "--epochs", "1",
                         "--plot", str(plot), "--json", str(report), "--jobs", "1")
    assert code == 0, err
    assert "| float32 |" in out and "| ab8 |" in out and "vs float32" in out
    assert "epoch   1/1" in err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(report.read_text())
    assert data["epochs"] == 1 and [run["name"] for run in data["runs"]] == ["float32", "ab8"]


@pytest.mark.parametrize("argv, message", [
    (["--config", "missing.toml"], "missing.toml: cannot read training config"),
    (["--seed", "-1"], "--seed = -1: allowed range is 0 .. 65535"),
    (["--epochs", "0"], "--epochs = 0: must be at least 1"),
])
def test_train_errors_are_one_line(capsys, argv, message):
    code, _, err = run(capsys, "train", "--emulate", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_config_file_is_one_line(capsys, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('hidden = 16\nepochs = 1\nbatch_size = 8\nlearning_rate = 0.1\nseed = 1\n'
                    '[[hardware]]\nname = "q"\nformat = "int"\nbits = 3\n')
    code, _, err = run(capsys, "train", "--emulate", "--config", str(spec))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{spec}: hardware[0] (q).bits = 3: must be a multiple" in err
