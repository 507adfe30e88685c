"""Automatic per-layer, per-tensor precision policies for the CNN (``qforge tune``):
Ax-BxP's question, which precision mode each layer can afford, answered on the
training data.

Method
------
The modes are the config's own low-precision ``[[hardware]]`` entries (``update =
"float"``, no policy of their own, the baseline's preset); the **baseline** is the
first ``int`` entry with every block kept and ``bits`` equal to the preset's operand
width: uniform exact 8-bit on the default preset (``int8``).

1. **Calibration network.** The float32 CNN trained for ``calibration_epochs`` epochs
   from the run's initial weights (same seed, batches and learning-rate schedule as
   the run), then rounded into each probe's weight formats.
2. **Sensitivity** of every layer, tensor and mode, in loss units (mean cross-entropy,
   nats) on the first ``calibration_samples`` training samples, against the baseline
   everywhere:

   - ``forward`` (the layer's input activations and weights): the loss of the forward
     pass with only that layer's forward operands in the mode (stochastic rounding as
     in training, averaged over ``forward_repeats`` random keys), less the baseline's
     with the same keys;
   - ``gradient`` (the layer's output gradient ``dZ``, which feeds its weight gradient
     and input gradient): the loss after one pass of SGD steps over the calibration
     samples (batches of the config's ``batch_size``, the run's first learning rate)
     with only that layer's gradient in the mode, less the loss after the same steps
     with the baseline.

   A negative difference (noise) counts as 0 when the budget is spent.
3. **Selection** (:func:`select_policy`): per layer, every pair ``(forward mode,
   gradient mode)`` costs the cycle model's cycles of that layer's training GEMMs in
   one epoch (:func:`layer_cycles`: forward ``q = kept_f**2``, weight and input
   gradient ``q = kept_f * kept_g`` block products per MAC, or those the PE design
   issues instead, :func:`~qforge.sim.model.cycles.issued_block_products`) and predicts
   the sum of its two sensitivities. The exact cheapest policy whose summed predicted loss increase is
   within the budget is found by combining the layers' Pareto fronts (cycles,
   predicted loss); ties go to the smaller predicted loss. The update (weight format)
   stays the baseline's: it costs no accelerator cycles in the emulator.
4. **Training.** The chosen policy becomes a ``[[hardware]]`` entry with
   ``[hardware.policy.LAYER]`` tables, validated by the config loader
   (:func:`~qforge.sim.training.config.train_config_from_dict`), and is trained with
   :func:`~qforge.sim.training.loop.train_run` next to float32 and the baseline.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qforge.sim.model.cycles import gemm_cycles, gemm_shape
from qforge.sim.model.errors import InputError
from qforge.sim.model.spec import read_toml
from qforge.sim.progress import Progress
import qforge.sim.training.cnn as cnn
from qforge.sim.training.config import (HardwareConfig, TrainConfig, TrainConfigError,
                                        check_cnn_depth, train_config_from_dict)
from qforge.sim.training.data import batches, training_data
from qforge.sim.training.datasets import train_dataset
from qforge.sim.training.loop import train_run
from qforge.sim.training.network import log_softmax
from qforge.sim.training.report import epoch_cycles

__all__ = ["TUNED_TENSORS", "Calibration", "baseline_entry", "candidate_modes",
           "epoch_batch_sizes", "layer_cycles", "epoch_gemm_cycles", "select_policy",
           "calibrate", "policy_spec", "policy_toml", "load_spec", "tune"]

#: The tensors of a layer whose mode the search chooses (the update keeps the baseline's).
TUNED_TENSORS = ("forward", "gradient")


@dataclass(frozen=True)
class Calibration:
    """How sensitivities are measured (module docstring, step 2)."""

    epochs: int = 2
    samples: int = 256
    forward_repeats: int = 2


def baseline_entry(train: TrainConfig) -> HardwareConfig:
    """The first ``int`` entry of ``train`` with every block kept and ``bits`` equal to
    its preset's operand width (uniform exact 8-bit on the default preset), or one
    :class:`TrainConfigError`."""
    for hardware in train.hardware:
        fmt = hardware.operand
        if (fmt is not None and fmt.kind == "int" and fmt.kept is None
                and fmt.bits == fmt.config.operand_width and hardware.update == "float"
                and not hardware.policy and hardware.paired is None
                and not hardware.unsigned_activations):
            return hardware
    raise TrainConfigError(f"{train.source}: qforge tune needs an exact [[hardware]] "
                           f"entry to compare with: format = \"int\", bits = the preset's "
                           f"operand width, all blocks kept, update = \"float\", no policy, "
                           f"no paired mode or unsigned activations")


def candidate_modes(train: TrainConfig, baseline: HardwareConfig) -> tuple[HardwareConfig, ...]:
    """The modes a policy may use: every low-precision entry with ``update = "float"``,
    no policy, no paired mode or unsigned activations (a policy sets operand formats
    per layer, not those) and the baseline's preset (the baseline included), in file
    order."""
    preset = baseline.operand.config.name
    return tuple(h for h in train.hardware
                 if not h.is_float and h.update == "float" and not h.policy
                 and h.paired is None and not h.unsigned_activations
                 and h.operand.config.name == preset)


def epoch_batch_sizes(samples: int, batch_size: int) -> list[int]:
    """The batch sizes of one epoch over ``samples`` training samples.

    >>> epoch_batch_sizes(10, 4)
    [4, 4, 2]
    """
    return [min(batch_size, samples - start) for start in range(0, samples, batch_size)]


def layer_cycles(config, batch_sizes, image, classes, forward, gradient) -> dict[str, int]:
    """Per layer, the cycle model's cycles of one epoch's training GEMMs (batches of
    ``batch_sizes``) when every layer's forward operands are in ``forward`` and its
    output gradient in ``gradient``, each an
    :class:`~qforge.sim.model.numerics.OperandPrecision` (a mode's
    ``operand.precision``) or a whole number ``k`` (``k`` blocks, all kept): forward
    ``q = kept_f**2``, weight and input gradient ``q = kept_f * kept_g``, or the block
    products ``config``'s PEs issue instead (:func:`~qforge.sim.model.cycles.gemm_shape`;
    each GEMM one dense command, as :class:`~qforge.sim.training.cnn.EmulatedOps` counts
    them)."""
    from qforge.sim.model.numerics import OperandPrecision

    def operand(value):
        return value if isinstance(value, OperandPrecision) else OperandPrecision(value, value)

    forward, gradient = operand(forward), operand(gradient)
    totals = dict.fromkeys(cnn.LAYERS, 0)
    for layer, count, report in epoch_gemm_cycles(config, batch_sizes, image, classes,
                                                  lambda layer: (forward, gradient)):
        totals[layer] += count * report.total
    return totals


def epoch_gemm_cycles(config, batch_sizes, image, classes, precisions):
    """``(layer, count, report)`` for each distinct training GEMM of one epoch's CNN
    steps (batches of ``batch_sizes``): ``count`` GEMMs of that shape, each one dense
    command whose :class:`~qforge.sim.model.cycles.CycleReport` is ``report``.
    ``precisions(layer)``: the layer's forward and gradient
    :class:`~qforge.sim.model.numerics.OperandPrecision`; the forward GEMM runs at
    ``(forward, forward)``, the weight and input gradients at ``(forward, gradient)``
    (``q`` block products per MAC, or those ``config``'s PEs issue instead:
    :func:`~qforge.sim.model.cycles.gemm_shape`)."""
    from qforge.sim.model.numerics import Precision

    for size, count in {size: batch_sizes.count(size) for size in batch_sizes}.items():
        for (layer, pass_), (m, n, depth) in cnn.gemm_shapes(size, image, classes).items():
            forward, gradient = precisions(layer)
            precision = Precision(forward, forward if pass_ == "forward" else gradient)
            shape = gemm_shape(config, m, n, depth, precision)
            yield layer, count, gemm_cycles(config, [shape])


def select_policy(costs: dict, sensitivity: dict, budget: float) -> dict:
    """The cheapest policy within ``budget``.

    ``costs[layer][(forward, gradient)]``: the layer's cycles with those modes (every
    pair a candidate); ``sensitivity[(layer, tensor, mode)]``: the predicted loss
    increase of that tensor in that mode (negative counts as 0). Returns ``{layer:
    (forward, gradient)}`` minimising the summed cycles subject to the summed predicted
    increase ``<= budget``, ties to the smaller increase, then to the earlier pair
    (exact: the layers' Pareto fronts combined). The pair of zero-sensitivity modes is
    always feasible, so the baseline (sensitivity 0) is kept at budget 0.

    >>> costs = {"a": {("x", "x"): 10, ("y", "x"): 4, ("x", "y"): 8, ("y", "y"): 2}}
    >>> sens = {("a", "forward", "x"): 0, ("a", "forward", "y"): 0.3,
    ...         ("a", "gradient", "x"): 0, ("a", "gradient", "y"): 0.1}
    >>> select_policy(costs, sens, 0.35), select_policy(costs, sens, 0.2)
    ({'a': ('y', 'x')}, {'a': ('x', 'y')})
    """
    def predicted(layer, pair):
        return sum(max(0.0, float(sensitivity[(layer, tensor, mode)]))
                   for tensor, mode in zip(TUNED_TENSORS, pair))

    front = [(0, 0.0, ())]
    for layer, pairs in costs.items():
        options = [(cycles, predicted(layer, pair), pair) for pair, cycles in pairs.items()]
        combined = [(c + c2, s + s2, chosen + (pair,)) for c, s, chosen in front
                    for c2, s2, pair in options if s + s2 <= budget]
        combined.sort(key=lambda item: (item[0], item[1]))
        front, lowest = [], math.inf
        for item in combined:                  # keep the non-dominated ones
            if item[1] < lowest:
                front.append(item)
                lowest = item[1]
    if not front:
        raise InputError(f"tune: budget = {budget!r}: no policy fits (the baseline's "
                         f"modes must have sensitivity 0)")
    return dict(zip(costs, front[0][2]))


def _arithmetic(forward: HardwareConfig, gradient: HardwareConfig,
                update: HardwareConfig) -> cnn.LayerArithmetic:
    return cnn.LayerArithmetic(forward.operand, forward.rounding, gradient.operand,
                               gradient.rounding, update.weights, update.update_rounding)


def _mean_loss(logits, onehot) -> float:
    return -float((log_softmax(np.asarray(logits, dtype=np.float64)) * onehot).sum()
                  / len(onehot))


def _calibration_parameters(train, x_train, onehot, image, classes, epochs: int):
    """The float32 CNN after ``epochs`` epochs of the run's schedule (float64 copies)."""
    ops = cnn.FloatOps(cnn.initial_parameters(train.seed, image, classes))
    network = cnn.Network(ops, image)
    steps_total = train.epochs * len(epoch_batch_sizes(len(x_train), train.batch_size))
    step = 0
    for epoch in range(1, epochs + 1):
        for batch in batches(len(x_train), train.batch_size, train.seed, epoch):
            network.step(x_train[batch], onehot[batch], len(batch), step,
                         train.learning_rate_at(step, steps_total))
            step += 1
    return {layer: (w.astype(np.float64), b.astype(np.float64))
            for layer, (w, b) in ops.parameters.items()}


def calibrate(train: TrainConfig, data, baseline: HardwareConfig, modes,
              calibration: Calibration = Calibration(), progress: bool = False) -> dict:
    """``{(layer, tensor, mode name): sensitivity}`` for every layer, tuned tensor and
    mode (module docstring, step 2); the baseline's are 0. ``data`` is the run's
    :class:`~qforge.sim.training.datasets.Dataset`."""
    image, classes = data.image_shape, data.classes
    x_train, y_train, _, _ = training_data(train, data, flat=False)
    x_train = x_train.reshape(-1, *image)
    onehot = np.eye(classes)[y_train]
    parameters = _calibration_parameters(train, x_train.astype(np.float32),
                                         onehot.astype(np.float32), image, classes,
                                         calibration.epochs)
    x_cal, t_cal = x_train[:calibration.samples], onehot[:calibration.samples]
    probes = [m for m in modes if m.name != baseline.name]
    bar = (Progress(2 * len(cnn.LAYERS) * len(probes) + 2, "calibration")
           if progress else None)

    def network(layer=None, tensor=None, mode=None):
        layers = {}
        for name in cnn.LAYERS:
            chosen = {"forward": baseline, "gradient": baseline}
            if name == layer:
                chosen[tensor] = mode
            layers[name] = _arithmetic(chosen["forward"], chosen["gradient"], baseline)
        return cnn.Network(cnn.EmulatedOps(layers, parameters, train.seed), image)

    def forward_loss(*probe):
        net = network(*probe)
        return float(np.mean([_mean_loss(net.forward(x_cal, repeat, True)[0], t_cal)
                              for repeat in range(calibration.forward_repeats)]))

    def gradient_loss(*probe):
        net = network(*probe)
        for step, start in enumerate(range(0, len(x_cal), train.batch_size)):
            stop = start + train.batch_size
            net.step(x_cal[start:stop], t_cal[start:stop], len(x_cal[start:stop]), step,
                     train.learning_rate)
        return _mean_loss(net.forward(x_cal, 0, False)[0], t_cal)

    measure = {"forward": forward_loss, "gradient": gradient_loss}
    reference = {}
    for tensor in TUNED_TENSORS:
        reference[tensor] = measure[tensor]()
        if bar is not None:
            bar.advance(note=f"baseline {tensor}")
    sensitivity = {}
    for layer in cnn.LAYERS:
        for tensor in TUNED_TENSORS:
            sensitivity[(layer, tensor, baseline.name)] = 0.0
            for mode in probes:
                sensitivity[(layer, tensor, mode.name)] = (
                    measure[tensor](layer, tensor, mode) - reference[tensor])
                if bar is not None:
                    bar.advance(note=f"{layer} {tensor} {mode.name}")
    if bar is not None:
        bar.close()
    return sensitivity


def _policy_name(spec: dict) -> str:
    names = {entry.get("name") for entry in spec["hardware"]}
    return next(name for name in ("auto", *(f"auto_{i}" for i in range(1, len(names) + 2)))
                if name not in names)


def policy_spec(spec: dict, baseline: str, policy: dict, *, keep_all: bool = True
                ) -> tuple[dict, str]:
    """A copy of the training TOML ``spec`` with one more ``[[hardware]]`` entry: the
    baseline's keys and ``policy`` (``{layer: (forward, gradient)}``; update: the
    baseline) as ``[hardware.policy.LAYER]`` tables. Without ``keep_all`` only float32
    entries, the baseline and the modes the policy names are kept. Returns the spec and
    the new entry's name."""
    name = _policy_name(spec)
    entries = spec["hardware"]
    base = next(entry for entry in entries if entry.get("name") == baseline)
    used = {baseline} | {mode for pair in policy.values() for mode in pair}
    if not keep_all:
        entries = [entry for entry in entries
                   if entry.get("format") == "float32" or entry.get("name") in used]
    entry = {key: value for key, value in base.items() if key != "policy"}
    entry["name"] = name
    entry["policy"] = {layer: {"forward": forward, "gradient": gradient, "update": baseline}
                       for layer, (forward, gradient) in policy.items()}
    return {**spec, "hardware": [*entries, entry]}, name


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)            # a JSON string is a TOML basic string
    raise InputError(f"tune: cannot write {value!r} to TOML")


