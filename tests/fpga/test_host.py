"""The host driver (:mod:`qforge.fpga.host`) against the pure-Python board model
(:mod:`qforge.fpga.board_model`) over a simulated line: GEMMs equal the golden model,
each injected fault is recovered from (and nothing runs twice), the model's own protocol
rules checked with hand-made frames, the ``qforge host`` commands, and a negative
control. No RTL: the whole file runs in seconds."""

import binascii
import sys
import types

import numpy as np
import pytest

from qforge.fpga.board_model import (CHECKS, BoardModel, BoardModelError, CommandError,
                                     decode_command)
from qforge.fpga.loopback import Fault, LoopbackTransport
from qforge.fpga import board_model
from qforge.fpga.host import Board, HostError, ResultsLost, SerialTransport, Transport
from qforge.hdl.protocol import (CRC_BYTES, HEADER_BYTES, MAX_PAYLOAD,
                                  STALL_TIMEOUT_BYTE_TIMES, SYNC,
                                  TIMEOUT_BYTE_TIMES, FrameParser, Kind, Nak, Status,
                                  beat_bytes, config_fingerprint, crc16, encode_frame)
from qforge.sim.model.spec import from_dict, load_preset
from qforge.sim.model.numerics import OperandPrecision, Precision, gemm, standard_modes
from qforge.hdl.layouts import command_layout, layout_fields
from qforge.sim.host.packing import GemmJob, ResultAssembler, command_bits
from qforge.sim.model.quantize import OutputParameters, Rounding, output_operands
from qforge.sim.bench.stimulus import operand_range
from tests.cli import run_qforge

#: Bytes of one tiny command beat (a zero beat is a valid exact GEMM of one tile).
COMMAND_BYTES = (command_layout(load_preset("tiny")).size + 7) // 8

#: 115200 baud.
BYTES_PER_SECOND = 11520

#: A 2x3 array (rows != cols: a row/column mix-up in the beat mapping shows) with VRQ.
RECT_VRQ = {"name": "rect_vrq", "array": {"rows": 2, "cols": 3},
            "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                           "max_reduction_depth": 256, "output_width": 8},
            "buffers": {"depth": 128},
            "vrq": {"code_width": 4, "range_stride": 2, "ranges": 8}}


def config_named(name):
    if name == "rect_vrq":
        return from_dict(RECT_VRQ, source="tests")
    if name == "tiny_skip":
        return load_preset("tiny").with_zero_skipping()
    return load_preset(name)


def linked(config, *, faults=(), retries=3, log=None, model=None, timeout=1.0):
    model = model or BoardModel(config)
    transport = LoopbackTransport(model, bytes_per_second=BYTES_PER_SECOND, faults=faults)
    messages = []
    board = Board(transport, config, timeout=timeout, retries=retries,
                  log=log or messages.append)
    board.messages = messages
    return model, transport, board


def operands(config, precision, m, n, depth, seed=0, density=1.0):
    rng = np.random.default_rng(seed)
    low_a, high_a = operand_range(config, precision.a)
    low_b, high_b = operand_range(config, precision.b)
    a = rng.integers(low_a, high_a + 1, size=(m, depth))
    if density < 1:
        a = np.where(rng.random(a.shape) < density, a, 0)
    return a, rng.integers(low_b, high_b + 1, size=(depth, n))


def golden(config, a, b, precision, output=None):
    """The expected result, straight from the golden model (not from GemmJob)."""
    result = gemm(a, b, config, precision)
    return result if output is None else output_operands(result, config, output)


def differing(result, expected) -> int:
    """Elements that differ (every element if the shapes differ): the comparison every
    GEMM test uses, shown to catch a wrong result by the negative control."""
    result = np.asarray(result)
    if result.shape != expected.shape:
        return expected.size
    return int(np.count_nonzero(result != expected))


# ---- GEMMs through Board + LoopbackTransport + BoardModel ----------------------------

GEMM_CASES = [
    # config, mode, (m, n, depth), output
    ("tiny", "exact", (3, 5, 7), None),
    ("tiny", "approx_dynamic", (1, 1, 1), None),
    ("tiny", "mixed", (64, 4, 8), None),                            # 256 A beats: 1 full frame
    ("default", "exact", (9, 17, 100), None),                       # A and B in 2 frames each
    ("default", "approx_static", (20, 3, 300), None),               # A in 5 frames
    ("default", "reduced", (8, 8, 8),
     OutputParameters(shift=3, rounding=Rounding.STOCHASTIC, relu=True, seed=123456789,
                      tensor=7)),
    ("default", "approx_dynamic_1", (11, 13, 40),
     OutputParameters(shift=9, rounding=Rounding.TRUNCATE)),
    ("rect_vrq", "exact", (5, 7, 9), None),
    ("rect_vrq", "mixed", (3, 4, 20), OutputParameters(relu=True, vrq_exponent=9,
                                                       rounding=Rounding.STOCHASTIC, seed=5)),
    ("rect_vrq", "approx_dynamic", (4, 2, 5), OutputParameters(shift=2)),
]


@pytest.mark.parametrize("name, mode, shape, output", GEMM_CASES,
                         ids=[f"{c[0]}-{c[1]}-{'x'.join(map(str, c[2]))}"
                              f"{'-output' if c[3] else ''}" for c in GEMM_CASES])
def test_gemm_equals_golden_model(name, mode, shape, output):
    config = config_named(name)
    precision = standard_modes(config)[mode]
    m, n, depth = shape
    a, b = operands(config, precision, m, n, depth, seed=m * n + depth)
    model, transport, board = linked(config)
    result = board.gemm(a, b, precision, output=output)
    assert result.shape == (m, n) and result.dtype == np.int64
    assert differing(result, golden(config, a, b, precision, output)) == 0
    assert model.gemms == 1 and model.naks == [] and model.duplicates == 0
    assert model.status().idle and not model.accelerator_error


