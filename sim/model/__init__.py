"""The golden model: pure Python and numpy, no Amaranth, no cocotb.

Every number-affecting rule of qforge is defined here once, with a docstring contract and
doctests; the hardware (:mod:`qforge.hdl`), the host side and the applications call it.

- :mod:`~qforge.sim.model.spec`: the validated configuration (:class:`Config`) and its
  derived widths.
- :mod:`~qforge.sim.model.numerics`: operand formats, block split, precision modes and the
  bit-exact GEMM; :mod:`~qforge.sim.model.exact_matmul`: the exact integer product it
  runs on float BLAS.
- :mod:`~qforge.sim.model.rounding`: the rounding codes (:class:`Rounding`), the integer
  round-shift and the rounding of scaled reals; :mod:`~qforge.sim.model.saturation`:
  two's-complement ranges and saturation; :mod:`~qforge.sim.model.random_bits`: the
  random bits of stochastic rounding.
- :mod:`~qforge.sim.model.vrq_format`: the VRQ format's limits, range bits and word layout.
- :mod:`~qforge.sim.model.quantize`: the output stage (scale, rounding, saturation, ReLU,
  VRQ encoding) and the address-block baseline.
- :mod:`~qforge.sim.model.capacity`: tiling counts and whether a GEMM fits the buffers.
- :mod:`~qforge.sim.model.isa`: the instruction words (opcodes, fields, encode/decode).
- :mod:`~qforge.sim.model.machine`: the ISA machine and its validity rules.
- :mod:`~qforge.sim.model.cycles`: the cycle model (equal to the RTL's cycles).
"""
