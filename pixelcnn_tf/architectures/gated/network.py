"""Gated PixelCNN (van den Oord et al. 2016, arXiv 1606.05328): vertical + horizontal stacks, no blind spot."""
from __future__ import annotations

import keras
import numpy as np

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.layers import MaskedConv2D, channel_groups
from pixelcnn_tf.parts import IMAGE_INPUT, LABEL_INPUT, label_bias, logits_head, model_inputs, scale_levels


def gate_groups(num_features: int, image_channels: int, halves: int = 1) -> np.ndarray:
    """Channel groups of `halves` stacked blocks that each carry channel_groups' layout.

    A gate multiplies feature f of its tanh half by feature f of its sigmoid half, so both halves must
    put f in the same colour group; contiguous groups over all 2F features would not.
    """
    if num_features % halves:
        raise ValueError(f"{num_features} features do not split into {halves} equal halves")
    return np.tile(channel_groups(num_features // halves, image_channels), halves)


def row_mask(
    kernel_width: int, in_features: int, out_features: int, mask_type: str, image_channels: int, halves: int
) -> np.ndarray:
    """The (1, kw, in, out) 0/1 mask of a left-padded row conv: only the last tap (the current pixel) is masked."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    mask = np.ones((1, kernel_width, in_features, out_features), dtype=np.float32)
    in_groups = channel_groups(in_features, image_channels)[:, None]
    out_groups = gate_groups(out_features, image_channels, halves)[None, :]
    allowed = in_groups < out_groups if mask_type == "A" else in_groups <= out_groups
    mask[0, -1] = allowed.astype(np.float32)
    return mask


@keras.saving.register_keras_serializable(package="pixelcnn_tf")
class RowMaskedConv2D(keras.layers.Conv2D):
    """The horizontal stack's 1 x kw conv over an input padded by kw-1 columns on the left.

    With that padding the last tap is the current pixel: it sees earlier colour groups (mask A) or
    also its own (mask B); all other taps are pixels to the left and fully visible. The constant mask
    is multiplied in on every call, never written into the kernel (as in MaskedConv2D).
    """

    def __init__(self, filters, kernel_width, mask_type="B", image_channels=1, halves=1, **kwargs):
        kwargs.setdefault("padding", "valid")
        if kwargs["padding"] != "valid":
            raise ValueError("RowMaskedConv2D needs padding='valid' on a left-padded input")
        super().__init__(filters, (1, int(kernel_width)), **kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if filters % halves:
            raise ValueError(f"filters ({filters}) must split into {halves} equal halves")
        self.kernel_width = int(kernel_width)
        self.mask_type = mask_type
        self.image_channels = int(image_channels)
        self.halves = int(halves)
        self._mask = None

    def build(self, input_shape):
        super().build(input_shape)
        _, kw, in_features, out_features = self.kernel.shape
        self._mask = row_mask(kw, in_features, out_features, self.mask_type, self.image_channels, self.halves)

    @property
    def mask(self) -> np.ndarray:
        return self._mask

    def convolution_op(self, inputs, kernel):
        masked = kernel * keras.ops.cast(self._mask, kernel.dtype)
        return super().convolution_op(inputs, masked)

    def get_config(self):
        config = super().get_config()
        config.pop("kernel_size", None)
        config.update(
            {
                "kernel_width": self.kernel_width,
                "mask_type": self.mask_type,
                "image_channels": self.image_channels,
                "halves": self.halves,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="pixelcnn_tf")
class GatedActivation(keras.layers.Layer):
    """tanh(first half) * sigmoid(second half) over the last axis: the gated unit."""

    def call(self, inputs):
        first, second = keras.ops.split(inputs, 2, axis=-1)
        return keras.ops.tanh(first) * keras.ops.sigmoid(second)

    def compute_output_shape(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] % 2:
            raise ValueError(f"GatedActivation needs an even number of features, got {input_shape[-1]}")
        return tuple(input_shape[:-1]) + (None if input_shape[-1] is None else input_shape[-1] // 2,)


def shift_down(x, name: str):
    """Move features one row down (zeros on top): row i then holds only what row i-1 saw."""
    x = keras.layers.ZeroPadding2D(((1, 0), (0, 0)), name=f"{name}_pad")(x)
    return keras.layers.Cropping2D(((0, 1), (0, 0)), name=f"{name}_crop")(x)


def gated_layer(v, h, index: int, config: ModelConfig, label=None):
    """One layer of both stacks; returns (vertical out, horizontal out, skip contribution)."""
    f, r, c = config.filters, config.kernel_size // 2, config.mask_channels  # c: the masks' channel groups
    name = f"gated_{index}"
    # Vertical: a (r+1) x k window over rows i-r..i. It sees the current row (future pixels included),
    # which is harmless because the horizontal stack only ever gets it shifted one row down.
    v_in = keras.layers.ZeroPadding2D(((r, 0), (r, r)), name=f"{name}_v_pad")(v)
    v_pre = keras.layers.Conv2D(2 * f, (r + 1, config.kernel_size), name=f"{name}_v_conv")(v_in)
    # Horizontal: a 1 x (r+1) window over columns j-r..j of the current row, centre tap group-masked.
    h_in = keras.layers.ZeroPadding2D(((0, 0), (r, 0)), name=f"{name}_h_pad")(h)
    h_pre = RowMaskedConv2D(
        2 * f, r + 1, mask_type="A" if index == 0 else "B", image_channels=c, halves=2, name=f"{name}_h_conv"
    )(h_in)
    # Vertical -> horizontal link: strictly-above information only, so it needs no channel mask.
    link = keras.layers.Conv2D(2 * f, 1, name=f"{name}_link")(shift_down(v_pre, f"{name}_shift"))
    h_terms = [h_pre, link]
    if label is not None:
        v_pre = keras.layers.Add(name=f"{name}_v_conditioned")([v_pre, label_bias(label, config, 2 * f, f"{name}_v")])
        h_terms.append(label_bias(label, config, 2 * f, f"{name}_h"))
    h_pre = keras.layers.Add(name=f"{name}_h_sum")(h_terms)
    v_out = GatedActivation(name=f"{name}_v_gate")(v_pre)
    gated = GatedActivation(name=f"{name}_h_gate")(h_pre)
    skip = MaskedConv2D(f, 1, mask_type="B", image_channels=c, name=f"{name}_skip")(gated)
    h_out = MaskedConv2D(f, 1, mask_type="B", image_channels=c, name=f"{name}_h_out")(gated)
    if index > 0:  # the first layer's input is the image (C features): no residual there
        h_out = keras.layers.Add(name=f"{name}_residual")([h, h_out])
    return v_out, h_out, skip


def build(config: ModelConfig) -> keras.Model:
    """Gated stacks -> summed skips -> ReLU, 1x1 Mask-B conv, ReLU -> the output head."""
    config.validate()
    inputs = model_inputs(config)
    label = inputs.get(LABEL_INPUT) if config.num_classes else None
    x = scale_levels(inputs[IMAGE_INPUT], config)
    v, h, skips = x, x, []
    for index in range(config.num_layers):
        v, h, skip = gated_layer(v, h, index, config, label)
        skips.append(skip)
    out = skips[0] if len(skips) == 1 else keras.layers.Add(name="skip_sum")(skips)
    out = keras.layers.ReLU(name="skip_relu")(out)
    out = MaskedConv2D(config.filters, 1, mask_type="B", image_channels=config.mask_channels, name="out_conv")(out)
    out = keras.layers.ReLU(name="out_relu")(out)
    return keras.Model(inputs, logits_head(out, config), name="gated_pixelcnn")
