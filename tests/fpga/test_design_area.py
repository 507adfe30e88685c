"""The whole-accelerator area composed from modules synthesized once
(:mod:`qforge.fpga.design_area`): the memory price, the black boxes, the parts covering
the design (PEs, selectors, output stage, control) and the sums, fast; real Yosys runs
of small modules and the cache (marked ``synth``, seconds); and the composition against
the whole design synthesized at once on three configurations (``synth`` and ``slow``,
minutes cold), within 5% in every measure."""

import json
import re

import pytest
from amaranth.back import rtlil

from qforge.fpga import design_area as design_area_module
from qforge.fpga.area import count_instances
from qforge.fpga.design_area import (PART_TOPS, SRAM_BIT_TRANSISTORS, ComposedArea, Part,
                                     blackbox_modules, composed_area, composition_error,
                                     index_key, memory_transistors, module_area,
                                     whole_design_area)
from qforge.fpga.pe_area import FLIP_FLOP_TRANSISTORS
from qforge.hdl.selector import BlockSelector
from qforge.hdl.top import Accelerator
from qforge.sim.model.spec import from_dict, load_preset
from tests.configs import skipping_p1

#: The measures the validation bounds, and the bound.
TOLERANCE = 0.05
# Carry cells: with every multiplier in LUTs (-nodsp) the whole design's carry chains
# come out a cell or two shorter than the parts' (636 / 634 on skipping_p1, 1,234 /
# 1,233 on fxp8 on 4x4), so they are bounded too.
BOUNDED = ("transistors", "logic_transistors", "flip_flops", "ecp5.lut4", "ecp5.ff",
           "ecp5.carry")
EQUAL = ("memory_bits", "ecp5.dsp", "ecp5.bram", "ecp5.lutram")


def k4p4_4x4():
    """The default preset's PE family on a 4x4 array: K = 4, P = 4 (the ``k4p4`` spec of
    tests/fpga/data on 4x4), buffers of 512 words."""
    spec = load_preset("default").to_dict()
    spec["name"], spec["array"] = "k4p4_4x4", {"rows": 4, "cols": 4}
    spec["arithmetic"]["block_width"] = 4
    return from_dict(spec, source="tests")


def paired_2x2():
    """The paired preset (``arithmetic.paired``: A and B selectors differ, lanes carry
    both sides' fields) on a 2x2 array."""
    spec = load_preset("paired").to_dict()
    spec["name"], spec["array"] = "paired_2x2", {"rows": 2, "cols": 2}
    return from_dict(spec, source="tests")


def _boxes(config):
    top = PART_TOPS["control"]
    text = rtlil.convert(Accelerator(config), name=top, emit_src=False)
    return text, top, design_area_module._design_modules(text, top)


def test_memories_are_six_transistors_a_bit():
    assert SRAM_BIT_TRANSISTORS == 6
    assert memory_transistors([(32, 1024), (26, 2)]) == 6 * (32 * 1024 + 26 * 2)


@pytest.mark.parametrize("make", [lambda: load_preset("tiny"), k4p4_4x4, skipping_p1,
                                  paired_2x2],
                         ids=["tiny", "k4p4_4x4", "skipping_p1", "paired_2x2"])
def test_parts_cover_the_design(make):
    config = make()
    text, top, boxes = _boxes(config)
    assert len(boxes["pe"]) + len(boxes["pe_corner"]) == config.rows * config.cols
    assert len(boxes["pe_corner"]) == 1 and boxes["output"] == [f"{top}.output"]
    groups = [names for key, names in boxes.items() if key.startswith("selectors:")]
    assert sum(map(len, groups)) == count_instances(Accelerator(config), BlockSelector)
    # Each group is one side's, named so in its key (selectors:<side>:<index>).
    for key, names in boxes.items():
        if key.startswith("selectors:"):
            side = key.split(":")[1]
            assert all(name.startswith(f"{top}.{side}_selector") for name in names), key
    # One group per side: the A selectors and the B selectors share their inputs.
    if config.zero_skipping:
        assert sorted(map(len, groups)) == [1, config.rows * config.cols]
    else:
        assert sorted(map(len, groups)) == sorted([config.rows, config.cols])
    # Every other module is the control's: nothing but the boxed ones leaves it.
    boxed = {name for names in boxes.values() for name in names}
    modules = set(re.findall(r"^module \\(\S+)$", text, flags=re.M))
    rest = {name for name in modules - boxed if not name.startswith(f"{top}.output.")}
    expected = {top, f"{top}.loader", f"{top}.scheduler", f"{top}.array", f"{top}.drain",
                f"{top}.drain_skid"} | ({f"{top}.compactor"} if config.zero_skipping
                                          else set())
    assert rest == expected
    # Boxed: ports only, marked blackbox.
    control = blackbox_modules(text, boxed)
    corner = boxes["pe_corner"][0]
    body = control[control.index(f"module \\{corner}\n"):]
    body = body[:body.index("\nend\n")]
    assert control.count("attribute \\blackbox 1") == len(boxed)
    assert all(" input " in line or " output " in line
               for line in body.splitlines()[1:])
    assert "\\captured" in body


def test_blackbox_refuses_unknown_modules():
    with pytest.raises(ValueError, match="no such modules to box: nope"):
        blackbox_modules("module \\t\nend\n", ["nope"])


def _fake(config, pe=100, control=1000):
    cells = lambda lut, ff: {"ecp5": {"lut4": lut, "ff": ff, "dsp": 1}}
    return ComposedArea(config, (
        Part("pe", config.rows * config.cols - 1, pe, cells(10, 5), True, 5),
        Part("pe_corner", 1, pe + 10, cells(11, 6), True, 6),
        Part("selectors_2", 2, 50, cells(4, 2), False, 2, modules=2),
        Part("control", 1, control + 6 * 64, cells(30, 20), False, 20, memory_bits=64)))


