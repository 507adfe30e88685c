"""The host side of the accelerator's streams: packing GEMMs into command and operand
beats and unpacking result beats (:mod:`~qforge.sim.host.packing`), and the data mover
that executes LOAD/STORE descriptors against the host's memory
(:mod:`~qforge.sim.host.datamover`)."""
