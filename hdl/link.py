"""The board side of the host link: framed requests in over a UART, accelerator streams
out, results and responses back over the UART.

The protocol (frame format, kinds, sequence numbers, NAK reasons, status payload,
timeout) is defined once, in :mod:`qforge.hdl.protocol`; every constant here comes from
there. :class:`HostLink` is the frame engine, :class:`LinkedAccelerator` the whole board
design (accelerator + link) that the FPGA tops instantiate.

The UART bit timing (:func:`~qforge.hdl.uart.uart_divisor`) is in :mod:`qforge.hdl.uart`,
the CRC in hardware (:func:`~qforge.hdl.crc.crc16_step`) in :mod:`qforge.hdl.crc`.

Why the file is long (about 600 lines): :class:`HostLink` is one frame engine whose
receive and transmit state machines share registers (:class:`_SharedState`); each is a
method, kept whole so that its states read in frame order. The recovery from a dead host
(ABORT, the stall timeout) adds about 60 lines to them; it belongs to the same states.
"""

from contextlib import contextmanager

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qforge.hdl.protocol import (CONTROL_KINDS, DATA_KINDS, MAX_PAYLOAD, REQUEST_KINDS,
                                  STALL_TIMEOUT_BYTE_TIMES, STATUS_BYTES, SYNC,
                                  TIMEOUT_BYTE_TIMES, Kind, Nak, beat_bytes,
                                  config_fingerprint)
from qforge.sim.model.cycles import mode_tile_cycles
from qforge.sim.model.numerics import standard_modes
from qforge.sim.model.spec import Config
from qforge.hdl.signatures import AcceleratorSignature
from qforge.hdl.top import Accelerator
from qforge.hdl.crc import CRC_INIT, crc16_step
from qforge.hdl.uart import UartReceiver, UartTransmitter, check_divisor, uart_divisor

__all__ = ["link_status_layout", "HostLink", "LinkedAccelerator"]

#: What the link shows on ``status`` (the board tops blink LEDs from it). Every field is
#: a flip-flop output.
link_status_layout = data.StructLayout({
    "busy": 1,            # a request frame is being received, checked or executed
    "executing": 1,       # a good data frame's beats are being pushed
    "frame_rejected": 1,  # the last finished request was NAKed (cleared by a good one)
    "rx_byte": 1,         # pulse: a byte was received
    "tx_byte": 1,         # pulse: a byte was handed to the UART transmitter
    "line_error": 1,      # pulse: UART framing error (bad stop bit)
    "aborted": 1,         # pulse: an ABORT reset the accelerator
})

