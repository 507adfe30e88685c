"""qforge gemm: one GEMM from .npy files, checked against an independent computation,
its options, and one clear line for every bad input."""

import json

import numpy as np
import pytest

from qforge.sim.model.spec import load_preset
from tests.cli import command_parser, exclusive_groups, options, run_qforge


def save(folder, name, array):
    path = folder / name
    np.save(path, array)
    return path


def operands(folder, config, m, depth, n, *, bits=None, seed=0):
    """Random A and B files whose elements fit ``bits`` (default: the operand width)."""
    rng = np.random.default_rng(seed)
    bits = bits or config.operand_width
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)
    return (save(folder, "a.npy", rng.integers(low, high, (m, depth))),
            save(folder, "b.npy", rng.integers(low, high, (depth, n))))


def test_options():
    parser = command_parser("gemm")
    table = options(parser)
    assert set(table) == {
        "--preset", "--spec", "--a", "--b", "--output", "--backend", "--json", "--skip-zeros",
        "--a-blocks", "--a-kept", "--a-selection", "--a-vrq", "--a-unsigned",
        "--b-blocks", "--b-kept", "--b-selection", "--b-vrq", "--b-unsigned",
        "--paired", "--paired-rounding",
        "--shift", "--rounding", "--relu", "--seed", "--tensor", "--vrq-exponent", "--wide"}
    assert {name for name, action in table.items() if action.required} == {
        "--a", "--b", "--output"}
    assert table["--output"].option_strings == ["-o", "--output"]
    assert table["--backend"].choices == ("golden", "rtl")
    assert table["--backend"].default == "golden"
    assert table["--rounding"].choices == ("nearest-even", "truncate", "stochastic")
    assert table["--a-selection"].choices == ("static", "dynamic")
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, True)]
    groups = {group.title: {max(action.option_strings, key=len)
                            for action in group._group_actions}
              for group in parser._action_groups}
    assert groups["output stage"] == {"--shift", "--rounding", "--relu", "--seed", "--tensor",
                                      "--vrq-exponent", "--wide"}
    assert groups["precision"] == {f"--{operand}-{what}" for operand in "ab"
                                   for what in ("blocks", "kept", "selection", "vrq",
                                                "unsigned")} | {"--paired",
                                                                "--paired-rounding"}


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_exact_mode_is_the_integer_product(capsys, tmp_path, preset):
    config = load_preset(preset)
    a, b = operands(tmp_path, config, 9, 13, 5)
    code, out, _ = run_qforge(capsys, "gemm", "--preset", preset, "--a", a, "--b", b,
                              "-o", tmp_path / "c.npy", "--json")
    assert code == 0
    result = np.load(tmp_path / "c.npy")
    assert result.dtype == np.int64
    assert np.array_equal(result, np.load(a).astype(np.int64) @ np.load(b).astype(np.int64))
    report = json.loads(out)
    assert report["shape"] == [9, 5] and report["depth"] == 13
    assert report["backend"] == "golden" and report["cycles_source"] == "model"
    assert isinstance(report["cycles"], int) and report["cycles"] > 0


def test_reduced_operands_and_uint8_files(capsys, tmp_path):
    """One block per operand of tiny (4-bit values), given as int8 and uint8 files."""
    config = load_preset("tiny")
    rng = np.random.default_rng(3)
    a = save(tmp_path, "a.npy", rng.integers(-8, 8, (4, 6)).astype(np.int8))
    b = save(tmp_path, "b.npy", rng.integers(0, 8, (6, 3)).astype(np.uint8))
    code, out, _ = run_qforge(capsys, "gemm", "--preset", "tiny", "--a", a, "--b", b,
                              "--a-blocks", "1", "--b-blocks", "1", "-o", tmp_path / "c.npy")
    assert code == 0 and "raw accumulators" in out and config.name in out
    assert np.array_equal(np.load(tmp_path / "c.npy"),
                          np.load(a).astype(np.int64) @ np.load(b).astype(np.int64))


def test_output_stage_truncate_relu_saturate(capsys, tmp_path):
    config = load_preset("default")
    a, b = operands(tmp_path, config, 6, 20, 7, seed=5)
    code, _, _ = run_qforge(capsys, "gemm", "--preset", "default", "--a", a, "--b", b,
                            "--shift", "3", "--rounding", "truncate", "--relu",
                            "-o", tmp_path / "c.npy")
    assert code == 0
    product = np.load(a).astype(np.int64) @ np.load(b).astype(np.int64)
    high = (1 << (config.output_width - 1)) - 1
    expected = np.minimum(np.maximum(product >> 3, 0), high)    # floor, ReLU, saturate
    assert np.array_equal(np.load(tmp_path / "c.npy"), expected)


