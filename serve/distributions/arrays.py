"""The tiny array API the distributions' and architectures' maths is written over, for numpy (pixelcnn_tf has the twin)."""
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

    # The architectures' per-position maths (serve/architectures/*.py) uses these too.

    matmul = staticmethod(np.matmul)  # x (..., K) @ w (K, N); a plain ufunc call: the numpy step's hot path

    @staticmethod
    def relu(x):
        return np.maximum(x, 0.0)

    @staticmethod
    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    @staticmethod
    def halves(x):
        """The two halves of the last axis."""
        return np.split(x, 2, axis=-1)

    @staticmethod
    def take(table, rows):
        """table[rows]: an embedding lookup."""
        return table[rows]

    @staticmethod
    def flatten(x):
        """(B, ...) -> (B, everything else)."""
        return x.reshape(x.shape[0], -1)

    @staticmethod
    def pad_columns(x, pad: int):
        """(B, R, W, F) -> (B, R, W + 2*pad, F), zeros left and right."""
        return np.pad(x, ((0, 0), (0, 0), (pad, pad), (0, 0)))

    @staticmethod
    def conv_row(band, kernel):
        """The valid convolution of a band (B, R, W+k-1, F_in) with a kernel (R, k, F_in, F_out): its one output row
        (B, W, F_out), as one matmul over (B*W) windows."""
        rows, k, _, fout = kernel.shape
        windows = np.lib.stride_tricks.sliding_window_view(band, k, axis=2).transpose(0, 2, 1, 4, 3)  # (B, W, R, k, F)
        batch, width = windows.shape[:2]
        return (windows.reshape(batch * width, -1) @ kernel.reshape(-1, fout)).reshape(batch, width, fout)
