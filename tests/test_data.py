"""tfds pipelines: quantization, fixed test binarization, fresh train binarization, fast failures."""
from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelcnn_tf.datasets import pipeline as data
from pixelcnn_tf.errors import UserError


def test_quantize_to_levels():
    pixels = tf.constant([0, 63, 64, 127, 128, 255], tf.uint8)
    np.testing.assert_array_equal(data.quantize(pixels, 256).numpy(), [0, 63, 64, 127, 128, 255])
    np.testing.assert_array_equal(data.quantize(pixels, 4).numpy(), [0, 0, 1, 1, 2, 3])


def test_stochastic_binarization_follows_intensity():
    pixels = tf.constant(np.full(20000, 64, np.uint8))
    drawn = data.quantize(pixels, 2).numpy()
    assert set(np.unique(drawn)) <= {0, 1}
    assert abs(drawn.mean() - 64 / 255) < 0.02
    extremes = data.quantize(tf.constant([0, 255], tf.uint8), 2).numpy()
    np.testing.assert_array_equal(extremes, [0, 1])


def test_test_split_binarization_is_fixed_train_split_is_fresh(tfds_dir):
    test = data.load_split("mnist", "test", levels=2, take=8)
    first = np.stack([image.numpy() for image, _ in test])
    again = np.stack([image.numpy() for image, _ in data.load_split("mnist", "test", levels=2, take=8)])
    np.testing.assert_array_equal(first, again)
    keras.utils.set_random_seed(0)  # as train() does: a global seed must not freeze the per-epoch draw
    train = data.load_split("mnist", "train", levels=2, take=8)
    epoch1 = np.stack([image.numpy() for image, _ in train])
    epoch2 = np.stack([image.numpy() for image, _ in train])
    assert set(np.unique(epoch1)) <= {0, 1}
    changed = [(epoch1[k] != epoch2[k]).any() for k in range(8)]
    assert all(changed), f"each pass over the train split draws a new binarization of every image: {changed}"


def test_real_mnist_splits_and_labels(tfds_dir):
    images, labels = data.load_arrays("mnist", "test", levels=256, count=16)
    assert images.shape == (16, 28, 28, 1) and images.dtype == np.uint8
    assert images.max() == 255 and set(labels) <= set(range(10))


def test_fit_dataset_shapes(tfds_dir):
    ds = data.fit_dataset(data.load_split("mnist", "test", levels=4, take=10), batch_size=4, conditional=True)
    inputs, targets = next(iter(ds))
    assert inputs["image"].dtype == tf.float32 and inputs["image"].shape == (4, 28, 28, 1)
    assert inputs["label"].shape == (4,) and targets.dtype == tf.int32
    assert float(tf.reduce_max(inputs["image"])) <= 3


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(UserError, match="unknown dataset 'svhn'"):
        data.load_split("svhn", "train", levels=2)


def test_missing_data_without_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_can_download", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(UserError, match="TFDS_DATA_DIR"):
        data.load_split("mnist", "train", levels=2, data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10


def test_data_dir_flag_beats_environment(monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", "/from/env")
    assert data.resolve_data_dir("/from/flag") == "/from/flag"
    assert data.resolve_data_dir(None) == "/from/env"