def policy_toml(spec: dict) -> str:
    """A training TOML of ``spec``: top-level keys, then each ``[[hardware]]`` entry with
    its ``[hardware.policy.LAYER]`` tables."""
    lines = ["# Written by qforge tune: the chosen per-layer policy is the last "
             "[[hardware]] entry."]
    lines += [f"{key} = {_toml_value(value)}" for key, value in spec.items()
              if key != "hardware"]
    for entry in spec["hardware"]:
        lines += ["", "[[hardware]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()
                  if key != "policy"]
        for layer, tensors in entry.get("policy", {}).items():
            lines.append(f"[hardware.policy.{layer}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in tensors.items()]
    return "\n".join(lines) + "\n"


def _check_budget(budget) -> float:
    if (isinstance(budget, bool) or not isinstance(budget, (int, float))
            or not math.isfinite(budget) or budget < 0):
        raise InputError(f"tune: budget = {budget!r}: must be a finite number >= 0 "
                         f"(predicted increase of the mean cross-entropy, nats)")
    return float(budget)


def tune(spec: dict, budget: float, *, source: str = "config", base: str | None = None,
         seed: int | None = None, epochs: int | None = None,
         calibration: Calibration = Calibration(), progress: bool = False) -> dict:
    """Choose, train and compare a per-layer policy for the CNN training TOML ``spec``
    (module docstring). ``budget``: the allowed summed predicted increase of the
    calibration loss (nats); ``seed``/``epochs`` override the config's. Returns a
    JSON-ready report: sensitivities, the policy, and per run (float32, the baseline,
    the policy) the test accuracy and cycles per epoch."""
    budget = _check_budget(budget)
    train = train_config_from_dict(spec, source=source, base=base)
    if train.model != "cnn":
        raise TrainConfigError(f"{source}: model = {train.model!r}: qforge tune chooses "
                               f"per-layer policies for model = \"cnn\"")
    if seed is not None:
        train = replace(train, seed=seed)
    baseline = baseline_entry(train)
    modes = candidate_modes(train, baseline)
    data = train_dataset(train)
    if data.image_shape is None:
        raise TrainConfigError(f"{source}: dataset = {train.dataset!r}: model = \"cnn\" "
                               f"needs images (N x H x W [x C] arrays)")
    for mode in modes:
        check_cnn_depth(train.batch_size, mode, data.image_shape, data.classes)
    sensitivity = calibrate(train, data, baseline, modes, calibration, progress)
    samples = len(training_data(train, data, flat=False)[0])
    sizes = epoch_batch_sizes(samples, train.batch_size)
    config = baseline.operand.config
    kept = {mode.name: mode.operand.precision.kept for mode in modes}
    cycles_by_pair = {}
    costs = {layer: {} for layer in cnn.LAYERS}
    for forward in modes:
        for gradient in modes:
            pair = (forward.operand.precision, gradient.operand.precision)
            if pair not in cycles_by_pair:
                cycles_by_pair[pair] = layer_cycles(config, sizes, data.image_shape,
                                                    data.classes, *pair)
            for layer in cnn.LAYERS:
                costs[layer][(forward.name, gradient.name)] = cycles_by_pair[pair][layer]
    policy = select_policy(costs, sensitivity, budget)
    tuned_spec, name = policy_spec(spec, baseline.name, policy, keep_all=False)
    tuned = replace(train_config_from_dict(tuned_spec, source=source, base=base),
                    seed=train.seed)
    chosen = next(h for h in tuned.hardware if h.name == name)
    reference = next((h for h in train.hardware if h.is_float),
                     HardwareConfig("float32", None))
    runs = [train_run(tuned, hardware, data, epochs=epochs, progress=progress).to_dict()
            for hardware in (reference, baseline, chosen)]
    predicted = sum(max(0.0, sensitivity[(layer, tensor, mode)])
                    for layer, pair in policy.items()
                    for tensor, mode in zip(TUNED_TENSORS, pair))
    return {
        "source": source, "seed": train.seed,
        "epochs": train.epochs if epochs is None else epochs, "budget": budget,
        "budget_unit": "mean cross-entropy on the calibration samples (nats)",
        "calibration": dict(calibration.__dict__), "baseline": baseline.name,
        "modes": {mode.name: {"description": mode.operand.describe(),
                              "kept_blocks": kept[mode.name]} for mode in modes},
        "sensitivity": [{"layer": layer, "tensor": tensor, "mode": mode, "loss_increase":
                         value} for (layer, tensor, mode), value in sensitivity.items()],
        "policy_name": name,
        "policy": {layer: {"forward": forward, "gradient": gradient,
                           "update": baseline.name}
                   for layer, (forward, gradient) in policy.items()},
        "predicted_loss_increase": predicted,
        "predicted_cycles": sum(costs[layer][pair] for layer, pair in policy.items()),
        "runs": [{"name": run["name"], "test_accuracy": run["test_accuracy"][-1],
                  "test_loss": run["test_loss"][-1], "cycles_per_epoch": epoch_cycles(run),
                  "layer_cycles": run["layer_cycles"]} for run in runs],
        "spec": tuned_spec,
    }


def load_spec(path: Path, source: str) -> dict:
    """The training TOML at ``path`` as a dict (errors: one :class:`TrainConfigError`)."""
    return read_toml(path, source, "training config", TrainConfigError)
