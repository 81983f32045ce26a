"""The seed PixelCNN: a Mask-A conv, then Mask-B convs, each followed by BatchNorm and ReLU."""
from __future__ import annotations

import keras

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.layers import MaskedConv2D
from pixelcnn_tf.norm import FusedBatchNormalization
from pixelcnn_tf.parts import IMAGE_INPUT, LABEL_INPUT, label_bias, logits_head, model_inputs, scale_levels


def build(config: ModelConfig) -> keras.Model:
    """The seed network: Mask-A conv, then Mask-B convs, each without bias and followed by BN + ReLU."""
    config.validate()
    inputs = model_inputs(config)
    x = scale_levels(inputs[IMAGE_INPUT], config)
    for index in range(config.num_layers):
        name = f"masked_conv_{index}"
        x = MaskedConv2D(
            config.filters,
            config.kernel_size,
            mask_type="A" if index == 0 else "B",
            image_channels=config.mask_channels,
            use_bias=False,
            name=name,
        )(x)
        if config.num_classes:
            x = keras.layers.Add(name=f"{name}_conditioned")([x, label_bias(inputs[LABEL_INPUT], config, config.filters, name)])
        # momentum 0.9 is PyTorch's BatchNorm2d default (its momentum=0.1), as in the seed.
        x = FusedBatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.Model(inputs, logits_head(x, config), name="pixelcnn")
