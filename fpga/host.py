"""The host driver of the board link (:mod:`qforge.hdl.protocol`): run GEMMs on an FPGA
board over a serial port, bit-exact with the golden model.

* :class:`Transport`: what the driver needs from a byte link (``write``, ``read`` with a
  timeout, ``close``). :class:`SerialTransport` is a real serial port (pyserial);
  :class:`qforge.fpga.loopback.LoopbackTransport` a simulated line to a pure-Python
  model of the board; the RTL board bench (:mod:`qforge.sim.bench.cocotb_board`) drives the
  simulated UART pins. All timeouts are seconds of the transport's own clock: the driver
  never looks at real time, so simulated transports run as fast as they can.
* :class:`Board`: the client. :meth:`Board.connect` checks the board was built for the
  configuration and brings a board left busy (a host that stopped mid-GEMM) back to idle
  with :meth:`Board.abort`; :meth:`Board.send` is stop-and-wait with retransmission;
  :meth:`Board.gemm` packs, sends, collects and assembles a GEMM, and runs it again when a
  result frame is lost or corrupted (GEMMs are pure functions of their frames).

Every failure a user can meet (no reply, a board built for another configuration, a
command the accelerator rejects, operands out of range, a missing pyserial) raises
:class:`HostError` with a message that says what happened and what to do.

>>> from qforge.sim.model.spec import load_preset
>>> from qforge.fpga.board_model import BoardModel
>>> from qforge.fpga.loopback import LoopbackTransport
>>> from qforge.sim.model.numerics import standard_modes
>>> tiny = load_preset("tiny")
>>> board = Board(LoopbackTransport(BoardModel(tiny), bytes_per_second=11520), tiny)
>>> board.gemm([[1, 2], [3, 4]], [[5], [-6]], standard_modes(tiny)["exact"])
array([[-7],
       [-9]])

Over 500 lines (about 600): one concept, the host side of the link protocol;
:class:`Board`'s methods (stop-and-wait, result collection, retries, the abort) share its
state and split no further.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from qforge.hdl.protocol import (DATA_KINDS, MAX_PAYLOAD, STALL_TIMEOUT_BYTE_TIMES,
                                  STATUS_BYTES, Frame, FrameParser, Kind, Nak, ProtocolError,
                                  Status, beat_bytes, beat_width, beats_to_bytes,
                                  config_fingerprint, encode_frame)
from qforge.fpga.board_model import CommandError, decode_command
from qforge.sim.model.errors import QforgeError
from qforge.sim.model.spec import Config
from qforge.sim.model.numerics import Precision
from qforge.sim.host.packing import GemmJob, ResultAssembler
from qforge.sim.model.capacity import gemm_capacity_error
from qforge.sim.model.quantize import OutputParameters

__all__ = ["HostError", "ResultsLost", "Transport", "SerialTransport", "Board",
           "DEFAULT_BAUD_RATE", "identify_fingerprint"]

#: The baud rate of the board builds.
DEFAULT_BAUD_RATE = 115200
#: Bytes asked of the transport per read.
_READ_BYTES = 4096


class HostError(QforgeError, RuntimeError):
    """Something went wrong talking to the board; the message says what and what to do."""


class ResultsLost(HostError):
    """A GEMM's result frames did not all arrive intact (a gap in the RESULT sequence
    numbers, a corrupted frame, too few or too many beats, or no frame within the
    timeout). :meth:`Board.gemm` runs the GEMM again; :meth:`Board.collect_results`
    raises it to its caller."""


@runtime_checkable
class Transport(Protocol):
    """A byte link to the board.

    * ``write(data)``: send ``data``; returns when it has been handed to the line (a real
      port waits until the bytes are sent, so that reply timeouts start then).
    * ``read(max_bytes, timeout)``: up to ``max_bytes`` bytes that have arrived, waiting at
      most ``timeout`` seconds of the transport's clock for the first; ``b""`` if none
      came. May return part of a frame.
    * ``close()``.
    """

    def write(self, data: bytes) -> None: ...

    def read(self, max_bytes: int, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port through pyserial (8 data bits, no parity, 1 stop bit).

    ``port``: the device (``/dev/ttyUSB1``, ``COM3``); ``baud_rate``: the board's (the
    board builds use :data:`DEFAULT_BAUD_RATE`). Raises :class:`HostError` if pyserial is
    missing or the port cannot be opened.
    """

    def __init__(self, port: str, baud_rate: int = DEFAULT_BAUD_RATE):
        try:
            import serial
        except ImportError:
            raise HostError("talking to a board needs pyserial: pip install pyserial "
                            "(or `pip install -e .[dev]`)") from None
        if isinstance(baud_rate, bool) or not isinstance(baud_rate, int) or baud_rate < 1:
            raise HostError(f"baud rate = {baud_rate!r}: must be a positive integer "
                            f"(the board builds use {DEFAULT_BAUD_RATE})")
        self._serial = serial
        self.port = port
        self.baud_rate = baud_rate
        try:
            self._port = serial.Serial(port, baud_rate, bytesize=8, parity="N", stopbits=1,
                                       timeout=0)
        except (serial.SerialException, ValueError, OSError) as error:
            raise HostError(f"cannot open serial port {port!r} at {baud_rate} baud: "
                            f"{error}") from None

    def write(self, data: bytes) -> None:
        try:
            self._port.write(bytes(data))
            self._port.flush()
        except (self._serial.SerialException, OSError) as error:
            raise HostError(f"writing to serial port {self.port!r} failed: {error}") from None

    def read(self, max_bytes: int, timeout: float) -> bytes:
        try:
            self._port.timeout = timeout
            first = self._port.read(1)
            if not first or max_bytes <= 1:
                return bytes(first)
            self._port.timeout = 0
            waiting = min(max_bytes - 1, self._port.in_waiting)
            return bytes(first) + (bytes(self._port.read(waiting)) if waiting else b"")
        except (self._serial.SerialException, OSError) as error:
            raise HostError(f"reading from serial port {self.port!r} failed: {error}") from None

    def close(self) -> None:
        self._port.close()


