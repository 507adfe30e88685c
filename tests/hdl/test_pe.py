"""ProcessingElement: lane products, accumulation, capture timing and the drain shift.

The reference is an independent formula, the PE's documented contract: a cycle's lanes
contribute ``sum((-1)**(sa ^ sb) * (ba * bb) << ((pa + pb) * K))``; a tile's result is the
sum of its cycles from ``first`` to ``last``. ``pe = "fused"`` PEs in a ``wide`` cycle
take each lane pair ``(2d, 2d + 1)`` as one MAC instead: ``(-1)**(sa ^ sb) * (a0 + a1
* 2**K) * (b0 + b1 * 2**K) << ((pa + pb) * K)`` with lane ``2d``'s signs and positions
(lane ``2d + 1``'s are ignored). Timing (cycle ``t`` = inputs presented):
operands forwarded at ``t+1``, result captured at ``t+3`` (``t+4`` for ``pe = "fused"``:
:func:`qforge.sim.model.cycles.pe_latency`) with a one-cycle ``captured`` pulse; ``result`` loads ``result_below`` at every clock where ``shift`` is high and no
capture happens.
"""

import random

import pytest
from amaranth.sim import Simulator

from qforge.hdl.pe import ProcessingElement
from qforge.sim.model.cycles import pe_latency
from tests.configs import COMPONENT_CONFIGS

CYCLES = 400


def _lane_value(config, a, b):
    """The signed, shifted block product of one lane (independent of the HDL); with
    ``plain_lanes`` (K = W) the product of the two's-complement operands."""
    if config.plain_lanes:
        return a["value"] * b["value"]
    sign = (-1) ** (a["sign"] ^ b["sign"])
    return sign * ((a["block"] * b["block"]) << ((a["position"] + b["position"])
                                                 * config.block_width))


def _cycle_value(config, cycle):
    """A cycle's contribution to the accumulator (the contract above)."""
    pairs = zip(cycle["a"], cycle["b"])
    if not cycle["flags"].get("wide"):
        return sum(_lane_value(config, a, b) for a, b in pairs)
    k = config.block_width
    total = 0
    for low in range(0, config.block_multipliers, 2):
        (a0, b0), (a1, b1) = (cycle["a"][low], cycle["b"][low]), \
            (cycle["a"][low + 1], cycle["b"][low + 1])
        whole_a = a0["block"] + (a1["block"] << k)
        whole_b = b0["block"] + (b1["block"] << k)
        total += (-1) ** (a0["sign"] ^ b0["sign"]) * (whole_a * whole_b) \
            << ((a0["position"] + b0["position"]) * k)
    return total


def _flags(config, rng, **flags):
    """Tile flags, with a random ``wide`` for ``pe = "fused"`` PEs."""
    if config.pe == "fused":
        flags["wide"] = rng.randrange(2)
    return flags


def _random_lane(rng, config, zero=False):
    if config.plain_lanes:
        low, high = -(1 << (config.operand_width - 1)), (1 << (config.operand_width - 1)) - 1
        return {"value": 0 if zero else rng.choice([low, high, rng.randint(low, high)])}
    top = (1 << config.block_width) - 1
    block = 0 if zero else rng.choice([0, top, rng.randint(0, top), rng.randint(0, top)])
    return {"block": block, "sign": rng.randrange(2),
            "position": rng.randrange(config.blocks)}


def _side(rng, config, zero=False, wide=False):
    """One side's P lanes; ``pe = "shared_shift"`` PEs get one block position in all of
    them (their schedule's guarantee); in a ``wide`` cycle of a ``pe = "fused"`` PE each
    lane pair is one operand, whole (its lower block at position 0) or one block (the
    upper lane zero), as its schedule issues them."""
    lanes = [_random_lane(rng, config, zero) for _ in range(config.block_multipliers)]
    if config.pe == "shared_shift":
        lanes = [lane | {"position": lanes[0]["position"]} for lane in lanes]
    if wide:
        for low in range(0, len(lanes), 2):
            if rng.randrange(2):
                lanes[low] = lanes[low] | {"position": 0}
            else:
                lanes[low + 1] = lanes[low + 1] | {"block": 0}
    return lanes


