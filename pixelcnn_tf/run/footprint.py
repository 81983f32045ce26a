"""A training run's memory estimated from its config (no TensorFlow), to refuse models the machine cannot hold."""
from __future__ import annotations

import os

from pixelcnn_tf.architectures import get
from pixelcnn_tf.config import TrainConfig
from pixelcnn_tf.errors import UserError

FLOAT_BYTES = 4
# Per weight: the value, its gradient and Adam's two moments.
COPIES_PER_WEIGHT = 4


def parameter_count(config: TrainConfig) -> int:
    """Weights of config.model, to within the few biases and norms the formula leaves out (its architecture's count)."""
    return get(config.model.architecture).parameter_count(config.model)


def training_bytes(config: TrainConfig) -> int:
    m = config.model
    pixels = config.batch_size * m.height * m.width
    maps = pixels * m.filters * m.num_layers * get(m.architecture).maps_per_layer
    logits = 3 * pixels * m.channels * m.levels  # logits, softmax and its gradient
    return FLOAT_BYTES * (COPIES_PER_WEIGHT * parameter_count(config) + maps + logits)


def machine_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(config: TrainConfig) -> None:
    """Refuse a model whose estimated training memory exceeds the machine's RAM, before anything is allocated."""
    need, have = training_bytes(config), machine_bytes()
    if need > have:
        raise UserError(
            f"this model needs about {need / 2**30:,.1f} GiB to train ({parameter_count(config):,} weights, "
            f"batch {config.batch_size}) and the machine has {have / 2**30:.1f} GiB; lower --filters, --num-layers or --batch-size"
        )
