"""The paired precision mode in training (issue 18): the ``paired``,
``paired_rounding``, ``paired_passes`` and ``unsigned_activations`` keys of a CNN
[[hardware]] entry, the emulated GEMM in the mode against the golden model's
:func:`~qforge.sim.model.numerics.gemm` (and against the exact GEMM, a negative
control), unsigned activation codes, and the cycles per epoch of a paired run against
:func:`~qforge.sim.model.cycles.gemm_shape` in the paired precision."""

from pathlib import Path

import numpy as np
import pytest

from qforge.sim.model.cycles import gemm_cycles, gemm_shape
from qforge.sim.model.numerics import OperandPrecision, Precision, gemm
from qforge.sim.model.paired import PairedPrecision, WindowRounding
from qforge.sim.model.rounding import Rounding
from qforge.sim.model.spec import load_preset
from qforge.sim.training import cnn
from qforge.sim.training.cnn_hardware import layer_arithmetic
from qforge.sim.training.config import (TrainConfigError, load_train_config,
                                        train_config_from_dict)
from qforge.sim.training.emulated_gemm import emulated_matmul
from qforge.sim.training.formats import OperandFormat, WeightFormat, quantize_operand
from qforge.sim.training.loop import train_all

PAIRED = load_preset("paired")
EXACT = OperandPrecision(4, 4)


def cnn_config(*entries, preset="paired", **top):
    """A one-epoch CNN config on ``preset`` with float32 and ``entries`` (int8 tables
    changed by each dict; a None value drops the key)."""
    rows = [{"name": "float32", "format": "float32"}]
    for index, entry in enumerate(entries):
        merged = {"name": f"e{index}", "format": "int", "bits": 8} | entry
        rows.append({k: v for k, v in merged.items() if v is not None})
    return {"name": "t", "model": "cnn", "epochs": 1, "batch_size": 16,
            "learning_rate": 0.2, "seed": 3, "train_samples": 32, "preset": preset,
            "hardware": rows} | top


def test_the_keys_build_the_golden_models_paired_mode():
    train = train_config_from_dict(cnn_config(
        {"paired": "3/1", "paired_rounding": "round",
         "paired_passes": ["input_gradient", "forward"], "unsigned_activations": True},
        {"paired": "2/2"}, {}))
    paired, default, plain = train.hardware[1:]
    assert paired.paired == PairedPrecision(3, 1, WindowRounding.ROUND)
    assert paired.paired_passes == ("forward", "input_gradient")     # in pass order
    assert paired.unsigned_activations
    assert default.paired == PairedPrecision(2, 2, WindowRounding.RAW)
    assert default.paired_passes == ("forward",) and not default.unsigned_activations
    assert plain.paired is None and plain.paired_passes == ()
    arithmetic = layer_arithmetic(paired, "conv2")
    assert arithmetic.pass_paired("forward") == paired.paired
    assert arithmetic.pass_paired("weight_gradient") is None
    assert arithmetic.unsigned_input
    assert "paired, asymmetric 3/1 blocks, round in forward, input_gradient" in \
        paired.describe()


def test_the_packaged_paired_config():
    train = load_train_config(Path(__file__).parents[3] / "gen" / "train" /
                              "cnn_paired.toml")
    assert train.model == "cnn" and train.epochs == 20
    rows = {h.name: h for h in train.hardware}
    assert rows["int8"].paired is None and rows["float32"].is_float
    modes = {(h.paired.kept_high, h.paired.kept_low, h.paired.rounding)
             for h in train.hardware if h.paired is not None}
    assert {(2, 2, WindowRounding.RAW), (2, 2, WindowRounding.ROUND),
            (3, 1, WindowRounding.RAW), (3, 1, WindowRounding.ROUND)} <= modes
    assert all(h.operand.config.paired for h in train.hardware if not h.is_float)


POLICY_ROWS = ({"name": "p", "paired": "2/2",
                "paired_passes": ["forward", "weight_gradient", "input_gradient"]},
               {"name": "int4", "bits": 4},
               {"name": "vrq8", "format": "vrq", "bits": None, "code_width": 4,
                "range_stride": 2, "ranges": 8})