@pytest.mark.parametrize("change, message", [
    ({"a": "missing.npy"}, "--a {tmp}/missing.npy: no such file"),
    ({"a": "text.txt"}, "--a {tmp}/text.txt: must be a .npy file (numpy.save)"),
    ({"a": "broken.npy"}, "--a {tmp}/broken.npy: not a readable .npy file"),
    ({"a": "float.npy"}, "--a {tmp}/float.npy: a: must hold integers, got dtype float64"),
    ({"b": "vector.npy"}, "--b {tmp}/vector.npy: b: must be a 2-D matrix, got shape (4,)"),
    ({"b": "a.npy"}, "--a {tmp}/a.npy, --b {tmp}/a.npy: inner dimensions differ: a is 3 x 4, "
                     "b is 3 x 4"),
    ({"a": "large.npy"}, "--a {tmp}/large.npy: a[0, 0] = 200: out of range for 2 blocks of "
                         "4 bits; allowed -128 .. 127"),
    ({"extra": ["--a-blocks", "1"]}, "--a {tmp}/a.npy: a[0, 0] = 100: out of range for 1 "
                                     "blocks of 4 bits; allowed -8 .. 7"),
    ({"extra": ["--a-blocks", "3"]}, "--a-blocks: a.blocks = 3: allowed range is 1 .. 2"),
    ({"extra": ["--b-kept", "3"]}, "--b-kept: b.kept = 3: allowed range is 1 .. b.blocks (2)"),
    ({"extra": ["--a-vrq"]}, "--a-vrq: a.vrq = True: this configuration has no [vrq] section"),
    ({"extra": ["--shift", "99"]}, "--shift: output.shift = 99: allowed range is 0 .. 24"),
    ({"extra": ["--seed", "-1"]}, "--seed: output.seed = -1: allowed range is 0 .. "),
    ({"extra": ["--vrq-exponent", "2"]}, "--vrq-exponent: output.vrq_exponent: this "
                                         "configuration has no [vrq] section"),
    ({"extra": ["--skip-zeros"]}, "--skip-zeros: skip_zeros: configuration 'tiny' has no "
                                  "[zero_skipping] section"),
    ({"output": "file/c.npy"}, "-o {tmp}/file/c.npy: {tmp}/file is a file, not a folder"),
    ({"extra": ["--a-unsigned"]}, "--a-unsigned: a.unsigned = True: this configuration is "
                                  "not built with arithmetic.paired = true"),
    ({"extra": ["--paired", "1/1"]}, "--paired: a.paired: this configuration is not built "
                                     "with arithmetic.paired = true"),
    ({"extra": ["--paired", "2/-1"]}, "--paired '2/-1': expected HIGH/LOW or HIGH"),
    ({"extra": ["--paired-rounding", "round"]}, "--paired-rounding: only with --paired"),
])
def test_bad_input_is_one_line_naming_the_option(capsys, tmp_path, change, message):
    save(tmp_path, "a.npy", np.full((3, 4), 100))
    save(tmp_path, "b.npy", np.ones((4, 2), dtype=np.int64))
    save(tmp_path, "float.npy", np.zeros((3, 4)))
    save(tmp_path, "vector.npy", np.zeros(4, dtype=np.int64))
    save(tmp_path, "large.npy", np.full((3, 4), 200))
    (tmp_path / "text.txt").write_text("1 2\n")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    (tmp_path / "file").write_text("")
    argv = ["gemm", "--preset", "tiny", "--a", tmp_path / change.get("a", "a.npy"),
            "--b", tmp_path / change.get("b", "b.npy"),
            "-o", tmp_path / change.get("output", "c.npy"), *change.get("extra", [])]
    code, out, err = run_qforge(capsys, *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("qforge: error: " + message.format(tmp=tmp_path)), err
    assert not (tmp_path / "c.npy").exists()


def test_paired_mode_is_the_golden_paired_gemm(capsys, tmp_path):
    """--a-unsigned --paired 3/1 --paired-rounding round on the paired preset: the
    golden model's paired GEMM (not the exact product), half the exact cycles."""
    from qforge.sim.model.numerics import OperandPrecision, Precision, gemm
    from qforge.sim.model.paired import PairedPrecision, WindowRounding
    config = load_preset("paired")
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (9, 40))
    a[rng.random(a.shape) < 0.3] = 0
    a_file = save(tmp_path, "a.npy", a)
    b_file = save(tmp_path, "b.npy", rng.integers(-128, 128, (40, 6)))
    reports = {}
    for name, extra in (("paired", ["--paired", "3/1", "--paired-rounding", "round"]),
                        ("exact", [])):
        code, out, _ = run_qforge(capsys, "gemm", "--preset", "paired", "--a", a_file, "--b",
                                  b_file, "--a-unsigned", *extra,
                                  "-o", tmp_path / f"{name}.npy", "--json")
        assert code == 0
        reports[name] = json.loads(out)
    mode = Precision(OperandPrecision(4, 4, unsigned=True, paired=PairedPrecision(
        3, 1, WindowRounding.ROUND)), OperandPrecision(4, 4))
    paired = np.load(tmp_path / "paired.npy")
    assert np.array_equal(paired, gemm(a, np.load(b_file), config, mode))
    assert not np.array_equal(paired, np.load(tmp_path / "exact.npy"))
    assert reports["paired"]["cycles"] < reports["exact"]["cycles"]


