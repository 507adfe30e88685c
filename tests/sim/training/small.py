"""A small training configuration (as a TOML dictionary) for fast runs."""

SMALL = {"name": "small", "hidden": 32, "epochs": 2, "batch_size": 16, "learning_rate": 0.2,
         "seed": 3, "train_samples": 400,
         "hardware": [{"name": "float32", "format": "float32"},
                      {"name": "vrq8", "format": "vrq", "code_width": 4, "range_stride": 2,
                       "ranges": 8, "rounding": "stochastic", "weight_bits": 12,
                       "update_rounding": "stochastic"},
                      {"name": "int8_approx", "format": "int", "bits": 8, "kept_blocks": 2,
                       "rounding": "nearest", "update_rounding": "nearest"}]}