def _stimulus(rng, config, cycles):
    """A cycle-by-cycle input sequence: tiles of 1..6 cycles (first..last) separated by
    0..3 cycles without flags. Gap cycles carry either zero blocks (as the scheduler's
    invalid lanes do) or garbage that a following ``first`` must discard."""
    seq = []
    while len(seq) < cycles:
        length = rng.randint(1, 6)
        gemm_last = int(rng.random() < 0.3)
        for c in range(length):
            flags = _flags(config, rng, first=int(c == 0), last=int(c == length - 1),
                           gemm_last=gemm_last if c == length - 1 else rng.randrange(2))
            wide = bool(flags.get("wide"))
            seq.append({"a": _side(rng, config, wide=wide), "b": _side(rng, config, wide=wide),
                        "flags": flags})
        for _ in range(rng.randint(0, 3)):
            zero = rng.random() < 0.5
            flags = _flags(config, rng, first=0, last=0, gemm_last=rng.randrange(2))
            wide = bool(flags.get("wide"))
            seq.append({"a": _side(rng, config, zero, wide), "b": _side(rng, config, zero, wide),
                        "flags": flags})
    return seq


@pytest.mark.parametrize("name", sorted(COMPONENT_CONFIGS))
def test_pe_accumulate_capture_and_shift(name):
    config = COMPONENT_CONFIGS[name]()
    acc_min = -(1 << (config.accumulator_width - 1))
    acc_max = (1 << (config.accumulator_width - 1)) - 1
    rng = random.Random(f"pe-{name}")
    seq = _stimulus(rng, config, CYCLES)
    # Clock edges from presenting inputs to the captured result (3; 4 for pe = "fused").
    latency = pe_latency(config)
    dut = ProcessingElement(config)
    stats = {"captures": 0, "shifts": 0}

    # Reference: the tile sum captured when each tile's last cycle leaves stage 2.
    tile_sum = None
    captures = {}        # clock edge index -> (value, gemm_last)
    for t, cycle in enumerate(seq):
        value = _cycle_value(config, cycle)
        if cycle["flags"]["first"]:
            tile_sum = value
        elif tile_sum is not None:
            tile_sum += value
        if cycle["flags"]["last"]:
            assert acc_min <= tile_sum <= acc_max
            captures[t + latency - 1] = (tile_sum, cycle["flags"]["gemm_last"])

    async def bench(ctx):
        expected_result = 0
        for edge in range(len(seq) + latency):
            if edge < len(seq):
                cycle = seq[edge]
                ctx.set(dut.a_in, cycle["a"])
                ctx.set(dut.b_in, cycle["b"])
                ctx.set(dut.flags_in, cycle["flags"])
            else:
                ctx.set(dut.flags_in, _flags(config, rng, first=0, last=0, gemm_last=0))
            # Shift only at edges without a capture (the scheduler guarantees that).
            shift = edge not in captures and rng.random() < 0.3
            below = rng.randint(acc_min, acc_max)
            ctx.set(dut.shift, shift)
            ctx.set(dut.result_below, below)
            await ctx.tick()

            if edge in captures:
                expected_result, gemm_last = captures[edge]
                stats["captures"] += 1
            elif shift:
                expected_result = below
                stats["shifts"] += 1
            where = f"{name} edge {edge}"
            assert ctx.get(dut.captured) == (edge in captures), f"{where}: captured"
            assert ctx.get(dut.captured_gemm_last) == (edge in captures and gemm_last), \
                f"{where}: captured_gemm_last"
            assert ctx.get(dut.result) == expected_result, \
                f"{where}: result {ctx.get(dut.result)} != {expected_result}"
            if edge < len(seq):
                # Forwarding registers: the inputs of this cycle, one edge later.
                assert ctx.get(dut.a_out).as_bits() == \
                    dut.a_out.shape().const(seq[edge]["a"]).as_bits(), f"{where}: a_out"
                assert ctx.get(dut.b_out).as_bits() == \
                    dut.b_out.shape().const(seq[edge]["b"]).as_bits(), f"{where}: b_out"
                assert ctx.get(dut.flags_out).as_bits() == \
                    dut.flags_out.shape().const(seq[edge]["flags"]).as_bits(), \
                    f"{where}: flags_out"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert stats["captures"] > 20 and stats["shifts"] > 20


