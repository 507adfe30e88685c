"""Training configurations: the TOML of a comparison run (``gen/train/*.toml``),
validated into a :class:`TrainConfig` of :class:`HardwareConfig` entries.

Every mistake is one :class:`TrainConfigError` naming the source, the field, the value
and what is allowed. (Over 300 lines: the checks of every key, one concept.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from qforge.sim.model.capacity import tiles
from qforge.sim.model.errors import OperandError, shown_path
from qforge.sim.model.numerics import OperandPrecision, Selection
from qforge.sim.model.paired import PairedPrecision, WindowRounding
from qforge.sim.model.rounding import Rounding
from qforge.sim.model.spec import ConfigError, load_preset, preset_names, read_toml
from qforge.sim.model.vrq_format import VRQ_LIMITS, VrqFormat
from qforge.sim.training.cnn import GEMM_PASSES, IMAGE, LAYERS, gemm_shapes
from qforge.sim.training.formats import OperandFormat, WeightFormat

__all__ = ["TrainConfigError", "FORMATS", "ROUNDINGS", "MODELS", "POLICY_TENSORS",
           "PAIRED_ROUNDINGS",
           "HardwareConfig", "LayerPolicy", "TrainConfig", "DIGITS_SAMPLES", "split_sizes",
           "train_config_from_dict", "load_train_config", "check_cnn_depth",
           "default_config_path", "rtl_config_path"]


class TrainConfigError(ConfigError):
    """A training configuration value is missing, unknown, of the wrong type or out of
    range. A :class:`~qforge.sim.model.spec.ConfigError`, so the CLI reports it in one line."""


#: Operand formats a hardware configuration may name.
FORMATS = ("float32", "int", "vrq", "address_block")
#: Rounding rules by name.
ROUNDINGS = {"nearest": Rounding.NEAREST_EVEN, "stochastic": Rounding.STOCHASTIC}
#: Networks a training config may name (``model``): the digits MLP, the digits CNN.
MODELS = ("mlp", "cnn")
#: The tensors of a layer a per-layer policy sets, each to a [[hardware]] entry's name:
#: forward operands (input activations, weights), output gradient, weight update.
POLICY_TENSORS = ("forward", "gradient", "update")
#: The paired mode's window rounding by name (``paired_rounding``).
PAIRED_ROUNDINGS = {rule.name.lower(): rule for rule in WindowRounding}
#: Samples in scikit-learn's digits, the one dataset.
DIGITS_SAMPLES = 1797


def split_sizes(test_fraction: float, samples: int = DIGITS_SAMPLES) -> tuple[int, int]:
    """``(training, test)`` samples when ``test_fraction`` of ``samples`` are held out:
    the test split is ``round(samples * test_fraction)`` samples, the rest train.

    >>> split_sizes(0.25), split_sizes(0.0001)
    ((1348, 449), (1797, 0))
    """
    test = int(round(samples * test_fraction))
    return samples - test, test

@dataclass(frozen=True)
class LayerPolicy:
    """One layer's entry of a per-layer policy: the [[hardware]] configurations whose
    operand format and rounding its forward operands (``forward``) and output gradient
    (``gradient``) use, and whose weight format and update rounding its weights and
    biases use (``update``). Only those parts of each configuration are used."""

    layer: str
    forward: "HardwareConfig"
    gradient: "HardwareConfig"
    update: "HardwareConfig"

    def describe(self) -> str:
        return (f"{self.layer}: forward {self.forward.name}, gradient "
                f"{self.gradient.name}, update {self.update.name}")


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
    #: Per-layer precision (CNN only): layers without an entry use this configuration.
    policy: tuple[LayerPolicy, ...] = ()
    #: The paired mode (CNN only) of the GEMMs of ``paired_passes`` (``None``: none),
    #: in every layer whose ``forward`` entry this is.
    paired: PairedPrecision | None = None
    paired_passes: tuple[str, ...] = ()
    #: The CNN's layer inputs (pixels, post-ReLU activations) stored as unsigned codes.
    unsigned_activations: bool = False

    @property
    def is_float(self) -> bool:
        return self.operand is None

    def layer(self, name: str) -> tuple["HardwareConfig", "HardwareConfig",
                                        "HardwareConfig"]:
        """The configurations of layer ``name``'s forward operands, gradient and update:
        its policy entry's, or this configuration for all three.

        >>> h = HardwareConfig("h", None)
        >>> [c.name for c in h.layer("conv1")]
        ['h', 'h', 'h']
        """
        for entry in self.policy:
            if entry.layer == name:
                return entry.forward, entry.gradient, entry.update
        return self, self, self

    def describe(self) -> str:
        if self.is_float:
            return "float32 (weights, activations, gradients, GEMMs)"
        rounding = {rule: name for name, rule in ROUNDINGS.items()}
        where = " on the accelerator" if self.update == "hardware" else ""
        policy = "".join(f"; {entry.describe()}" for entry in self.policy)
        unsigned = "; unsigned activations" if self.unsigned_activations else ""
        paired = "" if self.paired is None else \
            f"; {self.paired.describe()} in {', '.join(self.paired_passes)}"
        return (f"{self.operand.describe()}, {rounding[self.rounding]} operands; "
                f"weights {self.weights.bits}-bit in [-{self.weights.range:g}, "
                f"{self.weights.range:g}), {rounding[self.update_rounding]} "
                f"update{where}{unsigned}{paired}{policy}")


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
    #: The network: ``"mlp"`` (``hidden`` units) or ``"cnn"`` (:mod:`qforge.sim.training.cnn`;
    #: ``hidden`` is 0).
    model: str = "mlp"
    #: ``"digits"`` or ``"npz:PATH"`` (:func:`qforge.sim.training.datasets.load_dataset`),
    #: a relative PATH taken from ``dataset_base`` (the config file's folder) if set.
    dataset: str = "digits"
    dataset_base: str | None = None

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
    "int": {"bits", "kept_blocks", "selection", "paired", "paired_rounding",
            "paired_passes", "unsigned_activations"},
    "vrq": {"code_width", "range_stride", "ranges", "kept_blocks", "selection"},
    "address_block": {"bits", "block", "kept_blocks", "selection"},
}
_LOW_PRECISION_KEYS = {"preset", "rounding", "weight_bits", "weight_range", "update_rounding",
                       "update", "policy"}


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


def _hardware_from_dict(entry, index: int, default_preset: str,
                        presets: dict | None = None) -> HardwareConfig:
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
    preset = _choice(entry, "preset", f"{prefix}.preset", _preset_choices(presets),
                     default_preset)
    config = (presets or {}).get(preset) or load_preset(preset)
    k, width = config.block_width, config.operand_width
    vrq = None
    bits = 8
    if kind == "vrq":
        values = {key: _integer(entry, key, f"{prefix}.{key}", low, high)
                  for key, (low, high) in VRQ_LIMITS.items()}
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
    code_blocks = tiles(vrq.code_width if vrq else bits, k)
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
    paired, passes, unsigned = _paired_keys(entry, prefix, operand, preset)
    return HardwareConfig(name, operand, rounding, WeightFormat(weight_bits, weight_range),
                          update, where, paired=paired, paired_passes=passes,
                          unsigned_activations=unsigned)


def _paired_keys(entry: dict, prefix: str, operand: OperandFormat, preset: str
                 ) -> tuple[PairedPrecision | None, tuple[str, ...], bool]:
    """``(paired, paired_passes, unsigned_activations)`` of an ``int`` [[hardware]]
    table: ``paired = "HIGH/LOW"`` (blocks the larger and the smaller A operand of a
    pair keep; equal: symmetric), ``paired_rounding`` (``raw``/``round``, default
    raw), ``paired_passes`` (of the CNN's GEMM passes, default ``["forward"]``),
    ``unsigned_activations`` (a boolean). The golden model's own checks
    (:meth:`~qforge.sim.model.numerics.OperandPrecision.validate`, which calls
    :func:`~qforge.sim.model.paired.check_paired`) decide what the preset allows; their
    message follows the key and value."""
    config = operand.config
    unsigned = entry.get("unsigned_activations", False)
    if not isinstance(unsigned, bool):
        _fail(f"{prefix}.unsigned_activations", unsigned, "must be true or false")
    if unsigned:
        _validate_operand(f"{prefix}.unsigned_activations", unsigned,
                          replace(operand, unsigned=True).precision, config, preset)
    if "paired" not in entry:
        for key in ("paired_rounding", "paired_passes"):
            if key in entry:
                _fail(f"{prefix}.{key}", entry[key], 'only with paired = "HIGH/LOW" '
                      '(e.g. paired = "2/2")')
        return None, (), unsigned
    value = entry["paired"]
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        _fail(f"{prefix}.paired", value, 'must be "HIGH/LOW": the blocks the larger and '
              'the smaller A operand of a pair keep, e.g. "2/2" (symmetric) or "3/1" '
              "(asymmetric)")
    rounding = PAIRED_ROUNDINGS[_choice(entry, "paired_rounding", f"{prefix}.paired_rounding",
                                        tuple(PAIRED_ROUNDINGS), "raw")]
    mode = PairedPrecision(int(parts[0]), int(parts[1]), rounding)
    _validate_operand(f"{prefix}.paired", value, replace(operand.precision, paired=mode),
                      config, preset)
    passes = entry.get("paired_passes", [GEMM_PASSES[0]])
    if not isinstance(passes, list) or not passes or \
            any(p not in GEMM_PASSES for p in passes) or len(set(passes)) != len(passes):
        _fail(f"{prefix}.paired_passes", passes, f"must be a non-empty list of distinct "
              f"passes of {', '.join(GEMM_PASSES)} (the GEMMs run paired)")
    return mode, tuple(p for p in GEMM_PASSES if p in passes), unsigned


def _validate_operand(path: str, value, precision: OperandPrecision, config, preset: str
                      ) -> None:
    """``precision`` runs as a GEMM's A operand on ``config`` (the golden model's
    :meth:`~qforge.sim.model.numerics.OperandPrecision.validate`), or one
    :class:`TrainConfigError` at ``path`` with the model's reason."""
    if not config.paired:
        _fail(path, value, f"needs a preset built with arithmetic.paired = true, and "
              f"preset {preset!r} is not (preset = \"paired\" is the default array with it)")
    try:
        precision.validate(config, "a")
    except OperandError as error:
        _fail(path, value, str(error))


