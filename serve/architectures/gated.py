"""Cached sampling for the Gated PixelCNN (numpy only): a pixel step per sub-pixel, a row step per finished row."""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from serve.architectures.record import Chooser, StepArchitecture
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


def _gate(x: np.ndarray) -> np.ndarray:
    first, second = np.split(x, 2, axis=-1)
    return np.tanh(first) / (1.0 + np.exp(-second))


def numpy_gated_step(params: dict) -> GatedStep:
    """TensorFlow-free step functions from pixelcnn_tf.architectures.gated.step.fold (or np.load of its npz)."""
    p = {name: np.asarray(value, np.float32) for name, value in params.items()}
    num_layers = param_layers(p)
    conditional = "h_embedding_0" in p
    k = p["v_kernel_0"].shape[1]
    # Gathered once, so a step does no name lookups. None marks what a layer lacks: layer 0 has no centre
    # (its centre tap is in the window), the last layer no out_ (its output feeds nothing), no embeddings unconditional.
    layer = [{key: p.get(f"{key}_{n}") for key in ("h_kernel", "h_bias", "h_centre", "h_embedding", "skip_kernel",
                                                    "skip_bias", "out_kernel", "out_bias", "v_bias", "link_kernel",
                                                    "v_embedding")} for n in range(num_layers)]
    for n, arrays in enumerate(layer):
        arrays["v_kernel"] = p[f"v_kernel_{n}"].reshape(-1, p[f"v_kernel_{n}"].shape[-1])  # (rows*k*F_in, 2F)

    def labels_for(labels):
        if conditional and labels is None:
            raise SamplingError("this step function is class-conditional: it needs labels")
        return labels

    def pixel(windows, aboves, labels):
        labels = labels_for(labels)
        batch = windows[0].shape[0]
        features, x, skip = [], None, 0.0
        for n, a in enumerate(layer):
            y = windows[n].reshape(batch, -1) @ a["h_kernel"] + a["h_bias"] + aboves[n]
            if n:
                y += x @ a["h_centre"]
            if conditional:
                y += a["h_embedding"][labels]
            gated = _gate(y)
            skip = skip + gated @ a["skip_kernel"] + a["skip_bias"]
            if n < num_layers - 1:  # the last layer's horizontal output feeds nothing
                out = gated @ a["out_kernel"] + a["out_bias"]
                x = out + x if n else out
                features.append(x)
        hidden = np.maximum(np.maximum(skip, 0.0) @ p["final_kernel"] + p["final_bias"], 0.0)
        logits = hidden @ p["head_kernel"] + p["head_bias"]
        return features, logits  # (B, head features): the loop shapes it

    def row(bands, labels):
        labels = labels_for(labels)
        batch, width = bands[0].shape[0], bands[0].shape[2] - (k - 1)
        verticals, aboves, band = [], [], bands[0]
        for n, a in enumerate(layer):
            if n:
                new_row = np.pad(verticals[-1], ((0, 0), (k // 2, k // 2), (0, 0)))[:, None]
                band = np.concatenate([bands[n], new_row], axis=1)
            # (B, rows, W, F, k) windows -> (B*W, rows*k*F): the conv as one matmul over the row.
            windows = np.lib.stride_tricks.sliding_window_view(band, k, axis=2).transpose(0, 2, 1, 4, 3)
            pre = (windows.reshape(batch * width, -1) @ a["v_kernel"] + a["v_bias"]).reshape(batch, width, -1)
            aboves.append(pre @ a["link_kernel"])
            if n == num_layers - 1:
                break  # the last layer's vertical output feeds nothing
            if conditional:
                pre = pre + a["v_embedding"][labels][:, None]
            verticals.append(_gate(pre))
        return verticals, aboves

    return GatedStep(pixel, row)


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
