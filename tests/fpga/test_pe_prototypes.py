"""The PE prototypes of tests/fpga/pe_prototypes.py compute what they claim (so that
their areas in docs/ARCHITECTURE.md, "A cheaper PE", are the areas of working
datapaths): each cycle a one-cycle tile, its result against an independent formula of
the prototype's lane format; and (``synth``) the shared-shift PE's flip-flops in Yosys
against a count by hand."""

import random

import pytest
from amaranth.sim import Simulator

from qforge.sim.model.spec import load_preset
from tests.configs import custom
from tests.fpga import pe_prototypes
from tests.fpga.pe_prototypes import (LANE_PROTOTYPES, LanePrototypePe, SharedShiftPe,
                                      TwosComplementLanesPe)

CONFIGS = {
    "default": lambda: load_preset("default"),        # K = 2, P = 4, positions 0 .. 3
    "k4p4": lambda: custom("k4p4_small", operand_width=8, block_width=4,
                           block_multipliers=4),
}
TILES = 60


def _block(rng, config):
    top = (1 << config.block_width) - 1
    return rng.choice([0, top, rng.randint(0, top)])


def _sign_magnitude(config, lane):
    """A lane of the generated PE's format: (-1)**sign * block."""
    return (-1) ** lane["sign"] * lane["block"]


def _twos_complement(config, lane):
    """Cat(block, sign) as a (K+1)-bit two's-complement block."""
    return lane["block"] - (lane["sign"] << config.block_width)


def _as_twos_complement(config, lane):
    """The lane an edge selector would send for the signed block ``(-1)**sign * block``
    (-(2**K - 1) .. 2**K - 1, as from a sign and a K-bit magnitude)."""
    value = _sign_magnitude(config, lane)
    return {"block": value & ((1 << config.block_width) - 1), "sign": int(value < 0),
            "position": lane["position"]}


def _run(dut, config, inputs, value_of):
    """Feed one-cycle tiles (first = last = 1) and return (observed, expected) results."""
    expected = [value_of(cycle) for cycle in inputs]
    observed = []

    async def bench(ctx):
        for edge in range(len(inputs) + 2):
            if edge < len(inputs):
                ctx.set(dut.a_in, inputs[edge]["a"])
                ctx.set(dut.b_in, inputs[edge]["b"])
                ctx.set(dut.flags_in, {"first": 1, "last": 1, "gemm_last": 0})
            else:
                ctx.set(dut.flags_in, {"first": 0, "last": 0, "gemm_last": 0})
            await ctx.tick()
            if edge >= 2:        # the result of the cycle presented two edges before
                observed.append(ctx.get(dut.result))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return observed, expected


def _lane_inputs(rng, config):
    def lane():
        return {"block": _block(rng, config), "sign": rng.randrange(2),
                "position": rng.randrange(config.blocks)}
    lanes = config.block_multipliers
    return [{"a": [lane() for _ in range(lanes)], "b": [lane() for _ in range(lanes)]}
            for _ in range(TILES)]


def _lane_sum(config, cycle, value):
    return sum(value(config, a) * value(config, b)
               << ((a["position"] + b["position"]) * config.block_width)
               for a, b in zip(cycle["a"], cycle["b"]))


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize("name", [name for name, (_, bound) in LANE_PROTOTYPES.items()
                                  if not bound] + ["twos_complement_lanes"])
def test_lane_prototypes_compute_the_lane_sum(config_name, name):
    config = CONFIGS[config_name]()
    rng = random.Random(f"{config_name}-{name}")
    if name == "twos_complement_lanes":
        dut, value = TwosComplementLanesPe(config), _twos_complement
    else:
        dut, value = LanePrototypePe(config, LANE_PROTOTYPES[name][0]), _sign_magnitude
    inputs = _lane_inputs(rng, config)
    if name == "twos_complement_lanes":
        inputs = [{side: [_as_twos_complement(config, lane) for lane in cycle[side]]
                   for side in ("a", "b")} for cycle in inputs]
    observed, expected = _run(dut, config, inputs,
                              lambda cycle: _lane_sum(config, cycle, value))
    assert observed == expected


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_shared_shift_prototype_computes_the_lane_sum(config_name):
    config = CONFIGS[config_name]()
    rng = random.Random(f"shared-{config_name}")

    def side():
        return {"lanes": [{"block": _block(rng, config), "sign": rng.randrange(2)}
                          for _ in range(config.block_multipliers)],
                "position": rng.randrange(config.blocks)}

    inputs = [{"a": side(), "b": side()} for _ in range(TILES)]

    def value(cycle):
        a, b = cycle["a"], cycle["b"]
        products = sum(_sign_magnitude(config, x) * _sign_magnitude(config, y)
                       for x, y in zip(a["lanes"], b["lanes"]))
        return products << ((a["position"] + b["position"]) * config.block_width)

    observed, expected = _run(SharedShiftPe(config), config, inputs, value)
    assert observed == expected


def test_bounds_are_not_pes():
    """The two bounds compute less than a PE: a wrong lane sum on some input."""
    config = CONFIGS["k4p4"]()
    rng = random.Random("bounds")
    inputs = _lane_inputs(rng, config)
    for name, (term, bound) in LANE_PROTOTYPES.items():
        if bound:
            observed, expected = _run(LanePrototypePe(config, term), config, inputs,
                                      lambda c: _lane_sum(config, c, _sign_magnitude))
            assert observed != expected, name


@pytest.mark.synth
def test_shared_shift_flip_flops_by_hand(tmp_path):
    """Yosys keeps exactly the flip-flops counted by hand: both sides' P (K + 1)-bit
    lanes and shared position, 3 flags, the lane sum, the 2 second-stage flags that
    reach an interior PE's outputs, the accumulator and the result."""
    from amaranth.hdl import Value

    from qforge.fpga.pe_area import cmos_estimate

    config = CONFIGS["k4p4"]()
    pe = SharedShiftPe(config)
    ports = [Value.cast(getattr(pe, name)) for name in pe.signature.members
             if name not in ("captured", "captured_gemm_last")]
    estimate = cmos_estimate(pe, "shared_shift", ports=ports, root=tmp_path)
    side = config.block_multipliers * (config.block_width + 1) + config.position_width
    assert estimate.flip_flops == (2 * side + 3 + config.lane_sum_width + 2
                                   + 2 * config.accumulator_width)
    assert estimate.transistors > 0
    assert pe_prototypes.configs()[1].name == "k4p4"


def test_shared_shift_mode_rates_by_hand():
    """``qforge area --pe``'s MACs per cycle per PE for tests/fpga/data/k4p8_shared.toml
    (K = 4, B = 2, P = 8, depth 2048 = 256 words), by hand: exact 4 block pairs per word
    (2 MACs per cycle), mixed 2 (4), reduced and static 1 (8), dynamic top 1 of 2 walks
    both positions of both operands: 4 (2); the default PE runs dynamic at 8."""
    from qforge.fpga.pe_area import mode_throughputs
    from qforge.sim.model.spec import load_spec

    rates = {rate.mode: rate.macs_per_cycle
             for rate in mode_throughputs(load_spec(pe_prototypes.DATA / "k4p8_shared.toml"))}
    assert rates == {"exact": 2, "mixed": 4, "reduced": 8, "approx_static": 8,
                     "approx_dynamic": 2, "approx_dynamic_1": 2}
    default_pe = {rate.mode: rate.macs_per_cycle
                  for rate in mode_throughputs(load_spec(pe_prototypes.DATA / "k4p8.toml"))}
    assert default_pe["approx_dynamic"] == 8 and default_pe["exact"] == 2
