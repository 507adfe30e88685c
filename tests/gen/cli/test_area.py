"""qforge area: options and the errors found before synthesis; --composed."""

import json

import pytest

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("area")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--with-skipping", "--family", "--selectors",
                          "--hierarchy", "--keep", "--json", "--jobs", "--no-cache", "--pe",
                          "--composed", "--check"}
    # --preset and --spec may repeat and mix: one list, in the order given.
    assert table["--preset"].dest == table["--spec"].dest == "designs"
    assert table["--family"].choices == ["ecp5", "ice40"]
    # No default in the parser: without --pe an absent --family is ecp5, with --pe it is
    # refused (--pe measures both families).
    assert table["--family"].default is None and table["--jobs"].default == 1
    assert exclusive_groups(parser) == []
    arguments = parser.parse_args(["--spec", "a.toml", "--preset", "tiny"])
    assert [(kind, str(value)) for kind, value in arguments.designs] == [
        ("spec", "a.toml"), ("preset", "tiny")]


def test_errors_are_one_line(capsys):
    code, out, err = run_qforge(capsys, "area", "--jobs", "0")
    assert (code, out) == (2, "")
    assert err.endswith("\nqforge area: error: argument --jobs: 0: allowed range is 1 .. 64\n")
    code, out, err = run_qforge(capsys, "area", "--keep", " ")
    assert (code, out) == (2, "")
    assert err.endswith("\nqforge area: error: argument --keep: ' ': an empty pattern matches no "
                        "module\n")
    assert run_qforge(capsys, "area", "--preset", "tiny", "--preset", "tiny") == (
        2, "", "qforge: error: --preset/--spec: configuration 'tiny' given twice\n")


def test_composed_refuses_options_it_does_not_have(capsys):
    assert run_qforge(capsys, "area", "--check") == (
        2, "", "qforge: error: --check: only with --composed\n")
    for option in ("--pe", "--hierarchy", "--selectors", "--with-skipping"):
        outcome = run_qforge(capsys, "area", "--composed", option)
        assert outcome == (2, "", f"qforge: error: {option}: not with --composed\n")


@pytest.mark.synth
def test_composed_prints_the_dse_rows_area(capsys):
    """The numbers a sweep row holds (qforge.fpga.design_area.composed_area), per part."""
    from qforge.fpga.design_area import composed_area
    from qforge.sim.model.spec import load_preset

    outcome = run_qforge(capsys, "area", "--composed", "--preset", "tiny", "--json")
    assert outcome.status == 0, outcome.err
    entry = json.loads(outcome.out)["configs"][0]
    area = composed_area(load_preset("tiny"))
    assert entry["composed"]["transistors"] == area.transistors
    assert entry["composed"]["cells"]["ecp5"] == area.cells("ecp5")
    assert [part["name"] for part in entry["composed"]["parts"]][-1] == "control"
    outcome = run_qforge(capsys, "area", "--composed", "--preset", "tiny")
    assert outcome.out.startswith(f"tiny: {area.transistors:,} transistors")
