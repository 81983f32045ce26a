"""Cached sampling for the Gated PixelCNN (numpy only): a pixel step per sub-pixel, a row step per finished row."""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from serve.architectures.record import Chooser, StepArchitecture
from serve.distributions.arrays import NumpyOps
from serve.names import ABOVE, BAND, FEATURES, LOGITS, VERTICAL, WINDOW, indexed, indexed_names
from serve.runtime import ALL_CORES, feeds
from serve.sampling import SamplingError, check_step_output

# pixel(windows, aboves, labels) -> (features, logits): the horizontal stack at one position.
#   windows[0] float32 (B, k//2+1, C): level indices of the current row, columns j-k//2..j (the centre's later
#   channels are ignored); windows[l] (B, k//2+1, F): layer l-1's horizontal outputs there (centre ignored: the
#   step recomputes it). aboves[l] (B, 2F): the row step's link term for this column. labels int32 (B,) or None.
#   features[l] (B, F): layer l's new horizontal output (l = 0..L-2); logits (B, *head_shape), the output head.
PixelFn = Callable[[Sequence[np.ndarray], Sequence[np.ndarray], "np.ndarray | None"], "tuple[list, np.ndarray]"]
# row(bands, labels) -> (verticals, aboves): the vertical stack over a finished row i.
#   bands[0] float32 (B, k//2+1, W+2*(k//2), C): image rows i-k//2..i padded; bands[l] (B, k//2, W+2*(k//2), F):
#   layer l-1's vertical outputs on rows i-k//2..i-1 (row i is computed inside). verticals[l] (B, W, F) is layer l's
#   vertical output on row i (l = 0..L-2); aboves[l] (B, W, 2F) the link term row i+1's pixel steps add.
RowFn = Callable[[Sequence[np.ndarray], "np.ndarray | None"], "tuple[list, list]"]
PARTS = ("pixel", "row")  # a gated step is two models: one per sub-pixel, one per finished row


class GatedStep(NamedTuple):
    """The two step functions cached gated sampling runs: what a step_fn is for the seed architecture."""

    pixel: PixelFn
    row: RowFn