@pytest.mark.parametrize("spec, message", [
    (cnn_config({"paired": "2/2"}, preset="default"),
     "hardware[1] (e0).paired = '2/2': needs a preset built with arithmetic.paired = "
     "true, and preset 'default' is not (preset = \"paired\" is the default array with it)"),
    (cnn_config({"unsigned_activations": True}, preset="default"),
     "hardware[1] (e0).unsigned_activations = True: needs a preset built with "
     "arithmetic.paired = true"),
    (cnn_config({"paired": "3/2"}),
     "hardware[1] (e0).paired = '3/2': paired kept_high + kept_low = 5: at most the 4 "
     "blocks of an operand"),
    (cnn_config({"paired": "1/2"}),
     "hardware[1] (e0).paired = '1/2': paired kept_low = 2: at most kept_high = 1"),
    (cnn_config({"paired": "0/0"}),
     "hardware[1] (e0).paired = '0/0': paired kept_high = 0: allowed range is 1 .. 4"),
    (cnn_config({"paired": "two"}),
     "hardware[1] (e0).paired = 'two': must be \"HIGH/LOW\""),
    (cnn_config({"paired": 2}), "hardware[1] (e0).paired = 2: must be \"HIGH/LOW\""),
    (cnn_config({"paired": "2/2", "kept_blocks": 2}),
     "hardware[1] (e0).paired = '2/2': a.paired: A must be an exact integer operand of "
     "all 4 blocks"),
    (cnn_config({"paired": "2/2", "bits": 4}), "a.paired: A must be an exact integer"),
    (cnn_config({"paired": "2/2", "paired_rounding": "up"}),
     "hardware[1] (e0).paired_rounding = 'up': allowed: raw, round"),
    (cnn_config({"paired_rounding": "round"}),
     "hardware[1] (e0).paired_rounding = 'round': only with paired = \"HIGH/LOW\""),
    (cnn_config({"paired": "2/2", "paired_passes": ["update"]}),
     "hardware[1] (e0).paired_passes = ['update']: must be a non-empty list of distinct "
     "passes of forward, weight_gradient, input_gradient"),
    (cnn_config({"paired": "2/2", "paired_passes": []}), "paired_passes = []: must be"),
    (cnn_config({"unsigned_activations": "yes"}),
     "hardware[1] (e0).unsigned_activations = 'yes': must be true or false"),
    (cnn_config({"format": "vrq", "bits": None, "code_width": 4, "range_stride": 2,
                 "ranges": 8, "paired": "2/2"}),
     "hardware[1] (e0).paired = '2/2': only allowed with format = \"int\""),
    (cnn_config({"paired": "2/2"}, model="mlp", hidden=16),
     "hardware[1].paired = '2/2': only with model = \"cnn\""),
    (cnn_config(*POLICY_ROWS, {"name": "m", "policy": {"fc": {"forward": "p",
                                                             "gradient": "int4"}}}),
     "hardware[4] (m).policy.fc.gradient = 'int4': a.paired: A must be an exact integer"),
    (cnn_config(*POLICY_ROWS, {"name": "m", "policy": {"fc": {"forward": "p",
                                                             "gradient": "vrq8"}}}),
     "hardware[4] (m).policy.fc.gradient = 'vrq8': is format = \"vrq\"; p pairs the "
     "backward GEMMs"),
])
def test_bad_paired_keys_are_one_error_each(spec, message):
    if spec.get("model") == "mlp":
        spec.pop("batch_size")
        spec = spec | {"batch_size": 16}
    with pytest.raises(TrainConfigError) as error:
        train_config_from_dict(spec, source="t.toml")
    assert str(error.value).startswith("t.toml: ")
    assert message in str(error.value), str(error.value)
    assert "\n" not in str(error.value)


def test_a_forward_only_paired_entry_may_name_any_gradient():
    train = train_config_from_dict(cnn_config(
        {"name": "p", "paired": "2/2"}, {"name": "vrq8", "format": "vrq", "bits": None,
                                          "code_width": 4, "range_stride": 2, "ranges": 8},
        {"name": "m", "policy": {"fc": {"forward": "p", "gradient": "vrq8"}}}))
    assert layer_arithmetic(train.hardware[-1], "fc").pass_paired("forward") == \
        PairedPrecision(2, 2)


def _codes(rng, shape, zeros=0.3, unsigned=False):
    """int8 (uint8) codes with about ``zeros`` of them 0."""
    codes = rng.integers(0 if unsigned else -128, 256 if unsigned else 128, shape)
    return np.where(rng.random(shape) < zeros, 0, codes)


@pytest.mark.parametrize("mode", [PairedPrecision(2, 2), PairedPrecision(2, 2,
                                  WindowRounding.ROUND), PairedPrecision(3, 1),
                                  PairedPrecision(3, 1, WindowRounding.ROUND)])