@pytest.mark.parametrize("name", ["default", "tiny", "fxp8"])
def test_pe_extreme_products(name):
    """Every lane at the largest block and position, both sign combinations, over a
    long tile: the accumulator must hold the sum without wrapping."""
    config = COMPONENT_CONFIGS[name]()
    lanes = config.block_multipliers
    top = (1 << config.block_width) - 1
    dut = ProcessingElement(config)
    length = 8

    def extreme(sign):
        if config.plain_lanes:      # the most negative operand and the largest
            return {"value": -(1 << (config.operand_width - 1)) if sign
                    else (1 << (config.operand_width - 1)) - 1}
        return {"block": top, "sign": sign, "position": config.blocks - 1}

    async def bench(ctx):
        for sign_a, sign_b in ((0, 0), (1, 0), (0, 1), (1, 1)):
            a = [extreme(sign_a)] * lanes
            b = [extreme(sign_b)] * lanes
            ctx.set(dut.a_in, a)
            ctx.set(dut.b_in, b)
            for c in range(length):
                ctx.set(dut.flags_in, {"first": int(c == 0), "last": int(c == length - 1),
                                       "gemm_last": 1})
                await ctx.tick()
            ctx.set(dut.flags_in, {"first": 0, "last": 0, "gemm_last": 0})
            await ctx.tick().repeat(pe_latency(config) - 1)
            expected = length * lanes * _lane_value(config, a[0], b[0])
            assert ctx.get(dut.captured) == 1
            assert ctx.get(dut.captured_gemm_last) == 1
            assert ctx.get(dut.result) == expected, \
                f"signs {sign_a},{sign_b}: {ctx.get(dut.result)} != {expected}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_pe_option_of_the_spec():
    """``arithmetic.pe``: left out (and left out of the spec written back) is the
    default PE; ``"signed_product"`` round-trips through TOML; anything else is one
    ConfigError naming the key, the value and the allowed designs; ``"shared_shift"``
    with a [vrq] or [zero_skipping] section is one ConfigError too."""
    import tomllib

    from qforge.sim.model.spec import ConfigError, from_dict, load_preset

    default = load_preset("tiny")
    assert default.pe == "shifted" and "pe" not in default.to_dict()["arithmetic"]
    spec = default.to_dict()
    spec["arithmetic"]["pe"] = "signed_product"
    signed = from_dict(spec)
    assert signed.pe == "signed_product"
    assert 'pe = "signed_product"' in signed.to_toml()
    assert from_dict(tomllib.loads(signed.to_toml())) == signed
    assert default.differences(signed) == ["arithmetic.pe"]
    spec["arithmetic"]["pe"] = "shifted"
    assert from_dict(spec) == default
    for bad in ("Signed_product", "", 1, None):
        spec["arithmetic"]["pe"] = bad
        with pytest.raises(ConfigError, match=r'^spec: arithmetic\.pe = .*: allowed: '
                                              r'"shifted" \(.*\); "signed_product" \(.*'
                                              r'\); "shared_shift" \('):
            from_dict(spec)
    # shared_shift: integer operands on the dense array only.
    spec["arithmetic"]["pe"] = "shared_shift"
    assert from_dict(spec).pe == "shared_shift"
    for section, table in (("vrq", {"code_width": 4, "range_stride": 4, "ranges": 2}),
                           ("zero_skipping", {"pe_buffer_depth": 256})):
        with pytest.raises(ConfigError, match=r"^spec: arithmetic\.pe = 'shared_shift': "
                                              r"needs integer operands on the dense "
                                              r"systolic array: leave out the \[vrq\] "
                                              r"and \[zero_skipping\] sections"):
            from_dict(spec | {section: table})