def train_config_from_dict(spec: dict[str, Any], *, source: str = "config",
                           base: str | None = None,
                           presets: dict[str, Any] | None = None) -> TrainConfig:
    """Validate a training TOML (as a dict) into a :class:`TrainConfig`.

    Every error is one :class:`TrainConfigError` naming the source, the field, the value
    and what is allowed. ``base``: the folder a relative ``dataset = "npz:PATH"`` is
    taken from (the config file's; None: the current directory). ``presets``: more
    hardware a ``preset`` key may name, name -> :class:`~qforge.sim.model.spec.Config`
    (a design-space sweep's points, :mod:`qforge.sim.dse`), besides the packaged presets:

    >>> train_config_from_dict({"name": "x", "hidden": 0}, source="t.toml")
    Traceback (most recent call last):
    ...
    qforge.sim.training.config.TrainConfigError: t.toml: hidden = 0: allowed range is 1 .. 1024
    """
    try:
        return _train_config(spec, source, base, presets)
    except TrainConfigError as error:
        raise TrainConfigError(f"{source}: {error}") from None


def _preset_choices(presets) -> list[str]:
    """The names a ``preset`` key may take: the packaged presets and ``presets``'."""
    return [*preset_names(), *(presets or {})]


def _train_config(spec, source, base=None, presets=None) -> TrainConfig:
    if not isinstance(spec, dict):
        raise TrainConfigError(f"a training config must be a table, not {type(spec).__name__}")
    for key in spec:
        if key not in _TOP_KEYS:
            raise TrainConfigError(f"unknown key {key!r}; allowed top-level keys: "
                                   f"{', '.join(sorted(_TOP_KEYS))}")
    name = spec.get("name", "train")
    if not isinstance(name, str) or not name.isidentifier():
        _fail("name", name, "must be a non-empty identifier (letters, digits, _)")
    dataset = spec.get("dataset", "digits")
    if not isinstance(dataset, str) or not (dataset == "digits"
                                            or dataset.startswith("npz:")):
        _fail("dataset", dataset, "allowed are 'digits' and 'npz:PATH' (an .npz file "
                                  "holding x_train, y_train, x_test and y_test)")
    digits = dataset == "digits"
    model = _choice(spec, "model", "model", MODELS, "mlp")
    if model == "cnn":
        if "hidden" in spec:
            _fail("hidden", spec["hidden"], 'only with model = "mlp" (the CNN\'s layers '
                  "are fixed: qforge.sim.training.cnn)")
        hidden = 0
    else:
        hidden = _integer(spec, "hidden", "hidden", 1, 1024)
    epochs = _integer(spec, "epochs", "epochs", 1, 10000)
    batch_size = _integer(spec, "batch_size", "batch_size", 1, 1024)
    learning_rate = _number(spec, "learning_rate", "learning_rate", 0, 100)
    learning_rate_final = _number(spec, "learning_rate_final", "learning_rate_final", 0,
                                  learning_rate, learning_rate)
    seed = _integer(spec, "seed", "seed", 0, 65535)
    split_seed = _integer(spec, "split_seed", "split_seed", 0, 2**32 - 1, 0)
    test_fraction = _number(spec, "test_fraction", "test_fraction", 0, 0.9, 0.25)
    # Both splits must hold a sample; test_fraction <= 0.9 leaves the training split
    # at least 180, so only the test split can come out empty.
    training_split, test_split = split_sizes(test_fraction)
    if digits and test_split < 1:
        smallest = math.ceil(0.5 / DIGITS_SAMPLES * 1e4) / 1e4
        _fail("test_fraction", spec.get("test_fraction"),
              f"holds out round({DIGITS_SAMPLES} * test_fraction) = 0 of the "
              f"{DIGITS_SAMPLES} digits; the test split needs at least one sample: "
              f"test_fraction >= {smallest:g}")
    train_samples = spec.get("train_samples")
    if train_samples is not None and not digits:
        # The file's own split: its size is checked when it is read (training_data).
        train_samples = _integer(spec, "train_samples", "train_samples", 1, 2**26)
    elif train_samples is not None:
        train_samples = _integer(spec, "train_samples", "train_samples", 1, DIGITS_SAMPLES)
        if train_samples > training_split:
            _fail("train_samples", train_samples,
                  f"the training split holds {training_split} samples ({DIGITS_SAMPLES} "
                  f"digits less {test_split} test samples at test_fraction = "
                  f"{test_fraction:g}); allowed range is 1 .. {training_split}")
    preset = _choice(spec, "preset", "preset", _preset_choices(presets), "default")
    entries = spec.get("hardware")
    if not isinstance(entries, list) or not entries:
        _fail("hardware", entries, "must be a non-empty array of tables [[hardware]] "
                                   "(one per configuration to train)")
    hardware = tuple(_hardware_from_dict(entry, i, preset, presets)
                     for i, entry in enumerate(entries))
    names = [h.name for h in hardware]
    for i, h in enumerate(hardware):
        if names.index(h.name) != i:
            _fail(f"hardware[{i}].name", h.name, "must be unique (already used by "
                  f"hardware[{names.index(h.name)}])")
        if (h.paired is not None or h.unsigned_activations) and model != "cnn":
            key = "paired" if h.paired is not None else "unsigned_activations"
            _fail(f"hardware[{i}].{key}", entries[i][key], 'only with model = "cnn" '
                  "(the MLP's GEMMs are not paired)")
        if h.update == "hardware" and not digits:
            _fail(f"hardware[{i}].update", "hardware", "trains on the digits only for now "
                  '(the programs\' buffers are sized for them); use update = "float"')
        if h.operand is not None and model == "cnn":
            if digits:      # another dataset's images: checked once it is read
                check_cnn_depth(batch_size, h)
        elif h.operand is not None:
            depth = max(hidden + 1, batch_size)
            if depth > h.operand.config.max_reduction_depth:
                _fail("batch_size" if batch_size >= hidden + 1 else "hidden",
                      batch_size if batch_size >= hidden + 1 else hidden,
                      f"GEMM depth {depth} exceeds max_reduction_depth "
                      f"{h.operand.config.max_reduction_depth} of {h.name}'s preset")
    hardware = tuple(_with_policy(h, entries[i], hardware, model)
                     for i, h in enumerate(hardware))
    return TrainConfig(name, hidden, epochs, batch_size, learning_rate, seed, hardware,
                       split_seed, test_fraction, train_samples, source, learning_rate_final,
                       model, dataset, base)


