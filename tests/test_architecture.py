"""The package dependency graph of docs/ARCHITECTURE.md, checked on the source.

Each import between qforge's parts must point down the layers below (lowest first); a
part may import itself freely (its modules' own order is checked for cycles by
``../shared/tools/import_cycles.py``). Imports inside functions count too: a lazy
import is still a dependency.

The golden model is pure: it imports no Amaranth, no cocotb and no other part of qforge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Source folder -> installed package name (pyproject.toml's package-dir).
FOLDERS = {"hdl": "qforge.hdl", "gen": "qforge.gen", "sim": "qforge.sim", "fpga": "qforge.fpga"}

#: The parts of qforge, lowest layer first. A part may import only parts of a lower
#: layer (or itself). Parts on one line form one layer and do not import each other.
LAYERS = [
    ["qforge.sim.model"],                      # golden model: numbers, ISA rules, cycles
    ["qforge.hdl"],                            # Amaranth components
    ["qforge.gen.tools"],                      # external tool lookup
    ["qforge.gen.generate"],                   # Verilog, manifest, lint
    ["qforge.sim.host"],                       # packing beats, the data mover
    ["qforge.fpga"],                           # boards, build flow, area, host driver
    ["qforge.sim.bench"],                      # cocotb benches and their runner
    ["qforge.sim.runtime", "qforge.sim.progress"],  # backends; progress bars
    ["qforge.gen.asm"],                        # assembler and its blocks
    ["qforge.sim.apps", "qforge.sim.training"],  # demo, bench, repro, fuzz; training
    ["qforge.sim.dse"],                        # design-space exploration (uses training)
    ["qforge.api"],                            # the stable public API
    ["qforge.gen.cli"],                        # the command line
]
RANK = {part: rank for rank, layer in enumerate(LAYERS) for part in layer}


def part_of(module: str) -> str | None:
    """The part a module belongs to: the longest name in :data:`RANK` it starts with."""
    if module == "qforge.gen.api" or module.startswith("qforge.gen.api."):
        module = "qforge.api" + module[len("qforge.gen.api"):]
    for length in range(module.count(".") + 1, 1, -1):
        prefix = ".".join(module.split(".")[:length])
        if prefix in RANK:
            return prefix
    return None


def source_modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([package, *parts]), path


def imports(path: Path):
    """Every absolute module name ``path`` imports, anywhere in the file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


MODULES = dict(source_modules())


def test_every_module_belongs_to_a_part():
    unplaced = [name for name in MODULES
                if part_of(name) is None and name not in FOLDERS.values()]
    assert unplaced == [], f"modules outside every layer of LAYERS: {unplaced}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name):
    here = part_of(name)
    if here is None:                      # a package's own __init__ (qforge.sim, ...)
        return
    wrong = sorted({f"{target} ({part_of(target)})" for target in imports(MODULES[name])
                    if target.startswith("qforge.") and part_of(target) is not None
                    and part_of(target) != here and RANK[part_of(target)] >= RANK[here]})
    assert wrong == [], f"{name} ({here}) imports from its own layer or above: {wrong}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if part_of(n) == "qforge.sim.model"))
def test_golden_model_is_pure(name):
    foreign = sorted({target for target in imports(MODULES[name])
                      if target.split(".")[0] in ("amaranth", "cocotb", "cocotb_tools")
                      or (target.startswith("qforge.")
                          and part_of(target) != "qforge.sim.model")})
    assert foreign == [], f"{name} is part of the golden model but imports {foreign}"


def test_the_check_can_fail():
    """An upward import is caught: hdl importing the command line."""
    assert RANK[part_of("qforge.hdl.top")] < RANK[part_of("qforge.gen.cli.build")]
    assert part_of("qforge.sim.model.numerics") == "qforge.sim.model"
    assert part_of("qforge.gen.api") == "qforge.api"