@pytest.mark.parametrize("unsigned", [False, True])
def test_the_paired_emulated_gemm_is_the_golden_models(mode, unsigned):
    rng = np.random.default_rng(mode.kept_high * 10 + mode.rounding + 2 * unsigned)
    a_codes, b_codes = _codes(rng, (9, 37), unsigned=unsigned), _codes(rng, (37, 5))
    a_fmt = OperandFormat("int", PAIRED, unsigned=unsigned)
    a = quantize_operand(np.ldexp(a_codes.astype(float), -7), a_fmt)
    b = quantize_operand(np.ldexp(b_codes.astype(float), -5), OperandFormat("int", PAIRED))
    a_precision = OperandPrecision(4, 4, unsigned=unsigned)
    scale = 2.0 ** (a.exponent + b.exponent)
    result = emulated_matmul(a, b, paired=mode)
    expected = gemm(a.integers, b.integers, PAIRED,
                    Precision(OperandPrecision(4, 4, unsigned=unsigned, paired=mode), EXACT))
    np.testing.assert_array_equal(result, expected * scale)
    # Negative control: the windows change this data's products (not the exact GEMM).
    exact = gemm(a.integers, b.integers, PAIRED, Precision(a_precision, EXACT))
    assert not np.array_equal(result, exact * scale)
    np.testing.assert_array_equal(emulated_matmul(a, b), exact * scale)


def test_unsigned_codes_use_the_sign_bits_place():
    fmt = OperandFormat("int", PAIRED, unsigned=True)
    values = np.array([[0.0, 0.999, 0.5, 0.0031]])
    q = quantize_operand(values, fmt)
    # largest 0.999 in [2**-1, 1): unit 2**(-1 - 8 + 1) = 2**-8, codes up to 255
    assert q.exponent == -8 and q.integers.tolist() == [[0, 255, 128, 1]]
    signed = quantize_operand(values, OperandFormat("int", PAIRED))
    assert signed.exponent == -7 and int(signed.integers.max()) == 127
    with pytest.raises(ValueError, match=r"values\[0, 1\] = -0.5: negative"):
        quantize_operand(np.array([[0.5, -0.5]]), fmt)


def _paired_ops(mode, passes, unsigned):
    fmt = OperandFormat("int", PAIRED)
    arithmetic = cnn.LayerArithmetic(fmt, Rounding.NEAREST_EVEN, fmt, Rounding.NEAREST_EVEN,
                                     WeightFormat(16), Rounding.NEAREST_EVEN, mode, passes,
                                     unsigned)
    parameters = cnn.initial_parameters(4)
    return cnn.EmulatedOps({layer: arithmetic for layer in cnn.LAYERS}, parameters, 1)


@pytest.mark.parametrize("unsigned", [False, True])
def test_a_paired_layer_gemm_and_its_cycles(unsigned):
    """conv2's forward GEMM through EmulatedOps: the golden model's paired GEMM of the
    stored (unsigned) input columns and the weights, costed by gemm_shape in the
    paired precision (fewer cycles than the same GEMM exact)."""
    mode = PairedPrecision(3, 1, WindowRounding.ROUND)
    ops = _paired_ops(mode, ("forward",), unsigned)
    x = np.maximum(np.random.default_rng(5).normal(size=(2, 8, 8, 8)), 0)
    stored = ops.store(x.reshape(-1, 8), "conv2", "input", 0, False)
    assert stored.fmt.unsigned == unsigned and int(stored.integers.min()) >= 0
    # The largest value's code: [128, 256) unsigned (one more bit), [64, 128) signed.
    assert int(stored.integers.max()) // (128 if unsigned else 64) == 1
    weights = ops.store(ops.weights("conv2"), "conv2", "weights", 0, False)
    columns = ops.gather(stored, x.shape, cnn.CONV2)
    z = ops.matmul(columns, weights, "conv2", "forward", True)
    a_precision = OperandPrecision(4, 4, unsigned=unsigned)
    paired = Precision(OperandPrecision(4, 4, unsigned=unsigned, paired=mode), EXACT)
    scale = 2.0 ** (stored.exponent + weights.exponent)
    np.testing.assert_array_equal(
        z, gemm(columns.integers, weights.integers, PAIRED, paired) * scale)
    exact = gemm(columns.integers, weights.integers, PAIRED, Precision(a_precision, EXACT))
    assert not np.array_equal(z, exact * scale)
    cycles = gemm_cycles(PAIRED, [gemm_shape(PAIRED, 32, 16, 72, paired)]).total
    exact_cycles = gemm_cycles(PAIRED, [gemm_shape(PAIRED, 32, 16, 72,
                                                   Precision(a_precision, EXACT))]).total
    assert ops.passes[("conv2", "forward")] == [1, cycles] and cycles < exact_cycles
    # A pass not listed runs exact.
    gradient = ops.store(np.random.default_rng(6).normal(size=(32, 16)), "conv2",
                         "gradient", 0, False)
    dw = ops.matmul(columns.T, gradient, "conv2", "weight_gradient", True)
    np.testing.assert_array_equal(dw, gemm(columns.integers.T, gradient.integers, PAIRED,
                                           Precision(a_precision, EXACT))
                                  * 2.0 ** (stored.exponent + gradient.exponent))