def test_gemm_on_zero_skipping_array_with_row_major_results():
    config = config_named("tiny_skip")
    precision = standard_modes(config)["exact"]
    a, b = operands(config, precision, 5, 9, 12, seed=3, density=0.4)
    model, _, board = linked(config)
    for skip in (True, False):
        result = board.gemm(a, b, precision, skip_zeros=skip)
        assert differing(result, golden(config, a, b, precision)) == 0
    assert [command.skip_zeros for command in model.commands] == [True, False]


def test_many_gemms_wrap_sequence_and_result_counters():
    """More than 256 request frames and result frames: both 8-bit counters wrap."""
    config = load_preset("tiny")
    precision = standard_modes(config)["exact"]
    model, transport, board = linked(config)
    for index in range(70):
        a, b = operands(config, precision, 4, 4, 3, seed=index)   # 4 frames, 8 results
        assert differing(board.gemm(a, b, precision), golden(config, a, b, precision)) == 0
    assert model.gemms == 70 and model.result_counter == (70 * 8) % 256
    assert board.sequence == model.last_seq == (70 * 3 - 1) % 256
    assert model.naks == [] and model.duplicates == 0
    # simulated time, not wall time: ~ bytes / (bytes per second)
    assert transport.time == pytest.approx(
        (transport.bytes_written + transport.bytes_read) / BYTES_PER_SECOND, rel=0.2)


def test_operands_are_checked_by_gemmjob_with_clear_errors():
    config = load_preset("tiny")
    _, _, board = linked(config)
    exact = standard_modes(config)["exact"]
    with pytest.raises(HostError, match=r"a\[0, 1\] = 200: out of range .* -128 \.\. 127"):
        board.gemm([[1, 200]], [[1], [2]], exact)
    with pytest.raises(HostError, match="inner dimensions differ"):
        board.gemm([[1, 2]], [[1]], exact)
    with pytest.raises(HostError, match=r"output.shift = 99: allowed range is 0 \.\. "):
        board.gemm([[1]], [[1]], exact, output=OutputParameters(shift=99))
    # Too large for a buffer half: refused before anything is sent, with the real sizes
    # (tiny: R = 2, P = 1, buffer_depth 512: ceil(400 / 2) = 200 tiles of ceil(5 / 1) = 5
    # words, 1000 > 512).
    with pytest.raises(HostError, match=r"GEMM: A needs ceil\(m / R\) \* ceil\(k / P\) = "
                                        r"200 \* 5 = 1000 buffer words"):
        board.gemm(np.ones((400, 5), dtype=int), np.ones((5, 3), dtype=int), exact)
    # Too many tiles for the command's field: refused, never wrapped (a 9-bit tiles field:
    # 512 tiles of 2 rows, m <= 1024).
    with pytest.raises(HostError, match=r"m = 1026: allowed 1 \.\. 1024"):
        board.gemm(np.ones((1026, 5), dtype=int), np.ones((5, 3), dtype=int), exact)


# ---- connecting --------------------------------------------------------------------------

def test_connect_learns_last_seq_and_fingerprint():
    config = load_preset("tiny")
    model, _, board = linked(config)
    model.last_seq = 41
    status = board.connect()
    assert status.fingerprint == config_fingerprint(config) == board.fingerprint
    assert board.sequence == 41 and status.idle and not status.frame_rejected
    board.send(Kind.COMMAND, b"")             # an empty frame: executed, nothing to do
    assert model.executed == [(Kind.COMMAND, 42)]


def test_fingerprint_mismatch_is_refused_naming_both():
    tiny, default = load_preset("tiny"), load_preset("default")
    model = BoardModel(default)
    _, _, board = linked(tiny, model=model)
    with pytest.raises(HostError) as error:
        board.connect()
    message = str(error.value)
    assert f"0x{config_fingerprint(default):04x}" in message and "'default'" in message
    assert f"0x{config_fingerprint(tiny):04x}" in message and "'tiny'" in message
    with pytest.raises(HostError, match="another configuration"):
        board.gemm([[1]], [[1]], standard_modes(tiny)["exact"])
    assert model.executed == []
    custom = from_dict(RECT_VRQ, source="tests")
    _, _, board = linked(tiny, model=BoardModel(custom))
    with pytest.raises(HostError, match="not a built-in preset"):
        board.connect()


def test_sticky_accelerator_error_is_reported():
    config = load_preset("tiny")
    precision = standard_modes(config)["exact"]
    model, _, board = linked(config)
    board.connect()
    model.accelerator_error = True           # as if a command had been dropped meanwhile
    with pytest.raises(HostError, match="the accelerator rejected the command"):
        board.gemm([[1]], [[2]], precision)
    with pytest.raises(HostError, match=r"already set .*: connect again \(Board.connect "
                                        r"clears it with an ABORT\)"):
        board.gemm([[1]], [[2]], precision)
    assert board.connect().idle and model.aborts == 1
    assert not model.accelerator_error
    assert board.gemm([[1]], [[2]], precision).tolist() == [[2]]


# ---- injected faults ------------------------------------------------------------------------

def run_with_faults(faults, *, config_name="default", retries=3, shape=(9, 17, 100)):
    config = config_named(config_name)
    precision = standard_modes(config)["mixed"]
    a, b = operands(config, precision, *shape, seed=11)
    model, transport, board = linked(config, faults=faults, retries=retries)
    result = board.gemm(a, b, precision)
    assert differing(result, golden(config, a, b, precision)) == 0
    assert len(transport.fired) == len(faults), "a fault did not fire"
    return model, transport, board


