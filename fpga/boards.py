"""Board tops: the whole design (:class:`~qforge.hdl.link.LinkedAccelerator`, the
accelerator behind its UART link) plus what a board needs around it: a PLL making the
``sync`` clock, a reset held until the PLL has locked, the UART pins and status LEDs.

Two boards (:data:`BOARDS`)::

    >>> sorted(BOARDS)
    ['icebreaker', 'ulx3s-85f']
    >>> board = BOARDS["icebreaker"]
    >>> board.device, board.input_hz, board.default_hz, board.dsp_multipliers
    ('iCE40UP5K', 12000000.0, 24000000.0, 8)

**Clock.** The board oscillator feeds the family's PLL (:mod:`qforge.fpga.pll`), whose
output is the ``sync`` clock of the whole design. The iCE40 uses ``SB_PLL40_PAD``: the
iCEBreaker's 12 MHz oscillator is on pin 35 (IOT_46b_G0), whose input path the UP5K's
only PLL (bel X12/Y31/pll_3) takes over, so the PLL takes the pad directly. nextpnr
refuses ``SB_PLL40_CORE`` fed from that pin's global buffer ("PLL bel
'X12/Y31/pll_3' cannot be used as it conflicts with input ... on pin '35'"). The ECP5
uses ``EHXPLLL`` with ``CLKOP`` fed back, from the ULX3S's 25 MHz oscillator. The
*achieved* PLL frequency
(:attr:`BoardTop.clock_frequency`) is the one given to the core (UART divisor) and to
``platform.add_clock_constraint`` on the PLL's output net.

**Reset.** ``sync`` is held in reset until the PLL reports lock and then for
:attr:`BoardTop.reset_cycles` more cycles (15 us: iCE40 block RAMs read as zero for a
few microseconds after configuration); the lock is brought into the PLL clock's domain
with an ``FFSynchronizer`` and the reset is released through a ``ResetSynchronizer``
(asserted asynchronously, so losing lock resets the design even without a clock).

**Pins.** The UART is the board's USB serial port (``platform.request("uart")``: FPGA
``rx`` receives from the host). The ULX3S board file also has ``uart_tx_enable`` (pin
L3) as an *output*, but that pin is the FT231X's TXDEN, an output of the USB chip
("FPGA receives" in the ULX3S constraint file): it is left unrequested (high impedance),
never driven.

**LEDs.** Activity pulses are stretched to :data:`ACTIVITY_SECONDS` (50 ms) so a single
byte is visible; a rejected frame is shown while ``status.frame_rejected`` is set and
for :data:`REJECT_SECONDS` (1 s) after.

=============  =====  ========================================================
board          LED    meaning
=============  =====  ========================================================
iCEBreaker     green  on while the link is busy; otherwise a short heartbeat
                      flash every second (the clock runs and reset is released)
iCEBreaker     red    on: the accelerator reported an error (sticky until reset);
                      blinking (4 Hz): a frame was rejected (NAK)
ULX3S          LED0   heartbeat, 1 Hz square wave (clock running, out of reset)
ULX3S          LED1   accelerator idle
ULX3S          LED2   UART byte received (stretched)
ULX3S          LED3   UART byte sent (stretched)
ULX3S          LED4   busy: a frame is being received, checked or executed
ULX3S          LED5   frame rejected (NAK)
ULX3S          LED6   accelerator error (sticky until reset)
ULX3S          LED7   PLL locked (straight from the PLL, even while in reset)
=============  =====  ========================================================
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth.lib.wiring import In, Out

from qforge.fpga.pll import Ecp5Pll, Ice40Pll, ecp5_pll, format_mhz, ice40_pll
from qforge.sim.model.errors import InputError

__all__ = ["Board", "BOARDS", "BoardTop", "board_named", "Stretcher", "ACTIVITY_SECONDS",
           "REJECT_SECONDS", "RESET_SECONDS"]

#: How long an activity pulse (a UART byte) keeps its LED lit.
ACTIVITY_SECONDS = 0.05
#: How long a rejected frame keeps its LED going after ``frame_rejected`` falls.
REJECT_SECONDS = 1.0
#: How long ``sync`` stays in reset after the PLL has locked.
RESET_SECONDS = 15e-6


@dataclass(frozen=True)
class Board:
    """What qforge needs to know about a board: its amaranth-boards platform, FPGA and
    clocks, the device's resources (for reports; nextpnr's own counts are preferred
    when a build has them) and how it is programmed."""

    name: str
    title: str
    platform_module: str          #: amaranth-boards module
    platform_class: str           #: platform class in it
    family: str                   #: "ice40" or "ecp5" (:data:`qforge.fpga.area.FAMILIES`)
    device: str
    package: str
    input_clock: str              #: the oscillator's resource name
    input_hz: float               #: the oscillator's frequency
    default_hz: float             #: the ``sync`` clock when none is asked for
    #: Device resources: LUT4s, flip-flops, carry cells, block RAMs, DSPs (and SPRAM).
    resources: dict[str, int] = field(default_factory=dict)
    #: How many block multipliers (one multiplier each) its DSP blocks can take.
    dsp_multipliers: int = 0
    dsp_cell: str = ""            #: the DSP cell's name
    #: The device's int8 ceiling: 8x8-bit multiply-accumulates per cycle its DSP blocks
    #: make (one per MULT18X18D; two per SB_MAC16 in its dual 8x8 mode), the yardstick
    #: of a build's peak throughput in docs/RESULTS.md.
    int8_macs_per_cycle: int = 0
    programmer: str = ""          #: the programming tool's command
    programmer_env: str = ""      #: environment variable that overrides it
    programmer_args: tuple[str, ...] = ()   #: arguments before the bitstream path
    programmer_install: str = ""  #: how to install it
    bitstream_suffix: str = ".bin"
    #: Added to nextpnr's options (the reason is next to each board's value).
    nextpnr_options: str = ""

    def platform(self):
        """A new instance of the board's amaranth-boards platform."""
        module = importlib.import_module(self.platform_module)
        return getattr(module, self.platform_class)()

    def solve_pll(self, output_hz: float | None = None) -> Ice40Pll | Ecp5Pll:
        """The PLL setting for ``output_hz`` (default :attr:`default_hz`); ``ValueError``
        naming the frequency and the reachable range if it cannot be made."""
        target = self.default_hz if output_hz is None else output_hz
        solve = ice40_pll if self.family == "ice40" else ecp5_pll
        return solve(self.input_hz, target)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "family": self.family,
                "device": self.device, "package": self.package,
                "platform": f"{self.platform_module}.{self.platform_class}",
                "input_hz": self.input_hz, "default_hz": self.default_hz,
                "resources": dict(self.resources), "dsp_multipliers": self.dsp_multipliers,
                "int8_macs_per_cycle": self.int8_macs_per_cycle,
                "programmer": self.programmer}


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", title="1BitSquared iCEBreaker (iCE40UP5K-SG48)",
        platform_module="amaranth_boards.icebreaker", platform_class="ICEBreakerPlatform",
        family="ice40", device="iCE40UP5K", package="SG48", input_clock="clk12",
        input_hz=12e6, default_hz=24e6,
        resources={"lut4": 5280, "ff": 5280, "carry": 5280, "bram": 30, "dsp": 8,
                   "spram": 4},
        dsp_multipliers=8, dsp_cell="SB_MAC16", int8_macs_per_cycle=16,
        programmer="iceprog", programmer_env="ICEPROG",
        programmer_install="install IceStorm's iceprog (Debian/Ubuntu: `apt install "
                           "fpga-icestorm`; or the OSS CAD Suite)",
        bitstream_suffix=".bin"),
    "ulx3s-85f": Board(
        name="ulx3s-85f", title="Radiona ULX3S (LFE5U-85F-6BG381C)",
        platform_module="amaranth_boards.ulx3s", platform_class="ULX3S_85F_Platform",
        family="ecp5", device="LFE5U-85F", package="BG381", input_clock="clk25",
        input_hz=25e6, default_hz=50e6,
        resources={"lut4": 83640, "ff": 83640, "carry": 41820, "bram": 208, "dsp": 156},
        dsp_multipliers=156, dsp_cell="MULT18X18D", int8_macs_per_cycle=156,
        programmer="openFPGALoader", programmer_env="OPENFPGALOADER",
        programmer_args=("-b", "ulx3s", "-m"),
        programmer_install="install openFPGALoader (Debian/Ubuntu: `apt install "
                           "openfpgaloader`; or the OSS CAD Suite)",
        bitstream_suffix=".bit",
        # router2: on the 16x16 `ulx3s` preset (64% of the LUTs) nextpnr's default
        # router had not converged after 25 minutes; router2 routed it in a few.
        nextpnr_options="--router router2"),
}


