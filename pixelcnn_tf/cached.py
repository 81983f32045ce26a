"""Cached sampling for the seed PixelCNN: fold a trained model into a one-position "step model" for every backend.

The gated architecture's pixel and row steps live in pixelcnn_tf/gated_cached.py; keras_cached_sampler serves both.
"""
from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.layers import causal_mask
from serve.cached import CachedSampler
from serve.metadata import ModelSpec
from serve.step_runtimes import seed_step

LABEL_INPUT = "label"
LOGITS_OUTPUT = "logits"
FLOAT32 = "float32"


def window_name(layer: int) -> str:
    """Step-model input `layer`: window_0 is the image, window_l (l >= 1) holds layer l-1's cached outputs."""
    return f"window_{layer}"


def features_name(layer: int) -> str:
    """Step-model output: layer `layer`'s new activation at the current position (written to cache layer+1)."""
    return f"features_{layer}"


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


def fold_step_params(model: keras.Model, config: ModelConfig) -> dict[str, np.ndarray]:
    """The seed model's weights folded for one-position evaluation: numpy arrays, no TensorFlow needed to use them.

    kernel_l: (r*k*F_in, F) for the (r = k//2+1, k) window above and left of the position, masked, BN scale folded in.
      Layer 0 reads raw level indices (Rescaling folded in too); layers >= 1 have the centre tap zeroed, because the
      centre is this step's fresh activation, applied through centre_l: (F, F) (Mask B, BN-scaled).
    bias_l: (F,) BN shift (and, for layer 0, the Rescaling offset); embedding_l: (classes, F) BN-scaled label bias.
    head_kernel: (F, C*levels), head_bias: (C*levels,). np.savez / np.load round-trips it for serve.cached.numpy_step_fn.
    """
    config.validate()
    if config.architecture != "pixelcnn":
        raise UserError(f"cached sampling covers the seed 'pixelcnn' architecture only, not {config.architecture!r}")
    k, pad, channels = config.kernel_size, config.kernel_size // 2, config.channels
    rescale = model.get_layer("scale")
    scale, offset = float(rescale.scale), float(rescale.offset)
    if abs(-offset / scale - (config.levels - 1) / 2) > 1e-3:
        # serve.cached pads the image cache with (levels-1)/2: it must be the level that rescales to 0.
        raise UserError(f"the model's Rescaling maps level {-offset / scale} to 0, not (levels-1)/2; wrong config?")
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


def build_step_model(model: keras.Model, config: ModelConfig) -> keras.Model:
    """A Keras model computing every layer at one position from cached windows (see serve/cached.py).

    Inputs: window_0 float32 (B, k//2+1, k, C) level indices (outside the image: (levels-1)/2); window_l, l >= 1,
    float32 (B, k//2+1, k, filters) of layer l-1's cached outputs (outside the image: 0; the centre and the taps
    right of it are ignored); label int32 (B,) when conditional.
    Outputs: features_l (B, filters) for l in 0..num_layers-2, and logits (B, C, levels) for all channels.
    """
    params = fold_step_params(model, config)
    return step_model_from_params(params, config)


def step_model_from_params(params: dict[str, np.ndarray], config: ModelConfig) -> keras.Model:
    """The step model from folded weights; float32 whatever the global dtype policy (mixed-precision checkpoints too)."""
    k, r, f = config.kernel_size, config.kernel_size // 2 + 1, config.filters
    inputs = {window_name(0): keras.Input((r, k, config.channels), name=window_name(0))}
    for index in range(1, config.num_layers):
        inputs[window_name(index)] = keras.Input((r, k, f), name=window_name(index))
    if config.num_classes:
        inputs[LABEL_INPUT] = keras.Input((), dtype="int32", name=LABEL_INPUT)
    outputs = {}
    x = None
    for index in range(config.num_layers):
        window = FlattenWindow(dtype=FLOAT32, name=f"flatten_{index}")(inputs[window_name(index)])
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
        x = keras.layers.ReLU(dtype=FLOAT32, name=features_name(index))(x)
        if index < config.num_layers - 1:
            outputs[features_name(index)] = x
    head = keras.layers.Dense(config.channels * config.levels, dtype=FLOAT32, name="head")
    logits = head(x)
    head.set_weights([params["head_kernel"], params["head_bias"]])
    outputs[LOGITS_OUTPUT] = keras.layers.Reshape((config.channels, config.levels), dtype=FLOAT32, name=LOGITS_OUTPUT)(logits)
    return keras.Model(inputs, outputs, name="pixelcnn_step")


