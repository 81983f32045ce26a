"""The architecture table (TensorFlow side): how each architecture builds, folds and exports its step models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.gated import build_gated_pixelcnn
from pixelcnn_tf.gated_cached import fold_gated_params, gated_step_models
from pixelcnn_tf.sampler_graph import GatedGraph, SeedGraph
from pixelcnn_tf.sampler_params import gated_graph_params, seed_graph_params
from pixelcnn_tf.seed import build_pixelcnn
from pixelcnn_tf.seed_cached import fold_step_params, seed_step_models
from serve.cached import ARCHITECTURES as STEP_ARCHITECTURES
from serve.step_architecture import StepArchitecture


@dataclass(frozen=True)
class Architecture:
    """One architecture's TensorFlow side; `cached` is its serve side (loop, numpy step, parts)."""

    build: Callable[[ModelConfig], keras.Model]
    fold: Callable[[keras.Model, ModelConfig], dict]  # trained model -> step params (float32 numpy, np.savez-able)
    step_models: Callable[[dict, ModelConfig], dict]  # step params -> {part: Keras step model}, parts as cached.parts
    xla_parts: tuple[str, ...]  # parts the Keras cached sampler compiles with XLA (the rest: plain tf.function)
    cached: StepArchitecture
    graph_params: Callable[[dict, ModelConfig], dict]  # step params -> the sampler graph's weights
    graph: type  # its row and pixel parts in TensorFlow (pixelcnn_tf/sampler_graph.py)
    # The precisions whose train step runs under XLA on a CPU-only machine, by measurement (`python -m bench.training
    # --jit both`, docs/benchmarks.md): XLA fuses the gated stacks' many elementwise ops, but its convolutions are
    # slower than oneDNN's and it has no fast bf16 path, so only gated float32 gains.
    cpu_train_xla: tuple[str, ...] = ()


# One entry per name of serve's table (serve/cached.py): a third architecture is one module per side plus two entries.
ARCHITECTURES: dict[str, Architecture] = {
    "pixelcnn": Architecture(build_pixelcnn, fold_step_params, seed_step_models, ("step",), STEP_ARCHITECTURES["pixelcnn"],
                             seed_graph_params, SeedGraph),
    "gated": Architecture(build_gated_pixelcnn, fold_gated_params, gated_step_models, ("pixel",), STEP_ARCHITECTURES["gated"],
                          gated_graph_params, GatedGraph, cpu_train_xla=("float32",)),
}
assert set(ARCHITECTURES) == set(STEP_ARCHITECTURES), "the TensorFlow and serve architecture tables must name the same"


def architecture(config: ModelConfig) -> Architecture:
    """The table entry config.architecture names (config.validate refuses unknown names)."""
    return ARCHITECTURES[config.validate().architecture]


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
    return config.kernel_size >= architecture(config).cached.min_kernel_size


def has_sampler_graph(config: ModelConfig) -> bool:
    """Whether the sampler graph covers this config: it splits each kernel into rows above and the current row's
    left taps, so it needs a kernel_size >= 3 for both architectures (and a step model, which it is folded from)."""
    return config.kernel_size >= 3 and has_step_model(config)


def step_params(model: keras.Model, config: ModelConfig) -> dict[str, np.ndarray]:
    """The model's weights folded for cached sampling: what serve's numpy step and the step models use."""
    entry = architecture(config)
    if not has_step_model(config):
        raise UserError(f"cached {config.architecture} sampling needs kernel_size >= {entry.cached.min_kernel_size}, "
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


def cached_layout(config: ModelConfig) -> dict:
    """The keyword arguments serve.cached.sample_cached needs besides the request: the step's cache layout."""
    return dict(num_layers=config.num_layers, kernel_size=config.kernel_size, filters=config.filters, levels=config.levels,
                architecture=config.architecture)
