"""A simulated serial line between the host driver (:class:`qforge.fpga.host.Board`) and
the board model (:class:`qforge.fpga.board_model.BoardModel`), with injected faults.

:class:`LoopbackTransport` is a :class:`qforge.fpga.host.Transport` whose clock is
simulated (it advances with the bytes on the line and with the time a ``read`` waits, in
byte times of 10 bit times); :class:`Fault` corrupts, truncates or drops one chosen frame
in either direction, so the host's recovery can be tested in milliseconds.

>>> from qforge.sim.model.spec import load_preset
>>> from qforge.fpga.board_model import BoardModel
>>> from qforge.fpga.host import Board
>>> transport = LoopbackTransport(BoardModel(load_preset("tiny")), bytes_per_second=11520)
>>> Board(transport, load_preset("tiny")).status().idle
True
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass

from qforge.fpga.board_model import BoardModel
from qforge.hdl.protocol import (CRC_BYTES, HEADER_BYTES, MAX_PAYLOAD, REQUEST_KINDS,
                                  RESPONSE_KINDS, SYNC, crc16)

__all__ = ["Fault", "LoopbackTransport"]


@dataclass(frozen=True)
class Fault:
    """One fault the :class:`LoopbackTransport` injects, once.

    ``kind``: which frames are counted: a request kind (COMMAND, A_DATA, B_DATA, STATUS,
    ABORT; host to board), a response kind (ACK, NAK, RESULT, STATUS_REPLY; board to host), or
    None for every request frame. ``index``: the fault hits the ``index``-th such frame
    (from 0; retransmissions count). ``action``:

    * ``"corrupt"``: XOR the byte at ``offset`` (default: the last, i.e. the CRC) with
      ``mask``;
    * ``"truncate"``: send only the first ``offset`` bytes (default: half the frame);
    * ``"drop"``: the frame never arrives.
    """

    action: str
    kind: int | None = None
    index: int = 0
    offset: int | None = None
    mask: int = 0x01

    def __post_init__(self):
        if self.action not in ("corrupt", "truncate", "drop"):
            raise ValueError(f"Fault.action = {self.action!r}: allowed 'corrupt', "
                             f"'truncate', 'drop'")
        if self.kind is not None and self.kind not in REQUEST_KINDS + RESPONSE_KINDS:
            raise ValueError(f"Fault.kind = {self.kind!r}: allowed None or one of "
                             + ", ".join(k.name for k in REQUEST_KINDS + RESPONSE_KINDS))
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"Fault.index = {self.index!r}: must be an integer >= 0")
        if self.offset is not None and (not isinstance(self.offset, int) or self.offset < 0):
            raise ValueError(f"Fault.offset = {self.offset!r}: must be None or an integer >= 0")
        if not 1 <= self.mask <= 0xFF:
            raise ValueError(f"Fault.mask = {self.mask!r}: allowed range is 1 .. 255")

    @property
    def to_board(self) -> bool:
        return self.kind is None or self.kind in REQUEST_KINDS

    def apply(self, frame: bytes) -> bytes:
        """The frame as it arrives (b"" when dropped)."""
        if self.action == "drop":
            return b""
        if self.action == "truncate":
            keep = len(frame) // 2 if self.offset is None else self.offset
            if keep >= len(frame):
                raise ValueError(f"Fault.offset = {keep}: truncating a {len(frame)}-byte "
                                 f"frame keeps 0 .. {len(frame) - 1} bytes")
            return frame[:keep]
        offset = len(frame) - 1 if self.offset is None else self.offset
        if offset >= len(frame):
            raise ValueError(f"Fault.offset = {offset}: a {len(frame)}-byte frame has bytes "
                             f"0 .. {len(frame) - 1}")
        corrupted = bytearray(frame)
        corrupted[offset] ^= self.mask
        return bytes(corrupted)


def _split_frames(data: bytes) -> list[tuple[int | None, bytes]]:
    """``(kind, bytes)`` of the well-formed frames in ``data``; other bytes come as
    ``(None, bytes)`` runs."""
    pieces: list[tuple[int | None, bytes]] = []
    junk = bytearray()
    index = 0
    while index < len(data):
        if data[index] == SYNC and index + HEADER_BYTES <= len(data):
            length = data[index + 3] | (data[index + 4] << 8)
            end = index + HEADER_BYTES + length + CRC_BYTES
            if length <= MAX_PAYLOAD and end <= len(data) and \
                    crc16(data[index + 1:end - CRC_BYTES]) == \
                    int.from_bytes(data[end - CRC_BYTES:end], "little"):
                if junk:
                    pieces.append((None, bytes(junk)))
                    junk.clear()
                pieces.append((data[index + 1], bytes(data[index:end])))
                index = end
                continue
        junk.append(data[index])
        index += 1
    if junk:
        pieces.append((None, bytes(junk)))
    return pieces


class LoopbackTransport:
    """A :class:`qforge.fpga.host.Transport` whose far end is a :class:`BoardModel`, over a
    simulated full-duplex serial line of ``bytes_per_second`` (baud rate / 10).

    The clock (:attr:`time`, seconds) is simulated: :meth:`write` returns when the last
    byte is on the line (the clock advances by the bytes' line time); :meth:`read` returns
    as soon as bytes have arrived (all that arrive back to back, up to ``max_bytes``),
    advancing the clock to the last one, or after ``timeout`` seconds of the simulated
    clock with ``b""``. ``faults`` (:class:`Fault`) corrupt, truncate or drop chosen
    frames in either direction; :attr:`fired` lists those that have happened. The model
    sees host bytes at the moments they arrive, so a truncated frame is answered with
    NAK TRUNCATED once TIMEOUT_BYTE_TIMES byte times pass without a byte.

    Each ``write`` is split into frames to count them (the host writes whole frames);
    bytes that are not a well-formed frame pass unchanged and count as no frame.
    """

    def __init__(self, model: BoardModel, *, bytes_per_second: float, faults=()):
        if isinstance(bytes_per_second, bool) or not isinstance(bytes_per_second, (int, float)) \
                or not 0 < bytes_per_second < math.inf:
            raise ValueError(f"bytes_per_second = {bytes_per_second!r}: must be a positive "
                             f"number (the baud rate / 10)")
        self.model = model
        self.bytes_per_second = float(bytes_per_second)
        self.faults = list(faults or ())
        for fault in self.faults:
            if not isinstance(fault, Fault):
                raise ValueError(f"faults: {fault!r} is not a Fault")
        self.fired: list[tuple[Fault, int]] = []
        self._counts: Counter = Counter()
        self._now = model.time          # byte times
        self._host_free = model.time
        self._incoming: deque[tuple[float, int]] = deque()
        self.closed = False
        self.bytes_written = 0
        self.bytes_read = 0

    @property
    def time(self) -> float:
        """The simulated clock, in seconds."""
        return self._now / self.bytes_per_second

    def _fault_for(self, kind: int | None, to_board: bool) -> Fault | None:
        hit = None
        keys = [kind] + ([None] if to_board else [])
        for key in keys:
            count = self._counts[(to_board, key)]
            for fault in self.faults:
                if fault.to_board == to_board and fault.kind == key and fault.index == count \
                        and hit is None and (fault, count) not in self.fired:
                    hit = fault
                    self.fired.append((fault, count))
            self._counts[(to_board, key)] += 1
        return hit

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ValueError("write: the transport is closed")
        data = bytes(data)
        time = max(self._now, self._host_free, self.model.time)
        for kind, piece in _split_frames(data):
            if kind is not None:
                fault = self._fault_for(kind, True)
                if fault is not None:
                    sent = fault.apply(piece)
                    # A dropped or truncated frame's remaining bytes leave the line idle.
                    for byte in sent:
                        time += 1.0
                        self.model.receive(byte, time)
                    time += len(piece) - len(sent)
                    continue
            for byte in piece:
                time += 1.0
                self.model.receive(byte, time)
        self.bytes_written += len(data)
        self._host_free = time
        self._now = time
        self._pull(time)

    def _pull(self, until: float) -> None:
        """Let the model act up to ``until`` and put the bytes it sends on the line."""
        while True:
            event = self.model.next_event()
            if event is None or event > until:
                break
            self.model.advance(max(event, self.model.time))
            for start, frame in self.model.transmit(max(event, self.model.time)):
                self._deliver(start, frame)
        self.model.advance(max(until, self.model.time))
        for start, frame in self.model.transmit(until):
            self._deliver(start, frame)

    def _deliver(self, start: float, frame: bytes) -> None:
        fault = self._fault_for(frame[1], False)
        arrived = frame if fault is None else fault.apply(frame)
        for offset, byte in enumerate(arrived):
            self._incoming.append((start + offset + 1, byte))

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.closed:
            raise ValueError("read: the transport is closed")
        if max_bytes < 1:
            raise ValueError(f"max_bytes = {max_bytes!r}: must be at least 1")
        if not timeout >= 0:
            raise ValueError(f"timeout = {timeout!r}: must be >= 0 seconds")
        target = self._now + timeout * self.bytes_per_second
        # Let the board act until the first byte arrives or the timeout passes.
        while not (self._incoming and self._incoming[0][0] <= target):
            event = self.model.next_event()
            if event is None or event > target:
                break
            self._pull(event)
        if not (self._incoming and self._incoming[0][0] <= target):
            self._pull(target)
            self._now = target
            return b""
        out = bytearray()
        last = max(self._now, self._incoming[0][0] - 1.0)
        while len(out) < max_bytes:
            if len(self._incoming) < 2:
                self._pull(max(last, self._now))
            if not self._incoming:
                break
            arrival, byte = self._incoming[0]
            if arrival > target and out:
                break
            if out and arrival > last + 1.0 + 1e-9:
                break
            self._incoming.popleft()
            out.append(byte)
            last = max(last, arrival)
        self._now = max(self._now, last)
        self.bytes_read += len(out)
        return bytes(out)

    def idle(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass with the host line idle (what the board
        sends meanwhile stays queued for :meth:`read`)."""
        if not seconds >= 0:
            raise ValueError(f"seconds = {seconds!r}: must be >= 0")
        self._now += seconds * self.bytes_per_second
        self._pull(self._now)

    def close(self) -> None:
        self.closed = True