def check_cnn_depth(batch_size: int, hardware: HardwareConfig, image=None,
                    classes: int = 10) -> None:
    """Every GEMM of a CNN step on ``H x W x C`` images (``image``; None: the digits')
    fits the preset's ``max_reduction_depth``, or one :class:`TrainConfigError`."""
    limit = hardware.operand.config.max_reduction_depth
    shapes = gemm_shapes(batch_size, IMAGE if image is None else image, classes)
    (layer, pass_), (_, _, depth) = max(shapes.items(), key=lambda item: item[1][2])
    if depth > limit:
        _fail("batch_size", batch_size, f"the CNN's {layer} {pass_.replace('_', ' ')} "
              f"GEMM has depth {depth}, over max_reduction_depth {limit} of "
              f"{hardware.name}'s preset")


def _with_policy(hardware: HardwareConfig, entry: dict, rows, model: str) -> HardwareConfig:
    """``hardware`` with the per-layer policy of its [[hardware]] table ``entry``
    (``[hardware.policy.LAYER]`` tables of ``forward``/``gradient``/``update`` = the
    name of a [[hardware]] entry), validated against the other ``rows``: a low-precision
    entry on the same preset, with ``update = "float"`` for an entry that updates on the
    host; for an ``update = "hardware"`` entry (the CNN as programs, whose layers each
    run their own formats) any low-precision entry whose named part runs on the
    preset's programs: ``format = "int"`` operands for ``forward`` and ``gradient``,
    ``weight_bits`` at most the accumulator width for ``update``."""
    if "policy" not in entry:
        return hardware
    prefix = f"hardware[{rows.index(hardware)}] ({hardware.name}).policy"
    policy = entry["policy"]
    if model != "cnn":
        _fail(prefix, policy, 'per-layer policies need model = "cnn"')
    if not isinstance(policy, dict) or not policy:
        _fail(prefix, policy, f"must be a table of layers ({', '.join(LAYERS)}), e.g. "
                              f"[hardware.policy.conv1]")
    programs = hardware.update == "hardware"
    usable = {row.name: row for row in rows
              if not row.is_float and (programs or row.update == "float")}
    entries = []
    for layer, tensors in policy.items():
        if layer not in LAYERS:
            _fail(f"{prefix}.{layer}", tensors, f"unknown layer; the CNN's layers: "
                                                f"{', '.join(LAYERS)}")
        if not isinstance(tensors, dict):
            _fail(f"{prefix}.{layer}", tensors, f"must be a table with "
                                                f"{', '.join(POLICY_TENSORS)}")
        chosen = {}
        for tensor in tensors:
            if tensor not in POLICY_TENSORS:
                _fail(f"{prefix}.{layer}.{tensor}", tensors[tensor],
                      f"unknown key; allowed: {', '.join(POLICY_TENSORS)}")
        for tensor in POLICY_TENSORS:
            name = tensors.get(tensor, hardware.name)
            if name not in usable:
                which = "" if programs else ' with update = "float"'
                _fail(f"{prefix}.{layer}.{tensor}", name,
                      f"unknown mode; must name a low-precision [[hardware]] entry{which}: "
                      f"{', '.join(usable)}")
            other = usable[name]
            if other.operand.config.name != hardware.operand.config.name:
                _fail(f"{prefix}.{layer}.{tensor}", name,
                      f"uses preset {other.operand.config.name!r}, this configuration "
                      f"{hardware.operand.config.name!r} (one accelerator per run)")
            if programs:
                _check_program_part(f"{prefix}.{layer}.{tensor}", tensor, other,
                                    hardware.operand.config)
            chosen[tensor] = other
        _check_paired_gradient(f"{prefix}.{layer}", chosen["forward"], chosen["gradient"])
        entries.append(LayerPolicy(layer, **chosen))
    order = {layer: index for index, layer in enumerate(LAYERS)}
    return replace(hardware, policy=tuple(sorted(entries, key=lambda e: order[e.layer])))


