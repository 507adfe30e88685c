"""The board-level design (accelerator + UART host link, what the FPGA board tops
instantiate) on Verilator, driven by the host driver through a simulated serial port
(:mod:`qforge.sim.bench.cocotb_board`): GEMMs bit-exact with the golden model, bad frames
rejected and never executed, and a negative control with a wrong model."""

import pytest

from qforge.gen.generate import LinkSettings, lint, render, write
from qforge.sim.model.spec import load_preset
from qforge.sim.bench.rtl import build, run_board_tests

pytestmark = pytest.mark.rtl

#: A fast link for simulation: 8 clock cycles per bit (the board builds use the real
#: clock and 115200 baud; the divisor is the only difference).
SIM_LINK = LinkSettings(clock_frequency=24e6, baud_rate=3e6)


@pytest.fixture(scope="module")
def linked_tiny():
    return build(load_preset("tiny"), link=SIM_LINK, log=lambda message: None)


def test_gemms_through_the_link_are_bit_exact(linked_tiny):
    """Every standard mode, then output-stage settings (rounding, ReLU, stochastic
    rounding), through ``Board.gemm`` and the UART: equal to the golden model."""
    report = run_board_tests(linked_tiny, "gemm_through_link",
                             settings={"seed": 11, "jobs": 8})
    assert report["mismatched_elements"] == 0
    assert len(report["jobs"]) == 8
    assert {job["mode"] for job in report["jobs"]} >= {"exact", "mixed", "approx_dynamic"}
    assert any(job["output_stage"] for job in report["jobs"])
    assert report["framing_errors"] == 0


def test_wrong_model_is_detected_through_the_link(linked_tiny):
    """Negative control: the same bench against a deliberately wrong model
    (approximate modes rounding dropped blocks) must find mismatches."""
    report = run_board_tests(linked_tiny, "gemm_through_link", name="negative_control",
                             settings={"seed": 11, "jobs": 6, "model": "wrong_rounding",
                                       "expect_mismatch": True})
    assert report["mismatched_elements"] > 0
    wrong_modes = {job["mode"] for job in report["jobs"] if job["mismatched_elements"]}
    assert wrong_modes and wrong_modes <= {"approx_static", "approx_dynamic",
                                           "approx_dynamic_1"}


def test_corrupted_frames_are_rejected_and_never_executed(linked_tiny):
    report = run_board_tests(linked_tiny, "corrupted_frames", settings={"seed": 3})
    cases = {case["case"]: case for case in report["cases"]}
    assert all(case["ok"] for case in cases.values()), report["cases"]
    assert cases["truncated after the header"]["reason"] == "TRUNCATED"
    assert cases["unknown KIND"]["reason"] == "KIND"
    assert cases["sequence skipped"]["reason"] == "SEQUENCE"
    assert cases["duplicate COMMAND"]["second"] == ["ACK"]
    assert len(cases) >= 12


def test_linked_design_lints_clean(tmp_path):
    """``verilator --lint-only -Wall`` (with the documented waivers) on the board-level
    design, as for the bare accelerator."""
    text, manifest = render(load_preset("tiny"), LinkSettings(24e6, 115200))
    design = write(load_preset("tiny"), text, manifest, tmp_path)
    assert lint(design.verilog) == []


def test_dead_host_never_needs_a_board_reset(linked_tiny):
    """A host killed after its COMMAND, in the middle of its A_DATA frame, inside a
    COMMAND header, and after every operand frame with the results unread: each time
    the next host connects (ABORT where the board was left busy), STATUS is answered
    and its GEMM is bit-exact. Operand beats no command asked for: NAK STALLED, not
    silence."""
    report = run_board_tests(linked_tiny, "dead_host", settings={})
    cases = {case["case"]: case for case in report["cases"]}
    assert all(case["ok"] for case in cases.values()), report["cases"]
    assert set(cases) == {"after COMMAND", "mid A_DATA", "mid COMMAND header",
                          "after operands, results unread", "unsolicited A_DATA"}
    assert "NAK STALLED" in cases["unsolicited A_DATA"]["answer"]
    # Left waiting for operands or with results pending: the next host aborted.
    assert cases["after COMMAND"]["aborted"] and cases["mid A_DATA"]["aborted"]
    assert report["framing_errors"] == 0


def test_random_frame_sequences_leave_status_answered(linked_tiny):
    report = run_board_tests(linked_tiny, "random_frames", settings={"seed": 5, "rounds": 6})
    assert [r["answered"] for r in report["rounds"]] == [True] * 6
    assert report["final"]["exact"]
