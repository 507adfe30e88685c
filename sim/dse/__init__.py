"""Design-space exploration (``qforge dse``): which configuration, for which network, at
what cost. A sweep file (:mod:`.sweep`) names hardware axes, workloads and precision
policies (:mod:`.workload`); its tasks (:mod:`.tasks`: composed area, fmax, emulated
training, calibration) run on a process pool or a Ray cluster, cached and resumable
(:mod:`.runner`); :mod:`.report` writes rows, Pareto fronts, plots and a Markdown
report. docs/DSE.md is the user's guide."""
