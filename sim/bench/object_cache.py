"""Compile Verilator's runtime library once per build root, not once per design.

Every Verilator build compiles the same runtime (``verilated.cpp``, ``verilated_vpi.cpp``,
``verilated_threads.cpp``, ``verilated_dpi.cpp``) with the same command: about 20 s of CPU
at ``-O1``, nine tenths of a small design's build. :func:`qforge.sim.bench.rtl.build` sets
Verilator's ``OBJCACHE`` make variable (the prefix of every compile command) to a script
that runs :func:`main`:

* a compile of a source in Verilator's include folder is looked up in the cache folder
  (``$QFORGE_OBJECT_CACHE``) by the exact command line, the source's content and the
  compiler's identity; a hit copies the object file and its ``.d`` dependency file, a
  miss compiles and stores them (one process per entry at a time: the others wait);
* every other compile (the design's own files, and cocotb's ``verilator.cpp``, which
  includes the design's header) runs as it is.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["compiler_wrapper", "main"]

#: The environment variable naming the cache folder.
CACHE_VARIABLE = "QFORGE_OBJECT_CACHE"


def compiler_wrapper(cache: Path) -> Path:
    """Write (once) and return the executable script that runs :func:`main` with this
    Python, for ``OBJCACHE``."""
    cache.mkdir(parents=True, exist_ok=True)
    script = cache / "compile"
    text = f'#!/bin/sh\nexec "{sys.executable}" -m {__name__} "$@"\n'
    if not script.exists() or script.read_text() != text:
        temporary = cache / f"compile.{os.getpid()}"
        temporary.write_text(text)
        temporary.chmod(0o755)
        os.replace(temporary, script)
    return script


def _runtime_source(command: list[str]) -> Path | None:
    """The Verilator runtime source ``command`` compiles, or None."""
    from qforge.gen.tools import verilator_bin

    include = (verilator_bin().parent / "include").resolve()
    if "-c" not in command or "-o" not in command:
        return None
    sources = [Path(argument) for argument in command if argument.endswith(".cpp")]
    if len(sources) != 1 or not sources[0].is_absolute():
        return None
    source = sources[0].resolve()
    return source if source.parent == include and source.is_file() else None


def _key(command: list[str], source: Path) -> str:
    compiler = shutil.which(command[0])
    identity = os.stat(compiler) if compiler else None
    return hashlib.sha256(json.dumps([
        command, hashlib.sha256(source.read_bytes()).hexdigest(), compiler,
        identity and [identity.st_size, identity.st_mtime_ns]]).encode()).hexdigest()[:32]


def main(command: list[str] | None = None) -> int:
    """Run compile ``command`` (default: this process's arguments), from the cache when
    it compiles a Verilator runtime source."""
    command = list(sys.argv[1:] if command is None else command)
    source = _runtime_source(command)
    cache = os.environ.get(CACHE_VARIABLE)
    if source is None or not cache:
        return subprocess.run(command).returncode
    output = Path(command[command.index("-o") + 1])
    dependencies = output.with_suffix(".d")
    entry = Path(cache) / _key(command, source)
    entry.mkdir(parents=True, exist_ok=True)
    with open(entry / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (entry / "object").exists():
            code = subprocess.run(command).returncode
            if code != 0:
                return code
            if dependencies.exists():
                shutil.copyfile(dependencies, entry / "dependencies.partial")
                os.replace(entry / "dependencies.partial", entry / "dependencies")
            shutil.copyfile(output, entry / "object.partial")
            os.replace(entry / "object.partial", entry / "object")
            return 0
    shutil.copyfile(entry / "object", output)
    if (entry / "dependencies").exists():
        shutil.copyfile(entry / "dependencies", dependencies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
