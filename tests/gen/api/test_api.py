"""qforge.api: the public functions, each checked against an independent result or the
internals it wraps."""

import numpy as np
import pytest

import qforge.api as api
from qforge.sim.model.spec import load_preset


def test_load_config_from_a_preset_or_a_spec(tmp_path):
    assert api.load_config("tiny") == load_preset("tiny")
    spec = tmp_path / "mine.toml"
    spec.write_text(load_preset("tiny").to_toml().replace('name = "tiny"', 'name = "mine"'))
    assert api.load_config(spec=spec).name == "mine"
    assert api.load_config(spec=str(spec)).rows == 2
    with pytest.raises(api.ConfigError, match="not both or neither"):
        api.load_config("tiny", spec=spec)
    assert "tiny" in api.preset_names()


@pytest.mark.verilog
def test_generate_writes_the_verilog(tmp_path):
    design = api.generate(api.load_config("tiny"), tmp_path / "out")
    assert design.verilog == tmp_path / "out" / "qforge_top.v"
    assert "module qforge_top(" in design.verilog.read_text()


@pytest.mark.parametrize("preset", ["tiny", "default", "sparse"])
def test_gemm_golden_is_the_integer_product(preset):
    config = api.load_config(preset)
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (11, 19))
    b = rng.integers(-128, 128, (19, 6))
    run = api.gemm(config, a, b)
    assert np.array_equal(run.result, a @ b) and run.result.dtype == np.int64
    assert (run.backend, run.cycles_source) == ("golden", "model") and run.cycles > 0


def test_gemm_skipping_zeros_is_faster_and_equal():
    config = api.load_config("sparse")
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (16, 32)) * (rng.random((16, 32)) < 0.3)
    b = rng.integers(-128, 128, (32, 8))
    dense, skipping = api.gemm(config, a, b), api.gemm(config, a, b, skip_zeros=True)
    assert np.array_equal(skipping.result, a @ b) and skipping.cycles < dense.cycles


def test_gemm_on_the_loopback_board_matches_golden():
    config = api.load_config("tiny")
    rng = np.random.default_rng(6)
    a, b = rng.integers(-128, 128, (3, 5)), rng.integers(-128, 128, (5, 4))
    output = api.OutputParameters(shift=3, rounding=api.Rounding.STOCHASTIC, seed=5)
    with api.open_board(config, "loopback") as board:
        board.connect()
        run = api.gemm(config, a, b, output=output, backend="board", board=board)
    assert run.backend == "board"
    assert np.array_equal(run.result, api.gemm(config, a, b, output=output).result)


def test_gemm_errors_are_user_errors():
    config = api.load_config("tiny")
    a = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(api.OperandError, match=r"^a\.kept = 3: allowed range is 1 \.\. "):
        api.gemm(config, a, a.T, api.Precision(api.OperandPrecision(2, 3),
                                               api.OperandPrecision(2, 2)))
    with pytest.raises(api.OperandError, match=r"^output\.shift = 99: "):
        api.gemm(config, a, a.T, output=api.OutputParameters(shift=99))
    with pytest.raises(api.BackendError, match="allowed: golden, rtl, board"):
        api.gemm(config, a, a.T, backend="fpga")
    with pytest.raises(api.BackendError, match="needs board="):
        api.gemm(config, a, a.T, backend="board")
    with pytest.raises(api.ConfigError, match="allowed: exact, reduced"):
        api.precision(config, "fastest")
    for error in (api.OperandError, api.BackendError, api.ConfigError, api.AsmError):
        assert issubclass(error, api.QforgeError)


def test_runtime_runs_an_assembled_program():
    config = api.load_config("tiny")
    program = api.assemble(".data\nx: .word 1, 2, 3, 4\ny: .zero 4\n.text\n"
                           "load a, x, stride=2\nload b, x, stride=2\nstore y, stride=2\n"
                           "gemm 2, 2, 2\n", config)
    with api.Runtime(config, "golden", memory_size=program.memory_size) as runtime:
        runtime.memory[:] = program.memory()
        report = runtime.run(program)
        assert runtime.read(program.regions["y"][0], (2, 2)).tolist() == [[7, 10], [15, 22]]
    assert (report.error, report.gemms) == (False, 1)


def test_train_emulated(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\nhidden = 8\nepochs = 1\nbatch_size = 32\n'
                      'learning_rate = 0.3\nseed = 2\ntrain_samples = 64\n\n'
                      '[[hardware]]\nname = "float32"\nformat = "float32"\n\n'
                      '[[hardware]]\nname = "int8"\nformat = "int"\nbits = 8\n')
    report = api.train(config)
    assert report["epochs"] == 1 and [run["name"] for run in report["runs"]] == [
        "float32", "int8"]
