"""Write the Verilog of the components whose HDL was restructured, for
``tests/hdl/equivalence/check.sh`` to compare an old and a new tree with Yosys.

Usage: ``python tests/hdl/equivalence/export.py OUTDIR``, run once with the new tree's
``qforge`` on the path and once with the old one's (``PYTHONPATH`` pointing at a
``qforge`` package of the old commit: see README.md). Only APIs that exist on both
sides are used.

Writes ``OUTDIR/<name>.v`` with top module ``<name>``:

* ``output_stage_<preset>``: :class:`qforge.hdl.output_stage.OutputStage` of every preset;
* ``output_stage_vrq``: the same, of ``default`` with a ``[vrq]`` section (no preset
  has one): the VRQ encoders inside;
* ``vrq_encoder``: :class:`qforge.hdl.vrq_encoder.VrqEncoder` of that configuration, on
  accumulator-wide values, and ``vrq_encoder_legal.v``: a wrapper (top
  ``vrq_encoder_legal``) that only lets exponents through that a command can carry
  (``E <= accumulator_width - 1``: the loader and the decoder reject the others), for
  ``check.sh ... vrq_encoder_legal`` with ``EXTRA=vrq_encoder_legal.v``.
"""

import sys
from pathlib import Path

from amaranth.back import verilog

from qforge.hdl.output_stage import OutputStage
from qforge.hdl.vrq_encoder import VrqEncoder

try:
    from qforge.sim.model.spec import from_dict, load_preset
except ImportError:                                   # before sim/model existed
    from qforge.gen.spec import from_dict, load_preset

PRESETS = ("tiny", "default", "large", "sparse", "ulx3s")
VRQ = {"code_width": 4, "range_stride": 2, "ranges": 8}


def vrq_config():
    """``default`` with a ``[vrq]`` section."""
    spec = load_preset("default").to_dict()
    spec["vrq"] = dict(VRQ)
    return from_dict(spec)


def main(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    designs = {f"output_stage_{name}": OutputStage(load_preset(name)) for name in PRESETS}
    config = vrq_config()
    designs["output_stage_vrq"] = OutputStage(config)
    designs["vrq_encoder"] = VrqEncoder(config, config.accumulator_width)
    width = config.accumulator_width
    encoder = designs["vrq_encoder"]
    exponent_width = len(encoder.exponent)
    (out / "vrq_encoder_legal.v").write_text(f"""\
// vrq_encoder with the exponents a command can carry (E <= accumulator_width - 1).
module vrq_encoder_legal(value, exponent, rounding, random, word);
  input [{width - 1}:0] value;
  input [{exponent_width - 1}:0] exponent;
  input [1:0] rounding;
  input [31:0] random;
  output [{len(encoder.word) - 1}:0] word;
  wire [{exponent_width - 1}:0] legal = exponent > {width - 1} ? {width - 1} : exponent;
  vrq_encoder encoder(.value(value), .exponent(legal), .rounding(rounding),
                      .random(random), .word(word));
endmodule
""")
    for name, design in designs.items():
        text = verilog.convert(design, name=name, emit_src=False)
        (out / f"{name}.v").write_text(text)
        print(name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
