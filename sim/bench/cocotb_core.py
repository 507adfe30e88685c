"""cocotb bench of the programmable accelerator (``qforge_core``): a program server.

Started by :class:`qforge.sim.runtime.RtlBackend` through :func:`qforge.sim.bench.rtl.
start_server`, the test :func:`serve` resets the design and then answers requests on a
pair of named pipes (``QFORGE_REQUESTS`` in, ``QFORGE_REPLIES`` out), one pickled
message each, length-prefixed:

* ``{"op": "run", "words": [...], "memory": ndarray, "stall": float, "seed": int,
  "timeout_cycles": int}``: run the program with a :class:`qforge.sim.host.datamover.
  DataMover` feeding every port (random stalls on every stream with probability
  ``stall``) until every result has arrived and the core is idle; reply ``{"memory":
  ndarray, "error": bool, "idle": bool, "cycles": int, "hang": str | None, "errors":
  [...], "gemms": int}``. ``cycles`` counts from the first instruction word taken to the
  cycle the core is idle again.
* ``{"op": "reset"}``: pulse ``rst`` (registers and the sticky error back to reset).
* ``{"op": "quit"}``: end the test (and the simulator).

The registers and the sticky error persist from one ``run`` to the next, as in the
hardware. A watchdog ends a run that makes no progress (no beat moves on any port) for
``timeout_cycles`` cycles and reports it as ``hang``.
"""

from __future__ import annotations

import os
import pickle
import random
import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from qforge.sim.model.spec import from_dict
from qforge.sim.host.datamover import DataMover

#: Clock period of the bench (ns); cycles are counted from simulated time.
PERIOD_NS = 10


def read_message(stream):
    header = stream.read(8)
    if len(header) < 8:
        return None
    (length,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(length))


def write_message(stream, message) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(body)) + body)
    stream.flush()


class CoreDriver:
    """One coroutine drives every port of the core from a :class:`DataMover`'s queues.

    Per cycle: offer the head of each queue (a beat stays offered until it is taken:
    stream rules), set ``result.ready``; in the read-only phase see which transfers
    happen at the coming edge; pop them; hand result beats to the mover.
    """

    SOURCES = ("instruction", "a_in", "b_in", "addend")

    def __init__(self, dut):
        self.dut = dut
        self.ports = [(getattr(dut, f"{name}__valid"), getattr(dut, f"{name}__ready"),
                       getattr(dut, f"{name}__payload")) for name in self.SOURCES]
        self.result_valid = dut.result__valid
        self.result_ready = dut.result__ready
        self.result_payload = dut.result__payload
        for valid, _, _ in self.ports:
            valid.value = 0
        self.result_ready.value = 0
        self.cycle = 0

    async def reset(self) -> None:
        await RisingEdge(self.dut.clk)     # out of a read-only phase, if in one
        self.cycle += 1
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
            self.cycle += 1
        self.dut.rst.value = 0

    async def run(self, mover: DataMover, *, stall: float, seed: int,
                  timeout_cycles: int) -> dict:
        rng = random.Random(seed)
        queues = [mover.instructions, mover.a_beats, mover.b_beats, mover.addend_beats]
        offered = [False] * len(queues)
        driven = [0] * len(queues)
        first = None
        progress_at = self.cycle
        hang = None
        sink_ready = 1
        self.result_ready.value = 1
        while not mover.done:
            for index, queue in enumerate(queues):
                if not offered[index] and queue and not (stall and rng.random() < stall):
                    valid, _, payload = self.ports[index]
                    payload.value = queue[0]
                    offered[index] = True
                if driven[index] != offered[index]:
                    self.ports[index][0].value = int(offered[index])
                    driven[index] = offered[index]
            if stall:
                wanted = 0 if rng.random() < stall else 1
                if wanted != sink_ready:
                    self.result_ready.value = sink_ready = wanted
            await ReadOnly()
            moved = False
            for index, queue in enumerate(queues):
                if offered[index] and self.ports[index][1].value:
                    queue.popleft()
                    offered[index] = False
                    moved = True
                    if index == 0 and first is None:
                        first = self.cycle
            if sink_ready and self.result_valid.value:
                mover.on_result(int(self.result_payload.value))
                moved = True
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            if moved:
                progress_at = self.cycle
            elif self.cycle - progress_at > timeout_cycles:
                hang = (f"no beat moved on any port for {timeout_cycles} cycles; "
                        f"pending: {mover.pending()}")
                break
        for index in range(len(queues)):
            self.ports[index][0].value = 0
        self.result_ready.value = 1
        # The last words may still be in the decoder (an invalid one raises the error
        # in its decode cycle): wait for idle.
        for _ in range(timeout_cycles):
            await ReadOnly()
            idle = bool(self.dut.idle.value)
            error = bool(self.dut.error.value)
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            if idle:
                break
        return {"idle": idle, "error": error, "hang": hang,
                "cycles": (self.cycle - 1 - first) if first is not None else 0}


@cocotb.test()
async def serve(dut):
    """Answer program requests until told to quit (see the module docstring)."""
    import json

    manifest = json.loads(open(os.environ["QFORGE_MANIFEST"]).read())
    config = from_dict(manifest["config"], source="manifest")
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    driver = CoreDriver(dut)
    await driver.reset()
    with open(os.environ["QFORGE_REQUESTS"], "rb") as requests, \
            open(os.environ["QFORGE_REPLIES"], "wb") as replies:
        while True:
            request = read_message(requests)
            if request is None or request["op"] == "quit":
                break
            if request["op"] == "reset":
                await driver.reset()
                write_message(replies, {"ok": True})
                continue
            memory = request["memory"].copy()
            mover = DataMover(config, memory)
            try:
                mover.submit(request["words"])
            except Exception as error:      # a data-mover error: report, do not run
                write_message(replies, {"exception": f"{type(error).__name__}: {error}"})
                continue
            try:
                outcome = await driver.run(
                    mover, stall=request.get("stall", 0.0), seed=request.get("seed", 0),
                    timeout_cycles=request.get("timeout_cycles", 100000))
            except Exception as error:
                # A later GEMM's operands were out of range (they came from an earlier
                # result): the hardware waits for data that will not come. Reset it.
                await driver.reset()
                write_message(replies, {"exception": f"{type(error).__name__}: {error}",
                                        "reset": True})
                continue
            outcome.update(memory=memory, errors=mover.errors, gemms=len(mover.completed))
            write_message(replies, outcome)
