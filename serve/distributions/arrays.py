"""The tiny array API the distributions' maths is written over, for numpy (pixelcnn_tf has the TensorFlow twin)."""
from __future__ import annotations

import numpy as np


class NumpyOps:
    """Each op the shared maths uses, with the TensorFlow twin's signature (pixelcnn_tf/distributions/arrays.py)."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    expm1 = staticmethod(np.expm1)
    tanh = staticmethod(np.tanh)
    where = staticmethod(np.where)

    @staticmethod
    def softplus(x):
        return np.logaddexp(0.0, x)

    abs = staticmethod(np.abs)
    minimum = staticmethod(np.minimum)

    @staticmethod
    def max(x, axis: int):
        return np.max(x, axis=axis)

    @staticmethod
    def concat(arrays, axis: int):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def clip(x, low: float, high: float):
        return np.clip(x, low, high)

    @staticmethod
    def logsumexp(x, axis: int):
        # The maxima are finite here (every term is a finite log-probability), so no -inf guard is needed.
        top = np.max(x, axis=axis, keepdims=True)
        return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))

    @staticmethod
    def log_softmax(x, axis: int = -1):
        return x - np.expand_dims(NumpyOps.logsumexp(x, axis), axis)

    @staticmethod
    def sum(x, axis):
        return np.sum(x, axis=axis)

    @staticmethod
    def reshape_last(x, shape: tuple[int, ...]):
        """Split the last axis into shape."""
        return np.reshape(x, np.shape(x)[:-1] + tuple(shape))

    @staticmethod
    def constant(values, like):
        return np.asarray(values, dtype=np.result_type(like))

    @staticmethod
    def cast_like(x, like):
        return np.asarray(x).astype(np.result_type(like))
