"""The digits CNN (``qforge.sim.training.cnn``): the im2col lowering against a plain
numpy convolution, the backward pass against finite differences of an independent
forward, an emulated int8 convolution against the convolution of the quantized values,
and a tiny training run with its per-layer GEMM counts and cycles."""

import json

import numpy as np
import pytest

from qforge.sim.model.cycles import GemmShape, gemm_cycles
from qforge.sim.model.rounding import Rounding
from qforge.sim.model.spec import load_preset
from qforge.sim.model.vrq_format import VrqFormat
from qforge.sim.training import cnn
from qforge.sim.training.config import train_config_from_dict
from qforge.sim.training.formats import OperandFormat, WeightFormat, quantize_operand
from qforge.sim.training.loop import train_all


def plain_conv(x, weights, bias, stride, padding):
    """Direct convolution, channels last: ``x`` N x H x W x Cin, ``weights`` kh x kw x
    Cin x Cout; loops over output positions and kernel taps."""
    n, height, width, _ = x.shape
    kh, kw, _, outputs = weights.shape
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    out = np.zeros((n, out_h, out_w, outputs))
    for oh in range(out_h):
        for ow in range(out_w):
            for i in range(kh):
                for j in range(kw):
                    pixel = padded[:, oh * stride + i, ow * stride + j, :]
                    out[:, oh, ow, :] += pixel @ weights[i, j]
    return out + bias.reshape(-1)


def plain_forward(x, parameters):
    """The CNN's logits in float64, written without im2col."""
    (w1, b1), (w2, b2), (w3, b3) = (parameters[layer] for layer in cnn.LAYERS)
    h1 = np.maximum(plain_conv(x, w1.reshape(3, 3, 1, 8), b1, 1, 1), 0)
    h2 = np.maximum(plain_conv(h1, w2.reshape(3, 3, 8, 16), b2, 2, 1), 0)
    return h2.reshape(len(x), -1) @ w3 + b3


def plain_loss(x, onehot, parameters):
    z = plain_forward(x, parameters)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(log_p * onehot).sum() / len(x)


@pytest.mark.parametrize("stride, padding, size", [(1, 1, 8), (2, 1, 8), (1, 0, 5),
                                                   (2, 1, 7)])
def test_im2col_gemm_is_the_convolution(stride, padding, size):
    rng = np.random.default_rng(stride * 10 + padding)
    x = rng.normal(size=(2, size, size, 3))
    weights = rng.normal(size=(3, 3, 3, 4))
    conv = cnn.ConvShape(3, 4, stride=stride, padding=padding)
    out = conv.output_size(size)
    lowered = cnn.im2col(x, conv) @ weights.reshape(27, 4)
    expected = plain_conv(x, weights, np.zeros(4), stride, padding)
    np.testing.assert_allclose(lowered.reshape(2, out, out, 4), expected, atol=1e-12)


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 8, 8, 3))
    conv = cnn.ConvShape(3, 4, stride=2)
    columns = rng.normal(size=cnn.im2col(x, conv).shape)
    left = (cnn.im2col(x, conv) * columns).sum()
    right = (x * cnn.col2im(columns, x.shape, conv)).sum()
    assert abs(left - right) < 1e-9


def _parameters(seed):
    rng = np.random.default_rng(seed)
    parameters = cnn.initial_parameters(seed)
    return {layer: (w, rng.normal(scale=0.1, size=b.shape))
            for layer, (w, b) in parameters.items()}


def test_float_forward_and_gradients_match_an_independent_network():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (3, 8, 8, 1))
    onehot = np.eye(10)[[1, 4, 7]]
    parameters = _parameters(2)
    ops = cnn.FloatOps(parameters)
    logits, _ = cnn.Network(ops).forward(x.astype(np.float32), 0, False)
    np.testing.assert_allclose(logits, plain_forward(x, parameters), atol=1e-4)
    lr = 1.0
    cnn.Network(ops).step(x.astype(np.float32), onehot.astype(np.float32), 3, 0, lr)
    for layer, index in (("conv1", (4, 3)), ("conv2", (40, 9)), ("fc", (100, 2))):
        for which in (0, 1):
            position = index if which == 0 else (0, index[1])
            step = (parameters[layer][which][position]
                    - ops.parameters[layer][which][position]) / lr
            bumped = []
            for sign in (1, -1):
                changed = {k: (w.copy(), b.copy()) for k, (w, b) in parameters.items()}
                changed[layer][which][position] += sign * 1e-5
                bumped.append(plain_loss(x, onehot, changed))
            numeric = (bumped[0] - bumped[1]) / 2e-5
            assert abs(step - numeric) < 1e-3 + 1e-2 * abs(numeric), (layer, which)


