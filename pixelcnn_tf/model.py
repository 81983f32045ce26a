"""What the rest of the code asks of a model config's architecture (pixelcnn_tf/architectures/ holds the table)."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pixelcnn_tf.architectures import Architecture, get
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from serve.metadata import ModelSpec
from serve.names import GRAPH_INPUTS, LABEL


def architecture(config: ModelConfig) -> Architecture:
    """The record config.architecture names (config.validate refuses unknown names)."""
    return get(config.validate().architecture)


def build_model(config: ModelConfig) -> keras.Model:
    """Build the network that config.architecture names."""
    return architecture(config).build(config)


def train_jit(config: ModelConfig, precision: str) -> bool | str:
    """jit_compile for model.fit: the table's measured choice in a one-process run on CPU, else Keras's "auto"
    (XLA with a GPU, never under a tf.distribute strategy: both unmeasured here)."""
    if tf.distribute.has_strategy() or tf.config.list_physical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return "auto"
    return precision in architecture(config).cpu_train_xla


def has_step_model(config: ModelConfig) -> bool:
    """Whether cached sampling covers this config (the gated step needs kernel_size >= 3)."""
    return config.kernel_size >= architecture(config).serving.min_kernel_size


def has_sampler_graph(config: ModelConfig) -> bool:
    """Whether the sampler graph covers this config: it splits each kernel into rows above and the current row's
    left taps, so it needs a kernel_size >= 3 for both architectures (and a step model, which it is folded from)."""
    return config.kernel_size >= 3 and has_step_model(config)


def step_params(model: keras.Model, config: ModelConfig) -> dict[str, np.ndarray]:
    """The model's weights folded for cached sampling: what serve's numpy step and the step models use."""
    entry = architecture(config)
    if not has_step_model(config):
        raise UserError(f"cached {config.architecture} sampling needs kernel_size >= {entry.serving.min_kernel_size}, "
                        f"got {config.kernel_size}; use --sampler naive")
    return entry.fold(model, config)


def graph_params(step_params: dict, config: ModelConfig) -> dict[str, np.ndarray]:
    """The sampler graph's weights from the step params (step_params() or np.load of an export's step_params.npz)."""
    if not has_sampler_graph(config):
        raise UserError(f"the sampler graph needs kernel_size >= 3, got {config.kernel_size}; use --sampler cached or naive")
    return architecture(config).graph_params(step_params, config)


def step_models(model: keras.Model, config: ModelConfig) -> dict[str, keras.Model]:
    """{part: Keras step model} for cached sampling, folded from model."""
    return architecture(config).step_models(step_params(model, config), config)


def model_spec(config: ModelConfig) -> ModelSpec:
    """What serve's samplers know of the model: its image grid, levels, classes and output distribution."""
    return ModelSpec(config.height, config.width, config.channels, config.levels, config.num_classes, config.output,
                     config.mixtures)


def cached_layout(config: ModelConfig) -> dict:
    """The keyword arguments serve.cached.sample_cached needs besides the request: the step's cache layout."""
    return dict(num_layers=config.num_layers, kernel_size=config.kernel_size, filters=config.filters, levels=config.levels,
                architecture=config.architecture)


def input_names(config: ModelConfig) -> list[str]:
    return list(GRAPH_INPUTS) + ([LABEL] if config.num_classes else [])


def graph_function(params: dict, config: ModelConfig, update: str = "dynamic_update_slice", variables=None):
    """The sampler graph of config's architecture over params (pixelcnn_tf.model.graph_params)."""
    from pixelcnn_tf.sampler_graph import sampler_function  # traced only where a graph is asked for

    return sampler_function(params, config, architecture(config).graph, update, variables)


def tf_graph_runner(params: dict, config: ModelConfig):
    """run(feeds dict) -> {"images": numpy}: the graph in TensorFlow, for serve.graph.GraphRunner (Keras checkpoints)."""
    function = graph_function(params, config)
    names = input_names(config)
    return lambda feeds: {name: value.numpy() for name, value in function(*[feeds[n] for n in names]).items()}
