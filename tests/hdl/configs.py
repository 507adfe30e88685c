"""Configurations shared by the fast HDL unit tests (presets and small custom ones)."""

from qforge.gen.spec import Config, from_dict, load_preset


def custom(name: str, *, rows: int = 2, cols: int = 2, operand_width: int = 8,
           block_width: int = 2, block_multipliers: int = 2,
           max_reduction_depth: int | None = None, buffer_depth: int = 16,
           output_width: int = 8) -> Config:
    """A small custom configuration built through :func:`from_dict` (validated).

    ``max_reduction_depth`` defaults to the deepest dot product the buffers hold.
    """
    if max_reduction_depth is None:
        max_reduction_depth = buffer_depth * block_multipliers
    return from_dict({
        "name": name,
        "array": {"rows": rows, "cols": cols},
        "arithmetic": {"operand_width": operand_width, "block_width": block_width,
                       "block_multipliers": block_multipliers,
                       "max_reduction_depth": max_reduction_depth,
                       "output_width": min(output_width, operand_width)},
        "buffers": {"depth": buffer_depth},
    })


def default() -> Config:
    return load_preset("default")      # K=2, B=4, P=4


def tiny() -> Config:
    return load_preset("tiny")         # K=4, B=2, P=2


def single_lane() -> Config:
    """P = 1: every block product takes its own cycle."""
    return custom("single_lane", operand_width=8, block_width=2, block_multipliers=1)


def three_blocks() -> Config:
    """B = 3 (not a power of two): q = 3, 6, 9 never divide P = 4."""
    return custom("three_blocks", operand_width=6, block_width=2, block_multipliers=4)


#: The configurations the component tests sweep, by test id.
COMPONENT_CONFIGS = {
    "default": default,
    "tiny": tiny,
    "p1": single_lane,
    "b3": three_blocks,
}