def board_named(name) -> Board:
    """``BOARDS[name]`` (a :class:`Board` passes through), or ``ValueError`` naming the
    boards there are.

    >>> board_named("ulx3s-85f").family
    'ecp5'
    >>> board_named("arty")
    Traceback (most recent call last):
    ...
    InputError: board = 'arty': allowed: icebreaker, ulx3s-85f
    """
    if isinstance(name, Board):
        return name
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise InputError(f"board = {name!r}: allowed: {', '.join(BOARDS)}") from None


class Stretcher(wiring.Component):
    """A pulse stretcher for LEDs, in the ``sync`` domain.

    Ports: ``i`` (in), ``o`` (out: high while ``i`` is, and after ``i`` falls for
    ``ticks`` more pulses of ``tick``) and ``tick`` (in, 1 if left unconnected: a slow
    tick keeps the counter small; unconnected, it counts clock cycles). ``o`` is
    combinational from ``i`` and a ``ceil(log2(ticks + 1))``-bit counter.
    """

    def __init__(self, ticks: int):
        if not isinstance(ticks, int) or ticks < 1:
            raise InputError(f"ticks = {ticks!r}: allowed an integer >= 1")
        self.ticks = ticks
        super().__init__({"i": In(1), "tick": In(1, init=1), "o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        left = Signal(range(self.ticks + 1))
        with m.If(self.i):
            m.d.sync += left.eq(self.ticks)
        with m.Elif(self.tick & (left != 0)):
            m.d.sync += left.eq(left - 1)
        m.d.comb += self.o.eq(self.i | (left != 0))
        return m


def _default_core(config, *, clock_frequency, baud_rate):
    from qforge.hdl.link import LinkedAccelerator, uart_divisor

    # The link's own baud rate check first: a core refused in its constructor would be
    # an elaboratable made and never used.
    uart_divisor(clock_frequency, baud_rate)
    return LinkedAccelerator(config, clock_frequency=clock_frequency, baud_rate=baud_rate)


class BoardTop(wiring.Component):
    """The top level built for ``board`` (a :class:`Board` or its name): the core, the
    PLL, reset, UART pins and LEDs (see the module docstring for the LED map).

    ``clock_frequency`` (Hz, default the board's :attr:`Board.default_hz`) is the
    *requested* ``sync`` clock; the PLL's achieved one is :attr:`clock_frequency`, and
    that is what the core is built for. ``core``: a callable ``core(config, *,
    clock_frequency, baud_rate)`` returning a component with the ports of
    :class:`~qforge.hdl.link.LinkedAccelerator` (``rx``, ``tx``, ``status``,
    ``accelerator_idle``, ``accelerator_error``); default ``LinkedAccelerator``, imported
    when needed. The core is built here, so a baud rate it refuses fails at once.

    A component without ports: everything it drives is a pin of the board's platform,
    which it requests in :meth:`elaborate`.
    """

    def __init__(self, config, board, *, clock_frequency: float | None = None,
                 baud_rate: float = 115200, core=None):
        self.board = board_named(board)
        self.pll = self.board.solve_pll(clock_frequency)
        self.config = config
        self.baud_rate = baud_rate
        self.reset_cycles = max(1, math.ceil(RESET_SECONDS * self.clock_frequency))
        self.core = (core or _default_core)(config, clock_frequency=self.clock_frequency,
                                            baud_rate=baud_rate)
        super().__init__({})

    @property
    def requested_frequency(self) -> float:
        return self.pll.requested_hz

    @property
    def clock_frequency(self) -> float:
        """The ``sync`` clock the PLL makes, in Hz (the achieved, not the requested)."""
        return self.pll.output_hz

    def _pll(self, m: Module, platform, clk_out: Signal, lock: Signal) -> None:
        board = self.board
        clock = platform.request(board.input_clock, dir="-")
        if board.family == "ice40":
            # SB_PLL40_PAD: the oscillator pin is the PLL's own input pad; nextpnr
            # refuses SB_PLL40_CORE fed from that pin's SB_GB_IO (the PLL bel takes the
            # pad's input path), so the pad goes to the PLL directly. The pin's GLOBAL
            # attribute only matters to a buffer, and there is none.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                **self.pll.parameters(),
                p_PLLOUT_SELECT="GENCLK",
                io_PACKAGEPIN=clock.io,
                i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out, o_LOCK=lock)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clock)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=format_mhz(self.pll.input_hz)[:-4],
                a_FREQUENCY_PIN_CLKOP=f"{self.clock_frequency / 1e6:.6f}".rstrip("0")
                .rstrip("."),
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC",
                p_OUTDIVIDER_MUXD="DIVD", p_CLKOP_ENABLE="ENABLED",
                **self.pll.parameters(),
                i_CLKI=clk_buf.i, i_CLKFB=clk_out, i_RST=0, i_STDBY=0,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk_out, o_LOCK=lock)

    def _led(self, m: Module, platform, name: str, number: int, value) -> None:
        port = platform.request(name, number, dir="-")
        buffer = io.Buffer("o", port)
        m.submodules[f"{name}_{number}"] = buffer
        m.d.comb += buffer.o.eq(value)

    def elaborate(self, platform):
        if platform is None:
            raise ValueError("BoardTop needs the board's platform: build it with "
                             "platform.build(...) or platform.prepare(...)")
        m = Module()
        m.submodules.core = core = self.core

        # Clock: the PLL output is the sync clock, constrained to the achieved frequency.
        # The constraint needs a net that survives synthesis under the name Amaranth
        # writes into the constraint file. Without `keep`, Yosys merges pll_clk into the
        # domain's clk and nextpnr ignores the constraint ("net 'pll_clk' does not exist
        # in design"); constraining the domain's clk signal instead does not work either,
        # as Amaranth names it after the last submodule using it ("rejected.clk"), a net
        # flattening removes. (nextpnr would still derive a constraint from the PLL.)
        clk = Signal(name="pll_clk", attrs={"keep": 1})
        lock = Signal(name="pll_lock")
        self._pll(m, platform, clk, lock)
        platform.add_clock_constraint(clk, self.clock_frequency)
        m.domains.sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += [ClockSignal("sync").eq(clk), ClockSignal("por").eq(clk)]

        # Reset: held until the (synchronized) lock has been high for reset_cycles.
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(lock, locked, o_domain="por")
        timer = Signal(range(self.reset_cycles + 1))
        ready = Signal()
        with m.If(~locked):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == self.reset_cycles):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        m.submodules.reset_sync = ResetSynchronizer(~lock | ~ready, domain="sync")

        # UART pins (the core synchronizes rx itself).
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]

        # LEDs. A tick of about a millisecond (the carry out of a free-running
        # power-of-two counter: no comparator, so it is never the critical path) drives
        # every LED timer.
        tick_bits = max(1, int(math.log2(self.clock_frequency * 1e-3)))
        tick_seconds = 2 ** tick_bits / self.clock_frequency
        prescaler = Signal(tick_bits)
        tick = Signal()
        m.d.sync += Cat(prescaler, tick).eq(prescaler + 1)
        ticks = lambda seconds: max(1, round(seconds / tick_seconds))
        eighth = ticks(0.125)
        eighth_count = Signal(range(eighth))
        phase = Signal(3)
        eighth_tick = Signal()      # one pulse every 1/8 s
        m.d.comb += eighth_tick.eq(tick & (eighth_count == eighth - 1))
        with m.If(eighth_tick):
            m.d.sync += [eighth_count.eq(0), phase.eq(phase + 1)]
        with m.Elif(tick):
            m.d.sync += eighth_count.eq(eighth_count + 1)
        heartbeat = phase[2]        # 1 Hz square wave
        flash = phase == 0          # 1/8 s flash every second
        blink = phase[0]            # 4 Hz

        status = core.status
        m.submodules.rejected = rejected = Stretcher(round(REJECT_SECONDS * 8))
        m.d.comb += [rejected.i.eq(status.frame_rejected), rejected.tick.eq(eighth_tick)]

        if self.board.family == "ice40":
            self._led(m, platform, "led_g", 0, status.busy | flash)
            self._led(m, platform, "led_r", 0,
                      core.accelerator_error | (rejected.o & blink))
        else:
            activity = ticks(ACTIVITY_SECONDS)
            m.submodules.rx_activity = rx_activity = Stretcher(activity)
            m.submodules.tx_activity = tx_activity = Stretcher(activity)
            m.d.comb += [rx_activity.i.eq(status.rx_byte), tx_activity.i.eq(status.tx_byte),
                         rx_activity.tick.eq(tick), tx_activity.tick.eq(tick)]
            leds = [heartbeat, core.accelerator_idle, rx_activity.o,
                    tx_activity.o, status.busy | status.executing, rejected.o,
                    core.accelerator_error, lock]
            for number, value in enumerate(leds):
                self._led(m, platform, "led", number, value)
        return m
