"""Run cocotb benches on the generated Verilog through cocotb's Python runner.

:func:`build` compiles a generated design once per (design, simulator): the build
folder is named after the Verilog's hash, so an unchanged design is never rebuilt.
:func:`run_scenario` saves a :class:`~qforge.sim.bench.scenarios.Scenario` next to the run,
starts the simulator on the cocotb test module :mod:`qforge.sim.bench.cocotb_tests` with the
scenario's and the manifest's paths in the environment, and returns the JSON report the
bench writes (results, mismatches, cycle counts).
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qforge.gen.generate import (CORE_TOP_NAME, LINKED_TOP_NAME, TOP_NAME, Design,
                                 LinkSettings, fingerprint, render, write)
from qforge.sim.model.errors import InputError
from qforge.sim.model.spec import Config
from qforge.sim.bench.cocotb_runner import RunnerExited, run_runner
from qforge.sim.bench.object_cache import CACHE_VARIABLE, compiler_wrapper
from qforge.sim.bench.scenarios import Scenario
from qforge.gen.tools import ToolError, have_icarus, tool_environment

__all__ = ["BuiltDesign", "build", "run_scenario", "run_board_tests", "ScenarioFailed",
           "default_build_root"]

#: cocotb test module run inside the simulator.
TEST_MODULE = "qforge.sim.bench.cocotb_tests"
#: cocotb test module of the board-level design (accelerator + UART host link).
BOARD_TEST_MODULE = "qforge.sim.bench.cocotb_board"


_LOGGER = logging.getLogger(__name__)


class ScenarioFailed(AssertionError):
    """The cocotb bench reported a failure; the message carries its report."""


def default_build_root() -> Path:
    """``build/`` under the current directory, or ``$QFORGE_BUILD`` if set."""
    return Path(os.environ.get("QFORGE_BUILD", "build")).resolve()


@dataclass(frozen=True)
class BuiltDesign:
    """A design compiled for one simulator."""

    design: Design
    simulator: str
    build_dir: Path
    waves: bool

    @property
    def config(self) -> Config:
        return self.design.config

    @property
    def top(self) -> str:
        """The Verilog top module: :data:`TOP_NAME` or :data:`LINKED_TOP_NAME`."""
        return self.design.verilog.stem


def _public_ports(top: str, names) -> str:
    return "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{name}"\n' for name in names)


#: Verilator configuration that makes only the top level's ports visible to VPI.
PUBLIC_PORTS_VLT = _public_ports(TOP_NAME, ("clk", "rst", "idle", "error", "cmd__*",
                                            "a_in__*", "b_in__*", "result__*"))
#: The same for the linked design (:data:`LINKED_TOP_NAME`).
LINKED_PUBLIC_PORTS_VLT = _public_ports(LINKED_TOP_NAME, ("clk", "rst", "rx", "tx",
                                                          "status", "accelerator_*"))
#: The same for the programmable design (:data:`CORE_TOP_NAME`).
CORE_PUBLIC_PORTS_VLT = _public_ports(CORE_TOP_NAME, (
    "clk", "rst", "idle", "error", "instruction__*", "a_in__*", "b_in__*", "addend__*",
    "result__*"))


def _verilator_args(waves: bool, public_ports: Path | None = None) -> list[str]:
    # Amaranth's Verilog style trips Verilator's width warnings, which are fatal by
    # default; the separate lint step (`qforge lint`, gen/lint.vlt) is where warnings
    # are checked. cocotb's runner marks every signal public for VPI; Amaranth emits a
    # named wire for every field of every view, so that symbol table alone took minutes
    # to compile for the 8x8 array, and with `--public-depth 1` the zero-skipping 8x8
    # top's 4000 public wires took over 20 minutes of GCC for one file. The benches
    # only touch the top level's ports, so only those are public (PUBLIC_PORTS_VLT).
    # -O1 keeps C++ compile times short on 2 cores.
    return ([str(public_ports)] if public_ports else []) + [
        "--no-public-flat-rw", "-Wno-fatal", "-Wno-lint", "-Wno-style",
        "--x-assign", "fast", "-CFLAGS", "-O1"] + (["--trace-structs"] if waves else [])


def _build_environment(root: Path, simulator: str) -> dict[str, str]:
    """:func:`~qforge.gen.tools.tool_environment`, and for Verilator the shared runtime
    objects of :mod:`qforge.sim.bench.object_cache` (in ``root/rtl/objects``)."""
    environment = tool_environment()
    if simulator == "verilator":
        cache = root / "rtl" / "objects"
        wrapper = compiler_wrapper(cache)
        if not any(character.isspace() for character in str(wrapper)):  # a make word
            environment["MAKEFLAGS"] += f" OBJCACHE={wrapper}"
            environment[CACHE_VARIABLE] = str(cache)
    return environment


@functools.lru_cache(maxsize=16)
def _render(config: Config, link: LinkSettings | None, programmable: bool):
    """:func:`qforge.gen.generate.render`, once per process and design: elaborating the
    default preset's programmable top takes about 10 s, and a test session builds the
    same design for several runtimes."""
    return render(config, link, programmable=programmable)


def build(config: Config, simulator: str = "verilator", *, root: Path | None = None,
          waves: bool = False, log: Callable[[str], None] | None = None,
          link: LinkSettings | None = None, programmable: bool = False) -> BuiltDesign:
    """Generate ``config``'s Verilog and compile it for ``simulator`` (if not yet built).

    ``log`` receives a line when a build starts and when it ends (default: this module's
    logger, at INFO level).

    With ``link``, the design is the accelerator behind its UART host link (the board
    tops' core, :class:`qforge.hdl.link.LinkedAccelerator`), run by :func:`run_board_tests`.
    With ``programmable``, it is the accelerator with its instruction decoder
    (:class:`qforge.hdl.core.Core`), run by :class:`qforge.sim.runtime.RtlBackend`.
    """
    log = log or _LOGGER.info
    if simulator not in ("verilator", "icarus"):
        raise InputError(f"simulator = {simulator!r}: allowed: verilator, icarus")
    if simulator == "icarus" and not have_icarus():
        raise ToolError("Icarus Verilog is not installed (optional): "
                        "`apt-get install iverilog`, or use --simulator verilator")
    root = root or default_build_root()
    text, manifest = _render(config, link, programmable)
    manifest = json.loads(json.dumps(manifest))         # callers may not share it
    top = manifest["top"]
    public_ports_vlt = (CORE_PUBLIC_PORTS_VLT if programmable else
                        PUBLIC_PORTS_VLT if link is None else LINKED_PUBLIC_PORTS_VLT)
    variant = "core-" if programmable else "" if link is None else "linked-"
    arguments_key = fingerprint(" ".join(_verilator_args(waves)) + public_ports_vlt)[:6] \
        if simulator == "verilator" else "iv"
    build_dir = (root / "rtl" / config.name
                 / f"{simulator}-{variant}{fingerprint(text)}-"
                   f"{arguments_key}{'-waves' if waves else ''}")
    marker = build_dir / "qforge_built"
    build_dir.mkdir(parents=True, exist_ok=True)
    # One build per folder at a time, even across processes (parallel test sessions):
    # the others wait for the lock and then find the marker. The folder is named after
    # the Verilog's hash, so its copy of the Verilog never changes once written.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        design = write(config, text, manifest, build_dir / "verilog")
        if not marker.exists():
            started = time.monotonic()
            log(f"building {config.name} for {simulator} in {build_dir} ...")
            arguments = dict(sources=[design.verilog], hdl_toplevel=top,
                             build_dir=build_dir, waves=waves,
                             log_file=build_dir / "build.log")
            if simulator == "verilator":
                public_ports = build_dir / "public_ports.vlt"
                public_ports.write_text(public_ports_vlt)
                arguments["build_args"] = _verilator_args(waves, public_ports)
            else:
                arguments["timescale"] = ("1ns", "1ps")
            try:
                run_runner(simulator, "build", arguments, _build_environment(root, simulator))
            except RunnerExited:
                raise ToolError(f"cocotb's runner stopped building {config.name} for "
                                f"{simulator} (is {simulator} installed?); see "
                                f"{build_dir / 'build.log'}") from None
            marker.write_text(design.fingerprint + "\n")
            log(f"built {config.name} for {simulator} in "
                f"{time.monotonic() - started:.0f} s")
    return BuiltDesign(design, simulator, build_dir, waves)


@contextmanager
def _run_folder(built: BuiltDesign, name: str):
    """The folder of one bench run, ``runs/<name>`` in the build folder, held (locked)
    until the run ends.

    Processes that share a build (parallel test workers, two qforge commands) may run
    a bench of the same name at once: a folder another process holds is skipped for
    ``runs/<name>.1``, ``runs/<name>.2``, ... so no two runs share a folder.
    """
    for attempt in range(1000):
        test_dir = built.build_dir / "runs" / (f"{name}.{attempt}" if attempt else name)
        test_dir.mkdir(parents=True, exist_ok=True)
        lock = open(test_dir / ".lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield test_dir
        finally:
            lock.close()
        return
    raise RuntimeError(f"no free run folder for {name!r} in {built.build_dir / 'runs'}")


def _run_cocotb(built: BuiltDesign, module: str, test_dir: Path, environment: dict,
                testcase: str | None = None) -> tuple[int, int]:
    """Run cocotb test ``module`` (optionally one ``testcase``) on ``built`` in
    ``test_dir``; return (tests run, tests failed) from cocotb's results file."""
    from cocotb_tools.check_results import get_results

    results_xml = test_dir / "results.xml"
    results_xml.unlink(missing_ok=True)
    try:
        run_runner(built.simulator, "test", dict(
            test_module=module, hdl_toplevel=built.top, testcase=testcase,
            hdl_toplevel_lang="verilog", build_dir=built.build_dir, test_dir=test_dir,
            results_xml=str(results_xml), waves=built.waves, log_file=test_dir / "sim.log",
            extra_env={"QFORGE_MANIFEST": str(built.design.manifest), **environment}),
            tool_environment())
    except RunnerExited:
        # cocotb's runner exits instead of returning when a test failed while running
        # under pytest, or when the simulator failed; the results file and the bench's
        # report say what happened (and ``check=False`` callers still get them).
        pass
    return get_results(results_xml) if results_xml.exists() else (0, 0)


def _bench_report(built: BuiltDesign, test_dir: Path, what: str, tests: int, failed: int,
                  check: bool) -> dict:
    """The JSON report a bench wrote into ``test_dir`` (empty if none) with
    ``cocotb_failed``; with ``check``, :class:`ScenarioFailed` (the report's errors and
    the end of the simulator log) if no test ran or one failed."""
    report_path = test_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    if check and (tests == 0 or failed):
        log = test_dir / "sim.log"
        tail = "\n".join(log.read_text().splitlines()[-40:]) if log.exists() else ""
        raise ScenarioFailed(f"{what} failed on {built.simulator}: "
                             f"{json.dumps(report.get('errors', []))[:2000]}\n{tail}")
    report["cocotb_failed"] = failed
    return report


def run_scenario(built: BuiltDesign, scenario: Scenario, *, name: str = "scenario",
                 check: bool = True) -> dict:
    """Run one :class:`~qforge.sim.bench.scenarios.Scenario` and return the bench's report.

    With ``check``, a failed cocotb test raises :class:`ScenarioFailed`.
    """
    with _run_folder(built, name) as test_dir:
        report_path = test_dir / "report.json"
        report_path.unlink(missing_ok=True)
        (test_dir / "results.npz").unlink(missing_ok=True)
        scenario_path = scenario.save(test_dir)
        tests, failed = _run_cocotb(built, TEST_MODULE, test_dir,
                                    {"QFORGE_SCENARIO": str(scenario_path),
                                     "QFORGE_REPORT": str(report_path)})
        report = _bench_report(built, test_dir, f"scenario {name!r}", tests, failed, check)
        results = test_dir / "results.npz"
        if scenario.record and results.exists():
            with np.load(results) as saved:
                report["results"] = [saved[f"result{i}"] if f"result{i}" in saved else None
                                     for i in range(len(scenario.jobs))]
    return report


def run_board_tests(built: BuiltDesign, testcase: str, *, name: str | None = None,
                    settings: dict | None = None, check: bool = True) -> dict:
    """Run one test of the board-level bench (:mod:`qforge.sim.bench.cocotb_board`) on a design
    built with ``link`` and return its JSON report. ``settings`` (JSON-serializable) reach
    the bench as ``QFORGE_BOARD_SETTINGS``. With ``check``, a failed test raises
    :class:`ScenarioFailed`."""
    name = name or testcase
    with _run_folder(built, name) as test_dir:
        report_path = test_dir / "report.json"
        report_path.unlink(missing_ok=True)
        tests, failed = _run_cocotb(built, BOARD_TEST_MODULE, test_dir,
                                    {"QFORGE_REPORT": str(report_path),
                                     "QFORGE_BOARD_SETTINGS": json.dumps(settings or {})},
                                    testcase)
        return _bench_report(built, test_dir, f"board test {name!r}", tests, failed, check)
