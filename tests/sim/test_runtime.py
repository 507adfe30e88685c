"""The runtime's backends on the same programs: the golden machine and the generated
Verilog of the programmable core (Verilator, cocotb), bit for bit.

* Random instruction streams (:func:`qforge.sim.apps.fuzz.random_program`: valid and invalid
  words, random stalls on every port): the RTL never hangs, raises its sticky error
  exactly for the programs that hold an invalid word, and leaves the same memory as the
  golden machine; without stalls its cycle count equals the cycle model's
  (:func:`qforge.sim.model.cycles.program_cycles`).
* Assembled programs with every high-level block, on the default preset.
* A negative control: a golden machine with a deliberately wrong addend rule (no
  saturation) is caught on the same RTL results.
"""

import random

import numpy as np
import pytest

from qforge.gen.asm import assemble, assemble_file
from qforge.sim.model.spec import load_preset
from qforge.sim.model.isa import Opcode, Operand, encode
from qforge.sim.model import machine as machine_module
from qforge.sim.model.cycles import program_cycles
from qforge.sim.apps.fuzz import random_program
from qforge.sim.runtime import BACKENDS, Runtime, BackendError
from tests.configs import SKIPPING_DESIGNS

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def tiny_rtl():
    runtime = Runtime(load_preset("tiny"), "rtl")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def vrq_skipping_rtl():
    runtime = Runtime(SKIPPING_DESIGNS["rect_vrq_skip"](), "rtl")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def default_rtl():
    runtime = Runtime(load_preset("default"), "rtl")
    yield runtime
    runtime.close()


def run_both(rtl: Runtime, words, memory):
    """Run ``words`` from reset on the RTL runtime and on a fresh golden runtime."""
    golden = Runtime(rtl.config, "golden")
    for runtime in (rtl, golden):
        runtime.reset()
        runtime.memory = np.array(memory, dtype=np.int64)
    return rtl.run(words), golden.run(words), golden


@pytest.mark.parametrize("seed", range(12))
def test_random_instruction_streams_never_hang_and_match_golden(tiny_rtl, seed):
    config = tiny_rtl.config
    program = random_program(config, 100 + seed, instructions=60,
                             invalid_fraction=0.15 if seed % 3 else 0.0)
    tiny_rtl.backend.stall = 0.0 if seed % 2 else 0.3
    try:
        rtl, golden_report, golden = run_both(tiny_rtl, program.words, program.memory)
    finally:
        tiny_rtl.backend.stall = 0.0
    assert rtl.error == golden_report.error == (program.invalid > 0)
    assert rtl.gemms == golden_report.gemms == program.gemms
    np.testing.assert_array_equal(tiny_rtl.memory, golden.memory)
    assert rtl.details["idle"]
    if seed % 2:     # no stalls: the cycle model is exact
        assert rtl.cycles == program_cycles(config, program.words, program.memory).total


# Its own Verilator build (about 40 s): with the sweeps (`make test-all`). The same
# core runs these programs in the Amaranth simulator in tests/hdl/test_core.py.
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_streams_with_vrq_and_zero_skipping(vrq_skipping_rtl, seed):
    """The 2x3 array with VRQ operands and outputs and zero skipping: PRECISION and
    OUTPUT with vrq, GEMMs with skip_zeros, under stalls (odd seeds: none, and the
    cycle model, which reads A from memory for the skipping timing, is exact)."""
    config = vrq_skipping_rtl.config
    program = random_program(config, 200 + seed, instructions=60, invalid_fraction=0.1)
    vrq_skipping_rtl.backend.stall = 0.0 if seed % 2 else 0.25
    try:
        rtl, golden_report, golden = run_both(vrq_skipping_rtl, program.words,
                                              program.memory)
    finally:
        vrq_skipping_rtl.backend.stall = 0.0
    assert rtl.error == golden_report.error == (program.invalid > 0)
    assert rtl.gemms == program.gemms > 0
    np.testing.assert_array_equal(vrq_skipping_rtl.memory, golden.memory)
    if seed % 2:
        assert rtl.cycles == program_cycles(config, program.words, program.memory).total


def test_purely_random_words_never_hang(tiny_rtl):
    """Random 64-bit words (almost all invalid; any valid GEMM among them reads memory
    0 .. with the descriptors the words set): the core stays responsive."""
    rng = random.Random(7)
    words = [rng.getrandbits(64) for _ in range(400)]
    words = [w for w in words if (w & 0xFF) != Opcode.GEMM]     # no data to move
    rtl, golden_report, golden = run_both(tiny_rtl, words + [encode(Opcode.NOP)],
                                          np.zeros(16, dtype=np.int64))
    assert rtl.error and golden_report.error and rtl.details["idle"]


def test_errors_persist_until_reset(tiny_rtl):
    tiny_rtl.reset()
    tiny_rtl.memory = np.zeros(8, dtype=np.int64)
    assert tiny_rtl.run([0xFF]).error
    assert tiny_rtl.run([encode(Opcode.NOP)]).error          # sticky
    tiny_rtl.reset()
    assert not tiny_rtl.run([encode(Opcode.NOP)]).error


