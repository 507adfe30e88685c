"""8N1 UART receiver and transmitter (one start bit, 8 data bits LSB first, one stop bit,
no parity), ``divisor`` clock cycles per bit.

Both ends are byte streams (``amaranth.lib.stream``, 8-bit payload). They know nothing
about frames: :class:`qforge.hdl.link.HostLink` builds the host protocol on top of them.

The components check their parameters in the constructor and raise ``ValueError``, as
Amaranth's own components do. Amaranth warns about an elaboratable that is created and
never elaborated (:class:`amaranth.hdl.UnusedElaboratable`), which a refused one never
is; the warning is Amaranth's to silence: it is off until the first elaboration and, per
file, with the linter comment ``# amaranth: UnusedElaboratable=no`` as the first line of
the file that builds components expected to be refused (the tests).

>>> check_divisor(3)
Traceback (most recent call last):
...
ValueError: divisor = 3: allowed an integer >= 4 (clock cycles per bit)

The divisor for a clock and a baud rate (within 2 %, at least 4 cycles per bit):

>>> uart_divisor(24e6, 3e6), uart_divisor(12e6, 115200)
(8, 104)
>>> uart_divisor(24e6, 7e6)
Traceback (most recent call last):
...
ValueError: baud_rate = 7e+06 at clock_frequency = 2.4e+07 Hz: ...
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "BAUD_TOLERANCE", "check_divisor", "uart_divisor", "UartReceiver",
           "UartTransmitter"]

#: Fewest clock cycles per bit. The receiver sees an asynchronous line with a one-cycle
#: uncertainty and samples ``divisor // 2`` cycles after the start bit's edge; with
#: fewer cycles per bit that uncertainty and a few percent of clock mismatch would move
#: the sampling point out of the bit.
MIN_DIVISOR = 4
#: Largest relative error of the actual baud rate (clock / divisor) that is accepted.
BAUD_TOLERANCE = 0.02


def check_divisor(divisor) -> int:
    """``divisor`` if it is an integer >= :data:`MIN_DIVISOR`, else ``ValueError``."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor = {divisor!r}: allowed an integer >= {MIN_DIVISOR} "
                         f"(clock cycles per bit)")
    return divisor


def uart_divisor(clock_frequency: float, baud_rate: float) -> int:
    """``round(clock_frequency / baud_rate)``, checked: at least :data:`MIN_DIVISOR` and
    the actual baud rate ``clock_frequency / divisor`` within :data:`BAUD_TOLERANCE` of
    ``baud_rate`` (else ``ValueError`` naming ``baud_rate``)."""
    divisor = round(clock_frequency / baud_rate) if baud_rate > 0 else 0
    fastest = clock_frequency / MIN_DIVISOR
    if divisor < MIN_DIVISOR or \
            abs(clock_frequency / divisor - baud_rate) > BAUD_TOLERANCE * baud_rate:
        raise ValueError(
            f"baud_rate = {baud_rate:g} at clock_frequency = {clock_frequency:g} Hz: "
            f"possible baud rates are clock_frequency / n for an integer n >= "
            f"{MIN_DIVISOR} (at most {fastest:g}), within {BAUD_TOLERANCE:.0%}")
    return divisor


