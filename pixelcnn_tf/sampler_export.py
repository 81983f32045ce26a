"""Convert the sampler graph: a SavedModel signature "sample", TFLite (builtin ops only) and ONNX (tf2onnx, Loop)."""
from __future__ import annotations

import os

import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.sampler_graph import OUTPUT, sampler_function

SIGNATURE = "sample"
ONNX_OPSET = 17
FILES = {"tflite": "sampler.tflite", "onnx": "sampler.onnx"}


def input_names(config: ModelConfig) -> list[str]:
    return ["uniforms", "temperature", "prefix", "start"] + (["label"] if config.num_classes else [])


def sampler_module(params: dict, config: ModelConfig) -> tf.Module:
    """A tf.Module whose .sample is the graph; save it with signatures={"sample": module.sample}."""
    module = tf.Module()
    module.sample = sampler_function(params, config)
    return module


def write_tflite(saved_model_dir: str, path: str) -> str:
    """TFLite from the SavedModel's "sample" signature, builtin ops only (WHILE, DYNAMIC_UPDATE_SLICE, CUMSUM...)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with open(path, "wb") as f:
        f.write(converter.convert())
    return path


def write_onnx(params: dict, config: ModelConfig, path: str) -> str:
    """ONNX (opset 17) of the graph with ScatterND cache writes: tf2onnx maps no dynamic-update-slice op."""
    import tf2onnx

    function = sampler_function(params, config, update="scatter_nd")
    tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=ONNX_OPSET,
                                  output_path=path)
    return path


def convert_sampler(params: dict, config: ModelConfig, out_dir: str, formats=("tflite", "onnx")) -> dict:
    """Write out_dir/sampler_saved_model (signature "sample") and the sampler files; returns {format: path}."""
    os.makedirs(out_dir, exist_ok=True)
    saved = os.path.join(out_dir, "sampler_saved_model")
    module = sampler_module(params, config)
    tf.saved_model.save(module, saved, signatures={SIGNATURE: module.sample.get_concrete_function()})
    written = {"saved_model": saved}
    if "tflite" in formats:
        written["tflite"] = write_tflite(saved, os.path.join(out_dir, FILES["tflite"]))
    if "onnx" in formats:
        written["onnx"] = write_onnx(params, config, os.path.join(out_dir, FILES["onnx"]))
    return written


def contract(config: ModelConfig) -> dict:
    """The sampler graph's inputs and output as metadata.json describes them."""
    h, w, c = config.height, config.width, config.channels
    shape = f"(N, {h}, {w}, {c})"
    inputs = {
        "uniforms": f"float32 {shape} in [0, 1): serve.sampling.uniforms(seed) as float32, one per sub-pixel",
        "temperature": "float32 scalar > 0: logits are divided by it before the draw",
        "prefix": f"float32 {shape} level indices 0..{config.levels - 1}: copied for sub-pixels before start",
        "start": f"int32 scalar in 0..{h * w * c}: raster sub-pixels (row, column, then channel) before it come from "
                 "prefix, the rest are drawn; 0 samples from scratch",
    }
    if config.num_classes:
        inputs["label"] = f"int32 (N,) class ids in 0..{config.num_classes - 1}"
    return {"inputs": inputs, "output": {OUTPUT: f"int32 {shape} level indices"}, "signature": SIGNATURE}


def keras_graph_sampler(model, config: ModelConfig):
    """A serve.Sampler over a Keras model whose sample() and complete() run the sampler graph in TensorFlow."""
    from pixelcnn_tf.generation import keras_sampler
    from pixelcnn_tf.sampler_params import graph_params
    from serve.graph import GraphRunner

    sampler = keras_sampler(model, config)
    function = sampler_function(graph_params(model, config), config)
    names = input_names(config)
    sampler.graph = GraphRunner(lambda feeds: {k: v.numpy() for k, v in function(*[feeds[n] for n in names]).items()},
                                sampler.spec)
    sampler.sampler = "graph"
    return sampler
