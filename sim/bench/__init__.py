"""cocotb integration benches for the generated Verilog: the stream driver, monitor and
scoreboard (:mod:`~qforge.sim.bench.testbench`), the cocotb test modules for the bare
accelerator, the programmable core and the board link, the scenarios and random stimulus
they run, and the runner that builds a design for Verilator or Icarus and runs a bench
(:mod:`~qforge.sim.bench.rtl`)."""
