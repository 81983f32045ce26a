"""The TensorFlow twin of serve.distributions.arrays.NumpyOps: the same ops, so both run the same maths."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


class TensorFlowOps:
    exp = staticmethod(tf.exp)
    log = staticmethod(tf.math.log)
    log1p = staticmethod(tf.math.log1p)
    expm1 = staticmethod(tf.math.expm1)
    tanh = staticmethod(tf.tanh)
    where = staticmethod(tf.where)

    @staticmethod
    def softplus(x):
        """log(1 + e^x) in the stable split form: tf.nn.softplus, converted with TFLite builtins, gave NaN
        log-probabilities for large arguments (tested). Each branch gets a safe argument, so neither makes an inf
        (nor a NaN gradient), and the gradient at 0 is sigmoid(0) = 1/2, not a kink's."""
        positive, zero = x > 0.0, tf.zeros_like(x)  # zeros of x's dtype: float64 when evaluate scores in it
        above, below = tf.where(positive, x, zero), tf.where(positive, zero, x)
        return tf.where(positive, above + tf.math.log(1.0 + tf.exp(-above)), tf.math.log(1.0 + tf.exp(below)))

    abs = staticmethod(tf.abs)
    minimum = staticmethod(tf.minimum)

    @staticmethod
    def max(x, axis: int):
        return tf.reduce_max(x, axis=axis)

    @staticmethod
    def concat(arrays, axis: int):
        return tf.concat(arrays, axis=axis)

    @staticmethod
    def clip(x, low: float, high: float):
        return tf.clip_by_value(x, low, high)

    @staticmethod
    def logsumexp(x, axis: int):
        return tf.reduce_logsumexp(x, axis=axis)

    @staticmethod
    def log_softmax(x, axis: int = -1):
        return tf.nn.log_softmax(x, axis=axis)

    @staticmethod
    def sum(x, axis):
        return tf.reduce_sum(x, axis=axis)

    @staticmethod
    def reshape_last(x, shape: tuple[int, ...]):
        """Split the last axis into shape; the leading axes may be unknown until run time."""
        if x.shape[:-1].is_fully_defined():  # static shapes where known: converters (TFLite) prefer them
            return tf.reshape(x, list(x.shape[:-1]) + list(shape))
        return tf.reshape(x, tf.concat([tf.shape(x)[:-1], list(shape)], axis=0))

    @staticmethod
    def constant(values, like):
        return tf.constant(values, dtype=like.dtype)

    @staticmethod
    def cast_like(x, like):
        return tf.cast(x, like.dtype)

    # The architectures' per-position maths (serve/architectures/*.py) uses these too: the numpy step's maths runs
    # here in the Keras step models and the sampler graph.

    @staticmethod
    def matmul(x, w):
        """x (..., K) @ w (K, N) as one 2-D MatMul (converters map it to FullyConnected / MatMul, not a batched one)."""
        if len(x.shape) == 2:
            return tf.matmul(x, w)
        y = tf.matmul(tf.reshape(x, (-1, x.shape[-1])), w)
        if x.shape[1:-1].is_fully_defined():  # static shapes where known (all but the batch): converters prefer them
            return tf.reshape(y, [-1] + list(x.shape[1:-1]) + [w.shape[-1]])
        return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [w.shape[-1]]], axis=0))

    relu = staticmethod(tf.nn.relu)
    sigmoid = staticmethod(tf.sigmoid)

    @staticmethod
    def halves(x):
        """The two halves of the last axis: one Split op (two strided slices cost a runtime two ops per layer)."""
        return tf.split(x, 2, axis=-1)

    @staticmethod
    def take(table, rows):
        return tf.gather(table, rows)

    @staticmethod
    def flatten(x):
        """(B, ...) -> (B, everything else) with one constant-shape reshape (a dynamic one adds shape ops per call)."""
        return tf.reshape(x, (-1, int(np.prod(x.shape[1:]))))

    @staticmethod
    def pad_columns(x, pad: int):
        return tf.pad(x, [[0, 0], [0, 0], [pad, pad], [0, 0]])

    @staticmethod
    def conv_row(band, kernel):
        y = tf.nn.conv2d(band, kernel, strides=1, padding="VALID")  # (B, 1, W, F_out)
        return tf.reshape(y, (-1, y.shape[2], y.shape[3]))
