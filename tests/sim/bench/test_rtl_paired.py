"""The paired precision mode on the generated Verilog (the ``paired`` preset: 8 x 8, W = 8,
K = 2, n = 4 blocks, P = 4): random GEMM sequences through the bench's driver, monitors
and scoreboard (:mod:`qforge.sim.bench.cocotb_tests`), every result beat compared bit for
bit with :func:`qforge.sim.model.numerics.gemm` (which applies
:func:`qforge.sim.model.paired.paired_operands` to A), and the cycles against
:func:`qforge.sim.model.cycles.gemm_cycles` (a paired tile:
:func:`~qforge.sim.model.cycles.paired_tile_cycles`).

The sequence covers every window option of ``n = 4`` (``(high, low)`` in (1, 1), (2, 2),
(2, 1), (3, 1)), RAW and ROUND, signed and unsigned A, A zero fractions from 0% to 100%,
odd and even depths, B exact and in a dynamic 2-of-4 mode (the B lanes' ``partner``
blocks carry their own positions), mixed with GEMMs in plain modes (one with an unsigned
A), under random backpressure on all four ports. A negative control proves the comparison
fails for wrong models: the bench's scoreboard against a model without the pairs'
windows, and the recorded results against the paired rule with ties to the second
operand, without the ROUND carry's saturation, and RAW instead of ROUND. Commands outside
the paired rules raise ``error`` and are dropped.
"""

import numpy as np
import pytest

from qforge.hdl.layouts import command_layout
from qforge.sim.model.blocks import dynamic_exponent
from qforge.sim.model.cycles import gemm_cycles, gemm_shape
from qforge.sim.model.errors import OperandError
from qforge.sim.model.isa import Operand
from qforge.sim.model.machine import instruction_error, precision_word
from qforge.sim.model.numerics import (OperandPrecision, Precision, Selection, gemm,
                                       operand_range, operand_value)
from qforge.sim.model.paired import PairedPrecision, WindowRounding, paired_operands
from qforge.sim.model.rounding import Rounding, round_shift
from qforge.sim.bench.rtl import run_scenario
from qforge.sim.bench.scenarios import Job, Scenario, precision_from_dict
from qforge.sim.bench.stimulus import paired_activations, random_operands

from tests.sim.bench.test_rtl import ALL_PORTS

pytestmark = pytest.mark.rtl

#: Every window option of n = 4 blocks: (high, low), 1 <= low <= high, high + low <= 4.
WINDOWS = [(1, 1), (2, 2), (2, 1), (3, 1)]
#: The A zero fractions the sequence cycles through (None: uniform in 0 .. 1).
ZEROS = [0.0, 0.5, 1.0, None, 0.25, 0.9]