class UartReceiver(wiring.Component):
    """Receive 8N1 bytes from the asynchronous pin ``rx``.

    Ports:

    * ``rx`` (in, 1 bit, idle high): the line. It is synchronized with a two-stage
      :class:`~amaranth.lib.cdc.FFSynchronizer` (reset value 1, so a line held in reset
      is not a start bit); its two cycles are included in the latency below.
    * ``data`` (out stream, 8 bits): one transfer per received byte. ``valid`` is high
      from the ``9 * divisor + divisor // 2 + 3``-th clock edge after the start bit's
      falling edge on ``rx`` (the middle of the stop bit, plus the synchronizer and the
      output register); the payload is held until taken.
    * ``framing_error`` (out, 1-cycle pulse): the stop bit was low. The byte is dropped
      and the receiver waits for the line to go high before it hunts for a start bit
      again (a line held low, a *break*, is one error, not a stream of zero bytes).
    * ``overrun`` (out, 1-cycle pulse): a byte was completed while the previous one was
      still offered and not taken (``data.valid & ~data.ready``). The **new byte is
      dropped**, the old one stays offered: overwriting it would change the payload of a
      stream transfer in progress, which the stream rules forbid.

    Reception: a low line starts a candidate start bit; ``divisor // 2`` cycles later
    the line is checked again and must still be low (a glitch shorter than half a bit is
    ignored). Each data bit and the stop bit are then sampled a whole ``divisor`` apart,
    i.e. in the middle of the bit. The receiver is ready for the next start bit from the
    middle of the stop bit, so it tolerates a transmitter a few percent faster or slower.
    """

    def __init__(self, divisor: int):
        self._divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        divisor = self._divisor
        m = Module()
        line = Signal(init=1)
        m.submodules.rx_synchronizer = FFSynchronizer(self.rx, line, init=1)

        countdown = Signal(range(divisor))      # cycles to the next sampling point
        bits_left = Signal(range(8))            # data bits still to sample, minus one
        shifter = Signal(8)                     # data bits, the first received at bit 0

        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.If(countdown != 0):
            m.d.sync += countdown.eq(countdown - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += countdown.eq(divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(countdown == 0):
                    with m.If(line):
                        m.next = "IDLE"             # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [countdown.eq(divisor - 1), bits_left.eq(7)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(countdown == 0):
                    m.d.sync += [shifter.eq(Cat(shifter[1:], line)),
                                 countdown.eq(divisor - 1),
                                 bits_left.eq(bits_left - 1)]
                    with m.If(bits_left == 0):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(countdown == 0):
                    with m.If(~line):
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
                    with m.Elif(self.data.valid & ~self.data.ready):
                        m.d.sync += self.overrun.eq(1)     # keep the offered byte
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shifter),
                                     self.data.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTransmitter(wiring.Component):
    """Send 8N1 bytes on ``tx``.

    Ports:

    * ``data`` (in stream, 8 bits): bytes to send. ``ready`` is high while the
      transmitter is idle and in the last cycle of a stop bit, so back-to-back bytes
      leave with no gap: exactly ``10 * divisor`` cycles per byte. A byte taken at clock
      edge ``t`` starts its start bit on ``tx`` right after ``t``.
    * ``tx`` (out, 1 bit): the line, straight from a flip-flop (no glitches), high when
      idle and after reset.
    * ``busy`` (out): a byte is being sent (start bit to the end of its stop bit).
    """

    def __init__(self, divisor: int):
        self._divisor = check_divisor(divisor)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        divisor = self._divisor
        m = Module()
        countdown = Signal(range(divisor))      # cycles left in the current bit, minus one
        bits_left = Signal(range(10))           # bits after the current one (data, stop)
        shifter = Signal(9)                     # the bits still to send, stop bit on top

        last_cycle = self.busy & (countdown == 0) & (bits_left == 0)
        m.d.comb += self.data.ready.eq(~self.busy | last_cycle)

        with m.If(self.busy):
            with m.If(countdown != 0):
                m.d.sync += countdown.eq(countdown - 1)
            with m.Elif(bits_left == 0):
                m.d.sync += self.busy.eq(0)
            with m.Else():
                m.d.sync += [self.tx.eq(shifter[0]), shifter.eq(shifter[1:]),
                             bits_left.eq(bits_left - 1), countdown.eq(divisor - 1)]
        # Placed last: a byte taken in a stop bit's last cycle starts right after it.
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [self.tx.eq(0), shifter.eq(Cat(self.data.payload, 1)),
                         bits_left.eq(9), countdown.eq(divisor - 1), self.busy.eq(1)]
        return m