class HostLink(wiring.Component):
    """The frame engine of the host link (protocol: :mod:`qforge.hdl.protocol`).

    Parameters: the accelerator's ``config``, the UART ``divisor`` (clock cycles per
    bit, >= 4) and ``max_payload``, the payload buffer's size in bytes (longer frames are
    answered with NAK LENGTH; at least one beat of every kind, at most ``MAX_PAYLOAD``).

    Ports:

    * ``rx`` (in, asynchronous pin, idle high), ``tx`` (out, registered, idle high): the
      UART, 8N1.
    * ``accelerator``: the flipped :class:`~qforge.hdl.signatures.AcceleratorSignature`,
      connected to an :class:`~qforge.hdl.top.Accelerator` with one ``wiring.connect``:

      * ``accelerator.cmd``, ``accelerator.a_in``, ``accelerator.b_in`` (out): the beats
        of executed COMMAND, A_DATA, B_DATA frames, in frame order. ``valid`` never
        looks at ``ready``; the payload holds while a beat waits, with one exception: a
        beat not taken within :attr:`stall_cycles` is withdrawn (NAK STALLED), after
        which the accelerator's state is unknown until an ABORT resets it.
      * ``accelerator.result`` (in): each beat goes back as one RESULT frame (SEQ = a
        counter from 0). A beat is taken whenever the transmit path is free to start a
        frame (no frame being sent and no response waiting).
      * ``accelerator.idle``, ``accelerator.error`` (in): reported in the status
        payload.
    * ``accelerator_reset`` (out): high for one cycle when an ABORT is executed; the
      accelerator's synchronous reset (:class:`LinkedAccelerator` puts it through a
      ``ResetInserter``). The link's own state is not reset by it.
    * ``status`` (out, :data:`link_status_layout`): for LEDs, all registered.

    Receive path, one byte per cycle from the UART: hunt for SYNC; KIND, SEQ, LENGTH
    (LENGTH above ``max_payload``: NAK LENGTH at once, back to hunting); the payload
    goes into a ``max_payload``-byte buffer memory while its CRC (:func:`crc16_step`)
    and its position in a beat are tracked; then the two CRC bytes. The whole frame is
    checked before any beat leaves, in the protocol's order CRC, KIND, LENGTH (whole
    beats; STATUS without payload), then STATUS is answered, a duplicate SEQ (= last_seq) is ACKed
    without executing and SEQ = last_seq + 1 is executed: the buffer is read in order,
    beats assembled little-endian and pushed, then last_seq := SEQ and the ACK is sent.
    Any other SEQ gets NAK SEQUENCE. ``last_seq`` is 0xFF after reset. A data frame
    with an empty payload counts as zero beats: it is executed (nothing pushed) and
    advances ``last_seq``. If the next byte of a frame does not arrive within
    ``TIMEOUT_BYTE_TIMES * 10 * divisor`` cycles the frame is answered with
    NAK TRUNCATED (SEQ as received, 0 if SEQ had not arrived).

    Bytes that arrive while a frame is checked, executed or its response waits for the
    transmitter are **dropped** (the host is stop-and-wait: it sends nothing until it has
    the response). Executing waits for the accelerator at most :attr:`stall_cycles`
    cycles per beat, counted while the transmitter is idle; then the frame is answered
    with NAK STALLED (its earlier beats stay taken, ``last_seq`` does not move). An
    ABORT (checked like STATUS) pulses ``accelerator_reset``, sets ``last_seq`` to its
    SEQ, restarts the result counter and is ACKed.

    Timing: the frame is checked in the cycle after its last CRC byte arrives;
    executing takes two cycles per payload byte plus the cycles each beat waits for
    ``ready``; the response frame starts one cycle after the decision (the last beat's
    transfer, for an executed frame) if the transmitter is idle, else after the frame
    being sent.

    Transmit path: one frame at a time, whole frames; a pending response goes before
    a result beat. The frame's bytes are produced as the UART takes them (SYNC, KIND,
    SEQ, LENGTH, payload, CRC computed on the fly); the status payload (flags, last_seq,
    rejected count, :func:`~qforge.hdl.protocol.config_fingerprint`) is a snapshot taken
    when the response frame starts, after the request's effects. Sending a STATUS_REPLY
    clears the "rejected since the last STATUS reply" flag.
    """

    def __init__(self, config: Config, *, divisor: int, max_payload: int = MAX_PAYLOAD):
        self._config = config
        self._divisor = check_divisor(divisor)
        self._beat_bytes = {kind: beat_bytes(config, kind) for kind in DATA_KINDS}
        self._result_bytes = beat_bytes(config, Kind.RESULT)
        smallest = max(self._beat_bytes.values())
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or \
                not smallest <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload = {max_payload!r}: allowed {smallest} .. "
                             f"{MAX_PAYLOAD} bytes (at least one beat of every kind)")
        self._max_payload = max_payload
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "accelerator": In(AcceleratorSignature(config)),
            "accelerator_reset": Out(1),
            "status": Out(link_status_layout),
        })

    @property
    def config(self) -> Config:
        return self._config

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def max_payload(self) -> int:
        return self._max_payload

    @property
    def timeout_cycles(self) -> int:
        """Cycles without a byte after which a frame in progress is NAKed TRUNCATED."""
        return TIMEOUT_BYTE_TIMES * 10 * self._divisor

    @property
    def stall_cycles(self) -> int:
        """Cycles of an idle transmitter during which an offered beat is not taken after
        which its frame is NAKed STALLED: :data:`STALL_TIMEOUT_BYTE_TIMES` byte times, and
        at least twice the longest output tile's compute (the depth limit in the mode
        whose PEs issue the most block products per MAC; a waiting command may wait that
        long without a result frame) so that a slow clock with a fast UART never cuts a
        legitimate wait."""
        config = self._config
        # An upper bound on any command's tile: exact keeps every block of both operands,
        # the most block products a PE design issues per MAC (issued_block_products: at
        # most n x n; shared_shift's dynamic modes issue as many, in whole words of P
        # operands, which mode_tile_cycles counts); the other standard modes are taken
        # too so that no design's approximate mode can exceed it unseen.
        longest_tile = max(mode_tile_cycles(config, config.max_reduction_depth, precision)
                           for precision in standard_modes(config).values())
        return max(STALL_TIMEOUT_BYTE_TIMES * 10 * self._divisor, 2 * longest_tile + 256)

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UartReceiver(self._divisor)
        m.submodules.transmitter = transmitter = UartTransmitter(self._divisor)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx),
                     # Always ready: bytes the frame engine does not want are dropped.
                     receiver.data.ready.eq(1)]

        # Shared between the two paths: the request's effects (receive side) and the
        # status snapshot and response hand-off (transmit side).
        state = _SharedState()
        self._receive_path(m, receiver, state)
        self._transmit_path(m, transmitter, state)

        m.d.sync += [self.status.rx_byte.eq(receiver.data.valid),
                     self.status.tx_byte.eq(transmitter.data.valid
                                            & transmitter.data.ready),
                     self.status.line_error.eq(receiver.framing_error)]
        return m

    # ---- receive: frame in, check, execute ---------------------------------------------

    def _receive_path(self, m, receiver, state):
        """The receive path of the class docstring: hunt, header, payload into the
        buffer, CRC, check, execute, respond. Its signals, then the ``receive`` state
        machine; one method (about 200 lines) so that the states read in frame order
        next to the registers they share."""
        beat_sizes = self._beat_bytes
        largest_beat = max(beat_sizes.values())
        max_payload = self._max_payload
        byte = receiver.data.payload
        byte_valid = receiver.data.valid

        seq = state.request_seq
        kind_is = {kind: Signal(name=f"kind_is_{kind.name.lower()}")
                   for kind in REQUEST_KINDS}
        is_request = Signal()
        length_low = Signal(8)
        length = Signal(range(max_payload + 1))      # LENGTH, once it is <= max_payload
        payload_empty = Signal()
        # Beat position: the byte index in the current beat, and its last value for this
        # KIND (0 for STATUS and unknown kinds). "Whole beats" = back at 0 after the
        # payload: no divider needed.
        byte_in_beat = Signal(range(largest_beat))
        beat_last_byte = Signal(range(largest_beat))
        # The buffer address: write pointer while receiving, read pointer while
        # executing; both end where the next address would equal LENGTH.
        address = Signal(range(max_payload))
        # Registered (timing): address and length are always stable for a cycle before
        # it is used (bytes arrive 10 * divisor cycles apart; FETCH precedes STORE).
        last_byte = Signal()
        m.d.sync += last_byte.eq(address + 1 == length)
        payload_done = Signal()          # executing: the last byte has been stored
        crc = Signal(16)
        crc_low = Signal(8)
        crc_ok = Signal()
        # The sequence comparisons, registered with the CRC check so that the decision
        # in CHECK depends on flip-flops only (timing).
        seq_repeats = Signal()           # SEQ == last_seq: a retransmission
        seq_follows = Signal()           # SEQ == last_seq + 1 (mod 256): to execute
        next_crc = crc16_step(m, crc, byte, name="rx_crc")
        # Beat under assembly: byte i of a beat is written at byte i (little-endian), a
        # write enable per byte and no multiplexers. The streams of shorter beats see
        # only their low bytes.
        assembly = Signal(data.ArrayLayout(8, largest_beat))

        buffer = Memory(shape=8, depth=max_payload, init=[])
        m.submodules.buffer = buffer
        write = buffer.write_port()
        read = buffer.read_port()
        buffer_address = address[:len(write.addr)]
        m.d.comb += [write.addr.eq(buffer_address), write.data.eq(byte),
                     read.addr.eq(buffer_address)]

        # Stall timer: reloaded outside OFFER, by every beat taken and while the
        # transmitter sends (results leaving = the accelerator makes progress); reaching
        # 0 in OFFER answers the frame with NAK STALLED.
        stall_limit = self.stall_cycles
        stall = Signal(range(stall_limit), init=stall_limit - 1)
        stalled = Signal()
        m.d.comb += stalled.eq(stall == 0)
        # Silence timer: reloaded by every byte; reaching 0 inside a frame times it out.
        timeout = self.timeout_cycles
        silence = Signal(range(timeout), init=timeout - 1)
        timed_out = Signal()
        m.d.comb += timed_out.eq(silence == 0)
        with m.If(byte_valid):
            m.d.sync += silence.eq(timeout - 1)
        with m.Elif(~timed_out):
            m.d.sync += silence.eq(silence - 1)

        accelerator = self.accelerator
        streams = {Kind.COMMAND: accelerator.cmd, Kind.A_DATA: accelerator.a_in,
                   Kind.B_DATA: accelerator.b_in}
        for kind, port in streams.items():
            m.d.comb += port.payload.eq(assembly.as_value()[:len(port.payload.as_value())])
        beat_taken = Signal()
        m.d.comb += beat_taken.eq(Cat(*(kind_is[kind] & port.ready
                                        for kind, port in streams.items())).any())

        def respond(kind, reason=None):
            """Finish the request: record its effect, hand ``kind`` to the transmitter."""
            m.d.sync += state.response_kind.eq(kind)
            if reason is None:
                m.d.sync += state.frame_rejected.eq(0)
            else:
                m.d.sync += [state.response_reason.eq(reason),
                             state.frame_rejected.eq(1),
                             state.rejected_since_status.eq(1)]
                with m.If(state.rejected_count != 0xFF):
                    m.d.sync += state.rejected_count.eq(state.rejected_count + 1)
            m.next = "RESPOND"

        @contextmanager
        def frame_byte():
            """Inside a frame: the body runs for the next byte; no byte for too long is
            NAK TRUNCATED."""
            with m.If(byte_valid):
                yield
            with m.Elif(timed_out):
                respond(Kind.NAK, Nak.TRUNCATED)

        # The accelerator's reset from a register, high exactly in the ABORT state's cycle
        # (set with the transition into it): decoded from the state, it drove a net to
        # every register of the accelerator through LUTs, the ulx3s preset's critical
        # path on the ULX3S (22.5 ns, 14.3 ns of it that net's routing).
        abort_reset = Signal(name="accelerator_reset_register")
        m.d.sync += abort_reset.eq(0)
        m.d.comb += self.accelerator_reset.eq(abort_reset)
        with m.FSM(name="receive") as fsm:
            with m.State("HUNT"):
                with m.If(byte_valid & (byte == SYNC)):
                    m.d.sync += [seq.eq(0), crc.eq(CRC_INIT), address.eq(0),
                                 byte_in_beat.eq(0)]
                    m.next = "KIND"
            with m.State("KIND"):
                with frame_byte():
                    m.d.sync += crc.eq(next_crc)
                    for kind, flag in kind_is.items():
                        m.d.sync += flag.eq(byte == kind)
                    m.d.sync += [is_request.eq(Cat(*(byte == kind
                                                     for kind in REQUEST_KINDS)).any()),
                                 beat_last_byte.eq(0)]
                    for kind, size in beat_sizes.items():
                        with m.If(byte == kind):
                            m.d.sync += beat_last_byte.eq(size - 1)
                    m.next = "SEQ"
            with m.State("SEQ"):
                with frame_byte():
                    m.d.sync += [crc.eq(next_crc), seq.eq(byte)]
                    m.next = "LENGTH_LOW"
            with m.State("LENGTH_LOW"):
                with frame_byte():
                    m.d.sync += [crc.eq(next_crc), length_low.eq(byte)]
                    m.next = "LENGTH_HIGH"
            with m.State("LENGTH_HIGH"):
                with frame_byte():
                    received_length = Cat(length_low, byte)
                    m.d.sync += [crc.eq(next_crc), length.eq(received_length),
                                 payload_empty.eq(received_length == 0)]
                    with m.If(received_length > max_payload):
                        respond(Kind.NAK, Nak.LENGTH)
                    with m.Elif(received_length == 0):
                        m.next = "CRC_LOW"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with frame_byte():
                    m.d.comb += write.en.eq(1)
                    m.d.sync += [crc.eq(next_crc), address.eq(address + 1),
                                 byte_in_beat.eq(Mux(byte_in_beat == beat_last_byte, 0,
                                                     byte_in_beat + 1))]
                    with m.If(last_byte):
                        m.next = "CRC_LOW"
            with m.State("CRC_LOW"):
                with frame_byte():
                    m.d.sync += crc_low.eq(byte)
                    m.next = "CRC_HIGH"
            with m.State("CRC_HIGH"):
                with frame_byte():
                    m.d.sync += [crc_ok.eq(Cat(crc_low, byte) == crc),
                                 seq_repeats.eq(seq == state.last_seq),
                                 seq_follows.eq(seq == (state.last_seq + 1)[:8])]
                    m.next = "CHECK"
            with m.State("CHECK"):
                # The order of the checks is the protocol's (hdl/protocol.py, "Checks,
                # in this order"): CRC first, so that line noise is always NAK CRC.
                control = Cat(*(kind_is[kind] for kind in CONTROL_KINDS)).any()
                whole_beats = Mux(control, payload_empty, byte_in_beat == 0)
                with m.If(~crc_ok):
                    respond(Kind.NAK, Nak.CRC)
                with m.Elif(~is_request):
                    respond(Kind.NAK, Nak.KIND)
                with m.Elif(~whole_beats):
                    respond(Kind.NAK, Nak.LENGTH)
                with m.Elif(kind_is[Kind.STATUS]):
                    respond(Kind.STATUS_REPLY)
                with m.Elif(kind_is[Kind.ABORT]):
                    m.d.sync += [state.last_seq.eq(seq), state.aborted_since_status.eq(1),
                                 abort_reset.eq(1)]
                    m.next = "ABORT"
                with m.Elif(seq_repeats):
                    respond(Kind.ACK)               # a retransmission: not executed again
                with m.Elif(seq_follows):
                    m.d.sync += [address.eq(0), payload_done.eq(0)]
                    with m.If(payload_empty):
                        m.d.sync += state.last_seq.eq(seq)
                        respond(Kind.ACK)
                    with m.Else():
                        m.next = "FETCH"
                with m.Else():
                    respond(Kind.NAK, Nak.SEQUENCE)
            # Execute: two cycles per byte (the buffer's read is synchronous), then the
            # beat waits on its stream. The UART is 10 * divisor cycles per byte, so
            # this never limits the throughput.
            with m.State("FETCH"):
                m.next = "STORE"
            with m.State("STORE"):
                m.d.sync += [assembly[byte_in_beat].eq(read.data), address.eq(address + 1),
                             payload_done.eq(last_byte),
                             byte_in_beat.eq(Mux(byte_in_beat == beat_last_byte, 0,
                                                 byte_in_beat + 1))]
                with m.If(byte_in_beat == beat_last_byte):
                    m.next = "OFFER"
                with m.Else():
                    m.next = "FETCH"
            with m.State("OFFER"):
                for kind, port in streams.items():
                    m.d.comb += port.valid.eq(kind_is[kind])
                with m.If(beat_taken):
                    with m.If(payload_done):
                        m.d.sync += state.last_seq.eq(seq)
                        respond(Kind.ACK)
                    with m.Else():
                        m.next = "FETCH"
                with m.Elif(stalled):
                    respond(Kind.NAK, Nak.STALLED)
            with m.State("ABORT"):
                # One cycle of the accelerator's reset; the result counter restarts (the
                # transmitter takes no result beat in this cycle, see result.ready).
                m.d.comb += state.aborting.eq(1)
                m.d.sync += state.result_seq.eq(0)
                respond(Kind.ACK)
            with m.State("RESPOND"):
                m.d.comb += state.response_request.eq(1)
                with m.If(state.response_accepted):
                    m.next = "HUNT"

        with m.If(fsm.ongoing("OFFER") & ~beat_taken & state.sender_idle & ~stalled):
            m.d.sync += stall.eq(stall - 1)
        with m.Elif(~fsm.ongoing("OFFER") | beat_taken | ~state.sender_idle):
            m.d.sync += stall.eq(stall_limit - 1)

        m.d.sync += [self.status.aborted.eq(fsm.ongoing("ABORT")),
                     self.status.busy.eq(~fsm.ongoing("HUNT")),
                     self.status.executing.eq(fsm.ongoing("FETCH") | fsm.ongoing("STORE")
                                              | fsm.ongoing("OFFER")),
                     self.status.frame_rejected.eq(state.frame_rejected)]

    # ---- transmit: responses and result frames ------------------------------------------

    def _transmit_path(self, m, transmitter, state):
        """The transmit path of the class docstring: one frame at a time, a pending
        response before a result beat. One method (about 100 lines, the ``transmit``
        state machine and its registers) so that the states read in byte order."""
        result_bytes = self._result_bytes
        shifter_bytes = max(result_bytes, STATUS_BYTES)
        fingerprint = config_fingerprint(self._config)
        result = self.accelerator.result

        frame_kind = Signal(8)
        frame_seq = Signal(8)
        frame_reason = Signal.like(state.response_reason)
        frame_is_nak = Signal()
        frame_is_result = Signal()
        # Payload bytes after the NAK reason byte, sent from the bottom of the shifter.
        shifter = Signal(8 * shifter_bytes)
        payload_left = Signal(range(shifter_bytes + 1))
        crc = Signal(16)
        result_seq = state.result_seq
        byte = Signal(8)
        taken = Signal()
        sender_idle = Signal()
        m.d.comb += [transmitter.data.valid.eq(~sender_idle),
                     transmitter.data.payload.eq(byte),
                     taken.eq(transmitter.data.valid & transmitter.data.ready),
                     state.response_accepted.eq(sender_idle & state.response_request),
                     state.sender_idle.eq(sender_idle),
                     result.ready.eq(sender_idle & ~state.response_request
                                     & ~state.aborting)]

        flags = Cat(self.accelerator.idle, self.accelerator.error,
                    state.rejected_since_status, state.aborted_since_status, Const(0, 4))
        status_payload = Cat(flags, state.last_seq, state.rejected_count,
                             Const(fingerprint, 16))
        assert len(status_payload) == 8 * STATUS_BYTES
        frame_length = Signal(16)
        m.d.comb += frame_length.eq(Mux(frame_is_result, result_bytes,
                                        STATUS_BYTES + frame_is_nak))

        next_crc = crc16_step(m, crc, byte, name="tx_crc")

        def next_byte(state_name, *, update_crc=True):
            with m.If(taken):
                if update_crc:
                    m.d.sync += crc.eq(next_crc)
                m.next = state_name

        with m.FSM(name="transmit"):
            with m.State("IDLE"):
                m.d.comb += sender_idle.eq(1)
                with m.If(state.response_request):
                    m.d.sync += [frame_kind.eq(state.response_kind),
                                 frame_seq.eq(state.request_seq),
                                 frame_reason.eq(state.response_reason),
                                 frame_is_nak.eq(state.response_kind == Kind.NAK),
                                 frame_is_result.eq(0),
                                 shifter.eq(status_payload),
                                 payload_left.eq(STATUS_BYTES)]
                    with m.If(state.response_kind == Kind.STATUS_REPLY):
                        m.d.sync += [state.rejected_since_status.eq(0),
                                     state.aborted_since_status.eq(0)]
                    m.next = "SYNC"
                with m.Elif(result.valid & result.ready):      # the beat is taken
                    m.d.sync += [frame_kind.eq(Kind.RESULT), frame_seq.eq(result_seq),
                                 result_seq.eq(result_seq + 1),
                                 frame_is_nak.eq(0), frame_is_result.eq(1),
                                 shifter.eq(result.payload.as_value()),
                                 payload_left.eq(result_bytes)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += byte.eq(SYNC)
                with m.If(taken):
                    m.d.sync += crc.eq(CRC_INIT)
                    m.next = "KIND"
            with m.State("KIND"):
                m.d.comb += byte.eq(frame_kind)
                next_byte("SEQ")
            with m.State("SEQ"):
                m.d.comb += byte.eq(frame_seq)
                next_byte("LENGTH_LOW")
            with m.State("LENGTH_LOW"):
                m.d.comb += byte.eq(frame_length[:8])
                next_byte("LENGTH_HIGH")
            with m.State("LENGTH_HIGH"):
                m.d.comb += byte.eq(frame_length[8:16])
                with m.If(frame_is_nak):
                    next_byte("REASON")
                with m.Else():
                    next_byte("PAYLOAD")
            with m.State("REASON"):
                m.d.comb += byte.eq(frame_reason)
                next_byte("PAYLOAD")
            with m.State("PAYLOAD"):
                m.d.comb += byte.eq(shifter[:8])
                with m.If(taken):
                    m.d.sync += [crc.eq(next_crc),
                                 shifter.eq(shifter[8:]),
                                 payload_left.eq(payload_left - 1)]
                    with m.If(payload_left == 1):
                        m.next = "CRC_LOW"
            with m.State("CRC_LOW"):
                m.d.comb += byte.eq(crc[:8])
                next_byte("CRC_HIGH", update_crc=False)
            with m.State("CRC_HIGH"):
                m.d.comb += byte.eq(crc[8:])
                next_byte("IDLE", update_crc=False)


class _SharedState:
    """Registers both paths of :class:`HostLink` use, and the response hand-off
    (``response_request`` from the receive FSM, ``response_accepted`` from the transmit
    FSM: a stream-like handshake; kind, reason and SEQ hold until it is accepted)."""

    def __init__(self):
        self.last_seq = Signal(8, init=0xFF)
        self.request_seq = Signal(8)                 # SEQ of the request in progress
        self.rejected_count = Signal(8)              # saturating
        self.rejected_since_status = Signal()        # status flag bit 2
        self.aborted_since_status = Signal()         # status flag bit 3
        self.aborting = Signal()                     # the ABORT cycle (receive FSM)
        self.result_seq = Signal(8)                  # SEQ of the next RESULT frame
        self.sender_idle = Signal()                  # the transmit FSM is idle
        self.frame_rejected = Signal()               # the last request was NAKed
        self.response_kind = Signal(8)
        self.response_reason = Signal(unsigned(max(Nak).bit_length()))
        self.response_request = Signal()
        self.response_accepted = Signal()


class LinkedAccelerator(wiring.Component):
    """The whole board design: :class:`~qforge.hdl.top.Accelerator` behind a
    :class:`HostLink`. The FPGA tops only add pins, a PLL and LEDs.

    ``clock_frequency`` (Hz) and ``baud_rate`` give the UART divisor
    (:func:`uart_divisor`; ``ValueError`` naming ``baud_rate`` if the actual rate is off
    by more than 2 % or fewer than 4 cycles per bit would be needed).

    Ports: ``rx`` (in, asynchronous, idle high), ``tx`` (out, registered, idle high),
    ``status`` (out, :data:`link_status_layout`), ``accelerator_idle`` and
    ``accelerator_error`` (out, the accelerator's ``idle`` and sticky ``error``).
    """

    def __init__(self, config: Config, *, clock_frequency: float, baud_rate: float):
        self._config = config
        self._divisor = uart_divisor(clock_frequency, baud_rate)
        self._clock_frequency = clock_frequency
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(link_status_layout),
            "accelerator_idle": Out(1),
            "accelerator_error": Out(1),
        })

    @property
    def config(self) -> Config:
        return self._config

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def actual_baud_rate(self) -> float:
        return self._clock_frequency / self._divisor

    def elaborate(self, platform):
        m = Module()
        accelerator = Accelerator(self._config)
        m.submodules.link = link = HostLink(self._config, divisor=self._divisor)
        # An ABORT resets the accelerator (and only it) for one cycle.
        m.submodules.accelerator = ResetInserter(link.accelerator_reset)(accelerator)
        wiring.connect(m, link.accelerator, accelerator)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx),
                     self.status.eq(link.status),
                     self.accelerator_idle.eq(accelerator.idle),
                     self.accelerator_error.eq(accelerator.error)]
        return m