def paired_jobs(config, seed):
    """The random sequence: per window option, rounding and A signedness one paired GEMM
    (B exact or dynamic 2 of 4, alternately; odd and even depths), a plain GEMM after
    every third (four fixed modes in turn, one with an unsigned A)."""
    rng = np.random.default_rng(seed)
    n = config.blocks
    b_modes = [OperandPrecision(n, n), OperandPrecision(n, 2, Selection.DYNAMIC)]
    plain_modes = [Precision(OperandPrecision(n, 2, Selection.DYNAMIC, unsigned=True),
                             OperandPrecision(n, n)),
                   Precision(OperandPrecision(n, 1, Selection.STATIC),
                             OperandPrecision(n, 2, Selection.DYNAMIC)),
                   Precision(OperandPrecision(n, n), OperandPrecision(n, n)),
                   Precision(OperandPrecision(3, 2, Selection.DYNAMIC),
                             OperandPrecision(2, 1, Selection.STATIC))]
    jobs = []
    index = 0
    for (high, low) in WINDOWS:
        for rounding in WindowRounding:
            for unsigned in (False, True):
                a_mode = OperandPrecision(n, n, unsigned=unsigned,
                                          paired=PairedPrecision(high, low, rounding))
                mode = Precision(a_mode, b_modes[index % 2])
                zeros = ZEROS[index % len(ZEROS)]
                zeros = float(rng.random()) if zeros is None else zeros
                depth = int(rng.integers(1, 18)) * 2 - index % 2      # odd, even, ...
                m, cols = (int(v) for v in rng.integers(1, 2 * config.rows + 1, 2))
                a = paired_activations(rng, (m, depth), *operand_range(config, a_mode),
                                       zeros, config.block_width)
                b = random_operands(rng, (depth, cols), *operand_range(config, mode.b),
                                    ["uniform", "heavy_tailed", "extremes"][index % 3])
                jobs.append(Job(a, b, mode, f"{mode.describe()}/zeros={zeros:.2f}"))
                if index % 3 == 2:
                    plain = plain_modes[(index // 3) % len(plain_modes)]
                    depth = int(rng.integers(1, 30))
                    jobs.append(Job(
                        random_operands(rng, (m, depth), *operand_range(config, plain.a),
                                        "heavy_tailed" if not plain.a.unsigned else "uniform"),
                        random_operands(rng, (depth, cols), *operand_range(config, plain.b),
                                        "uniform"),
                        plain, plain.describe()))
                index += 1
    return jobs


def _beats(config, jobs):
    return sum(-(-j.a.shape[0] // config.rows) * -(-j.b.shape[1] // config.cols)
               for j in jobs) * config.rows


# ---- wrong paired rules, for the negative control only ----------------------------------


def _ties_to_second(a, config, mode):
    """WRONG: the asymmetric rule with a tie going to the second operand of the pair."""
    swapped = np.asarray(a)[:, _pair_swap(a.shape[1])]
    return paired_operands(swapped, config, mode)[:, _pair_swap(a.shape[1])]


def _pair_swap(depth):
    """Column order that swaps each pair (k, k+1) (the odd depth's last column stays)."""
    order = np.arange(depth)
    for k in range(0, depth - 1, 2):
        order[k], order[k + 1] = k + 1, k
    return order


def _no_saturation(a, config, mode):
    """WRONG: ROUND's carry out of a window kept (the window grows a block) instead of
    saturating to the window's largest value: the golden rule's windows (who keeps
    ``high``, ties to the first), each windowed value rounded to nearest even at its
    lowest block ``e`` with nothing clamped."""
    a = np.asarray(a, dtype=np.int64)
    if mode.rounding == WindowRounding.RAW:
        return paired_operands(a, config, mode)
    k, n = config.block_width, config.blocks
    padded = np.concatenate([a, np.zeros((a.shape[0], a.shape[1] % 2), np.int64)], axis=1)
    first, second = padded[:, 0::2], padded[:, 1::2]
    first_high = np.abs(first) >= np.abs(second)
    kept = np.empty_like(padded)
    kept[:, 0::2] = np.where(first_high, mode.kept_high, mode.kept_low)
    kept[:, 1::2] = np.where(first_high, mode.kept_low, mode.kept_high)
    magnitude = np.abs(padded)
    carried = magnitude.copy()
    for size in {mode.kept_high, mode.kept_low}:
        exponent = dynamic_exponent(magnitude, k, n, size)
        for e in range(1, n - size + 1):
            chosen = (kept == size) & (exponent == e)
            rounded = round_shift(magnitude, e * k, Rounding.NEAREST_EVEN) << (e * k)
            carried = np.where(chosen, rounded, carried)
    both = np.repeat((first != 0) & (second != 0), 2, axis=1)
    return np.where(both, np.sign(padded) * carried, padded)[:, :a.shape[1]]


WRONG_RULES = {
    "ties to the second": _ties_to_second,
    "no saturation": _no_saturation,
    "RAW instead of ROUND": lambda a, config, mode: paired_operands(
        a, config, PairedPrecision(mode.kept_high, mode.kept_low, WindowRounding.RAW)),
}


def test_paired_gemms_with_backpressure(rtl):
    """The random sequence under random stalls on all four ports: every beat matched, none
    missing or unexpected; the recorded results equal the golden model's and differ from
    each wrong paired rule's on some GEMM (the stimulus tells the rules apart)."""
    built = rtl("paired")
    config = built.config
    jobs = paired_jobs(config, seed=3)
    report = run_scenario(built, Scenario(jobs, seed=9, stalls=ALL_PORTS, record=True,
                                          timeout_cycles=20000), name="paired")
    assert report["matched"] == _beats(config, jobs)
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    assert report["idle_at_end"] and not report["error_flag"]
    results = report["results"]
    for job, result in zip(jobs, results):
        assert np.array_equal(result, gemm(job.a, job.b, config, job.precision)), job.label
    # A paired GEMM is (A's windowed operands) @ (B as its mode approximates it): with the
    # golden rule for A that equals the hardware's results, with each wrong rule it must
    # differ on at least one GEMM.
    paired = [(job, result, operand_value(job.b, config, job.precision.b))
              for job, result in zip(jobs, results) if job.precision.a.paired is not None]
    for job, result, b in paired:
        assert np.array_equal(result, paired_operands(job.a, config, job.precision.a.paired)
                              @ b), job.label
    for rule, wrong in WRONG_RULES.items():
        differs = [job.label for job, result, b in paired
                   if not np.array_equal(result, wrong(job.a, config, job.precision.a.paired)
                                         @ b)]
        assert differs, f"no GEMM tells the golden rule from {rule!r}"


def test_paired_negative_control_scoreboard(rtl):
    """The bench's scoreboard against a wrong model: ``wrong_rounding`` multiplies a paired
    A as it is (no pairs' windows, B exact), which the same stimulus must fail, while the
    golden model passes."""
    built = rtl("paired")
    config = built.config
    n = config.blocks
    rng = np.random.default_rng(7)
    jobs = []
    for index, (high, low) in enumerate(WINDOWS):
        rounding = WindowRounding(index % 2)
        mode = Precision(OperandPrecision(n, n, paired=PairedPrecision(high, low, rounding)),
                         OperandPrecision(n, n))
        a = paired_activations(rng, (5, 9), *operand_range(config, mode.a), 0.2,
                               config.block_width)
        jobs.append(Job(a, random_operands(rng, (9, 4), -128, 127, "uniform"), mode))
    good = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS), name="paired_good")
    assert good["mismatched"] == 0 and good["matched"] == _beats(config, jobs)
    wrong = run_scenario(built, Scenario(jobs, seed=2, stalls=ALL_PORTS,
                                         model="wrong_rounding", expect_mismatch=True),
                         name="paired_wrong")
    assert wrong["mismatched"] > 0
    assert any("expected" in error for error in wrong["errors"])


def test_paired_cycle_model_equals_rtl(rtl):
    """Inputs always valid, results always ready: each GEMM alone, and the sequence back to
    back, takes the cycles :func:`gemm_cycles` predicts from the jobs' shapes and modes
    (:func:`gemm_shape`: a paired GEMM walks ``ceil(depth / 2)`` slots)."""
    built = rtl("paired")
    config = built.config
    jobs = paired_jobs(config, seed=5)[:9]          # 7 paired (both B modes), 2 plain
    isolated = run_scenario(built, Scenario(jobs, isolated=True), name="paired_cycles")
    shapes = []
    for group in isolated["jobs"]:
        (job,) = group["jobs"]
        shape = gemm_shape(config, job["m"], job["n"], job["depth"],
                           precision_from_dict(job["precision"]))
        shapes.append(shape)
        assert group["cycles"] == gemm_cycles(config, [shape]).total, job
    assert any(shape.paired for shape in shapes) and not all(shape.paired for shape in shapes)
    together = run_scenario(built, Scenario(jobs), name="paired_cycles_back_to_back")
    assert together["jobs"][0]["cycles"] == gemm_cycles(config, shapes).total


def _operand(fields):
    """The OperandPrecision a command's precision fields say (missing fields 0)."""
    paired = PairedPrecision(fields.get("high", 0), fields.get("low", 0),
                             WindowRounding(fields.get("round", 0))) \
        if fields.get("paired") else None
    return OperandPrecision(fields["blocks_minus_one"] + 1, fields["kept_minus_one"] + 1,
                            Selection(fields.get("dynamic", 0)), paired=paired)


def _golden_error(config, command):
    """Why the golden model rejects a command's precisions: the operand modes'
    validation, or the ISA's rules for the PRECISION words that would set them
    (:func:`~qforge.sim.model.machine.instruction_error` of
    :func:`~qforge.sim.model.machine.precision_word`); None if it accepts them."""
    precision = Precision(_operand(command["a"]), _operand(command["b"]))
    try:
        precision.validate(config)
    except OperandError as error:
        return str(error)
    for operand, mode in ((Operand.A, precision.a), (Operand.B, precision.b)):
        reason = instruction_error(config, precision_word(operand, mode))
        if reason is not None:
            return reason
    return None


def test_invalid_paired_commands_raise_error_and_are_dropped(rtl):
    """Commands outside the paired rules (:meth:`OperandPrecision.validate`: a paired B,
    a paired A not exact with all n blocks, ``low`` 0 or above ``high``, ``high + low``
    above n) raise ``error`` and are dropped; valid paired GEMMs after them are
    computed and checked as usual."""
    built = rtl("paired")
    config = built.config
    n = config.blocks
    layout = command_layout(config)
    exact = {"blocks_minus_one": n - 1, "kept_minus_one": n - 1}
    windows = {"paired": 1, "high": 1, "low": 1}
    plain = {"m_tiles_minus_one": 0, "n_tiles_minus_one": 0, "depth_minus_one": 5,
             "a": exact | windows, "b": exact}
    bad_a = [{"dynamic": 1}, {"kept_minus_one": n - 2}, {"blocks_minus_one": n - 2,
                                                         "kept_minus_one": n - 2},
             {"low": 0}, {"high": 1, "low": 2}, {"high": n - 1, "low": 2},
             {"high": n, "low": 1}]
    commands = [plain | {"a": exact | windows | change} for change in bad_a]
    commands.append(plain | {"a": exact, "b": exact | windows})
    for command in commands:          # each one the golden model rejects too
        assert _golden_error(config, command) is not None, command
    invalid = [layout.const(command).as_bits() for command in commands]
    jobs = paired_jobs(config, seed=13)[:4]
    report = run_scenario(built, Scenario(jobs, seed=3, stalls=ALL_PORTS,
                                          invalid_commands=invalid), name="paired_invalid")
    assert report["error_flag_after_invalid"] and report["error_flag"]
    assert report["matched"] == _beats(config, jobs)
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