@pytest.mark.rtl
def test_rtl_backend_matches_golden_and_measures_the_model_cycles(capsys, tmp_path):
    config = load_preset("tiny")
    a, b = operands(tmp_path, config, 3, 5, 3, seed=11)
    results = {}
    for backend in ("golden", "rtl"):
        code, out, _ = run_qforge(capsys, "gemm", "--preset", "tiny", "--a", a, "--b", b,
                                  "--shift", "2", "--rounding", "stochastic", "--seed", "9",
                                  "--backend", backend, "-o", tmp_path / f"{backend}.npy",
                                  "--json")
        assert code == 0
        results[backend] = json.loads(out)
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), np.load(tmp_path / "golden.npy"))
    assert results["rtl"]["cycles_source"] == "rtl"
    assert results["rtl"]["cycles"] == results["golden"]["cycles"]


SPARQ_SPECS = {"opt2": ("gen/specs/sparq_opt2.toml", "1/1", "OPT2"),
               "opt5": ("gen/specs/sparq_opt5.toml", "4/4", "OPT5")}


def _sparq_case(tmp_path, name, rounding, backend, seed, shape=(7, 41, 5)):
    """``qforge gemm`` on a SPARQ spec against the kernel's rule written out
    (tests/sim/model/sparq_reference.py, independent of the golden model)."""
    from tests.sim.model import sparq_reference
    spec, windows, options_name = SPARQ_SPECS[name]
    rng = np.random.default_rng(seed)
    m, depth, n = shape
    a = rng.integers(0, 256, (m, depth))
    a[rng.random(a.shape) < 0.35] = 0
    b = rng.integers(-128, 128, (depth, n))
    a_file = save(tmp_path, "a.npy", a.astype(np.uint8))
    b_file = save(tmp_path, "b.npy", b.astype(np.int8))
    argv = ["gemm", "--spec", spec, "--a", a_file, "--b", b_file, "--a-unsigned",
            "--paired", windows, "--paired-rounding", rounding, "--backend", backend,
            "-o", tmp_path / "c.npy"]
    expected = sparq_reference.sparq_gemm(a.tolist(), b.tolist(),
                                          getattr(sparq_reference, options_name),
                                          rounding == "round")
    return argv, expected


@pytest.mark.parametrize("name", sorted(SPARQ_SPECS))
@pytest.mark.parametrize("rounding", ["raw", "round"])
def test_sparq_specs_are_sparqs_kernel(capsys, tmp_path, name, rounding):
    argv, expected = _sparq_case(tmp_path, name, rounding, "golden", seed=len(name) + 3)
    code, _, err = run_qforge(capsys, *argv)
    assert code == 0, err
    assert np.load(tmp_path / "c.npy").tolist() == expected


@pytest.mark.rtl
def test_sparq_opt5_on_the_rtl_is_sparqs_kernel(capsys, tmp_path):
    """K = 1 (eight one-bit blocks, P = 8) on the generated Verilog: ROUND windows."""
    argv, expected = _sparq_case(tmp_path, "opt5", "round", "rtl", seed=5, shape=(6, 19, 7))
    code, _, err = run_qforge(capsys, *argv, "--json")
    assert code == 0, err
    assert np.load(tmp_path / "c.npy").tolist() == expected
