"""Applications built on the model, the hardware and the benches: the demo, the
benchmarks, the reproducibility check and the instruction-stream fuzzer."""