def executed_once(model):
    """Every data frame was executed exactly once, in sequence."""
    seqs = [seq for _, seq in model.executed]
    assert seqs == list(range(len(seqs)))
    return [kind for kind, _ in model.executed]


@pytest.mark.parametrize("kind, offset", [(Kind.COMMAND, None), (Kind.A_DATA, 9),
                                          (Kind.B_DATA, None), (Kind.A_DATA, 2)])
def test_corrupted_request_is_nacked_and_sent_again(kind, offset):
    """Byte ``offset`` (None: the CRC; 2: the SEQ byte) of the first frame of ``kind``
    flipped: NAK CRC, retransmitted, executed once, result exact."""
    model, _, board = run_with_faults([Fault("corrupt", kind, 0, offset=offset)])
    assert model.naks == [Nak.CRC]
    assert executed_once(model) == [Kind.COMMAND, Kind.A_DATA, Kind.A_DATA,
                                    Kind.B_DATA, Kind.B_DATA, Kind.B_DATA]
    assert model.gemms == 1 and model.duplicates == 0
    assert any("NAK CRC" in message for message in board.messages)


@pytest.mark.parametrize("keep", [None, 1, 3, 6])
def test_truncated_request_is_nacked_and_sent_again(keep):
    model, _, board = run_with_faults([Fault("truncate", Kind.B_DATA, 1, offset=keep)])
    assert model.naks == [Nak.TRUNCATED]               # even after a lone SYNC
    assert executed_once(model)[-1] == Kind.B_DATA
    assert model.gemms == 1 and model.duplicates == 0


def test_truncated_frame_after_lone_sync_times_out_and_recovers():
    """One byte (SYNC) arrives: the board times it out (NAK TRUNCATED with SEQ 0)."""
    model, _, _ = run_with_faults([Fault("truncate", Kind.COMMAND, 0, offset=1)])
    assert model.naks == [Nak.TRUNCATED] and model.gemms == 1


def test_dropped_request_is_sent_again_after_timeout():
    model, transport, _ = run_with_faults([Fault("drop", Kind.A_DATA, 0)])
    assert model.naks == [] and model.duplicates == 0 and model.gemms == 1
    assert transport.time > 1.0                  # the host waited its timeout


@pytest.mark.parametrize("index", [0, 1, 5])      # COMMAND, an A frame, the final B frame
def test_lost_ack_retransmission_is_acked_as_duplicate_not_executed_twice(index):
    model, _, board = run_with_faults([Fault("drop", Kind.ACK, index)])
    assert model.duplicates == 1 and model.naks == []
    assert len(executed_once(model)) == 6 and model.gemms == 1
    assert len(model.commands) == 1
    assert any("no reply within" in message for message in board.messages)


@pytest.mark.parametrize("fault", [Fault("corrupt", Kind.RESULT, 0),
                                   Fault("corrupt", Kind.RESULT, 7, offset=6),
                                   Fault("corrupt", Kind.RESULT, 47),     # the last
                                   Fault("drop", Kind.RESULT, 0),
                                   Fault("drop", Kind.RESULT, 20),
                                   Fault("drop", Kind.RESULT, 47),
                                   Fault("truncate", Kind.RESULT, 10)],
                         ids=lambda fault: f"{fault.action}-{fault.index}")
def test_lost_or_corrupted_result_reruns_the_gemm(fault):
    model, _, board = run_with_faults([fault])     # 2 x 3 tiles of 8 rows = 48 beats
    assert model.gemms == 2                        # run again, exact the second time
    assert len(model.commands) == 2 and model.naks == []
    assert any("GEMM results lost" in message for message in board.messages)


def test_result_loss_then_next_gemms_still_check_result_sequence():
    config = load_preset("tiny")
    precision = standard_modes(config)["exact"]
    model, _, board = linked(config, faults=[Fault("drop", Kind.RESULT, 3),
                                             Fault("drop", Kind.RESULT, 30)])
    for seed in range(4):
        a, b = operands(config, precision, 4, 6, 5, seed=seed)     # 12 result beats
        assert differing(board.gemm(a, b, precision), golden(config, a, b, precision)) == 0
    assert model.gemms == 6


def test_corrupted_status_reply_and_ack_are_recovered():
    model, _, _ = run_with_faults([Fault("corrupt", Kind.STATUS_REPLY, 0, offset=3),
                                   Fault("corrupt", Kind.ACK, 2)])
    assert model.gemms == 1 and model.duplicates == 1


def test_retries_exhausted_raises():
    config = load_preset("default")
    precision = standard_modes(config)["exact"]
    a, b = operands(config, precision, 9, 17, 100)
    model, _, board = linked(config, retries=2,
                             faults=[Fault("drop", Kind.ACK, i) for i in range(1, 4)])
    with pytest.raises(HostError, match=r"no ACK from the board for the A_DATA frame "
                                        r"\(SEQ 1\) after 3 attempt\(s\): no reply within"):
        board.gemm(a, b, precision)
    assert model.duplicates == 2 and model.gemms == 0
    # NAKs every time
    model, _, board = linked(config, retries=0, faults=[Fault("corrupt", Kind.COMMAND, 0)])
    with pytest.raises(HostError, match=r"after 1 attempt\(s\): NAK CRC"):
        board.gemm(a, b, precision)
    assert model.executed == []


