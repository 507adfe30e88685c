"""One PE against the FxP8 baseline (:mod:`qforge.fpga.pe_area`, ``qforge area --pe``):
the ``stat -tech cmos`` parser, the flip-flop count, the per-mode throughput table
against by-hand numbers, the command's errors and JSON, and (marked ``synth``, seconds)
real Yosys runs of the fxp8 PE and the plain MAC fixture against flip-flops counted by
hand."""

import dataclasses
import json
from fractions import Fraction

import pytest

from qforge.fpga import pe_area as pe_area_module
from qforge.fpga.pe_area import (FLIP_FLOP_TRANSISTORS, CmosEstimate, PeArea,
                                 cmos_estimate, count_flip_flops, mode_throughputs,
                                 parse_cmos_stat, throughput_table)
from qforge.gen.cli import main
from qforge.sim.model.spec import load_preset
from tests.configs import fused, three_blocks, vrq_skipping

#: What Yosys 0.70's `stat -json -tech cmos` wrote for the default preset's PE (trimmed):
#: the flip-flops have no CMOS price, hence the "+".
WHOLE = """{
   "creator": "Yosys 0.70 (git sha1 28ba3cb92, Release)",
   "invocation": "stat -json -tech cmos ",
   "modules": {
      "\\\\pe": {
         "num_cells":         2112,
         "num_cells_by_type": {"$_NAND_": 893, "$_NOR_": 897, "$_NOT_": 201,
                               "$_SDFFE_PP0P_": 27, "$_SDFF_PP0_": 94},
         "estimated_num_transistors": "7562+"
      }
   },
   "design": {
         "num_cells":         2112,
         "num_cells_by_type": {"$_NAND_": 893, "$_NOR_": 897, "$_NOT_": 201,
                               "$_SDFFE_PP0P_": 27, "$_SDFF_PP0_": 94},
         "estimated_num_transistors": "7562+"
   }
}
"""
#: The same with the storage cells deselected: a selection has no "design" totals.
GATES = """{
   "creator": "Yosys 0.70 (git sha1 28ba3cb92, Release)",
   "modules": {
      "\\\\pe": {
         "num_cells_by_type": {"$_NAND_": 893, "$_NOR_": 897, "$_NOT_": 201},
         "estimated_num_transistors": "7562"
      }
   }
}
"""


def test_parse_cmos_stat_adds_24_transistors_per_flip_flop():
    estimate = parse_cmos_stat(WHOLE, GATES)
    assert estimate.yosys == "Yosys 0.70"
    assert estimate.flip_flops == 27 + 94
    # By hand: NAND and NOR 4 transistors, NOT 2; then 24 per flip-flop.
    assert estimate.gate_transistors == 893 * 4 + 897 * 4 + 201 * 2 == 7562
    assert FLIP_FLOP_TRANSISTORS == 24
    assert estimate.transistors == 7562 + 121 * 24 == 10466
    assert estimate.to_dict()["transistors"] == 10466


def test_parse_cmos_stat_refuses_unpriced_gates():
    unpriced = GATES.replace('"7562"', '"7562+"').replace('"$_NOT_": 201',
                                                          '"$_NOT_": 201, "$_FOO_": 1')
    with pytest.raises(ValueError, match=r"estimated '7562\+' transistors: a cell without "
                                         r"a CMOS price among \$_FOO_"):
        parse_cmos_stat(WHOLE, unpriced)
    with pytest.raises(ValueError, match="one module"):
        parse_cmos_stat(WHOLE, '{"modules": {}}')


def test_flip_flops_are_every_storage_cell_one_bit_each():
    cells = {"$_DFF_P_": 1, "$_DFFE_PN0P_": 2, "$_SDFF_PP0_": 3, "$_SDFFCE_PP0P_": 4,
             "$_DFFSR_PPP_": 5, "$_ALDFF_PP_": 6, "$_DLATCH_P_": 7, "$_SR_PP_": 8,
             "$_NAND_": 100, "$_MUX_": 100, "$_NOT_": 100, "$_BUF_": 100}
    assert count_flip_flops(cells) == 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8


def _rates(config):
    return {rate.mode: (rate.bits, rate.block_products, rate.macs_per_cycle)
            for rate in mode_throughputs(config)}


