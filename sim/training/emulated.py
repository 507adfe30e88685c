"""The former single training module, kept only so that existing imports keep working
while they move: ``gen/cli/train.py`` and ``gen/api/__init__.py`` should import from
:mod:`qforge.sim.training` (the package), after which this module can be deleted.

Every name here is defined in its own module (see :mod:`qforge.sim.training`).
"""

from qforge.sim.training.config import (FORMATS, ROUNDINGS, HardwareConfig, TrainConfig,
                                        TrainConfigError, default_config_path,
                                        load_train_config, rtl_config_path,
                                        train_config_from_dict)
from qforge.sim.training.data import load_digits_split, training_data
from qforge.sim.training.emulated_gemm import GemmCounter, emulated_matmul, hardware_matmul
from qforge.sim.training.formats import (SLOTS, OperandFormat, Quantized, WeightFormat,
                                         quantize_operand, random_key)
from qforge.sim.training.loop import train_all, train_run
from qforge.sim.training.network import initial_weights
from qforge.sim.training.report import (RunResult, describe_schedule, format_program_table,
                                        format_table, plot_curves)

__all__ = ["TrainConfigError", "OperandFormat", "WeightFormat", "Quantized", "HardwareConfig",
           "TrainConfig", "GemmCounter", "RunResult", "SLOTS", "random_key",
           "quantize_operand", "emulated_matmul", "hardware_matmul", "load_digits_split",
           "train_run", "train_all", "load_train_config", "train_config_from_dict",
           "default_config_path", "rtl_config_path", "format_table",
           "format_program_table", "plot_curves", "describe_schedule",
           "initial_weights", "FORMATS", "ROUNDINGS", "training_data"]
