# amaranth: UnusedElaboratable=no
"""The host link's recovery from a dead host (:class:`qforge.hdl.link.HostLink`) in the
Amaranth simulator: ABORT pulses the accelerator's reset once, sets ``last_seq`` to its
SEQ and is reported in status bit 3; a beat the accelerator never takes ends in
NAK STALLED after ``stall_cycles`` of an idle transmitter (result frames being sent
restart the wait), after which STATUS is answered again. The bench is
:class:`tests.hdl.test_link.LinkBench`."""

import random

import pytest

from qforge.hdl.protocol import Kind, Nak, beats_to_bytes, bytes_to_beats, encode_frame
from tests.hdl.test_link import (DIVISOR, LinkBench, _check_nak, _frame_with_crc,
                                 _random_beats, _status)


def _reset_counter(bench, pulses: list):
    """A watcher appending the cycle of every cycle ``accelerator_reset`` is high."""
    async def watch(ctx):
        async for _, _, value in ctx.tick().sample(bench.dut.accelerator_reset):
            if value:
                pulses.append(bench.now(ctx))
    return watch


def test_abort_resets_the_accelerator_once_and_resynchronizes_last_seq():
    """ABORT SEQ 41 on a busy accelerator with its error flag set: ACK SEQ 41, one
    reset cycle, last_seq = 41 and bit 3 set in the ACK and in the next STATUS reply
    (which clears it); the next data frame is SEQ 42; SEQ 41 is now a duplicate."""
    bench = LinkBench(sink_stall=0.0)
    config = bench.config
    pulses = []
    beats = _random_beats(random.Random(5), config, Kind.A_DATA, 2)

    async def script(ctx, bench):
        ctx.set(bench.dut.accelerator.idle, 0)
        ctx.set(bench.dut.accelerator.error, 1)
        reply = await bench.request(ctx, encode_frame(Kind.ABORT, 41))
        assert (reply.kind_name, reply.seq) == ("ACK", 41)
        status = _status(reply)
        assert (status.last_seq, status.aborted, status.rejected_frames) == (41, True, 0)
        assert len(pulses) == 1
        # The accelerator comes out of its reset idle (here the bench drives it).
        ctx.set(bench.dut.accelerator.idle, 1)
        ctx.set(bench.dut.accelerator.error, 0)
        first, second = [_status(await bench.request(ctx, encode_frame(Kind.STATUS, 0)))
                         for _ in range(2)]
        assert (first.aborted, second.aborted, second.idle) == (True, False, True)
        payload = beats_to_bytes(config, Kind.A_DATA, beats)
        reply = await bench.request(ctx, encode_frame(Kind.A_DATA, 41, payload))
        assert (reply.kind_name, bench.beats["a_in"]) == ("ACK", [])   # a duplicate
        reply = await bench.request(ctx, encode_frame(Kind.A_DATA, 42, payload))
        assert (reply.kind_name, _status(reply).last_seq) == ("ACK", 42)
        assert len(pulses) == 1

    bench.run(script, watchers=[_reset_counter(bench, pulses)])
    assert bench.beats["a_in"] == beats


def test_abort_is_checked_like_status():
    """ABORT with a payload is NAK LENGTH, with a bad CRC NAK CRC: never executed (no
    reset pulse, last_seq unchanged)."""
    bench = LinkBench()
    pulses = []

    async def script(ctx, bench):
        _check_nak(await bench.request(ctx, encode_frame(Kind.ABORT, 3, b"x")), Nak.LENGTH, 3)
        _check_nak(await bench.request(ctx, _frame_with_crc(Kind.ABORT, 4, b"",
                                                            crc_error=True)), Nak.CRC, 4)
        status = _status(await bench.request(ctx, encode_frame(Kind.STATUS, 5)))
        assert (status.last_seq, status.aborted, status.rejected_frames) == (0xFF, False, 2)

    bench.run(script, watchers=[_reset_counter(bench, pulses)])
    assert pulses == []


