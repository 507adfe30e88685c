"""The instruction decoder alone, word by word, against the golden machine.

For every word, after a reset and a fixed prefix of valid register settings: ``error``
must rise exactly when :func:`qforge.sim.model.machine.instruction_error` rejects the word,
and a valid GEMM's command must equal :func:`qforge.sim.host.packing.command_bits` of the
golden machine's registers (its epilogue: ``add`` and ``saturate_bits``). Words come
from every rule's boundary values and from Hypothesis.
"""

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from qforge.hdl.decoder import InstructionDecoder
from qforge.hdl.isa import operand_layout
from qforge.sim.model.isa import Opcode, encode
from qforge.hdl.layouts import epilogue_layout
from qforge.sim.model.machine import Machine, instruction_error
from qforge.sim.host.packing import command_bits
from qforge.sim.model.spec import load_preset
from tests.configs import custom, tiny, vrq_skipping

#: Settings before each word, so that a GEMM's command carries non-reset registers.
PREFIX = [encode(Opcode.PRECISION, operand=0, blocks=1, kept=1),
          encode(Opcode.PRECISION, operand=1, blocks=2, kept=1, dynamic=1),
          encode(Opcode.OUTPUT, quantize=1, shift=5, rounding=2, relu=1, wide=1),
          encode(Opcode.SEED, seed=0xDEADBEEF, tensor=77)]


def decode_words(config, words, prefix=PREFIX):
    """Per word: (error after it, command bits or None, epilogue bits or None); the
    decoder is reset before each word and given ``prefix`` (valid words) first."""
    decoder = InstructionDecoder(config)
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.decoder = decoder
    outcomes = []

    async def bench(ctx):
        ctx.set(decoder.accelerator_idle, 1)
        ctx.set(decoder.cmd.ready, 1)
        ctx.set(decoder.epilogue.ready, 1)
        for word in words:
            ctx.set(domain.rst, 1)
            await ctx.tick()
            ctx.set(domain.rst, 0)
            command = epilogue = None
            for index, value in enumerate(prefix + [word]):
                ctx.set(decoder.instruction.payload.as_value(), value)
                ctx.set(decoder.instruction.valid, 1)
                await ctx.tick().until(decoder.instruction.ready)
                ctx.set(decoder.instruction.valid, 0)
                for _ in range(4):
                    _, _, cmd_valid, cmd, epi_valid, epi = await ctx.tick().sample(
                        decoder.cmd.valid, decoder.cmd.payload.as_value(),
                        decoder.epilogue.valid, decoder.epilogue.payload.as_value())
                    if cmd_valid:
                        command = cmd
                    if epi_valid:
                        epilogue = epi
                if index < len(prefix):
                    assert not ctx.get(decoder.error), f"prefix word {index} rejected"
            outcomes.append((bool(ctx.get(decoder.error)), command, epilogue))

    simulator = Simulator(top)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    return outcomes


def check(config, words, prefix=PREFIX):
    outcomes = decode_words(config, words, prefix)
    for word, (error, command, epilogue) in zip(words, outcomes):
        reason = instruction_error(config, word)
        assert error == (reason is not None), f"word {word:#018x}: {reason}"
        machine = Machine(config, compute=False)
        machine.run(prefix)
        plan = machine.step(word)
        if plan is None:
            assert command is None and epilogue is None, f"word {word:#018x}: issued"
            continue
        assert command == command_bits(config, plan.m, plan.n, plan.k, plan.precision,
                                       plan.output, plan.skip_zeros), f"{word:#018x}"
        assert epilogue == epilogue_layout(config).const(
            {"add": int(plan.add), "saturate_bits": plan.saturate_bits}).as_bits()


