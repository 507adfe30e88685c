"""VrqEncoder (Amaranth simulator) against the golden vrq_encode + vrq_pack."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from qforge.sim.model.spec import from_dict, load_preset
from qforge.hdl.vrq_encoder import VrqEncoder
from qforge.sim.model.numerics import vrq_pack
from qforge.sim.model.quantize import Rounding, random_bits, vrq_encode


def vrq_config(code_width, range_stride, ranges):
    spec = load_preset("default").to_dict()
    spec.update(name="vrq", vrq={"code_width": code_width, "range_stride": range_stride,
                                 "ranges": ranges})
    return from_dict(spec)


@pytest.mark.parametrize("fmt", [(4, 2, 8), (4, 4, 3), (5, 2, 4), (2, 2, 2)])
@pytest.mark.parametrize("value_width", [12, 40])
def test_encoder_matches_golden(fmt, value_width):
    config = vrq_config(*fmt)
    rng = np.random.default_rng(sum(fmt) + value_width)
    count = 300
    # Heavy-tailed values: every exponent appears; E sometimes below the true maximum
    # (range-0 saturation) and sometimes far above it (deep underflow).
    exponents = rng.integers(0, value_width - 1, count)
    values = (rng.integers(0, 1 << 30, count) % (1 << exponents)) * rng.choice([-1, 1], count)
    values[:5] = [0, 1, -1, (1 << (value_width - 1)) - 1, -(1 << (value_width - 1)) + 1]
    true_e = int(np.abs(values).max()).bit_length() - 1
    cases = []
    for rounding in (Rounding.NEAREST_EVEN, Rounding.TRUNCATE, Rounding.STOCHASTIC):
        for e in {true_e, max(true_e - 3, 0), min(true_e + 5, value_width - 1)}:
            sign, code, group = vrq_encode(values[None, :], config.vrq, e,
                                           rounding=rounding, seed=9, tensor=3)
            expected = vrq_pack(sign, code, group, config)[0]
            bits = random_bits(9, 3, np.zeros(count, dtype=np.int64), np.arange(count))
            cases.append((rounding, e, expected, bits))

    dut = VrqEncoder(config, value_width)
    failures = []

    async def bench(ctx):
        for rounding, e, expected, bits in cases:
            ctx.set(dut.exponent, e)
            ctx.set(dut.rounding, int(rounding))
            for index, value in enumerate(values):
                ctx.set(dut.value, int(value))
                ctx.set(dut.random, int(bits[index]))
                got = ctx.get(dut.word)
                if got != expected[index] and len(failures) < 5:
                    failures.append((rounding.name, e, int(value), got, int(expected[index])))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert not failures, failures
