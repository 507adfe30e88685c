"""The host link's CRC in hardware: :func:`qforge.hdl.protocol.crc16_update`
(CRC-16/CCITT-FALSE), one byte per cycle.

>>> hex(CRC_POLYNOMIAL), hex(CRC_INIT)
('0x1021', '0xffff')
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal

from qforge.hdl.protocol import crc16_update

__all__ = ["CRC_POLYNOMIAL", "CRC_INIT", "crc16_step"]

#: The CRC polynomial, taken from the reference: a 1 in the lowest bit of the byte
#: reaches the top of the register after 7 shifts and folds the polynomial in once.
CRC_POLYNOMIAL = crc16_update(0, 0x01)
#: The register's value before a frame's first byte (CRC-16/CCITT-FALSE: crc16's default).
CRC_INIT = 0xFFFF


def crc16_step(m: Module, crc, byte, *, name: str = "crc") -> Signal:
    """``crc16_update(crc, byte)`` in hardware: a 16-bit signal, combinational from the
    16-bit ``crc`` and the 8-bit ``byte``, added to ``m``. The reference's eight shift
    steps are unrolled, each into its own signal (so no expression is duplicated); once
    synthesized every output bit is an XOR of at most a dozen inputs."""
    value = Signal(16, name=f"{name}_in")
    m.d.comb += value.eq(crc ^ Cat(Const(0, 8), byte))
    for step in range(8):
        shifted = Signal(16, name=f"{name}_step{step}")
        m.d.comb += shifted.eq((value << 1)[:16] ^ Mux(value[15], CRC_POLYNOMIAL, 0))
        value = shifted
    return value
