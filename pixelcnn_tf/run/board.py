"""TensorBoard event files of a run: per-epoch NLL, learning rate, images/s and a grid of samples drawn by the model."""
from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.model import architecture, cached_layout, has_step_model, model_spec, step_params
from pixelcnn_tf.run.aside import BOARD_DIR  # noqa: F401  (re-exported: where a run's event files go)
from pixelcnn_tf.run.losses import bits_per_dim, nats_per_image
from serve.sampler import Sampler
from serve.sampling import to_grid

SAMPLES = 16
SAMPLE_SEED = 0  # the same draws every epoch, so the grid shows the model changing, not the noise


def numpy_cached_sampler(model: keras.Model, config: ModelConfig) -> Sampler:
    """The cached sampler over the model's current weights, folded to numpy (serve's numpy step).

    numpy rather than Keras step models: building those inside model.fit would create variables under the
    training's tf.distribute strategy, which on several workers waits for the others to create them too.
    """
    spec = model_spec(config)
    step = architecture(config).serving.numpy_step(step_params(model, config))
    return Sampler(None, spec, "numpy", step=step, layout=cached_layout(config))


class TensorBoardLog(keras.callbacks.Callback):
    """Write each epoch's train/test nats per image and bits/dim, learning rate, images/s and a 16-sample grid.

    The step of every summary is the 1-based epoch. Only the chief of a multi-worker run gets this callback. The
    writer (and its folder) starts at the first epoch's end, after the commit: a run that fails before leaves nothing.
    """

    def __init__(self, log_dir: str, config: ModelConfig, train_images: int):
        super().__init__()
        self.log_dir, self.config, self.train_images = log_dir, config, train_images
        self.writer = None
        self._started, self._train_seconds = time.perf_counter(), None

    def on_epoch_begin(self, epoch, logs=None):
        self._started, self._train_seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._train_seconds is None:  # the epoch's training ends where its test pass begins
            self._train_seconds = time.perf_counter() - self._started

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not all(math.isfinite(float(logs.get(key, math.nan))) for key in ("loss", "val_loss")):
            return  # an epoch CommitEpoch did not commit either (TerminateOnNaN ends the run)
        seconds = self._train_seconds or (time.perf_counter() - self._started)
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.writer = self.writer or tf.summary.create_file_writer(self.log_dir)
        with self.writer.as_default(step=epoch + 1):
            for split, key in (("train", "loss"), ("test", "val_loss")):
                tf.summary.scalar(f"{split}/nats_per_image", nats_per_image(float(logs[key]), self.config.dims))
                tf.summary.scalar(f"{split}/bits_per_dim", bits_per_dim(float(logs[key])))
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("images_per_second", self.train_images / seconds)
            if has_step_model(self.config):  # a gated model with kernel_size 1 has no cached sampling
                tf.summary.image("samples", self._samples()[None], max_outputs=1)
        self.writer.flush()

    def _samples(self) -> np.ndarray:
        labels = (np.arange(SAMPLES) % self.config.num_classes) if self.config.num_classes else None
        images = numpy_cached_sampler(self.model, self.config).sample(SAMPLES, seed=SAMPLE_SEED, labels=labels)
        grid = to_grid(images, self.config.levels, columns=4)
        return grid[..., None] if grid.ndim == 2 else grid

    def on_train_end(self, logs=None):
        if self.writer:
            self.writer.close()
