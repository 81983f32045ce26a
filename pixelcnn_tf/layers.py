"""Masked convolutions: the causal building block of PixelCNN (Mask A / Mask B, channel-ordered)."""
from __future__ import annotations

import keras
import numpy as np


def channel_groups(num_features: int, image_channels: int) -> np.ndarray:
    """Assign each of num_features feature maps to an image-channel group (0=R, 1=G, 2=B).

    Groups are contiguous blocks, so a head with image_channels * levels outputs reshaped to
    (..., image_channels, levels) puts channel c's logits exactly in group c.
    """
    return (np.arange(num_features) * image_channels) // num_features


def causal_mask(
    kernel_height: int,
    kernel_width: int,
    in_features: int,
    out_features: int,
    mask_type: str,
    image_channels: int = 1,
) -> np.ndarray:
    """The 0/1 mask (kh, kw, in, out) that keeps a convolution causal in raster then R->G->B order.

    Rows below the centre and taps right of the centre are zero. At the centre tap, an output group
    sees input groups strictly before it (mask "A") or up to and including itself (mask "B").
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    mask = np.ones((kernel_height, kernel_width, in_features, out_features), dtype=np.float32)
    centre_row, centre_col = kernel_height // 2, kernel_width // 2
    mask[centre_row + 1 :] = 0.0
    mask[centre_row, centre_col + 1 :] = 0.0
    in_groups = channel_groups(in_features, image_channels)[:, None]
    out_groups = channel_groups(out_features, image_channels)[None, :]
    allowed = in_groups < out_groups if mask_type == "A" else in_groups <= out_groups
    mask[centre_row, centre_col] = allowed.astype(np.float32)
    return mask


@keras.saving.register_keras_serializable(package="pixelcnn_tf")
class MaskedConv2D(keras.layers.Conv2D):
    """A Conv2D whose kernel is multiplied by a constant causal mask on every call.

    The mask is never assigned into the weights: exported graphs stay stateless and the stored
    kernel keeps whatever the optimiser wrote (masked taps simply get no gradient).
    """

    def __init__(self, filters, kernel_size, mask_type="B", image_channels=1, **kwargs):
        kwargs.setdefault("padding", "same")
        if kwargs["padding"] != "same":
            raise ValueError("MaskedConv2D needs padding='same' to keep positions aligned")
        for name in ("strides", "dilation_rate"):
            if set(np.ravel(kwargs.get(name, 1)).tolist()) != {1}:
                raise ValueError(f"MaskedConv2D supports {name}=1 only")
        if kwargs.get("data_format", "channels_last") != "channels_last":
            raise ValueError("MaskedConv2D supports data_format='channels_last' only")
        super().__init__(filters, kernel_size, **kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        self.mask_type = mask_type
        self.image_channels = int(image_channels)
        self._mask = None

    def build(self, input_shape):
        super().build(input_shape)
        kh, kw, in_features, out_features = self.kernel.shape
        self._mask = causal_mask(kh, kw, in_features, out_features, self.mask_type, self.image_channels)

    @property
    def mask(self) -> np.ndarray:
        return self._mask

    def convolution_op(self, inputs, kernel):
        masked = kernel * keras.ops.cast(self._mask, kernel.dtype)
        # Rows below the centre are all zero: convolve with the top kh//2+1 rows only, padding the
        # top instead. Same result as padding="same" on the full kernel, ~40% fewer multiply-adds.
        kh, kw = self.kernel_size
        padded = keras.ops.pad(inputs, [[0, 0], [kh // 2, 0], [kw // 2, kw // 2], [0, 0]])
        return keras.ops.conv(padded, masked[: kh // 2 + 1], strides=1, padding="valid", data_format="channels_last")

    def get_config(self):
        config = super().get_config()
        config.update({"mask_type": self.mask_type, "image_channels": self.image_channels})
        return config
