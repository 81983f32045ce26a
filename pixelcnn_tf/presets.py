"""train.py --preset: named starting configurations (overrides of the seed defaults), architectures adding their own."""
from __future__ import annotations

import json

from pixelcnn_tf.architectures import ARCHITECTURES
from pixelcnn_tf.config import TrainConfig, apply_overrides
from pixelcnn_tf.errors import UserError

# Presets override the seed defaults; "seed" is the original project's configuration; architectures add their own.
PRESETS: dict[str, dict] = {
    "seed": {},
    "quick": {
        "model": {"num_layers": 4, "kernel_size": 5, "filters": 32, "levels": 2},
        "epochs": 2,
        "batch_size": 64,
        "train_examples": 12000,
        "test_examples": 2000,
    },
} | {name: values for record in ARCHITECTURES.values() for name, values in record.presets.items()}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return apply_overrides(TrainConfig(), json.loads(json.dumps(PRESETS[name])))
