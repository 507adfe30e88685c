"""cocotb test module run inside the simulator by :func:`qforge.sim.bench.rtl.run_scenario`.

It reads the design manifest (``QFORGE_MANIFEST``) and a scenario
(``QFORGE_SCENARIO``, see :mod:`qforge.sim.bench.scenarios`), drives the generated Verilog with
:class:`qforge.sim.bench.testbench.Testbench` and writes a JSON report (``QFORGE_REPORT``):
matched/mismatched/missing/unexpected beats, error messages, cycle counts per job.
The test fails on any scoreboard error, unless the scenario is a negative control
(``expect_mismatch``), which fails if the scoreboard finds nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from qforge.sim.model.spec import from_dict
from qforge.sim.model.cycles import CHECK_LATENCY, issued_block_products
from qforge.sim.host.packing import GemmJob, ResultAssembler
from qforge.sim.bench.scenarios import MODELS, OUTPUT_MODELS, Scenario, precision_to_dict
from qforge.sim.bench.testbench import Testbench


def _load():
    manifest = json.loads(Path(os.environ["QFORGE_MANIFEST"]).read_text())
    config = from_dict(manifest["config"], source="manifest")
    scenario = Scenario.load(Path(os.environ["QFORGE_SCENARIO"]))
    return config, scenario


def _job_summary(job: GemmJob) -> dict:
    """The job's shape and precision: ``block_products`` is the mode's ``q = La x Lb``,
    ``issued_block_products`` those the PEs issue per MAC, the count a cycle model shape
    takes (:func:`qforge.sim.model.cycles.issued_block_products`)."""
    return {"m": int(job.a.shape[0]), "n": int(job.b.shape[1]), "depth": int(job.a.shape[1]),
            "block_products": job.precision.block_products,
            "issued_block_products": issued_block_products(job.config, job.precision),
            "precision": precision_to_dict(job.precision), "skip_zeros": job.skip_zeros}


@cocotb.test()
async def run_scenario(dut):
    """Run the scenario named by the environment and check it."""
    config, scenario = _load()
    model = MODELS[scenario.model]
    jobs = [GemmJob.build(config, job.a, job.b, job.precision, model=model,
                          output=job.output, skip_zeros=job.skip_zeros)
            for job in scenario.jobs]
    if scenario.output_model != "golden":
        # Negative control: the commands carry the jobs' settings, the expected results
        # come from a wrong model of the output stage.
        wrong = OUTPUT_MODELS[scenario.output_model]
        jobs = [job if job.output is None else dataclasses.replace(
                    job, expected=wrong(model(job.a, job.b, config, job.precision), config,
                                        job.output))
                for job in jobs]
    bench = Testbench(dut, config, scenario.seed, scenario.stalls)
    await bench.start()
    for command in scenario.invalid_commands:
        bench.submit_raw_command(command)
    report: dict = {"jobs": [], "errors": []}
    if scenario.invalid_commands:
        # Each invalid command is dropped when checked, the cycle after it is taken: wait
        # until all were taken, then CHECK_LATENCY edges for the check and the sticky
        # error register, and one more because a value read at an edge is the one from
        # before it.
        while len(bench.sources["cmd"].transfer_cycles) < len(scenario.invalid_commands):
            await RisingEdge(dut.clk)
        for _ in range(CHECK_LATENCY + 1):
            await RisingEdge(dut.clk)
        report["error_flag_after_invalid"] = int(dut.error.value) == 1
    groups = [[job] for job in jobs] if scenario.isolated else [jobs]
    for group in groups:
        bench.submit(group)
        result = await bench.run(scenario.timeout_cycles)
        cycles = None
        if result.first_command_cycle is not None and result.last_result_cycle is not None:
            cycles = result.last_result_cycle - bench.sources["cmd"].transfer_cycles[
                -len(group)] + 1
        report["jobs"].append({"jobs": [_job_summary(job) for job in group],
                               "cycles": cycles, "idle_at_end": result.idle_at_end})
    # The scoreboard's counts and errors are cumulative over the groups.
    totals = {key: getattr(result, key)
              for key in ("matched", "mismatched", "unexpected", "missing")}
    report["errors"] = result.errors
    report.update(totals)
    report["idle_at_end"] = int(dut.idle.value) == 1
    report["error_flag"] = int(dut.error.value) == 1
    Path(os.environ["QFORGE_REPORT"]).write_text(json.dumps(report, indent=1))
    if scenario.record:
        # What the hardware produced, job by job, for workloads that chain GEMMs.
        received, matrices, offset = bench.scoreboard.received, {}, 0
        for index, job in enumerate(jobs):
            assembler = ResultAssembler(config, job.a.shape[0], job.b.shape[1])
            for row in received[offset:offset + job.result_beats]:
                assembler.add_row(row)
            offset += job.result_beats
            if len(assembler.rows) == job.result_beats:
                matrices[f"result{index}"] = assembler.matrix()
        np.savez(Path(os.environ["QFORGE_REPORT"]).parent / "results.npz", **matrices)

    detected = totals["mismatched"] + totals["unexpected"] + totals["missing"]
    if scenario.expect_mismatch:
        assert detected > 0, "negative control: the wrong model was NOT detected"
    else:
        assert detected == 0 and not report["errors"], \
            f"{detected} bad result beats: " + "; ".join(report["errors"][:5])
        assert report["idle_at_end"], "accelerator not idle after all results drained"