def test_composed_area_sums_count_times_instance():
    area = _fake(load_preset("tiny"))
    assert area.transistors == 3 * 100 + 110 + 2 * 50 + 1000 + 6 * 64
    assert area.logic_transistors == area.transistors - 6 * 64
    assert area.flip_flops == 3 * 5 + 6 + 2 * 2 + 20
    assert area.cells("ecp5") == {"lut4": 30 + 11 + 8 + 30, "ff": 15 + 6 + 4 + 20,
                                  "dsp": 3 + 1 + 2 + 1}
    data = json.loads(json.dumps(area.to_dict()))
    assert data["transistors"] == area.transistors and data["config"] == "tiny"
    assert [part["count"] for part in data["parts"]] == [3, 1, 2, 1]
    errors = composition_error(area, _fake(load_preset("tiny"), control=1000 + 814))
    assert errors["transistors"]["error"] == pytest.approx(-814 / (area.transistors + 814))
    assert errors["ecp5.lut4"]["error"] == 0.0


def test_index_is_read_without_elaborating(tmp_path, monkeypatch):
    config = load_preset("tiny")
    area = _fake(config)
    design_area_module._to_index(area, design_area_module._index_path(
        tmp_path, index_key(config, ("ecp5",))))
    monkeypatch.setattr(design_area_module, "module_area", None)   # no synthesis
    again = composed_area(config, root=tmp_path)
    assert again.indexed and again.runs == 0
    assert again.transistors == area.transistors
    assert again.cells("ecp5") == area.cells("ecp5")
    assert [part.modules for part in again.parts] == [1, 1, 2, 1]


def test_docstring_examples():
    import doctest

    assert doctest.testmod(design_area_module).failed == 0


@pytest.mark.synth
def test_memories_are_priced_not_mapped_to_flip_flops(tmp_path):
    """A 16 x 8 memory with a registered read: 128 bits at 6 transistors, none of them
    flip-flops, in the CMOS estimate."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    class Ram(wiring.Component):
        addr: In(4)
        data: In(8)
        en: In(1)
        q: Out(8)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=8, depth=16, init=[])
            write, read = mem.write_port(), mem.read_port()
            m.d.comb += [write.addr.eq(self.addr), write.data.eq(self.data),
                         write.en.eq(self.en), read.addr.eq(self.addr),
                         self.q.eq(read.data)]
            return m

    text = rtlil.convert(Ram(), name="ram", emit_src=False)
    area = module_area(text, "ram", root=tmp_path)
    assert area.memory_bits == 16 * 8
    assert area.flip_flops < 16       # the port's registers at most, never the bits
    assert area.transistors == (area.gate_transistors + FLIP_FLOP_TRANSISTORS
                                * area.flip_flops + SRAM_BIT_TRANSISTORS * 128)
    assert area.runs == 2
    assert module_area(text, "ram", root=tmp_path).runs == 0


@pytest.mark.synth
def test_composed_tiny_runs_each_module_once_then_reads_the_cache(tmp_path):
    config = load_preset("tiny")
    area = composed_area(config, root=tmp_path)
    assert [(part.name, part.count, part.modules) for part in area.parts] == [
        ("pe", 3, 1), ("pe_corner", 1, 1), ("selectors_2", 2, 2), ("output", 1, 1),
        ("control", 1, 1)]
    assert area.runs == 2 * 5 and not area.indexed        # CMOS and ECP5, five parts
    assert area.memory_bits == 4 * 1024 * 8               # 2 + 2 banks of 1024 x 8
    assert area.part("control").memory_bits == area.memory_bits
    assert area.cells("ecp5")["bram"] == 4
    # The same configuration under another name: read from the index.
    renamed = composed_area(from_dict(config.to_dict() | {"name": "other"}),
                            root=tmp_path)
    assert renamed.indexed and renamed.seconds < 1
    assert renamed.to_dict()["cells"] == area.to_dict()["cells"]
    # Without the index, every module's runs are found again.
    for path in (tmp_path / "index").iterdir():
        path.unlink()
    again = composed_area(config, root=tmp_path)
    assert again.runs == 0 and again.transistors == area.transistors


@pytest.mark.synth
@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: load_preset("tiny"), k4p4_4x4, skipping_p1,
                                  paired_2x2],
                         ids=["tiny", "k4p4_4x4", "skipping_p1", "paired_2x2"])
def test_composed_area_is_the_whole_designs_within_5_percent(make):
    """Minutes cold (the whole 4x4 design in CMOS gates and ECP5 cells); the runs are
    cached in build/area/ like qforge area's. ``skipping_p1``: the zero-skipping array,
    whose PEs share their A registers (:func:`~qforge.fpga.design_area.pe_pair`).
    ``paired_2x2``: its A and B selectors are parts of their own, and its PEs receive
    the other side's lane fields as 0 (:func:`~qforge.fpga.pe_area.interior_pe`)."""
    config = make()
    composed = composed_area(config)
    if config.paired:
        assert [part.name for part in composed.parts if "selectors" in part.name] == [
            "selectors_a_2", "selectors_b_2"]
    errors = composition_error(composed, whole_design_area(config))
    for measure in BOUNDED:
        assert abs(errors[measure]["error"]) <= TOLERANCE, (measure, errors[measure])
    for measure in EQUAL:
        assert errors[measure]["composed"] == errors[measure]["whole"], measure
