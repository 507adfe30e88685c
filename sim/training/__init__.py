"""Training experiments on the digits MLP: with emulated hardware arithmetic, and as
programs on a runtime backend (every GEMM and weight update on the accelerator).

- :mod:`~qforge.sim.training.formats`: operand and weight formats, quantized operands,
  the random keys of every tensor.
- :mod:`~qforge.sim.training.emulated_gemm`: the emulated hardware GEMM.
- :mod:`~qforge.sim.training.config`: training TOML files, validated.
- :mod:`~qforge.sim.training.data`: the digits split and the minibatches.
- :mod:`~qforge.sim.training.network`: the MLP's host arithmetic (initial weights,
  softmax, loss).
- :mod:`~qforge.sim.training.cnn`: the digits CNN: im2col lowering, host arithmetic,
  its training step over float32 or emulated arithmetic with per-layer formats.
- :mod:`~qforge.sim.training.loop`: the emulated training loop (:func:`train_run`,
  :func:`train_all`).
- :mod:`~qforge.sim.training.hardware`: training as programs on a runtime backend.
- :mod:`~qforge.sim.training.report`: run records, tables and plots.

The names below are the package's public API (``qforge train`` and :mod:`qforge.api`
use them).
"""

from qforge.sim.training.config import (TrainConfigError, load_train_config,
                                        rtl_config_path, train_config_from_dict)
from qforge.sim.training.loop import train_all, train_run
from qforge.sim.training.report import (describe_network, describe_schedule,
                                        format_layer_table, format_program_table, format_table,
                                        plot_curves)

__all__ = ["TrainConfigError", "load_train_config", "rtl_config_path",
           "train_config_from_dict", "train_all", "train_run", "describe_schedule",
           "describe_network", "format_table", "format_program_table", "format_layer_table",
           "plot_curves"]
