# amaranth: UnusedElaboratable=no
"""The host link's frame engine (:class:`qforge.hdl.link.HostLink`) in the Amaranth
simulator, driven like a host would: bytes on ``rx`` from a bit-level 8N1 model, bytes
from ``tx`` decoded bit by bit and split into frames by the protocol's own
:class:`~qforge.hdl.protocol.FrameParser`; frames encoded with
:func:`~qforge.hdl.protocol.encode_frame`.

Properties checked: good data frames come out on ``cmd``/``a_in``/``b_in`` as exactly
the beats sent (random beats, random backpressure, stream rules) and are ACKed with
their SEQ after the last beat was taken; STATUS is answered with the status; every NAK
reason is produced, in the protocol's check order, and **no beat of a rejected frame is
ever pushed**; duplicates are ACKed without executing; result beats come back as RESULT
frames with consecutive SEQs, also while requests are being answered. The board design
(:class:`~qforge.hdl.link.LinkedAccelerator`) converts to Verilog and runs a GEMM over
the link.
"""

import binascii
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from qforge.hdl.protocol import (DATA_KINDS, HEADER_BYTES, MAX_PAYLOAD, REQUEST_KINDS,
                                  STATUS_BYTES, SYNC, TIMEOUT_BYTE_TIMES, FrameParser, Kind,
                                  Nak, Status, beat_bytes, beat_width, beats_to_bytes,
                                  bytes_to_beats, config_fingerprint, crc16_update,
                                  encode_frame)
from qforge.hdl.crc import crc16_step
from qforge.hdl.link import HostLink, LinkedAccelerator, link_status_layout
from qforge.hdl.uart import uart_divisor
from qforge.sim.model.numerics import standard_modes
from qforge.sim.host.packing import GemmJob, ResultAssembler
from tests.configs import tiny
from tests.hdl.streams import send
from tests.hdl.test_uart import decode_line, drive_bytes

DIVISOR = 4
CLOCK_PERIOD = 1e-6
STREAM_OF = {Kind.COMMAND: "cmd", Kind.A_DATA: "a_in", Kind.B_DATA: "b_in"}


# ---- comparison helper (see the negative control) -------------------------------------

def beat_mismatches(expected: dict, received: dict) -> list[str]:
    """Differences between expected and received beats, per stream name: a missing,
    extra or different beat each gives a message (an empty list: identical)."""
    problems = []
    for name in sorted(set(expected) | set(received)):
        want, got = expected.get(name, []), received.get(name, [])
        for index in range(max(len(want), len(got))):
            if index >= len(got):
                problems.append(f"{name} beat {index}: expected {want[index]:#x}, missing")
            elif index >= len(want):
                problems.append(f"{name} beat {index}: unexpected {got[index]:#x}")
            elif want[index] != got[index]:
                problems.append(f"{name} beat {index}: expected {want[index]:#x}, got "
                                f"{got[index]:#x} (bits {want[index] ^ got[index]:#x} "
                                f"differ)")
    return problems


# ---- bench --------------------------------------------------------------------------

