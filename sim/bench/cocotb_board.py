"""Board-level cocotb benches: the accelerator behind its UART host link
(:class:`qforge.hdl.link.LinkedAccelerator`, the whole design of the FPGA board tops
except pins, PLL and LEDs), driven by the real host driver
(:class:`qforge.fpga.host.Board`) through a simulated serial port.

Run by :func:`qforge.sim.bench.rtl.run_board_tests` on a design built with ``link``. The host
driver is ordinary blocking Python; it runs in a cocotb bridge thread
(:func:`cocotb.task.bridge`) and its transport, :class:`SimulatedSerial`, turns each
``write`` into start, data and stop bits on the ``rx`` pin and each ``read`` into
waiting for bytes decoded from the ``tx`` pin (:func:`cocotb.task.resume`), so timeouts are
measured in simulated time. Settings come from ``QFORGE_BOARD_SETTINGS`` (JSON); each
test writes a JSON report to ``QFORGE_REPORT``.

Tests:

* :func:`gemm_through_link`: random GEMMs in every standard precision mode (and with
  output-stage settings) through ``Board.gemm``, each compared with the model named by
  ``settings["model"]`` (``golden``; a wrong model for the negative control, where the
  test passes only if a mismatch is found).
* :func:`corrupted_frames`: corrupted, truncated, mis-sized, unknown and out-of-sequence
  request frames are each answered with the right NAK and never executed (the
  accelerator stays idle and ``last_seq`` does not move), a retransmitted frame is
  acknowledged without being executed twice, and a GEMM afterwards is bit-exact.
* :func:`dead_host`: a host killed at chosen steps of a GEMM (``settings["kills"]``:
  after its COMMAND, in the middle of its A_DATA frame, after every operand frame
  before the results are read, ...); each time a new host connects (aborting what the
  dead one left), is answered and runs a bit-exact GEMM; then operand beats no command
  asked for are answered NAK STALLED and the board recovers the same way.
* :func:`random_frames`: rounds of random frame sequences (random kinds, lengths, SEQs,
  garbage, corrupted and truncated frames, real GEMMs cut anywhere); after each, once
  the line has been quiet, STATUS is answered at the first attempt; at the end a new
  host's GEMM is bit-exact.

About 520 lines: one bench, the board-level tests sharing the simulated serial port and
its settings; each test is one function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from qforge.fpga.host import Board, HostError
from qforge.hdl.protocol import (REQUEST_KINDS, STALL_TIMEOUT_BYTE_TIMES, TIMEOUT_BYTE_TIMES,
                                  Frame, FrameParser, Kind, Nak, beat_bytes, encode_frame)
from qforge.sim.model.spec import from_dict
from qforge.sim.model.numerics import standard_modes
from qforge.sim.host.packing import GemmJob
from qforge.sim.model.quantize import OutputParameters, Rounding
from qforge.sim.bench.scenarios import MODELS
from qforge.sim.bench.stimulus import operand_range, random_operands, random_shape

#: Simulated clock period (ns) of the benches; the link's clock_frequency comes from the
#: manifest and only sets the UART divisor.
CLOCK_PERIOD_NS = 10


def _load():
    manifest = json.loads(Path(os.environ["QFORGE_MANIFEST"]).read_text())
    config = from_dict(manifest["config"], source="manifest")
    link = manifest["link"]
    divisor = round(link["clock_frequency"] / link["baud_rate"])
    settings = json.loads(os.environ.get("QFORGE_BOARD_SETTINGS", "{}"))
    return config, divisor, settings


def _write_report(report: dict) -> None:
    Path(os.environ["QFORGE_REPORT"]).write_text(json.dumps(report, indent=1, default=str))


class SimulatedSerial:
    """A :class:`qforge.fpga.host.Transport` whose far end is the design's UART pins.

    ``write`` drives 8N1 frames onto ``rx`` at ``divisor`` clock cycles per bit;
    :meth:`monitor` (a background task) decodes ``tx`` into :attr:`received` (sampling
    each bit in its middle; a byte with a bad stop bit is counted in
    :attr:`framing_errors`); ``read`` waits in simulated time. Only callable from a
    bridge thread (they block on the simulator).
    """

    def __init__(self, dut, divisor: int):
        self._dut = dut
        self._divisor = divisor
        self.received = bytearray()
        self.framing_errors = 0
        self.bytes_sent = 0
        dut.rx.value = 1

    async def monitor(self):
        clock, tx = self._dut.clk, self._dut.tx
        while True:
            await FallingEdge(tx)
            await ClockCycles(clock, self._divisor // 2)
            if int(tx.value) != 0:
                continue            # a glitch, not a start bit
            byte = 0
            for bit in range(8):
                await ClockCycles(clock, self._divisor)
                byte |= int(tx.value) << bit
            await ClockCycles(clock, self._divisor)
            if int(tx.value) == 1:
                self.received.append(byte)
            else:
                self.framing_errors += 1

    async def _send(self, data: bytes, gap_bits: int = 0):
        clock, rx = self._dut.clk, self._dut.rx
        for byte in data:
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                rx.value = bit
                await ClockCycles(clock, self._divisor)
            if gap_bits:
                await ClockCycles(clock, gap_bits * self._divisor)
            self.bytes_sent += 1

    async def _read(self, max_bytes: int, timeout: float) -> bytes:
        deadline = get_sim_time("ns") + timeout * 1e9
        # Poll once per byte time: nothing finer can change what is available.
        while not self.received and get_sim_time("ns") < deadline:
            await ClockCycles(self._dut.clk, 10 * self._divisor)
        data = bytes(self.received[:max_bytes])
        del self.received[:len(data)]
        return data

    async def _idle(self, seconds: float):
        await ClockCycles(self._dut.clk, max(1, round(seconds * 1e9 / CLOCK_PERIOD_NS)))

    # ---- the Transport interface (blocking, called from the bridge thread) ----------
    def write(self, data: bytes) -> None:
        resume(self._send)(bytes(data))

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return resume(self._read)(max_bytes, timeout)

    def close(self) -> None:
        pass

    def idle(self, seconds: float) -> None:
        """Let simulated time pass with the line idle."""
        resume(self._idle)(seconds)

    def seconds_per_byte(self) -> float:
        return 10 * self._divisor * CLOCK_PERIOD_NS * 1e-9


async def _start(dut, divisor: int) -> SimulatedSerial:
    serial = SimulatedSerial(dut, divisor)
    cocotb.start_soon(Clock(dut.clk, CLOCK_PERIOD_NS, "ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    cocotb.start_soon(serial.monitor())
    return serial


def _random_jobs(config, seed: int, count: int, max_depth: int):
    """Every standard mode once, then with output-stage settings, until ``count``."""
    rng = np.random.default_rng(seed)
    modes = list(standard_modes(config).items())
    jobs = []
    for index in range(count):
        name, precision = modes[index % len(modes)]
        m, n, depth = random_shape(rng, config, max_tiles=2, max_depth=max_depth)
        low_a, high_a = operand_range(config, precision.a)
        low_b, high_b = operand_range(config, precision.b)
        a = random_operands(rng, (m, depth), low_a, high_a, "uniform")
        b = random_operands(rng, (depth, n), low_b, high_b, "heavy_tailed")
        output = None
        if index >= len(modes):
            output = OutputParameters(shift=int(rng.integers(0, 6)),
                                      rounding=Rounding(int(rng.integers(0, 3))),
                                      relu=bool(rng.integers(0, 2)),
                                      seed=int(rng.integers(0, 1 << 32)),
                                      tensor=int(rng.integers(0, 1 << 16)))
        jobs.append((name, a, b, precision, output))
    return jobs


def _timeout(serial: SimulatedSerial, settings: dict) -> float:
    """The host's per-request timeout: a whole maximum-size frame and its reply, twice
    over, plus slack for the accelerator to take the beats."""
    return settings.get("timeout_byte_times", 4000) * serial.seconds_per_byte()


@cocotb.test()
async def gemm_through_link(dut):
    """Random GEMMs through the host driver and the UART link, compared with a model."""
    config, divisor, settings = _load()
    serial = await _start(dut, divisor)
    model = MODELS[settings.get("model", "golden")]
    jobs = _random_jobs(config, settings.get("seed", 1), settings.get("jobs", 8),
                        settings.get("max_depth", 24))
    report = {"jobs": [], "errors": [], "model": settings.get("model", "golden")}
    log = dut._log.info

    def host():
        board = Board(serial, config, timeout=_timeout(serial, settings), retries=2,
                      log=log)
        status = board.connect()
        results = []
        for name, a, b, precision, output in jobs:
            results.append(board.gemm(a, b, precision, output=output))
        return status, results, board.status()

    started = get_sim_time("ns")
    status_before, results, status_after = await bridge(host)()
    mismatched = 0
    for (name, a, b, precision, output), result in zip(jobs, results, strict=True):
        expected = GemmJob.build(config, a, b, precision, model=model, output=output).expected
        differs = int(np.count_nonzero(np.asarray(result) != expected)) \
            if np.shape(result) == expected.shape else expected.size
        mismatched += differs
        report["jobs"].append({"mode": name, "shape": [int(a.shape[0]), int(b.shape[1]),
                                                       int(a.shape[1])],
                               "output_stage": output is not None,
                               "mismatched_elements": differs})
    report.update(mismatched_elements=mismatched,
                  bytes_sent=serial.bytes_sent, framing_errors=serial.framing_errors,
                  simulated_us=(get_sim_time("ns") - started) / 1e3,
                  status_before=vars(status_before), status_after=vars(status_after))
    _write_report(report)
    if settings.get("expect_mismatch"):
        assert mismatched > 0, "negative control: the wrong model was not detected"
    else:
        assert mismatched == 0, f"{mismatched} result elements differ from the model"
    assert serial.framing_errors == 0, "framing errors on tx"
    assert status_after.idle and not status_after.accelerator_error
    assert status_after.rejected_frames == 0, "a good frame was rejected"


def _replies(serial: SimulatedSerial, parser: FrameParser, timeout: float) -> list[Frame]:
    """The response frames that arrive within ``timeout``, once the line has been quiet
    for 200 byte times after the first (a damaged LENGTH can turn the rest of a frame
    into a second, garbage frame with its own NAK)."""
    waited, quiet, frames = 0.0, 0.0, []
    step = 20 * serial.seconds_per_byte()
    while waited < timeout and not (frames and quiet >= 10 * step):
        data = serial.read(4096, step)
        frames += parser.feed(data)
        quiet = 0.0 if data else quiet + step
        waited += step
    return frames


@cocotb.test()
async def corrupted_frames(dut):
    """Every kind of bad frame is answered with its NAK and never executed."""
    config, divisor, settings = _load()
    serial = await _start(dut, divisor)
    rng = np.random.default_rng(settings.get("seed", 2))
    report = {"cases": [], "errors": []}

    def host():
        timeout = _timeout(serial, settings)
        board = Board(serial, config, timeout=timeout, retries=2, log=dut._log.info)
        board.connect()
        parser = FrameParser()
        cases = []
        # A valid command for a small GEMM: if any corrupted copy of it executed, the
        # loader would wait for its operands and the accelerator would not be idle.
        precision = standard_modes(config)["exact"]
        a = rng.integers(-100, 100, size=(3, 5))
        b = rng.integers(-100, 100, size=(5, 3))
        job = GemmJob.build(config, a, b, precision)
        command = job.command.to_bytes(beat_bytes(config, Kind.COMMAND), "little")

        def case(name, frame: bytes, expected_nak: Nak | set):
            before = board.status()
            serial.write(frame)
            # A truncated frame is answered when the link's own timeout fires, within
            # the wait.
            replies = _replies(serial, parser, timeout)
            after = board.status()
            expected = {expected_nak} if isinstance(expected_nak, Nak) else expected_nak
            first = replies[0] if replies else None
            reason = Nak(first.payload[0]) if first is not None and \
                first.kind == Kind.NAK else None
            outcome = {"case": name, "replies": [frame.kind_name for frame in replies],
                       "reason": None if reason is None else reason.name,
                       "expected": sorted(r.name for r in expected),
                       "idle_after": after.idle, "last_seq_before": before.last_seq,
                       "last_seq_after": after.last_seq,
                       "rejected_after": after.rejected_frames}
            # Never executed: only NAKs came back, nothing reached the loader (it would
            # wait for operands, so the accelerator would not be idle) and last_seq
            # did not move.
            outcome["ok"] = (reason in expected
                             and all(frame.kind == Kind.NAK for frame in replies)
                             and after.idle and after.last_seq == before.last_seq
                             and after.rejected_frames > before.rejected_frames)
            cases.append(outcome)

        next_seq = (board.status().last_seq + 1) & 0xFF
        good = encode_frame(Kind.COMMAND, next_seq, command)
        for position in (1, 2, 3, 5, len(good) - 3, len(good) - 1):
            flipped = bytearray(good)
            flipped[position] ^= 1 << int(rng.integers(0, 8))
            name = {1: "KIND", 2: "SEQ", 3: "LENGTH"}.get(position, "payload/CRC")
            # The CRC is checked first, so noise anywhere is answered NAK CRC; except in
            # LENGTH, which makes the frame end elsewhere: a longer frame waits for bytes
            # that never come (TRUNCATED), a shorter one ends early (CRC).
            allowed = {Nak.CRC} if position != 3 else {Nak.CRC, Nak.TRUNCATED}
            case(f"bit flip in {name} (byte {position})", bytes(flipped), allowed)
        case("truncated after the header", good[:7], Nak.TRUNCATED)
        case("unknown KIND", encode_frame(0x7F, next_seq, command), Nak.KIND)
        case("COMMAND not a whole beat", encode_frame(Kind.COMMAND, next_seq, command[:-1]),
             Nak.LENGTH)
        case("STATUS with a payload", encode_frame(Kind.STATUS, next_seq, b"x"), Nak.LENGTH)
        case("sequence skipped", encode_frame(Kind.COMMAND, (next_seq + 1) & 0xFF, command),
             Nak.SEQUENCE)
        # The same good frame twice: the second is a duplicate (ACK, not executed).
        serial.write(good)
        first = [frame.kind_name for frame in _replies(serial, parser, timeout)]
        serial.write(good)
        second = [frame.kind_name for frame in _replies(serial, parser, timeout)]
        duplicate = {"case": "duplicate COMMAND", "first": first, "second": second}
        # The driver learns last_seq (the duplicate's) from a STATUS: connect() would
        # abort the command, which waits for its operands.
        board.sequence = board.status().last_seq
        for kind, beats in ((Kind.A_DATA, job.a_beats), (Kind.B_DATA, job.b_beats)):
            board.send(kind, b"".join(beat.to_bytes(beat_bytes(config, kind), "little")
                                      for beat in beats))
        result = board.collect_results(job)
        duplicate["result_exact"] = bool(np.array_equal(result, job.expected))
        duplicate["idle_after"] = board.status().idle
        duplicate["ok"] = (first == ["ACK"] and second == ["ACK"]
                           and duplicate["result_exact"] and duplicate["idle_after"])
        cases.append(duplicate)
        # After all that, an ordinary GEMM through the driver is still bit-exact.
        final = board.gemm(a.T.copy(), b.T.copy(), precision)
        expected = GemmJob.build(config, a.T, b.T, precision).expected
        cases.append({"case": "GEMM after the bad frames",
                      "ok": bool(np.array_equal(final, expected))})
        return cases, board.status()

    cases, status = await bridge(host)()
    report["cases"] = cases
    report["status"] = vars(status)
    report["framing_errors"] = serial.framing_errors
    _write_report(report)
    failed = [case["case"] for case in cases if not case["ok"]]
    assert not failed, f"cases failed: {failed}"
    assert not status.accelerator_error


# ---- a dead host, and random frame sequences -----------------------------------------

class HostDied(Exception):
    """The first host's process ends here (the bench's stand-in for a kill)."""


class DyingSerial:
    """The dead host's end of the :class:`SimulatedSerial`: write ``kill_at_write``
    (from 0) sends only its first ``keep`` bytes, then the host dies; with
    ``kill_at_write = None`` it dies at its first read after ``writes_before_read``
    writes (every frame of a GEMM sent, its results not read)."""

    def __init__(self, serial: SimulatedSerial, *, kill_at_write: int | None = None,
                 keep: int = 0, writes_before_read: int | None = None):
        self.serial, self.kill_at_write, self.keep = serial, kill_at_write, keep
        self.writes_before_read = writes_before_read
        self.writes = 0

    def write(self, data: bytes) -> None:
        if self.writes == self.kill_at_write:
            if self.keep:
                self.serial.write(data[:self.keep])
            raise HostDied(f"killed at write {self.writes} after {self.keep} bytes")
        self.writes += 1
        self.serial.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.writes_before_read is not None and self.writes >= self.writes_before_read:
            raise HostDied(f"killed at the first read after {self.writes} writes")
        return self.serial.read(max_bytes, timeout)

    def close(self) -> None:
        pass


def _small_job(config, seed: int, mode: str = "exact") -> GemmJob:
    rng = np.random.default_rng(seed)
    precision = standard_modes(config)[mode]
    low_a, high_a = operand_range(config, precision.a)
    low_b, high_b = operand_range(config, precision.b)
    a = rng.integers(low_a, high_a + 1, size=(5, 9))
    b = rng.integers(low_b, high_b + 1, size=(9, 3))
    return GemmJob.build(config, a, b, precision)


def _recovering_host(serial: SimulatedSerial, config, settings: dict, seed: int,
                     log) -> dict:
    """A new host on the line: connect (aborting a busy board), STATUS, one GEMM."""
    messages = []
    board = Board(serial, config, timeout=_timeout(serial, settings), retries=3,
                  log=lambda message: (messages.append(message), log(message)))
    connected = board.connect()
    status = board.status()
    job = _small_job(config, seed, "mixed")
    result = board.run(job)
    return {"aborted": any("sending ABORT" in message for message in messages),
            "connected_idle": connected.idle, "status_idle": status.idle,
            "exact": bool(np.array_equal(result, job.expected))}


#: The kill points of :func:`dead_host` when the settings give none: (name, kill_at_write,
#: keep, writes_before_read); the first host writes STATUS (0), COMMAND (1), A_DATA (2),
#: B_DATA (3).
DEAD_HOST_KILLS = [("after COMMAND", 2, 0, None), ("mid A_DATA", 2, 8, None),
                   ("mid COMMAND header", 1, 3, None),
                   ("after operands, results unread", None, 0, 4)]


@cocotb.test()
async def dead_host(dut):
    """A host killed at chosen steps of a GEMM never needs a board reset."""
    config, divisor, settings = _load()
    serial = await _start(dut, divisor)
    kills = settings.get("kills", DEAD_HOST_KILLS)
    pause = settings.get("pause_byte_times", 400) * serial.seconds_per_byte()
    report = {"cases": []}

    def host():
        cases = []
        for index, (name, kill_at_write, keep, writes_before_read) in enumerate(kills):
            dying = DyingSerial(serial, kill_at_write=kill_at_write, keep=keep,
                                writes_before_read=writes_before_read)
            first = Board(dying, config, timeout=_timeout(serial, settings), retries=2)
            try:
                first.connect()
                first.run(_small_job(config, index))
                died = None
            except HostDied as death:
                died = str(death)
            serial.idle(pause)
            case = {"case": name, "died": died}
            case.update(_recovering_host(serial, config, settings, 100 + index,
                                         dut._log.info))
            case["ok"] = bool(died and case["connected_idle"] and case["status_idle"]
                              and case["exact"])
            cases.append(case)
        # Operand beats no command asked for: NAK STALLED (not silence), then recovery.
        board = Board(serial, config, timeout=_timeout(serial, settings), retries=2)
        board.connect()
        try:
            board.send(Kind.A_DATA, bytes(2 * beat_bytes(config, Kind.A_DATA)))
            answer = "ACK"
        except HostError as error:
            answer = str(error)
        case = {"case": "unsolicited A_DATA", "answer": answer}
        case.update(_recovering_host(serial, config, settings, 99, dut._log.info))
        case["ok"] = bool("NAK STALLED" in answer and case["status_idle"] and case["exact"])
        cases.append(case)
        return cases

    report["cases"] = await bridge(host)()
    report["framing_errors"] = serial.framing_errors
    _write_report(report)
    failed = [case["case"] for case in report["cases"] if not case["ok"]]
    assert not failed, f"cases failed: {failed}"


def _random_piece(rng, config) -> bytes:
    """What a broken host may send: a frame of a random (mostly request) KIND, SEQ and
    LENGTH, possibly corrupted or truncated; garbage; or a real GEMM (after an ABORT SEQ
    0xFF, so its SEQs execute) cut after a random number of bytes."""
    choice = rng.choice(["frame", "frame", "frame", "garbage", "gemm"])
    if choice == "garbage":
        return rng.bytes(int(rng.integers(1, 40)))
    if choice == "gemm":
        job = _small_job(config, int(rng.integers(0, 1 << 16)))
        stream = encode_frame(Kind.ABORT, 0xFF)
        for seq, (kind, beats) in enumerate([(Kind.COMMAND, [job.command]),
                                             (Kind.A_DATA, job.a_beats),
                                             (Kind.B_DATA, job.b_beats)]):
            stream += encode_frame(kind, seq, b"".join(
                beat.to_bytes(beat_bytes(config, kind), "little") for beat in beats))
        return stream[:int(rng.integers(1, len(stream) + 1))]
    kind = int(rng.choice(REQUEST_KINDS)) if rng.random() < 0.75 else int(rng.integers(0, 256))
    seq = int(rng.integers(0, 4)) if rng.random() < 0.5 else int(rng.integers(0, 256))
    size = beat_bytes(config, kind) if kind in (Kind.COMMAND, Kind.A_DATA, Kind.B_DATA) else 1
    beats = int(rng.integers(0, 5))
    payload = {0: bytes(beats * size), 1: rng.bytes(beats * size),
               2: rng.bytes(int(rng.integers(0, 30)))}[int(rng.integers(0, 3))]
    frame = bytearray(encode_frame(kind, seq, payload))
    damage = rng.choice(["none", "none", "corrupt", "truncate"])
    if damage == "corrupt":
        frame[int(rng.integers(1, len(frame)))] ^= int(rng.integers(1, 256))
    elif damage == "truncate":
        frame = frame[:int(rng.integers(1, len(frame)))]
    return bytes(frame)


@cocotb.test()
async def random_frames(dut):
    """After any frame sequence and a quiet line, STATUS is answered at once."""
    config, divisor, settings = _load()
    serial = await _start(dut, divisor)
    rng = np.random.default_rng(settings.get("seed", 5))
    byte_time = serial.seconds_per_byte()
    # The truncation timeout, the stall timeout and a few result frames.
    quiet = (TIMEOUT_BYTE_TIMES + STALL_TIMEOUT_BYTE_TIMES + 200) * byte_time
    report = {"rounds": []}

    def host():
        rounds = []
        for index in range(settings.get("rounds", 6)):
            pieces = [_random_piece(rng, config) for _ in range(int(rng.integers(1, 8)))]
            for piece in pieces:
                serial.write(piece)
                serial.idle(float(rng.choice([0, 30, 300])) * byte_time)
            serial.idle(quiet)
            while serial.read(4096, 0):
                pass                          # what the board answered the broken host
            try:
                status = Board(serial, config, timeout=2 * quiet, retries=0).status()
                answered, idle = True, status.idle
            except Exception as error:         # the report says what went wrong
                answered, idle = str(error), None
            rounds.append({"round": index, "bytes": sum(map(len, pieces)),
                           "answered": answered, "idle": idle})
        final = _recovering_host(serial, config, settings, 7, dut._log.info)
        return rounds, final

    report["rounds"], report["final"] = await bridge(host)()
    report["framing_errors"] = serial.framing_errors
    _write_report(report)
    unanswered = [r["round"] for r in report["rounds"] if r["answered"] is not True]
    assert not unanswered, f"STATUS not answered after rounds {unanswered}"
    assert report["final"]["exact"] and report["final"]["status_idle"]