def _arithmetic(fmt, rounding=Rounding.NEAREST_EVEN):
    return cnn.LayerArithmetic(fmt, rounding, fmt, rounding, WeightFormat(16), rounding)


def test_emulated_int8_convolution_is_the_convolution_of_the_quantized_values():
    config = load_preset("default")
    fmt = OperandFormat("int", config, bits=8)
    parameters = _parameters(4)
    ops = cnn.EmulatedOps({layer: _arithmetic(fmt) for layer in cnn.LAYERS}, parameters, 1)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (2, 8, 8, 8))
    stored = ops.store(x.reshape(-1, 8), "conv2", "input", 0, False)
    weights = ops.store(ops.weights("conv2"), "conv2", "weights", 0, False)
    z = ops.matmul(ops.gather(stored, x.shape, cnn.CONV2), weights, "conv2", "forward",
                   True)
    q_x = quantize_operand(x.reshape(-1, 8), fmt).values().reshape(x.shape)
    q_w = quantize_operand(ops.weights("conv2"), fmt).values().reshape(3, 3, 8, 16)
    expected = plain_conv(q_x, q_w, np.zeros(16), 2, 1)
    np.testing.assert_array_equal(z.reshape(2, 4, 4, 16), expected)
    # One command of 2 * 16 rows, depth 72, 16 columns, 16 block products per MAC.
    assert ops.passes[("conv2", "forward")] == [
        1, gemm_cycles(config, [GemmShape(32, 16, 72, 16)]).total]


@pytest.mark.parametrize("kind", ["int", "vrq"])
def test_a_steps_bulk_drawn_bits_are_each_tensors_own(kind):
    """``EmulatedOps.begin_step`` draws every stochastic tensor's bits in one pass; the
    step equals one where each tensor draws its own (``begin_step`` left out), also for
    a last batch of another size (5 images)."""
    config = load_preset("default")
    fmt = (OperandFormat("int", config, bits=8) if kind == "int" else
           OperandFormat("vrq", config, vrq=VrqFormat(4, 2, 8)))
    runs = []
    for bulk in (True, False):
        ops = cnn.EmulatedOps({layer: _arithmetic(fmt, Rounding.STOCHASTIC)
                               for layer in cnn.LAYERS}, _parameters(6), 3)
        if not bulk:
            ops.begin_step = lambda step, n, image: None
        network, losses = cnn.Network(ops), []
        for step, n in enumerate((4, 5)):
            x = np.random.default_rng(step).uniform(0, 1, (n, 8, 8, 1))
            onehot = np.eye(10)[np.arange(n) % 10]
            losses.append(network.step(x, onehot, n, step, 0.1))
            assert not ops._words                      # every drawn tensor was rounded
        runs.append((losses, {layer: [c.copy() for c in ops.codes[layer]]
                              for layer in cnn.LAYERS}))
    (bulk_losses, bulk_codes), (own_losses, own_codes) = runs
    assert bulk_losses == own_losses
    for layer in cnn.LAYERS:
        for got, want in zip(bulk_codes[layer], own_codes[layer]):
            np.testing.assert_array_equal(got, want)


def test_mixed_formats_multiply_their_values():
    config = load_preset("default")
    rng = np.random.default_rng(6)
    a = quantize_operand(rng.normal(size=(5, 7)), OperandFormat("int", config, kept=2))
    b = quantize_operand(rng.normal(size=(7, 3)),
                         OperandFormat("vrq", config, vrq=VrqFormat(4, 2, 8)))
    np.testing.assert_array_equal(cnn.mixed_matmul(a, b), a.values() @ b.values())


TINY = {"name": "tiny", "model": "cnn", "epochs": 1, "batch_size": 16,
        "learning_rate": 0.2, "seed": 3, "train_samples": 48,
        "hardware": [{"name": "float32", "format": "float32"},
                     {"name": "int8", "format": "int", "bits": 8},
                     {"name": "int4", "format": "int", "bits": 4}]}


