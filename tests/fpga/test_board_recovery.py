"""A board survives a dead host (board model, :mod:`qforge.fpga.board_model`, through
the simulated line :class:`qforge.fpga.loopback.LoopbackTransport`): a host killed after
any frame of a GEMM, in the middle of any frame, or while results come back, is followed
by a new host whose ``connect()`` brings the board back to idle (ABORT) and whose next
GEMM is bit-exact with the golden model; operand frames no command asked for end in
NAK STALLED, never in silence; and the fuzz tier's random frame sequences (random kinds,
lengths, SEQs, garbage bytes, truncated frames) always leave STATUS answered and a GEMM
bit-exact."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import event, given, reject
from hypothesis import strategies as st

from qforge.fpga import board_model
from qforge.fpga.board_model import BoardModel, BoardModelError
from qforge.fpga.host import Board, HostError
from qforge.fpga.loopback import Fault, LoopbackTransport
from qforge.hdl.protocol import (HEADER_BYTES, REQUEST_KINDS, STALL_TIMEOUT_BYTE_TIMES,
                                  TIMEOUT_BYTE_TIMES, FrameParser, Kind, Nak, Status,
                                  beat_bytes,
                                  encode_frame)
from qforge.sim.host.packing import GemmJob
from qforge.sim.model.numerics import standard_modes
from qforge.sim.model.spec import load_preset
from tests.cli import run_qforge
from tests.fpga.test_host import BYTES_PER_SECOND, golden, operands
from tests.fuzz import fuzz_settings

TINY = load_preset("tiny")


class HostDied(Exception):
    """The first host's process ends here (the test's stand-in for a kill)."""


class DyingTransport:
    """The first host's end of a :class:`LoopbackTransport`: ``write`` number
    ``kill_at_write`` (from 0) sends only its first ``keep`` bytes and then the host
    dies; with ``kill_at_read``, the host dies at that read (from 0) after :attr:`armed`
    is set."""

    def __init__(self, line: LoopbackTransport, kill_at_write: int | None, keep: int = 0,
                 kill_at_read: int | None = None):
        self.line, self.kill_at_write, self.keep = line, kill_at_write, keep
        self.kill_at_read = kill_at_read
        self.writes = self.reads = 0
        self.armed = False

    def write(self, data: bytes) -> None:
        if self.writes == self.kill_at_write:
            if self.keep:
                self.line.write(data[:self.keep])
            raise HostDied(f"killed at write {self.writes}")
        self.writes += 1
        self.line.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.kill_at_read is not None and self.armed:
            if self.reads == self.kill_at_read:
                raise HostDied(f"killed at read {self.reads}")
            self.reads += 1
        return self.line.read(max_bytes, timeout)

    def close(self) -> None:
        pass


def _job(seed: int = 0, mode: str = "mixed") -> GemmJob:
    precision = standard_modes(TINY)[mode]
    a, b = operands(TINY, precision, 5, 3, 9, seed=seed)
    return GemmJob.build(TINY, a, b, precision)


#: The frames the first host writes for one GEMM: STATUS (connect), COMMAND, A_DATA,
#: B_DATA.
GEMM_WRITES = 4


def _second_host(line: LoopbackTransport) -> tuple[Board, list[str]]:
    """A new host on the same line: connect, STATUS, a bit-exact GEMM."""
    messages: list[str] = []
    board = Board(line, TINY, timeout=1.0, retries=3, log=messages.append)
    status = board.connect()
    assert status.idle and not status.accelerator_error
    assert board.status().idle
    job = _job(seed=7, mode="approx_dynamic")
    result = board.run(job)
    assert np.array_equal(result, golden(TINY, job.a, job.b, job.precision))
    return board, messages


def _kill_first_host(transport: DyingTransport) -> None:
    board = Board(transport, TINY, timeout=1.0, retries=3)
    with pytest.raises(HostDied):
        board.connect()
        board.run(_job())
        raise AssertionError("the first host was not killed")


def _kill_points():
    """(write index, bytes of it sent): after every frame, and inside every frame (after
    SYNC, inside the header, after the header, one byte before the end)."""
    frame_sizes = [7, 7 + beat_bytes(TINY, Kind.COMMAND)]    # STATUS, COMMAND (the
    points = [(index, 0) for index in range(GEMM_WRITES)]    # operand frames: > 9 bytes)
    for index in range(GEMM_WRITES):
        size = frame_sizes[index] if index < 2 else 9
        points += [(index, keep) for keep in sorted({1, 3, HEADER_BYTES, size - 1})]
    return points


@pytest.mark.parametrize("kill_at_write, keep", _kill_points())
@pytest.mark.parametrize("pause", [0.0, 0.5])
def test_host_killed_at_any_step_of_a_gemm(kill_at_write, keep, pause):
    """The first host dies before its write ``kill_at_write`` (after ``keep`` bytes of
    it); after ``pause`` seconds (0: at once, bytes still in flight) a new host
    connects, is answered and runs a bit-exact GEMM. A board left busy is aborted (and
    the new host says so)."""
    model = BoardModel(TINY)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND)
    _kill_first_host(DyingTransport(line, kill_at_write, keep))
    line.idle(pause)
    busy = not model.status().idle
    _, messages = _second_host(line)
    assert any("sending ABORT" in message for message in messages) == (model.aborts > 0)
    if busy and pause:
        assert model.aborts == 1
    assert model.stuck is None


@pytest.mark.parametrize("kill_at_read", [0, 1, 2])
def test_host_killed_while_results_come_back(kill_at_read):
    """Connected, the host dies at its ``kill_at_read``-th read of the GEMM: waiting for
    the COMMAND's ACK, the A_DATA's, or (2) after every frame was sent, before the
    B_DATA's ACK and the results (which follow it back to back) are read: what it did
    not read is discarded by the next host, which is not confused by it."""
    model = BoardModel(TINY)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND)
    first = DyingTransport(line, None, kill_at_read=kill_at_read)
    board = Board(first, TINY, timeout=1.0, retries=3)
    board.connect()
    first.armed = True
    with pytest.raises(HostDied):
        board.run(_job())
    _second_host(line)


def test_old_wedge_command_after_a_dead_host_is_stalled_not_silent():
    """The wedge the abort fixes: host 1 sends a COMMAND and dies; a host that sends the
    next COMMAND without connecting gets NAK STALLED (not silence blamed on the cable),
    STATUS is answered, and connecting aborts and recovers."""
    model = BoardModel(TINY)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND)
    _kill_first_host(DyingTransport(line, 2))                 # COMMAND sent, no operands
    board = Board(line, TINY, timeout=1.0, retries=3)
    board.sequence = model.last_seq                           # skip connect()
    command = _job().command.to_bytes(beat_bytes(TINY, Kind.COMMAND), "little")
    with pytest.raises(HostError) as error:
        board.send(Kind.COMMAND, command)
    assert str(error.value) == (
        f"the board could not execute the COMMAND frame (SEQ {model.last_seq + 1}): NAK "
        f"STALLED: the accelerator did not take its beats within {STALL_TIMEOUT_BYTE_TIMES} "
        f"byte times; it waits for other frames (a command or operands left half sent, "
        f"e.g. by a host that stopped mid-GEMM). Connect again: Board.connect() brings it "
        f"back to idle with an ABORT")
    assert model.naks[-1] == Nak.STALLED and "COMMAND beat 0 waits" in model.stalls[-1]
    assert not board.status().idle
    assert board.sequence is None                 # so the next send connects (aborts)
    _second_host(line)


def test_unsolicited_operand_frames_are_stalled_and_the_board_recovers():
    """A_DATA and B_DATA with no command: NAK STALLED after the stall timeout of an idle
    line (not before), nothing executed, STATUS answered; a GEMM afterwards is exact."""
    model = BoardModel(TINY)
    seq = 0                                       # a STALLED frame leaves last_seq
    for kind in (Kind.A_DATA, Kind.B_DATA):
        frame = encode_frame(kind, seq, bytes(2 * beat_bytes(TINY, kind)))
        assert model.feed(frame) == []                 # nothing yet: the beat waits
        start = model.time
        assert model.feed(encode_frame(Kind.STATUS, 9)) == []    # dropped while waiting
        model.advance(start + STALL_TIMEOUT_BYTE_TIMES - 1)
        assert model.flush() == []
        model.advance(start + STALL_TIMEOUT_BYTE_TIMES)
        (nak,) = model.flush()
        assert (nak.kind_name, nak.seq, nak.payload[0]) == ("NAK", seq, Nak.STALLED)
        status = Status.decode(nak.payload[1:])
        assert (status.idle, status.last_seq) == (True, 0xFF)
        (reply,) = model.feed(encode_frame(Kind.STATUS, 10))
        assert reply.kind_name == "STATUS_REPLY"
    assert model.rejected_frames == 2 and model.gemms == 0
    _second_host(LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND))


def test_abort_drops_results_and_restarts_the_result_counter():
    """ABORT while results wait: results not yet on the line are dropped, the result
    counter restarts at 0, last_seq := the ABORT's SEQ, status bit 3 until the next
    STATUS reply."""
    model = BoardModel(TINY)
    job = _job()
    frames = [(Kind.COMMAND, [job.command]), (Kind.A_DATA, job.a_beats),
              (Kind.B_DATA, job.b_beats)]
    for seq, (kind, beats) in enumerate(frames):
        payload = b"".join(beat.to_bytes(beat_bytes(TINY, kind), "little") for beat in beats)
        _receive(model, encode_frame(kind, seq, payload))
        model.advance(model.time + (200 if kind != Kind.B_DATA else 30))
    # The frames started on the line by now: the ACKs and the first results.
    before = FrameParser().feed(b"".join(frame for _, frame in model.transmit(model.time)))
    assert [frame.kind_name for frame in before] == ["ACK"] * 3 + ["RESULT"] * 2
    assert not model.status().idle
    _receive(model, encode_frame(Kind.ABORT, 77))
    replies = model.flush()
    # RESULT 1 was still on the line when the ABORT was checked: it ended whole, and
    # no result followed (10 of the 12 were dropped).
    assert [(frame.kind_name, frame.seq) for frame in replies] == [("ACK", 77)]
    assert job.result_beats == 12
    status = Status.decode(replies[-1].payload)
    assert (status.idle, status.last_seq, status.aborted) == (True, 77, True)
    first, second = (Status.decode(model.feed(encode_frame(Kind.STATUS, 0))[0].payload)
                     for _ in range(2))
    assert (first.aborted, second.aborted) == (True, False)
    assert model.result_counter == 0 and model.aborts == 1


def _receive(model: BoardModel, data: bytes) -> None:
    """``data`` arriving from now on, one byte time apart (not waiting for the transmit
    line, unlike :meth:`BoardModel.feed`)."""
    for byte in data:
        model.receive(byte, model.time + 1)


def test_abort_with_a_payload_is_nak_length_and_not_executed():
    model = BoardModel(TINY)
    (nak,) = model.feed(encode_frame(Kind.ABORT, 5, b"\x00"))
    assert (nak.kind_name, nak.payload[0]) == ("NAK", Nak.LENGTH)
    assert model.aborts == 0 and model.last_seq == 0xFF


def test_second_host_error_names_the_board_answering_not_the_cable():
    """A board that answers other frames but never the request: the error says the line
    works (not "check the cable")."""
    model = BoardModel(TINY)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND)
    board = Board(line, TINY, timeout=0.01, retries=1)
    board.connect()
    model.receive = lambda byte, time: None           # the board stops listening
    with pytest.raises(HostError) as error:
        board.status()
    assert str(error.value) == (
        "no STATUS_REPLY from the board for the STATUS frame (SEQ 1) after 2 attempt(s): "
        "no reply within 0.01 s. the board answered earlier on this port, so the line "
        "works: it stopped answering. Was it reset, reprogrammed or unplugged?")


# ---- the fuzz tier: random frame sequences ------------------------------------------------

#: Quiet time after which the link is receiving again whatever came before: a frame's
#: truncation, a stalled frame's NAK, and the longest frame on the transmit line.
QUIET_BYTE_TIMES = TIMEOUT_BYTE_TIMES + STALL_TIMEOUT_BYTE_TIMES + 2048


def _gemm_frames(seed: int) -> list[bytes]:
    """ABORT SEQ 0xFF (so the SEQs below are the ones the board executes), then a real
    GEMM's COMMAND, A_DATA and B_DATA frames."""
    job = _job(seed=seed)
    frames = [encode_frame(Kind.ABORT, 0xFF)]
    for seq, (kind, beats) in enumerate([(Kind.COMMAND, [job.command]),
                                         (Kind.A_DATA, job.a_beats),
                                         (Kind.B_DATA, job.b_beats)]):
        frames.append(encode_frame(kind, seq, b"".join(
            beat.to_bytes(beat_bytes(TINY, kind), "little") for beat in beats)))
    return frames