def test_a_beat_never_taken_is_nak_stalled_then_status_is_answered():
    """The accelerator never takes a beat: the frame is NAK STALLED (SEQ as sent) after
    ``stall_cycles``, not executed (last_seq unchanged, counted as rejected); the
    STATUS sent meanwhile was dropped, the next one is answered; ABORT then works."""
    bench = LinkBench(sink_stall=1.0, stalls_allowed=True)
    config = bench.config
    frame = encode_frame(Kind.A_DATA, 0, beats_to_bytes(
        config, Kind.A_DATA, _random_beats(random.Random(6), config, Kind.A_DATA, 3)))
    limit = bench.dut.stall_cycles

    async def script(ctx, bench):
        start = bench.now(ctx)
        await bench.send(ctx, frame)
        sent = bench.now(ctx)
        await bench.send(ctx, encode_frame(Kind.STATUS, 1))       # dropped: executing
        await bench.wait_until(ctx, lambda: bench.responses, "NAK STALLED",
                               limit=2 * limit)
        end, reply = bench.responses[0]
        _check_nak(reply, Nak.STALLED, 0)
        # The wait is the stall limit (from the end of the frame), and not much more.
        assert limit <= end - sent <= limit + 40 * 10 * DIVISOR, (start, sent, end)
        assert len(bench.responses) == 1
        status = _status(await bench.request(ctx, encode_frame(Kind.STATUS, 2)))
        assert (status.last_seq, status.rejected_frames, status.frame_rejected) == \
            (0xFF, 1, True)
        reply = await bench.request(ctx, encode_frame(Kind.ABORT, 9))
        assert (reply.kind_name, _status(reply).last_seq) == ("ACK", 9)

    bench.run(script, max_cycles=10 * limit)
    assert all(not beats for beats in bench.beats.values())
    assert bench.withdrawn == [("a_in", bytes_to_beats(config, Kind.A_DATA, frame[5:-2])[0])]


@pytest.mark.slow
def test_result_frames_being_sent_restart_the_stall_wait():
    """While result frames keep the transmitter busy the accelerator is making progress:
    the NAK STALLED comes only ``stall_cycles`` after the last result frame has gone."""
    bench = LinkBench(sink_stall=1.0, stalls_allowed=True)
    config = bench.config
    limit = bench.dut.stall_cycles
    frame_cycles = 14 * 10 * DIVISOR          # a tiny RESULT frame (7 payload bytes)
    # Enough frames to outlast the stall limit; without the restart the NAK would come
    # between them.
    results = [random.Random(7).getrandbits(40) for _ in range(limit // frame_cycles + 4)]
    frame = encode_frame(Kind.B_DATA, 0, beats_to_bytes(
        config, Kind.B_DATA, _random_beats(random.Random(8), config, Kind.B_DATA, 1)))

    async def script(ctx, bench):
        await bench.send(ctx, frame)
        await bench.wait_until(ctx, lambda: bench.responses, "NAK STALLED",
                               limit=4 * limit)
        _check_nak(bench.responses[0][1], Nak.STALLED, 0)

    bench.run(script, results=results, result_stall=0.0, max_cycles=10 * limit)
    # Every result went out before the NAK: the wait restarted while they were sent.
    assert bench.kinds[-1] == "NAK" and bench.kinds.count("RESULT") == len(results)


def test_abort_restarts_result_seq_and_takes_no_beat_in_its_cycle():
    """Result beats keep coming while an ABORT is executed (the bench's source is not
    reset): each beat goes out exactly once, the RESULT SEQs run on before the ACK and
    restart at 0 after it."""
    bench = LinkBench()
    rng = random.Random(9)
    results = [rng.getrandbits(40) for _ in range(12)]

    async def script(ctx, bench):
        await bench.wait_until(ctx, lambda: len(bench.results) >= 3, "three results")
        reply = await bench.request(ctx, encode_frame(Kind.ABORT, 0))
        assert reply.kind_name == "ACK"
        await bench.wait_until(ctx, lambda: len(bench.results) == len(results),
                               "every result")
        await bench.quiet(ctx, 40 * 10 * DIVISOR)

    bench.run(script, results=results, result_stall=0.0)
    payloads = [bytes_to_beats(bench.config, Kind.RESULT, frame.payload)[0]
                for frame in bench.results]
    assert payloads == results
    before = bench.kinds.index("ACK")
    seqs = [frame.seq for frame in bench.results]
    assert seqs == list(range(before)) + list(range(len(results) - before))
    assert 3 <= before < len(results)


@pytest.mark.parametrize("pe, expected_tile", [
    # K = 2, W = 8: n = 4 blocks, P = 4 lanes, depth limit 4094 (not a multiple of P).
    # shifted: 4094 MACs x 16 block products packed into 4 lanes: ceil(65504 / 4).
    ("shifted", 16376),
    # shared_shift: every cycle is one block pair of a word of 4 operands, so the
    # ceil(4094 / 4) = 1024 words take 16 cycles each (the last word's 2 empty lanes
    # too): 8 cycles more than the packed count.
    ("shared_shift", 16384),
])
def test_stall_limit_covers_the_longest_tile(pe, expected_tile):
    """At a fast UART (4 clock cycles per bit: 10,240 cycles for 256 byte times) the
    stall limit is twice the longest output tile's compute plus 256."""
    from qforge.hdl.link import HostLink
    from tests.configs import custom

    config = custom(f"deep_{pe}", operand_width=8, block_width=2, block_multipliers=4,
                    buffer_depth=1024, max_reduction_depth=4094, pe=pe)
    assert HostLink(config, divisor=4).stall_cycles == 2 * expected_tile + 256
