"""Sweep files (``qforge dse SWEEP.toml``): the hardware axes, workloads, measures,
sampling and constraints of a design-space exploration, validated into a
:class:`Sweep` and expanded into :class:`HardwarePoint` entries.

A sweep file (``gen/dse/*.toml`` are examples; docs/DSE.md describes every key)::

    name = "cnn_small"
    preset = "default"                  # the hardware the axes vary

    [axes]                              # spec keys (section.key), each a list of values
    "array.rows" = [4, 8]
    "array.cols" = [4, 8]
    "arithmetic.block_width" = [2, 4]

    [sampling]
    method = "grid"                     # every combination; "random": `points` of them
    # points = 10
    # seed = 1

    [constraints]
    fits = "ulx3s-85f"                  # the board's DSPs and block RAMs, then its LUT4s
    max_pes = 64

    [measures]
    area = true                         # CMOS estimate + ECP5 cells, composed
    accuracy = true                     # emulated training
    # fmax = "ulx3s-85f"                # place and route (20+ minutes a point)

    [[workloads]]
    name = "cnn"
    train = "cnn"                       # a packaged training config or a TOML path
    policies = ["exact", "approx", "auto"]
    epochs = 20
    seeds = [1]

Every mistake is one :class:`SweepError` naming the file, the field, the value and what
is allowed. Combinations the hardware rules reject (``Config``'s validation) are not
errors: :func:`expand` returns them as pruned points with the reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qforge.sim.model.errors import shown, shown_path
from qforge.sim.model.spec import (OUTPUT_STAGE_SCHEMA, PE_DESIGNS, SCHEMA, VRQ_SCHEMA,
                                   ZERO_SKIPPING_SCHEMA, Config, ConfigError, from_dict,
                                   load_preset, preset_names, read_toml)

__all__ = ["SweepError", "AXES", "OPTIONAL_SECTIONS", "POLICIES", "BASELINE_PRESET",
           "MAX_POINTS", "Workload", "Constraints", "Measures", "Sweep", "HardwarePoint",
           "sweep_from_dict", "load_sweep", "expand", "config_key", "point_name"]


class SweepError(ConfigError):
    """A sweep file value is missing, unknown, of the wrong type or out of range (a
    :class:`~qforge.sim.model.spec.ConfigError`: the CLI reports it in one line)."""


#: The hardware axes a sweep may vary: every spec key (``section.key``).
AXES = {f"{field.section}.{field.name}": field
        for field in (*SCHEMA, *VRQ_SCHEMA, *ZERO_SKIPPING_SCHEMA, *OUTPUT_STAGE_SCHEMA)}
AXES_EXTRA = ("arithmetic.pe",)
#: Optional spec sections: an axis value ``"none"`` leaves the section out (a
#: ``zero_skipping.pe_buffer_depth`` of ``"none"``: the dense array).
OPTIONAL_SECTIONS = ("vrq", "zero_skipping", "output_stage")
#: Precision policies a workload may name besides its training config's [[hardware]]
#: entries (:mod:`qforge.sim.dse.workload`).
POLICIES = ("exact", "approx", "reduced", "auto")
#: The baseline every point is compared with, at each array shape of the sweep.
BASELINE_PRESET = "fxp8"
#: The most hardware points a sweep may expand to (each costs module syntheses).
MAX_POINTS = 4096
#: The most values one axis may list.
MAX_AXIS_VALUES = 64
_TOP_KEYS = {"name", "preset", "axes", "sampling", "constraints", "measures", "workloads",
             "baseline"}


@dataclass(frozen=True)
class Workload:
    """A training workload and the precision policies to run it under."""

    name: str
    train: str                  #: a packaged training config name or a TOML path
    spec: dict                  #: the training TOML, read
    source: str                 #: where it came from (for messages)
    base: str | None            #: the folder of a relative ``npz:`` dataset
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int | None          #: None: the training config's
    budget: float               #: the ``auto`` policy's loss budget (nats)

    def key(self) -> str:
        """A hash of what the workload trains (not its name, nor the ``auto`` budget,
        which only changes the policy an ``auto`` training is keyed by): two workloads
        that differ in their budget share every other task."""
        return _hash({"spec": self.spec, "epochs": self.epochs})


@dataclass(frozen=True)
class Constraints:
    """What prunes points: before any work (``max_pes``, ``max_block_multipliers``, the
    board's DSP blocks and block RAMs), and after the area (the board's LUT4s)."""

    fits: str | None = None
    max_pes: int | None = None
    max_block_multipliers: int | None = None


@dataclass(frozen=True)
class Measures:
    area: bool = True
    accuracy: bool = True
    fmax: str | None = None     #: a board name: place and route every point


@dataclass(frozen=True)
class Sweep:
    name: str
    source: str
    preset: str
    axes: tuple[tuple[str, tuple], ...]
    method: str
    points: int | None
    seed: int
    constraints: Constraints
    measures: Measures
    workloads: tuple[Workload, ...]
    baseline: bool = True       #: add the fxp8 preset at every array shape

    def key(self) -> str:
        return _hash({"preset": self.preset, "axes": self.axes, "method": self.method,
                      "points": self.points, "seed": self.seed})


@dataclass(frozen=True)
class HardwarePoint:
    """One hardware configuration of a sweep: its axis values and its :class:`Config`
    (None when pruned, with the reason)."""

    name: str
    values: tuple[tuple[str, Any], ...]
    config: Config | None
    baseline: bool = False
    pruned: str | None = None


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


def config_key(config: Config) -> str:
    """A hash of the hardware ``config`` describes (its name left out).

    >>> config_key(load_preset("tiny")) == config_key(from_dict(
    ...     {**load_preset("tiny").to_dict(), "name": "other"}))
    True
    """
    spec = config.to_dict()
    spec.pop("name")
    return _hash(spec)


#: How a point's name shows an axis: the configuration's own symbols (W, K, P, as in
#: docs/NUMERICS.md) for the arithmetic, the key's name for the others; the PE design
#: by its value alone.
AXIS_LABELS = {"arithmetic.operand_width": "W", "arithmetic.block_width": "K",
               "arithmetic.block_multipliers": "P", "arithmetic.pe": ""}


def point_name(values) -> str:
    """A short readable name of a point from its axis values.

    >>> point_name((("array.rows", 4), ("array.cols", 8), ("arithmetic.block_width", 2),
    ...             ("arithmetic.pe", "shared_shift")))
    'rows4_cols8_K2_shared_shift'
    """
    parts = [f"{AXIS_LABELS.get(axis, axis.split('.')[1])}{value}" for axis, value in values]
    return "_".join(parts) or "base"


def _fail(path: str, value, allowed: str):
    raise SweepError(f"{path} = {shown(value)}: {allowed}")


def _integer(table: dict, key: str, path: str, low: int, high: int, default=None):
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(path, value, f"must be a whole number in {low} .. {high}")
    return value


def _keys(table, path: str, allowed) -> dict:
    if not isinstance(table, dict):
        _fail(path, table, "must be a table")
    for key in table:
        if key not in allowed:
            _fail(f"{path}.{key}" if path else key, table[key],
                  f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return table


def _axis(name: str, values) -> tuple:
    path = f"axes.{name if name.isprintable() and len(name) <= 80 else shown(name)}"
    if name not in AXES and name not in AXES_EXTRA:
        _fail(path, values, "unknown axis; allowed: "
              + ", ".join([*AXES, *AXES_EXTRA]))
    if not isinstance(values, list) or not values or len(values) > MAX_AXIS_VALUES:
        _fail(path, values, f"must be a list of 1 .. {MAX_AXIS_VALUES} values")
    section = name.split(".")[0]
    checked = []
    for index, value in enumerate(values):
        where = f"{path}[{index}]"
        if value == "none" and section in OPTIONAL_SECTIONS:
            checked.append(value)
        elif name == "arithmetic.pe":
            if value not in PE_DESIGNS:
                _fail(where, value, f"allowed: {', '.join(PE_DESIGNS)}")
            checked.append(value)
        else:
            field = AXES[name]
            allowed = f"must be a whole number in {field.minimum} .. {field.maximum}" + (
                ' or "none" (no [' + section + "] section)"
                if section in OPTIONAL_SECTIONS else "")
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not field.minimum <= value <= field.maximum:
                _fail(where, value, allowed)
            checked.append(value)
    if len(set(map(str, checked))) != len(checked):
        _fail(path, values, "lists a value twice")
    return tuple(checked)


def _workload(entry, index: int, source: str, base: Path | None) -> Workload:
    path = f"workloads[{index}]"
    _keys(entry, path, {"name", "train", "policies", "seeds", "epochs", "budget"})
    name = entry.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        _fail(f"{path}.name", name, "must be an identifier (letters, digits, _)")
    train = entry.get("train")
    if not isinstance(train, str) or not train:
        _fail(f"{path}.train", train, "must name a packaged training config (cnn, "
              "digits) or a training TOML path")
    from importlib import resources

    from qforge.sim.training.config import TrainConfigError
    packaged = resources.files("qforge.gen") / "train" / f"{train}.toml"
    if "/" not in train and not train.endswith(".toml") and packaged.is_file():
        spec_path, spec_base = packaged, None
    else:
        spec_path = Path(train)
        if base is not None and not spec_path.is_absolute():
            spec_path = base / spec_path
        if not spec_path.is_file():
            _fail(f"{path}.train", train, "no such file, and not a packaged training "
                  "config (cnn, digits, cnn_rtl, rtl, weight_bits)")
        spec_base = str(spec_path.parent)
    try:
        spec = read_toml(spec_path, shown_path(spec_path), "training config",
                         TrainConfigError)
    except TrainConfigError as error:
        raise SweepError(f"{path}.train: {error}") from None
    policies = entry.get("policies", ["exact"])
    if not isinstance(policies, list) or not policies:
        _fail(f"{path}.policies", policies, "must be a non-empty list of policies")
    entries = [h.get("name") for h in spec.get("hardware", []) if isinstance(h, dict)]
    for i, policy in enumerate(policies):
        if policy not in POLICIES and policy not in entries:
            _fail(f"{path}.policies[{i}]", policy, f"allowed: {', '.join(POLICIES)}, or a "
                  f"[[hardware]] entry of {train}: {', '.join(map(str, entries))}")
    if len(set(policies)) != len(policies):
        _fail(f"{path}.policies", policies, "lists a policy twice")
    seeds = entry.get("seeds", [spec.get("seed", 1)])
    if not isinstance(seeds, list) or not seeds or len(seeds) > 16:
        _fail(f"{path}.seeds", seeds, "must be a list of 1 .. 16 seeds")
    for i, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 65535:
            _fail(f"{path}.seeds[{i}]", seed, "must be a whole number in 0 .. 65535")
    epochs = entry.get("epochs")
    if epochs is not None:
        epochs = _integer(entry, "epochs", f"{path}.epochs", 1, 10_000)
    budget = entry.get("budget", 0.02)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) \
            or not math.isfinite(budget) or not 0 <= budget <= 100:
        _fail(f"{path}.budget", budget, "must be a number in 0 .. 100 (nats of predicted "
              "loss increase, the auto policy's)")
    if spec.get("model") != "cnn" and any(p in ("auto",) for p in policies):
        _fail(f"{path}.policies", policies, '"auto" chooses per-layer policies of a '
              'model = "cnn" training config')
    return Workload(name, train, spec, shown_path(spec_path), spec_base, tuple(policies),
                    tuple(seeds), epochs, float(budget))


def sweep_from_dict(spec: dict, *, source: str = "sweep", base: Path | None = None) -> Sweep:
    """Validate a sweep file (as a dict) into a :class:`Sweep`; ``base``: the folder
    relative paths are taken from. Errors: one :class:`SweepError` naming ``source``.

    >>> sweep_from_dict({"axes": {"array.rows": [4, 0]}}, source="s.toml")
    Traceback (most recent call last):
    ...
    qforge.sim.dse.sweep.SweepError: s.toml: axes.array.rows[1] = 0: must be a whole number in 1 .. 64
    """
    try:
        return _sweep(spec, source, base)
    except SweepError as error:
        raise SweepError(f"{source}: {error}") from None


def _sweep(spec, source, base) -> Sweep:
    _keys(spec, "", _TOP_KEYS)
    name = spec.get("name", "sweep")
    if not isinstance(name, str) or not name.isidentifier() or len(name) > 64:
        _fail("name", name, "must be an identifier of at most 64 characters")
    preset = spec.get("preset", "default")
    if preset not in preset_names():
        _fail("preset", preset, f"allowed: {', '.join(preset_names())}")
    axes = spec.get("axes", {})
    if not isinstance(axes, dict):
        _fail("axes", axes, 'must be a table of axes ("section.key" = [values])')
    axes = tuple((axis, _axis(axis, values)) for axis, values in axes.items())
    sampling = _keys(spec.get("sampling", {}), "sampling", {"method", "points", "seed"})
    method = sampling.get("method", "grid")
    if method not in ("grid", "random"):
        _fail("sampling.method", method, "allowed: grid, random")
    points = None
    if method == "random":
        points = _integer(sampling, "points", "sampling.points", 1, MAX_POINTS)
    elif "points" in sampling:
        _fail("sampling.points", sampling["points"], 'only with method = "random"')
    seed = _integer(sampling, "seed", "sampling.seed", 0, 2**32 - 1, 1)
    grid = math.prod(len(values) for _, values in axes)
    if method == "grid" and grid > MAX_POINTS:
        _fail("axes", f"{grid} combinations", f"a grid may have at most {MAX_POINTS}; "
              'use [sampling] method = "random" with points')
    table = _keys(spec.get("constraints", {}), "constraints",
                  {"fits", "max_pes", "max_block_multipliers"})
    fits = table.get("fits")
    if fits is not None:
        from qforge.fpga.boards import BOARDS
        # The composed area counts ECP5 cells (qforge.fpga.design_area): iCE40 cells
        # are not validated there, so only ECP5 boards are offered.
        ecp5 = [name for name, board in BOARDS.items() if board.family == "ecp5"]
        if fits not in ecp5:
            _fail("constraints.fits", fits, f"allowed: {', '.join(ecp5)} (the composed "
                  f"area counts ECP5 cells)")
    constraints = Constraints(
        fits,
        _integer(table, "max_pes", "constraints.max_pes", 1, 4096)
        if "max_pes" in table else None,
        _integer(table, "max_block_multipliers", "constraints.max_block_multipliers", 1,
                 1 << 18) if "max_block_multipliers" in table else None)
    table = _keys(spec.get("measures", {}), "measures", {"area", "accuracy", "fmax"})
    for key in ("area", "accuracy"):
        if not isinstance(table.get(key, True), bool):
            _fail(f"measures.{key}", table[key], "must be true or false")
    fmax = table.get("fmax")
    if fmax is not None:
        from qforge.fpga.boards import BOARDS
        if fmax is False:
            fmax = None
        elif fmax not in BOARDS:
            _fail("measures.fmax", fmax, f"a board to place and route on: "
                  f"{', '.join(BOARDS)} (or false)")
    measures = Measures(table.get("area", True), table.get("accuracy", True), fmax)
    entries = spec.get("workloads", [])
    if not isinstance(entries, list) or len(entries) > 16:
        _fail("workloads", entries, "must be an array of at most 16 tables [[workloads]]")
    workloads = tuple(_workload(entry, i, source, base) for i, entry in enumerate(entries))
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        _fail("workloads", names, "names must be unique")
    baseline = spec.get("baseline", True)
    if not isinstance(baseline, bool):
        _fail("baseline", baseline, f"must be true or false (add the {BASELINE_PRESET} "
              f"preset at every array shape)")
    return Sweep(name, source, preset, axes, method, points, seed, constraints, measures,
                 workloads, baseline)


def load_sweep(path: Path) -> Sweep:
    """The sweep file at ``path``, validated (errors: one :class:`SweepError`)."""
    source = shown_path(path)
    spec = read_toml(Path(path), source, "sweep file", SweepError)
    return sweep_from_dict(spec, source=source, base=Path(path).parent)


#: Every point's Config has this name, so that modules equal across points (a PE on
#: a 4x4 and an 8x8 array) elaborate to the same Verilog and are synthesized once.
CONFIG_NAME = "dse"


def _config(base: dict, values) -> Config:
    spec = json.loads(json.dumps(base))
    spec["name"] = CONFIG_NAME
    for axis, value in values:
        section, key = axis.split(".")
        if value == "none":
            spec.pop(section, None)
        elif section in OPTIONAL_SECTIONS and section not in spec:
            spec[section] = {key: value}
            if section == "vrq":        # a [vrq] section needs all three keys
                missing = [f.name for f in VRQ_SCHEMA if f.name not in spec[section]]
                spec[section].update({name: None for name in missing})
        else:
            spec.setdefault(section, {})[key] = value
    for section in OPTIONAL_SECTIONS:
        if section in spec and any(v is None for v in spec[section].values()):
            missing = [k for k, v in spec[section].items() if v is None]
            raise ConfigError(f"[{section}] needs {', '.join(missing)} too (add them as "
                              f"axes)")
    return from_dict(spec, source="point")


def expand(sweep: Sweep) -> list[HardwarePoint]:
    """The sweep's hardware points in a fixed order: the grid (or ``points`` random
    combinations of it, drawn with ``seed``), then the baseline (:data:`BASELINE_PRESET`
    at each array shape the points have). Points whose Config is invalid, or that
    break a constraint checked before any work, come back pruned with the reason.

    >>> sweep = sweep_from_dict({"axes": {"array.rows": [4, 8],
    ...                                   "arithmetic.block_width": [2, 3]}})
    >>> [(p.name, p.pruned is None) for p in expand(sweep)][:4]
    [('rows4_K2', True), ('rows4_K3', False), ('rows8_K2', True), ('rows8_K3', False)]
    >>> [p.name for p in expand(sweep) if p.baseline]
    ['fxp8_rows4_cols8', 'fxp8_rows8_cols8']
    """
    base = load_preset(sweep.preset).to_dict()
    names = [axis for axis, _ in sweep.axes]
    combinations = list(itertools.product(*(values for _, values in sweep.axes)))
    if sweep.method == "random" and sweep.points < len(combinations):
        chosen = sorted(random.Random(sweep.seed).sample(range(len(combinations)),
                                                         sweep.points))
        combinations = [combinations[i] for i in chosen]
    points, shapes = [], []
    for combination in combinations:
        values = tuple(zip(names, combination))
        name = point_name(values)
        try:
            config = _config(base, values)
        except ConfigError as error:
            points.append(HardwarePoint(name, values, None, pruned=str(error)))
            continue
        reason = _constraint_failure(sweep.constraints, config)
        points.append(HardwarePoint(name, values, None if reason else config,
                                    pruned=reason))
        if reason is None and (config.rows, config.cols) not in shapes:
            shapes.append((config.rows, config.cols))
    if sweep.baseline:
        baseline = load_preset(BASELINE_PRESET).to_dict()
        for rows, cols in shapes:
            values = (("array.rows", rows), ("array.cols", cols))
            config = _config(baseline, values)
            points.append(HardwarePoint(f"{BASELINE_PRESET}_rows{rows}_cols{cols}",
                                        values, config, baseline=True))
    return points


def _constraint_failure(constraints: Constraints, config: Config) -> str | None:
    """Why ``config`` breaks a constraint checked before any work, or None."""
    pes = config.rows * config.cols
    if constraints.max_pes is not None and pes > constraints.max_pes:
        return f"constraints.max_pes: {pes} PEs > {constraints.max_pes}"
    multipliers = pes * config.block_multipliers
    if constraints.max_block_multipliers is not None \
            and multipliers > constraints.max_block_multipliers:
        return (f"constraints.max_block_multipliers: {multipliers} > "
                f"{constraints.max_block_multipliers}")
    if constraints.fits is not None:
        from qforge.fpga.boards import BOARDS
        board = BOARDS[constraints.fits]
        brams = estimated_block_rams(config)
        if brams > board.resources["bram"]:
            return (f"constraints.fits: about {brams} block RAMs for the operand buffers "
                    f"> the {board.device}'s {board.resources['bram']}")
    return None


def estimated_block_rams(config: Config) -> int:
    """Block RAMs of 18 Kbit (ECP5 DP16KD, at most 36 bits wide) the operand buffers
    take at least (a lower bound, so that no point that fits is pruned): each of the
    ``rows + cols`` banks holds ``2 x buffer_depth`` words of ``P x W`` bits (a
    zero-skipping array's PE-local banks come on top).

    >>> estimated_block_rams(load_preset("default"))     # 16 banks of 1024 x 32 bits
    32
    """
    banks = config.rows + config.cols
    bits = config.block_multipliers * config.operand_width
    per_bank = math.ceil(bits / 36) * math.ceil(2 * config.buffer_depth * min(bits, 36)
                                                / 18432)
    return banks * per_bank
