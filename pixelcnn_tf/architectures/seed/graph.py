"""The seed PixelCNN's part of the sampler graph: its weights re-laid (graph_params) and its row and pixel maths."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.distributions.arrays import TensorFlowOps
from pixelcnn_tf.sampler_graph import GraphPart, conv, pad_columns, pixel_taps
from serve.architectures.seed import layer_outputs


def graph_params(p: dict, config: ModelConfig) -> dict[str, np.ndarray]:
    """The seed model's step params (pixelcnn_tf.architectures.seed.step.fold) re-laid: row_kernel_l (pad, k, F_in, F) over the pad rows above; pixel_kernel
    (L, pad*F, F) over the current row's left taps; centre_0 (C, F) (the position's earlier colours, mask A),
    centre_l (F, F); bias (L, F) (layer 0's for centred levels); embedding (L, classes, F); head."""
    k, pad, c, f, layers = config.kernel_size, config.kernel_size // 2, config.channels, config.filters, config.num_layers
    middle = (config.levels - 1) / 2
    out, pixel, biases = {}, [], []
    for n in range(layers):
        kernel = p[f"kernel_{n}"].astype(np.float64).reshape(pad + 1, k, c if n == 0 else f, f)
        bias = p[f"bias_{n}"].astype(np.float64)
        if n == 0:
            bias = bias + middle * kernel.sum(axis=(0, 1, 2))  # centred levels: the shift moves into the bias
            out["centre_0"] = kernel[pad, pad].astype(np.float32)
        else:
            out[f"centre_{n}"] = p[f"centre_{n}"]
        out[f"row_kernel_{n}"] = kernel[:pad].astype(np.float32)
        pixel.append(pixel_taps(kernel[pad], pad, f))
        biases.append(bias)
        if config.num_classes:
            out[f"embedding_{n}"] = p[f"embedding_{n}"]
    out["pixel_kernel"] = np.stack(pixel).astype(np.float32)
    out["bias"] = np.stack(biases).astype(np.float32)
    out["head_kernel"], out["head_bias"] = p["head_kernel"], p["head_bias"]
    return out


class Graph(GraphPart):
    """The seed PixelCNN: the row part convolves the pad rows above with each layer's upper kernel rows."""

    def forward(self, ctx, pix):
        """Layer outputs at the position: (hidden for the head, features written to slots 1..L-1), by serve's maths.

        ctx (the row part's aboves plus the pixel taps) stays the graph's own: the same sums as the step's
        window @ kernel, factored per row so a row's share is computed once; only the layers' maths is shared."""
        first = ctx[0] if pix is None else ctx[0] + tf.matmul(pix, self.c["centre_0"])
        centres = [self.c[f"centre_{n}"] for n in range(1, self.layers)]
        return layer_outputs(TensorFlowOps, [first] + list(ctx[1:]), centres)

    def row(self, row, bands, terms, label):
        """After a row: new bands (shifted by the finished row) and the next row's aboves (W, L, N, F)."""
        new_rows = [row[:, 0, :, : self.config.channels]] + [row[:, n] for n in range(1, self.layers)]
        bands = [tf.concat([band[:, 1:], pad_columns(tf.transpose(r, (1, 0, 2))[:, None], self.pad)], axis=1)
                 for band, r in zip(bands, new_rows)]
        above = tf.concat([conv(band, self.c[f"row_kernel_{n}"]) for n, band in enumerate(bands)], axis=1)  # (N, L, W, F)
        return bands, tf.transpose(above, (2, 1, 0, 3)) + terms[None]
