"""The configurations the tests share, by name: one registry for every test folder.

Presets and small custom arrays for the HDL component tests (:func:`custom`,
:data:`COMPONENT_CONFIGS`, :data:`SKIPPING_CONFIGS`, :func:`vrq_skipping`), and the
designs the cocotb integration tests build (:data:`RECT`, :data:`SKIPPING_DESIGNS`,
:func:`design_config`, used by tests/sim/conftest.py's ``rtl`` fixture).
"""

from qforge.sim.model.spec import Config, from_dict, load_preset


def custom(name: str, *, rows: int = 2, cols: int = 2, operand_width: int = 8,
           block_width: int = 2, block_multipliers: int = 2,
           max_reduction_depth: int | None = None, buffer_depth: int = 16,
           output_width: int = 8, pe: str | None = None) -> Config:
    """A small custom configuration built through :func:`from_dict` (validated).

    ``max_reduction_depth`` defaults to the deepest dot product the buffers hold;
    ``pe`` sets ``arithmetic.pe`` (left out: the default PE).
    """
    if max_reduction_depth is None:
        max_reduction_depth = buffer_depth * block_multipliers
    arithmetic = {"operand_width": operand_width, "block_width": block_width,
                  "block_multipliers": block_multipliers,
                  "max_reduction_depth": max_reduction_depth,
                  "output_width": min(output_width, operand_width)}
    if pe is not None:
        arithmetic["pe"] = pe
    return from_dict({
        "name": name,
        "array": {"rows": rows, "cols": cols},
        "arithmetic": arithmetic,
        "buffers": {"depth": buffer_depth},
    })


def default() -> Config:
    return load_preset("default")      # K=2, B=4, P=4


def tiny() -> Config:
    return load_preset("tiny")         # K=4, B=2, P=1


def two_lane_tiny() -> Config:
    """``tiny`` as it was until stop 23, with two block multipliers per PE (P = 2) and
    buffers of 256 words: the designs that pair lanes (``arithmetic.pe = "fused"``) need
    an even P, the DSP allocation tests need more multipliers than the UP5K's 8 SB_MAC16,
    and the saved board reports in tests/fpga/data were made from it. Named ``tiny``, as
    those reports' specs are."""
    spec = load_preset("tiny").to_dict()
    spec["arithmetic"]["block_multipliers"], spec["buffers"]["depth"] = 2, 256
    return from_dict(spec, source="tests")


def fxp8() -> Config:
    return load_preset("fxp8")         # K=W=8, B=1, P=1: the 8-bit fixed-point baseline


def single_lane() -> Config:
    """P = 1: every block product takes its own cycle."""
    return custom("single_lane", operand_width=8, block_width=2, block_multipliers=1)


def three_blocks() -> Config:
    """B = 3 (not a power of two): q = 3, 6, 9 never divide P = 4."""
    return custom("three_blocks", operand_width=6, block_width=2, block_multipliers=4)


def signed_product() -> Config:
    """``arithmetic.pe = "signed_product"`` with 4-bit blocks and four lanes (the K = 4,
    P = 4 PE of docs/ARCHITECTURE.md, "A cheaper PE")."""
    return custom("signed_product", operand_width=8, block_width=4, block_multipliers=4,
                  max_reduction_depth=32, pe="signed_product")


def signed_product_k2() -> Config:
    """``arithmetic.pe = "signed_product"`` with 2-bit blocks (positions 0 .. 3, shifts
    up to 12 bits) and q = 3 that does not divide P = 4 (B = 3)."""
    return custom("signed_product_k2", operand_width=6, block_width=2,
                  block_multipliers=4, pe="signed_product")


def shared_shift() -> Config:
    """``arithmetic.pe = "shared_shift"`` with 2-bit blocks (B = 4: dynamic modes walk
    four block positions) and four lanes, a depth limit that is not a multiple of P."""
    return custom("shared_shift", operand_width=8, block_width=2, block_multipliers=4,
                  max_reduction_depth=30, pe="shared_shift")


def shared_shift_p8() -> Config:
    """``arithmetic.pe = "shared_shift"`` with the lanes of tests/fpga/data/k4p8_shared.toml
    (K = 4, P = 8) and a depth limit of 37, not a multiple of P."""
    return custom("shared_shift_p8", operand_width=8, block_width=4, block_multipliers=8,
                  max_reduction_depth=37, pe="shared_shift")


def fused() -> Config:
    """``arithmetic.pe = "fused"`` (n = 2 blocks of 4 bits, lane pairs as one multiplier)
    with four lanes and a depth limit of 30, not a multiple of the MACs per cycle."""
    return custom("fused", operand_width=8, block_width=4, block_multipliers=4,
                  max_reduction_depth=30, pe="fused")


#: The configurations the component tests sweep, by test id.
COMPONENT_CONFIGS = {
    "default": default,
    "tiny": tiny,
    "fxp8": fxp8,
    "p1": single_lane,
    "b3": three_blocks,
    "signed_k4": signed_product,
    "signed_k2": signed_product_k2,
    "shared": shared_shift,
    "shared_p8": shared_shift_p8,
    "fused": fused,
}


# ---- zero-skipping array (tests/hdl/test_compactor.py, test_skipping_scheduler.py) ----