@st.composite
def _wire_piece(draw) -> bytes:
    """One piece of what a broken host may send: a frame of a random (mostly request)
    KIND, SEQ and LENGTH (whole beats or not), possibly corrupted or truncated; garbage
    bytes; or the start of a real GEMM, cut after a random number of bytes (a host that
    died mid-GEMM)."""
    choice = draw(st.sampled_from(["frame", "frame", "frame", "garbage", "gemm"]))
    if choice == "garbage":
        return draw(st.binary(min_size=1, max_size=40))
    if choice == "gemm":
        stream = b"".join(_gemm_frames(draw(st.integers(0, 3))))
        return stream[:draw(st.integers(1, len(stream)))]
    kind = draw(st.one_of(st.sampled_from(REQUEST_KINDS * 3), st.integers(0, 255)))
    # Mostly the first few SEQs, so that frames execute (a fresh board's last_seq is 0xFF).
    seq = draw(st.one_of(st.integers(0, 3), st.integers(0, 255)))
    size = beat_bytes(TINY, kind) if kind in (Kind.COMMAND, Kind.A_DATA, Kind.B_DATA) else 1
    beats = draw(st.integers(0, 4))
    payload = draw(st.one_of(st.just(bytes(beats * size)),
                             st.binary(min_size=beats * size, max_size=beats * size),
                             st.binary(max_size=30)))
    frame = bytearray(encode_frame(kind, seq, payload))
    damage = draw(st.sampled_from(["none", "none", "corrupt", "truncate"]))
    if damage == "corrupt":
        frame[draw(st.integers(1, len(frame) - 1))] ^= draw(st.integers(1, 255))
    elif damage == "truncate":
        frame = frame[:draw(st.integers(1, len(frame) - 1))]
    return bytes(frame)


