"""qforge generate: Verilog and manifest from a preset or spec, and its errors."""

import json
from pathlib import Path

import pytest

from qforge.gen.cli.common import SPEC_EPILOG
from qforge.sim.model.spec import PE_DESIGNS, load_preset
from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("generate")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--output", "--lint", "--programmable"}
    assert table["--output"].option_strings == ["-o", "--output"]
    assert table["--output"].required and table["--output"].metavar == "DIR"
    assert table["--preset"].default is None
    assert exclusive_groups(parser) == [({"--preset", "--spec"}, True)]


def test_help_lists_every_spec_key(capsys):
    epilog = command_parser("generate").epilog
    assert epilog == SPEC_EPILOG
    code, help_text, _ = run_qforge(capsys, "generate", "--help")
    assert code == 0
    for key in ("array.rows", "arithmetic.block_width", "arithmetic.pe", "buffers.depth",
                "vrq.ranges", "zero_skipping.pe_buffer_depth",
                "output_stage.lanes_per_cycle"):
        assert key in epilog and key in help_text
    # Every PE design, as the spec spells it.
    for name in PE_DESIGNS:
        assert f'"{name}": ' in epilog and f'"{name}": ' in help_text


@pytest.mark.rtl      # --lint runs Verilator
@pytest.mark.verilog
def test_generate_preset_writes_verilog_and_manifest(capsys, tmp_path):
    code, out, _ = run_qforge(capsys, "generate", "--preset", "tiny", "-o", tmp_path, "--lint")
    assert code == 0
    assert (tmp_path / "qforge_top.v").read_text().count("module qforge_top(") == 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["name"] == "tiny"
    assert "clean" in out


@pytest.mark.verilog
def test_generate_spec_file(capsys, tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(load_preset("tiny").to_toml().replace('name = "tiny"', 'name = "mine"')
                    .replace("rows = 2", "rows = 3"))
    code, _, _ = run_qforge(capsys, "generate", "--spec", spec, "-o", tmp_path / "out")
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
    code, out, err = run_qforge(capsys, "generate", "--spec", spec, "-o", tmp_path / "o")
    assert code == 2
    assert err.startswith("qforge: error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and str(spec) in err


def test_unknown_preset(capsys, tmp_path):
    code, _, err = run_qforge(capsys, "generate", "--preset", "huge", "-o", tmp_path)
    # Every preset file of gen/presets, by name, in order.
    presets = sorted(path.stem for path in (Path(__file__).parents[3] / "gen" / "presets")
                     .glob("*.toml"))
    assert {"default", "fxp8", "large", "sparse", "tiny"} <= set(presets)
    assert code == 2 and f"unknown preset; allowed: {', '.join(presets)}\n" in err


def test_output_below_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = run_qforge(capsys, "generate", "--preset", "tiny", "-o",
                              tmp_path / "file" / "out")
    assert code == 2
    assert err == f"qforge: error: -o {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a " \
                  "file, not a folder\n"


def test_a_long_generation_is_announced_with_its_estimate(capsys, tmp_path, monkeypatch):
    """A spec inside the size bound may still take minutes to elaborate, during which
    Amaranth prints nothing: qforge says so first, with the estimate, and only then."""
    import qforge.gen.generate as generate_module
    from qforge.sim.model.spec import from_dict

    spec = load_preset("tiny").to_dict()
    spec["name"], spec["array"]["rows"], spec["array"]["cols"] = "wide", 64, 64
    (tmp_path / "wide.toml").write_text(from_dict(spec).to_toml())
    monkeypatch.setattr(generate_module, "generate", lambda *args, **kwargs: pytest.fail(
        "stopped before the minutes of elaboration"))
    with pytest.raises(pytest.fail.Exception):
        run_qforge(capsys, "generate", "--spec", tmp_path / "wide.toml", "-o", tmp_path / "v")
    # design size 64 x 64 PEs x (P = 1 lane of 17 bits (2 x 8 + 0 + 1) + a 25-bit
    # accumulator) = 4096 x 42 = 172,032; 1.5 s + 1.2 ms x 172,032 = 207.9 s, 3.47 minutes.
    assert capsys.readouterr().err == (
        "qforge: generating 'wide' (64x64 array, design size 172,032): about 3 minute(s) "
        "of CPU (208 s), nothing is printed meanwhile\n")
    monkeypatch.setattr(generate_module, "generate", lambda *args, **kwargs: pytest.fail(
        "stopped"))
    with pytest.raises(pytest.fail.Exception):
        run_qforge(capsys, "generate", "--preset", "tiny", "-o", tmp_path / "t")
    assert capsys.readouterr().err == ""            # a few seconds: nothing to announce
