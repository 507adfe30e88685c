"""A pure-Python model of the board side of the host link (:mod:`qforge.hdl.protocol`),
and a simulated serial line to it, so the host driver (:mod:`qforge.fpga.host`) can be
tested in milliseconds without RTL or a board.

:class:`BoardModel` behaves as :mod:`qforge.hdl.protocol` specifies the board:

* **Receiving.** It hunts for SYNC, then takes KIND, SEQ and LENGTH; a LENGTH above
  ``MAX_PAYLOAD`` (the frame cannot be buffered) is answered with ``NAK LENGTH`` at once
  and the receiver hunts again. Otherwise it takes the payload and the CRC. A frame whose
  next byte does not arrive within :data:`~qforge.hdl.protocol.TIMEOUT_BYTE_TIMES` byte
  times (a gap of that many byte times or more) is dropped and answered with
  ``NAK TRUNCATED``. From the end of a frame until its response starts on the transmit
  line (checking, executing, waiting for the line) received bytes are dropped, as the
  hardware drops them: a stop-and-wait host sends nothing meanwhile.
* **Checks** of a complete frame, in the order of :data:`CHECKS`: the CRC (``NAK CRC``),
  ``KIND`` a request kind (``NAK KIND``), ``LENGTH`` a whole number of the kind's beats
  and zero for STATUS (``NAK LENGTH``), and for data frames the sequence number
  (``NAK SEQUENCE``). A rejected frame is never executed, sets the status bit "rejected
  since the last STATUS reply" and counts in the saturating rejected-frame count; the NAK
  carries the request's SEQ as received (0 when the frame stopped before its SEQ byte).
  A data frame with no payload is zero beats: executed (nothing to push).
* **Sequence numbers.** ``last_seq`` is 0xFF after reset; a data frame with
  ``SEQ == last_seq + 1`` is executed and ACKed, one with ``SEQ == last_seq`` is ACKed
  again without being executed (a retransmission whose ACK was lost).
* **Execution.** The beats of a good frame go to the accelerator's ``cmd``, ``a_in`` or
  ``b_in`` stream. A command is checked as the loader checks it (:func:`decode_command`):
  an invalid one sets the sticky accelerator-error flag and is dropped, taking no
  operand beats. A valid one takes ``m_tiles * words`` A beats and ``n_tiles * words`` B
  beats (``words = ceil(depth / P)``); then the GEMM is computed with the golden model
  (:func:`qforge.sim.model.numerics.gemm`, and :func:`qforge.sim.model.quantize.output_operands` when
  the command's ``output.quantize`` is set) and its result beats are sent in
  :func:`qforge.sim.host.packing.result_order`, ``last`` on the final one, as RESULT frames
  numbered by the result counter (0 after reset, +1 per frame, mod 256).
* **Back-pressure.** The hardware pushes a frame's beats into a stream that may not be
  ready, and ACKs once its last beat is taken. The model computes instantly, so a stream
  is only ever not ready when the host breaks the command/operand order (a command while
  another still waits for operands, operand beats no command asked for; a host that
  died mid-GEMM leaves the next host in that state). Such a beat is never taken: the
  beats before it stay taken, the model records why in :attr:`stuck` (and
  :attr:`stalls`), drops received bytes as the busy link does, and once the transmit
  line has been idle for :data:`~qforge.hdl.protocol.STALL_TIMEOUT_BYTE_TIMES` byte
  times answers the frame with ``NAK STALLED`` (``last_seq`` unchanged) and receives
  again.
* **ABORT** (checked like STATUS): the accelerator is reset (a command waiting for
  operands, complete operands, result beats not yet on the line and the sticky error
  flag are dropped), the result counter restarts at 0, ``last_seq := SEQ`` and status
  bit 3 is set until the next STATUS reply; answered with ACK.
* **Transmitting.** Responses (ACK, NAK, STATUS_REPLY) and RESULT frames share the
  board's transmit line one whole frame at a time, a response first whenever one is
  waiting at a frame boundary. A response's status is a snapshot taken when the frame
  starts (after the request's effects, the rejection counted); a STATUS_REPLY then
  clears the "rejected since the last STATUS reply" bit. The accelerator is *idle* when
  no command waits for operands or computes and every result beat has been taken by
  the transmitter.

Time is counted in byte times (10 bit times) of the line.
:class:`qforge.fpga.loopback.LoopbackTransport` connects a
:class:`qforge.fpga.host.Board` to a model through a simulated line whose clock advances
with the bytes on it and with the time a ``read`` waits, and can inject faults.

>>> from qforge.sim.model.spec import load_preset
>>> from qforge.hdl.protocol import Kind, beat_bytes, encode_frame
>>> model = BoardModel(load_preset("tiny"))
>>> model.feed(encode_frame(Kind.STATUS, 9))
[Frame(kind=132, seq=9, payload=b'\\x01\\xff\\x00...')]
>>> command = bytes(beat_bytes(load_preset("tiny"), Kind.COMMAND))
>>> reply = model.feed(encode_frame(Kind.COMMAND, 5, command))[0]    # last_seq is 0xFF
>>> reply.kind_name, Nak(reply.payload[0]).name
('NAK', 'SEQUENCE')

About 570 lines, one concept: the board as the link protocol specifies it; the
simulated serial line is :mod:`qforge.fpga.loopback`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from qforge.hdl.protocol import (CONTROL_KINDS, CRC_BYTES, DATA_KINDS, HEADER_BYTES,
                                  MAX_PAYLOAD, REQUEST_KINDS, STALL_TIMEOUT_BYTE_TIMES,
                                  SYNC, TIMEOUT_BYTE_TIMES, Frame,
                                  FrameParser, Kind, Nak, Status, beat_bytes,
                                  bytes_to_beats, config_fingerprint, crc16, encode_frame)
from qforge.sim.model.errors import QforgeError
from qforge.sim.model.spec import Config
from qforge.hdl.layouts import (a_beat_layout, b_beat_layout, command_layout,
                                layout_fields, result_layout)
from qforge.sim.model.numerics import OperandPrecision, Precision, Selection, gemm
from qforge.sim.host.packing import leaf_fields, pack_fields, result_order, unpack_fields
from qforge.sim.model.capacity import gemm_capacity_error, tiles
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands

__all__ = ["CHECKS", "CommandError", "BoardModelError", "Command", "decode_command",
           "BoardModel"]

#: The order in which a complete request frame is checked; the first failing check
#: names the NAK: ``kind`` (NAK KIND), ``crc`` (NAK CRC), ``beats``: LENGTH a whole number
#: of the kind's beats, 0 for STATUS (NAK LENGTH), ``sequence`` (data frames; NAK
#: SEQUENCE). LENGTH > MAX_PAYLOAD is refused earlier, as soon as the header is in.
CHECKS = ("crc", "kind", "beats", "sequence")


class CommandError(QforgeError, ValueError):
    """A command the accelerator's loader rejects (the message names the field and the
    allowed range)."""


class BoardModelError(QforgeError, RuntimeError):
    """The model cannot say what the hardware would do (e.g. operand words outside the
    range the command's precision allows, for which the golden model defines no
    result)."""


@dataclass(frozen=True)
class Command:
    """A decoded ``cmd`` beat that the loader accepts."""

    m_tiles: int
    n_tiles: int
    depth: int
    precision: Precision
    #: The output stage settings, or None for raw accumulators (``output.quantize = 0``).
    output: OutputParameters | None
    skip_zeros: bool

    def words(self, config: Config) -> int:
        """Buffer words (of P operands) per row or column tile: ``ceil(depth / P)``."""
        return tiles(self.depth, config.block_multipliers)

    def a_beats(self, config: Config) -> int:
        return self.m_tiles * self.words(config)

    def b_beats(self, config: Config) -> int:
        return self.n_tiles * self.words(config)

    def result_beats(self, config: Config) -> int:
        return self.m_tiles * self.n_tiles * config.rows


def decode_command(config: Config, bits: int) -> Command:
    """Decode a ``cmd`` beat and check it exactly as the loader does
    (:class:`qforge.hdl.loader.Loader`); raise :class:`CommandError` naming the first
    offending field and its allowed range.

    The loader rejects: ``kept > blocks`` for an operand, ``blocks > B`` (for a VRQ
    operand more blocks than its code has, or any VRQ operand without a ``[vrq]``
    section), ``depth > max_reduction_depth``, operands that do not fit in a buffer half
    (``tiles * ceil(depth / P) > buffer_depth``; on a zero-skipping array B checks
    ``ceil(n_tiles / R) * words <= pe_buffer_depth``), and output-stage fields out of range
    whether or not ``output.quantize`` is set (rounding code 3, ``shift`` or ``exponent``
    above ``accumulator_width - 1``, ``vrq`` without a ``[vrq]`` section).

    >>> from qforge.sim.model.spec import load_preset
    >>> from qforge.sim.host.packing import command_bits
    >>> from qforge.sim.model.numerics import standard_modes
    >>> tiny = load_preset("tiny")
    >>> decode_command(tiny, command_bits(tiny, 3, 5, 7, standard_modes(tiny)["mixed"]))
    Command(m_tiles=2, n_tiles=3, depth=7, precision=Precision(a=OperandPrecision(blocks=2, kept=2, ...
    >>> decode_command(tiny, command_bits(tiny, 200, 1, 7, standard_modes(tiny)["exact"]))
    Traceback (most recent call last):
    ...
    qforge.fpga.board_model.CommandError: m_tiles 100, n_tiles 1, depth 7: GEMM: A needs ceil(m / R) * ceil(k / P) = 100 * 7 = 700 buffer words; allowed at most buffer_depth = 512
    """
    layout = command_layout(config)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits < (1 << layout.size):
        raise CommandError(f"command beat {bits!r}: must be an integer 0 .. 2**{layout.size} - 1")
    values = {path: value for (path, *_), value in
              zip(layout_fields(layout), unpack_fields(leaf_fields(layout), bits))}

    def operand(name):
        return OperandPrecision(blocks=values[f"{name}.blocks_minus_one"] + 1,
                                kept=values[f"{name}.kept_minus_one"] + 1,
                                selection=Selection(values[f"{name}.dynamic"]),
                                vrq=bool(values[f"{name}.vrq"]))

    precision = Precision(operand("a"), operand("b"))
    try:
        precision.validate(config)
    except ValueError as error:
        raise CommandError(str(error)) from None
    depth = values["depth_minus_one"] + 1
    if depth > config.max_reduction_depth:
        raise CommandError(f"depth = {depth}: allowed range is 1 .. "
                           f"{config.max_reduction_depth} (arithmetic.max_reduction_depth)")
    m_tiles, n_tiles = values["m_tiles_minus_one"] + 1, values["n_tiles_minus_one"] + 1
    # The golden model's rule, for the m_tiles * R by n_tiles * C result the tiles hold.
    error = gemm_capacity_error(config, m_tiles * config.rows, n_tiles * config.cols, depth)
    if error is not None:
        raise CommandError(f"m_tiles {m_tiles}, n_tiles {n_tiles}, depth {depth}: {error}")
    limit = config.accumulator_width - 1
    if values["output.rounding"] not in tuple(Rounding):
        raise CommandError(f"output.rounding = {values['output.rounding']}: allowed "
                           + ", ".join(f"{r.value} ({r.name})" for r in Rounding))
    if values["output.exponent"] > limit:
        raise CommandError(f"output.exponent = {values['output.exponent']}: allowed range "
                           f"is 0 .. {limit}")
    vrq = bool(values["output.vrq"])
    parameters = OutputParameters(
        shift=values["output.shift"], rounding=Rounding(values["output.rounding"]),
        relu=bool(values["output.relu"]), seed=values["output.seed"],
        tensor=values["output.tensor"],
        vrq_exponent=values["output.exponent"] if vrq else None,
        # The stage ignores ``wide`` for VRQ words (they are always output_width bits).
        wide=bool(values["output.wide"]) and not vrq)
    try:
        parameters.validate(config)
    except ValueError as error:
        raise CommandError(str(error)) from None
    return Command(m_tiles, n_tiles, depth, precision,
                   parameters if values["output.quantize"] else None,
                   bool(values.get("skip_zeros", 0)))


def _beats_to_matrix(config: Config, kind: Kind, beats: list[int], count_tiles: int,
                     words: int) -> np.ndarray:
    """The inverse of :func:`qforge.sim.host.packing.pack_operands` for one operand: A beats
    to the padded ``m_tiles*R x words*P`` matrix, B beats to ``words*P x n_tiles*C``."""
    lanes = config.block_multipliers
    if kind == Kind.A_DATA:
        fields = leaf_fields(a_beat_layout(config))
        values = np.array([unpack_fields(fields, beat) for beat in beats], dtype=np.int64)
        # (tile, word, row, lane) -> (tile, row, word, lane)
        values = values.reshape(count_tiles, words, config.rows, lanes).transpose(0, 2, 1, 3)
        return values.reshape(count_tiles * config.rows, words * lanes)
    fields = leaf_fields(b_beat_layout(config))
    values = np.array([unpack_fields(fields, beat) for beat in beats], dtype=np.int64)
    # (tile, word, col, lane) -> (word, lane, tile, col)
    values = values.reshape(count_tiles, words, config.cols, lanes).transpose(1, 3, 0, 2)
    return values.reshape(words * lanes, count_tiles * config.cols)


class _Load:
    """A valid command waiting for its operand beats."""

    def __init__(self, command: Command, config: Config):
        self.command = command
        self.a_needed = command.a_beats(config)
        self.b_needed = command.b_beats(config)
        self.a: list[int] = []
        self.b: list[int] = []

    @property
    def complete(self) -> bool:
        return len(self.a) == self.a_needed and len(self.b) == self.b_needed


class BoardModel:
    """The board's link and accelerator, as :mod:`qforge.hdl.protocol` specifies them
    (see the module documentation for the exact behaviour).

    ``checks``: the order of the frame checks (default :data:`CHECKS`, the order
    protocol.py documents), so another order can be tried in one place.

    Drive it with :meth:`receive` (one byte at a time, at non-decreasing times in byte
    times) and :meth:`advance` (let time pass: fires the truncation timeout), and take what
    it sends with :meth:`transmit` (frames that start on the line by a given time) or, in
    tests that do not care about line timing, :meth:`feed` and :meth:`flush`.

    What happened is recorded for tests: :attr:`executed` (``(kind, seq)`` of every
    executed data frame), :attr:`duplicates` (re-ACKed retransmissions), :attr:`naks`
    (the reasons of every NAK sent), :attr:`commands` (accepted commands),
    :attr:`rejected_commands` (the :class:`CommandError` of every dropped one),
    :attr:`gemms` (GEMMs computed), :attr:`stuck` (why the frame being executed waits,
    None when none does), :attr:`stalls` (that reason for every NAK STALLED) and
    :attr:`aborts` (ABORTs executed).
    """

    def __init__(self, config: Config, *, checks: tuple[str, ...] = CHECKS):
        if sorted(checks) != sorted(CHECKS):
            raise ValueError(f"checks = {checks!r}: must be an ordering of {CHECKS}")
        self.config = config
        self.checks = tuple(checks)
        self.fingerprint = config_fingerprint(config)
        self._beat_bytes = {kind: beat_bytes(config, kind)
                            for kind in (Kind.COMMAND, Kind.A_DATA, Kind.B_DATA, Kind.RESULT)}
        self._result_fields = leaf_fields(result_layout(config))
        self.reset()

    def reset(self) -> None:
        """The state after the board's reset (time restarts at 0)."""
        self.time = 0.0
        self.last_seq = 0xFF
        self.accelerator_error = False
        self.frame_rejected = False
        self.rejected_frames = 0
        self.result_counter = 0
        self.aborted = False
        self.stuck: str | None = None
        self._stall_since = 0.0                  # when the stuck frame's wait began
        self._stalled_seq = 0
        self._frame: bytearray | None = None     # the frame being received
        self._last_byte = 0.0
        self._load: _Load | None = None
        self._complete: deque[_Load] = deque()   # operands complete, not yet computed
        self._responses: deque[tuple[float, Kind, int, Nak | None]] = deque()
        self._results: deque[tuple[float, int]] = deque()
        self._tx_free = 0.0
        self._sent: deque[tuple[float, bytes]] = deque()
        self.executed: list[tuple[Kind, int]] = []
        self.duplicates = 0
        self.naks: list[Nak] = []
        self.commands: list[Command] = []
        self.rejected_commands: list[CommandError] = []
        self.gemms = 0
        self.stalls: list[str] = []
        self.aborts = 0

    # ---- time and the receiver --------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        """When the frame being received is truncated if no byte arrives (byte times)."""
        return None if self._frame is None else self._last_byte + TIMEOUT_BYTE_TIMES

    def stall_deadline(self) -> float | None:
        """When the stuck frame is answered with NAK STALLED if nothing changes:
        STALL_TIMEOUT_BYTE_TIMES after the later of the stall and the end of the last
        frame the transmit line sends before then (a frame being sent restarts the
        wait, as in the hardware)."""
        if self.stuck is None:
            return None
        while True:
            deadline = max(self._stall_since, self._tx_free) + STALL_TIMEOUT_BYTE_TIMES
            self._schedule(deadline)
            if max(self._stall_since, self._tx_free) + STALL_TIMEOUT_BYTE_TIMES == deadline:
                return deadline

    def next_event(self) -> float | None:
        """The earliest time at which the model does something without new input: the
        truncation timeout, the stall timeout, or the start of the next frame on the
        transmit line."""
        times = [t for t in (self.deadline, self.stall_deadline(), self._next_start())
                 if t is not None]
        return min(times) if times else None

    def advance(self, time: float) -> None:
        """Let time pass up to ``time`` (byte times) with no byte received: a frame whose
        gap reaches TIMEOUT_BYTE_TIMES is truncated at that moment, a stuck frame is
        NAKed STALLED at :meth:`stall_deadline`."""
        if time < self.time:
            raise ValueError(f"time = {time}: the model is already at {self.time} "
                             f"(time only moves forward)")
        stall = self.stall_deadline()
        if stall is not None and stall <= time:
            self._schedule(stall)
            self.time = max(self.time, stall)
            self.stuck = None
            self._reject(Nak.STALLED, self._stalled_seq)
        deadline = self.deadline
        if deadline is not None and deadline <= time:
            self._schedule(deadline)
            self.time = max(self.time, deadline)
            frame, self._frame = self._frame, None
            seq = frame[2] if len(frame) > 2 else 0
            self._reject(Nak.TRUNCATED, seq)
        self._schedule(time)
        self.time = time

    def receive(self, byte: int, time: float) -> None:
        """One byte from the host, fully arrived at ``time`` (byte times)."""
        if not 0 <= byte <= 0xFF:
            raise ValueError(f"byte = {byte!r}: allowed range is 0 .. 255")
        self.advance(time)
        if self.stuck is not None or self._responses:
            return                      # busy with the last frame: the byte is dropped
        if self._frame is None:
            if byte == SYNC:
                self._frame = bytearray([byte])
                self._last_byte = time
            return
        self._frame.append(byte)
        self._last_byte = time
        if len(self._frame) >= HEADER_BYTES:
            length = self._frame[3] | (self._frame[4] << 8)
            if length > MAX_PAYLOAD:
                frame, self._frame = self._frame, None
                self._reject(Nak.LENGTH, frame[2])
            elif len(self._frame) == HEADER_BYTES + length + CRC_BYTES:
                frame, self._frame = bytes(self._frame), None
                self._check(frame, length)

    def feed(self, data: bytes, *, gap: float = 0.0) -> list[Frame]:
        """Receive ``data`` byte after byte, as a stop-and-wait host sends it: starting
        ``gap`` byte times after the transmit line has sent everything queued so far (and
        not before :attr:`time`), one byte time apart; return every frame sent since the
        last :meth:`feed`/:meth:`flush` (see :meth:`flush`)."""
        self._schedule(math.inf)
        time = max(self.time, self._tx_free) + gap
        for byte in data:
            time += 1.0
            self.receive(byte, time)
        return self.flush()

    def flush(self) -> list[Frame]:
        """Every frame the model has queued or sent that was not yet taken, parsed, as if
        the transmit line ran until it was empty (ignores line timing; does not move
        :attr:`time`, so no truncation fires)."""
        parser = FrameParser()
        frames = parser.feed(b"".join(frame for _, frame in self.transmit(math.inf)))
        return frames

    # ---- checks and execution -----------------------------------------------------------
    def _check(self, frame: bytes, length: int) -> None:
        kind, seq = frame[1], frame[2]
        payload = frame[HEADER_BYTES:HEADER_BYTES + length]
        crc = int.from_bytes(frame[HEADER_BYTES + length:], "little")
        for check in self.checks:
            if check == "kind" and kind not in REQUEST_KINDS:
                return self._reject(Nak.KIND, seq)
            if check == "crc" and crc16(frame[1:HEADER_BYTES + length]) != crc:
                return self._reject(Nak.CRC, seq)
            if check == "beats":
                size = self._beat_bytes.get(kind, 0)
                if (kind in CONTROL_KINDS and length) or (size and length % size):
                    return self._reject(Nak.LENGTH, seq)
            if check == "sequence" and kind in DATA_KINDS \
                    and seq not in (self.last_seq, (self.last_seq + 1) & 0xFF):
                return self._reject(Nak.SEQUENCE, seq)
        if kind == Kind.STATUS:
            self._respond(Kind.STATUS_REPLY, seq)
            return
        if kind == Kind.ABORT:
            self._abort(seq)
            return
        if seq == self.last_seq:
            self.duplicates += 1
            self._respond(Kind.ACK, seq)
            return
        self.executed.append((Kind(kind), seq))
        if self._push(Kind(kind), bytes_to_beats(self.config, kind, payload)):
            self.last_seq = seq             # once the last beat is taken, with the ACK
            self._respond(Kind.ACK, seq)
        else:
            self._stall_since, self._stalled_seq = self.time, seq
        # The ACK goes when the last beat is taken; the results come after it.
        while self._complete:
            self._compute(self._complete.popleft())

    def _reject(self, reason: Nak, seq: int) -> None:
        self.frame_rejected = True
        self.rejected_frames = min(255, self.rejected_frames + 1)
        self.naks.append(reason)
        self._respond(Kind.NAK, seq, reason)

    def _push(self, kind: Kind, beats: list[int]) -> bool:
        """Push a good frame's beats into the accelerator; False if a beat can never be
        taken (the model is then :attr:`stuck`)."""
        for index, beat in enumerate(beats):
            load = self._load
            if kind == Kind.COMMAND:
                if load is not None:
                    return self._stick(f"COMMAND beat {index} waits: the previous command "
                                       f"still waits for {load.a_needed - len(load.a)} A and "
                                       f"{load.b_needed - len(load.b)} B beats")
                try:
                    command = decode_command(self.config, beat)
                except CommandError as error:
                    self.accelerator_error = True
                    self.rejected_commands.append(error)
                    continue
                self.commands.append(command)
                self._load = _Load(command, self.config)
            else:
                name = "A" if kind == Kind.A_DATA else "B"
                taken = None if load is None else (load.a if kind == Kind.A_DATA else load.b)
                needed = 0 if load is None else (load.a_needed if kind == Kind.A_DATA
                                                 else load.b_needed)
                if taken is None or len(taken) == needed:
                    return self._stick(f"{kind.name} beat {index} waits: no command asks for "
                                       f"more {name} beats")
                taken.append(beat)
            if self._load is not None and self._load.complete:
                self._complete.append(self._load)
                self._load = None
        return True

    def _stick(self, why: str) -> bool:
        self.stuck = why
        self.stalls.append(why)
        self._frame = None
        return False

    def _abort(self, seq: int) -> None:
        """ABORT: reset the accelerator; what the transmit line started stays sent."""
        self._schedule(self.time)
        self._load = None
        self._complete.clear()
        self._results.clear()
        self.accelerator_error = False
        self.result_counter = 0
        self.last_seq = seq
        self.aborted = True
        self.aborts += 1
        self._respond(Kind.ACK, seq)

    def _compute(self, load: _Load) -> None:
        config, command = self.config, load.command
        words = command.words(config)
        a = _beats_to_matrix(config, Kind.A_DATA, load.a, command.m_tiles, words)
        b = _beats_to_matrix(config, Kind.B_DATA, load.b, command.n_tiles, words)
        try:
            result = gemm(a[:, :command.depth], b[:command.depth, :], config,
                          command.precision)
            if command.output is not None:
                result = output_operands(result, config, command.output)
        except ValueError as error:
            raise BoardModelError(f"the operands of GEMM {self.gemms} do not fit its "
                                  f"command's precision ({error}); the hardware's result is "
                                  f"not defined by the golden model") from error
        rows = result_order(config, result).tolist()
        for index, row in enumerate(rows):
            beat = pack_fields(self._result_fields, row + [int(index == len(rows) - 1)])
            self._results.append((self.time, beat))
        self.gemms += 1

    # ---- status and the transmitter -----------------------------------------------------
    def _snapshot(self) -> Status:
        idle = self._load is None and not self._complete and not self._results
        return Status(idle=idle, accelerator_error=self.accelerator_error,
                      frame_rejected=self.frame_rejected, last_seq=self.last_seq,
                      rejected_frames=self.rejected_frames, fingerprint=self.fingerprint,
                      aborted=self.aborted)

    def status(self) -> Status:
        """The status a response starting now would carry (nothing is cleared)."""
        self._schedule(self.time)
        return self._snapshot()

    def _respond(self, kind: Kind, seq: int, reason: Nak | None = None) -> None:
        self._responses.append((self.time, kind, seq, reason))

    def _next_start(self) -> float | None:
        ready = [queue[0][0] for queue in (self._responses, self._results) if queue]
        return max(self._tx_free, min(ready)) if ready else None

    def _schedule(self, until: float) -> None:
        """Start every frame that the transmit line starts by ``until``."""
        while True:
            start = self._next_start()
            if start is None or start > until:
                return
            if self._responses and self._responses[0][0] <= start:
                _, kind, seq, reason = self._responses.popleft()
                payload = self._snapshot().encode()
                if kind == Kind.NAK:
                    payload = bytes([reason]) + payload
                elif kind == Kind.STATUS_REPLY:
                    self.frame_rejected = False
                    self.aborted = False
                frame = encode_frame(kind, seq, payload)
            else:
                _, beat = self._results.popleft()
                frame = encode_frame(Kind.RESULT, self.result_counter,
                                     beat.to_bytes(self._beat_bytes[Kind.RESULT], "little"))
                self.result_counter = (self.result_counter + 1) & 0xFF
            self._sent.append((start, frame))
            self._tx_free = start + len(frame)

    def transmit(self, until: float) -> list[tuple[float, bytes]]:
        """``(start time, frame bytes)`` of every frame that starts on the transmit line by
        ``until`` (byte times) and was not taken yet; byte ``k`` of a frame has fully
        arrived at ``start + k + 1``."""
        self._schedule(until)
        sent = list(self._sent)
        self._sent.clear()
        return sent