def identify_fingerprint(fingerprint: int) -> list[str]:
    """The built-in presets (and their zero-skipping versions) whose
    :func:`~qforge.hdl.protocol.config_fingerprint` is ``fingerprint``: a hint for which
    configuration a board was built for.

    >>> from qforge.sim.model.spec import load_preset
    >>> identify_fingerprint(config_fingerprint(load_preset("tiny")))
    ['tiny']
    """
    from qforge.sim.model.spec import load_preset, preset_names

    names = []
    for name in preset_names():
        config = load_preset(name)
        candidates = [config]
        if config.zero_skipping_error() is None:    # shared, fused: no such array
            candidates.append(config.with_zero_skipping())
        for candidate in candidates:
            if config_fingerprint(candidate) == fingerprint and candidate.name not in names:
                names.append(candidate.name)
    return names


def _positive(name: str, value, *, integer: bool = False, minimum: float = 0.0,
              inclusive: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (
            value >= minimum if inclusive else value > minimum) or value != value:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise HostError(f"{name} = {value!r}: must be {'an integer' if integer else 'a number'}"
                        f" {bound}")


class Board:
    """The client of one board, over ``transport``, for ``config`` (the configuration the
    board's bitstream was built from).

    ``timeout`` (seconds of the transport's clock): how long to wait for the reply to a
    request before sending it again; the wait restarts whenever a frame arrives (the
    board is busy sending). Keep it well above the board's truncation timeout
    (:data:`~qforge.hdl.protocol.TIMEOUT_BYTE_TIMES` byte times) plus a reply's line
    time. ``retries``: each request frame is sent at most ``1 + retries`` times, and a
    GEMM whose results are lost is run at most ``1 + retries`` times. ``clock_hz``: a
    lower bound on the accelerator's clock, used to scale the wait for results with the
    GEMM's cycle count (:func:`qforge.sim.model.cycles.gemm_cycles`). ``log``: called with
    one-line progress and recovery messages (None: quiet).

    :attr:`sequence` is the SEQ of the last data request the board executed, as the host
    knows it (set by :meth:`connect`); the next data frame is sent with ``sequence + 1``.
    :attr:`last_status` is the status of the last ACK, NAK or STATUS reply.
    """

    def __init__(self, transport: Transport, config: Config, *, timeout: float = 1.0,
                 retries: int = 3, log: Callable[[str], None] | None = None,
                 clock_hz: float = 1e6):
        if not isinstance(config, Config):
            raise HostError(f"config: expected a qforge Config, got {type(config).__name__}")
        _positive("timeout", timeout)
        _positive("retries", retries, integer=True, inclusive=True)
        _positive("clock_hz", clock_hz)
        for method in ("write", "read", "close"):
            if not callable(getattr(transport, method, None)):
                raise HostError(f"transport {transport!r} has no {method}() method "
                                f"(see qforge.fpga.host.Transport)")
        self.transport = transport
        self.config = config
        self.timeout = float(timeout)
        self.retries = retries
        self.clock_hz = float(clock_hz)
        self.log = log
        self.fingerprint = config_fingerprint(config)
        self.sequence: int | None = None
        self.last_status: Status | None = None
        self._status_seq = 0xFF
        self._result_seq: int | None = None
        self._parser = FrameParser()
        self._frames_heard = 0          # frames (and damaged ones) received, for errors
        self._replies: deque[Frame] = deque()
        self._results: deque[Frame] = deque()
        self._beat_bytes = {}
        for kind in (Kind.COMMAND, Kind.A_DATA, Kind.B_DATA, Kind.RESULT):
            size = beat_bytes(config, kind)
            if size > MAX_PAYLOAD:
                raise HostError(f"configuration {config.name!r}: a {kind.name} beat is "
                                f"{size} bytes, more than a frame carries ({MAX_PAYLOAD})")
            self._beat_bytes[kind] = size

    # ---- plumbing ---------------------------------------------------------------------
    def _log(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()

    def _receive(self, timeout: float) -> bool:
        """One read; sort the frames into replies and results. False if nothing came."""
        data = self.transport.read(_READ_BYTES, timeout)
        if not data:
            return False
        rejected = self._parser.rejected
        for frame in self._parser.feed(data):
            self._frames_heard += 1
            (self._results if frame.kind == Kind.RESULT else self._replies).append(frame)
        self._frames_heard += self._parser.rejected - rejected
        if self._parser.rejected != rejected:
            self._corrupted = self._parser.last_error
            self._log(f"dropped a corrupted frame from the board: {self._parser.last_error}")
        return True

    _corrupted: str | None = None
    #: The error to raise if the last attempt of a request was NAKed LENGTH or KIND.
    _refusal: str | None = None

    def _decode_status(self, frame: Frame, payload: bytes) -> Status:
        try:
            status = Status.decode(payload)
        except ProtocolError as error:
            raise HostError(f"the board sent a malformed {frame.kind_name} frame "
                            f"(SEQ {frame.seq}): {error}; is the bitstream built from this "
                            f"version of qforge?") from None
        self.last_status = status
        return status

    def _request(self, kind: Kind, seq: int, payload: bytes, reply: Kind) -> Status:
        """Send one request frame until ``reply`` (ACK or STATUS_REPLY) with its SEQ
        arrives; retransmit on a timeout or a NAK CRC/TRUNCATED/LENGTH/KIND (a NAKed frame
        was never executed). LENGTH and KIND are retried too because the host's frame
        may have been glued to the bytes a dead host left half sent; if every attempt
        gets one of them, the board really expects another frame layout."""
        frame = encode_frame(kind, seq, payload)
        attempts = 1 + self.retries
        problem = ""
        heard = self._frames_heard
        for attempt in range(attempts):
            if attempt:
                self._log(f"{kind.name} frame SEQ {seq}: {problem}; sending it again "
                          f"(attempt {attempt + 1} of {attempts})")
            for stale in self._replies:
                self._log(f"ignoring a stale {stale.kind_name} frame (SEQ {stale.seq})")
            self._replies.clear()
            self.transport.write(frame)
            self._refusal = None
            problem = self._await(kind, seq, len(payload), reply)
            if isinstance(problem, Status):
                return problem
        if self._refusal is not None:
            raise HostError(self._refusal)
        heard = self._frames_heard - heard
        if heard:
            advice = (f"the board did send {heard} other or damaged frame(s) meanwhile, so "
                      f"it is powered and programmed: it may be busy with another host or "
                      f"a GEMM left running (connect again: Board.connect aborts what the "
                      f"board was doing), or the line may damage frames (check the baud "
                      f"rate)")
        elif self.last_status is not None:
            advice = ("the board answered earlier on this port, so the line works: it "
                      "stopped answering. Was it reset, reprogrammed or unplugged?")
        else:
            advice = ("Check the cable, the port and the baud rate, and that the board is "
                      "programmed and out of reset")
        raise HostError(f"no {reply.name} from the board for the {kind.name} frame (SEQ "
                        f"{seq}) after {attempts} attempt(s): {problem}. {advice}")

    def _await(self, kind: Kind, seq: int, length: int, reply: Kind) -> Status | str:
        """The reply's status, or why the frame should be sent again."""
        while True:
            while self._replies:
                frame = self._replies.popleft()
                if frame.kind == reply and frame.seq == seq:
                    return self._decode_status(frame, frame.payload)
                if frame.kind == Kind.NAK:
                    if len(frame.payload) != 1 + STATUS_BYTES or \
                            frame.payload[0] not in tuple(Nak):
                        raise HostError(f"the board sent a malformed NAK (payload "
                                        f"{frame.payload.hex(' ')}); is the bitstream built "
                                        f"from this version of qforge?")
                    reason = Nak(frame.payload[0])
                    status = self._decode_status(frame, frame.payload[1:])
                    if reason in (Nak.CRC, Nak.TRUNCATED):
                        # The SEQ of a damaged frame may be damaged too: retransmit.
                        return f"NAK {reason.name}: {reason.explanation}"
                    if frame.seq != seq:
                        self._log(f"ignoring NAK {reason.name} for SEQ {frame.seq} (waiting "
                                  f"for SEQ {seq})")
                        continue
                    if reason == Nak.STALLED:
                        # The frame may be partly executed: only an ABORT recovers.
                        self.sequence = None
                        raise HostError(
                            f"the board could not execute the {kind.name} frame (SEQ {seq}): "
                            f"NAK STALLED: the accelerator did not take its beats within "
                            f"{STALL_TIMEOUT_BYTE_TIMES} byte times; it waits for other "
                            f"frames (a command or operands left half sent, e.g. by a host "
                            f"that stopped mid-GEMM). Connect again: Board.connect() brings "
                            f"it back to idle with an ABORT")
                    if reason == Nak.SEQUENCE:
                        raise HostError(
                            f"the board refused the {kind.name} frame: NAK SEQUENCE "
                            f"({reason.explanation}): it sent SEQ {seq}, the board's last_seq "
                            f"is {status.last_seq}. Was the board reset, or used by another "
                            f"host? Connect again (Board.connect) to resynchronize")
                    self._refusal = (
                        f"the board refused the {kind.name} frame (SEQ {seq}, LENGTH "
                        f"{length}): NAK {reason.name} "
                        f"({reason.explanation}). The host sent a well-formed frame, so "
                        f"the board expects another frame layout: is it built for "
                        f"configuration {self.config.name!r} and this version of qforge?")
                    return f"NAK {reason.name}: {reason.explanation}"
                self._log(f"ignoring a {frame.kind_name} frame (SEQ {frame.seq}) while "
                          f"waiting for {reply.name} SEQ {seq}")
            if not self._receive(self.timeout):
                return f"no reply within {self.timeout:g} s"

    # ---- requests -----------------------------------------------------------------------
    def status(self) -> Status:
        """Ask the board for its status (STATUS request; never executed)."""
        self._status_seq = (self._status_seq + 1) & 0xFF
        return self._request(Kind.STATUS, self._status_seq, b"", Kind.STATUS_REPLY)

    def abort(self) -> Status:
        """Send ABORT and return the status of its ACK: the board resets its accelerator
        (whatever command, operands, GEMM or results an earlier host left, and the sticky
        error flag), restarts its result counter and takes this ABORT's SEQ as its
        ``last_seq``, which becomes :attr:`sequence`. RESULT frames received before the
        ACK are discarded. Raises :class:`HostError` if the accelerator is still not idle
        after it."""
        known = self.sequence if self.sequence is not None else (
            self.last_status.last_seq if self.last_status is not None else 0xFF)
        seq = (known + 1) & 0xFF
        status = self._request(Kind.ABORT, seq, b"", Kind.ACK)
        for stale in self._results:
            self._log(f"discarding RESULT frame SEQ {stale.seq} sent before the ABORT")
        self._results.clear()
        self._result_seq = 0
        self.sequence = seq
        if not status.idle or status.accelerator_error:
            raise HostError(f"the board acknowledged ABORT (SEQ {seq}) but its accelerator is "
                            f"still {'busy' if not status.idle else 'flagging an error'}: "
                            f"reset the board (its bitstream may be from another version "
                            f"of qforge)")
        return status

    def connect(self) -> Status:
        """Read the board's status, check it was built for :attr:`config` (same
        :func:`~qforge.hdl.protocol.config_fingerprint`) and learn its ``last_seq``.
        Raises :class:`HostError` naming both fingerprints on a mismatch.

        A board whose accelerator is not idle (a host stopped mid-GEMM: a command waiting
        for operands, results nobody reads) or has its sticky error flag set is brought
        back to idle with :meth:`abort`, and ``log`` says so. Only one host may use a
        board at a time: connecting aborts the GEMM of any other."""
        status = self.status()
        if status.fingerprint != self.fingerprint:
            matches = identify_fingerprint(status.fingerprint)
            hint = (f" (that is the fingerprint of {', '.join(repr(m) for m in matches)})"
                    if matches else " (not a built-in preset: a custom spec)")
            raise HostError(
                f"the board was built for another configuration: it reports fingerprint "
                f"0x{status.fingerprint:04x}{hint}, but configuration {self.config.name!r} "
                f"has 0x{self.fingerprint:04x}. Pass the configuration the bitstream was "
                f"built from (--preset/--spec), or build and program one for "
                f"{self.config.name!r}")
        self.sequence = status.last_seq
        if not status.idle or status.accelerator_error:
            why = ("its accelerator is busy (a GEMM in progress or left half done by a host "
                   "that stopped)" if not status.idle else
                   "its accelerator's error flag is set (an invalid command was dropped "
                   "earlier)")
            self._log(f"the board is not ready: {why}; sending ABORT")
            status = self.abort()
            self._log(f"ABORT acknowledged: the accelerator is idle, last_seq {status.last_seq}")
        return status

    def send(self, kind: Kind, payload: bytes) -> Status:
        """Send one data frame (COMMAND, A_DATA or B_DATA: a whole number of beats, at most
        MAX_PAYLOAD bytes) with the next sequence number, stop-and-wait, and return the
        status of its ACK.

        Sent again on a timeout or a NAK CRC/TRUNCATED (an ACK for a retransmission the
        board had already executed is the duplicate ACK: fine); raises :class:`HostError`
        on a NAK LENGTH, KIND or SEQUENCE, or after ``1 + retries`` attempts.
        """
        if kind not in DATA_KINDS:
            raise HostError(f"send: kind = {kind!r}: allowed "
                            + ", ".join(k.name for k in DATA_KINDS))
        kind = Kind(kind)
        payload = bytes(payload)
        size = self._beat_bytes[kind]
        if len(payload) > MAX_PAYLOAD or len(payload) % size:
            raise HostError(f"send: {kind.name} payload of {len(payload)} bytes: must be a "
                            f"whole number of {size}-byte beats, at most {MAX_PAYLOAD} bytes")
        if self.sequence is None:
            self.connect()
        seq = (self.sequence + 1) & 0xFF
        status = self._request(kind, seq, payload, Kind.ACK)
        self.sequence = seq
        return status

    def send_beats(self, kind: Kind, beats: list[int]) -> None:
        """Send beats (integers, as :mod:`qforge.sim.host.packing` makes them) in as few
        frames as fit MAX_PAYLOAD."""
        per_frame = MAX_PAYLOAD // self._beat_bytes[kind]
        for start in range(0, len(beats), per_frame):
            try:
                payload = beats_to_bytes(self.config, kind, beats[start:start + per_frame])
            except ProtocolError as error:
                raise HostError(f"send_beats: {error}") from None
            self.send(kind, payload)

    # ---- GEMMs -----------------------------------------------------------------------------
    def result_timeout(self, job: GemmJob) -> float:
        """Seconds to wait for each RESULT frame of ``job``: :attr:`timeout` plus twice
        the GEMM's predicted cycles at :attr:`clock_hz`."""
        from qforge.sim.model.cycles import gemm_cycles, gemm_shape

        shape = gemm_shape(self.config, job.a.shape[0], job.b.shape[1], job.a.shape[1],
                           job.precision)
        return self.timeout + 2 * gemm_cycles(self.config, [shape]).total / self.clock_hz

    def gemm(self, a, b, precision: Precision, *, output: OutputParameters | None = None,
             skip_zeros: bool = False) -> np.ndarray:
        """``a @ b`` on the board in ``precision`` (``M x D`` by ``D x N`` integers), with
        the output stage ``output`` (None: raw accumulators); returns the ``M x N`` int64
        result. Operands are checked and packed by
        :meth:`qforge.sim.host.packing.GemmJob.build` (an operand out of range raises
        :class:`HostError` naming it)."""
        try:
            job = GemmJob.build(self.config, a, b, precision, output=output,
                                skip_zeros=skip_zeros)
        except ValueError as error:
            raise HostError(f"cannot run this GEMM on configuration {self.config.name!r}: "
                            f"{error}") from error
        return self.run(job)

    def run(self, job: GemmJob) -> np.ndarray:
        """Run a built :class:`~qforge.sim.host.packing.GemmJob` (its ``expected`` is not
        used): COMMAND, its A_DATA and B_DATA frames, then its results; run again (at most
        ``1 + retries`` times) if results are lost."""
        if job.config != self.config:
            raise HostError(f"run: the job was built for configuration {job.config.name!r}, "
                            f"the board for {self.config.name!r}")
        config = self.config
        try:
            # The real sizes first (the golden model's rule): a command field would wrap a
            # count too large for it.
            error = gemm_capacity_error(config, job.a.shape[0], job.b.shape[1],
                                        job.a.shape[1])
            if error is not None:
                raise CommandError(error)
            decode_command(config, job.command)
        except CommandError as error:
            raise HostError(f"cannot run this GEMM on configuration {self.config.name!r} "
                            f"({job.a.shape[0]} x {job.a.shape[1]} by {job.b.shape[0]} x "
                            f"{job.b.shape[1]}): {error}; split it into smaller GEMMs") from None
        if self.sequence is None:
            self.connect()
        if self.last_status is not None and self.last_status.accelerator_error:
            raise HostError("the accelerator's error flag is already set (an earlier invalid "
                            "command was dropped; the flag stays set until reset): connect "
                            "again (Board.connect clears it with an ABORT)")
        attempts = 1 + self.retries
        self._log(f"GEMM {job.a.shape[0]} x {job.a.shape[1]} by {job.b.shape[0]} x "
                  f"{job.b.shape[1]} ({job.precision.describe()}): {len(job.a_beats)} A and "
                  f"{len(job.b_beats)} B beats, {job.result_beats} result beats")
        for attempt in range(attempts):
            try:
                return self._run_once(job)
            except ResultsLost as error:
                problem = str(error)
                self._log(f"GEMM results lost ({problem}); "
                          + ("running it again" if attempt + 1 < attempts else "giving up"))
                self._drain(job)
        raise HostError(f"the GEMM's results were lost {attempts} time(s); last: {problem}. "
                        f"The link is unreliable: check the cable and the baud rate")

    def _run_once(self, job: GemmJob) -> np.ndarray:
        for stale in self._results:
            self._log(f"ignoring a stale RESULT frame (SEQ {stale.seq})")
        self._results.clear()
        command = job.command.to_bytes(self._beat_bytes[Kind.COMMAND], "little")
        status = self.send(Kind.COMMAND, command)
        if status.accelerator_error:
            raise HostError(
                "the accelerator rejected the command: its sticky error flag went up when "
                "the command arrived (the host's own checks of the same rules passed, so "
                "the board disagrees about the configuration; its fingerprint matched). "
                "Connect again before the next GEMM (Board.connect clears the flag with an "
                "ABORT)")
        self.send_beats(Kind.A_DATA, job.a_beats)
        self.send_beats(Kind.B_DATA, job.b_beats)
        return self.collect_results(job)

    def collect_results(self, job: GemmJob) -> np.ndarray:
        """Collect the RESULT frames of ``job`` (whose COMMAND and operand frames have
        been sent) and return its ``M x N`` result. Raises :class:`ResultsLost` if a frame
        is missing (a gap in RESULT sequence numbers), corrupted, the beat count is wrong
        or no frame comes within :meth:`result_timeout`."""
        size = self._beat_bytes[Kind.RESULT]
        width = beat_width(self.config, Kind.RESULT)
        assembler = ResultAssembler(self.config, job.a.shape[0], job.b.shape[1])
        expected = job.result_beats
        wait = self.result_timeout(job)
        self._corrupted = None
        count = 0
        while True:
            if not self._results:
                for stale in self._replies:
                    self._log(f"ignoring a stale {stale.kind_name} frame (SEQ {stale.seq})")
                self._replies.clear()
                got = self._receive(wait)
                if self._corrupted is not None:
                    raise ResultsLost(f"a corrupted frame arrived while results were "
                                      f"expected ({self._corrupted})")
                if not got:
                    raise ResultsLost(f"no RESULT frame within {wait:g} s after {count} of "
                                      f"{expected} result beats")
                continue
            frame = self._results.popleft()
            if self._result_seq is not None and frame.seq != self._result_seq:
                missing = (frame.seq - self._result_seq) & 0xFF
                self._result_seq = None
                raise ResultsLost(f"RESULT frame SEQ {frame.seq} arrived when SEQ "
                                  f"{(frame.seq - missing) & 0xFF} was expected: {missing} "
                                  f"result frame(s) lost")
            self._result_seq = (frame.seq + 1) & 0xFF
            if len(frame.payload) != size:
                raise HostError(f"the board sent a RESULT frame of {len(frame.payload)} "
                                f"bytes; a result beat of configuration {self.config.name!r} "
                                f"is {size}: is it built for this configuration?")
            bits = int.from_bytes(frame.payload, "little")
            if bits >> width:
                raise HostError(f"the board sent a RESULT beat with bits above its {width} "
                                f"bits set: is it built for configuration "
                                f"{self.config.name!r}?")
            _, last = assembler.add(bits)
            count += 1
            if last:
                if count != expected:
                    raise ResultsLost(f"the final result beat (`last` set) was beat {count}; "
                                      f"this GEMM has {expected}")
                return assembler.matrix()
            if count == expected:
                raise ResultsLost(f"result beat {count} of {expected} arrived without `last`")

    def _drain(self, job: GemmJob) -> None:
        """After lost results: discard what the board still sends for the abandoned
        attempt, until the line has been quiet for the result timeout. The next RESULT
        SEQ is known again if the last frame discarded was a GEMM's final beat."""
        quiet = self.result_timeout(job)
        last_bit = beat_width(self.config, Kind.RESULT) - 1
        discarded, next_seq = 0, None
        while True:
            for frame in self._results:
                discarded += 1
                final = (int.from_bytes(frame.payload, "little") >> last_bit) & 1
                next_seq = (frame.seq + 1) & 0xFF if final else None
            self._results.clear()
            self._replies.clear()
            if not self._receive(quiet):
                break
        self._parser.reset()
        self._result_seq = next_seq
        self._log(f"discarded {discarded} result frame(s) of the abandoned attempt")
