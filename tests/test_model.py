"""The seed PixelCNN: exact shapes from the config, causality in generation order, save/load round trip."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers import logits_of, randomize

from pixelcnn_tf.config import ModelConfig, TrainConfig, load_config, save_config, to_dict, train_config_from_dict
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.layers import MaskedConv2D
from pixelcnn_tf.model import build_model


def perturbation_effects(model, config: ModelConfig):
    """changed[p, q]: does perturbing input sub-pixel p change the logits of sub-pixel q? (generation order)"""
    h, w, c = config.height, config.width, config.channels
    rng = np.random.default_rng(1)
    base = rng.integers(0, config.levels, (1, h, w, c)).astype(np.float32)
    batch = np.repeat(base, h * w * c, axis=0)
    for p in range(h * w * c):
        i, j, ch = np.unravel_index(p, (h, w, c))
        batch[p, i, j, ch] = (base[0, i, j, ch] + config.levels // 2 + 1) % config.levels
    # The reference rides in the same batch: oneDNN may round a batch of 1 differently from a batch of P.
    both = logits_of(model, np.concatenate([batch, base]))
    moved, reference = both[:-1], both[-1:]
    diff = np.abs(moved - reference).max(axis=-1)  # (P, h, w, c)
    return diff.reshape(h * w * c, h * w * c) > 1e-6


@pytest.mark.parametrize("channels", [1, 3])
def test_causality_in_generation_order(channels):
    config = ModelConfig(height=6, width=6, channels=channels, levels=4, num_layers=3, kernel_size=3, filters=12)
    model = randomize(build_model(config))
    changed = perturbation_effects(model, config)
    positions = np.arange(changed.shape[0])
    # Perturbing sub-pixel p never changes the logits of any sub-pixel q <= p (raster, then R -> G -> B).
    assert not changed[positions[:, None] >= positions[None, :]].any()
    # ...and the receptive field really reaches back: the next sub-pixel depends on the previous one.
    assert all(changed[p, p + 1] for p in range(changed.shape[0] - 1) if (p + 1) % (config.width * channels))
    # The very first sub-pixel's logits depend on nothing.
    zeros = logits_of(model, np.zeros((1, 6, 6, channels)))
    ones = logits_of(model, np.full((1, 6, 6, channels), 3.0))
    np.testing.assert_array_equal(zeros[0, 0, 0, 0], ones[0, 0, 0, 0])
    assert not np.allclose(zeros[0, 0, 0, -1] if channels > 1 else zeros[0, 0, 1, 0], ones[0, 0, 0, -1] if channels > 1 else ones[0, 0, 1, 0])


def test_rgb_channel_order_within_a_pixel():
    config = ModelConfig(height=4, width=4, channels=3, levels=4, num_layers=2, kernel_size=3, filters=9)
    changed = perturbation_effects(randomize(build_model(config)), config)
    p = (1 * 4 + 1) * 3  # pixel (1, 1): R, G, B at p, p+1, p+2
    assert changed[p, p + 1] and changed[p, p + 2] and changed[p + 1, p + 2]  # G sees R; B sees R and G
    assert not changed[p + 1, p] and not changed[p + 2, p + 1]


def test_seed_architecture_matches_the_seed():
    config = ModelConfig()
    model = build_model(config)
    convs = [layer for layer in model.layers if isinstance(layer, MaskedConv2D) and layer.name != "head"]
    assert [layer.mask_type for layer in convs] == ["A"] + ["B"] * 7
    assert all(layer.kernel_size == (7, 7) and layer.filters == 64 and not layer.use_bias for layer in convs)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 8
    assert model.output.shape[1:] == (28, 28, 1, 256)
    assert model.name == "pixelcnn"


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_levels_set_the_head(levels):
    model = build_model(ModelConfig(height=5, width=5, num_layers=1, kernel_size=3, filters=4, levels=levels))
    assert model.output.shape[1:] == (5, 5, 1, levels)


@pytest.mark.parametrize("levels", [1, 257])
def test_levels_out_of_range_is_an_error(levels):
    with pytest.raises(UserError, match="levels must be in 2..256"):
        build_model(ModelConfig(levels=levels))


def test_conditional_label_changes_logits():
    config = ModelConfig(height=5, width=5, num_layers=2, kernel_size=3, filters=8, levels=4, num_classes=10)
    model = randomize(build_model(config))
    image = np.zeros((2, 5, 5, 1))
    logits = logits_of(model, image, labels=[3, 7])
    assert not np.allclose(logits[0], logits[1])


def test_config_round_trip(tmp_path):
    config = TrainConfig(model=ModelConfig(levels=2, num_layers=3, num_classes=10), epochs=4, run_name="x")
    assert train_config_from_dict(json.loads(json.dumps(to_dict(config)))) == config
    save_config(config, str(tmp_path))
    assert load_config(str(tmp_path)) == config


def test_config_with_unknown_key_is_an_error(tmp_path):
    data = to_dict(TrainConfig())
    data["model"]["depth"] = 3
    with pytest.raises(UserError, match="depth"):
        train_config_from_dict(data)


def test_keras_save_load_gives_identical_logits(tmp_path):
    config = ModelConfig(height=6, width=6, channels=3, num_layers=2, kernel_size=3, filters=9, levels=8, num_classes=4)
    model = randomize(build_model(config))
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.models.load_model(path, compile=False)
    images = np.random.default_rng(2).integers(0, 8, (3, 6, 6, 3))
    np.testing.assert_array_equal(logits_of(model, images, [0, 1, 3]), logits_of(restored, images, [0, 1, 3]))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_logits_float32(policy):
    keras.config.set_dtype_policy(policy)
    try:
        model = build_model(ModelConfig(height=5, width=5, num_layers=2, kernel_size=3, filters=8, levels=4))
        assert model.get_layer("masked_conv_1").compute_dtype == policy.split("_")[1]
        assert model.output.dtype == "float32"
        assert logits_of(model, np.zeros((1, 5, 5, 1))).dtype == np.float32
    finally:
        keras.config.set_dtype_policy("float32")


def test_train_step_xla_follows_the_table_on_cpu_only():
    import tensorflow as tf

    from pixelcnn_tf.model import train_jit

    assert not tf.config.list_physical_devices("GPU"), "this test describes a CPU-only machine"
    gated = ModelConfig(architecture="gated", levels=2, num_layers=2, kernel_size=3, filters=4)
    assert train_jit(gated, "float32") is True  # measured faster with XLA (docs/benchmarks.md)
    assert train_jit(gated, "mixed_bfloat16") is False
    assert train_jit(ModelConfig(), "float32") is False
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        assert train_jit(gated, "float32") == "auto"  # under a strategy: Keras's own rule, unmeasured here
