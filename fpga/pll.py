"""PLL parameter solvers for the boards :mod:`qforge.fpga.boards` supports.

Both solvers search the divider space exactly as the vendor-neutral tools of the open
toolchains do, and return the *achieved* output frequency, which is what the build uses
for the UART divisor and the clock constraint (never the requested one):

* :func:`ice40_pll`: ``SB_PLL40_PAD`` / ``SB_PLL40_CORE`` in ``SIMPLE`` feedback mode, the
  rules of IceStorm's ``icepll``: input 10-133 MHz, phase-detector frequency
  ``f_in / (DIVR + 1)`` 10-133 MHz, VCO ``f_pfd * (DIVF + 1)`` 533-1066 MHz, output
  ``f_vco / 2**DIVQ`` 16-275 MHz, ``DIVR`` 0-15, ``DIVF`` 0-127, ``DIVQ`` 1-6, and
  ``FILTER_RANGE`` from the phase-detector frequency::

      >>> pll = ice40_pll(12e6, 24e6)      # the iCEBreaker's 12 MHz oscillator
      >>> pll.divr, pll.divf, pll.divq, pll.filter_range, pll.output_hz
      (0, 63, 5, 1, 24000000.0)

* :func:`ecp5_pll`: ``EHXPLLL`` with ``CLKOP`` fed back, the rules of Project Trellis's
  ``ecppll``: input 8-400 MHz, phase-detector frequency ``f_in / CLKI_DIV`` 3.125-400 MHz,
  output ``f_pfd * CLKFB_DIV`` 10-400 MHz, VCO ``f_out * CLKOP_DIV`` 400-800 MHz (the VCO
  closest to 600 MHz wins a tie), ``CLKI_DIV`` 1-128, ``CLKFB_DIV`` 1-80, ``CLKOP_DIV``
  1-128::

      >>> pll = ecp5_pll(25e6, 50e6)       # the ULX3S's 25 MHz oscillator
      >>> pll.clki_div, pll.clkfb_div, pll.clkop_div, pll.clkop_cphase, pll.output_hz
      (1, 2, 12, 6, 50000000.0)

The search uses exact rational arithmetic (the tools use floating point, which only
matters on exact ties). A target the PLL cannot reach, or can only approximate by more
than ``tolerance`` (default 1%), raises a :class:`ValueError` that names the requested
frequency and the reachable range::

    >>> ice40_pll(12e6, 300e6)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    InputError: clock frequency 300 MHz: the iCE40 PLL (SB_PLL40, 12 MHz input) reaches
    16.125 .. 270 MHz
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

from qforge.sim.model.errors import InputError

__all__ = ["Ice40Pll", "Ecp5Pll", "ice40_pll", "ecp5_pll", "ICE40_LIMITS", "ECP5_LIMITS",
           "format_mhz"]

#: IceStorm ``icepll`` limits (MHz): input, phase detector, VCO, output.
ICE40_LIMITS = {"input": (10, 133), "pfd": (10, 133), "vco": (533, 1066),
                "output": (16, 275)}
#: Project Trellis ``ecppll`` limits (MHz).
ECP5_LIMITS = {"input": (8, 400), "pfd": (Fraction(3125, 1000), 400), "vco": (400, 800),
               "output": (10, 400)}

#: Default largest relative difference between the requested and achieved frequency.
TOLERANCE = 0.01


def format_mhz(hz) -> str:
    """``"24 MHz"``, ``"33.75 MHz"``: a frequency in MHz with at most 4 decimals.

    >>> format_mhz(24e6), format_mhz(33_750_000), format_mhz(16_666_666.67)
    ('24 MHz', '33.75 MHz', '16.6667 MHz')
    """
    return f"{float(hz) / 1e6:.4f}".rstrip("0").rstrip(".") + " MHz"


@dataclass(frozen=True)
class Ice40Pll:
    """``SB_PLL40_*`` parameters (``FEEDBACK_PATH="SIMPLE"``) and the frequencies they
    give, in Hz."""

    input_hz: float
    requested_hz: float
    output_hz: float
    divr: int            #: reference divider - 1 (0 .. 15)
    divf: int            #: feedback divider - 1 (0 .. 127)
    divq: int            #: output divider: 2**DIVQ (1 .. 6)
    filter_range: int    #: loop filter setting for the phase-detector frequency (1 .. 6)
    pfd_hz: float
    vco_hz: float

    def parameters(self) -> dict[str, object]:
        """``Instance`` parameters (``p_...``) for ``SB_PLL40_PAD`` / ``SB_PLL40_CORE``."""
        return {"p_FEEDBACK_PATH": "SIMPLE", "p_DIVR": self.divr, "p_DIVF": self.divf,
                "p_DIVQ": self.divq, "p_FILTER_RANGE": self.filter_range}

    def to_dict(self) -> dict:
        return {"primitive": "SB_PLL40", "input_hz": self.input_hz,
                "requested_hz": self.requested_hz, "output_hz": self.output_hz,
                "pfd_hz": self.pfd_hz, "vco_hz": self.vco_hz, "DIVR": self.divr,
                "DIVF": self.divf, "DIVQ": self.divq, "FILTER_RANGE": self.filter_range}


@dataclass(frozen=True)
class Ecp5Pll:
    """``EHXPLLL`` parameters (``FEEDBK_PATH="CLKOP"``) and the frequencies they give,
    in Hz."""

    input_hz: float
    requested_hz: float
    output_hz: float
    clki_div: int        #: 1 .. 128
    clkfb_div: int       #: 1 .. 80
    clkop_div: int       #: 1 .. 128
    clkop_cphase: int    #: coarse phase of CLKOP, in VCO cycles
    pfd_hz: float
    vco_hz: float

    def parameters(self) -> dict[str, object]:
        """``Instance`` parameters (``p_...``) for ``EHXPLLL``."""
        return {"p_CLKI_DIV": self.clki_div, "p_CLKFB_DIV": self.clkfb_div,
                "p_CLKOP_DIV": self.clkop_div, "p_CLKOP_CPHASE": self.clkop_cphase,
                "p_CLKOP_FPHASE": 0, "p_FEEDBK_PATH": "CLKOP"}

    def to_dict(self) -> dict:
        return {"primitive": "EHXPLLL", "input_hz": self.input_hz,
                "requested_hz": self.requested_hz, "output_hz": self.output_hz,
                "pfd_hz": self.pfd_hz, "vco_hz": self.vco_hz, "CLKI_DIV": self.clki_div,
                "CLKFB_DIV": self.clkfb_div, "CLKOP_DIV": self.clkop_div,
                "CLKOP_CPHASE": self.clkop_cphase}


def _mhz(hz, what: str) -> Fraction:
    try:
        value = Fraction(hz) / 1_000_000
    except (TypeError, ValueError):
        raise InputError(f"{what} = {hz!r}: expected a frequency in Hz") from None
    if value <= 0:
        raise InputError(f"{what} = {hz!r}: must be a positive frequency in Hz")
    return value


def _check_input(f_in: Fraction, limits, name: str) -> None:
    low, high = limits["input"]
    if not low <= f_in <= high:
        raise InputError(f"input clock {format_mhz(f_in * 1_000_000)}: the {name} PLL "
                         f"takes {format_mhz(low * 1_000_000)} .. "
                         f"{format_mhz(high * 1_000_000)}")


def _check_result(target: Fraction, best: Fraction | None,
                  reachable: tuple[Fraction, Fraction], name: str, f_in: Fraction,
                  tolerance: float) -> None:
    """Raise unless ``best`` is within ``tolerance`` of ``target``."""
    low, high = reachable
    span = f"{format_mhz(low * 1_000_000)[:-4]} .. {format_mhz(high * 1_000_000)}"
    where = (f"the {name} PLL ({_PRIMITIVES[name]}, {format_mhz(f_in * 1_000_000)} "
             f"input) reaches {span}")
    if best is None:
        raise InputError(f"clock frequency {format_mhz(target * 1_000_000)}: {where}")
    error = abs(best - target) / target
    if error <= Fraction(tolerance):
        return
    if not low <= target <= high:
        raise InputError(f"clock frequency {format_mhz(target * 1_000_000)}: {where}")
    raise InputError(f"clock frequency {format_mhz(target * 1_000_000)}: {where}, "
                     f"but the nearest it makes is {format_mhz(best * 1_000_000)} "
                     f"({float(error):.2%} off, more than the {tolerance:.2%} allowed)")


_PRIMITIVES = {"iCE40": "SB_PLL40", "ECP5": "EHXPLLL"}


@functools.lru_cache(maxsize=16)
def _ice40_settings(f_in: Fraction) -> tuple[tuple[int, int, int, Fraction], ...]:
    """(DIVR, DIVF, DIVQ, f_out) of every setting whose PFD, VCO and output are in
    range, in ``icepll``'s search order."""
    settings = []
    out_low, out_high = ICE40_LIMITS["output"]
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not ICE40_LIMITS["pfd"][0] <= pfd <= ICE40_LIMITS["pfd"][1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not ICE40_LIMITS["vco"][0] <= vco <= ICE40_LIMITS["vco"][1]:
                continue
            for divq in range(1, 7):
                fout = vco / 2 ** divq
                if out_low <= fout <= out_high:
                    settings.append((divr, divf, divq, fout))
    return tuple(settings)


def ice40_pll(input_hz, output_hz, *, tolerance: float = TOLERANCE) -> Ice40Pll:
    """The ``SB_PLL40`` setting (``SIMPLE`` feedback) whose output is nearest
    ``output_hz``, searched in ``icepll``'s order (the first of equally near ones wins;
    unlike ``icepll``, a setting whose output is outside 16-275 MHz is never chosen).

    >>> pll = ice40_pll(12e6, 48e6)
    >>> (pll.divr, pll.divf, pll.divq, pll.vco_hz, pll.output_hz)
    (0, 63, 4, 768000000.0, 48000000.0)
    >>> round(ice40_pll(12e6, 30e6).output_hz)
    30000000
    >>> ice40_pll(12e6, 10e6)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    InputError: clock frequency 10 MHz: the iCE40 PLL (SB_PLL40, 12 MHz input) reaches
    16.125 .. 270 MHz
    """
    f_in = _mhz(input_hz, "input_hz")
    target = _mhz(output_hz, "output_hz")
    _check_input(f_in, ICE40_LIMITS, "iCE40")
    settings = _ice40_settings(f_in)
    best = None
    for divr, divf, divq, fout in settings:
        if best is None or abs(fout - target) < abs(best[0] - target):
            best = (fout, divr, divf, divq)
    outputs = [setting[3] for setting in settings]
    reachable = (min(outputs), max(outputs)) if outputs else (Fraction(0), Fraction(0))
    _check_result(target, best[0] if best else None, reachable, "iCE40", f_in, tolerance)
    fout, divr, divf, divq = best
    pfd = f_in / (divr + 1)
    filter_range = (1 if pfd < 17 else 2 if pfd < 26 else 3 if pfd < 44 else
                    4 if pfd < 66 else 5 if pfd < 101 else 6)
    return Ice40Pll(float(input_hz), float(output_hz), float(fout * 1_000_000), divr, divf,
                    divq, filter_range, float(pfd * 1_000_000),
                    float(pfd * (divf + 1) * 1_000_000))


@functools.lru_cache(maxsize=16)
def _ecp5_settings(f_in: Fraction) -> tuple[tuple[int, int, int, Fraction], ...]:
    """(CLKI_DIV, CLKFB_DIV, CLKOP_DIV, f_out) of every setting whose PFD and output are
    in range and for which some CLKOP_DIV puts the VCO in range: the output only depends
    on the first two, so CLKOP_DIV is the one whose VCO is nearest 600 MHz (the lowest
    of two equally near)."""
    settings = []
    vco_low, vco_high = ECP5_LIMITS["vco"]
    out_low, out_high = ECP5_LIMITS["output"]
    for clki_div in range(1, 129):
        pfd = f_in / clki_div
        if not ECP5_LIMITS["pfd"][0] <= pfd <= ECP5_LIMITS["pfd"][1]:
            continue
        for clkfb_div in range(1, 81):
            fout = pfd * clkfb_div
            if not out_low <= fout <= out_high:
                continue
            first = max(1, math.ceil(vco_low / fout))
            last = min(128, math.floor(vco_high / fout))
            if first > last:
                continue
            middle = math.floor(600 / fout)
            candidates = [d for d in (middle, middle + 1) if first <= d <= last] or \
                [first, last]
            div = min(candidates, key=lambda d: (abs(fout * d - 600), d))
            settings.append((clki_div, clkfb_div, div, fout))
    return tuple(settings)


def ecp5_pll(input_hz, output_hz, *, tolerance: float = TOLERANCE) -> Ecp5Pll:
    """The ``EHXPLLL`` setting (``CLKOP`` feedback) whose output is nearest ``output_hz``;
    of equally near ones the one whose VCO is nearest 600 MHz (the lower of two exactly
    as near), then the first in ``ecppll``'s search order. ``CLKOP_CPHASE`` is
    ``CLKOP_DIV // 2``, the half-period shift ``ecppll`` computes (its float arithmetic
    sometimes truncates it one lower; with ``CLKOP`` as the feedback the phase does not
    change the frequency).

    >>> pll = ecp5_pll(25e6, 100e6)
    >>> (pll.clki_div, pll.clkfb_div, pll.clkop_div, pll.vco_hz, pll.output_hz)
    (1, 4, 6, 600000000.0, 100000000.0)
    >>> ecp5_pll(25e6, 450e6)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    InputError: clock frequency 450 MHz: the ECP5 PLL (EHXPLLL, 25 MHz input) reaches
    10 .. 400 MHz
    """
    f_in = _mhz(input_hz, "input_hz")
    target = _mhz(output_hz, "output_hz")
    _check_input(f_in, ECP5_LIMITS, "ECP5")
    best = None          # (error, |vco - 600|, clki_div, clkfb_div, clkop_div, fout)
    settings = _ecp5_settings(f_in)
    for clki_div, clkfb_div, div, fout in settings:
        error = abs(fout - target)
        distance = abs(fout * div - 600)
        if best is None or error < best[0] or (error == best[0] and distance < best[1]):
            best = (error, distance, clki_div, clkfb_div, div, fout)
    outputs = [setting[3] for setting in settings]
    reachable = (min(outputs), max(outputs)) if outputs else (Fraction(0), Fraction(0))
    _check_result(target, best[5] if best else None, reachable, "ECP5", f_in,
                  tolerance)
    _, _, clki_div, clkfb_div, clkop_div, fout = best
    return Ecp5Pll(float(input_hz), float(output_hz), float(fout * 1_000_000), clki_div,
                   clkfb_div, clkop_div, clkop_div // 2,
                   float(f_in / clki_div * 1_000_000), float(fout * clkop_div * 1_000_000))