def test_results_lost_every_attempt_raises():
    config = load_preset("tiny")
    precision = standard_modes(config)["exact"]
    a, b = operands(config, precision, 2, 2, 2)            # one tile: 2 result beats
    faults = [Fault("corrupt", Kind.RESULT, i) for i in (0, 2, 4)]
    model, _, board = linked(config, retries=2, faults=faults)
    with pytest.raises(HostError, match=r"results were lost 3 time\(s\)"):
        board.gemm(a, b, precision)
    assert model.gemms == 3


def test_collect_results_raises_results_lost_on_silence():
    config = load_preset("tiny")
    precision = standard_modes(config)["exact"]
    job = GemmJob.build(config, [[1, 2]], [[3], [4]], precision)
    _, _, board = linked(config)
    board.connect()
    with pytest.raises(ResultsLost, match="no RESULT frame within"):
        board.collect_results(job)


def test_nak_sequence_raises_with_explanation():
    config = load_preset("tiny")
    model, _, board = linked(config)
    board.connect()
    model.last_seq = 17                      # the board moved on (another host)
    with pytest.raises(HostError, match=r"NAK SEQUENCE .*sent SEQ 0, the board's last_seq "
                                        r"is 17.*Connect again"):
        board.send(Kind.COMMAND, b"")


def test_nak_length_and_kind_raise():
    """A board that disagrees about beat sizes answers NAK LENGTH: fatal, explained."""
    tiny = load_preset("tiny")
    model, _, board = linked(tiny)
    board.connect()
    model._beat_bytes[Kind.A_DATA] = 3
    with pytest.raises(HostError, match=r"NAK LENGTH .*built for configuration 'tiny'"):
        board.send(Kind.A_DATA, bytes(8))
    # tiny's A beat: R = 2 words of P = 1 8-bit operand, 2 bytes.
    with pytest.raises(HostError, match="whole number of 2-byte beats"):
        board.send(Kind.A_DATA, bytes(5))    # refused by the host itself
    with pytest.raises(HostError, match="allowed COMMAND, A_DATA, B_DATA"):
        board.send(Kind.STATUS, b"")


# ---- the board model's rules, with hand-made frames --------------------------------------

def raw_frame(kind, seq, payload, *, length=None, crc=None):
    """A frame with any LENGTH and CRC (encode_frame refuses bad ones)."""
    length = len(payload) if length is None else length
    body = bytes([kind, seq, length & 0xFF, length >> 8]) + bytes(payload)
    crc = crc16(body) if crc is None else crc
    return bytes([SYNC]) + body + crc.to_bytes(2, "little")


def reply_of(model, data, gap=0.0):
    frames = model.feed(data, gap=gap)
    assert len(frames) == 1, frames
    frame = frames[0]
    if frame.kind == Kind.NAK:
        return "NAK", Nak(frame.payload[0]), frame.seq, Status.decode(frame.payload[1:])
    return frame.kind_name, None, frame.seq, Status.decode(frame.payload)


@pytest.fixture
def tiny_model():
    return BoardModel(load_preset("tiny"))


def test_crc_matches_independent_reference(tiny_model):
    rng = np.random.default_rng(5)
    for size in (0, 1, 5, 64, 1030):
        data = bytes(rng.integers(0, 256, size=size).tolist())
        assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)
    # A frame whose CRC comes from binascii is accepted by the board.
    body = bytes([Kind.COMMAND, 0, COMMAND_BYTES, 0]) + bytes(COMMAND_BYTES)
    frame = bytes([SYNC]) + body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "little")
    assert frame == encode_frame(Kind.COMMAND, 0, bytes(COMMAND_BYTES))
    assert reply_of(tiny_model, frame)[:3] == ("ACK", None, 0)


def test_every_nak_reason(tiny_model):
    model = tiny_model
    command = bytes(COMMAND_BYTES)
    cases = [
        (raw_frame(Kind.COMMAND, 0, command, crc=0x1234), Nak.CRC),
        (raw_frame(Kind.A_DATA, 0, bytes(MAX_PAYLOAD + 4), crc=0), Nak.LENGTH),  # > MAX
        (encode_frame(Kind.COMMAND, 0, command[:-1]), Nak.LENGTH),          # not whole beats
        (encode_frame(Kind.A_DATA, 0, bytes(5)), Nak.LENGTH),              # 2-byte beats
        (encode_frame(Kind.STATUS, 0, b"x"), Nak.LENGTH),                  # STATUS + payload
        (encode_frame(0x7F, 0, command), Nak.KIND),
        (encode_frame(Kind.ACK, 0, bytes(5)), Nak.KIND),                   # a response kind
        (encode_frame(Kind.COMMAND, 5, command), Nak.SEQUENCE),
    ]
    for count, (frame, reason) in enumerate(cases, start=1):
        kind, got, seq, status = reply_of(model, frame)
        assert (kind, got) == ("NAK", reason), frame.hex(" ")
        assert seq == frame[2]                              # the SEQ as received
        assert status.frame_rejected and status.rejected_frames == count
        assert status.last_seq == 0xFF and status.idle
    assert model.executed == [] and model.commands == []
    # Truncation: the frame stops after its header.
    model.feed(encode_frame(Kind.COMMAND, 0, command)[:HEADER_BYTES])
    model.advance(model.time + TIMEOUT_BYTE_TIMES)
    kind, reason, seq, status = reply_of(model, b"")
    assert (kind, reason, seq, status.rejected_frames) == ("NAK", Nak.TRUNCATED, 0, 9)