@pytest.mark.parametrize("passes", [["forward"], list(cnn.GEMM_PASSES)])
def test_a_paired_runs_cycles_per_epoch_are_gemm_shapes(passes):
    """One epoch (2 batches of 16): each layer and pass costs what gemm_shape gives for
    its (layer, pass) GEMM shape, in the paired precision where the pass is paired."""
    mode = PairedPrecision(2, 2, WindowRounding.ROUND)
    train = train_config_from_dict(cnn_config(
        {}, {"paired": "2/2", "paired_rounding": "round", "paired_passes": passes,
             "unsigned_activations": True}))
    report = train_all(train, jobs=1)
    exact_run, paired_run = report["runs"][1:]
    unsigned = OperandPrecision(4, 4, unsigned=True)
    for (layer, pass_), (m, n, depth) in cnn.gemm_shapes(16).items():
        a = unsigned if pass_ != "input_gradient" else EXACT
        b = EXACT
        if pass_ in passes:
            a = OperandPrecision(a.blocks, a.kept, unsigned=a.unsigned, paired=mode)
        cycles = gemm_cycles(PAIRED, [gemm_shape(PAIRED, m, n, depth, Precision(a, b))])
        assert paired_run["layer_cycles"][layer][pass_] == {"gemms": 2,
                                                           "cycles": 2 * cycles.total}
        exact = exact_run["layer_cycles"][layer][pass_]["cycles"]
        if pass_ in passes and depth > 16:
            assert paired_run["layer_cycles"][layer][pass_]["cycles"] < exact
    assert 0 <= paired_run["test_accuracy"][-1] <= 1


# ------------------------------------------------------------------- as programs
CNN_PAIRED_RTL = Path(__file__).parents[3] / "gen" / "train" / "cnn_paired_rtl.toml"


def paired_programs(**changes):
    """gen/train/cnn_paired_rtl.toml with ``changes``: ``(TrainConfig, its entry)``."""
    import tomllib
    spec = tomllib.loads(CNN_PAIRED_RTL.read_text()) | changes
    train = train_config_from_dict(spec, source=str(CNN_PAIRED_RTL))
    return train, train.hardware[1]


def test_paired_programs_run_the_golden_models_paired_gemms():
    """A forward pass as programs on the golden machine with the packaged paired entry
    (3/1 round in every pass, unsigned inputs): the stored inputs are unsigned codes;
    fc's raw logits are the golden model's paired GEMM of its codes, and conv1's the
    sum over kernel rows of the paired GEMMs of each row's columns (the conv2d block
    runs one GEMM per kernel row, so each is paired on its own): neither is the exact
    GEMM (a negative control)."""
    from qforge.sim.runtime import Runtime
    from qforge.sim.training.cnn_hardware import CnnProgramTrainer
    from qforge.sim.training.data import load_digits_split

    train, hardware = paired_programs(batch_size=4)
    assert hardware.update == "hardware" and hardware.paired == PairedPrecision(
        3, 1, WindowRounding.ROUND)
    trainer = CnnProgramTrainer(train, hardware, Runtime(PAIRED, "golden"), test_samples=4)
    trainer.initialize()
    x = load_digits_split()[0][:4].reshape(-1, 8, 8, 1)
    _, saved = trainer.forward(x, step=1)
    unsigned = OperandPrecision(4, 4, unsigned=True)
    paired = Precision(OperandPrecision(4, 4, unsigned=True, paired=hardware.paired), EXACT)
    exact = Precision(unsigned, EXACT)
    fc_x, fc_w = trainer._read("fc_x", 4), trainer._read("fc_wq")
    assert int(fc_x.min()) >= 0 and int(saved["fc"][0].integers.max()) > 127
    assert saved["fc"][0].fmt.unsigned
    fc_z = trainer._read("fc_z", 4)
    np.testing.assert_array_equal(fc_z, gemm(fc_x, fc_w, PAIRED, paired))
    assert not np.array_equal(fc_z, gemm(fc_x, fc_w, PAIRED, exact))
    stored, weights, _ = saved["conv1"]
    columns = cnn.im2col(stored.integers.reshape(4, 8, 8, 1), cnn.CONV1)   # depth 9
    rows = [slice(3 * i, 3 * i + 3) for i in range(3)]                     # kernel rows
    expected = sum(gemm(columns[:, r], weights.integers[r], PAIRED, paired) for r in rows)
    conv1_z = trainer._read("conv1_z", 4 * 64)
    np.testing.assert_array_equal(conv1_z, expected)
    assert not np.array_equal(conv1_z, gemm(columns, weights.integers, PAIRED, exact))


