"""A Keras layer that runs serve's per-position maths (written once over ops) on TensorFlow tensors, for step models."""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from pixelcnn_tf.distributions.arrays import TensorFlowOps
from pixelcnn_tf.parts import FLOAT32


class SharedMaths(keras.layers.Layer):
    """maker(ops, params) -> fn, as serve/architectures/<name>.py writes it for its numpy step, run with TensorFlow
    ops: call(*args) is fn(*args). The folded params become this layer's (non-trainable) float32 weights, so the
    exported step model carries them as its constants, and the numpy step and the step models cannot drift.

    Step models are exported (model.export), never saved as .keras, so the maker need not be serializable.
    """

    def __init__(self, maker: Callable, params: dict[str, np.ndarray], **kwargs):
        super().__init__(dtype=FLOAT32, **kwargs)
        self.maker = maker
        self.arrays = {}
        for name, value in params.items():
            value = np.asarray(value, np.float32)
            self.arrays[name] = self.add_weight(shape=value.shape, initializer="zeros", trainable=False, name=name)
            self.arrays[name].assign(value)  # loading folded weights, as set_weights does

    def call(self, *args):
        return self.maker(TensorFlowOps, {name: variable.value for name, variable in self.arrays.items()})(*args)
