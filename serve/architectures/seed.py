"""Cached sampling for the seed PixelCNN (numpy only): one step-model call per sub-pixel over per-layer caches."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from serve.architectures.record import Chooser, StepArchitecture
from serve.distributions.arrays import NumpyOps
from serve.names import FEATURES, LOGITS, WINDOW, indexed, indexed_names
from serve.runtime import feeds
from serve.sampling import SamplingError, check_step_output

# step_fn(windows, labels) -> (features, logits): windows[0] float32 (B, k//2+1, k, C) of level indices,
# windows[l] float32 (B, k//2+1, k, F) of layer l-1's outputs; labels int32 (B,) or None.
# features[l] (B, F) is layer l's new output at the position (l = 0..num_layers-2); logits (B, *head_shape).
StepFn = Callable[[Sequence[np.ndarray], "np.ndarray | None"], "tuple[Sequence[np.ndarray], np.ndarray]"]
PART = "step"  # the seed architecture exports one step model


def new_caches(batch: int, shape, num_layers: int, kernel_size: int, filters: int, levels: int) -> list[np.ndarray]:
    """Cache l holds layer l's input, padded k//2 above, left and right (rows below are never read).

    The image cache's padding is the level that the model's Rescaling maps to 0, as its 'same' zero padding is;
    activation caches are padded with 0.
    """
    height, width, channels = shape
    pad = kernel_size // 2
    caches = [np.full((batch, height + pad, width + 2 * pad, channels), (levels - 1) / 2, dtype=np.float32)]
    caches += [np.zeros((batch, height + pad, width + 2 * pad, filters), np.float32) for _ in range(num_layers - 1)]
    return caches


def run_seed(step_fn: StepFn, *, shape, num_layers: int, kernel_size: int, filters: int, levels: int,
             distribution, choose: Chooser, batch: int, labels, progress=None) -> np.ndarray:
    """The seed architecture's raster/RGB loop over one batch; choose picks each sub-pixel's level from the head."""
    height, width, channels = shape
    pad, span = kernel_size // 2, kernel_size
    caches = new_caches(batch, shape, num_layers, kernel_size, filters, levels)
    out = np.zeros((batch, height, width, channels), np.uint8)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                if c == 0 or distribution.channel_masks:  # else the pixel's one head serves all its channels
                    # Cache row i..i+pad, column j..j+2*pad covers image rows i-pad..i, columns j-pad..j+pad.
                    windows = [cache[:, i : i + pad + 1, j : j + span] for cache in caches]
                    features, head = step_fn(windows, labels)
                    head = head.reshape(batch, *distribution.head_shape)  # the numpy step's is flat
                    check_step_output("step function", features, head, num_layers, distribution.head_shape)
                level = choose(i, j, c, head, out[:, i, j, :c])
                out[:, i, j, c] = level
                caches[0][:, i + pad, j + pad, c] = level
                for index, feature in enumerate(features):
                    caches[index + 1][:, i + pad, j + pad] = feature
                if progress:
                    progress(batch)
    return out


def layer_outputs(ops, contexts, centres):
    """The seed model's maths at one position, written once over ops (NumPy or TensorFlow): layer l's output is
    relu(context_l + output_{l-1} @ centre_l), layer 0's relu(context_0).

    contexts[l]: layer l's terms from everything but this position's fresh activations (cached window, bias, label);
    centres[l-1]: layer l's centre tap (F, F), l >= 1. Returns (the last layer's output, the others' outputs).
    The numpy step and the Keras step model run it through step_maths, the sampler graph (pixelcnn_tf's
    architectures/seed/graph.py) on its own contexts: the three cannot drift.
    """
    relu, matmul = ops.relu, ops.matmul  # looked up once: the numpy step runs this per sub-pixel
    x, features = relu(contexts[0]), []
    for context, centre in zip(contexts[1:], centres):
        features.append(x)
        x = relu(context + matmul(x, centre))
    return x, features


def step_maths(ops, params: dict) -> StepFn:
    """The step (windows, labels) -> (features, logits (B, head features)) over ops and fold's params: the numpy
    step (NumpyOps) and the exported Keras step model (TensorFlow ops on its inputs) are this one function."""
    num_layers = param_layers(params)
    kernels = [params[f"kernel_{n}"] for n in range(num_layers)]
    biases = [params[f"bias_{n}"] for n in range(num_layers)]
    centres = [params[f"centre_{n}"] for n in range(1, num_layers)]
    embeddings = [params[f"embedding_{n}"] for n in range(num_layers)] if "embedding_0" in params else None
    head_kernel, head_bias = params["head_kernel"], params["head_bias"]
    matmul, flatten = ops.matmul, ops.flatten

    def step(windows, labels):
        contexts = [matmul(flatten(w), kernel) + bias for w, kernel, bias in zip(windows, kernels, biases)]
        if embeddings is not None:
            if labels is None:
                raise SamplingError("this step function is class-conditional: it needs labels")
            contexts = [context + ops.take(table, labels) for context, table in zip(contexts, embeddings)]
        hidden, features = layer_outputs(ops, contexts, centres)
        return features, matmul(hidden, head_kernel) + head_bias

    return step


def numpy_step_fn(params: dict) -> StepFn:
    """A TensorFlow-free step function from pixelcnn_tf.architectures.seed.step.fold or np.load of its npz.

    Its matmuls are small: on a few shared cores set OPENBLAS_NUM_THREADS=1 before numpy loads (about 10x faster).
    """
    return step_maths(NumpyOps, {name: np.asarray(value, np.float32) for name, value in params.items()})


def param_layers(params: dict) -> int:
    return sum(1 for name in params if name.startswith("kernel_"))


def from_runners(runners: dict, num_layers: int, conditional: bool) -> StepFn:
    """The StepFn over one runner of the exported step model: window_l (and label) -> features_l, logits."""
    run = runners[PART]
    names = indexed_names(FEATURES, num_layers - 1)

    def step(windows, labels):
        out = run(feeds({indexed(WINDOW, n): w for n, w in enumerate(windows)}, labels, conditional))
        return [out[n] for n in names], out[LOGITS]

    return step


def part_inputs(layout: dict, spec) -> dict:
    k, f = layout["kernel_size"], layout["filters"]
    return {PART: {indexed(WINDOW, n): [k // 2 + 1, k, spec.channels if n == 0 else f] for n in range(layout["num_layers"])}}


def part_outputs(num_layers: int) -> dict:
    return {PART: indexed_names(FEATURES, num_layers - 1) + [LOGITS]}


RECORD = StepArchitecture(
    name="pixelcnn", parts=(PART,), min_kernel_size=1, loop=run_seed, numpy_step=numpy_step_fn, from_runners=from_runners,
    part_inputs=part_inputs, part_outputs=part_outputs, param_layers=param_layers, threads={PART: 1},
)