def custom_skipping(name: str, *, pe_buffer_depth: int | None = None,
                    vrq: dict | None = None, **array) -> Config:
    """:func:`custom` built as the zero-skipping array (a ``[zero_skipping]`` section,
    ``pe_buffer_depth`` defaulting to one deepest dot product), optionally with a
    ``[vrq]`` section."""
    spec = custom(name, **array).to_dict()
    if vrq is not None:
        spec["vrq"] = vrq
    spec["zero_skipping"] = {"pe_buffer_depth": pe_buffer_depth
                             or custom(name, **array).max_depth_words}
    return from_dict(spec)


def skipping_p4() -> Config:
    """B = 4 blocks, P = 4, R = 3 (column groups of 3 tiles, partial last groups),
    max_reduction_depth 40 = 10 words; PE banks hold 3 groups of 10 words per half."""
    return custom_skipping("skip_p4", rows=3, cols=2, operand_width=8, block_width=2,
                           block_multipliers=4, buffer_depth=16, max_reduction_depth=40,
                           pe_buffer_depth=32)


def skipping_vrq() -> Config:
    """P = 4, B = 4, with VRQ operands (N = 4, S = 2, G = 4): a VRQ word is zero when
    its 4 code bits are, whatever its sign and range bits."""
    return custom_skipping("skip_vrq", rows=2, cols=2, operand_width=8, block_width=2,
                           block_multipliers=4, buffer_depth=16,
                           vrq={"code_width": 4, "range_stride": 2, "ranges": 4})


def skipping_p1() -> Config:
    """P = 1: an entry is one operand, q cycles each."""
    return custom_skipping("skip_p1", rows=2, cols=3, operand_width=8, block_width=2,
                           block_multipliers=1, buffer_depth=16, pe_buffer_depth=32)


def skipping_p8() -> Config:
    """P = 8 with B = 4 (q = 1 .. 16 on both sides of P) and a single PE row (R = 1)."""
    return custom_skipping("skip_p8", rows=1, cols=2, operand_width=8, block_width=2,
                           block_multipliers=8, buffer_depth=8, pe_buffer_depth=16)


#: Zero-skipping configurations of the component tests, by test id.
SKIPPING_CONFIGS = {
    "p4": skipping_p4,
    "vrq": skipping_vrq,
    "p1": skipping_p1,
    "p8": skipping_p8,
    "sparse": lambda: load_preset("sparse"),    # R = 8, P = 4, max depth 2048
}


def vrq_skipping() -> Config:
    """2x3, VRQ operands and outputs, zero skipping: every path of the instruction
    decoder (tests/hdl/test_decoder.py, tests/hdl/test_core.py)."""
    spec = custom("r2c3v", rows=2, cols=3, operand_width=8, block_width=2,
                  block_multipliers=2, buffer_depth=16).to_dict()
    spec["vrq"] = {"code_width": 4, "range_stride": 2, "ranges": 8}
    return from_dict(spec, source="tests").with_zero_skipping()


# ---- designs of the cocotb integration tests (tests/sim/) ----

#: A small non-square array with 2-bit blocks: rows/cols mix-ups and q that does not
#: divide P (e.g. La = 3, Lb = 1 with P = 2) show up here.
RECT = {"name": "rect", "array": {"rows": 2, "cols": 3},
        "arithmetic": {"operand_width": 8, "block_width": 2, "block_multipliers": 2,
                       "max_reduction_depth": 256, "output_width": 8},
        "buffers": {"depth": 128}}


#: Zero-skipping designs (tests/sim/bench/test_rtl_skipping.py): ``tiny_skip`` is the tiny
#: preset built as the zero-skipping array (square 2x2, 4-bit blocks, P = 2);
#: ``rect_vrq_skip`` is RECT (2x3: fewer rows than columns, so a column group of R x C
#: columns and PE rows vs columns cannot be confused; q = 3 with P = 2) with a [vrq]
#: section (A operands with code 0 are skipped whatever their sign and range bits) and
#: a [zero_skipping] section. Both use one max_reduction_depth dot product of B per PE
#: bank and half (:meth:`Config.with_zero_skipping`).
SKIPPING_DESIGNS = {
    "tiny_skip": lambda: load_preset("tiny").with_zero_skipping(),
    "rect_vrq_skip": lambda: from_dict(
        RECT | {"name": "rect_vrq", "vrq": {"code_width": 4, "range_stride": 2, "ranges": 8}},
        source="tests").with_zero_skipping(),
}


def preset_with(preset: str, **changes) -> Config:
    """The preset with spec keys changed, each given as ``section__key=value``
    (``preset_with("tiny", array__rows=3)``), validated by :func:`from_dict`."""
    spec = load_preset(preset).to_dict()
    for path, value in changes.items():
        section, key = path.split("__")
        spec[section][key] = value
    return from_dict(spec, source="tests")


def with_pe(config: Config, pe: str) -> Config:
    """``config`` with ``arithmetic.pe = pe``, named ``<name>_<pe>``: the same design
    with another PE datapath (tests/hdl/test_pe_designs_rtl.py runs the integration
    tests on it)."""
    spec = config.to_dict()
    spec["name"] = f"{config.name}_{pe}"
    spec["arithmetic"] = spec["arithmetic"] | {"pe": pe}
    return from_dict(spec, source="tests")


def design_config(name: str) -> Config:
    """The configuration of an integration-test design: a preset's name, ``rect`` or a
    key of :data:`SKIPPING_DESIGNS`."""
    if name in SKIPPING_DESIGNS:
        return SKIPPING_DESIGNS[name]()
    if name == "two_lane_tiny":
        return two_lane_tiny()
    return from_dict(RECT, source="tests") if name == "rect" else load_preset(name)
