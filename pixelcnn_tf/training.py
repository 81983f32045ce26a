"""model.fit with checkpoints, resume, NaN guard, per-epoch test NLL, precision and device strategy."""
from __future__ import annotations

import math
import os

import keras
import tensorflow as tf

from pixelcnn_tf import data
from pixelcnn_tf.checkpoints import save_model
from pixelcnn_tf.config import TrainConfig, save_config
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.losses import LossTable
from pixelcnn_tf.model import build_model


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


class AtomicCheckpoint(keras.callbacks.Callback):
    """Save model.keras after every epoch through a temporary file, so a kill never leaves half a checkpoint."""

    def __init__(self, run_dir: str):
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # keep the last good checkpoint; TerminateOnNaN ends the run
        save_model(self.model, self.run_dir)


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


def train(
    config: TrainConfig,
    *,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int | str = "auto",
    extra_callbacks: list | None = None,
) -> keras.callbacks.History:
    """Train config.model on config.dataset, writing everything a run keeps into config.run_dir."""
    config.validate()
    spec = data.dataset_spec(config.dataset)
    if (config.model.height, config.model.width, config.model.channels) != (spec.height, spec.width, spec.channels):
        raise UserError(
            f"model image shape {config.model.height}x{config.model.width}x{config.model.channels} "
            f"does not fit {config.dataset} ({spec.height}x{spec.width}x{spec.channels})"
        )
    if config.model.num_classes and config.model.num_classes != spec.num_classes:
        raise UserError(f"num_classes={config.model.num_classes} but {config.dataset} has {spec.num_classes}")
    keras.utils.set_random_seed(config.seed)
    config.precision = set_precision(config.precision)
    run_dir = config.run_dir
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, run_dir)

    train_ds, test_ds = datasets(config)
    strategy = strategy or make_strategy()
    steps_per_epoch = int(train_ds.cardinality())
    if config.lr_schedule != "constant" and steps_per_epoch < 1:
        raise UserError(f"--lr-schedule {config.lr_schedule} needs a dataset of known size")
    with strategy.scope():
        model = compile_model(build_model(config.model), learning_rate_for(config, steps_per_epoch))

    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
        keras.callbacks.TerminateOnNaN(),
        AtomicCheckpoint(run_dir),
        LossTable(run_dir, config.model.dims),
    ] + list(extra_callbacks or [])
    # shuffle=False: the tf.data pipeline already shuffles (Keras would only warn).
    history = model.fit(
        train_ds, validation_data=test_ds, epochs=config.epochs, callbacks=callbacks, verbose=verbose, shuffle=False
    )
    losses = history.history.get("loss", [])
    if not all(math.isfinite(value) for value in losses):
        raise UserError(f"training stopped: the loss became NaN/inf (see {run_dir}/losses.csv); try a lower --learning-rate")
    return history