def test_order_of_checks(tiny_model):
    """LENGTH > MAX_PAYLOAD (at the header), then CRC, KIND, whole beats, SEQUENCE
    (hdl/protocol.py, "Checks, in this order")."""
    assert CHECKS == ("crc", "kind", "beats", "sequence")
    model = tiny_model
    big = bytes(MAX_PAYLOAD + 1)
    cases = [
        (raw_frame(0x7F, 9, big, crc=0), Nak.LENGTH),            # every check fails
        (raw_frame(0x7F, 9, bytes(5), crc=0), Nak.CRC),          # all but LENGTH
        (raw_frame(0x7F, 9, bytes(5)), Nak.KIND),                # + bad beats, bad SEQ
        (raw_frame(Kind.COMMAND, 9, bytes(5)), Nak.LENGTH),      # bad beats, bad SEQ
        (raw_frame(Kind.COMMAND, 9, bytes(COMMAND_BYTES)), Nak.SEQUENCE),
        (raw_frame(Kind.STATUS, 9, bytes(1), crc=0), Nak.CRC),   # STATUS: CRC first too
    ]
    for frame, reason in cases:
        assert reply_of(model, frame)[:2] == ("NAK", reason)
    assert model.executed == []


def test_check_order_can_be_changed_in_one_place():
    """CRC first: a damaged KIND is answered NAK CRC (retransmitted), not NAK KIND; the
    order is a parameter of the model in one place."""
    config = load_preset("tiny")
    damaged = bytearray(encode_frame(Kind.COMMAND, 0, bytes(COMMAND_BYTES)))
    damaged[1] = 0x7F
    assert reply_of(BoardModel(config), bytes(damaged))[1] == Nak.CRC
    kind_first = BoardModel(config, checks=("kind", "crc", "beats", "sequence"))
    assert reply_of(kind_first, bytes(damaged))[1] == Nak.KIND
    with pytest.raises(ValueError, match="must be an ordering of"):
        BoardModel(config, checks=("crc",))


def test_sequence_rules(tiny_model):
    model = tiny_model
    assert model.status().last_seq == 0xFF
    # SEQ 0xFF right after reset is last_seq itself: acknowledged, not executed.
    assert reply_of(model, encode_frame(Kind.COMMAND, 0xFF, b""))[:3] == ("ACK", None, 0xFF)
    assert model.executed == [] and model.duplicates == 1
    assert reply_of(model, encode_frame(Kind.COMMAND, 1, b""))[:2] == ("NAK", Nak.SEQUENCE)
    assert reply_of(model, encode_frame(Kind.COMMAND, 0, b""))[0] == "ACK"
    assert reply_of(model, encode_frame(Kind.COMMAND, 0, b""))[0] == "ACK"      # duplicate
    assert model.executed == [(Kind.COMMAND, 0)] and model.duplicates == 2
    model.last_seq = 0xFE
    for seq in (0xFF, 0x00):                                                    # wraps
        assert reply_of(model, encode_frame(Kind.A_DATA, seq, b""))[2] == seq
    assert model.executed[-2:] == [(Kind.A_DATA, 0xFF), (Kind.A_DATA, 0)]
    # STATUS has no sequence check and is never executed.
    assert reply_of(model, encode_frame(Kind.STATUS, 200))[:3] == ("STATUS_REPLY", None, 200)
    assert model.last_seq == 0


def test_status_rejected_bit_clears_on_status_reply_and_count_saturates(tiny_model):
    model = tiny_model
    bad = raw_frame(Kind.COMMAND, 0, bytes(COMMAND_BYTES), crc=0)
    status = reply_of(model, bad)[3]
    assert status.frame_rejected and status.rejected_frames == 1
    assert reply_of(model, encode_frame(Kind.COMMAND, 0, b""))[3].frame_rejected  # ACK: still
    first = reply_of(model, encode_frame(Kind.STATUS, 1))[3]
    second = reply_of(model, encode_frame(Kind.STATUS, 2))[3]
    assert first.frame_rejected and not second.frame_rejected
    assert second.rejected_frames == 1 and second.fingerprint == model.fingerprint
    model.rejected_frames = 254
    assert [reply_of(model, bad)[3].rejected_frames for _ in range(3)] == [255, 255, 255]


def test_oversized_frame_is_refused_at_its_header(tiny_model):
    """NAK LENGTH as soon as LENGTH is in; the rest of the frame is hunted as junk."""
    model = tiny_model
    header = raw_frame(Kind.A_DATA, 0, b"", length=MAX_PAYLOAD + 1)[:HEADER_BYTES]
    kind, reason, seq, status = reply_of(model, header)
    assert (kind, reason, seq, status.rejected_frames) == ("NAK", Nak.LENGTH, 0, 1)
    assert model.deadline is None                     # not waiting for the payload
    assert reply_of(model, bytes(40) + encode_frame(Kind.STATUS, 4))[:3] == \
        ("STATUS_REPLY", None, 4)


def test_bytes_arriving_before_the_response_starts_are_dropped(tiny_model):
    """A frame sent without waiting for the previous response (not stop-and-wait): its
    bytes that arrive before that response can start on the line are dropped."""
    model, config = tiny_model, tiny_model.config
    precision = standard_modes(config)["exact"]
    a, b = operands(config, precision, 2, 2, 2, seed=4)
    job = GemmJob.build(config, a, b, precision)
    command, a_frame, b_frame = gemm_frames(config, job)
    model.feed(command + a_frame)
    status_1, status_2 = encode_frame(Kind.STATUS, 1), encode_frame(Kind.STATUS, 2)
    frames = model.feed(b_frame + status_1 + status_2)
    # The ACK goes first; STATUS 1 ends while the ACK is on the line, so its reply waits
    # (and STATUS 2's first bytes are dropped meanwhile); the reply goes before results.
    assert [(f.kind_name, f.seq) for f in frames[:3]] == \
        [("ACK", 2), ("STATUS_REPLY", 1), ("RESULT", 0)]
    assert [f.kind_name for f in frames].count("STATUS_REPLY") == 1
    assert not Status.decode(frames[0].payload).idle           # results not yet sent


