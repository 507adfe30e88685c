"""The disassembler (qforge.gen.asm.disassembler): every word, instruction or not, disassembles
to text that assembles back to it."""

from hypothesis import given, strategies as st

from qforge.gen.asm import assemble, disassemble
from qforge.gen.asm.syntax import FIELDS
from qforge.sim.model.isa import Opcode, encode
from tests.gen.asm.shared import FAST


@st.composite
def instruction_words(draw):
    opcode = draw(st.sampled_from(list(Opcode)))
    return encode(opcode, **{name: draw(st.integers(0, (1 << width) - 1))
                             for name, width in FIELDS[opcode].items()})


@FAST
@given(instruction_words())
def test_disassembly_assembles_back_to_the_word(word):
    text = disassemble(word)
    assert not text.startswith(".inst")
    assert assemble(text).words == (word,)


@FAST
@given(st.integers(0, (1 << 64) - 1))
def test_any_word_round_trips(word):
    """Words that are not instructions come back as ``.inst`` and still round trip."""
    assert assemble(disassemble(word)).words == (word,)
