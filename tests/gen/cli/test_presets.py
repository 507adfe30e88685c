"""qforge presets: the list, and one preset as TOML."""

from qforge.sim.model.spec import preset_names
from tests.cli import command_parser, options, run_qforge


def test_options():
    table = options(command_parser("presets"))
    assert set(table) == {"--show"} and table["--show"].metavar == "NAME"


def test_presets_show_round_trips(capsys):
    code, out, _ = run_qforge(capsys, "presets", "--show", "default")
    assert code == 0 and "[arithmetic]" in out and "block_multipliers = 4" in out


def test_presets_lists_every_preset(capsys):
    code, out, _ = run_qforge(capsys, "presets")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list(preset_names())
