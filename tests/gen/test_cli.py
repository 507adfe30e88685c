"""The qforge command line: help, generate, presets, lint and clear errors."""

import json

import pytest

from qforge.gen.cli import main
from qforge.sim.model.spec import load_preset


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("generate", "presets", "lint", "demo", "bench", "train", "repro", "area",
                    "asm", "run", "fuzz"):
        assert command in out


@pytest.mark.parametrize("command", ["generate", "presets", "lint", "demo", "bench", "train", "area",
                                     "repro", "asm", "run", "fuzz"])
def test_every_command_explains_itself(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 5


def test_generate_help_lists_every_spec_key(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    for key in ("array.rows", "arithmetic.block_width", "buffers.depth", "vrq.ranges",
                "zero_skipping.pe_buffer_depth"):
        assert key in out


def test_generate_preset_writes_verilog_and_manifest(capsys, tmp_path):
    code, out, _ = run(capsys, "generate", "--preset", "tiny", "-o", str(tmp_path), "--lint")
    assert code == 0
    assert (tmp_path / "qforge_top.v").read_text().count("module qforge_top(") == 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["name"] == "tiny"
    assert "clean" in out


def test_generate_spec_file(capsys, tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(load_preset("tiny").to_toml().replace('name = "tiny"', 'name = "mine"')
                    .replace("rows = 2", "rows = 3"))
    code, _, _ = run(capsys, "generate", "--spec", str(spec), "-o", str(tmp_path / "out"))
    assert code == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["array"]["rows"] == 3


@pytest.mark.parametrize("change, field", [
    ("block_width = 4", "block_width = 3"),
    ("rows = 2", "rows = 0"),
    ("rows = 2", "rows = \"2\""),
    ("rows = 2", "rows = 2\nbanana = 1"),
])
def test_bad_spec_is_one_clear_line(capsys, tmp_path, change, field):
    spec = tmp_path / "bad.toml"
    spec.write_text(load_preset("tiny").to_toml().replace(change, field))
    code, out, err = run(capsys, "generate", "--spec", str(spec), "-o", str(tmp_path / "o"))
    assert code == 2
    assert err.startswith("qforge: error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and str(spec) in err


def test_unknown_preset(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--preset", "huge", "-o", str(tmp_path))
    assert code == 2 and "allowed: default, large, sparse, tiny" in err


def test_presets_show_round_trips(capsys):
    code, out, _ = run(capsys, "presets", "--show", "default")
    assert code == 0 and "[arithmetic]" in out and "block_multipliers = 4" in out
