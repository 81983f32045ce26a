"""The sampler graph as an export writes it: a SavedModel (signature "sample") and its contract for metadata.json."""
from __future__ import annotations

import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.model import graph_function
from serve.names import GRAPH_INPUTS, IMAGES, LABEL, SAMPLE_SIGNATURE


def save_graph(params: dict, config: ModelConfig, path: str, update: str = "dynamic_update_slice") -> str:
    """A SavedModel at path whose one signature, "sample", is the sampler graph with its weights as constants (what
    the converters read). Only the signature: tracking the function too would store its graph twice."""
    function = graph_function(params, config, update)
    tf.saved_model.save(tf.Module(), path, signatures={SAMPLE_SIGNATURE: function.get_concrete_function()})
    return path


class GraphModule(tf.Module):
    """The sampler graph reading its weights from variables: a SavedModel keeps them in its variable shards (which
    export shards by size), not as constants in saved_model.pb. .sample is the function."""

    def __init__(self, params: dict, config: ModelConfig):
        super().__init__(name="sampler_graph")
        self.weights = {name: tf.Variable(value, trainable=False, name=name) for name, value in params.items()}
        self.sample = graph_function(params, config, variables=self.weights)


def contract(config: ModelConfig) -> dict:
    """The sampler graph's inputs and output as metadata.json describes them."""
    h, w, c = config.height, config.width, config.channels
    shape = f"(N, {h}, {w}, {c})"
    uniforms, temperature, prefix, start = GRAPH_INPUTS
    inputs = {
        uniforms: f"float32 {shape} in [0, 1): serve.sampling.uniforms(seed) as float32, one per sub-pixel",
        temperature: "float32 scalar > 0: logits are divided by it before the draw",
        prefix: f"float32 {shape} level indices 0..{config.levels - 1}: copied for sub-pixels before start",
        start: f"int32 scalar in 0..{h * w * c}: raster sub-pixels (row, column, then channel) before it come from "
               "prefix, the rest are drawn; 0 samples from scratch",
    }
    if config.num_classes:
        inputs[LABEL] = f"int32 (N,) class ids in 0..{config.num_classes - 1}"
    return {"inputs": inputs, "output": {IMAGES: f"int32 {shape} level indices"}, "signature": SAMPLE_SIGNATURE}