def _check_paired_gradient(path: str, forward: HardwareConfig,
                           gradient: HardwareConfig) -> None:
    """A layer's paired backward GEMMs (its ``forward`` entry's ``paired_passes``) run
    with its ``gradient`` entry's output gradient, or one :class:`TrainConfigError` at
    ``path``: the weight gradient multiplies it as B (an ``int`` operand, as the paired
    A is), the input gradient pairs it as A (an exact ``int`` operand of all blocks:
    the golden model's check)."""
    passes = forward.paired_passes
    if forward.paired is None or gradient is forward or passes == ("forward",):
        return
    if gradient.operand.kind != "int":
        _fail(f"{path}.gradient", gradient.name, f"is format = \"{gradient.operand.kind}\";"
              f" {forward.name} pairs the backward GEMMs ({', '.join(passes)}), which "
              f"need an int output gradient")
    if "input_gradient" in passes:
        _validate_operand(f"{path}.gradient", gradient.name,
                          replace(gradient.operand.precision, paired=forward.paired),
                          gradient.operand.config, gradient.operand.config.name)


def _check_program_part(path: str, tensor: str, other: HardwareConfig, config) -> None:
    """The part ``tensor`` of entry ``other`` that an ``update = "hardware"`` policy
    names runs as programs on ``config``, or one :class:`TrainConfigError` at ``path``:
    operand codes in memory need ``format = "int"``; the fused update saturates at the
    accumulator width."""
    if tensor != "update" and other.operand.kind != "int":
        _fail(path, other.name, f"is format = \"{other.operand.kind}\"; with update = "
              "\"hardware\" a layer's operands must be format = \"int\" (the programs "
              "keep integer operand codes in memory)")
    if tensor == "update" and other.weights.bits > config.accumulator_width:
        _fail(path, other.name, f"has weight_bits = {other.weights.bits}; with update = "
              f"\"hardware\" at most the accumulator width {config.accumulator_width} of "
              f"preset {config.name!r} (the update saturates there)")


def default_config_path():
    """The packaged comparison run, ``gen/train/digits.toml``."""
    return resources.files("qforge.gen") / "train" / "digits.toml"


def rtl_config_path():
    """The packaged training-on-the-accelerator run, ``gen/train/rtl.toml``."""
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
        source = shown_path(path)
    if isinstance(path, str):
        path = Path(path)
    spec = read_toml(path, source, "training config", TrainConfigError)
    base = str(path.parent) if isinstance(path, Path) else None
    return train_config_from_dict(spec, source=source, base=base)
