"""The host link protocol: framed packets over a UART, defined once for the host driver
(:mod:`qforge.fpga.host`) and the hardware (:mod:`qforge.hdl.link`).

Every frame, in either direction, is::

    offset  size  field
    0       1     SYNC      0xA5
    1       1     KIND      what the frame is (REQUEST_KINDS, RESPONSE_KINDS)
    2       1     SEQ       sequence number (see below)
    3       2     LENGTH    payload bytes, little-endian, 0 .. MAX_PAYLOAD
    5       L     PAYLOAD
    5+L     2     CRC       CRC-16/CCITT-FALSE (:func:`crc16`) of bytes 1 .. 4+L
                            (KIND through the end of PAYLOAD), little-endian

Bytes between frames that are not SYNC are ignored (the receiver hunts for SYNC).

**Requests** (host to board), stop-and-wait: the host sends one frame and waits for its
ACK or NAK before it sends the next.

* ``COMMAND``, ``A_DATA``, ``B_DATA``: a whole number of ``cmd``, ``a_in`` or ``b_in``
  beats (:func:`beat_bytes` bytes each, the beat's bits little-endian, zero-padded to a
  whole byte). The board checks the whole frame before a single beat reaches the
  accelerator; a frame that fails any check is answered with a NAK and never executed.
  A good frame's beats are pushed into the accelerator's stream in order, and the ACK is
  sent when the last beat has been accepted. An empty data frame has zero beats: it is
  executed (nothing is pushed) and advances ``last_seq``.
* ``STATUS``: no payload, no sequence check, never executed; answered with
  ``STATUS_REPLY``.
* ``ABORT``: no payload, no sequence check. Brings the board back to a known state
  whatever an earlier host left half done: the accelerator behind the link is reset
  (synchronously, for one cycle: a command waiting for operands, operand beats, a GEMM
  computing and result beats not yet sent are all dropped, and the sticky error flag is
  cleared), the result counter restarts at 0, ``last_seq := SEQ`` (so the host chooses
  where its sequence numbers continue: its next data frame is ``SEQ + 1``) and status
  bit 3 is set. Answered with ``ACK`` (SEQ = the ABORT's), whose status shows the
  accelerator idle. A RESULT frame already on the line when the ABORT is checked is
  sent whole, *before* the ACK; nothing from before the ABORT follows the ACK. Sending
  ABORT again (its ACK was lost) is harmless: the accelerator is reset again.

**Checks, in this order** (:class:`Nak` names the reason):

1. ``LENGTH > MAX_PAYLOAD``: answered with ``NAK LENGTH`` as soon as the header is in;
   the receiver then hunts for SYNC again.
2. the CRC (``NAK CRC``). It comes first among the checks of a whole frame so that line
   noise, wherever it hits, is always answered with CRC (retried by the host); the
   remaining NAKs answer intact frames only, so they are real host errors.
3. ``KIND`` is a request kind (``NAK KIND``).
4. ``LENGTH`` is a whole number of beats of that kind, and 0 for STATUS (``NAK LENGTH``).
5. sequence (``NAK SEQUENCE``), data frames only, see below.

ABORT is checked like STATUS (CRC, KIND, LENGTH 0).

**No wait is unbounded.** Executing a data frame pushes its beats into a stream that
the accelerator may not take (a host that stopped mid-GEMM left the accelerator waiting
for other beats; operand beats no command asked for; a command while another waits for
operands). If a beat is not taken for :data:`STALL_TIMEOUT_BYTE_TIMES` byte times during
which the board's transmit line is idle (a result frame being sent restarts the wait:
the accelerator is making progress), the frame is answered with ``NAK STALLED`` and the
receiver hunts for SYNC again. A STALLED frame may have been *partly* executed (the
beats before the stalled one were taken) and ``last_seq`` does not move: the accelerator
is in an unknown state until an ``ABORT``. Every other wait is bounded too: a frame
being received by the truncation timeout below, a response by the frame the transmitter
is sending. So whatever bytes arrived before, a STATUS sent once both directions of the
line have been quiet for ``TIMEOUT_BYTE_TIMES + STALL_TIMEOUT_BYTE_TIMES`` byte times is
answered, after at most the frame being sent. (The hardware's stall wait is longer only on a
configuration whose longest output tile computes for longer:
:attr:`qforge.hdl.link.HostLink.stall_cycles`.)

A frame whose next byte does not arrive within :data:`TIMEOUT_BYTE_TIMES` byte times is
answered with ``NAK TRUNCATED`` (SEQ as received, 0 if the SEQ byte never arrived).
Bytes that arrive while a frame is checked or executed (at most the stall timeout), or
while its response waits for the line, are dropped (a stop-and-wait host sends nothing
then).

**Sequence numbers.** The board remembers the sequence number of the last request it
executed (``last_seq``, 0xFF after reset, so the first is 0). A data frame with
``SEQ == last_seq + 1`` (mod 256) is executed; one with ``SEQ == last_seq`` is a
retransmission whose ACK was lost: it is acknowledged again and *not* executed; any
other ``SEQ`` gets ``NAK SEQUENCE``. The host learns ``last_seq`` from a STATUS reply.

**Responses** (board to host). A response waiting for the line goes before the next
RESULT frame (they are interleaved at frame boundaries only).

* ``ACK`` (SEQ = the request's), payload :data:`STATUS_BYTES` of status.
* ``NAK`` (SEQ = the request's as received), payload: one :class:`Nak` reason byte, then
  the status.
* ``STATUS_REPLY`` (SEQ = the request's), payload: the status.
* ``RESULT`` (SEQ = the board's result counter, 0 after reset, +1 per frame): one
  ``result`` beat, :func:`beat_bytes` bytes. A gap in SEQ means a result frame was lost.

The status in a response is a snapshot taken when the response frame starts: a NAK's
status already counts its rejection, and the ACK of a COMMAND already shows whether the
accelerator dropped that command as invalid (its error flag is set one cycle after the
hand-off).

**Status** (:class:`Status`, :data:`STATUS_BYTES` bytes): flags (bit 0 accelerator idle,
bit 1 accelerator error, sticky until a reset or an ABORT: an invalid command was
dropped; bit 2 a frame was rejected since the last STATUS reply; bit 3 an ABORT reset
the accelerator since the last STATUS reply; bits 4 to 7 are 0), ``last_seq``, the count
of rejected frames (NAKs of any reason, STALLED included; saturating at 255) and the
configuration's 16-bit fingerprint (:func:`config_fingerprint`), so the host can refuse
a board built for another configuration. Bits 2 and 3 are cleared by sending a
STATUS_REPLY (which still reports them).
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass

from qforge.sim.model.capacity import tiles
from qforge.sim.model.errors import QforgeError
from qforge.sim.model.spec import Config

__all__ = ["SYNC", "HEADER_BYTES", "CRC_BYTES", "MAX_PAYLOAD", "STATUS_BYTES",
           "TIMEOUT_BYTE_TIMES", "STALL_TIMEOUT_BYTE_TIMES", "Kind", "Nak", "REQUEST_KINDS",
           "DATA_KINDS", "CONTROL_KINDS",
           "RESPONSE_KINDS", "crc16", "crc16_update", "encode_frame", "Frame",
           "FrameParser", "Status", "beat_bytes", "beat_width", "beats_to_bytes",
           "bytes_to_beats", "config_fingerprint", "ProtocolError"]

SYNC = 0xA5
#: SYNC, KIND, SEQ, LENGTH (2).
HEADER_BYTES = 5
CRC_BYTES = 2
#: Largest payload the board buffers (one frame is checked whole before it executes).
MAX_PAYLOAD = 1024
#: Bytes of a status payload.
STATUS_BYTES = 5
#: A frame whose next byte does not arrive within this many byte times (10 bit times
#: each) is dropped and answered with NAK TRUNCATED.
TIMEOUT_BYTE_TIMES = 64
#: A data frame whose next beat the accelerator does not take for this many byte times of
#: an idle transmit line is answered with NAK STALLED. 256 byte times (22 ms at 115200
#: baud) is far above the longest a beat waits in a GEMM sent as the host driver sends
#: it (one output tile's compute, some thousands of clock cycles, during which no result
#: frame is sent), and far below the host's reply timeout (1 s by default), so a host
#: never gives up on a board that is only clearing a stalled frame.
STALL_TIMEOUT_BYTE_TIMES = 256


class ProtocolError(QforgeError, ValueError):
    """A frame or payload that breaks the protocol (the message says which rule)."""


class Kind(enum.IntEnum):
    """Frame kinds (the KIND byte)."""

    COMMAND = 0x01   #: request: ``cmd`` beats
    A_DATA = 0x02    #: request: ``a_in`` beats
    B_DATA = 0x03    #: request: ``b_in`` beats
    STATUS = 0x04    #: request (no payload) and its reply (status payload)
    ABORT = 0x05     #: request (no payload): reset the accelerator, last_seq := SEQ
    ACK = 0x81       #: response: request executed (or a duplicate), status payload
    NAK = 0x82       #: response: request rejected, reason byte + status payload
    RESULT = 0x83    #: response: one ``result`` beat
    STATUS_REPLY = 0x84  #: response to STATUS: status payload


#: Kinds a host may send, and the data kinds among them (executed, sequence-checked);
#: the control kinds carry no payload and no sequence check.
REQUEST_KINDS = (Kind.COMMAND, Kind.A_DATA, Kind.B_DATA, Kind.STATUS, Kind.ABORT)
DATA_KINDS = (Kind.COMMAND, Kind.A_DATA, Kind.B_DATA)
CONTROL_KINDS = (Kind.STATUS, Kind.ABORT)
RESPONSE_KINDS = (Kind.ACK, Kind.NAK, Kind.RESULT, Kind.STATUS_REPLY)


class Nak(enum.IntEnum):
    """Why a request was rejected (the first payload byte of a NAK)."""

    CRC = 1          #: the CRC does not match (checked before KIND and whole beats)
    LENGTH = 2       #: LENGTH > MAX_PAYLOAD, or not a whole number of beats (or STATUS
                     #: or ABORT with a payload)
    KIND = 3         #: KIND is not a request kind (in a frame with a good CRC)
    SEQUENCE = 4     #: SEQ is neither last_seq + 1 nor last_seq
    TRUNCATED = 5    #: the frame stopped arriving (TIMEOUT_BYTE_TIMES)
    STALLED = 6      #: the accelerator did not take a beat (STALL_TIMEOUT_BYTE_TIMES);
                     #: the frame may be partly executed: ABORT before the next command

    @property
    def explanation(self) -> str:
        return {Nak.CRC: "CRC mismatch (frame corrupted)",
                Nak.LENGTH: "bad LENGTH (too long, or not a whole number of beats)",
                Nak.KIND: "unknown KIND",
                Nak.SEQUENCE: "unexpected sequence number",
                Nak.TRUNCATED: "frame truncated (bytes stopped arriving)",
                Nak.STALLED: "the accelerator did not take the frame's beats (it waits "
                             "for other frames: a command or operands left half sent)"}[self]


def crc16_update(crc: int, byte: int) -> int:
    """One byte of CRC-16/CCITT-FALSE (polynomial 0x1021, MSB first, no reflection, no
    final XOR). The hardware computes the same eight steps in one cycle per byte.

    >>> hex(crc16_update(0xFFFF, 0x31))
    '0xc782'
    """
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (the standard check value for ``b"123456789"`` is
    0x29B1).

    >>> hex(crc16(b"123456789"))
    '0x29b1'
    """
    for byte in data:
        crc = crc16_update(crc, byte)
    return crc