def boundary_words(config):
    """Every rule of instruction_error at and around its limits."""
    tile_limit = 1 << config.tiles_field_width
    words = [encode(Opcode.NOP), encode(Opcode.FENCE), 0xFF, 0x08,
             encode(Opcode.NOP) | 1 << 8, encode(Opcode.NOP) | 1 << 63]
    for blocks in (0, 1, config.blocks, config.blocks + 1, 15):
        for kept in (0, 1, blocks, blocks + 1):
            if 0 <= kept < 16:
                words.append(encode(Opcode.PRECISION, operand=1, blocks=blocks, kept=kept))
    words.append(encode(Opcode.PRECISION, blocks=1, kept=1, vrq=1))
    top = config.accumulator_width - 1
    for shift in (0, top, top + 1, 63):
        words.append(encode(Opcode.OUTPUT, quantize=1, shift=shift))
        words.append(encode(Opcode.OUTPUT, quantize=1, exponent=shift))
    for rounding in range(4):
        words.append(encode(Opcode.OUTPUT, quantize=1, rounding=rounding))
    for quantize in (0, 1):
        for vrq in (0, 1):
            words.append(encode(Opcode.OUTPUT, quantize=quantize, vrq=vrq, wide=1))
    words.append(encode(Opcode.SEED, seed=(1 << 32) - 1, tensor=(1 << 16) - 1))
    depth = config.max_reduction_depth
    for m, n, k in ((1, 1, 1), (0, 1, 1), (1, 0, 1), (1, 1, 0),
                    (tile_limit * config.rows, 1, 1), (tile_limit * config.rows + 1, 1, 1),
                    (1, tile_limit * config.cols + 1, 1), (1, 1, depth), (1, 1, depth + 1),
                    (65535, 65535, 65535), (config.rows * 3 + 1, config.cols + 1, 7)):
        words.append(encode(Opcode.GEMM, m=m, n=n, k=k))
    words_per_tile = -(-depth // config.block_multipliers)
    fits = max(1, config.buffer_depth // words_per_tile)
    for tiles in (fits, fits + 1):
        words.append(encode(Opcode.GEMM, m=tiles * config.rows, n=1, k=depth))
        words.append(encode(Opcode.GEMM, m=1, n=tiles * config.cols, k=depth))
    for add, bits in ((0, 0), (0, 5), (1, 0), (1, 1), (1, 2),
                      (1, config.accumulator_width), (1, config.accumulator_width + 1)):
        words.append(encode(Opcode.GEMM, m=3, n=2, k=5, add=add, saturate_bits=bits))
    words.append(encode(Opcode.GEMM, m=3, n=2, k=5, skip_zeros=1))
    for operand in range(4):
        words.append(encode(Opcode.LOAD, operand=operand, address=(1 << 24) - 1, stride=3))
    words.append(encode(Opcode.STORE, transpose=1, address=5, stride=(1 << 24) - 1))
    for opcode in Opcode:
        used = 8 + operand_layout(opcode).size
        if used < 64:
            words.append(encode(opcode) | 1 << used)
    return words


def test_every_rule_at_its_limits_tiny():
    check(tiny(), boundary_words(tiny()))


def test_every_rule_at_its_limits_non_square():
    config = custom("r2c3", rows=2, cols=3, operand_width=8, block_width=2,
                    block_multipliers=2, buffer_depth=16)
    check(config, boundary_words(config))


def test_every_rule_at_its_limits_vrq_skipping():
    config = vrq_skipping()
    words = boundary_words(config)
    for blocks in range(0, config.vrq_code_blocks + 2):
        words.append(encode(Opcode.PRECISION, operand=0, blocks=blocks, kept=1, vrq=1))
    words += [encode(Opcode.OUTPUT, quantize=1, vrq=1, exponent=5),
              encode(Opcode.OUTPUT, quantize=1, vrq=1, exponent=63),
              encode(Opcode.GEMM, m=3, n=7, k=5, skip_zeros=1)]
    check(config, words)


def _field_words():
    """Words with a valid opcode and random fields biased to small values."""
    def build(opcode, values):
        layout = operand_layout(opcode)
        word = int(opcode)
        for (name, field), value in zip(layout, values):
            word |= (value % (1 << field.shape.width)) << (8 + field.offset)
        return word
    return st.sampled_from(list(Opcode)).flatmap(
        lambda opcode: st.lists(st.one_of(st.integers(0, 4), st.integers(0, 1 << 32)),
                                min_size=len(list(operand_layout(opcode))),
                                max_size=len(list(operand_layout(opcode))))
        .map(lambda values: build(opcode, values)))


@settings(max_examples=5, deadline=None)
@given(st.lists(st.one_of(_field_words(), st.integers(0, (1 << 64) - 1)),
                min_size=8, max_size=8))
def test_random_words(words):
    check(tiny(), words)



def paired_boundary_words(config):
    """PRECISION's ``unsigned`` and paired fields at and around every rule of
    :func:`qforge.sim.model.machine._paired_error` (operand, vrq, dynamic, blocks, kept,
    ``1 <= low <= high``, ``high + low <= n``, the window fields without ``paired``)."""
    n = config.blocks
    exact = {"blocks": n, "kept": n}
    words = []
    for high in range(0, n + 2):
        for low in range(0, n + 1):
            for rounding in (0, 1):
                words.append(encode(Opcode.PRECISION, operand=0, paired=1, high=high,
                                    low=low, round=rounding, **exact))
    for change in ({"operand": 1}, {"vrq": 1}, {"dynamic": 1},
                   {"unsigned": 1}, {"unsigned": 1, "vrq": 1}, {"blocks": n - 1},
                   {"kept": n - 1}, {"blocks": n + 1, "kept": n + 1}, {"blocks": 15}):
        words.append(encode(Opcode.PRECISION, **({"operand": 0, "paired": 1, "high": 1,
                                                   "low": 1} | exact | change)))
    for operand in (0, 1):
        for field, value in (("high", 1), ("low", 1), ("round", 1), ("unsigned", 1)):
            words.append(encode(Opcode.PRECISION, operand=operand, blocks=n, kept=2,
                                dynamic=1, **{field: value}))
        words.append(encode(Opcode.PRECISION, operand=operand, blocks=1, kept=1, unsigned=1,
                            vrq=1))
    words.append(encode(Opcode.GEMM, m=3, n=2, k=7))
    return words


def test_paired_fields_at_their_limits():
    """The paired preset: every PRECISION paired rule at its limits, and a GEMM after a
    paired A (the command carries the paired fields)."""
    config = load_preset("paired")
    n = config.blocks
    paired_a = encode(Opcode.PRECISION, operand=0, blocks=n, kept=n, unsigned=1, paired=1,
                      high=n - 1, low=1, round=1)
    words = paired_boundary_words(config) + [paired_a]
    check(config, words)
    # The same words on a configuration without arithmetic.paired: all paired and
    # unsigned words rejected.
    check(tiny(), paired_boundary_words(tiny()))


def test_paired_gemm_command_carries_the_windows():
    """After a paired PRECISION, a GEMM's command is the golden machine's (check compares
    it with command_bits of the machine's registers) for every window option."""
    config = load_preset("paired")
    n = config.blocks
    for high in range(1, n):
        for low in range(1, min(high, n - high) + 1):
            for rounding in (0, 1):
                setting = encode(Opcode.PRECISION, operand=0, blocks=n, kept=n,
                                 unsigned=rounding, paired=1, high=high, low=low,
                                 round=rounding)
                check(config, [encode(Opcode.GEMM, m=9, n=3, k=7)], PREFIX + [setting])


@st.composite
def paired_words(draw):
    """PRECISION words near the paired rules (small blocks/kept/high/low), or any word."""
    if draw(st.booleans()):
        return draw(st.one_of(_field_words(), st.integers(0, (1 << 64) - 1)))
    fields = {name: draw(st.integers(0, 1)) for name in
              ("vrq", "dynamic", "unsigned", "paired", "round")}
    fields |= {"operand": draw(st.integers(0, 1)) * draw(st.booleans()),
               "blocks": draw(st.integers(2, 5)), "kept": draw(st.integers(2, 5)),
               "high": draw(st.integers(0, 4)), "low": draw(st.integers(0, 3))}
    if draw(st.booleans()):
        fields |= {"vrq": 0, "dynamic": 0, "blocks": 4, "kept": 4, "unsigned": 0}
    return encode(Opcode.PRECISION, **fields)


@settings(max_examples=5, deadline=None)
@given(st.lists(paired_words(), min_size=8, max_size=8))
def test_random_words_paired(words):
    """Random words on the paired preset: the decoder's error and command against the
    golden machine (PRECISION words drawn near the paired rules half the time)."""
    check(load_preset("paired"), words + [encode(Opcode.GEMM, m=5, n=9, k=11)])