def test_sync_hunt_skips_junk_and_resumes_after_a_bad_frame(tiny_model):
    model = tiny_model
    junk = bytes([0x00, 0x13, 0xFF, 0x5A])
    assert reply_of(model, junk + encode_frame(Kind.STATUS, 3))[:3] == ("STATUS_REPLY", None, 3)
    bad = raw_frame(Kind.COMMAND, 0, bytes(COMMAND_BYTES), crc=0)
    frames = model.feed(bad + junk + encode_frame(Kind.COMMAND, 0, b""))
    assert [frame.kind_name for frame in frames] == ["NAK", "ACK"]


def test_truncation_timeout_is_measured_in_byte_times(tiny_model):
    model = tiny_model
    frame = encode_frame(Kind.COMMAND, 0, bytes(COMMAND_BYTES))
    time = 0.0
    for index, byte in enumerate(frame):          # a gap just short of the timeout
        time += TIMEOUT_BYTE_TIMES - 0.5 if index == 8 else 1.0
        model.receive(byte, time)
    assert [f.kind_name for f in model.flush()] == ["ACK"]
    for index, byte in enumerate(frame):          # the same gap plus one byte time
        time += TIMEOUT_BYTE_TIMES + 0.5 if index == 8 else 1.0
        model.receive(byte, time)
    truncated_at = model.transmit(time)
    assert len(truncated_at) == 1
    nak = FrameParser().feed(truncated_at[0][1])[0]
    assert Nak(nak.payload[0]) == Nak.TRUNCATED and nak.seq == 0
    # the NAK went out when the timeout expired, before the late byte arrived
    assert truncated_at[0][0] < time
    assert model.executed == [(Kind.COMMAND, 0)]
    with pytest.raises(ValueError, match="time only moves forward"):
        model.advance(time - 10)


def field_offsets(config):
    """``path: (offset, width)`` of every command field."""
    return {path: (offset, width) for path, offset, width, _ in
            layout_fields(command_layout(config))}


def gemm_frames(config, job, first_seq=0):
    frames = [encode_frame(Kind.COMMAND, first_seq,
                           job.command.to_bytes(beat_bytes(config, Kind.COMMAND), "little"))]
    seq = first_seq
    for kind, beats in ((Kind.A_DATA, job.a_beats), (Kind.B_DATA, job.b_beats)):
        seq += 1
        size = beat_bytes(config, kind)
        frames.append(encode_frame(kind, seq, b"".join(beat.to_bytes(size, "little")
                                                      for beat in beats)))
    return frames


def test_model_executes_gemm_and_streams_numbered_results(tiny_model):
    model, config = tiny_model, tiny_model.config
    precision = standard_modes(config)["exact"]
    a, b = operands(config, precision, 3, 3, 5, seed=2)
    job = GemmJob.build(config, a, b, precision)
    command, a_frame, b_frame = gemm_frames(config, job)
    ack = reply_of(model, command)
    assert ack[0] == "ACK" and not ack[3].idle               # loading: waits for operands
    assert reply_of(model, a_frame)[0] == "ACK"
    frames = model.feed(b_frame)
    assert [f.kind_name for f in frames] == ["ACK"] + ["RESULT"] * job.result_beats
    results = frames[1:]
    assert [f.seq for f in results] == list(range(job.result_beats))
    beats = [int.from_bytes(f.payload, "little") for f in results]
    expected = job.expected_beats()
    assembler = ResultAssembler(config, 3, 3)
    assert [assembler.add(beat) for beat in beats] == [(row, last) for row, last in expected]
    assert differing(assembler.matrix(), golden(config, a, b, precision)) == 0
    assert model.status().idle and model.gemms == 1


def test_invalid_command_sets_sticky_error_and_takes_no_operands(tiny_model):
    model, config = tiny_model, tiny_model.config
    bad = command_bits(config, 2, 2, 4, Precision(OperandPrecision(2, 2),
                                                  OperandPrecision(1, 1)))
    # kept > blocks cannot be built through Precision: set the field by hand.
    offset = field_offsets(config)["b.kept_minus_one"][0]
    bad |= 1 << offset                                       # b.kept = 2 > b.blocks = 1
    with pytest.raises(CommandError, match=r"b.kept = 2: allowed range is 1 \.\. b.blocks"):
        decode_command(config, bad)
    status = reply_of(model, encode_frame(Kind.COMMAND, 0, bad.to_bytes(COMMAND_BYTES, "little")))[3]
    assert status.accelerator_error and status.idle
    assert model.commands == [] and len(model.rejected_commands) == 1
    # Operand beats no command asked for can never be taken: no ACK, and once the line
    # has been idle for the stall timeout, NAK STALLED (tests/fpga/test_board_recovery.py).
    assert model.feed(encode_frame(Kind.A_DATA, 1, bytes(8))) == []
    assert "no command asks for more A beats" in model.stuck
    assert model.feed(encode_frame(Kind.STATUS, 0)) == []
    model.advance(model.time + STALL_TIMEOUT_BYTE_TIMES)
    assert [(frame.kind_name, frame.payload[0]) for frame in model.flush()] == \
        [("NAK", Nak.STALLED)]
    assert model.stuck is None and model.last_seq == 0