def test_mode_throughputs_tiny_by_hand():
    # tiny: W = 8, K = 4 (B = 2 blocks), P = 1 lane. exact q = 2 x 2 = 4: 1/4 MAC per
    # cycle; reduced (one block each, q = 1): 1; mixed (2 x 1): 1/2; the approximate modes
    # keep one of the two blocks (q = 1): 1.
    assert _rates(load_preset("tiny")) == {
        "exact": ("8x8", 4, Fraction(1, 4)), "reduced": ("4x4", 1, 1),
        "mixed": ("8x4", 2, Fraction(1, 2)), "approx_static": ("4x4", 1, 1),
        "approx_dynamic": ("4x4", 1, 1), "approx_dynamic_1": ("4x4", 1, 1)}


def test_mode_throughputs_fxp8_is_one_exact_mac_in_every_mode():
    assert set(_rates(load_preset("fxp8")).values()) == {("8x8", 1, 1)}


def test_mode_throughputs_when_q_does_not_divide_p_and_with_vrq():
    # three_blocks: W = 6, K = 2 (B = 3), P = 4, depth 64: exact q = 9 takes
    # ceil(64 x 9 / 4) = 144 cycles for 64 MACs; reduced keeps 1 block (q = 1): 4.
    rates = _rates(three_blocks())
    assert rates["exact"] == ("6x6", 9, Fraction(64, 144))
    assert rates["reduced"] == ("2x2", 1, 4)
    assert "vrq" not in rates
    # VRQ codes of 4 bits are 2 blocks of 2: q = 4 on P = 2 lanes.
    assert _rates(vrq_skipping())["vrq"] == ("4x4", 4, Fraction(1, 2))