def test_paired_programs_cost_fewer_cycles_than_exact():
    """One golden epoch of 8 images: each layer's passes cost fewer cycle-model cycles
    paired than the same entry exact (the programs' PRECISION words set the mode)."""
    train, _ = paired_programs(train_samples=8, batch_size=8, test_fraction=0.01,
                               epochs=1)
    import tomllib
    spec = tomllib.loads(CNN_PAIRED_RTL.read_text())
    exact_entry = {k: v for k, v in spec["hardware"][1].items()
                   if not k.startswith("paired")} | {"name": "exact"}
    spec = spec | {"train_samples": 8, "batch_size": 8, "test_fraction": 0.01,
                   "epochs": 1, "hardware": [spec["hardware"][1], exact_entry]}
    paired_run, exact_run = train_all(train_config_from_dict(spec),
                                      backend="golden")["runs"]
    for layer in cnn.LAYERS:
        for pass_ in ("forward", "weight_gradient", "input_gradient"):
            if layer == "conv1" and pass_ == "input_gradient":
                continue
            assert paired_run["layer_cycles"][layer][pass_]["cycles"] < \
                exact_run["layer_cycles"][layer][pass_]["cycles"], (layer, pass_)


@pytest.mark.rtl
def test_rtl_runs_paired_programs_bit_exact_with_the_golden_machine():
    """One step of 8 images and the evaluations with the paired entry on the Verilog,
    the memory compared with the golden machine after every program (``check``);
    simulated cycles equal to the cycle model."""
    from qforge.sim.training.cnn_hardware import train_cnn_program_run

    train, hardware = paired_programs(train_samples=8, batch_size=8, test_fraction=0.01)
    rtl = train_cnn_program_run(train, hardware, backend="rtl", epochs=1, check=True)
    golden = train_cnn_program_run(train, hardware, backend="golden", epochs=1)
    assert rtl.checked and rtl.train_loss == golden.train_loss
    assert rtl.test_accuracy == golden.test_accuracy
    assert rtl.epoch_cycles == rtl.epoch_model_cycles == golden.epoch_model_cycles


def test_unsigned_activations_refuse_images_with_negative_values(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (12, 8, 8))
    x[3, 2, 1] = -0.25
    np.savez(tmp_path / "signed.npz", x_train=x[:8], y_train=np.arange(8) % 2,
             x_test=x[8:], y_test=np.arange(4) % 2)
    spec = cnn_config({"name": "u", "unsigned_activations": True},
                      dataset=f"npz:{tmp_path / 'signed.npz'}")
    spec.pop("train_samples")
    with pytest.raises(TrainConfigError, match=r"u stores the CNN's layer inputs as "
                       r"unsigned codes \(unsigned_activations = true\), and the images "
                       r"hold negative values \(smallest -0.25\)"):
        train_all(train_config_from_dict(spec), jobs=1)
    x[3, 2, 1] = 0.25                  # all >= 0: it trains
    np.savez(tmp_path / "signed.npz", x_train=x[:8], y_train=np.arange(8) % 2,
             x_test=x[8:], y_test=np.arange(4) % 2)
    report = train_all(train_config_from_dict(spec), jobs=1)
    assert report["runs"][1]["layer_cycles"]["conv1"]["forward"]["gemms"] == 1
