"""Bad input through the public API (:mod:`qforge.api`): every mistake in a call to the
runtime, the configuration loader or the trainer is one :class:`QforgeError` with the
exact message naming the argument, the value and what is allowed; nothing is converted,
truncated or cut without a word."""

import dataclasses
import re

import numpy as np
import pytest

from qforge import api
from qforge.sim.model.errors import InputError


@pytest.fixture
def runtime():
    with api.Runtime(api.load_config("tiny"), "golden", memory_size=8) as runtime:
        yield runtime


def raises(error, message):
    """``pytest.raises`` matching the whole message exactly."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


@pytest.mark.parametrize("values, kind", [
    ([1.7], "floats"), (np.array([2.0, 3.0]), "floats"), (["3"], "strings"),
    ([True, False], "booleans"), ([1, None], "objects"), (1 + 2j, "complex numbers")])
def test_write_refuses_values_that_are_not_integers(runtime, values, kind):
    with raises(InputError, f"Runtime.write: values = {values!r}: must be integers (int or "
                            f"a numpy integer array), not {kind}"):
        runtime.write(0, values)
    assert not runtime.memory.any()                     # nothing was written


def test_write_refuses_values_beyond_int64(runtime):
    with raises(InputError, "Runtime.write: values = [9223372036854775808]: out of range "
                            "for the int64 memory (-9223372036854775808 .. "
                            "9223372036854775807)"):
        runtime.write(0, [2 ** 63])
    with raises(InputError, "Runtime.write: values = [[1, 2], [3]]: must be a rectangular "
                            "array of integers"):
        runtime.write(0, [[1, 2], [3]])


def test_write_accepts_every_integer_kind(runtime):
    runtime.write(0, np.array([[1, -2], [3, 4]], dtype=np.int8))
    runtime.write(4, [np.uint16(5), 2 ** 62, -(2 ** 63)])
    runtime.write(7, [])
    assert runtime.memory.tolist() == [1, -2, 3, 4, 5, 2 ** 62, -(2 ** 63), 0]


@pytest.mark.parametrize("method", ["write", "read"])
@pytest.mark.parametrize("address", [1.0, 1.5, "1", True, None])
def test_addresses_must_be_exact_integers(runtime, method, address):
    call = runtime.write if method == "write" else runtime.read
    argument = [1] if method == "write" else (1,)
    with raises(InputError, f"Runtime.{method}: address = {address!r}: must be an integer "
                            f">= 0 (int or numpy integer), not {type(address).__name__}"):
        call(address, argument)
    with raises(InputError, f"Runtime.{method}: address = -1: must be an integer >= 0"):
        call(-1, argument)


@pytest.mark.parametrize("shape", [(-1, 2), (2.0, 2), (2, True), "22", None, -3])
def test_read_refuses_a_bad_shape(runtime, shape):
    with raises(InputError, f"Runtime.read: shape = {shape!r}: each dimension must be an "
                            f"integer >= 0"):
        runtime.read(0, shape)


def test_reads_and_writes_past_the_end_name_the_memory(runtime):
    with raises(InputError, "Runtime.read: 9 elements at address = 0: the memory has 8 "
                            "elements (addresses 0 .. 7)"):
        runtime.read(0, (3, 3))
    with raises(InputError, "Runtime.write: 2 elements at address = 7: the memory has 8 "
                            "elements (addresses 0 .. 7; Runtime.resize grows it)"):
        runtime.write(7, [1, 2])
    assert runtime.read(np.int64(2), np.array([2, 3])).shape == (2, 3)
    assert runtime.read(8, (0,)).shape == (0,)


def test_constructor_arguments_are_checked():
    config = api.load_config("tiny")
    with raises(InputError, "Runtime: backend = 'board' needs board= a connected Board "
                            "(qforge.api.open_board(config, port))"):
        api.Runtime(config, "board")
    with raises(InputError, "Runtime: backend = 'fpga': allowed: golden, rtl, board"):
        api.Runtime(config, "fpga")
    with raises(InputError, "Runtime: port = '/dev/ttyUSB0': not an option of backend "
                            "'board'; allowed: board"):
        api.Runtime(config, "board", port="/dev/ttyUSB0")
    with raises(InputError, "Runtime: stall = 0.5: not an option of backend 'golden'; "
                            "allowed: none"):
        api.Runtime(config, "golden", stall=0.5)
    with raises(InputError, "Runtime: config = 'tiny': must be a Config "
                            "(qforge.api.load_config), not str"):
        api.Runtime("tiny")
    with raises(InputError, "Runtime: memory_size = 2.5: must be an integer >= 0 (int or "
                            "numpy integer), not float"):
        api.Runtime(config, memory_size=2.5)
    with raises(InputError, "Runtime.resize: memory_size = -4: must be an integer >= 0"):
        api.Runtime(config).resize(-4)


@pytest.mark.parametrize("program, message", [
    ([1.0], "Runtime.run: program word 0 = 1.0: must be an integer 0 .. 2**64 - 1"),
    ([0, -1], "Runtime.run: program word 1 = -1: must be an integer 0 .. 2**64 - 1"),
    ([2 ** 64], "Runtime.run: program word 0 = 18446744073709551616: must be an integer "
                "0 .. 2**64 - 1"),
    ("gemm 1, 1, 1", "Runtime.run: program = 'gemm 1, 1, 1': must be an assembled Program "
                     "or a sequence of instruction words (integers)"),
])
def test_run_refuses_words_that_are_not_instruction_words(runtime, program, message):
    with raises(InputError, message):
        runtime.run(program)
    assert runtime.runs == 0


def test_a_program_assembled_for_another_configuration_is_refused():
    tiny, default = api.load_config("tiny"), api.load_config("default")
    program = api.assemble("gemm 1, 1, 1\n", tiny)
    assert program.config == tiny
    with api.Runtime(default, "golden", memory_size=16) as runtime:
        with raises(InputError, "Runtime.run: the program was assembled for configuration "
                                "'tiny', the runtime runs 'default'; they differ in "
                                "array.rows, array.cols, arithmetic.block_width, "
                                "arithmetic.block_multipliers, "
                                "arithmetic.max_reduction_depth, "
                                "output_stage.lanes_per_cycle: assemble it for 'default'"):
            runtime.run(program)
        assert runtime.runs == 0
    renamed = dataclasses.replace(tiny, name="tiny_again")      # same hardware, runs
    with api.Runtime(renamed, "golden", memory_size=16) as runtime:
        assert runtime.run(program).gemms == 1


def test_api_functions_refuse_what_is_not_a_config():
    for call, where in ((lambda: api.generate("tiny", "out"), "generate"),
                        (lambda: api.gemm("tiny", [[1]], [[1]]), "gemm"),
                        (lambda: api.precision("tiny"), "precision"),
                        (lambda: api.open_board("tiny", "loopback"), "open_board")):
        with raises(InputError, f"{where}: config = 'tiny': must be a Config "
                                f"(qforge.api.load_config), not str"):
            call()
    with raises(InputError, "open_board: port = 5: must be a serial port name (such as "
                            "/dev/ttyUSB0) or \"loopback\""):
        api.open_board(api.load_config("tiny"), 5)


def test_gemm_takes_a_mode_by_name_or_a_precision_only():
    config = api.load_config("tiny")
    a = np.ones((2, 3), dtype=np.int64)
    assert np.array_equal(api.gemm(config, a, a.T, "reduced").result,
                          api.gemm(config, a, a.T, api.precision(config, "reduced")).result)
    with raises(api.OperandError, "mode = 3: must be a Precision or a mode name (exact, "
                                  "reduced, mixed, approx_static, approx_dynamic, "
                                  "approx_dynamic_1)"):
        api.gemm(config, a, a.T, 3)
    with raises(api.ConfigError, "mode = 'fastest': allowed: exact, reduced, mixed, "
                                 "approx_static, approx_dynamic, approx_dynamic_1"):
        api.gemm(config, a, a.T, "fastest")


@pytest.mark.parametrize("arguments, message", [
    ({"epochs": 0}, "train: epochs = 0: must be an integer >= 1 (None: the config's "
                    "epochs)"),
    ({"epochs": 1.5}, "train: epochs = 1.5: must be an integer >= 1 (None: the config's "
                      "epochs)"),
    ({"jobs": 0}, "train: jobs = 0: must be an integer >= 1 (worker processes)"),
    ({"backend": "board"}, "train: backend = 'board': allowed: golden, rtl (None: the "
                           "bit-exact emulator)"),
])
def test_train_arguments_are_checked_before_training(arguments, message):
    with raises(InputError, message):
        api.train(**arguments)


@pytest.mark.parametrize("options, message", [
    ({"simulator": "vcs"}, "Runtime: simulator = 'vcs': allowed: verilator, icarus"),
    ({"stall": 1.0}, "Runtime: stall = 1.0: must be a probability, 0 <= stall < 1 (1 would "
                     "stall every port for ever)"),
    ({"stall": "0.1"}, "Runtime: stall = '0.1': must be a probability, 0 <= stall < 1 (1 "
                       "would stall every port for ever)"),
    ({"seed": -1}, "Runtime: seed = -1: must be an integer >= 0"),
    ({"timeout_cycles": 0}, "Runtime: timeout_cycles = 0: must be an integer >= 1"),
])
def test_rtl_options_are_checked_before_the_build(monkeypatch, options, message):
    import qforge.sim.bench.rtl as rtl

    def no_build(*arguments, **keywords):
        raise AssertionError("built before checking the options")

    monkeypatch.setattr(rtl, "build", no_build)
    with raises(InputError, message):
        api.Runtime(api.load_config("tiny"), "rtl", **options)
