"""Weight averaging (--ema-decay): the average is what is tested and saved, raw weights stay in the optimizer, a
resumed run keeps both."""
from __future__ import annotations

import csv
import os
import shutil

import keras
import numpy as np
import pytest

from pixelcnn_tf.config import ModelConfig, TrainConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.evaluate import evaluate
from pixelcnn_tf.run.checkpoints import load_checkpoint
from pixelcnn_tf.run.training import train

pytestmark = pytest.mark.slow  # every test here trains


def averaged_config(tmp_path, epochs=1) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(architecture="gated", num_layers=2, kernel_size=3, filters=8, levels=2),
        batch_size=32, epochs=epochs, train_examples=256, test_examples=64, ema_decay=0.9,
        save_path=str(tmp_path), run_name="run", precision="float32", tensorboard=False,
    )  # fmt: skip


def weights(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.trainable_weights]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, tfds_dir):
    config = averaged_config(tmp_path_factory.mktemp("averaged"))
    train(config, verbose=0)
    return config


def test_the_epochs_test_nll_and_the_saved_weights_are_the_average(one_epoch):
    config = one_epoch
    with open(os.path.join(config.run_dir, "losses.csv"), encoding="utf-8") as f:
        recorded = float(list(csv.DictReader(f))[-1]["test_nats_per_image"])
    saved, _, _ = load_checkpoint(config.run_dir)
    raw, _, _ = load_checkpoint(config.run_dir, raw=True)
    assert evaluate(saved, config, examples=64)["nats_per_image"] == pytest.approx(recorded, abs=2e-3)
    raw_nats = evaluate(raw, config, examples=64)["nats_per_image"]
    assert abs(raw_nats - recorded) > 0.01  # 8 steps at decay 0.9: the average is not the last step's weights
    assert any(not np.array_equal(a, b) for a, b in zip(weights(saved), weights(raw)))


def test_a_continued_run_trains_the_raw_weights_and_keeps_averaging_them(one_epoch, tmp_path):
    shutil.copytree(one_epoch.run_dir, tmp_path / "run")
    config = averaged_config(tmp_path, epochs=2)
    saved, _, _ = load_checkpoint(config.run_dir)
    raw, _, _ = load_checkpoint(config.run_dir, raw=True)
    seen = {}

    class AtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["model"] = weights(self.model)
            seen["average"] = [np.array(v) for v in self.model.optimizer._model_variables_moving_average]

    train(config, verbose=0, extra_callbacks=[AtStart()])
    for now, stored in zip(seen["model"], weights(raw)):
        np.testing.assert_array_equal(now, stored)  # training goes on from the raw weights, not the average
    for now, stored in zip(seen["average"], weights(saved)):
        np.testing.assert_array_equal(now, stored)  # and the average goes on from the saved one


def test_the_ema_decay_of_a_run_cannot_change_when_it_continues(one_epoch, tmp_path):
    shutil.copytree(one_epoch.run_dir, tmp_path / "run")
    config = averaged_config(tmp_path, epochs=2)
    config.ema_decay = 0.0
    with pytest.raises(UserError, match=r"holds a run of another model \(ema_decay 0.9 -> 0.0\)"):
        train(config, verbose=0)



def test_export_weights_raw_ships_the_raw_weights_and_says_so(one_epoch, tmp_path):
    """`python -m export --weights raw`: the export's full model scores what the raw weights score; metadata.json's
    source says which weights it holds (absent: the averaged ones, as before)."""
    import export.__main__ as export_cli
    from pixelcnn_tf.generation import keras_sampler
    from serve import Sampler
    from serve.manifest import read_manifest

    config = one_epoch
    out = str(tmp_path / "raw_export")
    assert export_cli.main(["--checkpoint", config.run_dir, "--out", out, "--weights", "raw", "--parity-images", "4"]) == 0
    assert read_manifest(out).source.weights == "raw"
    raw, _, _ = load_checkpoint(config.run_dir, raw=True)
    images = np.random.default_rng(3).integers(0, 2, (4, 28, 28, 1))
    expected = keras_sampler(raw, config.model, "naive").nll(images)
    np.testing.assert_allclose(Sampler.load(out, "onnx").nll(images), expected, rtol=1e-5)