def run_gated(
    step: GatedStep,
    *,
    shape: tuple[int, int, int],
    num_layers: int,
    kernel_size: int,
    filters: int,
    levels: int,
    distribution,
    choose: Chooser,
    batch: int,
    labels: np.ndarray | None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The gated raster/RGB loop over one batch: a pixel step per sub-pixel, a row step after each finished row.

    choose draws (serve.cached.sample_cached) or returns known levels (serve.cached.teacher_forced_logits).
    """
    height, width, channels = shape
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise SamplingError(f"cached gated sampling needs an odd kernel_size >= 3, got {kernel_size}")
    pad = kernel_size // 2
    image = np.full((batch, height + pad, width + 2 * pad, channels), (levels - 1) / 2, np.float32)
    verticals = [np.zeros((batch, height + pad, width + 2 * pad, filters), np.float32) for _ in range(num_layers - 1)]
    horizontals = [np.zeros((batch, width + pad, filters), np.float32) for _ in range(num_layers - 1)]
    # Row -1 does not exist: the full model's shift-down feeds the link zeros there, so its term starts at zero
    # (the link's bias is folded into the pixel step's bias).
    aboves = [np.zeros((batch, width, 2 * filters), np.float32) for _ in range(num_layers)]
    out = np.zeros((batch, height, width, channels), np.uint8)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                if c == 0 or distribution.channel_masks:  # else the pixel's one head serves all its channels
                    windows = [image[:, i + pad, j : j + pad + 1]] + [h[:, j : j + pad + 1] for h in horizontals]
                    features, head = step.pixel(windows, [a[:, j] for a in aboves], labels)
                    head = head.reshape(batch, *distribution.head_shape)  # the numpy step's is flat
                    check_step_output("pixel step", features, head, num_layers, distribution.head_shape)
                level = choose(i, j, c, head, out[:, i, j, :c])
                out[:, i, j, c] = level
                image[:, i + pad, j + pad, c] = level
                for cache, feature in zip(horizontals, features):
                    cache[:, j + pad] = feature
                if progress:
                    progress(batch)
        if i + 1 < height:
            bands = [image[:, i : i + pad + 1]] + [v[:, i : i + pad] for v in verticals]
            new_rows, aboves = step.row(bands, labels)
            for cache, row in zip(verticals, new_rows):
                cache[:, i + pad, pad : pad + width] = row
    return out


# The gated model's maths, written once over ops (NumPy or TensorFlow): the numpy step runs it with NumpyOps, the
# exported Keras step models (pixelcnn_tf's architectures/gated/step.py) and the sampler graph (.../graph.py) with
# TensorFlow ops, so the three cannot drift. params: fold's names (the graph's re-laid ones keep them), any mapping.


def gate(ops, y):
    """tanh(first half) * sigmoid(second half) over the last axis: the gated unit."""
    a, b = ops.halves(y)
    return ops.tanh(a) * ops.sigmoid(b)


def _get(params, name: str):
    return params[name] if name in params else None  # what a layer lacks: None (the graph's params have no .get)


def stacked_skips(params: dict, num_layers: int) -> dict:
    """params with the layers' skip_kernel_n/skip_bias_n replaced by skip_kernel (L*F, F) and skip_bias (F,): every
    layer's skip as one matmul over the concatenated gates (one product instead of L, also for the sampler graph)."""
    rest = {name: value for name, value in params.items() if not name.startswith(("skip_kernel_", "skip_bias_"))}
    return rest | {"skip_kernel": np.concatenate([params[f"skip_kernel_{n}"] for n in range(num_layers)]),
                   "skip_bias": np.sum([params[f"skip_bias_{n}"] for n in range(num_layers)], axis=0).astype(np.float32)}


def horizontal(ops, params, num_layers: int):
    """The horizontal stack and its head at one position: (contexts) -> (hidden (B, F) for the head, features).

    contexts[n]: layer n's terms but the fresh x @ h_centre_n (its row taps, link term, biases, label); features[n]
    (n < L-1): layer n's horizontal output, residual from layer 1 on. params needs stacked_skips' skip_kernel/bias.
    """
    centres = [None] + [params[f"h_centre_{n}"] for n in range(1, num_layers)]
    outs = [(params[f"out_kernel_{n}"], params[f"out_bias_{n}"]) for n in range(num_layers - 1)]
    skip_kernel, skip_bias = params["skip_kernel"], params["skip_bias"]
    final_kernel, final_bias = params["final_kernel"], params["final_bias"]

    def run(contexts):
        gated, features, x = [], [], None
        for n, y in enumerate(contexts):
            if n:
                y = y + ops.matmul(x, centres[n])
            gated.append(gate(ops, y))
            if n < num_layers - 1:  # the last layer's horizontal output feeds nothing, only its skip does
                out = ops.matmul(gated[-1], outs[n][0]) + outs[n][1]
                x = out if n == 0 else x + out
                features.append(x)
        skip = ops.matmul(ops.concat(gated, axis=-1) if len(gated) > 1 else gated[0], skip_kernel) + skip_bias
        return ops.relu(ops.matmul(ops.relu(skip), final_kernel) + final_bias), features

    return run


def vertical(ops, params, num_layers: int, pad: int):
    """The vertical stack over a finished row: (bands, new_row, labels) -> (full bands, verticals, aboves).

    bands[n] (B, rows, W+2*pad, F_n): layer n's input on the rows above; new_row (B, 1, W+2*pad, C) the finished
    image row to append to bands[0], or None when bands[0] holds it. Each layer's full band is its bands[n] with its
    new row (the previous layer's vertical output) appended; verticals[n] (B, W, F), n < L-1; aboves[n] (B, W, 2F):
    the link term the next row's pixel steps add.
    """
    layers = [(params[f"v_kernel_{n}"], params[f"v_bias_{n}"], params[f"link_kernel_{n}"], _get(params, f"v_embedding_{n}"))
              for n in range(num_layers)]

    def run(bands, new_row, labels):
        fulls, verticals, aboves = [], [], []
        for band, (kernel, bias, link, embedding) in zip(bands, layers):
            full = band if new_row is None else ops.concat([band, new_row], axis=1)
            fulls.append(full)
            pre = ops.conv_row(full, kernel) + bias
            aboves.append(ops.matmul(pre, link))
            if len(aboves) == num_layers:
                break  # the last layer's vertical output feeds nothing (its link reads the pre-label sum)
            if embedding is not None:
                pre = pre + ops.take(embedding, labels)[:, None]
            verticals.append(gate(ops, pre))
            new_row = ops.pad_columns(verticals[-1][:, None], pad)
        return fulls, verticals, aboves

    return run


def pixel_maths(ops, params) -> PixelFn:
    """The pixel step over ops: the numpy step's and the exported pixel step model's (logits (B, head features))."""
    num_layers = param_layers(params)
    rows = [(params[f"h_kernel_{n}"], params[f"h_bias_{n}"], _get(params, f"h_embedding_{n}")) for n in range(num_layers)]
    run = horizontal(ops, params, num_layers)
    head_kernel, head_bias = params["head_kernel"], params["head_bias"]

    def pixel(windows, aboves, labels):
        contexts = []
        for window, above, (kernel, bias, embedding) in zip(windows, aboves, rows):
            y = ops.matmul(ops.flatten(window), kernel) + bias + above
            contexts.append(y if embedding is None else y + ops.take(embedding, _labels(labels)))
        hidden, features = run(contexts)
        return features, ops.matmul(hidden, head_kernel) + head_bias

    return pixel


def row_maths(ops, params) -> RowFn:
    """The row step over ops: the numpy step's and the exported row step model's."""
    num_layers = param_layers(params)
    run = vertical(ops, params, num_layers, params["v_kernel_0"].shape[1] // 2)

    def row(bands, labels):
        _, verticals, aboves = run(bands, None, _labels(labels) if "v_embedding_0" in params else None)
        return verticals, aboves

    return row


def _labels(labels):
    if labels is None:
        raise SamplingError("this step function is class-conditional: it needs labels")
    return labels


def numpy_gated_step(params: dict) -> GatedStep:
    """TensorFlow-free step functions from pixelcnn_tf.architectures.gated.step.fold (or np.load of its npz)."""
    p = {name: np.asarray(value, np.float32) for name, value in params.items()}
    p = stacked_skips(p, param_layers(p))
    return GatedStep(pixel_maths(NumpyOps, p), row_maths(NumpyOps, p))


def param_layers(params: dict) -> int:
    return sum(1 for name in params if name.startswith("v_kernel_"))


def from_runners(runners: dict, num_layers: int, conditional: bool) -> GatedStep:
    """GatedStep over the exported pixel and row step models' runners.

    Tensor names: window_n, above_n, label -> features_n, logits; band_n, label -> vertical_n, above_n.
    """
    features, verticals, aboves = (indexed_names(p, n) for p, n in ((FEATURES, num_layers - 1),
                                                                    (VERTICAL, num_layers - 1), (ABOVE, num_layers)))

    def pixel(windows, above, labels):
        named = {indexed(WINDOW, n): w for n, w in enumerate(windows)} | {indexed(ABOVE, n): a for n, a in enumerate(above)}
        out = runners["pixel"](feeds(named, labels, conditional))
        return [out[name] for name in features], out[LOGITS]

    def row(bands, labels):
        out = runners["row"](feeds({indexed(BAND, n): b for n, b in enumerate(bands)}, labels, conditional))
        return [out[name] for name in verticals], [out[name] for name in aboves]

    return GatedStep(pixel, row)


def part_inputs(layout: dict, spec) -> dict:
    """Input name -> shape after the batch axis of the pixel and the row step model."""
    k, f, layers = layout["kernel_size"], layout["filters"], range(layout["num_layers"])
    r, c, w = k // 2, spec.channels, spec.width
    return {
        "pixel": {indexed(WINDOW, n): [r + 1, c if n == 0 else f] for n in layers} | {indexed(ABOVE, n): [2 * f] for n in layers},
        "row": {indexed(BAND, n): [r + 1, w + 2 * r, c] if n == 0 else [r, w + 2 * r, f] for n in layers},
    }


def part_outputs(num_layers: int) -> dict:
    return {"pixel": indexed_names(FEATURES, num_layers - 1) + [LOGITS],
            "row": indexed_names(VERTICAL, num_layers - 1) + indexed_names(ABOVE, num_layers)}


RECORD = StepArchitecture(
    name="gated", parts=PARTS, min_kernel_size=3, loop=run_gated, numpy_step=numpy_gated_step, from_runners=from_runners,
    part_inputs=part_inputs, part_outputs=part_outputs, param_layers=param_layers, threads={"pixel": 1, "row": ALL_CORES},
)
