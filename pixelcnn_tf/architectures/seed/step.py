"""Cached sampling for the seed PixelCNN: fold a trained model into a one-position "step model" (serve/architectures/seed.py)."""
from __future__ import annotations

import keras
import numpy as np

from pixelcnn_tf.architectures.maths import SharedMaths
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.layers import causal_mask
from pixelcnn_tf.parts import FLOAT32, LABEL_INPUT, LOGITS_OUTPUT, folded_rescaling
from serve.architectures.seed import PART, step_maths
from serve.names import FEATURES, WINDOW, indexed, indexed_names


def _masked(layer, mask_type: str, channels: int) -> np.ndarray:
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    kh, kw, fin, fout = kernel.shape
    return kernel * causal_mask(kh, kw, fin, fout, mask_type, channels)


def fold(model: keras.Model, config: ModelConfig) -> dict[str, np.ndarray]:
    """The seed model's weights folded for one-position evaluation: numpy arrays, no TensorFlow needed to use them.

    kernel_l: (r*k*F_in, F) for the (r = k//2+1, k) window above and left of the position, masked, BN scale folded in.
      Layer 0 reads raw level indices (Rescaling folded in too); layers >= 1 have the centre tap zeroed, because the
      centre is this step's fresh activation, applied through centre_l: (F, F) (Mask B, BN-scaled).
    bias_l: (F,) BN shift (and, for layer 0, the Rescaling offset); embedding_l: (classes, F) BN-scaled label bias.
    head_kernel: (F, head features), head_bias: (head features,) of the output distribution. np.savez / np.load round-trips it for serve's numpy_step_fn.
    """
    k, pad, channels = config.kernel_size, config.kernel_size // 2, config.mask_channels  # the masks' groups
    scale, offset = folded_rescaling(model, config)
    params: dict[str, np.ndarray] = {}
    for index in range(config.num_layers):
        name = f"masked_conv_{index}"
        kernel = _masked(model.get_layer(name), "A" if index == 0 else "B", channels)[: pad + 1]
        if kernel.shape[:2] != (pad + 1, k):
            raise UserError(f"{name} has a {kernel.shape[:2]} kernel, but the config says kernel_size={k}")
        bn = model.get_layer(f"{name}_bn")
        gamma = np.asarray(bn.gamma, np.float64) if bn.scale else 1.0
        beta = np.asarray(bn.beta, np.float64) if bn.center else 0.0
        bn_scale = gamma / np.sqrt(np.asarray(bn.moving_variance, np.float64) + bn.epsilon)
        bias = beta - np.asarray(bn.moving_mean, np.float64) * bn_scale
        if index == 0:
            # conv(x * scale + offset) over a window whose outside holds pad_value (-> exactly 0 after rescaling):
            # linear in x, so fold: (scale * K) @ x + offset * sum(K).
            flat = kernel.reshape(-1, config.filters)
            bias = bias + offset * flat.sum(axis=0) * bn_scale
            flat = flat * scale
        else:
            params[f"centre_{index}"] = (kernel[pad, pad] * bn_scale).astype(np.float32)
            kernel = kernel.copy()
            kernel[pad, pad] = 0.0
            flat = kernel.reshape(-1, config.filters)
        params[f"kernel_{index}"] = (flat * bn_scale).astype(np.float32)
        params[f"bias_{index}"] = np.asarray(bias * np.ones(config.filters), np.float32)
        if config.num_classes:
            embedding = np.asarray(model.get_layer(f"{name}_embedding").embeddings, np.float64)
            params[f"embedding_{index}"] = (embedding * bn_scale).astype(np.float32)
    head = model.get_layer("head")
    params["head_kernel"] = _masked(head, "B", channels)[0, 0].astype(np.float32)
    params["head_bias"] = np.asarray(head.bias, np.float32)
    return params


def step_models(params: dict[str, np.ndarray], config: ModelConfig) -> dict[str, keras.Model]:
    """{"step": a Keras model computing every layer at one position from cached windows} (serve/architectures/seed.py).

    Float32 whatever the global dtype policy (mixed-precision checkpoints too). Inputs: window_0 float32 (B, k//2+1, k, C) level indices (outside the image: (levels-1)/2); window_l, l >= 1,
    float32 (B, k//2+1, k, filters) of layer l-1's cached outputs (outside the image: 0; the centre and the taps
    right of it are ignored); label int32 (B,) when conditional.
    Outputs: features_l (B, filters) for l in 0..num_layers-2, and logits (B, *head_shape): the output head.
    """
    k, r, f = config.kernel_size, config.kernel_size // 2 + 1, config.filters
    inputs = {indexed(WINDOW, 0): keras.Input((r, k, config.channels), name=indexed(WINDOW, 0))}
    for index in range(1, config.num_layers):
        inputs[indexed(WINDOW, index)] = keras.Input((r, k, f), name=indexed(WINDOW, index))
    if config.num_classes:
        inputs[LABEL_INPUT] = keras.Input((), dtype="int32", name=LABEL_INPUT)
    label = inputs.get(LABEL_INPUT)
    windows = [inputs[indexed(WINDOW, n)] for n in range(config.num_layers)]
    # The maths is serve's numpy step's own (serve/architectures/seed.py step_maths), run on TensorFlow ops.
    features, logits = SharedMaths(step_maths, params, name="step")(windows, label)
    outputs = dict(zip(indexed_names(FEATURES, config.num_layers - 1), features))
    outputs[LOGITS_OUTPUT] = keras.layers.Reshape(config.distribution.head_shape, dtype=FLOAT32, name=LOGITS_OUTPUT)(logits)
    return {PART: keras.Model(inputs, outputs, name="pixelcnn_step")}
