"""Training experiments: the digits MLP with emulated hardware arithmetic
(:mod:`~qforge.sim.training.emulated`) and as programs on a runtime backend, every GEMM and
weight update on the accelerator (:mod:`~qforge.sim.training.hardware`)."""
