"""The hardware round-shift (:mod:`qforge.hdl.rounding`) against the golden model's
:func:`qforge.sim.model.rounding.round_shift`, bit for bit, and the rounding codes: the
HDL compares with the model's :class:`~qforge.sim.model.rounding.Rounding`, never with
literal codes."""

import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Shape, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from qforge.hdl.layouts import output_layout
from qforge.hdl.rounding import round_shift_addend, rounding_is_defined, shift_rounded
from qforge.sim.model.random_bits import random_bits
from qforge.sim.model.rounding import Rounding, round_shift
from tests.configs import tiny

HDL = Path(__file__).resolve().parents[2] / "hdl"


class _RoundShift(wiring.Component):
    """``round_shift_addend`` and ``shift_rounded`` back to back, combinational."""

    def __init__(self, value_shape, max_shift: int):
        self._max_shift = max_shift
        super().__init__({
            "value": In(value_shape),
            "shift": In(range(max_shift + 1)),
            "rounding": In(Rounding),
            "random": In(32),
            "result": Out(signed(Shape.cast(value_shape).width + max_shift + 2)),
            "defined": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        addend = round_shift_addend(m, self.value, self.shift, self.rounding, self.random,
                                    max_shift=self._max_shift)
        m.d.comb += [self.result.eq(shift_rounded(m, self.value, addend, self.shift)),
                     self.defined.eq(rounding_is_defined(self.rounding))]
        return m


def _run(dut, cases):
    """``(value, shift, rounding, random) -> result`` for each case."""
    results = []

    async def bench(ctx):
        for value, shift, rounding, bits in cases:
            ctx.set(dut.value, value)
            ctx.set(dut.shift, shift)
            ctx.set(dut.rounding, rounding)
            ctx.set(dut.random, bits)
            results.append(ctx.get(dut.result))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("value_shape, max_shift", [
    (signed(12), 15),        # shifts beyond the value's width
    (unsigned(10), 10),      # the VRQ encoder's use: a magnitude, shift <= its width
    (signed(40), 47),        # shifts beyond the 32 random bits
])
def test_round_shift_matches_the_model(value_shape, max_shift):
    rng = np.random.default_rng(7)
    shape = Shape.cast(value_shape)
    low, high = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed \
        else (0, 1 << shape.width)
    count = 150
    values = np.concatenate([[low, high - 1, 0, 1, -1 if shape.signed else 2],
                             rng.integers(low, high, count - 5)])
    shifts = rng.integers(0, max_shift + 1, count)
    rows, cols = rng.integers(0, 1000, count), rng.integers(0, 1000, count)
    seed, tensor = 12345, 7
    bits = random_bits(seed, tensor, rows, cols)
    for rounding in Rounding:
        cases = [(int(v), int(s), rounding, int(b)) for v, s, b in zip(values, shifts, bits)]
        got = _run(_RoundShift(value_shape, max_shift), cases)
        expected = [int(round_shift(np.array([v]), int(s), rounding, seed=seed,
                                    tensor=tensor, rows=np.array([r]),
                                    cols=np.array([c]))[0])
                    for v, s, r, c in zip(values, shifts, rows, cols)]
        assert got == expected, rounding.name


def test_only_rounding_members_are_defined():
    dut = _RoundShift(signed(4), 3)
    seen = {}

    async def bench(ctx):
        for code in range(4):
            ctx.set(dut.rounding, code)
            seen[code] = ctx.get(dut.defined)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {code: int(code in set(Rounding)) for code in range(4)}


def test_rounding_fields_are_shaped_by_the_model_enum():
    layout = output_layout(tiny())
    assert layout.members["rounding"] is Rounding
    assert Shape.cast(Rounding) == unsigned(2)


def test_no_literal_rounding_codes_in_the_hdl():
    """Rounding codes are compared with Rounding members (or rounding_is_defined), never
    with numbers, and no switch on a rounding code uses numbered cases."""
    literal = re.compile(r"rounding\W*\s*(?:==|!=|<=|>=|<|>)\s*\d")
    switch = re.compile(r"Switch\([^)]*rounding")
    found = [f"{path.name}:{number}: {line.strip()}"
             for path in sorted(HDL.glob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if literal.search(line) or switch.search(line)]
    assert found == []
