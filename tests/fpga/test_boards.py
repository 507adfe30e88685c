# amaranth: UnusedElaboratable=no
"""Board tops (:mod:`qforge.fpga.boards`) elaborated for both boards with a stand-in
core: PLL, constraints, reset, the status LEDs' stretcher."""

from __future__ import annotations

import math

import pytest
from amaranth.sim import Simulator

from qforge.fpga.boards import BOARDS, BoardTop, Stretcher, board_named
from qforge.sim.model.spec import load_preset
from tests.fpga.stand_in import LoopbackCore, plan_of, plan_text


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
    top, plan = plan_of("icebreaker", clock_frequency=20e6)
    assert top.clock_frequency == 19.875e6            # the PLL's achieved frequency
    assert top.core.clock_frequency == 19.875e6       # ... is what the core is built for
    rtlil = plan_text(plan, "top.il")
    assert "SB_PLL40_PAD" in rtlil and "SB_PLL40_CORE" not in rtlil
    assert "PACKAGEPIN" in rtlil and "PLLOUTGLOBAL" in rtlil
    for parameter, value in top.pll.parameters().items():
        assert f"parameter \\{parameter[2:]} " in rtlil, parameter
    pcf = plan_text(plan, "top.pcf")
    assert "set_frequency pll_clk 19.875" in pcf      # the achieved, not the requested
    assert "set_frequency clk12_0__io 12.0" in pcf
    for pin, name in (("35", "clk12_0__io"), ("6", "uart_0__rx__io"),
                      ("9", "uart_0__tx__io"), ("37", "led_g_0__io"),
                      ("11", "led_r_0__io")):
        assert f"set_io {name} {pin}" in pcf


def test_ulx3s_top_elaborates_with_ehxplll_and_constraint():
    top, plan = plan_of("ulx3s-85f", clock_frequency=31e6)
    assert top.clock_frequency == 31.25e6 and top.core.clock_frequency == 31.25e6
    rtlil = plan_text(plan, "top.il")
    assert "EHXPLLL" in rtlil
    assert "parameter \\CLKI_DIV 4" in rtlil and "parameter \\CLKFB_DIV 5" in rtlil
    lpf = plan_text(plan, "top.lpf")
    assert 'FREQUENCY NET "pll_clk" 31250000.0 HZ;' in lpf
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    for number, site in enumerate("B2 C2 C1 D2 D1 E2 E1 H3".split()):
        assert f'LOCATE COMP "led_{number}__io" SITE "{site}";' in lpf
    assert 'SITE "M1"' in lpf and 'SITE "L4"' in lpf     # UART rx, tx
    assert 'SITE "L3"' not in lpf       # the FT231X's TXDEN is an output: never driven


def test_board_top_defaults_and_baud_rate():
    top, plan = plan_of("icebreaker")
    assert top.clock_frequency == 24e6 and top.core.baud_rate == 115200
    assert top.reset_cycles == math.ceil(15e-6 * 24e6)


def test_default_core_is_linked_accelerator():
    from qforge.hdl.link import LinkedAccelerator

    top, _ = plan_of("icebreaker", core=None)
    assert isinstance(top.core, LinkedAccelerator)
    with pytest.raises(ValueError, match="baud_rate"):
        BoardTop(load_preset("tiny"), "icebreaker", baud_rate=20e6)


def test_board_top_errors_name_the_problem():
    with pytest.raises(ValueError, match="clock frequency 500 MHz"):
        BoardTop(load_preset("tiny"), "icebreaker", clock_frequency=500e6,
                 core=LoopbackCore)
    with pytest.raises(ValueError, match="board = 'nexys'"):
        BoardTop(load_preset("tiny"), "nexys", core=LoopbackCore)
    # The core is made here (in a file with the linter comment above), so that neither
    # the top nor its core warns about never being elaborated.
    top = BoardTop(load_preset("tiny"), "icebreaker",
                   core=lambda config, **link: LoopbackCore(config, **link))
    with pytest.raises(ValueError, match="needs the board's platform"):
        top.elaborate(None)


def test_stretcher_holds_for_its_ticks():
    dut = Stretcher(3)
    tick = dut.tick
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
