"""The shared Verilator runtime objects (qforge.sim.bench.object_cache), with a stand-in
compiler: no Verilator needed."""

import os
import sys

import pytest

from qforge.sim.bench import object_cache


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A stand-in Verilator include folder with one runtime source, a compiler that
    counts its runs, and the cache folder in the environment."""
    include = tmp_path / "verilator" / "include"
    include.mkdir(parents=True)
    (include / "verilated.cpp").write_text("int runtime;\n")
    monkeypatch.setattr("qforge.gen.tools.verilator_bin", lambda: tmp_path / "verilator" / "bin")
    compiler = tmp_path / "compiler"
    runs = tmp_path / "runs.txt"
    compiler.write_text(f"#!{sys.executable}\nimport sys\n"
                        f"open({str(runs)!r}, 'a').write('x')\n"
                        "out = sys.argv[sys.argv.index('-o') + 1]\n"
                        "open(out, 'w').write('object of ' + sys.argv[-1])\n"
                        "open(out[:-2] + '.d', 'w').write(out + ': ' + sys.argv[-1])\n")
    compiler.chmod(0o755)
    monkeypatch.setenv(object_cache.CACHE_VARIABLE, str(tmp_path / "cache"))
    return include, compiler, runs


def _compile(folder, compiler, source):
    folder.mkdir(exist_ok=True)
    before = os.getcwd()
    os.chdir(folder)
    try:
        return object_cache.main([str(compiler), "-O1", "-c", "-o", "verilated.o", str(source)])
    finally:
        os.chdir(before)


def test_a_runtime_source_is_compiled_once(runtime, tmp_path):
    include, compiler, runs = runtime
    for design in ("one", "two"):
        assert _compile(tmp_path / design, compiler, include / "verilated.cpp") == 0
        assert (tmp_path / design / "verilated.o").read_text() == \
            f"object of {include / 'verilated.cpp'}"
        assert (tmp_path / design / "verilated.d").exists()
    assert runs.read_text() == "x"


def test_a_changed_source_is_compiled_again(runtime, tmp_path):
    include, compiler, runs = runtime
    _compile(tmp_path / "one", compiler, include / "verilated.cpp")
    (include / "verilated.cpp").write_text("int runtime2;\n")
    _compile(tmp_path / "two", compiler, include / "verilated.cpp")
    assert runs.read_text() == "xx"


def test_design_files_are_always_compiled(runtime, tmp_path):
    _, compiler, runs = runtime
    design = tmp_path / "design.cpp"
    design.write_text("int design;\n")
    for folder in ("one", "two"):
        _compile(tmp_path / folder, compiler, design)
    assert runs.read_text() == "xx"


def test_the_wrapper_script_runs_this_module(tmp_path):
    script = object_cache.compiler_wrapper(tmp_path / "cache")
    assert os.access(script, os.X_OK)
    assert f'"{sys.executable}" -m qforge.sim.bench.object_cache "$@"' in script.read_text()