def test_fused_option_limits():
    """``arithmetic.pe = "fused"``: two blocks per operand, blocks of at most 5 bits (a
    lane pair's 3K + 1-bit multiplier in an SB_MAC16), an even P, integer operands on
    the dense array; each violation is one ConfigError naming the field and the rule."""
    from qforge.sim.model.spec import ConfigError, from_dict
    from tests.configs import two_lane_tiny

    # The two-lane tiny (P = 2): the preset's own P = 1 is odd, one of the violations below.
    spec = two_lane_tiny().to_dict()
    spec["arithmetic"]["pe"] = "fused"
    assert from_dict(spec).pe == "fused"

    def refused(change, pattern, **sections):
        bad = {section: dict(table) for section, table in spec.items()
               if isinstance(table, dict)} | {"name": spec["name"]} | sections
        bad["arithmetic"].update(change)
        with pytest.raises(ConfigError, match=pattern):
            from_dict(bad)

    refused({"block_width": 2}, r"^spec: arithmetic\.block_width = 2: with arithmetic\.pe "
                                r'= "fused" must be half of arithmetic\.operand_width \(8\)')
    refused({"operand_width": 12, "block_width": 6, "output_width": 8},
            r"^spec: arithmetic\.block_width = 6: with arithmetic\.pe = \"fused\" allowed: "
            r"1 \.\. 5")
    refused({"block_multipliers": 1},
            r"^spec: arithmetic\.block_multipliers = 1: with arithmetic\.pe = \"fused\" "
            r"must be even")
    for section, table in (("vrq", {"code_width": 4, "range_stride": 4, "ranges": 2}),
                           ("zero_skipping", {"pe_buffer_depth": 256})):
        refused({}, r"^spec: arithmetic\.pe = 'fused': needs integer operands on the dense "
                    r"systolic array", **{section: table})


def _paired_configs():
    """``arithmetic.paired`` PEs: the preset's (``pe = "shifted"``) and the same with
    ``pe = "signed_product"``."""
    from qforge.sim.model.spec import load_preset
    from tests.hdl.test_selector import paired_variant

    return {"paired": load_preset("paired"),
            "paired_signed_product": paired_variant("paired_sp", pe="signed_product")}


@pytest.mark.parametrize("name", ["paired", "paired_signed_product"])
def test_paired_pe_multiplies_the_partner(name):
    """With ``arithmetic.paired``, an A lane whose ``second`` is set multiplies B's
    ``partner`` (its block, sign and position) instead of B's own block: every cycle's
    contribution is the contract's sum with ``b`` replaced by ``b.partner`` on those
    lanes (random ``second`` and partners, tiles of 1 .. 6 cycles as above); the
    forwarded lanes carry ``second`` and ``partner`` on, one edge later."""
    config = _paired_configs()[name]
    rng = random.Random(f"paired-pe-{name}")
    seq = _stimulus(rng, config, 200)
    for cycle in seq:
        for a, b in zip(cycle["a"], cycle["b"]):
            a["second"] = rng.randrange(2)
            b["partner"] = _random_lane(rng, config, zero=rng.random() < 0.1)
    latency = pe_latency(config)
    captures, tile_sum = {}, None
    for t, cycle in enumerate(seq):
        value = sum(_lane_value(config, a, b["partner"] if a["second"] else b)
                    for a, b in zip(cycle["a"], cycle["b"]))
        tile_sum = value if cycle["flags"]["first"] else (
            None if tile_sum is None else tile_sum + value)
        if cycle["flags"]["last"]:
            captures[t + latency - 1] = tile_sum
    dut = ProcessingElement(config)
    checked = {"captures": 0, "seconds": sum(a["second"] for c in seq for a in c["a"])}

    async def bench(ctx):
        for edge in range(len(seq) + latency):
            if edge < len(seq):
                ctx.set(dut.a_in, seq[edge]["a"])
                ctx.set(dut.b_in, seq[edge]["b"])
                ctx.set(dut.flags_in, seq[edge]["flags"])
            else:
                ctx.set(dut.flags_in, {"first": 0, "last": 0, "gemm_last": 0})
            ctx.set(dut.shift, 0)
            await ctx.tick()
            where = f"{name} edge {edge}"
            if edge in captures:
                assert ctx.get(dut.captured) == 1, f"{where}: captured"
                assert ctx.get(dut.result) == captures[edge], \
                    f"{where}: result {ctx.get(dut.result)} != {captures[edge]}"
                checked["captures"] += 1
            if edge < len(seq):
                assert ctx.get(dut.a_out).as_bits() == \
                    dut.a_out.shape().const(seq[edge]["a"]).as_bits(), f"{where}: a_out"
                assert ctx.get(dut.b_out).as_bits() == \
                    dut.b_out.shape().const(seq[edge]["b"]).as_bits(), f"{where}: b_out"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert checked["captures"] > 20 and checked["seconds"] > 100, checked