def cached_layout(config: ModelConfig) -> dict:
    """The keyword arguments serve.cached.sample_cached needs besides the request: the step model's cache layout."""
    return dict(num_layers=config.num_layers, kernel_size=config.kernel_size, filters=config.filters, levels=config.levels,
                architecture=config.architecture)


def compiled_runner(step_model: keras.Model, jit_compile: bool = True):
    """run(feeds dict of numpy) -> outputs dict of numpy through one concrete tf.function (any batch size).

    Like serve.step_runtimes' onnx/tflite runners it carries .inputs {name: shape} and .outputs, so the same adapters
    (seed_step, step_from_runners) turn it into step functions. The concrete function skips tf.function's per-call
    signature matching: a large share of a tiny step's cost.
    """
    import tensorflow as tf

    names = list(step_model.input)
    specs = {name: tf.TensorSpec((None, *step_model.input[name].shape[1:]), step_model.input[name].dtype) for name in names}
    traced = tf.function(lambda feeds: step_model(feeds, training=False), input_signature=[specs], jit_compile=jit_compile)
    concrete = traced.get_concrete_function()

    def run(feeds: dict) -> dict:
        out = concrete({name: tf.convert_to_tensor(np.ascontiguousarray(feeds[name], specs[name].dtype.as_numpy_dtype))
                        for name in names})
        return {name: value.numpy() for name, value in out.items()}

    run.inputs = {name: list(step_model.input[name].shape) for name in names}
    run.outputs = list(step_model.output)
    return run


def keras_step_fn(step_model: keras.Model, jit_compile: bool = True):
    """A step function for serve.cached.sample_cached: one compiled (tf.function) call per sub-pixel, any batch.

    XLA fuses the step's ~50 small ops into one program: 10-20% faster per step on CPU; it compiles once per batch size.
    """
    return seed_step(compiled_runner(step_model, jit_compile))


def keras_cached_sampler(model: keras.Model, config: ModelConfig, jit_compile: bool = True) -> CachedSampler:
    """A Sampler-compatible cached sampler over a Keras checkpoint (what `generate.py --sampler cached` needs)."""
    spec = ModelSpec(config.height, config.width, config.channels, config.levels, config.num_classes)
    if config.architecture == "gated":
        from pixelcnn_tf.gated_cached import build_gated_step_models, keras_gated_step

        step_fn = keras_gated_step(*build_gated_step_models(model, config), jit_compile=jit_compile)
        return CachedSampler(step_fn, spec, cached_layout(config), "keras")
    step_fn = keras_step_fn(build_step_model(model, config), jit_compile=jit_compile)
    return CachedSampler(step_fn, spec, cached_layout(config), "keras")


def export_step_model(step_model: keras.Model, out_dir: str, formats=("tflite", "onnx")) -> dict:
    """Export like the full model: SavedModel (model.export, always), then TFLite builtins and ONNX (opset 17) from it.

    Returns {"saved_model": dir, "tflite": path, "onnx": path, "inputs": [...], "outputs": [...]}; tensor names are
    the step model's input/output names (the serving signature keys), the batch dimension dynamic everywhere.
    """
    unknown = set(formats) - {"tflite", "onnx"}
    if unknown:
        raise UserError(f"unknown export format(s) {sorted(unknown)}; choose from tflite, onnx")
    os.makedirs(out_dir, exist_ok=True)
    saved = os.path.join(out_dir, "step_saved_model")
    step_model.export(saved, verbose=False)
    result = {
        "saved_model": saved,
        "inputs": list(step_model.input),
        "outputs": list(step_model.output),
    }
    if "tflite" in formats:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        path = os.path.join(out_dir, "step.tflite")
        with open(path, "wb") as f:
            f.write(converter.convert())
        result["tflite"] = path
    if "onnx" in formats:
        path = os.path.join(out_dir, "step.onnx")
        command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--opset", "17", "--output", path]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"tf2onnx failed on the step model:\n{done.stderr[-2000:]}")
        result["onnx"] = path
    return result