@pytest.mark.parametrize("field, value, message", [
    ("output.rounding", 3, r"output.rounding = 3: allowed 0 \(NEAREST_EVEN\)"),
    ("output.shift", 31, r"output.shift = 31: allowed range is 0 \.\. "),
    ("output.exponent", 31, r"output.exponent = 31: allowed range is 0 \.\. "),
    ("a.vrq", 1, r"a.vrq = True: this configuration has no \[vrq\] section"),
    ("output.vrq", 1, r"output.vrq_exponent: this configuration has no \[vrq\]"),
    ("depth_minus_one", 505, r"depth = 506: allowed range is 1 \.\. 500"),
    # depth 5, P = 1: 5 words a tile, at most buffers.depth = 512 words: 102 tiles fit.
    ("n_tiles_minus_one", 200, r"B needs ceil\(n / C\) \* ceil\(k / P\) = 201 \* 5 = 1005"),
    ("m_tiles_minus_one", 102, r"A needs ceil\(m / R\) \* ceil\(k / P\) = 103 \* 5 = 515"),
    ("m_tiles_minus_one", 101, None),                 # 102 * 5 = 510 words: fits
    ("a.blocks_minus_one", 1, None),                  # 2 blocks: valid
])
def test_decode_command_rejects_what_the_loader_rejects(field, value, message):
    spec = load_preset("tiny").to_dict()
    spec["arithmetic"]["max_reduction_depth"] = 500     # the 9-bit depth field holds more
    config = from_dict(spec, source="tests")
    bits = command_bits(config, 1, 1, 5, standard_modes(config)["exact"])
    offset, width = field_offsets(config)[field]
    if value >= 1 << width:
        pytest.skip(f"{field} cannot hold {value} in {width} bits")
    bits = bits & ~(((1 << width) - 1) << offset) | (value << offset)
    if message is None:
        assert decode_command(config, bits).depth == 5
        return
    with pytest.raises(CommandError, match=message):
        decode_command(config, bits)


def test_model_refuses_operands_it_cannot_define(tiny_model):
    model, config = tiny_model, tiny_model.config
    reduced = standard_modes(config)["reduced"]              # 1 block: -8 .. 7
    exact = standard_modes(config)["exact"]
    a, b = operands(config, exact, 2, 2, 2, seed=1)
    a[0, 0] = 100                                            # out of range for `reduced`
    job = GemmJob.build(config, a, b, exact)
    job.command = command_bits(config, 2, 2, 2, reduced)
    frames = gemm_frames(config, job)
    model.feed(frames[0] + frames[1])
    with pytest.raises(BoardModelError, match="do not fit its command's precision"):
        model.feed(frames[2])


# ---- the transports ------------------------------------------------------------------------

def test_loopback_clock_advances_with_bytes_and_timeouts(tiny_model):
    transport = LoopbackTransport(tiny_model, bytes_per_second=1000)
    assert isinstance(transport, Transport)
    assert transport.read(100, 0.25) == b"" and transport.time == pytest.approx(0.25)
    transport.write(encode_frame(Kind.STATUS, 1))                      # 7 bytes
    assert transport.time == pytest.approx(0.257)
    reply = transport.read(100, 1.0)
    assert len(reply) == HEADER_BYTES + 5 + CRC_BYTES
    assert transport.time == pytest.approx(0.257 + 0.012)             # arrived, no waiting
    assert transport.read(3, 5.0) == b"" and transport.time == pytest.approx(5.269)
    with pytest.raises(ValueError, match="bytes_per_second"):
        LoopbackTransport(tiny_model, bytes_per_second=0)
    with pytest.raises(ValueError, match="Fault.action"):
        Fault("explode")
    with pytest.raises(ValueError, match="Fault.kind"):
        Fault("drop", 0x42)


def test_loopback_read_returns_at_most_max_bytes(tiny_model):
    transport = LoopbackTransport(tiny_model, bytes_per_second=1000)
    transport.write(encode_frame(Kind.STATUS, 1) + encode_frame(Kind.STATUS, 2))
    received = b""
    while len(received) < 24:
        chunk = transport.read(5, 1.0)
        assert 0 < len(chunk) <= 5
        received += chunk
    assert [f.seq for f in FrameParser().feed(received)] == [1, 2]


def test_serial_transport_without_pyserial_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(HostError, match="pip install pyserial"):
        SerialTransport("/dev/ttyUSB1", 115200)


class FakeSerialPort:
    """Enough of pyserial's Serial for SerialTransport: bytes appear in ``incoming``."""

    def __init__(self, port, baud, **settings):
        if port == "/dev/missing":
            raise FakeSerialModule.SerialException(f"could not open port {port}")
        self.port, self.baud, self.settings = port, baud, settings
        self.incoming = bytearray()
        self.written = bytearray()
        self.timeout = None
        self.flushed = 0

    def write(self, data):
        self.written += data

    def flush(self):
        self.flushed += 1

    @property
    def in_waiting(self):
        return len(self.incoming)

    def read(self, size):
        data = bytes(self.incoming[:size])
        del self.incoming[:size]
        return data

    def close(self):
        pass


class FakeSerialModule(types.ModuleType):
    class SerialException(OSError):
        pass

    Serial = FakeSerialPort


