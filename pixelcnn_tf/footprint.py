"""A training run's memory estimated from its config (no TensorFlow), to refuse models the machine cannot hold."""
from __future__ import annotations

import os

from pixelcnn_tf.config import TrainConfig
from pixelcnn_tf.errors import UserError

FLOAT_BYTES = 4
# Per weight: the value, its gradient and Adam's two moments.
COPIES_PER_WEIGHT = 4
# Feature maps a layer keeps for the backward pass, counting their gradients (conv, BN, ReLU for the seed;
# the gated layer's 2F-wide stacks, gate, skip and link), in units of batch x H x W x filters.
MAPS_PER_LAYER = {"pixelcnn": 6, "gated": 24}


def parameter_count(config: TrainConfig) -> int:
    """Weights of config.model, to within the few biases and norms the formula leaves out."""
    m = config.model
    f, k = m.filters, m.kernel_size
    if m.architecture == "gated":
        r = k // 2
        per_layer = 2 * f * f * ((r + 1) * k + (r + 1) + 2) + 2 * f * f  # v, h, link (2F outputs); skip, h_out
    else:
        per_layer = k * k * f * f
    classes = m.num_classes * f * m.num_layers * (4 if m.architecture == "gated" else 1)
    return m.num_layers * per_layer + f * m.channels * m.levels + classes


def training_bytes(config: TrainConfig) -> int:
    m = config.model
    pixels = config.batch_size * m.height * m.width
    maps = pixels * m.filters * m.num_layers * MAPS_PER_LAYER[m.architecture]
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
