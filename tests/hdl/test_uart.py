# amaranth: UnusedElaboratable=no
"""8N1 UART receiver and transmitter in the Amaranth simulator.

The line-level models here (:func:`drive_line`, :func:`decode_line`) are independent of
the HDL (they only know 8N1 timing) and are reused by ``tests/hdl/test_link.py``.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from qforge.hdl.uart import UartReceiver, UartTransmitter
from tests.hdl.streams import receive, send


# ---- line models --------------------------------------------------------------------

def line_bits(value: int, *, stop: int = 1) -> list[int]:
    """The 10 line levels of one 8N1 byte: start 0, data LSB first, stop."""
    return [0] + [(value >> bit) & 1 for bit in range(8)] + [stop]


async def drive_line(ctx, pin, levels, bit_cycles):
    """Drive ``pin`` with ``levels``, each for ``bit_cycles`` cycles (a float: the
    fractional part accumulates, to model a transmitter with another clock)."""
    elapsed = 0.0
    for level in levels:
        elapsed += bit_cycles
        cycles = round(elapsed)
        elapsed -= cycles
        ctx.set(pin, level)
        await ctx.tick().repeat(cycles)
    ctx.set(pin, 1)


async def drive_bytes(ctx, pin, data, divisor, *, gap_bits=0):
    """Send ``data`` as 8N1 bytes on ``pin``, ``gap_bits`` idle bit times after each."""
    for value in data:
        await drive_line(ctx, pin, line_bits(value) + [1] * gap_bits, divisor)


async def decode_line(ctx, pin, divisor, on_byte, *, period, on_error=None):
    """Forever: decode 8N1 bytes from ``pin`` (a registered output: it changes right
    after clock edges of ``period`` seconds) by sampling it in the middle of each bit;
    call ``on_byte(value)`` per byte, ``on_error(value)`` for a low stop bit (or raise
    if there is no ``on_error``).

    Waits with plain ``await`` statements of edge and delay triggers, never with
    ``tick().repeat()`` (an async generator that cannot be closed if the simulation
    ends while it waits, as it does for a background testbench). Samples half a clock
    period after an edge, never at one.
    """
    while True:
        if ctx.get(pin):
            await ctx.negedge(pin)
        # Now just after the edge that started the start bit.
        await ctx.delay((divisor // 2 + 0.5) * period)
        assert ctx.get(pin) == 0, "start bit not low in its middle"
        value = 0
        for bit in range(8):
            await ctx.delay(divisor * period)
            value |= ctx.get(pin) << bit
        await ctx.delay(divisor * period)
        if ctx.get(pin):
            on_byte(value)
        elif on_error:
            on_error(value)
        else:
            raise AssertionError(f"stop bit low after byte {value:#04x}")


def _simulate(dut, *testbenches, background=(), clock=1e-6):
    """Background testbenches must wait with plain ``await`` statements (see
    :func:`decode_line`)."""
    sim = Simulator(dut)
    sim.add_clock(clock)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    sim.run()


# ---- tests --------------------------------------------------------------------------

class _ByteStream:
    """A byte stream port as :mod:`tests.hdl.streams` expects it (a payload with
    ``as_value()``, which a plain 8-bit signal lacks)."""

    class _Payload:
        def __init__(self, signal):
            self._signal = signal

        def as_value(self):
            return self._signal

    def __init__(self, port):
        self.valid, self.ready = port.valid, port.ready
        self.payload = self._Payload(port.payload)


class _Loopback(wiring.Component):
    """Transmitter ``tx`` wired to receiver ``rx``."""

    def __init__(self, divisor):
        self.transmitter = UartTransmitter(divisor)
        self.receiver = UartReceiver(divisor)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.transmitter = self.transmitter
        m.submodules.receiver = self.receiver
        m.d.comb += self.receiver.rx.eq(self.transmitter.tx)
        return m


@pytest.mark.parametrize("divisor", [4, 7, 10])
def test_loopback_random_bytes(divisor):
    """Random bytes through transmitter and receiver, random gaps on both streams."""
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(40)]
    dut = _Loopback(divisor)
    received, errors = [], []

    async def sender(ctx):
        await send(ctx, _ByteStream(dut.transmitter.data), data, stall=0.3,
                   rng=random.Random(1))

    async def receiver(ctx):
        received.extend(await receive(ctx, _ByteStream(dut.receiver.data), len(data),
                                      stall=0.3,
                                      rng=random.Random(2)))

    async def monitor(ctx):
        while True:
            _, _, framing, overrun = await ctx.tick().sample(dut.receiver.framing_error,
                                                             dut.receiver.overrun)
            if framing or overrun:
                errors.append((framing, overrun))

    _simulate(dut, sender, receiver, background=[monitor])
    assert received == data
    assert errors == []


@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_line_timing(divisor):
    """Back-to-back bytes: exactly 10 * divisor cycles each, the levels of 8N1, idle
    high before and after, ``busy`` exactly while a byte is on the line."""
    data = [0x00, 0xFF, 0x5A, 0x81]
    dut = UartTransmitter(divisor)
    trace = []

    async def testbench(ctx):
        ctx.set(dut.data.valid, 1)
        for value in data:
            ctx.set(dut.data.payload, value)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().repeat(10 * divisor + 5)

    async def monitor(ctx):
        while True:
            _, _, tx, busy = await ctx.tick().sample(dut.tx, dut.busy)
            trace.append((tx, busy))

    _simulate(dut, testbench, background=[monitor])
    tx = [level for level, _ in trace]
    start = tx.index(0)
    expected = [level for value in data for level in line_bits(value)
                for _ in range(divisor)]
    assert tx[:start] == [1] * start
    assert tx[start:start + len(expected)] == expected
    assert set(tx[start + len(expected):]) == {1}
    busy = [flag for _, flag in trace]
    assert busy[start:start + len(expected)] == [1] * len(expected)
    assert set(busy[:start]) == {0} and set(busy[start + len(expected):]) == {0}


def _receive_line(divisor, levels_then_bytes, *, bit_cycles=None, ready=True,
                  cycles_after=None):
    """Drive the receiver's line; collect bytes (``data`` always ready unless
    ``ready`` is False), framing-error and overrun pulses."""
    dut = UartReceiver(divisor)
    events = []

    async def testbench(ctx):
        ctx.set(dut.data.ready, ready)
        await ctx.tick().repeat(3)
        for item in levels_then_bytes:
            if isinstance(item, int):
                await drive_line(ctx, dut.rx, line_bits(item), bit_cycles or divisor)
            else:
                for level, cycles in item:
                    ctx.set(dut.rx, level)
                    await ctx.tick().repeat(cycles)
        await ctx.tick().repeat(cycles_after or 4 * divisor)

    async def monitor(ctx):
        signals = (dut.data.valid, dut.data.ready, dut.data.payload, dut.framing_error,
                   dut.overrun)
        while True:
            _, _, valid, ready_, payload, framing, overrun = \
                await ctx.tick().sample(*signals)
            if valid and ready_:
                events.append(("byte", payload))
            if framing:
                events.append(("framing_error",))
            if overrun:
                events.append(("overrun",))

    _simulate(dut, testbench, background=[monitor])
    return dut, events


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_glitch_shorter_than_half_a_bit_is_not_a_start_bit(divisor):
    glitch = (divisor - 1) // 2             # cycles, < divisor / 2
    idle = [(1, 3 * divisor)]
    _, events = _receive_line(divisor, [[(0, glitch)] + idle, 0x3C,
                                        [(0, glitch)] + idle, [(0, 1)] + idle, 0xC3])
    assert events == [("byte", 0x3C), ("byte", 0xC3)]


@pytest.mark.parametrize("divisor", [4, 8])
def test_bad_stop_bit_is_a_framing_error(divisor):
    """The byte is dropped with one framing_error pulse; a line held low (break) after
    it is still one error; the next good byte is received."""
    bad = [(level, divisor) for level in line_bits(0x55, stop=0)]
    held_low = [(level, divisor) for level in line_bits(0x00, stop=0)] + [(0, 30 * divisor)]
    _, events = _receive_line(divisor, [bad, [(1, divisor)], 0xA7, held_low,
                                        [(1, 2 * divisor)], 0x01])
    assert events == [("framing_error",), ("byte", 0xA7), ("framing_error",),
                      ("byte", 0x01)]


@pytest.mark.parametrize("rate_error", [-0.035, 0.035])
def test_receiver_tolerates_a_clock_mismatch(rate_error):
    """A transmitter 3.5 % slow or fast, bytes back to back."""
    divisor = 16
    data = [0x00, 0xFF, 0x55, 0xAA, 0x0F, 0xF0]
    _, events = _receive_line(divisor, data, bit_cycles=divisor * (1 + rate_error))
    assert events == [("byte", value) for value in data]


def test_overrun_keeps_the_offered_byte():
    """With ``data.ready`` low, a second byte is dropped (overrun pulse) and the first
    stays offered, unchanged."""
    divisor = 4
    dut = UartReceiver(divisor)
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.data.ready, 0)
        await drive_bytes(ctx, dut.rx, [0x12], divisor)
        await ctx.tick().repeat(divisor)
        assert ctx.get(dut.data.valid) and ctx.get(dut.data.payload) == 0x12
        overruns = 0
        for level in line_bits(0x34):
            ctx.set(dut.rx, level)
            for _ in range(divisor):
                await ctx.tick()
                overruns += ctx.get(dut.overrun)
        for _ in range(3 * divisor):
            await ctx.tick()
            overruns += ctx.get(dut.overrun)
        seen["overruns"] = overruns
        seen["kept"] = (ctx.get(dut.data.valid), ctx.get(dut.data.payload))
        ctx.set(dut.data.ready, 1)
        await ctx.tick()
        await ctx.tick()
        seen["after"] = ctx.get(dut.data.valid)

    _simulate(dut, testbench)
    assert seen == {"overruns": 1, "kept": (1, 0x12), "after": 0}


@pytest.mark.parametrize("divisor", [3, 0, -8, 4.0, True, "8"])
def test_divisor_out_of_range(divisor):
    for component in (UartReceiver, UartTransmitter):
        with pytest.raises(ValueError, match=r"divisor .*allowed an integer >= 4"):
            component(divisor)
