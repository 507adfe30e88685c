"""PLL solvers (:mod:`qforge.fpga.pll`) against their documented limits and the
icepll / ecppll tools."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction

import pytest

from qforge.fpga.pll import ECP5_LIMITS, ICE40_LIMITS, ecp5_pll, ice40_pll
from tests.fpga.stand_in import tool_path


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


@pytest.mark.skipif(not tool_path("yowasp-icepll"), reason="yowasp-icepll not installed")
@pytest.mark.parametrize("mhz", [24, 30, 48, 60, 100, 16.5, 37.7])
def test_ice40_solver_matches_icepll(mhz):
    output = subprocess.run([tool_path("yowasp-icepll"), "-i", "12", "-o", str(mhz)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=True).stdout
    fields = {key: int(value) for key, value in
              (line.split(":")[0:2] for line in output.splitlines()
               if line.split(":")[0] in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE"))
              for value in [value.split()[0]]}
    pll = ice40_pll(12e6, mhz * 1e6)
    assert fields == {"DIVR": pll.divr, "DIVF": pll.divf, "DIVQ": pll.divq,
                      "FILTER_RANGE": pll.filter_range}


@pytest.mark.skipif(not tool_path("yowasp-ecppll"), reason="yowasp-ecppll not installed")
@pytest.mark.parametrize("mhz", [50, 37.5, 100, 133, 65, 31.25])
def test_ecp5_solver_matches_ecppll(mhz):
    output = subprocess.run([tool_path("yowasp-ecppll"), "-i", "25", "-o", str(mhz)],
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
