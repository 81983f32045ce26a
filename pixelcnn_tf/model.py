"""Builders that turn a ModelConfig into a named functional keras.Model with a per-sub-pixel softmax head."""
from __future__ import annotations

import keras

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.layers import MaskedConv2D

IMAGE_INPUT = "image"
LABEL_INPUT = "label"
LOGITS_OUTPUT = "logits"


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
    """1x1 Mask-B conv to channels*levels logits, in float32, reshaped to (H, W, channels, levels)."""
    logits = MaskedConv2D(
        config.channels * config.levels,
        1,
        mask_type="B",
        image_channels=config.channels,
        dtype="float32",
        name="head",
    )(features)
    return keras.layers.Reshape(
        (config.height, config.width, config.channels, config.levels), dtype="float32", name=LOGITS_OUTPUT
    )(logits)


def build_pixelcnn(config: ModelConfig, sync_batchnorm: bool = False) -> keras.Model:
    """The seed network: Mask-A conv, then Mask-B convs, each without bias and followed by BN + ReLU.

    sync_batchnorm: batch statistics over the global batch of all replicas (tf.distribute), not each replica's share.
    """
    config.validate()
    inputs = model_inputs(config)
    x = scale_levels(inputs[IMAGE_INPUT], config)
    for index in range(config.num_layers):
        name = f"masked_conv_{index}"
        x = MaskedConv2D(
            config.filters,
            config.kernel_size,
            mask_type="A" if index == 0 else "B",
            image_channels=config.channels,
            use_bias=False,
            name=name,
        )(x)
        if config.num_classes:
            x = keras.layers.Add(name=f"{name}_conditioned")([x, label_bias(inputs[LABEL_INPUT], config, config.filters, name)])
        # momentum 0.9 is PyTorch's BatchNorm2d default (its momentum=0.1), as in the seed.
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=sync_batchnorm, name=f"{name}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.Model(inputs, logits_head(x, config), name="pixelcnn")


def build_model(config: ModelConfig, sync_batchnorm: bool = False) -> keras.Model:
    """Build the network that config.architecture names (sync_batchnorm: for several replicas; gated has no BN)."""
    config.validate()
    if config.architecture == "gated":
        from pixelcnn_tf.gated import build_gated_pixelcnn

        return build_gated_pixelcnn(config)
    return build_pixelcnn(config, sync_batchnorm)
