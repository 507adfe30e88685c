"""A sweep's workloads on a hardware point: the precision policies as training configs
on that point's numerics, their accuracy (emulated training), and their cycles per
epoch and utilization (the cycle model, proven equal to the RTL).

Policies (:data:`~qforge.sim.dse.sweep.POLICIES`), defined on the point's operand width
``W`` and block width ``K`` (``n = W / K`` blocks) with the training config's exact
entry's rounding and weight settings:

* ``exact``: ``W``-bit integers, every block (``q = n x n`` block products a MAC);
* ``approx``: Ax-BxP's dynamic approximation, the top ``ceil(n / 2)`` blocks of each
  operand from its leading non-zero block (``q = ceil(n/2)^2``); not applicable when
  ``n = 1`` (an FxP8 PE has nothing to drop);
* ``reduced``: ``K x ceil(n / 2)``-bit integers, every block (the low-precision mode);
* ``auto``: a per-layer, per-tensor choice among ``exact``, ``approx`` and ``reduced``
  under the workload's loss budget: :mod:`qforge.sim.training.policy_search`'s method
  (sensitivities measured once per numerics and seed, the cheapest policy within the
  budget chosen with this point's cycles, then trained);
* a ``[[hardware]]`` entry of the training config by name, on this point's numerics
  (when its bits, blocks and policy fit them; otherwise the point is not applicable).

Accuracy depends only on the numerics (:func:`numerics_key`): the emulator's results
are the same on every array shape, block-multiplier count and PE design (qforge's
bit-exact, shape-independent contract; ``tests/sim/dse`` checks it on a short run), so
one training serves every point that shares them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from qforge.sim.model.spec import Config
from qforge.sim.dse.sweep import SweepError, Workload, _hash

__all__ = ["NUMERICS_FIELDS", "TRAINING_PRESET", "numerics_key", "policy_entries",
           "training_spec", "EpochCycles", "epoch_cycles", "train_accuracy",
           "calibration", "choose_auto_policy", "float32_spec", "dataset_shape"]

#: The Config fields the emulated training's numbers depend on: the operand and block
#: widths (the formats and their block decomposition) and the reduction depth (how the
#: emulator splits long dot products). Array shape, block multipliers, buffers, PE
#: design and output stage change cycles and area only.
NUMERICS_FIELDS = ("operand_width", "block_width", "max_reduction_depth")
#: The name a training spec gives the point's hardware (``preset = "dse"``).
TRAINING_PRESET = "dse"


def numerics_key(config: Config) -> str:
    """A hash of :data:`NUMERICS_FIELDS` of ``config``.

    >>> from qforge.sim.model.spec import load_preset
    >>> numerics_key(load_preset("default")) == numerics_key(load_preset("sparse"))
    True
    >>> numerics_key(load_preset("default")) == numerics_key(load_preset("tiny"))
    False
    """
    return _hash({name: getattr(config, name) for name in NUMERICS_FIELDS})


def _exact_entry(spec: dict, source: str) -> dict:
    """The training config's first exact integer entry (its rounding and weights)."""
    for entry in spec.get("hardware", []):
        if (isinstance(entry, dict) and entry.get("format") == "int"
                and "kept_blocks" not in entry and "policy" not in entry
                and entry.get("update", "float") == "float"):
            return entry
    raise SweepError(f"{source}: the DSE's policies need an exact [[hardware]] entry "
                     f"(format = \"int\", all blocks kept, no policy) for their rounding "
                     f"and weight settings")


def policy_entries(spec: dict, config: Config, source: str = "workload") -> dict[str, dict]:
    """The ``[[hardware]]`` entries of the built-in policies on ``config``'s numerics
    (module docstring), by policy name; ``approx`` and ``reduced`` are missing when the
    operands are one block.

    >>> from qforge.sim.model.spec import load_preset
    >>> spec = {"hardware": [{"name": "int8", "format": "int", "bits": 8}]}
    >>> entries = policy_entries(spec, load_preset("default"))
    >>> [(name, e["bits"], e.get("kept_blocks")) for name, e in entries.items()]
    [('exact', 8, None), ('approx', 8, 2), ('reduced', 4, None)]
    >>> list(policy_entries(spec, load_preset("fxp8")))
    ['exact']
    """
    base = {key: value for key, value in _exact_entry(spec, source).items()
            if key in ("rounding", "weight_bits", "weight_range", "update_rounding")}
    width, blocks = config.operand_width, config.blocks
    half = math.ceil(blocks / 2)
    entries = {"exact": {"name": "exact", "format": "int", "bits": width, **base}}
    if blocks > 1:
        entries["approx"] = {"name": "approx", "format": "int", "bits": width,
                             "kept_blocks": half, "selection": "dynamic", **base}
        entries["reduced"] = {"name": "reduced", "format": "int",
                              "bits": config.block_width * half, **base}
    return entries


