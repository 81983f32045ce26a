"""Cached sampling for the seed PixelCNN: fold a trained model into a one-position "step model" (serve/architectures/seed.py)."""
from __future__ import annotations

import keras
import numpy as np

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.layers import causal_mask
from pixelcnn_tf.parts import FLOAT32, LABEL_INPUT, LOGITS_OUTPUT, folded_rescaling
from serve.architectures.seed import PART
from serve.names import FEATURES, WINDOW, indexed


@keras.saving.register_keras_serializable(package="pixelcnn_tf")
class FlattenWindow(keras.layers.Layer):
    """(B, r, k, F) -> (B, r*k*F) with one constant-shape reshape (Flatten adds shape ops per call)."""

    def call(self, inputs):
        return keras.ops.reshape(inputs, (-1, inputs.shape[1] * inputs.shape[2] * inputs.shape[3]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] * input_shape[2] * input_shape[3])


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
    outputs = {}
    x = None
    for index in range(config.num_layers):
        window = FlattenWindow(dtype=FLOAT32, name=f"flatten_{index}")(inputs[indexed(WINDOW, index)])
        dense = keras.layers.Dense(f, dtype=FLOAT32, name=f"context_{index}")
        terms = [dense(window)]
        dense.set_weights([params[f"kernel_{index}"], params[f"bias_{index}"]])
        if index:
            centre = keras.layers.Dense(f, use_bias=False, dtype=FLOAT32, name=f"centre_{index}")
            terms.append(centre(x))
            centre.set_weights([params[f"centre_{index}"]])
        if config.num_classes:
            embedding = keras.layers.Embedding(config.num_classes, f, dtype=FLOAT32, name=f"embedding_{index}")
            terms.append(embedding(inputs[LABEL_INPUT]))
            embedding.set_weights([params[f"embedding_{index}"]])
        x = keras.layers.Add(dtype=FLOAT32, name=f"sum_{index}")(terms) if len(terms) > 1 else terms[0]
        x = keras.layers.ReLU(dtype=FLOAT32, name=indexed(FEATURES, index))(x)
        if index < config.num_layers - 1:
            outputs[indexed(FEATURES, index)] = x
    head = keras.layers.Dense(config.distribution.features, dtype=FLOAT32, name="head")
    logits = head(x)
    head.set_weights([params["head_kernel"], params["head_bias"]])
    outputs[LOGITS_OUTPUT] = keras.layers.Reshape(config.distribution.head_shape, dtype=FLOAT32, name=LOGITS_OUTPUT)(logits)
    return {PART: keras.Model(inputs, outputs, name="pixelcnn_step")}
