"""qforge.fpga: the accelerator on real FPGAs.

* :mod:`qforge.fpga.area`: cell counts of generated designs from Yosys synthesis alone
  (``qforge area``).
* :mod:`qforge.fpga.pll`: PLL parameter solvers (iCE40 ``SB_PLL40``, ECP5 ``EHXPLLL``)
  that return the achieved frequency.
* :mod:`qforge.fpga.boards`: the supported boards (:data:`~qforge.fpga.boards.BOARDS`:
  ``icebreaker``, ``ulx3s-85f``) and :class:`~qforge.fpga.boards.BoardTop`, the board
  top level: the linked accelerator plus PLL, reset, UART pins and status LEDs.
* :mod:`qforge.fpga.build`: bitstreams, utilization and timing reports from the tools'
  own output, and programming (``qforge build``, ``make bitstream``).
* :mod:`qforge.hdl.protocol`, :mod:`qforge.fpga.host`: the host link's protocol and the
  host driver that runs GEMMs on a board over its serial port.
"""