def test_example_program_and_blocks_on_default(default_rtl):
    """The packaged example (forward, backward, SGD update) with random data, and a
    k-split tiled GEMM, on the default preset: RTL == golden, cycles == model."""
    config = default_rtl.config
    example = assemble_file(
        __import__("qforge.gen", fromlist=["x"]).__path__[0] + "/programs/example.qasm",
        config)
    rng = np.random.default_rng(3)
    memory = rng.integers(-128, 128, size=example.memory_size)
    w = example.symbols["w"]
    memory[w:w + 640] = rng.integers(-30000, 30000, size=640)       # 16-bit weights
    rtl, golden_report, golden = run_both(default_rtl, example.words, memory)
    assert not rtl.error and rtl.gemms == golden_report.gemms == 4
    np.testing.assert_array_equal(default_rtl.memory, golden.memory)
    assert rtl.cycles == program_cycles(config, example.words, memory).total

    text = f"""
        .const M = 20
        .const N = 12
        .const K = {config.max_reduction_depth + 40}     ; needs a split along k
        output                                           ; raw: the split is exact
        matmul a=a, b=b, c=c, m=M, n=N, k=K, transpose_b, b_stride=K
        .data
        a: .zero M * K
        b: .zero K * N
        c: .zero M * N
    """
    program = assemble(text, config)
    memory = rng.integers(-128, 128, size=program.memory_size)
    c = program.symbols["c"]
    memory[c:] = 0
    rtl, _, golden = run_both(default_rtl, program.words, memory)
    a = memory[:20 * program.symbols["K"]].reshape(20, -1)
    b = memory[program.symbols["b"]:c].reshape(12, -1).T
    np.testing.assert_array_equal(default_rtl.memory[c:].reshape(20, 12), a @ b)
    np.testing.assert_array_equal(default_rtl.memory, golden.memory)


def test_a_wrong_golden_model_is_detected(tiny_rtl, monkeypatch):
    """Negative control: with the addend step's saturation removed from the golden
    machine, the same comparison fails on a program whose sums saturate."""
    words = [encode(Opcode.LOAD, operand=Operand.A, address=0, stride=4),
             encode(Opcode.LOAD, operand=Operand.B, address=16, stride=4),
             encode(Opcode.LOAD, operand=Operand.ADDEND, address=32, stride=4),
             encode(Opcode.STORE, address=48, stride=4),
             encode(Opcode.GEMM, m=4, n=4, k=4, add=1, saturate_bits=8)]
    memory = np.concatenate([np.full(32, 7), np.full(16, 100), np.zeros(16)])
    monkeypatch.setattr(machine_module, "add_saturate",
                        lambda addend, values, bits: np.asarray(addend) + values)
    rtl, _, golden = run_both(tiny_rtl, words, memory)
    assert not np.array_equal(tiny_rtl.memory, golden.memory)
    assert tiny_rtl.memory[48:64].tolist() == [127] * 16            # 100 + 196 saturated


def test_runtime_errors_name_the_problem(tiny_rtl):
    with pytest.raises(ValueError, match="backend = 'fpga': allowed: golden, rtl, board"):
        Runtime(tiny_rtl.config, "fpga")
    assert BACKENDS == ("golden", "rtl", "board")
    runtime = Runtime(tiny_rtl.config, "golden", memory_size=4)
    with pytest.raises(BackendError, match="memory has 4 elements"):
        runtime.run([encode(Opcode.LOAD, operand=Operand.A, address=2, stride=2),
                     encode(Opcode.GEMM, m=2, n=1, k=2)])
    # An operand out of range for the precision: the data mover refuses it, and the
    # RTL backend resets the core and stays usable.
    tiny_rtl.reset()
    tiny_rtl.memory = np.full(16, 500, dtype=np.int64)
    with pytest.raises(BackendError, match="out of range"):
        tiny_rtl.run([encode(Opcode.GEMM, m=1, n=1, k=1)])
    tiny_rtl.memory = np.ones(16, dtype=np.int64)
    report = tiny_rtl.run([encode(Opcode.STORE, address=4, stride=1),
                           encode(Opcode.GEMM, m=1, n=1, k=1)])
    assert not report.error and tiny_rtl.memory[4] == 1


def test_fuzz_command(capsys, monkeypatch):
    """`qforge fuzz`: a clean run reports no hang and every check passed; with a wrong
    golden model (no saturation in the addend step) it fails with exit status 1."""
    from qforge.gen.cli import main

    assert main(["fuzz", "--preset", "tiny", "--programs", "4", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "hangs: 0;" in out and "exactly those with an invalid word: yes" in out
    assert "bit-identical with the golden machine: yes" in out
    assert "cycles equal to the cycle model: yes" in out
    monkeypatch.setattr(machine_module, "add_saturate",
                        lambda addend, values, bits: np.asarray(addend) + values + 1)
    assert main(["fuzz", "--preset", "tiny", "--programs", "4", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert "memory bit-identical with the golden machine: NO" in out and "FAILED" in out


def test_run_command_compares_backends(capsys):
    from qforge.gen.cli import main

    program = str(__import__("qforge.gen", fromlist=["x"]).__path__[0]
                  + "/programs/example.qasm")
    assert main(["run", program, "--backend", "rtl", "--compare", "--random", "x",
                 "--random", "wq", "--random", "dy", "--show", "dw"]) == 0
    out = capsys.readouterr().out
    assert "4 GEMMs, error flag 0" in out
    assert "bit-identical with the golden machine: all 6659 memory elements" in out
    simulated, predicted = out.split("cycles: ")[1].split(" simulated, ")
    assert int(simulated) == int(predicted.split()[0])
    assert main(["run", program, "--show", "nothing"]) == 2
    assert "not a data label" in capsys.readouterr().err