def training_spec(workload: Workload, config: Config, policies=()) -> dict:
    """The workload's training TOML rewritten for ``config``: ``preset = "dse"`` (the
    point's hardware, passed as ``presets={"dse": config}``), a float32 entry, the
    built-in policies' entries and the training config's own entries that
    ``policies`` name (their ``preset`` keys dropped); epochs from the workload."""
    spec = {key: value for key, value in workload.spec.items() if key != "hardware"}
    spec["preset"] = TRAINING_PRESET
    if workload.epochs is not None:
        spec["epochs"] = workload.epochs
    entries = [{"name": "float32", "format": "float32"}]
    entries += policy_entries(workload.spec, config, workload.source).values()
    own = [entry for entry in workload.spec.get("hardware", [])
           if isinstance(entry, dict) and entry.get("name") in policies]
    referenced = {name for entry in own for tensors in entry.get("policy", {}).values()
                  if isinstance(tensors, dict) for name in tensors.values()}
    taken = {entry["name"] for entry in entries}
    for entry in workload.spec.get("hardware", []):
        if isinstance(entry, dict) and entry.get("format") != "float32" and (
                entry.get("name") in policies or entry.get("name") in referenced) \
                and entry.get("name") not in taken:
            entries.append({key: value for key, value in entry.items() if key != "preset"})
    spec["hardware"] = entries
    return spec


def load_training(spec: dict, config: Config, source: str):
    """``spec`` validated with ``config`` as its ``dse`` preset."""
    from qforge.sim.training.config import train_config_from_dict
    return train_config_from_dict(spec, source=source, presets={TRAINING_PRESET: config})


@dataclass(frozen=True)
class EpochCycles:
    """The cycle model's figures of one epoch's training GEMMs."""

    cycles: int
    ideal: float                #: every block multiplier busy every cycle
    macs: int

    @property
    def utilization(self) -> float:
        return self.ideal / self.cycles if self.cycles else 0.0


def _dataset_shape(train) -> tuple[tuple[int, int, int], int, int]:
    """The image shape, classes and training samples of ``train``'s dataset."""
    from qforge.sim.training.data import training_data
    from qforge.sim.training.datasets import train_dataset
    data = train_dataset(train)
    samples = len(training_data(train, data, flat=False)[0])
    return data.image_shape, data.classes, samples


def epoch_cycles(config: Config, hardware, train, shape=None) -> EpochCycles:
    """Cycles of one epoch of ``train``'s CNN with ``hardware`` (a
    :class:`~qforge.sim.training.config.HardwareConfig`, per-layer policy included) on
    ``config``: every layer's forward GEMM at ``(forward, forward)`` precision, its
    weight- and input-gradient GEMMs at ``(forward, gradient)``, each GEMM one dense
    command (:func:`qforge.sim.training.policy_search.epoch_gemm_cycles`, which
    ``qforge tune``'s costs sum too);
    ``shape``: ``(image, classes, samples)`` if known."""
    from qforge.sim.training.policy_search import epoch_batch_sizes, epoch_gemm_cycles

    def precisions(layer):
        forward, gradient, _ = hardware.layer(layer)
        return forward.operand.precision, gradient.operand.precision

    image, classes, samples = shape or _dataset_shape(train)
    sizes = epoch_batch_sizes(samples, train.batch_size)
    total, ideal, macs = 0, 0.0, 0
    for _, count, report in epoch_gemm_cycles(config, sizes, image, classes, precisions):
        total += count * report.total
        ideal += count * report.ideal
        macs += count * report.macs
    return EpochCycles(total, ideal, macs)


