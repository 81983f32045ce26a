"""The tiny array API's twins (NumpyOps, TensorFlowOps) agree op by op: the shared maths means the same on both."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pixelcnn_tf.distributions.arrays import TensorFlowOps
from serve.architectures.gated import gate
from serve.distributions.arrays import NumpyOps


def public_ops(ops) -> set[str]:
    return {name for name in vars(ops) if not name.startswith("_")}


def test_both_twins_have_the_same_ops():
    assert public_ops(NumpyOps) == public_ops(TensorFlowOps)


def random(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


CASES = {
    "matmul 2-D": lambda rng: ("matmul", random(rng, 3, 5), random(rng, 5, 4)),
    "matmul 3-D": lambda rng: ("matmul", random(rng, 2, 6, 5), random(rng, 5, 4)),
    "relu": lambda rng: ("relu", random(rng, 4, 7)),
    "sigmoid": lambda rng: ("sigmoid", 20 * random(rng, 4, 7)),
    "take": lambda rng: ("take", random(rng, 5, 3), np.array([4, 0, 4, 2], np.int32)),
    "flatten": lambda rng: ("flatten", random(rng, 2, 3, 4, 5)),
    "pad_columns": lambda rng: ("pad_columns", random(rng, 2, 3, 4, 5), 2),
    # A (rows, k) kernel over a band of rows: the numpy sliding-window matmul vs tf.nn.conv2d.
    "conv_row": lambda rng: ("conv_row", random(rng, 2, 3, 9, 4), random(rng, 3, 5, 4, 6)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_architecture_ops_agree(case):
    name, *args = CASES[case](np.random.default_rng(len(case)))
    expected = getattr(NumpyOps, name)(*args)
    got = getattr(TensorFlowOps, name)(*(tf.constant(a) if isinstance(a, np.ndarray) else a for a in args))
    assert tuple(got.shape) == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_gate_is_tanh_times_sigmoid_on_both():
    y = random(np.random.default_rng(0), 3, 8) * 5
    expected = np.tanh(y[:, :4]) / (1 + np.exp(-y[:, 4:]))
    np.testing.assert_allclose(gate(NumpyOps, y), expected, rtol=1e-6)
    np.testing.assert_allclose(gate(TensorFlowOps, tf.constant(y)).numpy(), expected, rtol=1e-5, atol=1e-6)