def test_serial_transport_reads_what_has_arrived(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", FakeSerialModule("serial"))
    transport = SerialTransport("/dev/ttyUSB1", 115200)
    port = transport._port
    assert port.settings == {"bytesize": 8, "parity": "N", "stopbits": 1, "timeout": 0}
    transport.write(b"abc")
    assert port.written == b"abc" and port.flushed == 1
    assert transport.read(10, 0.5) == b""
    port.incoming += b"0123456789"
    assert transport.read(4, 0.5) == b"0123" and transport.read(100, 0.5) == b"456789"
    with pytest.raises(HostError, match="cannot open serial port '/dev/missing' at 9600"):
        SerialTransport("/dev/missing", 9600)
    with pytest.raises(HostError, match="baud rate = 0"):
        SerialTransport("/dev/ttyUSB1", 0)


def test_board_arguments_are_checked():
    config = load_preset("tiny")
    transport = LoopbackTransport(BoardModel(config), bytes_per_second=1000)
    with pytest.raises(HostError, match="timeout = 0: must be a number > 0"):
        Board(transport, config, timeout=0)
    with pytest.raises(HostError, match="retries = -1: must be an integer >= 0"):
        Board(transport, config, retries=-1)
    with pytest.raises(HostError, match=r"has no write\(\) method"):
        Board(object(), config)


# ---- negative control ---------------------------------------------------------------------

class WrongBoard(BoardModel):
    """A board whose accelerator gets one element wrong: the first result beat's first
    element is off by one."""

    def _compute(self, load):
        super()._compute(load)
        ready, beat = self._results[0]
        self._results[0] = (ready, beat ^ 1)


def test_negative_control_wrong_board_is_detected():
    config = load_preset("default")
    precision = standard_modes(config)["exact"]
    a, b = operands(config, precision, 9, 17, 100)
    _, _, board = linked(config, model=WrongBoard(config))
    result = board.gemm(a, b, precision)
    assert differing(result, golden(config, a, b, precision)) == 1
    assert differing(result[:, :-1], golden(config, a, b, precision)) == a.shape[0] * 17


# ---- the CLI -----------------------------------------------------------------------------

def cli(argv, capsys):
    """``qforge ARGV...`` through the shared runner: (exit status, stdout, stderr)."""
    return tuple(run_qforge(capsys, *argv))


def test_cli_status_and_gemm_on_loopback(capsys):
    code, out, _ = cli(["host", "status", "--port", "loopback", "--preset", "tiny"], capsys)
    assert code == 0 and "accelerator idle" in out and "built for 'tiny'" in out
    code, out, _ = cli(["host", "gemm", "--port", "loopback", "--preset", "default",
                        "--m", "9", "--n", "17", "--depth", "100", "--mode", "mixed",
                        "--shift", "3", "--rounding", "stochastic", "--relu", "--check"],
                       capsys)
    assert code == 0 and "check: match: all 153 elements" in out
    code, out, _ = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m", "2",
                        "--n", "2", "--depth", "3", "--mode", "exact", "--print"], capsys)
    assert code == 0 and out.count("[") == 3 and "check" not in out


def test_cli_gemm_check_reports_mismatch(capsys, monkeypatch):
    monkeypatch.setattr(board_model, "BoardModel", WrongBoard)   # what open_board builds
    code, out, _ = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m", "3",
                        "--n", "3", "--depth", "4", "--mode", "exact", "--check"], capsys)
    assert code == 1 and "check: MISMATCH: 1 of 9 elements differ" in out


def test_cli_errors_are_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    code, _, err = cli(["host", "status", "--port", "/dev/ttyUSB9", "--preset", "tiny"],
                       capsys)
    assert code == 2 and err.strip().startswith("qforge: error:") and "pip install" in err
    code, _, err = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m", "0",
                        "--n", "2", "--depth", "3", "--mode", "exact"], capsys)
    assert code == 2 and err.strip().endswith("argument --m: 0: allowed range is 1 .. 100000")
    code, _, err = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m",
                        "100000", "--n", "2", "--depth", "3", "--mode", "exact"], capsys)
    assert code == 2 and err == ("qforge: error: --m 100000 --n 2 --depth 3: GEMM.m = 100000:"
                                 " allowed 1 .. 1024 (512 tiles of 2 rows)\n")
    code, _, err = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m", "2",
                        "--n", "2", "--depth", "3", "--mode", "exact", "--seed", "-1"], capsys)
    assert code == 2 and err.strip().endswith("argument --seed: -1: allowed range is 0 .. "
                                              "4294967295")
    code, _, err = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m",
                        "400", "--n", "2", "--depth", "5", "--mode", "exact"], capsys)
    # 200 tiles of ceil(5 / P) = 5 words (P = 1): 1000 > buffers.depth = 512
    assert code == 2 and "= 200 * 5 = 1000 buffer words; allowed at most buffer_depth = 512" \
        in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["host", "gemm", "--port", "loopback", "--preset", "tiny", "--m", "1",
                        "--n", "1", "--depth", "1", "--mode", "fastest"], capsys)
    assert code == 2 and "invalid choice: 'fastest'" in err           # argparse's usage error
    code, out, _ = cli(["host", "gemm", "--help"], capsys)
    assert code == 0 and out.startswith("usage: qforge host gemm")



@pytest.mark.parametrize("name", ["tiny", "default"])
def test_runtime_board_backend_runs_programs_like_the_golden_machine(name):
    """The runtime's board backend (qforge.sim.runtime.BoardBackend) on the board model
    through the simulated link: random programs (valid and invalid words, accumulate
    and update GEMMs) leave the same memory and error flag as the golden machine."""
    from qforge.sim.apps.fuzz import random_program
    from qforge.sim.runtime import Runtime

    config = load_preset(name)
    _, _, board = linked(config)
    runtime = Runtime(config, "board", board=board)
    for seed in range(3):
        program = random_program(config, seed, instructions=30, max_tiles=1)
        golden = Runtime(config, "golden")
        for target in (runtime, golden):
            target.reset()
            target.memory = program.memory.copy()
        report = runtime.run(program.words)
        expected = golden.run(program.words)
        assert report.error == expected.error == (program.invalid > 0)
        assert report.gemms == expected.gemms == program.gemms
        np.testing.assert_array_equal(runtime.memory, golden.memory)