class _Harness(wiring.Component):
    """The link under test plus test-only counters (cheaper than sampling the status
    every cycle from Python): cycles, ``status`` pulses, and sticky flags."""

    def __init__(self, link: HostLink):
        self.link = link
        super().__init__({
            "cycle": Out(32), "rx_bytes": Out(16), "tx_bytes": Out(16),
            "executing_cycles": Out(32),
            "executing_while_not_busy": Out(1), "ever_rejected": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        status = self.link.status
        m.d.sync += [self.cycle.eq(self.cycle + 1),
                     self.rx_bytes.eq(self.rx_bytes + status.rx_byte),
                     self.tx_bytes.eq(self.tx_bytes + status.tx_byte),
                     self.executing_cycles.eq(self.executing_cycles + status.executing)]
        with m.If(status.executing & ~status.busy):
            m.d.sync += self.executing_while_not_busy.eq(1)
        with m.If(status.frame_rejected):
            m.d.sync += self.ever_rejected.eq(1)
        return m


@dataclass
class LinkBench:
    """A :class:`HostLink` with a host model around it. ``script(ctx, bench)`` is the
    host; sinks with random ``ready`` (``sink_stall``) take every beat pushed and check
    the stream rules; the ``results`` (ints) are fed on ``result`` with random ``valid``
    gaps (:func:`tests.hdl.streams.send`)."""

    config: object = field(default_factory=tiny)
    divisor: int = DIVISOR
    max_payload: int = MAX_PAYLOAD
    sink_stall: float = 0.5
    seed: int = 0
    dut: HostLink = None
    harness: _Harness = None
    parser: FrameParser = field(default_factory=FrameParser)
    responses: list = field(default_factory=list)   # (end cycle, Frame) not RESULT
    results: list = field(default_factory=list)     # RESULT frames
    kinds: list = field(default_factory=list)       # KIND of every frame, in order
    beats: dict = field(default_factory=lambda: {name: [] for name in STREAM_OF.values()})
    tx_bytes: int = 0
    #: A waiting beat may be withdrawn (by NAK STALLED): recorded in ``withdrawn``.
    stalls_allowed: bool = False
    withdrawn: list = field(default_factory=list)

    def __post_init__(self):
        self.dut = HostLink(self.config, divisor=self.divisor, max_payload=self.max_payload)
        self.harness = _Harness(self.dut)

    @property
    def timeout_cycles(self) -> int:
        return TIMEOUT_BYTE_TIMES * 10 * self.divisor

    def now(self, ctx) -> int:
        return ctx.get(self.harness.cycle)

    def run(self, script, *, results=(), result_stall=0.6, max_cycles=200_000, watchers=()):
        """Simulate until ``script`` returns; ``watchers``: more background testbenches
        (``async def watcher(ctx)``)."""
        dut = self.dut
        ports = {name: getattr(dut.accelerator, name) for name in STREAM_OF.values()}

        async def host(ctx):
            ctx.set(dut.accelerator.idle, 1)
            await ctx.tick().repeat(4)
            await script(ctx, self)

        async def feed_results(ctx):
            await send(ctx, dut.accelerator.result, list(results), stall=result_stall,
                       rng=random.Random(self.seed + 1))

        async def decode_tx(ctx):
            def on_byte(value):
                self.tx_bytes += 1
                for frame in self.parser.feed(bytes([value])):
                    self.kinds.append(frame.kind_name)
                    if frame.kind == Kind.RESULT:
                        self.results.append(frame)
                    else:
                        self.responses.append((self.now(ctx), frame))
            await decode_line(ctx, dut.tx, self.divisor, on_byte, period=CLOCK_PERIOD)

        async def sinks(ctx):
            rng = random.Random(self.seed + 2)
            signals = [signal for port in ports.values()
                       for signal in (port.valid, port.ready, port.payload.as_value())]
            valids = [port.valid for port in ports.values()]
            waiting = {}          # stream -> payload offered and not taken

            def record(values):
                for index, name in enumerate(ports):
                    valid, ready, payload = values[3 * index:3 * index + 3]
                    if name in waiting:      # stream rules: hold valid and payload
                        if not valid and self.stalls_allowed:
                            # NAK STALLED withdraws the beat (HostLink docstring).
                            self.withdrawn.append((name, waiting[name]))
                        else:
                            assert valid and payload == waiting[name], \
                                f"{name}: beat withdrawn or changed while waiting"
                    waiting.pop(name, None)
                    if valid and ready:
                        self.beats[name].append(payload)
                    elif valid:
                        waiting[name] = payload
                return any(values[0::3])

            while True:
                # Nothing offered: sleep (plain awaits only, see decode_line) until a
                # valid rises, then a random ready every cycle while beats keep coming.
                if not any(ctx.get(valid) for valid in valids):
                    await ctx.changed(*valids)
                busy = True
                while busy or waiting:
                    for port in ports.values():
                        ctx.set(port.ready, rng.random() >= self.sink_stall)
                    _, _, *values = await ctx.tick().sample(*signals)
                    busy = record(values)
                assert self.now(ctx) < max_cycles, "simulation ran away"

        sim = Simulator(self.harness)
        sim.add_clock(CLOCK_PERIOD)
        sim.add_testbench(host)
        if results:
            sim.add_testbench(feed_results)
        sim.add_testbench(decode_tx, background=True)
        sim.add_testbench(sinks, background=True)
        for watcher in watchers:
            sim.add_testbench(watcher, background=True)
        sim.run()
        assert self.parser.rejected == 0, f"bad frame from the board: " \
                                          f"{self.parser.last_error}"

    # -- host actions, for scripts --

    async def send(self, ctx, data: bytes):
        await drive_bytes(ctx, self.dut.rx, data, self.divisor)

    async def wait_until(self, ctx, condition, what, *, limit=None):
        """Poll ``condition()`` once a byte time, for at most ``limit`` cycles."""
        limit = limit or 4 * self.timeout_cycles
        start = self.now(ctx)
        while not condition():
            assert self.now(ctx) - start < limit, f"waited {limit} cycles for {what}"
            await ctx.tick().repeat(10 * self.divisor)

    async def request(self, ctx, data: bytes, *, limit=None):
        """Send ``data`` and return the response (ACK, NAK, STATUS_REPLY) it gets."""
        count = len(self.responses)
        await self.send(ctx, data)
        await self.wait_until(ctx, lambda: len(self.responses) > count, "a response",
                              limit=limit)
        assert len(self.responses) == count + 1
        return self.responses[-1][1]

    async def quiet(self, ctx, cycles):
        """Wait, and return the responses that arrived meanwhile."""
        count = len(self.responses)
        await ctx.tick().repeat(cycles)
        return [frame for _, frame in self.responses[count:]]


def _random_beats(rng, config, kind, count):
    return [rng.getrandbits(beat_width(config, kind)) for _ in range(count)]


def _status(frame) -> Status:
    payload = frame.payload[1:] if frame.kind == Kind.NAK else frame.payload
    return Status.decode(payload)


def _check_nak(frame, reason, seq):
    assert (frame.kind_name, frame.seq, frame.payload[:1]) == \
        ("NAK", seq, bytes([reason])), f"expected NAK {reason.name} seq {seq}, got {frame}"
    assert len(frame.payload) == 1 + STATUS_BYTES


# ---- CRC ----------------------------------------------------------------------------

def test_crc16_step_matches_the_reference():
    """The combinational CRC step against ``crc16_update`` (random values) and a whole
    string against ``binascii.crc_hqx`` (an independent CRC-16/CCITT-FALSE)."""
    m = Module()
    crc, byte = Signal(16), Signal(8)
    out = crc16_step(m, crc, byte)
    rng = random.Random(5)
    text = bytes(rng.randrange(256) for _ in range(64))

    async def testbench(ctx):
        for _ in range(300):
            value, data = rng.randrange(1 << 16), rng.randrange(256)
            ctx.set(crc, value)
            ctx.set(byte, data)
            assert ctx.get(out) == crc16_update(value, data)
        running = 0xFFFF
        for data in text:
            ctx.set(crc, running)
            ctx.set(byte, data)
            running = ctx.get(out)
        assert running == binascii.crc_hqx(text, 0xFFFF)

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


# ---- good frames --------------------------------------------------------------------

def test_data_frames_push_exactly_their_beats_and_are_acked():
    """Random COMMAND/A_DATA/B_DATA frames (1-4 random beats) under random backpressure:
    every beat arrives unchanged and in order on its stream, the ACK carries the
    frame's SEQ and comes after its last beat; status pulses count every byte."""
    bench = LinkBench(seed=1)
    config = bench.config
    rng = random.Random(11)
    expected = {name: [] for name in STREAM_OF.values()}
    sent_bytes = []

    async def script(ctx, bench):
        for seq in range(9):
            kind = DATA_KINDS[seq % 3] if seq < 3 else rng.choice(DATA_KINDS)
            beats = _random_beats(rng, config, kind, rng.randint(1, 4))
            expected[STREAM_OF[kind]] += beats
            frame = encode_frame(kind, seq, beats_to_bytes(config, kind, beats))
            sent_bytes.append(len(frame))
            response = await bench.request(ctx, frame)
            assert (response.kind_name, response.seq) == ("ACK", seq)
            status = _status(response)
            assert (status.last_seq, status.rejected_frames, status.frame_rejected,
                    status.idle, status.fingerprint) == \
                (seq, 0, False, True, config_fingerprint(config))
            # The ACK is sent when the last beat has been accepted.
            assert beat_mismatches(expected, bench.beats) == []
        await ctx.tick().repeat(4)
        harness = bench.harness
        assert (ctx.get(harness.rx_bytes), ctx.get(harness.tx_bytes)) == \
            (sum(sent_bytes), bench.tx_bytes)
        assert ctx.get(harness.executing_cycles) > 0
        assert not ctx.get(harness.executing_while_not_busy)
        assert not ctx.get(harness.ever_rejected)

    bench.run(script)
    assert beat_mismatches(expected, bench.beats) == []


def test_status_request_reports_the_status_and_fingerprint():
    bench = LinkBench()

    async def script(ctx, bench):
        reply = await bench.request(ctx, encode_frame(Kind.STATUS, 7))
        assert (reply.kind_name, reply.seq) == ("STATUS_REPLY", 7)
        assert _status(reply) == Status(idle=True, accelerator_error=False,
                                        frame_rejected=False, last_seq=0xFF,
                                        rejected_frames=0,
                                        fingerprint=config_fingerprint(bench.config))
        ctx.set(bench.dut.accelerator.idle, 0)
        ctx.set(bench.dut.accelerator.error, 1)
        reply = await bench.request(ctx, encode_frame(Kind.STATUS, 200))
        assert reply.seq == 200
        status = _status(reply)
        assert (status.idle, status.accelerator_error) == (False, True)

    bench.run(script)
    assert all(not beats for beats in bench.beats.values())


def test_empty_data_frame_executes_zero_beats():
    """An empty payload is a whole number (zero) of beats: executed, ACKed, SEQ
    advanced, nothing pushed."""
    bench = LinkBench()

    async def script(ctx, bench):
        reply = await bench.request(ctx, encode_frame(Kind.A_DATA, 0))
        assert (reply.kind_name, reply.seq, _status(reply).last_seq) == ("ACK", 0, 0)

    bench.run(script)
    assert all(not beats for beats in bench.beats.values())


def test_duplicate_seq_is_acked_and_not_executed():
    bench = LinkBench(seed=3)
    config = bench.config
    rng = random.Random(3)
    first = _random_beats(rng, config, Kind.B_DATA, 3)
    second = _random_beats(rng, config, Kind.B_DATA, 2)

    async def script(ctx, bench):
        frame = encode_frame(Kind.B_DATA, 0, beats_to_bytes(config, Kind.B_DATA, first))
        for _ in range(3):
            reply = await bench.request(ctx, frame)
            assert (reply.kind_name, reply.seq, _status(reply).last_seq) == ("ACK", 0, 0)
            assert bench.beats["b_in"] == first
        reply = await bench.request(ctx, encode_frame(
            Kind.B_DATA, 1, beats_to_bytes(config, Kind.B_DATA, second)))
        assert (reply.kind_name, reply.seq) == ("ACK", 1)

    bench.run(script)
    assert beat_mismatches({"b_in": first + second}, bench.beats) == []


# ---- rejected frames ----------------------------------------------------------------

def _frame_with_crc(kind, seq, payload, *, crc_error=False):
    """Like encode_frame, for any KIND and LENGTH (the CRC from binascii.crc_hqx)."""
    body = bytes([kind, seq, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload)
    crc = binascii.crc_hqx(body, 0xFFFF) ^ (0x0100 if crc_error else 0)
    return bytes([SYNC]) + body + crc.to_bytes(2, "little")


def test_every_nak_reason_and_nothing_executed():
    """Each reason, the protocol's check order (CRC before KIND before LENGTH before
    SEQ), the status after each NAK (rejected count, flags), and no beat pushed by any
    of them; afterwards a good frame still works."""
    bench = LinkBench(seed=4)
    config = bench.config
    rng = random.Random(4)
    # 8 bytes: 4 A beats of 2 bytes (R = 2 words of P = 1 8-bit operand), so that 5 and 3
    # bytes are partial beats.
    assert beat_bytes(config, Kind.A_DATA) == 2
    a_payload = beats_to_bytes(config, Kind.A_DATA, _random_beats(rng, config,
                                                                   Kind.A_DATA, 4))
    command_bytes = beat_bytes(config, Kind.COMMAND)
    good = encode_frame(Kind.A_DATA, 0, a_payload)
    corrupted = bytearray(good)
    corrupted[HEADER_BYTES + 3] ^= 0x10
    too_long = MAX_PAYLOAD + 1
    cases = [
        ("CRC in payload", bytes(corrupted), Nak.CRC, 0),
        ("CRC field", _frame_with_crc(Kind.A_DATA, 0, a_payload, crc_error=True), Nak.CRC,
         0),
        ("KIND unknown", _frame_with_crc(0x07, 5, a_payload), Nak.KIND, 5),
        ("KIND response", _frame_with_crc(Kind.ACK, 6, b""), Nak.KIND, 6),
        ("CRC before KIND", _frame_with_crc(0x00, 8, a_payload, crc_error=True), Nak.CRC,
         8),
        ("LENGTH too long", bytes([SYNC, Kind.A_DATA, 9, too_long & 0xFF, too_long >> 8]),
         Nak.LENGTH, 9),
        ("LENGTH 0xFFFF", bytes([SYNC, Kind.COMMAND, 10, 0xFF, 0xFF]), Nak.LENGTH, 10),
        ("LENGTH partial beat", _frame_with_crc(Kind.A_DATA, 0, a_payload[:5]),
         Nak.LENGTH, 0),
        ("LENGTH partial command", _frame_with_crc(Kind.COMMAND, 0,
                                                   bytes(command_bytes + 1)),
         Nak.LENGTH, 0),
        ("LENGTH status payload", _frame_with_crc(Kind.STATUS, 3, b"\x00"), Nak.LENGTH, 3),
        ("CRC before LENGTH", _frame_with_crc(Kind.A_DATA, 0, a_payload[:5],
                                              crc_error=True), Nak.CRC, 0),
        ("LENGTH before SEQ", _frame_with_crc(Kind.A_DATA, 40, a_payload[:3]), Nak.LENGTH,
         40),
        ("SEQUENCE ahead", encode_frame(Kind.A_DATA, 1, a_payload), Nak.SEQUENCE, 1),
        ("SEQUENCE behind", encode_frame(Kind.A_DATA, 0xFE, a_payload), Nak.SEQUENCE, 0xFE),
        ("TRUNCATED payload", good[:HEADER_BYTES + 3], Nak.TRUNCATED, 0),
        ("TRUNCATED crc", good[:-1], Nak.TRUNCATED, 0),
        ("TRUNCATED before SEQ", bytes([SYNC, Kind.B_DATA]), Nak.TRUNCATED, 0),
        ("TRUNCATED after SEQ", bytes([SYNC, Kind.B_DATA, 77]), Nak.TRUNCATED, 77),
    ]

    async def script(ctx, bench):
        for count, (name, frame, reason, seq) in enumerate(cases, start=1):
            responses = len(bench.responses)
            await bench.send(ctx, frame)
            sent_at = bench.now(ctx)
            await bench.wait_until(ctx, lambda: len(bench.responses) > responses, name)
            end, reply = bench.responses[-1]
            _check_nak(reply, reason, seq)
            status = _status(reply)
            assert (status.last_seq, status.rejected_frames, status.frame_rejected) == \
                (0xFF, count, True), name
            if reason == Nak.TRUNCATED:
                # No byte for the timeout, then the NAK (13 bytes of 10 bits).
                reply_cycles = (HEADER_BYTES + 1 + STATUS_BYTES + 2) * 10 * DIVISOR
                assert bench.timeout_cycles <= end - sent_at <= \
                    bench.timeout_cycles + reply_cycles + 20, name
            assert all(not beats for beats in bench.beats.values()), name
            assert ctx.get(bench.dut.status.frame_rejected), f"{name}: status"
        # The link still works, and STATUS_REPLY clears the "rejected since" flag.
        reply = await bench.request(ctx, good)
        assert (reply.kind_name, reply.seq) == ("ACK", 0)
        await ctx.tick().repeat(2)
        assert not ctx.get(bench.dut.status.frame_rejected), "status after a good frame"
        for flag in (True, False):
            reply = await bench.request(ctx, encode_frame(Kind.STATUS, 1))
            assert (_status(reply).frame_rejected, _status(reply).rejected_frames) == \
                (flag, len(cases))

    bench.run(script)
    assert beat_mismatches({"a_in": bytes_to_beats(config, Kind.A_DATA, a_payload)},
                           bench.beats) == []


def _expected_reply_to_flip(frame: bytes, flipped: bytes):
    """What a receiver following hdl/protocol.py answers to ``flipped``, a copy of
    ``frame`` (a good data frame, no other SYNC in it) with one bit flipped after the
    SYNC: (reason, seq). A LENGTH beyond MAX_PAYLOAD is refused with the header; a
    longer one that fits waits for bytes that never come: TRUNCATED; anything else is a
    whole frame with a wrong CRC, and the CRC is checked first."""
    seq = flipped[2]
    length = flipped[3] | (flipped[4] << 8)
    original = frame[3] | (frame[4] << 8)
    if length > MAX_PAYLOAD:
        return Nak.LENGTH, seq
    if length > original:
        return Nak.TRUNCATED, seq
    return Nak.CRC, seq


def test_a_flipped_bit_anywhere_is_rejected():
    """One random bit flipped in each byte after SYNC (header, payload, CRC) of a good
    frame: never ACKed, never executed, answered as the protocol predicts (NAK CRC
    unless LENGTH changed), also where the flip makes KIND a response kind."""
    bench = LinkBench(seed=6)
    config = bench.config
    rng = random.Random(6)
    while True:      # bytes other than the SYNC never look like one (predictable hunt)
        beats = _random_beats(rng, config, Kind.COMMAND, 1)
        frame = encode_frame(Kind.COMMAND, 0, beats_to_bytes(config, Kind.COMMAND, beats))
        if all(byte ^ (1 << bit) != SYNC for byte in frame[1:] for bit in range(-1, 8)
               if bit >= 0) and SYNC not in frame[1:]:
            break
    # KIND: bit 7, which makes COMMAND (0x01) the response kind ACK (0x81).
    flips = [(1, 7)] + [(position, rng.randrange(8)) for position in range(2, len(frame))]
    assert frame[1] ^ 0x80 not in REQUEST_KINDS

    async def script(ctx, bench):
        for position, bit in flips:
            flipped = bytearray(frame)
            flipped[position] ^= 1 << bit
            reason, seq = _expected_reply_to_flip(frame, bytes(flipped))
            reply = await bench.request(ctx, bytes(flipped))
            _check_nak(reply, reason, seq)
            # Whatever of the frame followed a LENGTH NAK is hunted through: silence.
            assert await bench.quiet(ctx, 40 * DIVISOR) == []
        assert all(not beats for beats in bench.beats.values())
        reply = await bench.request(ctx, frame)
        assert (reply.kind_name, reply.seq) == ("ACK", 0)

    bench.run(script)
    assert beat_mismatches({"cmd": beats}, bench.beats) == []


# ---- results ------------------------------------------------------------------------

def test_result_beats_come_back_as_frames():
    """Random result beats with random valid gaps: RESULT frames with SEQ 0, 1, ... and
    exactly the beat's bytes."""
    bench = LinkBench(seed=7)
    config = bench.config
    rng = random.Random(7)
    results = _random_beats(rng, config, Kind.RESULT, 12)

    async def script(ctx, bench):
        await bench.wait_until(ctx, lambda: len(bench.results) == len(results),
                               "the result frames", limit=40_000)

    bench.run(script, results=results)
    assert [frame.seq for frame in bench.results] == list(range(len(results)))
    assert [len(frame.payload) for frame in bench.results] == \
        [beat_bytes(config, Kind.RESULT)] * len(results)
    received = [beat for frame in bench.results
                for beat in bytes_to_beats(config, Kind.RESULT, frame.payload)]
    assert beat_mismatches({"result": results}, {"result": received}) == []
    assert bench.responses == []


def test_results_and_acks_interleaved():
    """Result frames keep flowing while requests are answered; both stay intact."""
    bench = LinkBench(seed=8, sink_stall=0.3)
    config = bench.config
    rng = random.Random(8)
    results = _random_beats(rng, config, Kind.RESULT, 10)
    expected = {name: [] for name in STREAM_OF.values()}

    async def script(ctx, bench):
        for seq in range(6):
            if seq % 3 == 2:
                reply = await bench.request(ctx, encode_frame(Kind.STATUS, seq))
                assert (reply.kind_name, reply.seq) == ("STATUS_REPLY", seq)
                continue
            kind = rng.choice(DATA_KINDS)
            beats = _random_beats(rng, config, kind, rng.randint(1, 3))
            expected[STREAM_OF[kind]] += beats
            seq = seq - seq // 3           # 0, 1, 2, 3 for the data frames
            reply = await bench.request(ctx, encode_frame(
                kind, seq, beats_to_bytes(config, kind, beats)))
            assert (reply.kind_name, reply.seq) == ("ACK", seq)
        await bench.wait_until(ctx, lambda: len(bench.results) == len(results),
                               "the result frames", limit=40_000)

    bench.run(script, results=results, result_stall=0.9)
    # Really interleaved: responses between result frames.
    first_response = min(bench.kinds.index(kind) for kind in ("ACK", "STATUS_REPLY"))
    assert "RESULT" in bench.kinds[:first_response] and \
        "RESULT" in bench.kinds[first_response:], bench.kinds
    assert [frame.seq for frame in bench.results] == list(range(len(results)))
    received = [bytes_to_beats(config, Kind.RESULT, frame.payload)[0]
                for frame in bench.results]
    assert beat_mismatches({"result": results} | expected,
                           {"result": received} | bench.beats) == []


# ---- negative control ---------------------------------------------------------------

def test_negative_control_a_flipped_expected_bit_is_reported():
    """The comparison the tests rely on does fail: the beats of a real run compared
    with an expected list that differs in one bit, lacks a beat or has one more."""
    bench = LinkBench(seed=9)
    config = bench.config
    beats = _random_beats(random.Random(9), config, Kind.A_DATA, 3)

    async def script(ctx, bench):
        reply = await bench.request(ctx, encode_frame(
            Kind.A_DATA, 0, beats_to_bytes(config, Kind.A_DATA, beats)))
        assert reply.kind_name == "ACK"

    bench.run(script)
    assert beat_mismatches({"a_in": beats}, bench.beats) == []
    wrong = list(beats)
    wrong[1] ^= 1 << 17
    problems = beat_mismatches({"a_in": wrong}, bench.beats)
    assert len(problems) == 1 and "a_in beat 1" in problems[0] and "0x20000" in problems[0]
    assert beat_mismatches({"a_in": beats[:2]}, bench.beats) == \
        [f"a_in beat 2: unexpected {beats[2]:#x}"]
    assert len(beat_mismatches({"a_in": beats + [0]}, bench.beats)) == 1
    assert len(beat_mismatches({"a_in": beats, "cmd": [1]}, bench.beats)) == 1


# ---- parameters and the board design ------------------------------------------------

def test_parameter_checks():
    config = tiny()
    with pytest.raises(ValueError, match=r"divisor = 2: allowed an integer >= 4"):
        HostLink(config, divisor=2)
    smallest = beat_bytes(config, Kind.COMMAND)
    for bad in (smallest - 1, MAX_PAYLOAD + 1):
        with pytest.raises(ValueError, match=rf"max_payload = {bad}: allowed {smallest} "):
            HostLink(config, divisor=8, max_payload=bad)
    for clock, baud in ((24e6, 7e6), (24e6, 1e7), (12e6, 0.0), (50e6, 1e6 * 50 / 7.5)):
        with pytest.raises(ValueError, match=r"baud_rate = .*at most"):
            LinkedAccelerator(config, clock_frequency=clock, baud_rate=baud)
    assert uart_divisor(12e6, 115200) == 104


def test_short_buffer_rejects_longer_frames():
    """``max_payload`` smaller than the protocol's: LENGTH beyond it is NAK LENGTH."""
    bench = LinkBench(max_payload=16)
    config = bench.config
    # A beats of 2 bytes (R = 2 words of P = 1 8-bit operand): 9 beats are 18 bytes, one
    # beat beyond the 16; 8 beats fill them.
    assert beat_bytes(config, Kind.A_DATA) == 2
    beats = _random_beats(random.Random(10), config, Kind.A_DATA, 9)

    async def script(ctx, bench):
        reply = await bench.request(ctx, encode_frame(
            Kind.A_DATA, 0, beats_to_bytes(config, Kind.A_DATA, beats)))
        _check_nak(reply, Nak.LENGTH, 0)
        await bench.quiet(ctx, 20 * 10 * DIVISOR)
        reply = await bench.request(ctx, encode_frame(
            Kind.A_DATA, 0, beats_to_bytes(config, Kind.A_DATA, beats[:8])))
        assert reply.kind_name == "ACK"

    bench.run(script)
    assert bench.beats["a_in"] == beats[:8]


@pytest.mark.verilog
def test_linked_accelerator_converts_to_verilog():
    design = LinkedAccelerator(tiny(), clock_frequency=24e6, baud_rate=3e6)
    assert design.divisor == 8
    text = verilog.convert(design, name="qforge_board")
    assert "module qforge_board" in text
    for port in ("input rx", "output tx", "output accelerator_idle",
                 "output accelerator_error"):
        assert port in text
    assert f"[{link_status_layout.size - 1}:0] status" in text


def test_linked_accelerator_runs_a_gemm_over_the_link():
    """The board design end to end (accelerator included, 24 MHz, 3 Mbaud): COMMAND,
    A_DATA and B_DATA frames, the RESULT frames give the golden model's matrix, and a
    STATUS reply shows the accelerator idle again with last_seq 2."""
    config = tiny()
    design = LinkedAccelerator(config, clock_frequency=24e6, baud_rate=3e6)
    divisor, period = design.divisor, 1 / 24e6
    rng = np.random.default_rng(0)
    a, b = rng.integers(-128, 128, (2, 4)), rng.integers(-128, 128, (4, 2))
    job = GemmJob.build(config, a, b, standard_modes(config)["exact"])
    requests = [(Kind.COMMAND, [job.command]), (Kind.A_DATA, job.a_beats),
                (Kind.B_DATA, job.b_beats)]
    parser, frames = FrameParser(), []

    async def host(ctx):
        async def exchange(frame, done):
            await drive_bytes(ctx, design.rx, frame, divisor)
            for _ in range(2000):
                if done():
                    return
                await ctx.tick().repeat(10 * divisor)
            raise AssertionError(f"no answer to {frame.hex(' ')}: got {frames}")

        for seq, (kind, beats) in enumerate(requests):
            count = len(frames)
            await exchange(encode_frame(kind, seq, beats_to_bytes(config, kind, beats)),
                           lambda: any(f.kind == Kind.ACK for f in frames[count:]))
        await exchange(b"", lambda: sum(f.kind == Kind.RESULT for f in frames)
                       == job.result_beats)           # nothing to send: wait
        count = len(frames)
        await exchange(encode_frame(Kind.STATUS, 9), lambda: len(frames) > count)

    async def decode_tx(ctx):
        await decode_line(ctx, design.tx, divisor,
                          lambda value: frames.extend(parser.feed(bytes([value]))),
                          period=period)

    sim = Simulator(design)
    sim.add_clock(period)
    sim.add_testbench(host)
    sim.add_testbench(decode_tx, background=True)
    sim.run()
    assert [(f.kind_name, f.seq) for f in frames if f.kind != Kind.RESULT] == \
        [("ACK", 0), ("ACK", 1), ("ACK", 2), ("STATUS_REPLY", 9)]
    assembler = ResultAssembler(config, 2, 2)
    results = [f for f in frames if f.kind == Kind.RESULT]
    assert [f.seq for f in results] == list(range(job.result_beats))
    for frame in results:
        assembler.add(bytes_to_beats(config, Kind.RESULT, frame.payload)[0])
    assert np.array_equal(assembler.matrix(), job.expected)
    status = Status.decode(frames[-1].payload)
    assert (status.idle, status.accelerator_error, status.last_seq) == (True, False, 2)
