"""Timed variants of a training step per op class: convolutions, BatchNorm, the loss, the optimizer, the input."""
from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

try:
    from pixelcnn_tf.norm import FusedBatchNormalization
except ImportError:  # a checkout from before the fused layer (bench.training run there for a before/after table)
    FusedBatchNormalization = ()

# The layer classes whose forward + backward make up each op class (the rest of a step is "other").
CONV_TYPES = (keras.layers.Conv2D,)
BN_TYPES = (keras.layers.BatchNormalization,)


def best_seconds(fn, repeats: int) -> float:
    """The fastest of `repeats` calls (each call's result is fetched, so the work is finished)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn())
        times.append(time.perf_counter() - start)
    return min(times)


def layers_step(layers: list, shaped_like: list, batch: int, jit_compile: bool):
    """A tf.function running forward + backward (input and weight gradients) of each of `layers` alone, on random
    inputs of the shapes and dtypes the matching layer of `shaped_like` sees in the model."""
    rng = np.random.default_rng(0)
    inputs, cotangents = [], []
    for like in shaped_like:
        inputs.append(tf.constant(rng.standard_normal((batch,) + tuple(like.input.shape[1:])), like.compute_dtype))
        cotangents.append(tf.constant(rng.standard_normal((batch,) + tuple(like.output.shape[1:])), like.compute_dtype))
    variables = [v for layer in layers for v in layer.trainable_variables]

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = [layer(x, training=True) for layer, x in zip(layers, inputs)]
        return tape.gradient(outputs, inputs + variables, output_gradients=cotangents)

    return step


def class_step(model: keras.Model, types: tuple, batch: int, jit_compile: bool):
    """layers_step over the model's layers of `types`; None when it has none."""
    layers = [layer for layer in model.layers if isinstance(layer, types)]
    return layers_step(layers, layers, batch, jit_compile) if layers else None


def unfused_batchnorm_step(model: keras.Model, batch: int, jit_compile: bool):
    """The model's fused BatchNorms timed as Keras's own layer (same config and weights): what fusing saves."""
    fused = [layer for layer in model.layers if isinstance(layer, FusedBatchNormalization)]
    twins = []
    for layer in fused:
        twin = keras.layers.BatchNormalization.from_config(layer.get_config())
        twin.build(layer.input.shape)
        twin.set_weights(layer.get_weights())
        twins.append(twin)
    return layers_step(twins, fused, batch, jit_compile) if fused else None


def loss_step(model: keras.Model, targets: tf.Tensor, jit_compile: bool):
    """Forward + backward of the model's compiled loss on random logits of the model's output shape."""
    logits = tf.constant(np.random.default_rng(1).standard_normal(targets.shape + (model.output.shape[-1],)),
                         dtype=model.output.dtype)

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = model.loss(targets, logits)
        return tape.gradient(loss, logits)

    return step


def optimizer_step(model: keras.Model, jit_compile: bool):
    """One optimizer update of every trainable variable from constant gradients."""
    grads = [tf.ones(v.shape, v.dtype) * 1e-6 for v in model.trainable_variables]

    @tf.function(jit_compile=jit_compile)
    def step():
        model.optimizer.apply(grads, model.trainable_variables)
        return tf.constant(0)

    return step


def input_batches_per_second(dataset: tf.data.Dataset, batches: int) -> float:
    """Batches/s the input pipeline delivers alone (after one warm-up pass fills its cache)."""
    for _ in dataset.take(batches):
        pass
    start = time.perf_counter()
    for _ in dataset.take(batches):
        pass
    return batches / (time.perf_counter() - start)


def breakdown(model: keras.Model, targets: tf.Tensor, batch: int, jit_compile: bool, repeats: int):
    """({op class: seconds per step alone}, {comparison: seconds}); classes the model lacks are left out."""
    steps = {
        "convolutions": class_step(model, CONV_TYPES, batch, jit_compile),
        "batchnorm": class_step(model, BN_TYPES, batch, jit_compile),
        "loss": loss_step(model, targets, jit_compile),
        "optimizer": optimizer_step(model, jit_compile),
    }
    comparisons = {"batchnorm as Keras's own unfused layer": unfused_batchnorm_step(model, batch, jit_compile)}
    steps = {name: fn for name, fn in steps.items() if fn is not None}
    comparisons = {name: fn for name, fn in comparisons.items() if fn is not None}
    for fn in list(steps.values()) + list(comparisons.values()):
        best_seconds(fn, 1)  # trace and warm up first
    timed = {}
    for _ in range(repeats):  # alternate the variants, so load changes hit all alike
        for name, fn in list(steps.items()) + list(comparisons.items()):
            timed[name] = min(timed.get(name, float("inf")), best_seconds(fn, 1))
    return {name: timed[name] for name in steps}, {name: timed[name] for name in comparisons}
