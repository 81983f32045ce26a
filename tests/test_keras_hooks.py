"""Private Keras hooks: patched only around a multi-worker fit and put back after it; a Keras that moved them is one line."""
from __future__ import annotations

import json

import keras
import pytest
from helpers import TINY_TRAIN_FLAGS, assert_one_line_error

from pixelcnn_tf.distribute import keras_multiworker
from pixelcnn_tf.distribute.keras_multiworker import BUILD, REDUCE, TRAINER, check, patched
from pixelcnn_tf.errors import UserError

trainer = __import__(TRAINER, fromlist=["TensorFlowTrainer"])  # the private module the patches rebind in
ORIGINAL_REDUCE = getattr(trainer, REDUCE)


def untouched(model: keras.Model) -> bool:
    """Keras as it ships: its trainer function in place, the model's symbolic-build step its class's method."""
    return getattr(trainer, REDUCE) is ORIGINAL_REDUCE and BUILD not in vars(model)


def tiny_model() -> keras.Model:
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


def test_the_installed_keras_has_the_hooks_where_the_patches_expect_them():
    check()  # requirements.txt's Keras: no refusal


def test_the_patches_last_for_the_block_and_are_undone_after_it_also_when_fit_raises():
    model = tiny_model()
    with patched(model):
        assert getattr(trainer, REDUCE) is not ORIGINAL_REDUCE and BUILD in vars(model)
    assert untouched(model)
    with pytest.raises(RuntimeError, match="fit failed"):
        with patched(model):
            raise RuntimeError("fit failed")
    assert untouched(model) and getattr(model, BUILD).__func__ is trainer.TensorFlowTrainer._maybe_symbolic_build


# How a later Keras could move each hook, and what the one line then says.
MOVES = {
    "reduce gone": (lambda mp: mp.delattr(trainer, REDUCE), "reduce_per_replica is gone"),
    "reduce takes other parameters": (lambda mp: mp.setattr(trainer, REDUCE, lambda values, strategy: values),
                                      "reduce_per_replica takes (values, strategy), not (values, strategy, reduction)"),
    "train step no longer reduces through it": (
        lambda mp: mp.setattr(trainer.TensorFlowTrainer, "_make_function", lambda self, step: step),
        "TensorFlowTrainer.make_train_function no longer calls reduce_per_replica"),
    "build step gone": (lambda mp: mp.delattr(trainer.TensorFlowTrainer, BUILD), "_maybe_symbolic_build is gone"),
    "fit no longer builds through it": (lambda mp: mp.setattr(trainer.TensorFlowTrainer, "fit", lambda self, *a, **k: None),
                                        "TensorFlowTrainer.fit no longer calls _maybe_symbolic_build"),
    "trainer module gone": (lambda mp: mp.setattr(keras_multiworker, "TRAINER", "keras.src.no_such_trainer"),
                            "keras.src.no_such_trainer is gone"),
}


@pytest.mark.parametrize("move", sorted(MOVES))
def test_a_keras_whose_hooks_moved_is_refused_in_one_line_before_anything_is_patched(monkeypatch, move):
    apply, message = MOVES[move]
    apply(monkeypatch)
    reduce_now = getattr(trainer, REDUCE, None)
    with pytest.raises(UserError) as refused:
        check()
    text = str(refused.value)
    assert "\n" not in text and message in text and f"Keras {keras.__version__}" in text, text
    model = tiny_model()
    with pytest.raises(UserError):
        with patched(model):
            pytest.fail("patched ran its block with a moved hook")
    assert getattr(trainer, REDUCE, None) is reduce_now and BUILD not in vars(model)


def test_train_py_under_tf_config_with_a_moved_hook_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, tfds_dir):
    import train
    from pixelcnn_tf.distribute.launch import free_ports

    first, second = free_ports(2)
    cluster = {"cluster": {"worker": [f"127.0.0.1:{first}", f"127.0.0.1:{second}"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    monkeypatch.delattr(trainer, REDUCE)
    args = TINY_TRAIN_FLAGS + ["--precision", "float32", "--save-path", str(tmp_path / "models"), "--run-name", "run"]
    # Refused before the strategy starts: no waiting for the (absent) second worker, no run folder left behind.
    assert_one_line_error(train.main, args, "reduce_per_replica is gone: train on one worker or install the Keras", capsys)
    assert not (tmp_path / "models" / "run").exists()


@pytest.mark.slow
def test_a_single_process_fit_leaves_keras_untouched(tmp_path, monkeypatch, tfds_dir):
    from pixelcnn_tf.config import ModelConfig, TrainConfig
    from pixelcnn_tf.run.training import train

    def refuse(*args, **kwargs):
        raise AssertionError("a single-process run reached the multi-worker patches")

    monkeypatch.setattr(keras_multiworker, "check", refuse)
    monkeypatch.setattr(keras_multiworker, "patched", refuse)
    seen = []

    class During(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(untouched(self.model))

    config = TrainConfig(model=ModelConfig(num_layers=2, kernel_size=3, filters=8, levels=4), batch_size=32, epochs=1,
                         train_examples=64, test_examples=32, save_path=str(tmp_path), run_name="run", precision="float32")
    history = train(config, verbose=0, extra_callbacks=[During()])
    assert seen == [True, True] and untouched(history.model)
