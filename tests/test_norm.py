"""FusedBatchNormalization: Keras BatchNormalization's outputs, gradients and statistics from the fused kernel."""
from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT

from pixelcnn_tf.config import ModelConfig, TrainConfig, save_config
from pixelcnn_tf.model import build_model
from pixelcnn_tf.norm import FusedBatchNormalization
from pixelcnn_tf.run.checkpoints import save_model


def twin_layers(shape, momentum=0.9):
    """A Keras BatchNormalization and a FusedBatchNormalization with the same non-trivial weights."""
    rng = np.random.default_rng(0)
    keras_bn, fused_bn = keras.layers.BatchNormalization(momentum=momentum), FusedBatchNormalization(momentum=momentum)
    for layer in (keras_bn, fused_bn):
        layer.build(shape)
    weights = [rng.uniform(0.5, 2.0, shape[-1]), rng.normal(size=shape[-1]), rng.normal(size=shape[-1]),
               rng.uniform(0.5, 2.0, shape[-1])]  # gamma, beta, moving mean, moving variance
    for layer in (keras_bn, fused_bn):
        layer.set_weights([w.astype(np.float32) for w in weights])
    return keras_bn, fused_bn


def batch(shape, seed):
    return tf.constant(np.random.default_rng(seed).normal(1.5, 3.0, shape).astype(np.float32))


def test_training_outputs_gradients_and_moving_statistics_match_keras():
    shape = (6, 5, 7, 16)
    keras_bn, fused_bn = twin_layers(shape)
    upstream = batch(shape, 99)
    for step in range(3):
        x = batch(shape, step)
        results = []
        for layer in (keras_bn, fused_bn):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            results.append([y] + tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=upstream))
        # Float32 rounding only: the fused kernel sums in another order (outputs are ~unit scale).
        for ours, theirs in zip(results[1], results[0]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused_bn.moving_mean, keras_bn.moving_mean, rtol=1e-5, atol=1e-6)
    # Keras keeps the biased batch variance; the fused kernel's Bessel correction (n/(n-1) = 1.005 here) is undone.
    np.testing.assert_allclose(fused_bn.moving_variance, keras_bn.moving_variance, rtol=1e-5)


def test_inference_is_keras_own_path_exactly():
    shape = (4, 3, 3, 8)
    keras_bn, fused_bn = twin_layers(shape)
    x = batch(shape, 1)
    np.testing.assert_array_equal(fused_bn(x, training=False), keras_bn(x, training=False))


@pytest.mark.parametrize("shape", [(32, 8), (4, 6, 8)])
def test_other_ranks_take_keras_path(shape):
    keras_bn, fused_bn = twin_layers(shape)
    x = batch(shape, 2)
    np.testing.assert_array_equal(fused_bn(x, training=True), keras_bn(x, training=True))
    np.testing.assert_array_equal(fused_bn.moving_variance, keras_bn.moving_variance)


def test_bfloat16_policy_computes_statistics_in_float32():
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    x = tf.cast(batch((4, 5, 5, 8), 3), tf.bfloat16)
    y = layer(x, training=True)
    assert y.dtype == tf.bfloat16 and layer.moving_variance.dtype == "float32"
    assert np.isfinite(np.asarray(layer.moving_variance)).all()


@pytest.mark.slow
def test_load_checkpoint_registers_the_fused_layer_in_a_fresh_process(tmp_path):
    config = TrainConfig(model=ModelConfig(num_layers=2, kernel_size=3, filters=4, levels=4))
    model = build_model(config.model)
    assert isinstance(model.get_layer("masked_conv_0_bn"), FusedBatchNormalization)
    save_config(config, str(tmp_path))
    save_model(model, str(tmp_path))
    code = ("from pixelcnn_tf.run.checkpoints import load_checkpoint; import sys; "
            "print(type(load_checkpoint(sys.argv[1])[0].get_layer('masked_conv_1_bn')).__name__)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "FusedBatchNormalization"
