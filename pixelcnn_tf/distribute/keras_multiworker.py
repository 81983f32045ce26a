"""Keras 3.15 model.fit/evaluate under MultiWorkerMirroredStrategy: two fixes for keras-team/keras#20329, #20585.

Keras 3 fails there twice: it strategy.reduce-s the first (nested) batch to build the model symbolically, which
that strategy cannot do for a dict batch; and it reduces each step's scalar logs with MEAN along axis 0, which
scalars lack. Applied only when training runs on several workers, and refused loudly if Keras changes shape.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

_original_reduce = tf_trainer.reduce_per_replica


def _reduce_per_replica(values, strategy, reduction):
    if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # The logs are metric results, the same on every replica already: a MEAN over replicas keeps them.
        return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
    return _original_reduce(values, strategy, reduction)


def prepare(model: keras.Model) -> None:
    """Make model.fit/evaluate work on several workers; the model and its optimizer must be built already."""
    if not hasattr(model, "_maybe_symbolic_build") or not callable(_original_reduce):
        raise RuntimeError(f"Keras {keras.__version__} changed its TensorFlow trainer; pixelcnn_tf.distribute.keras_multiworker needs an update")
    # Built already (functional model, optimizer built in the scope), the model has nothing left for that step.
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    tf_trainer.reduce_per_replica = _reduce_per_replica
