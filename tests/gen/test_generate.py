"""Generator tests: the Verilog, the manifest and lint, for every preset."""

import json
import re

import pytest

from qforge.gen.generate import TOP_NAME, fingerprint, generate, is_generated, lint
from qforge.sim.model.spec import load_preset, preset_names
from qforge.hdl.layouts import a_beat_layout, command_layout, result_layout


#: Parallel workers (`make test`: pytest-xdist, --dist loadgroup) run this module on one
#: worker, so each preset is elaborated once (sparse takes half a minute), not once per
#: worker that runs one of its tests.
pytestmark = [pytest.mark.xdist_group("generated_presets"), pytest.mark.verilog]

#: The 16x16 `large` preset takes over a minute to elaborate and lint: with the slow
#: sweeps (`make test-all`; `make lint` lints it too).
PRESETS = [pytest.param(name, marks=pytest.mark.slow) if name == "large" else name
           for name in preset_names()]


#: Designs generated in this test process, by (preset, programmable). A parametrized
#: fixture is set up again each time the order of the tests switches presets; sparse
#: takes half a minute to elaborate, so each design is generated once.
_GENERATED = {}


def _generated(name, tmp_path_factory, *, programmable=False):
    key = (name, programmable)
    if key not in _GENERATED:
        folder = tmp_path_factory.mktemp(name + ("-core" if programmable else ""))
        _GENERATED[key] = generate(load_preset(name), folder, programmable=programmable)
    return _GENERATED[key]


@pytest.fixture(scope="module", params=PRESETS)
def design(request, tmp_path_factory):
    return _generated(request.param, tmp_path_factory)


def _verilog_ports(text):
    """Port name -> (direction, width) from the top module's declarations."""
    top = text[text.index(f"module {TOP_NAME}("):]
    top = top[:top.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+)?(?:\[(\d+):0\]\s+)?"
                                           r"(\w+)\s*;", top, re.MULTILINE):
        ports[name] = ("in" if direction == "input" else "out", int(msb) + 1 if msb else 1)
    return ports


def test_manifest_describes_the_verilog_ports(design):
    manifest = json.loads(design.manifest.read_text())
    ports = _verilog_ports(design.verilog.read_text())
    described = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert described == ports


def test_manifest_holds_config_derived_widths_and_layouts(design):
    manifest = json.loads(design.manifest.read_text())
    config = design.config
    assert manifest["config"] == config.to_dict()
    assert manifest["derived"]["accumulator_width"] == config.accumulator_width
    assert manifest["generator"]["name"] == "qforge"
    assert manifest["generator"]["amaranth"].startswith("0.5")
    streams = manifest["streams"]
    assert set(streams) == {"cmd", "a_in", "b_in", "result"}
    assert streams["cmd"]["payload_width"] == command_layout(config).size
    assert streams["a_in"]["payload_width"] == a_beat_layout(config).size
    assert streams["result"]["payload_width"] == result_layout(config).size
    # Fields tile the payload exactly: no gaps, no overlaps.
    for stream in streams.values():
        covered = sorted((f["offset"], f["width"]) for f in stream["fields"])
        position = 0
        for offset, width in covered:
            assert offset == position
            position += width
        assert position == stream["payload_width"]
    last = [f for f in streams["result"]["fields"] if f["path"] == "last"]
    assert last == [{"path": "last", "offset": config.cols * config.accumulator_width,
                     "width": 1, "signed": False}]


@pytest.mark.rtl      # runs Verilator (lint only): not in `make test-fast`
def test_generated_verilog_is_lint_clean(design):
    assert lint(design.verilog) == []


@pytest.mark.rtl
def test_lint_reports_a_real_warning(tmp_path):
    """The lint check can fail: an output that nothing drives (UNDRIVEN, not waived)."""
    path = tmp_path / "bad.v"
    path.write_text("module bad(input wire a, output wire y, output wire z);\n"
                    "  assign y = a;\nendmodule\n")
    messages = lint(path)
    assert any("UNDRIVEN" in message for message in messages), messages


def test_only_qforge_s_unchanged_output_counts_as_generated(tmp_path):
    """The lint waivers are for qforge's own Verilog: a file is qforge's when the manifest
    beside it names it with its fingerprint (an edited copy, or one without a manifest,
    is the user's)."""
    text = "module qforge_top(input wire clk);\nendmodule\n"
    (tmp_path / "qforge_top.v").write_text(text)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"verilog": "qforge_top.v", "verilog_sha256_16": fingerprint(text)}))
    assert is_generated(tmp_path / "qforge_top.v")
    (tmp_path / "qforge_top.v").write_text(text + "// edited\n")
    assert not is_generated(tmp_path / "qforge_top.v")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "qforge_top.v").write_text(text)
    assert not is_generated(tmp_path / "other" / "qforge_top.v")
    (tmp_path / "other" / "manifest.json").write_text("[not, json")
    assert not is_generated(tmp_path / "other" / "qforge_top.v")


@pytest.mark.rtl
def test_lint_without_waivers_reports_what_they_hide(tmp_path):
    """User Verilog is linted without qforge's waivers: a width truncation is reported."""
    path = tmp_path / "trunc.v"
    path.write_text("module trunc(input wire [7:0] a, output wire [3:0] y);\n"
                    "  assign y = a[3:0] + a;\nendmodule\n")
    assert lint(path) == []
    assert any("WIDTHTRUNC" in message for message in lint(path, waivers=False))


def test_generation_is_deterministic(tmp_path):
    config = load_preset("tiny")
    first = generate(config, tmp_path / "one")
    second = generate(config, tmp_path / "two")
    assert first.verilog.read_text() == second.verilog.read_text()
    assert first.fingerprint == second.fingerprint
    assert str(tmp_path) not in first.verilog.read_text()  # no absolute source paths


@pytest.fixture(scope="module", params=[
    "tiny",
    # The zero-skipping top takes about 45 s to elaborate and lint: with the sweeps.
    pytest.param("sparse", marks=pytest.mark.slow)])
def core_design(request, tmp_path_factory):
    return _generated(request.param, tmp_path_factory, programmable=True)


@pytest.mark.rtl
def test_programmable_top_is_lint_clean(core_design):
    """qforge_core (decoder, accelerator, addend stage) is lint clean."""
    assert lint(core_design.verilog) == []


def test_programmable_top_is_described(core_design):
    """The manifest of qforge_core lists its streams with the instruction word's layout."""
    from qforge.gen.generate import CORE_TOP_NAME
    from qforge.sim.model.isa import INSTRUCTION_WIDTH

    assert core_design.verilog.name == f"{CORE_TOP_NAME}.v"
    manifest = json.loads(core_design.manifest.read_text())
    assert manifest["top"] == CORE_TOP_NAME
    assert set(manifest["streams"]) == {"instruction", "a_in", "b_in", "addend", "result"}
    assert manifest["streams"]["instruction"]["payload_width"] == INSTRUCTION_WIDTH
    text = core_design.verilog.read_text()
    assert f"module {CORE_TOP_NAME}(" in text