@fuzz_settings
@given(st.lists(st.tuples(_wire_piece(), st.sampled_from([0.0, 0.0, 30.0, 300.0])),
                max_size=12))
def test_random_frame_sequences_never_stop_status_or_exactness(pieces):
    """After any sequence of frames and garbage (with pauses, in byte times) and a quiet
    line, a STATUS is answered at the first attempt, and a new host connects and runs a
    bit-exact GEMM."""
    started = time.monotonic()
    model = BoardModel(TINY)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND)
    try:
        for data, pause in pieces:
            line.write(data)
            line.idle(pause / BYTES_PER_SECOND)
        line.idle(QUIET_BYTE_TIMES / BYTES_PER_SECOND)
    except BoardModelError:
        reject()       # random operands outside the command's precision: no golden result
    event(f"commands {min(len(model.commands), 2)}, stalls {min(len(model.stalls), 2)}, "
          f"aborts {min(model.aborts, 1)}")
    while line.read(4096, 0.0):
        pass                                          # what the board said to the dead host
    status = Board(line, TINY, timeout=QUIET_BYTE_TIMES / BYTES_PER_SECOND,
                   retries=0).status()
    assert status.fingerprint == model.fingerprint
    _second_host(line)
    assert time.monotonic() - started < 10


# ---- the CLI after a dead host -----------------------------------------------------------

