"""What one architecture tells the rest of the code (TensorFlow side): the record each architecture folder registers."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

# The record is read before TensorFlow loads (flag checks, presets, memory estimate) and by pixelcnn_tf.config
# itself, so it imports neither: `config` below is a pixelcnn_tf.config.ModelConfig.


@dataclass(frozen=True)
class Architecture:
    """One architecture, built by keyword in its folder's __init__.py.

    Its folder holds three modules, imported the first time they are asked for (they import TensorFlow):
    network.py `build(config) -> keras.Model` (and registers its serializable layers); step.py
    `fold(model, config) -> params` (float32 numpy, np.savez-able) and `step_models(params, config) -> {part: Keras
    model}`, parts as its serve record's; graph.py `graph_params(params, config)` and `Graph`, its part of the sampler
    graph (pixelcnn_tf/sampler_graph.py). Its serve side is serve/architectures/<module>.py, found by name.
    """

    name: str  # as config.json, metadata.json and --architecture spell it (serve/names.py ARCHITECTURE_NAMES)
    package: str  # the folder's module path
    parameter_count: Callable[[Any], int]  # weights, to within the few biases and norms left out
    # Feature maps a layer keeps for the backward pass, gradients counted, in units of batch x H x W x filters.
    maps_per_layer: int
    xla_parts: tuple[str, ...]  # step-model parts the Keras cached sampler compiles with XLA (the rest: tf.function)
    # The precisions whose train step runs under XLA on a CPU-only machine, by measurement (`python -m bench.training
    # --jit both`, docs/benchmarks.md): XLA fuses many elementwise ops, but its convolutions are slower than
    # oneDNN's and it has no fast bf16 path.
    cpu_train_xla: tuple[str, ...] = ()
    presets: dict[str, dict] = field(default_factory=dict)  # train.py --preset NAME: overrides of the seed defaults

    def module(self, part: str) -> Any:
        return importlib.import_module(f"{self.package}.{part}")

    @property
    def serving(self):
        """The serve side's record (numpy step, parts, loop, default threads): serve/architectures/."""
        from serve.architectures import step_architecture

        return step_architecture(self.name)

    def build(self, config):
        return self.module("network").build(config)

    def fold(self, model, config) -> dict:
        return self.module("step").fold(model, config)

    def step_models(self, params: dict, config) -> dict:
        return self.module("step").step_models(params, config)

    def graph_params(self, params: dict, config) -> dict:
        return self.module("graph").graph_params(params, config)

    @property
    def graph(self) -> type:
        return self.module("graph").Graph
