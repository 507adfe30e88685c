"""qforge demo: options and the errors found before anything is built."""

import pytest

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("demo")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--per-mode", "--seed", "--simulator",
                          "--no-large", "--output", "--programs"}
    assert (table["--per-mode"].default, table["--seed"].default,
            table["--programs"].default) == (2, 1, 10)
    assert table["--simulator"].choices == ["verilator", "icarus"]
    assert table["--simulator"].default == "verilator"
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, False)]


@pytest.mark.parametrize("option, value, allowed", [
    ("--programs", "-1", "0 .. 100000"), ("--per-mode", "-1", "1 .. 1000"),
    ("--per-mode", "0", "1 .. 1000"), ("--seed", "-1", "0 .. 4294967295")])
def test_bad_counts_are_one_line(capsys, option, value, allowed):
    code, _, err = run_qforge(capsys, "demo", "--preset", "tiny", option, value)
    assert code == 2 and err.endswith(
        f"\nqforge demo: error: argument {option}: {value}: allowed range is {allowed}\n")


def test_output_below_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = run_qforge(capsys, "demo", "--preset", "tiny", "--output",
                              tmp_path / "file" / "report")
    assert code == 2 and err.startswith("qforge: error: --output ")
    assert err.endswith("is a file, not a folder\n")


@pytest.mark.parametrize("keywords, message", [
    ({"per_mode": 0}, "per_mode = 0: must be a whole number >= 1"),
    ({"programs": -1}, "programs = -1: must be a whole number >= 0"),
    ({"seed": 1.5}, "seed = 1.5: must be a whole number >= 0")])
def test_run_demo_checks_its_counts_before_building(monkeypatch, keywords, message):
    from qforge.sim.apps import demo
    from qforge.sim.model.errors import InputError
    from qforge.sim.model.spec import load_preset

    def build(*_arguments, **_keywords):
        raise AssertionError("built before the counts were checked")

    monkeypatch.setattr(demo, "build", build)
    with pytest.raises(InputError) as error:
        demo.run_demo(load_preset("tiny"), **keywords)
    assert str(error.value) == message