def _wedged_board_model(config):
    """What ``open_board`` builds for ``--port loopback``, swapped for a board on which a
    host died after its COMMAND, halfway through its A_DATA frame."""
    model = BoardModel(config)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND)
    _kill_first_host(DyingTransport(line, 2, keep=6))
    line.idle(0.1)                      # the user starts the next command
    return model


def test_cli_status_answers_at_once_and_gemm_recovers_after_a_dead_host(capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(board_model, "BoardModel", _wedged_board_model)
    code, out, err = run_qforge(capsys, "host", "status", "--port", "loopback", "--preset",
                                "tiny")
    assert code == 0 and err == ""                          # answered, not retried
    assert out.startswith("board on loopback: accelerator busy (a GEMM in progress, or "
                          "left half done by a host that stopped: the next connect, e.g. "
                          "`qforge host gemm`, aborts it), error flag clear\n")
    code, out, err = run_qforge(capsys, "host", "gemm", "--port", "loopback", "--preset",
                                "tiny", "--m", "3", "--n", "2", "--depth", "5", "--mode",
                                "exact", "--check")
    assert code == 0 and "check: match: all 6 elements" in out
    assert ("host: the board is not ready: its accelerator is busy (a GEMM in progress or "
            "left half done by a host that stopped); sending ABORT\n") in err
    assert "host: ABORT acknowledged: the accelerator is idle" in err


def test_error_says_the_board_answered_when_only_other_frames_came():
    """Every STATUS_REPLY damaged on the line: the board did answer, so the error does
    not send the user to the cable first."""
    model = BoardModel(TINY)
    faults = [Fault("corrupt", Kind.STATUS_REPLY, index) for index in range(2)]
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND, faults=faults)
    board = Board(line, TINY, timeout=0.05, retries=1)
    with pytest.raises(HostError) as error:
        board.status()
    assert str(error.value) == (
        "no STATUS_REPLY from the board for the STATUS frame (SEQ 0) after 2 attempt(s): "
        "no reply within 0.05 s. the board did send 2 other or damaged frame(s) meanwhile, "
        "so it is powered and programmed: it may be busy with another host or a GEMM left "
        "running (connect again: Board.connect aborts what the board was doing), or the "
        "line may damage frames (check the baud rate)")


def test_abort_whose_ack_is_lost_is_sent_again_and_is_harmless():
    model = BoardModel(TINY)
    line = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND,
                             faults=[Fault("drop", Kind.ACK, 0)])
    messages = []
    board = Board(line, TINY, timeout=0.05, retries=2, log=messages.append)
    board.status()
    status = board.abort()
    assert status.idle and status.aborted and model.aborts == 2
    assert board.sequence == status.last_seq == 0           # 0xFF + 1
    assert any("ABORT frame SEQ 0: no reply within 0.05 s; sending it again" in message
               for message in messages)
    job = _job(seed=3)
    assert np.array_equal(board.run(job), golden(TINY, job.a, job.b, job.precision))
