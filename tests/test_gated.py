"""Gated PixelCNN: exact receptive field (causal, no blind spot) vs the seed's blind spot, labels, saving, export."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import ROOT, logits_of, one_change_per_image
from helpers import randomize_gated as randomize

from pixelcnn_tf.architectures.gated.network import GatedActivation, RowMaskedConv2D, gate_groups, row_mask
from pixelcnn_tf.config import ModelConfig, TrainConfig, save_config
from pixelcnn_tf.model import build_model
from pixelcnn_tf.run.checkpoints import save_model


def influence(model, config: ModelConfig) -> np.ndarray:
    """influence[p, q] > 0: perturbing sub-pixel p moves the logits of sub-pixel q (generation order indices).

    Each perturbed image is compared with the unperturbed one at the same batch position, so sub-pixels
    outside the receptive field give exactly 0 rather than batch-dependent float noise.
    """
    h, w, c = config.height, config.width, config.channels
    reference, moved = one_change_per_image(config)
    diff = np.abs(logits_of(model, moved) - logits_of(model, reference)).max(axis=-1)
    return diff.reshape(h * w * c, h * w * c)


def gated_field(config: ModelConfig) -> np.ndarray:
    """field[p, q]: p lies in the gated network's receptive field of q.

    L layers of radius r reach L*r pixels left on the current row, and through the vertical stack
    (one row shifted) rows 1..1+L*r above, L*r columns either side; plus earlier colours of the pixel.
    """
    h, w, c = config.height, config.width, config.channels
    reach = config.num_layers * (config.kernel_size // 2)
    i, j, ch = np.unravel_index(np.arange(h * w * c), (h, w, c))
    up = i[None, :] - i[:, None]  # rows from p up to q
    right = j[:, None] - j[None, :]  # columns p lies right of q
    same_row = (up == 0) & (-reach <= right) & (right <= -1)
    above = (1 <= up) & (up <= 1 + reach) & (np.abs(right) <= reach)
    same_pixel = (up == 0) & (right == 0) & (ch[:, None] < ch[None, :])
    return same_row | above | same_pixel


def index(config, i, j, ch=0):
    return int(np.ravel_multi_index((i, j, ch), (config.height, config.width, config.channels)))


@pytest.mark.parametrize("channels", [1, 3])
def test_gated_receptive_field_is_exact_causal_and_has_no_blind_spot(channels):
    config = ModelConfig(
        architecture="gated", height=7, width=7, channels=channels, levels=4, num_layers=2, kernel_size=3, filters=12
    )
    moved = influence(randomize(build_model(config)), config) > 1e-5
    field = gated_field(config)
    positions = np.arange(field.shape[0])
    assert not field[positions[:, None] >= positions[None, :]].any()  # the field itself is causal
    # Exactly the field: nothing later (causality), and every earlier sub-pixel in it counts (no blind spot).
    np.testing.assert_array_equal(moved, field)
    q, up_right = index(config, 4, 3), index(config, 3, 5, channels - 1)
    assert moved[up_right, q], "the pixel up and two to the right reaches the current one"


@pytest.mark.parametrize("channels", [1, 3])
def test_seed_architecture_is_causal_but_has_a_blind_spot(channels):
    seed = ModelConfig(height=7, width=7, channels=channels, levels=4, num_layers=3, kernel_size=3, filters=12)
    moved = influence(randomize(build_model(seed)), seed) > 1e-5
    positions = np.arange(moved.shape[0])
    assert not moved[positions[:, None] >= positions[None, :]].any()
    q = index(seed, 4, 3)
    # Nominal field of 3 masked 3x3 layers: 3 rows up, 3 columns either side. Up-left is reached...
    assert moved[index(seed, 3, 1), q] and moved[index(seed, 1, 6), q]
    # ...but one row up and two columns right is not: masked 3x3 steps can never get there.
    assert not moved[index(seed, 3, 5), q] and not moved[index(seed, 2, 6), q]
    gated = dataclasses.replace(seed, architecture="gated")
    assert (influence(randomize(build_model(gated)), gated) > 1e-5)[index(gated, 3, 5), q]


def test_row_mask_and_gate_groups():
    np.testing.assert_array_equal(gate_groups(8, 3, halves=2), [0, 0, 1, 2, 0, 0, 1, 2])
    a = row_mask(3, 3, 8, "A", image_channels=3, halves=2)
    b = row_mask(3, 3, 8, "B", image_channels=3, halves=2)
    assert a.shape == (1, 3, 3, 8) and a[0, :2].all() and b[0, :2].all()  # pixels to the left: all visible
    half_a = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])  # in group (rows) -> out group (cols)
    half_b = np.array([[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(a[0, -1], np.tile(half_a, 2))  # the tanh and sigmoid halves match
    np.testing.assert_array_equal(b[0, -1], np.tile(half_b, 2))


def test_gated_structure_and_labels_change_logits():
    config = ModelConfig(
        architecture="gated", height=6, width=6, levels=4, num_layers=3, kernel_size=5, filters=8, num_classes=10
    )
    model = randomize(build_model(config))
    rows = [layer for layer in model.layers if isinstance(layer, RowMaskedConv2D)]
    assert model.name == "gated_pixelcnn" and model.output.shape[1:] == (6, 6, 1, 4)
    assert [layer.mask_type for layer in rows] == ["A", "B", "B"] and all(layer.kernel_size == (1, 3) for layer in rows)
    logits = logits_of(model, np.zeros((2, 6, 6, 1)), labels=[3, 7])
    assert not np.allclose(logits[0], logits[1])
    # The very first sub-pixel depends on the label only, not on the image.
    other = logits_of(model, np.full((2, 6, 6, 1), 3.0), labels=[3, 7])
    np.testing.assert_array_equal(logits[:, 0, 0], other[:, 0, 0])


def test_layers_get_config_round_trip():
    layer = RowMaskedConv2D(12, 4, mask_type="A", image_channels=3, halves=2, name="row")
    clone = RowMaskedConv2D.from_config(layer.get_config())
    assert (clone.kernel_size, clone.mask_type, clone.image_channels, clone.halves) == ((1, 4), "A", 3, 2)
    for original in (layer, GatedActivation(name="gate")):
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(original))
        assert type(restored) is type(original) and restored.get_config() == original.get_config()
    with pytest.raises(ValueError, match="halves"):
        RowMaskedConv2D(5, 3, halves=2)


def test_gated_keras_save_load_identical_logits(tmp_path):
    config = ModelConfig(
        architecture="gated", height=6, width=6, channels=3, levels=8, num_layers=2, kernel_size=3, filters=18, num_classes=4
    )
    model = randomize(build_model(config))
    rebuilt = keras.Model.from_config(model.get_config())
    assert [layer.get_config() for layer in rebuilt.layers] == [layer.get_config() for layer in model.layers]
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.models.load_model(path, compile=False)
    images = np.random.default_rng(2).integers(0, 8, (3, 6, 6, 3))
    np.testing.assert_array_equal(logits_of(model, images, [0, 1, 3]), logits_of(restored, images, [0, 1, 3]))


@pytest.mark.slow
def test_load_checkpoint_registers_gated_layers_in_a_fresh_process(tmp_path):
    config = TrainConfig(model=ModelConfig(architecture="gated", levels=2, num_layers=1, kernel_size=3, filters=4))
    save_config(config, str(tmp_path))
    save_model(build_model(config.model), str(tmp_path))
    code = "from pixelcnn_tf.run.checkpoints import load_checkpoint; import sys; print(load_checkpoint(sys.argv[1])[0].name)"
    command = [sys.executable, "-c", code, str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "gated_pixelcnn"


@pytest.mark.slow
def test_gated_model_converts_to_tflite_builtins(tmp_path):
    import tensorflow as tf

    config = ModelConfig(
        architecture="gated", height=5, width=5, channels=3, levels=4, num_layers=2, kernel_size=3, filters=6, num_classes=3
    )
    model = randomize(build_model(config))
    model.export(str(tmp_path / "saved"), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex (select TF) ops allowed
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=converter.convert()).get_signature_runner()
    images = np.random.default_rng(3).integers(0, 4, (1, 5, 5, 3)).astype(np.float32)
    (out,) = runner(image=images, label=np.array([2], np.int32)).values()
    np.testing.assert_allclose(out, logits_of(model, images, [2]), atol=1e-5)


def test_gated_mnist_preset_builds_a_binarized_gated_model():
    import train

    config = train.build_config(train.parse_args(["--preset", "gated_mnist"]))
    assert (config.model.architecture, config.model.levels, config.dataset) == ("gated", 2, "mnist")
    model = build_model(config.model)
    assert model.name == "gated_pixelcnn" and model.output.shape[1:] == (28, 28, 1, 2)