def train_accuracy(spec: dict, config: Config, entry: str, seed: int, source: str) -> dict:
    """Train entry ``entry`` of the training ``spec`` on ``config``'s numerics with
    ``seed``: ``{"accuracy", "loss", "seconds"}`` (final test accuracy and loss)."""
    from qforge.sim.training.datasets import train_dataset
    from qforge.sim.training.loop import train_run

    train = replace(load_training(spec, config, source), seed=seed)
    hardware = next(h for h in train.hardware if h.name == entry)
    data = train_dataset(train)
    started = time.monotonic()
    result = train_run(train, hardware, data)
    return {"accuracy": result.test_accuracy[-1], "loss": result.test_loss[-1],
            "seconds": time.monotonic() - started}


#: The modes the ``auto`` policy chooses among (those the point has).
AUTO_MODES = ("exact", "approx", "reduced")


def calibration(spec: dict, config: Config, seed: int, source: str) -> dict:
    """The ``auto`` policy's sensitivities on ``config``'s numerics with ``seed``
    (:func:`qforge.sim.training.policy_search.calibrate`, the baseline ``exact``):
    ``{"sensitivity": [[layer, tensor, mode, loss increase], ...], "seconds"}``."""
    from qforge.sim.training.datasets import train_dataset
    from qforge.sim.training.policy_search import calibrate

    train = replace(load_training(spec, config, source), seed=seed)
    modes = tuple(h for h in train.hardware if h.name in AUTO_MODES)
    baseline = next(h for h in modes if h.name == "exact")
    data = train_dataset(train)
    started = time.monotonic()
    sensitivity = calibrate(train, data, baseline, modes)
    return {"sensitivity": [[*key, value] for key, value in sensitivity.items()],
            "seconds": time.monotonic() - started}


def choose_auto_policy(spec: dict, config: Config, sensitivity: list, budget: float,
                       source: str, shape=None) -> tuple[dict, str, dict]:
    """The cheapest per-layer policy on ``config`` whose predicted loss increase is
    within ``budget`` (:func:`~qforge.sim.training.policy_search.select_policy` with
    this point's cycles). Returns the training spec with the policy's entry, its name
    and the policy (``{layer: [forward mode, gradient mode]}``)."""
    import qforge.sim.training.cnn as cnn
    from qforge.sim.training.policy_search import (epoch_batch_sizes, layer_cycles,
                                                   policy_spec, select_policy)

    train = load_training(spec, config, source)
    modes = [h for h in train.hardware if h.name in AUTO_MODES]
    image, classes, samples = shape or _dataset_shape(train)
    sizes = epoch_batch_sizes(samples, train.batch_size)
    costs = {layer: {} for layer in cnn.LAYERS}
    for forward in modes:
        for gradient in modes:
            cycles = layer_cycles(config, sizes, image, classes, forward.operand.precision,
                                  gradient.operand.precision)
            for layer in cnn.LAYERS:
                costs[layer][(forward.name, gradient.name)] = cycles[layer]
    table = {(layer, tensor, mode): value for layer, tensor, mode, value in sensitivity}
    policy = select_policy(costs, table, budget)
    tuned, name = policy_spec(spec, "exact", policy, keep_all=True)
    return tuned, name, {layer: list(pair) for layer, pair in policy.items()}


def float32_spec(workload: Workload) -> dict:
    """The workload's training TOML with its float32 reference as the only entry (the
    same on every point: no hardware to validate)."""
    spec = {key: value for key, value in workload.spec.items()
            if key not in ("hardware", "preset")}
    if workload.epochs is not None:
        spec["epochs"] = workload.epochs
    spec["hardware"] = [{"name": "float32", "format": "float32"}]
    return spec


def dataset_shape(workload: Workload, config: Config) -> tuple:
    """``(image, classes, samples)`` of the workload's dataset (read once per sweep)."""
    train = load_training(float32_spec(workload), config, workload.source)
    if train.model != "cnn":
        raise SweepError(f"{workload.source}: model = {train.model!r}: the DSE measures "
                         f"cycles per epoch of model = \"cnn\" training configs (the "
                         f"CNN's GEMMs are listed per layer and pass)")
    return _dataset_shape(train)
