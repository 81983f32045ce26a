"""model.fit with crash-safe per-epoch commits, resume, NaN guard, per-epoch test NLL, precision and tf.distribute."""
from __future__ import annotations

import contextlib
import math
import os
import time

import keras
import tensorflow as tf

from pixelcnn_tf import faults
from pixelcnn_tf.config import TrainConfig
from pixelcnn_tf.datasets import pipeline as data
from pixelcnn_tf.datasets.catalog import dataset_spec
from pixelcnn_tf.distribute import keras_multiworker
from pixelcnn_tf.distribute.cluster import read_task, resolve_strategy
from pixelcnn_tf.distribute.strategy import make_strategy
from pixelcnn_tf.distribute.watchdog import deadline
from pixelcnn_tf.distributions import tf_distribution
from pixelcnn_tf.errors import UserError, first_line
from pixelcnn_tf.model import build_model, train_jit
from pixelcnn_tf.run.averaging import AveragedWeights, restore_raw
from pixelcnn_tf.run.board import TensorBoardLog
from pixelcnn_tf.run.folder import BOARD_DIR, MODEL_FILE, RunFolder
from pixelcnn_tf.run.footprint import check_fits
from pixelcnn_tf.run.losses import epoch_row


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


class CommitEpoch(keras.callbacks.Callback):
    """At each epoch's end, hand the epoch to RunFolder.commit_epoch: the one place a run's files are written.

    A non-finite loss commits nothing (the last good epoch stays; TerminateOnNaN ends the run). Every worker of a
    multi-worker run commits; a non-chief worker's RunFolder saves into a temporary folder it removes.
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


def synchronize_batchnorm(model: keras.Model) -> None:
    """BatchNorm statistics over the global batch of all replicas, not each replica's share: the model N workers
    train is the model one process trains. (Keras reads the flag at call time; it is saved in model.keras too.)"""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def learning_rate_for(config: TrainConfig, steps_per_epoch: int):
    """A float for the constant schedule; a cosine decay to 5% over every step of the run otherwise."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch, alpha=0.05)


def compile_model(model: keras.Model, model_config, learning_rate, ema_decay: float = 0.0,
                  jit_compile: bool | str = "auto") -> keras.Model:
    """Adam on the output distribution's NLL (nats per sub-pixel); with ema_decay > 0 it also keeps an exponential
    moving average of the weights (Keras's use_ema).

    jit_compile: XLA for the train step; training passes its architecture's measured choice (model.train_jit).
    """
    averaging = dict(use_ema=True, ema_momentum=ema_decay) if ema_decay else {}
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, **averaging),
        loss=tf_distribution(model_config.distribution).loss(),
        jit_compile=jit_compile,
    )
    return model


def datasets(config: TrainConfig):
    """(train, test, training images per epoch): Keras datasets of global batches.

    tf.distribute splits each global batch across all replicas of all workers. Sharding is by data: every worker
    runs the same seeded pipeline (shuffle order, binarization draws) and keeps its share of each batch, so N
    workers see exactly the batches one process would (tfds MNIST is one file: sharding by file has nothing to
    split). Each worker's share holds other images, hence other binarization draws.
    """
    conditional = bool(config.model.num_classes)
    common = dict(levels=config.model.levels, data_dir=config.data_dir, image_size=config.image_size)
    train = data.load_split(config.dataset, "train", take=config.train_examples, **common)
    test = data.load_split(config.dataset, "test", take=config.test_examples, **common)
    train_images = int(train.cardinality())
    train = data.fit_dataset(train, batch_size=config.batch_size, conditional=conditional, shuffle=True, seed=config.seed)
    test = data.fit_dataset(test, batch_size=config.batch_size, conditional=conditional)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return train.with_options(options), test.with_options(options), train_images


def check_dataset_fits(config: TrainConfig) -> None:
    spec = dataset_spec(config.dataset, config.data_dir, config.image_size)
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
    if own:
        task = read_task()
        run = RunFolder.open(config, overwrite, worker=bool(task and not task.is_chief))
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
    task = read_task()
    name = resolve_strategy(config.strategy, task, config.tpu)
    if name == "multiworker":
        keras_multiworker.check()  # a Keras the patches do not fit is refused before waiting for the peers
    # A multi-worker strategy starts before any other TensorFlow op; it and the model's creation (variables start
    # from the chief's values: the first collective step) wait for every peer, without end if one is missing.
    waiting = contextlib.nullcontext()
    if name in ("multiworker", "tpu"):
        peers = f"the other workers of TF_CONFIG ({', '.join(task.peers)})" if task else f"the TPU {config.tpu or ''}"
        message = f"{peers} did not answer within {config.connect_timeout:g} s (--connect-timeout)"
        waiting = deadline(config.connect_timeout, message, cleanup=run.abandon_plan())
    with waiting:
        try:
            strategy = strategy or make_strategy(name, tpu=config.tpu)
        except tf.errors.OpError as e:  # e.g. "Could not start gRPC server": a port taken since train.py checked it
            raise UserError(f"cannot start this worker's {name} strategy: {first_line(e)}") from None
        # A resumed run draws other batches than epoch 1 did, rather than replaying its order.
        keras.utils.set_random_seed(config.seed + run.epochs_done)
        config.precision = set_precision(config.precision)
        # The datasets right after the seed: their seeded ops are those of a one-process run, on every worker.
        train_ds, test_ds, train_images = datasets(config)
        steps_per_epoch = int(train_ds.cardinality())
        if config.lr_schedule != "constant" and steps_per_epoch < 1:
            raise UserError(f"--lr-schedule {config.lr_schedule} needs a dataset of known size")
        with strategy.scope():
            model = build_model(config.model)
            if strategy.num_replicas_in_sync > 1:
                synchronize_batchnorm(model)
            model = compile_model(model, config.model, learning_rate_for(config, steps_per_epoch), config.ema_decay,
                                  train_jit(config.model, config.precision))
            model.optimizer.build(model.trainable_variables)  # now, in the scope: not inside a replica's step
            if run.epochs_done:
                model.load_weights(os.path.join(run.path, MODEL_FILE))  # weights and optimizer state (its step count too)
                restore_raw(model)  # a commit saved the average as the weights (AveragedWeights)

    callbacks = [keras.callbacks.TerminateOnNaN(), CommitEpoch(run, config.model.dims)]
    if config.tensorboard and not run.worker:
        callbacks.append(TensorBoardLog(os.path.join(run.path, BOARD_DIR), config.model, train_images))
    callbacks += list(extra_callbacks or [])
    if config.ema_decay:
        callbacks.append(AveragedWeights())  # last: the epoch-end callbacks above read the averaged weights
    # Keras's private trainer hooks are patched for this fit alone, and only when it runs on several workers.
    several = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    try:
        with keras_multiworker.patched(model) if several else contextlib.nullcontext():
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
