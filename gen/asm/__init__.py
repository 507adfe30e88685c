"""The qforge assembler (being split into modules; see assembler.py)."""

from qforge.gen.asm.assembler import *  # noqa: F401,F403
from qforge.gen.asm.assembler import FIELDS, __all__  # noqa: F401
