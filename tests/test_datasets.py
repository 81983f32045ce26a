"""CIFAR-10 and Fashion-MNIST paths on tfds mock data: shapes, and train.py -> checkpoint -> generate.py for RGB."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from pixelcnn_tf.datasets import pipeline as data

TINY = ["--num-layers", "2", "--filters", "6", "--kernel-size", "3", "--levels", "4", "--epochs", "1", "--batch-size", "8"]


@pytest.fixture
def mock_tfds(monkeypatch):
    """Random tfds examples with the real features; no files, no network.

    mock_data makes download_and_prepare a no-op but leaves is_prepared() False, so the fast
    "cannot download" probe is told the network is there and tfds' (mocked) preparation runs.
    """
    monkeypatch.setattr(data, "_can_download", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=16):
        yield


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("fashion_mnist", (28, 28, 1))])
def test_mock_splits_have_the_dataset_shapes(mock_tfds, name, shape):
    images, labels = data.load_arrays(name, "test", levels=8, count=5)
    assert images.shape == (5,) + shape and images.max() <= 7
    assert set(labels) <= set(range(10))
    spec = data.dataset_spec(name)
    assert (spec.height, spec.width, spec.channels, spec.num_classes) == shape + (10,)


def test_train_py_sets_the_dataset_shape_and_classes():
    import train

    config = train.build_config(train.parse_args(["--dataset", "cifar10", "--architecture", "gated", "--conditional"]))
    m = config.model
    assert (m.height, m.width, m.channels, m.num_classes, m.architecture) == (32, 32, 3, 10, "gated")


@pytest.mark.slow
def test_cifar10_gated_conditional_train_checkpoint_generate(mock_tfds, tmp_path):
    """The RGB path end to end: R->G->B masks, levels per sub-pixel, labels, a 3-channel PNG of the right size."""
    from PIL import Image

    import generate
    import train
    from pixelcnn_tf.run.checkpoints import load_checkpoint

    flags = ["--dataset", "cifar10", "--architecture", "gated", "--conditional"]
    flags += ["--save-path", str(tmp_path), "--run-name", "rgb"]
    assert train.main(TINY + flags) == 0
    run_dir = os.path.join(str(tmp_path), "rgb")
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["dataset"] == "cifar10" and saved["model"]["channels"] == 3 and saved["model"]["num_classes"] == 10
    model, config, _ = load_checkpoint(run_dir)
    assert model.name == "gated_pixelcnn" and model.output.shape[1:] == (32, 32, 3, 4)

    out = str(tmp_path / "rgb.png")
    assert generate.main(["--checkpoint", run_dir, "--num-images", "2", "--label", "all", "--out", out, "--no-progress"]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (32, 2 * 32, 3) and picture.dtype == np.uint8
    # 4 levels map to 0, 85, 170, 255 in every colour channel.
    assert set(np.unique(picture)) <= {0, 85, 170, 255}