def encode_frame(kind: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame, ready to send.

    >>> encode_frame(Kind.STATUS, 7).hex(" ")
    'a5 04 07 00 00 a1 cb'
    """
    if not 0 <= seq <= 0xFF:
        raise ProtocolError(f"SEQ = {seq}: allowed 0 .. 255")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes: allowed 0 .. {MAX_PAYLOAD}")
    body = bytes([int(kind), seq, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload)
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "little")


@dataclass(frozen=True)
class Frame:
    """A received frame (CRC already checked)."""

    kind: int
    seq: int
    payload: bytes

    @property
    def kind_name(self) -> str:
        try:
            return Kind(self.kind).name
        except ValueError:
            return f"0x{self.kind:02x}"


class FrameParser:
    """Split a byte stream into frames (sans I/O: :meth:`feed` bytes as they arrive).

    Frames with a bad CRC or an impossible LENGTH are dropped and counted in
    :attr:`rejected` (with the reason in :attr:`last_error`); bytes outside frames are
    skipped.

    >>> parser = FrameParser()
    >>> parser.feed(b"junk" + encode_frame(Kind.ACK, 3, b"\\x01\\xff\\x00\\x12\\x34"))
    [Frame(kind=129, seq=3, payload=b'\\x01\\xff\\x00\\x124')]
    >>> bad = bytearray(encode_frame(Kind.RESULT, 0, b"ab")); bad[5] ^= 1
    >>> parser.feed(bytes(bad)), parser.rejected, parser.last_error
    ([], 1, 'CRC mismatch in a RESULT frame')
    """

    def __init__(self):
        self._buffer = bytearray()
        self.rejected = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a frame not yet complete."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial frame (after a timeout)."""
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer.extend(data)
        frames = []
        while True:
            start = self._buffer.find(bytes([SYNC]))
            if start < 0:
                self._buffer.clear()
                return frames
            del self._buffer[:start]
            if len(self._buffer) < HEADER_BYTES:
                return frames
            length = self._buffer[3] | (self._buffer[4] << 8)
            if length > MAX_PAYLOAD:
                self._reject(f"LENGTH {length} > {MAX_PAYLOAD}")
                del self._buffer[:1]
                continue
            total = HEADER_BYTES + length + CRC_BYTES
            if len(self._buffer) < total:
                return frames
            body = bytes(self._buffer[1:HEADER_BYTES + length])
            received = int.from_bytes(self._buffer[HEADER_BYTES + length:total], "little")
            if crc16(body) != received:
                kind = Frame(body[0], 0, b"").kind_name
                self._reject(f"CRC mismatch in a {kind} frame")
                # Resynchronize on the next SYNC after this one.
                del self._buffer[:1]
                continue
            frames.append(Frame(body[0], body[1], body[4:]))
            del self._buffer[:total]

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self.last_error = reason


@dataclass(frozen=True)
class Status:
    """The board's status (payload of ACK, NAK after its reason byte, STATUS_REPLY)."""

    idle: bool
    accelerator_error: bool
    frame_rejected: bool
    last_seq: int
    rejected_frames: int
    fingerprint: int
    #: An ABORT reset the accelerator since the last STATUS reply (flag bit 3).
    aborted: bool = False

    @classmethod
    def decode(cls, payload: bytes) -> "Status":
        """
        >>> Status.decode(bytes([0b1011, 4, 2, 0x34, 0x12]))
        Status(idle=True, accelerator_error=True, frame_rejected=False, last_seq=4, rejected_frames=2, fingerprint=4660, aborted=True)
        """
        if len(payload) != STATUS_BYTES:
            raise ProtocolError(f"status payload of {len(payload)} bytes: expected "
                                f"{STATUS_BYTES}")
        flags = payload[0]
        return cls(bool(flags & 1), bool(flags & 2), bool(flags & 4), payload[1], payload[2],
                   payload[3] | (payload[4] << 8), aborted=bool(flags & 8))

    def encode(self) -> bytes:
        flags = int(self.idle) | (int(self.accelerator_error) << 1) | \
            (int(self.frame_rejected) << 2) | (int(self.aborted) << 3)
        return bytes([flags, self.last_seq, self.rejected_frames,
                      self.fingerprint & 0xFF, self.fingerprint >> 8])


def beat_width(config: Config, kind: int) -> int:
    """Bits of one beat carried by a frame of ``kind`` (COMMAND, A_DATA, B_DATA, RESULT):
    the width of the matching stream payload of the accelerator."""
    from qforge.hdl.layouts import a_beat_layout, b_beat_layout, command_layout, result_layout

    layouts = {Kind.COMMAND: command_layout, Kind.A_DATA: a_beat_layout,
               Kind.B_DATA: b_beat_layout, Kind.RESULT: result_layout}
    if kind not in layouts:
        raise ProtocolError(f"KIND 0x{int(kind):02x} carries no beats")
    return layouts[Kind(kind)](config).size


def beat_bytes(config: Config, kind: int) -> int:
    """Bytes of one beat on the link: its bits little-endian, padded to a whole byte.

    >>> from qforge.sim.model.spec import load_preset
    >>> [beat_bytes(load_preset("tiny"), kind) for kind in (Kind.COMMAND, Kind.A_DATA,
    ...                                                    Kind.B_DATA, Kind.RESULT)]
    [13, 2, 2, 7]
    """
    return tiles(beat_width(config, kind), 8)


def beats_to_bytes(config: Config, kind: int, beats: list[int]) -> bytes:
    """Beats (integers, as :mod:`qforge.sim.host.packing` makes them) to a frame payload."""
    size, width = beat_bytes(config, kind), beat_width(config, kind)
    out = bytearray()
    for beat in beats:
        if not 0 <= beat < (1 << width):
            raise ProtocolError(f"beat {beat:#x} does not fit in {width} bits")
        out += beat.to_bytes(size, "little")
    return bytes(out)


def bytes_to_beats(config: Config, kind: int, payload: bytes) -> list[int]:
    """The inverse of :func:`beats_to_bytes` (the payload must be whole beats)."""
    size = beat_bytes(config, kind)
    if len(payload) % size:
        raise ProtocolError(f"{Kind(kind).name} payload of {len(payload)} bytes is not a "
                            f"whole number of {size}-byte beats")
    return [int.from_bytes(payload[i:i + size], "little")
            for i in range(0, len(payload), size)]


def config_fingerprint(config: Config) -> int:
    """16 bits identifying a configuration (its name and every field), reported in the
    status so the host can check the board was built for the configuration it packs
    beats for."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:2], "little")