def test_tiny_cnn_run_counts_every_gemm_and_its_cycles():
    report = train_all(train_config_from_dict(TINY))
    assert report["model"] == "cnn" and report["train_samples"] == 48
    reference, int8, int4 = report["runs"]
    assert reference["layer_cycles"] is None and len(int8["test_accuracy"]) == 2
    assert int8["test_accuracy"][-1] > 0.1 and int8["float64_fallbacks"] == 0
    config = load_preset("default")
    # 3 steps of 16 images; conv1's input gradient is never computed.
    shapes = {("conv1", "forward"): (1024, 8, 9), ("conv1", "weight_gradient"): (9, 8, 1024),
              ("conv2", "forward"): (256, 16, 72), ("conv2", "weight_gradient"): (72, 16, 256),
              ("conv2", "input_gradient"): (256, 72, 16), ("fc", "forward"): (16, 10, 256),
              ("fc", "weight_gradient"): (256, 10, 16), ("fc", "input_gradient"): (16, 256, 10)}
    for run, q in ((int8, 16), (int4, 4)):
        for layer in cnn.LAYERS:
            for pass_ in cnn.PASSES:
                entry = run["layer_cycles"][layer][pass_]
                if (layer, pass_) not in shapes:
                    assert entry == {"gemms": 0, "cycles": 0}, (layer, pass_)
                    continue
                m, n, depth = shapes[(layer, pass_)]
                one = gemm_cycles(config, [GemmShape(m, n, depth, q)]).total
                assert entry == {"gemms": 3, "cycles": 3 * one}, (run["name"], layer, pass_)


def _npz(path, sample_shape, classes, rng):
    x = rng.random((40, *sample_shape))
    y = np.arange(40) % classes
    np.savez(path, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])


def test_cnn_trains_on_images_from_an_npz(tmp_path):
    """12 x 10 x 3 images, 3 classes: conv1 takes 3 channels, fc 6 * 5 * 16 inputs."""
    _npz(tmp_path / "images.npz", (12, 10, 3), 3, np.random.default_rng(1))
    spec = dict(TINY, dataset="npz:images.npz", train_samples=None)
    report = train_all(train_config_from_dict(spec, base=str(tmp_path)))
    assert (report["image"], report["classes"], report["train_samples"]) == ([12, 10, 3],
                                                                               3, 30)
    int8 = report["runs"][1]["layer_cycles"]
    config = load_preset("default")
    # Two batches (16 + 14 images) per epoch; fc's forward: 16 x 480 by 480 x 3, then 14.
    assert int8["fc"]["forward"] == {"gemms": 2, "cycles": sum(
        gemm_cycles(config, [GemmShape(n, 3, 480, 16)]).total for n in (16, 14))}
    assert int8["conv1"]["weight_gradient"]["cycles"] == sum(
        gemm_cycles(config, [GemmShape(27, 8, n * 120, 16)]).total for n in (16, 14))


def test_cnn_needs_images_that_fit_the_gemms(tmp_path):
    from qforge.sim.training.config import TrainConfigError
    rng = np.random.default_rng(2)
    _npz(tmp_path / "flat.npz", (20,), 2, rng)
    _npz(tmp_path / "large.npz", (16, 16, 1), 2, rng)
    for name, message in (("flat", "model = \"cnn\" needs images (N x H x W [x C] "
                                   "arrays), not flat vectors of 20 values"),
                          ("large", "batch_size = 16: the CNN's conv1 weight gradient GEMM "
                                    "has depth 4096, over max_reduction_depth 2048")):
        spec = dict(TINY, dataset=f"npz:{tmp_path / name}.npz", train_samples=None)
        with pytest.raises(TrainConfigError, match="dataset = 'npz:") as error:
            train_all(train_config_from_dict(spec))
        assert message in str(error.value)


def test_qforge_train_prints_the_cnn_tables(tmp_path, capsys):
    from tests.cli import run_qforge
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\nmodel = "cnn"\nepochs = 1\nbatch_size = 16\n'
                      'learning_rate = 0.2\nseed = 3\ntrain_samples = 16\n'
                      '[[hardware]]\nname = "float32"\nformat = "float32"\n'
                      '[[hardware]]\nname = "int8"\nformat = "int"\nbits = 8\n'
                      '[hardware.policy.fc]\ngradient = "int8"\n')
    outcome = run_qforge(capsys, "train", "--emulate", "--config", config, "--jobs", "1",
                         "--plot", tmp_path / "tiny.png", "--json", tmp_path / "tiny.json")
    assert outcome.status == 0, outcome.err
    assert "CNN conv3x3 1-8, conv3x3/2 8-16, fc 256-10 on digits" in outcome.out
    assert "| cycles / epoch | epoch time | vs float32 |" in outcome.out
    assert "| int8 | conv2 | 1, " in outcome.out           # the per-layer table
    assert "int8 [########################] 1/1 100%" in outcome.err   # progress bar
    report = json.loads((tmp_path / "tiny.json").read_text())
    assert report["runs"][1]["layer_cycles"]["fc"]["forward"]["gemms"] == 1
