"""What every architecture shares: the named inputs, the in-graph rescaling, the label bias and the output head."""
from __future__ import annotations

import keras

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.layers import MaskedConv2D
from serve.names import IMAGE as IMAGE_INPUT
from serve.names import LABEL as LABEL_INPUT
from serve.names import LOGITS as LOGITS_OUTPUT

FLOAT32 = "float32"  # step models compute in float32 whatever the global dtype policy


def model_inputs(config: ModelConfig) -> dict:
    """Keras inputs: 'image' holds level indices 0..levels-1 as float32; 'label' an int class id."""
    inputs = {IMAGE_INPUT: keras.Input((config.height, config.width, config.channels), name=IMAGE_INPUT)}
    if config.num_classes:
        inputs[LABEL_INPUT] = keras.Input((), dtype="int32", name=LABEL_INPUT)
    return inputs


def scale_levels(image, config: ModelConfig):
    """Map level indices 0..levels-1 to [-1, 1] inside the graph, so exports take raw levels."""
    return keras.layers.Rescaling(2.0 / (config.levels - 1), offset=-1.0, name="scale")(image)


def label_bias(label, config: ModelConfig, filters: int, name: str):
    """A learned per-class bias of shape (batch, 1, 1, filters): how the label conditions a layer."""
    embedded = keras.layers.Embedding(config.num_classes, filters, name=f"{name}_embedding")(label)
    return keras.layers.Reshape((1, 1, filters), name=f"{name}_reshape")(embedded)


def logits_head(features, config: ModelConfig):
    """1x1 Mask-B conv to the output distribution's head, in float32, reshaped to (H, W, *head_shape): softmax's
    (channels, levels) logits, a mixture's parameters per pixel. Its masks are the network's (config.mask_channels)."""
    head_shape = config.distribution.head_shape
    head = MaskedConv2D(
        config.distribution.features,
        1,
        mask_type="B",
        image_channels=config.mask_channels,
        dtype="float32",
        name="head",
    )(features)
    return keras.layers.Reshape((config.height, config.width, *head_shape), dtype="float32", name=LOGITS_OUTPUT)(head)


def folded_rescaling(model: keras.Model, config: ModelConfig) -> tuple[float, float]:
    """(scale, offset) of the model's Rescaling, checked to map (levels-1)/2, the caches' padding, to 0."""
    rescale = model.get_layer("scale")
    scale, offset = float(rescale.scale), float(rescale.offset)
    if abs(-offset / scale - (config.levels - 1) / 2) > 1e-3:
        raise UserError(f"the model's Rescaling maps level {-offset / scale} to 0, not (levels-1)/2; wrong config?")
    return scale, offset
