"""A small first-in first-out queue whose head is always entry 0 of a shift register:
the same ports and behaviour as Amaranth's ``SyncFIFO`` (``w_data``, ``w_en``,
``w_rdy``, ``r_data``, ``r_en``, ``r_rdy``, ``level``), cycle for cycle, but
``r_data`` is a register instead of a read multiplexer over the entries.

On an FPGA whose logic cell pairs one LUT with one flip-flop (the iCE40), entry ``i``'s
input multiplexer (new word or entry ``i + 1``) packs with entry ``i``'s flip-flops, so
a queue of ``D`` entries of ``W`` bits takes about ``D * W`` logic cells where
``SyncFIFO``'s entries (written straight from ``w_data``) and read multiplexer take
``(D + 1) * W``. Meant for shallow queues: every entry moves on every read.
"""

from amaranth.hdl import Elaboratable, Module, Signal

__all__ = ["ShiftFIFO"]


class ShiftFIFO(Elaboratable):
    """``depth`` (at least 1) entries of ``width`` bits. A write (``w_en`` while ``w_rdy = level !=
    depth``) appends ``w_data``; a read (``r_en`` while ``r_rdy = level != 0``) drops the
    head ``r_data``; both may happen in one cycle (the level stays). ``r_data`` is
    meaningful only while ``r_rdy``; the entries have no reset (like a memory's)."""

    def __init__(self, *, width: int, depth: int):
        self.width, self.depth = width, depth
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal()
        self.r_data, self.r_en, self.r_rdy = Signal(width, reset_less=True), Signal(), Signal()
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        entries = [self.r_data] + [Signal(self.width, name=f"entry{i}", reset_less=True)
                                   for i in range(1, depth)]
        read, write = Signal(), Signal()
        m.d.comb += [self.w_rdy.eq(self.level != depth), self.r_rdy.eq(self.level != 0),
                     read.eq(self.r_en & self.r_rdy), write.eq(self.w_en & self.w_rdy)]
        # After the cycle, entry i holds the word that was at i (+ 1 after a read), or
        # the new word if it lands at i: at level - 1 after a read, else at level.
        for i, entry in enumerate(entries):
            with m.If(read):
                with m.If(write & (self.level == i + 1)):
                    m.d.sync += entry.eq(self.w_data)
                if i + 1 < depth:
                    with m.Else():
                        m.d.sync += entry.eq(entries[i + 1])
            with m.Elif(write & (self.level == i)):
                m.d.sync += entry.eq(self.w_data)
        with m.If(write & ~read):
            m.d.sync += self.level.eq(self.level + 1)
        with m.If(read & ~write):
            m.d.sync += self.level.eq(self.level - 1)
        return m
