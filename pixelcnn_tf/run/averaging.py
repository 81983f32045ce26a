"""Weight averaging (Polyak / EMA) through Keras's optimizer EMA: the averaged weights are the ones tested and saved."""
from __future__ import annotations

import keras


def uses_averaging(model: keras.Model) -> bool:
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # mixed_float16 wraps it in a LossScaleOptimizer
    return bool(getattr(optimizer, "use_ema", False))


def swap_averaged(model: keras.Model) -> None:
    """Exchange the model's trainable weights with the optimizer's averages: Keras's own swap, so tf.distribute and a
    LossScaleOptimizer are handled as Keras handles them, reached through SwapEMAWeights's public hooks alone."""
    swap = keras.callbacks.SwapEMAWeights()
    swap.set_model(model)
    swap.on_test_begin()  # a fresh SwapEMAWeights swaps the averages in at a test pass's start: one swap


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """The averaged weights are in the model from each epoch's test pass to that epoch's end.

    So the per-epoch test NLL, the model.keras an epoch commits and TensorBoard's samples all use the average,
    while training steps use the raw weights. It must come after every callback that reads the model at an
    epoch's end: its on_epoch_end puts the raw weights back. A committed model.keras therefore holds the
    averaged weights as its weights and the raw ones in the optimizer's average slots; `restore_raw` undoes
    that after a resume. After the last epoch Keras itself (finalize_variable_values) leaves the average in the
    model, as model.fit does for any optimizer with use_ema.

    Only SwapEMAWeights's public hooks are used: its on_test_begin swaps the average in (inherited), and what its
    on_test_end does (swap the raw weights back) is moved to the epoch's end.
    """

    def on_test_end(self, logs=None):
        pass  # keep the average in the model for the epoch-end callbacks (CommitEpoch, TensorBoard)

    def on_epoch_end(self, epoch, logs=None):
        super().on_test_end(logs)  # the raw weights back (a no-op if no test pass swapped the average in)


def restore_raw(model: keras.Model) -> None:
    """After loading a committed model.keras to continue training: raw weights back into the model, the average
    back into the optimizer (see AveragedWeights)."""
    if uses_averaging(model):
        swap_averaged(model)


def raw_weights_model(model: keras.Model) -> keras.Model:
    """A loaded (compiled) model.keras with the weights training last stepped to, not their average: for measuring
    what the averaging alone gains. The model is changed in place and returned."""
    if not uses_averaging(model):
        raise ValueError("this checkpoint was trained without --ema-decay: its weights are the raw ones")
    swap_averaged(model)
    return model
