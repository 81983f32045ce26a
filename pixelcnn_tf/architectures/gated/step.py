"""Cached sampling for the Gated PixelCNN: fold a trained model into a pixel step and a row step for every backend."""
from __future__ import annotations

import keras
import numpy as np

from pixelcnn_tf.architectures.gated.network import row_mask
from pixelcnn_tf.architectures.maths import SharedMaths
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.layers import causal_mask
from pixelcnn_tf.parts import FLOAT32, LABEL_INPUT, LOGITS_OUTPUT, folded_rescaling
from serve.architectures.gated import pixel_maths, row_maths, stacked_skips
from serve.names import ABOVE, BAND, FEATURES, VERTICAL, WINDOW, indexed, indexed_names


def _weights(layer, mask=None) -> tuple[np.ndarray, np.ndarray]:
    kernel = np.asarray(layer.kernel, np.float64)
    if mask is not None:
        kernel = kernel * mask
    bias = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
    return kernel, bias


def _pointwise(layer, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 Mask-B conv as a (F_in, F_out) matrix and its bias."""
    kernel, bias = _weights(layer, causal_mask(1, 1, *layer.kernel.shape[2:], "B", channels))
    return kernel[0, 0], bias


def fold(model: keras.Model, config: ModelConfig) -> dict[str, np.ndarray]:
    """The gated model's weights as float32 numpy arrays for one-position (pixel) and one-row (vertical) evaluation.

    Per layer n: v_kernel_n (k//2+1, k, F_in, 2F) and v_bias_n: the vertical conv; link_kernel_n (2F, 2F): the
    vertical->horizontal 1x1 link (its bias joins h_bias_n); h_kernel_n ((k//2+1)*F_in, 2F): the masked row conv
    flattened, its centre tap zeroed for n >= 1 and applied to the fresh activation through h_centre_n (F, 2F);
    skip_kernel_n and out_kernel_n (F, F) with biases (no out_ for the last layer: its output feeds nothing); v_/h_embedding_n (classes, 2F) when conditional. Layer 0 reads raw level
    indices (the Rescaling folded in). Then final_kernel/bias (the ReLU'd 1x1 out_conv) and head_kernel/bias.
    """
    scale, offset = folded_rescaling(model, config)
    r, c = config.kernel_size // 2, config.mask_channels  # c: the masks' channel groups
    params: dict[str, np.ndarray] = {}
    for n in range(config.num_layers):
        name = f"gated_{n}"
        v_kernel, v_bias = _weights(model.get_layer(f"{name}_v_conv"))
        if v_kernel.shape[:2] != (r + 1, config.kernel_size):
            raise UserError(f"{name}_v_conv has a {v_kernel.shape[:2]} kernel, but the config says kernel_size={config.kernel_size}")
        h_layer = model.get_layer(f"{name}_h_conv")
        h_kernel, h_bias = _weights(h_layer, row_mask(r + 1, *h_layer.kernel.shape[2:], "A" if n == 0 else "B", c, 2))
        h_kernel = h_kernel[0]  # (r+1, F_in, 2F)
        link, link_bias = _weights(model.get_layer(f"{name}_link"))
        h_bias = h_bias + link_bias
        if n == 0:
            # Both convs read scale * level + offset, and the caches pad with the level that maps to 0: fold it.
            v_bias = v_bias + offset * v_kernel.sum(axis=(0, 1, 2))
            h_bias = h_bias + offset * h_kernel.sum(axis=(0, 1))
            v_kernel, h_kernel = v_kernel * scale, h_kernel * scale
        else:
            params[f"h_centre_{n}"] = h_kernel[r]
            h_kernel = h_kernel.copy()
            h_kernel[r] = 0.0
        params.update({f"v_kernel_{n}": v_kernel, f"v_bias_{n}": v_bias, f"link_kernel_{n}": link[0, 0],
                       f"h_kernel_{n}": h_kernel.reshape(-1, h_kernel.shape[-1]), f"h_bias_{n}": h_bias})
        params[f"skip_kernel_{n}"], params[f"skip_bias_{n}"] = _pointwise(model.get_layer(f"{name}_skip"), c)
        if n < config.num_layers - 1:  # the last layer's horizontal output feeds nothing: Keras drops that conv
            params[f"out_kernel_{n}"], params[f"out_bias_{n}"] = _pointwise(model.get_layer(f"{name}_h_out"), c)
        if config.num_classes:
            # The last layer's vertical output feeds nothing either (its link reads the pre-label sum).
            for stack in ("v", "h") if n < config.num_layers - 1 else ("h",):
                params[f"{stack}_embedding_{n}"] = np.asarray(model.get_layer(f"{name}_{stack}_embedding").embeddings)
    params["final_kernel"], params["final_bias"] = _pointwise(model.get_layer("out_conv"), c)
    params["head_kernel"], params["head_bias"] = _pointwise(model.get_layer("head"), c)
    return {name: np.asarray(value, np.float32) for name, value in params.items()}


def build_pixel_step_model(params: dict, config: ModelConfig) -> keras.Model:
    """The horizontal stack and head at one position (serve.architectures.gated.PixelFn as a Keras model).

    Inputs window_n float32 (B, k//2+1, C or F), above_n (B, 2F), label int32 (B,) when conditional;
    outputs features_n (B, F) for n < L-1 and logits (B, *head_shape): the output head.
    """
    f, rows, L = config.filters, config.kernel_size // 2 + 1, config.num_layers
    inputs = {indexed(WINDOW, n): keras.Input((rows, config.channels if n == 0 else f), name=indexed(WINDOW, n)) for n in range(L)}
    inputs.update({indexed(ABOVE, n): keras.Input((2 * f,), name=indexed(ABOVE, n)) for n in range(L)})
    if config.num_classes:
        inputs[LABEL_INPUT] = keras.Input((), dtype="int32", name=LABEL_INPUT)
    # The maths is serve's numpy pixel step's own (serve/architectures/gated.py pixel_maths), on TensorFlow ops.
    pixel = SharedMaths(pixel_maths, stacked_skips(params, L), name="pixel")
    features, logits = pixel([inputs[indexed(WINDOW, n)] for n in range(L)], [inputs[indexed(ABOVE, n)] for n in range(L)],
                             inputs.get(LABEL_INPUT))
    outputs = dict(zip(indexed_names(FEATURES, L - 1), features))
    outputs[LOGITS_OUTPUT] = keras.layers.Reshape(config.distribution.head_shape, dtype=FLOAT32, name=LOGITS_OUTPUT)(logits)
    return keras.Model(inputs, outputs, name="gated_pixel_step")


def build_row_step_model(params: dict, config: ModelConfig) -> keras.Model:
    """The vertical stack over one finished row (serve.architectures.gated.RowFn as a Keras model).

    Inputs band_0 float32 (B, k//2+1, W+2*(k//2), C), band_n (B, k//2, W+2*(k//2), F) for n >= 1, label when
    conditional; outputs vertical_n (B, W, F) for n < L-1 and above_n (B, W, 2F) for every layer.
    """
    f, r, w, L = config.filters, config.kernel_size // 2, config.width, config.num_layers
    inputs = {indexed(BAND, 0): keras.Input((r + 1, w + 2 * r, config.channels), name=indexed(BAND, 0))}
    inputs.update({indexed(BAND, n): keras.Input((r, w + 2 * r, f), name=indexed(BAND, n)) for n in range(1, L)})
    if config.num_classes:
        inputs[LABEL_INPUT] = keras.Input((), dtype="int32", name=LABEL_INPUT)
    # The maths is serve's numpy row step's own (serve/architectures/gated.py row_maths), on TensorFlow ops.
    verticals, aboves = SharedMaths(row_maths, params, name="row")([inputs[indexed(BAND, n)] for n in range(L)],
                                                                    inputs.get(LABEL_INPUT))
    outputs = {}
    for n, above in enumerate(aboves):  # the order the exports list them in: above_0, vertical_0, above_1, ...
        outputs[indexed(ABOVE, n)] = above
        if n < L - 1:
            outputs[indexed(VERTICAL, n)] = verticals[n]
    return keras.Model(inputs, outputs, name="gated_row_step")


def step_models(params: dict, config: ModelConfig) -> dict[str, keras.Model]:
    """{"pixel": ..., "row": ...}: the two step models serve/architectures/gated.py runs."""
    return {"pixel": build_pixel_step_model(params, config), "row": build_row_step_model(params, config)}