def _fake_area(name, pe, selector, selectors, flip_flops=0):
    summary = {"lut4": pe // 100, "carry": 1, "ff": flip_flops, "dsp": 1}
    return PeArea(load_preset(name), selectors, CmosEstimate({}, flip_flops, pe),
                  CmosEstimate({}, 0, selector),
                  {"ecp5": summary, "ice40": summary},
                  {"ecp5": dict(summary, dsp=0), "ice40": dict(summary, dsp=0)})


def test_throughput_table_by_hand():
    fxp8 = _fake_area("fxp8", 1000, 320, 16)      # + 16 x 320 / 64 = 80 per PE
    tiny = _fake_area("tiny", 2000, 250, 4)       # + 4 x 250 / 4 = 250 per PE
    assert fxp8.transistors_per_pe == 1080 and tiny.transistors_per_pe == 2250
    rows = {(row["config"], row["mode"]): row for row in throughput_table([fxp8, tiny], fxp8)}
    assert rows["fxp8", "exact"]["per_area"] == 1.0
    exact, reduced = rows["tiny", "exact"], rows["tiny", "reduced"]
    # tiny (P = 1): exact 1/4 MAC per cycle, reduced 1; fxp8's exact 1 per 1000 (1080).
    assert exact["per_area"] == pytest.approx(0.25 / 2000 * 1000)           # 0.125
    assert exact["per_area_with_selectors"] == pytest.approx(0.25 / 2250 * 1080)
    assert reduced["per_area"] == pytest.approx(1 / 2000 * 1000)            # 0.5
    assert tiny.array(2000, 250) == 4 * 2000 + 4 * 250


def test_b_selectors_measured_apart_by_hand():
    # 8x8 array: 8 A selectors of 300 transistors, 8 B selectors of 100, PE 1000.
    area = dataclasses.replace(_fake_area("paired", 1000, 300, 16), b_selectors=8,
                               b_selector_cmos=CmosEstimate({}, 0, 100),
                               b_selector_cells={family: {"lut4": 7, "carry": 0,
                                                          "ff": 2, "dsp": 0}
                                                 for family in ("ecp5", "ice40")})
    assert area.transistors_per_pe == 1000 + (8 * 300 + 8 * 100) / 64 == 1050
    assert area.array(1000, 300, 100) == 64 * 1000 + 8 * 300 + 8 * 100
    with pytest.raises(ValueError, match="the 8 B selectors are measured apart"):
        area.array(1000, 300)
    data = json.loads(json.dumps(area.to_dict()))
    assert data["selectors"] == 16 and data["b_selectors"] == 8
    assert data["cmos"]["selector"]["transistors"] == 300
    assert data["cmos"]["b_selector"]["transistors"] == 100
    assert data["cmos"]["selectors_per_pe"] == 50
    assert data["cmos"]["pe_with_selectors"] == 1050
    assert data["cmos"]["array"] == 64 * 1000 + 3200
    # _fake_area's PE and A selector: 1000 // 100 = 10 LUT4 each.
    ecp5 = data["families"]["ecp5"]
    assert ecp5["b_selector"] == {"lut4": 7, "carry": 0, "ff": 2, "dsp": 0}
    assert ecp5["selectors_per_pe"]["lut4"] == (8 * 10 + 8 * 7) / 64
    assert ecp5["array"]["lut4"] == 64 * 10 + 8 * 10 + 8 * 7
    # Without B selectors apart (every configuration but paired): as before.
    plain = _fake_area("default", 1000, 300, 16).to_dict()
    assert plain["b_selectors"] == 0 and plain["cmos"]["b_selector"] is None
    assert plain["cmos"]["array"] == 64 * 1000 + 16 * 300


def test_area_pe_command_json_shape(capsys, monkeypatch):
    sizes = {"fxp8": (1000, 320, 16), "tiny": (2000, 250, 4)}
    measured = []

    def fake(config, **options):
        measured.append(config.name)
        return _fake_area(config.name, *sizes[config.name])

    monkeypatch.setattr(pe_area_module, "pe_area", fake)
    code = main(["area", "--pe", "--preset", "tiny", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and measured == ["fxp8", "tiny"]       # the baseline comes first
    assert result["baseline"] == "fxp8" and result["flip_flop_transistors"] == 24
    assert result["families"] == {"ecp5": "synth_ecp5", "ice40": "synth_ice40 -dsp"}
    tiny = result["configs"][1]
    assert tiny["config"] == "tiny" and tiny["selectors"] == 4
    assert tiny["cmos"]["pe"]["transistors"] == 2000
    assert tiny["cmos"]["selectors_per_pe"] == 250
    assert tiny["cmos"]["array"] == 4 * 2000 + 4 * 250
    assert tiny["families"]["ecp5"]["array"]["dsp"] == 4
    row = next(row for row in result["throughput"]
               if (row["config"], row["mode"]) == ("tiny", "exact"))
    # P = 1, q = 4: 1/4 MAC per cycle on 2000 transistors, fxp8 1 on 1000: 0.125
    assert row["macs_per_cycle"] == "1/4" and row["per_area"] == pytest.approx(0.125)


def test_area_pe_command_table(capsys, monkeypatch):
    monkeypatch.setattr(pe_area_module, "pe_area",
                        lambda config, **options: _fake_area(config.name, 1000, 320, 16, 96))
    code = main(["area", "--pe", "--preset", "fxp8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| CMOS PE (transistors) | 3304 |" in out       # 1000 + 96 x 24
    assert "| of which flip-flops | 96 x 24 |" in out
    assert "| CMOS selectors per PE | 80 |" in out
    assert "| fxp8 | exact | 8x8 | 1 | 1 | 1.00 | 1.00 |" in out


@pytest.mark.parametrize("argv, message", [
    (["area", "--pe", "--family", "ice40"], "--family: not with --pe"),
    (["area", "--pe", "--hierarchy"], "--hierarchy: not with --pe"),
    (["area", "--pe", "--keep", "pe_*"], "--keep: not with --pe"),
    (["area", "--pe", "--selectors"], "--selectors: not with --pe"),
    (["area", "--pe", "--preset", "fxp8", "--preset", "fxp8"], "given twice"),
    (["area", "--pe", "--preset", "huge"], "unknown preset"),
])
def test_area_pe_command_errors_are_one_line(capsys, monkeypatch, argv, message):
    monkeypatch.setattr(pe_area_module, "pe_area", lambda config, **options: None)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qforge: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_docstring_examples():
    import doctest
    result = doctest.testmod(pe_area_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


@pytest.mark.synth
def test_fxp8_pe_flip_flops_match_a_count_by_hand(tmp_path):
    from qforge.fpga.pe_area import interior_ports
    from qforge.hdl.pe import ProcessingElement

    config = load_preset("fxp8")
    pe = ProcessingElement(config)
    estimate = cmos_estimate(pe, "pe_fxp8", ports=interior_ports(pe), root=tmp_path)
    # Operand lanes forwarded: the 8-bit two's-complement operand (plain lanes), twice;
    # 3 flags; the lane sum (lane_sum_width 17, but its top bit only repeats the 16-bit
    # product's sign: Yosys merges the two flip-flops); first and last (gemm_last only
    # feeds the corner's capture pulses); the 27-bit accumulator and result. The
    # plain MAC reference's count (test_plain_mac_flip_flops_match_a_count_by_hand).
    assert config.accumulator_width == 27 and config.plain_lanes
    assert estimate.flip_flops == 2 * 8 + 3 + 16 + 2 + 27 + 27
    assert estimate.transistors == estimate.gate_transistors + 24 * estimate.flip_flops
    assert not estimate.cached and (estimate.directory / "design.v").exists()
    again = cmos_estimate(pe, "pe_fxp8", ports=interior_ports(pe), root=tmp_path)
    assert again.cached and again.cells == estimate.cells


@pytest.mark.synth
def test_plain_mac_flip_flops_match_a_count_by_hand(tmp_path):
    from tests.fpga.plain_mac import PlainMac

    mac = PlainMac(27, unsigned_core=True)
    estimate = cmos_estimate(mac, "plain_mac", root=tmp_path)
    assert estimate.flip_flops == mac.flip_flops() == 2 * 8 + 3 + 16 + 2 + 27 + 27


@pytest.mark.parametrize("make", ["signed", "unsigned_core", "sign_magnitude"])
def test_plain_mac_fixtures_multiply_accumulate(make):
    # The references are only worth their area if they compute a signed 8x8 MAC:
    # a dot product of extremes and random pairs, against Python's integers.
    import random

    from amaranth.sim import Simulator

    from tests.fpga.plain_mac import PlainMac, SignMagnitudeMac

    mac = {"signed": lambda: PlainMac(27), "sign_magnitude": lambda: SignMagnitudeMac(27),
           "unsigned_core": lambda: PlainMac(27, unsigned_core=True)}[make]()
    generator = random.Random(7)
    pairs = [(-128, -128), (-128, 127), (127, -128), (127, 127), (0, -1)] + [
        (generator.randint(-128, 127), generator.randint(-128, 127)) for _ in range(40)]
    results = []

    def operand(port, value):
        if make == "sign_magnitude":
            return {"sign": int(value < 0), "magnitude": abs(value)}
        return value

    async def bench(ctx):
        for index, (a, b) in enumerate(pairs):
            ctx.set(mac.a_in, operand(mac.a_in, a))
            ctx.set(mac.b_in, operand(mac.b_in, b))
            ctx.set(mac.flags_in, {"first": int(index == 0),
                                   "last": int(index == len(pairs) - 1), "gemm_last": 0})
            await ctx.tick()
        ctx.set(mac.flags_in, {"first": 0, "last": 0, "gemm_last": 0})
        for _ in range(3):
            await ctx.tick()
        results.append(ctx.get(mac.result))

    simulator = Simulator(mac)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    assert results == [sum(a * b for a, b in pairs)]


@pytest.mark.synth
@pytest.mark.slow
def test_pe_area_of_tiny_in_every_measure(tmp_path):
    # About 25 s of Yosys: the PE and a selector, CMOS, ECP5 and iCE40.
    area = pe_area_module.pe_area(load_preset("tiny"), root=tmp_path)
    # Lanes of sign + 4-bit block + 1-bit position, P = 1, both ways; 3 flags; the
    # 17-bit lane sum (2 x 8 + ceil(log2 1) + 1); first and last; the 25-bit accumulator
    # (512 x 2**14 = 2**23: 24 bits + sign) and result.
    assert area.pe_cmos.flip_flops == 2 * 1 * (1 + 4 + 1) + 3 + 17 + 2 + 25 + 25
    assert area.pe_cells["ecp5"]["ff"] == area.pe_cells["ice40"]["ff"] == 84
    # synth_ecp5 puts every multiplier (P = 1 per PE) in a MULT18X18D; synth_ice40 -dsp
    # only products of at least 11 bits (a 4x4 one is 8).
    assert area.pe_cells["ecp5"]["dsp"] == 1 and area.pe_cells["ice40"]["dsp"] == 0
    assert area.selectors == 4 and area.pes == 4
    assert area.to_dict()["cmos"]["array"] == 4 * area.pe_cmos.transistors \
        + 4 * area.selector_cmos.transistors


@pytest.mark.synth
def test_fused_pe_is_one_dsp_block_per_lane_pair(tmp_path):
    """``arithmetic.pe = "fused"`` (K = 4, P = 4): Yosys maps each lane pair's 13x13
    multiplier to one DSP block of either family, 2 per PE, so the cycle model's P / 2
    exact MACs per cycle are 1 per DSP block and its P one-block MACs 2 (issue 16's ECP5
    targets: at least 1 and 2), in a tile whose depth is a multiple of P."""
    config = dataclasses.replace(fused(), max_reduction_depth=32)
    area = pe_area_module.pe_area(config, root=tmp_path)
    assert area.pe_cells["ecp5"]["dsp"] == area.pe_cells["ice40"]["dsp"] == 2
    rows = {row["mode"]: row for row in
            pe_area_module.throughput_table([area], area)}
    assert rows["exact"]["macs_per_dsp"] == {"ecp5": 1.0, "ice40": 1.0}
    assert rows["approx_static"]["bits"] == "4x4"
    assert rows["approx_static"]["macs_per_dsp"] == {"ecp5": 2.0, "ice40": 2.0}


@pytest.mark.synth
def test_paired_pe_is_charged_only_the_registers_the_design_keeps(tmp_path):
    """With ``arithmetic.paired`` every lane has both sides' fields and each side's
    selectors drive the other side's 0 (A lanes' ``partner``, B lanes' ``second``): the
    PE measured alone (:func:`~qforge.fpga.pe_area.interior_pe`) receives them as 0, and
    its registers are counted by hand; the bare PE, whose inputs are free, has the
    other side's registers too."""
    from qforge.fpga.pe_area import interior_pe, interior_ports
    from qforge.hdl.pe import ProcessingElement

    config = load_preset("paired")
    assert (config.block_width, config.block_multipliers, config.accumulator_width) == \
        (2, 4, 28)
    lane = 2 + 1 + 2                  # block, sign, position (0 .. 3)
    # Both sides forward P lanes; B lanes also the partner's block, sign and position,
    # A lanes their second bit; 3 flags; the 19-bit lane sum (2 x 8 + log2 4 + 1);
    # first and last; the 28-bit accumulator and result.
    by_hand = 2 * 4 * lane + 4 * lane + 4 * 1 + 3 + 19 + 2 + 28 + 28
    pe, ports = interior_pe(config)
    estimate = cmos_estimate(pe, "pe_paired", ports=ports, root=tmp_path)
    assert estimate.flip_flops == by_hand == 144
    bare = ProcessingElement(config)
    free = cmos_estimate(bare, "pe_paired_bare", ports=interior_ports(bare), root=tmp_path)
    assert free.flip_flops == by_hand + 4 * lane + 4 * 1


@pytest.mark.synth
@pytest.mark.slow
def test_pe_area_of_paired_measures_each_side(tmp_path):
    """About a minute of Yosys: the paired PE and both selectors in every measure."""
    from tests.fpga.test_design_area import paired_2x2

    config = paired_2x2()
    assert pe_area_module.selector_sides(config) == ("a", "b")
    area = pe_area_module.pe_area(config, root=tmp_path)
    assert area.selectors == 4 and area.b_selectors == 2
    assert area.b_selector_cmos.transistors != area.selector_cmos.transistors
    assert area.transistors_per_pe == area.pe_cmos.transistors + (
        2 * area.selector_cmos.transistors + 2 * area.b_selector_cmos.transistors) / 4
    for family in ("ecp5", "ice40"):
        assert area.b_selector_cells[family]["ff"] > 0
