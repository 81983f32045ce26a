"""model.fit training: loss goes down on real MNIST, a killed run resumes, the multi-device strategy path runs."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from pixelcnn_tf.config import ModelConfig, TrainConfig
from pixelcnn_tf.run.folder import read_stamp
from pixelcnn_tf.run.training import datasets, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    config = TrainConfig(
        model=ModelConfig(num_layers=2, kernel_size=3, filters=8, levels=4),
        batch_size=32,
        epochs=1,
        train_examples=128,
        test_examples=32,
        save_path=str(tmp_path),
        run_name="run",
        precision="float32",
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.mark.slow
def test_a_few_dozen_steps_lower_the_loss(tmp_path, tfds_dir):
    config = tiny_config(tmp_path, train_examples=32 * 40, epochs=1)
    history = train(config, verbose=0)
    assert len(history.history["loss"]) == 1
    model = keras.models.load_model(os.path.join(config.run_dir, "model.keras"), compile=False)
    fresh = keras.Model.from_config(model.get_config())
    _, test, _ = datasets(config)
    inputs, targets = next(iter(test))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trained_loss = float(loss(targets, model(inputs, training=False)))
    untrained_loss = float(loss(targets, fresh(inputs, training=False)))
    assert trained_loss < 0.8 * untrained_loss, (trained_loss, untrained_loss)


class Crash(keras.callbacks.Callback):
    """Stands in for a crash: an exception right after the first epoch is committed."""

    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("killed")


@pytest.mark.slow
def test_killed_run_resumes_and_the_epoch_count_continues(tmp_path, tfds_dir):
    config = tiny_config(tmp_path, epochs=3)
    with pytest.raises(RuntimeError, match="killed"):
        train(config, verbose=0, extra_callbacks=[Crash()])
    assert read_stamp(os.path.join(config.run_dir, "model.keras"))["epoch"] == 1
    history = train(tiny_config(tmp_path, epochs=3), verbose=0)
    assert len(history.history["loss"]) == 2, "epochs 2 and 3 only: epoch 1 came from the checkpoint"
    with open(os.path.join(config.run_dir, "losses.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row in rows:
        nats, bits = float(row["test_nats_per_image"]), float(row["test_bits_per_dim"])
        assert bits == pytest.approx(nats / (28 * 28 * np.log(2)), rel=1e-3)
    assert read_stamp(os.path.join(config.run_dir, "model.keras"))["epoch"] == 3
    for name in ("model.keras", "config.json", "losses.md", "losses.png"):
        assert os.path.isfile(os.path.join(config.run_dir, name))


STRATEGY_SCRIPT = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {root!r})
from pixelcnn_tf.config import ModelConfig, TrainConfig
from pixelcnn_tf.run.folder import read_stamp
from pixelcnn_tf.distribute.strategy import make_strategy
from pixelcnn_tf.run.training import train
strategy = make_strategy(devices=["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
config = TrainConfig(model=ModelConfig(num_layers=2, kernel_size=3, filters=8, levels=4), batch_size=32, epochs=1,
                     train_examples=96, test_examples=32, save_path={save!r}, run_name="mirrored", precision="float32")
history = train(config, strategy=strategy, verbose=0)
print("replicas", strategy.num_replicas_in_sync, "loss", history.history["loss"][0])
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, tfds_dir):
    script = STRATEGY_SCRIPT.format(root=ROOT, save=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout
    assert os.path.isfile(os.path.join(str(tmp_path), "mirrored", "model.keras"))


class LearningRates(keras.callbacks.Callback):
    """Records the optimizer's learning rate at the start of every epoch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.rates.append(float(optimizer.learning_rate if not callable(optimizer.learning_rate) else optimizer.learning_rate()))


@pytest.mark.slow
def test_cosine_schedule_decays_over_the_whole_run(tmp_path, tfds_dir):
    from pixelcnn_tf.errors import UserError

    recorder = LearningRates()
    config = tiny_config(tmp_path, epochs=3, lr_schedule="cosine", learning_rate=2e-3)
    train(config, verbose=0, extra_callbacks=[recorder])
    assert recorder.rates[0] == pytest.approx(2e-3)
    # 4 steps an epoch, 12 in all: cosine to 5% of the start, so epoch 3 starts at 2e-3 * (0.05 + 0.95 * 0.25).
    assert recorder.rates[1] == pytest.approx(2e-3 * (0.05 + 0.95 * 0.75), rel=1e-4)
    assert recorder.rates[2] == pytest.approx(2e-3 * (0.05 + 0.95 * 0.25), rel=1e-4)
    with pytest.raises(UserError, match="unknown lr_schedule 'step'"):
        tiny_config(tmp_path, lr_schedule="step").validate()


ONEDNN_PROBE = ("import train; from pixelcnn_tf.errors import import_tensorflow_quietly; import_tensorflow_quietly(); "
                "from tensorflow.python.util import _pywrap_util_port as port; import os; "
                "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())")


@pytest.mark.slow
@pytest.mark.parametrize("user_setting, expected", [(None, "1 True"), ("0", "0 False")])
def test_training_runs_on_onednn_unless_the_user_turns_it_off(user_setting, expected):
    # TensorFlow turns oneDNN on by itself only on AVX-512 VNNI/AMX CPUs; train.py's process has it on any CPU
    # (1.5x the seed's images/s on AVX2, docs/benchmarks.md), and the user's own TF_ENABLE_ONEDNN_OPTS wins.
    env = {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}
    env |= {"TF_ENABLE_ONEDNN_OPTS": user_setting} if user_setting else {}
    probe = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split("\n")[-2] == expected
