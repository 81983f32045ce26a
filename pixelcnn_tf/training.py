"""model.fit with crash-safe per-epoch commits, resume, NaN guard, per-epoch test NLL, precision and device strategy."""
from __future__ import annotations

import math
import os
import time

import keras
import tensorflow as tf

from pixelcnn_tf import data, faults
from pixelcnn_tf.config import TrainConfig
from pixelcnn_tf.datasets import dataset_spec
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.footprint import check_fits
from pixelcnn_tf.losses import epoch_row
from pixelcnn_tf.model import build_model
from pixelcnn_tf.run_folder import MODEL_FILE, RunFolder


def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def auto_precision() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        if capability >= (8, 0):
            return "mixed_bfloat16"
        return "mixed_float16" if capability >= (7, 0) else "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def set_precision(precision: str) -> str:
    """Apply a global Keras dtype policy; the logits head stays float32 regardless."""
    resolved = auto_precision() if precision == "auto" else precision
    keras.config.set_dtype_policy(resolved)
    return resolved


def make_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """MirroredStrategy over several GPUs (or the given devices); the default strategy otherwise."""
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class CommitEpoch(keras.callbacks.Callback):
    """At each epoch's end, hand the epoch to RunFolder.commit_epoch: the one place a run's files are written.

    A non-finite loss commits nothing (the last good epoch stays; TerminateOnNaN ends the run). Under a multi-worker
    strategy only the chief should hold a RunFolder; the others would simply not get this callback.
    """

    def __init__(self, run: RunFolder, dims: int):
        super().__init__()
        self.run, self.dims = run, dims
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            faults.point("epoch", self.run.epochs_done + 1)  # a kill in the middle of an epoch (tests only)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss, test_loss = logs.get("loss"), logs.get("val_loss")
        if loss is None or test_loss is None or not (math.isfinite(float(loss)) and math.isfinite(float(test_loss))):
            return
        row = epoch_row(epoch + 1, float(loss), float(test_loss), self.dims, time.perf_counter() - self._started)
        self.run.commit_epoch(self.model, epoch + 1, row)


def learning_rate_for(config: TrainConfig, steps_per_epoch: int):
    """A float for the constant schedule; a cosine decay to 5% over every step of the run otherwise."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch, alpha=0.05)


def compile_model(model: keras.Model, learning_rate) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def datasets(config: TrainConfig):
    """(train, test) Keras datasets for the config; the global batch is split across replicas by tf.distribute."""
    conditional = bool(config.model.num_classes)
    common = dict(levels=config.model.levels, data_dir=config.data_dir)
    train = data.load_split(config.dataset, "train", take=config.train_examples, **common)
    test = data.load_split(config.dataset, "test", take=config.test_examples, **common)
    train = data.fit_dataset(train, batch_size=config.batch_size, conditional=conditional, shuffle=True, seed=config.seed)
    test = data.fit_dataset(test, batch_size=config.batch_size, conditional=conditional)
    return train, test


def check_dataset_fits(config: TrainConfig) -> None:
    spec = dataset_spec(config.dataset)
    if (config.model.height, config.model.width, config.model.channels) != (spec.height, spec.width, spec.channels):
        raise UserError(
            f"model image shape {config.model.height}x{config.model.width}x{config.model.channels} "
            f"does not fit {config.dataset} ({spec.height}x{spec.width}x{spec.channels})"
        )
    if config.model.num_classes and config.model.num_classes != spec.num_classes:
        raise UserError(f"num_classes={config.model.num_classes} but {config.dataset} has {spec.num_classes}")


def train(
    config: TrainConfig,
    *,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int | str = "auto",
    extra_callbacks: list | None = None,
    run: RunFolder | None = None,
    overwrite: bool = False,
) -> keras.callbacks.History:
    """Train config.model on config.dataset into config.run_dir, resuming at the epoch its model.keras records.

    run: the RunFolder train.py already opened (and locked); else train opens it (overwrite: start the run afresh).
    A complete run trains nothing and returns an empty History.
    """
    config.validate()
    check_dataset_fits(config)
    check_fits(config)
    own = run is None
    run = run or RunFolder.open(config, overwrite)
    policy = keras.config.dtype_policy()  # set_precision changes a global: give the caller's back afterwards
    try:
        if run.complete:
            history = keras.callbacks.History()
            history.history = {}
            return history
        return _fit(config, run, strategy, verbose, extra_callbacks)
    except BaseException:
        run.abandon()  # a run that never committed leaves no folder behind
        raise
    finally:
        keras.config.set_dtype_policy(policy)
        if own:
            run.close()


def _fit(config: TrainConfig, run: RunFolder, strategy, verbose, extra_callbacks) -> keras.callbacks.History:
    # A resumed run draws other batches than epoch 1 did, rather than replaying its order.
    keras.utils.set_random_seed(config.seed + run.epochs_done)
    config.precision = set_precision(config.precision)
    train_ds, test_ds = datasets(config)
    strategy = strategy or make_strategy()
    steps_per_epoch = int(train_ds.cardinality())
    if config.lr_schedule != "constant" and steps_per_epoch < 1:
        raise UserError(f"--lr-schedule {config.lr_schedule} needs a dataset of known size")
    with strategy.scope():
        model = compile_model(build_model(config.model), learning_rate_for(config, steps_per_epoch))
        if run.epochs_done:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(run.path, MODEL_FILE))  # weights and optimizer state (its step count too)

    callbacks = [keras.callbacks.TerminateOnNaN(), CommitEpoch(run, config.model.dims)] + list(extra_callbacks or [])
    try:
        # shuffle=False: the tf.data pipeline already shuffles (Keras would only warn).
        history = model.fit(
            train_ds, validation_data=test_ds, epochs=config.epochs, initial_epoch=run.epochs_done,
            callbacks=callbacks, verbose=verbose, shuffle=False,
        )
    except tf.errors.DataLossError as e:
        raise data.damaged(e, config.dataset) from None
    losses = history.history.get("loss", [])
    if not all(math.isfinite(value) for value in losses):
        raise UserError(f"training stopped: the loss became NaN/inf (see {run.path}/losses.csv); try a lower --learning-rate")
    return history
