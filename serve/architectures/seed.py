"""Cached sampling for the seed PixelCNN (numpy only): one step-model call per sub-pixel over per-layer caches."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from serve.architectures.record import Chooser, StepArchitecture
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


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def numpy_step_fn(params: dict) -> StepFn:
    """A TensorFlow-free step function from pixelcnn_tf.architectures.seed.step.fold or np.load of its npz.

    Its matmuls are small: on a few shared cores set OPENBLAS_NUM_THREADS=1 before numpy loads (about 10x faster).
    """
    num_layers = param_layers(params)
    kernels = [np.asarray(params[f"kernel_{n}"], np.float32) for n in range(num_layers)]
    biases = [np.asarray(params[f"bias_{n}"], np.float32) for n in range(num_layers)]
    centres = [None] + [np.asarray(params[f"centre_{n}"], np.float32) for n in range(1, num_layers)]
    conditional = "embedding_0" in params
    embeddings = [np.asarray(params[f"embedding_{n}"], np.float32) for n in range(num_layers)] if conditional else []
    head_kernel = np.asarray(params["head_kernel"], np.float32)
    head_bias = np.asarray(params["head_bias"], np.float32)

    def step(windows, labels):
        if conditional and labels is None:
            raise SamplingError("this step function is class-conditional: it needs labels")
        batch = windows[0].shape[0]
        features, x = [], None
        for n in range(num_layers):
            y = windows[n].reshape(batch, -1) @ kernels[n] + biases[n]
            if n:
                y += x @ centres[n]
            if conditional:
                y += embeddings[n][labels]
            x = _relu(y)
            features.append(x)
        logits = x @ head_kernel + head_bias
        return features[:-1], logits  # (B, head features): the loop shapes it

    return step


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
