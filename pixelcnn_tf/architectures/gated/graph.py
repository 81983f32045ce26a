"""The Gated PixelCNN's part of the sampler graph: its weights re-laid (graph_params) and its row and pixel maths."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.distributions.arrays import TensorFlowOps
from pixelcnn_tf.sampler_graph import GraphPart, pad_columns, pixel_taps
from serve.architectures.gated import horizontal, stacked_skips, vertical


def graph_params(p: dict, config: ModelConfig) -> dict[str, np.ndarray]:
    """The gated model's step params (pixelcnn_tf.architectures.gated.step.fold) re-laid: v_kernel_n/v_bias_n/link_kernel_n for the row part (vertical stack and the
    link term of the next row); pixel_kernel (L, pad*F, 2F), centre_0 (C, 2F), h_centre_n, h_bias (L, 2F),
    out_/skip_ kernels (skip stacked (L*F, F)), final and head for the pixel part."""
    pad, c, f, layers = config.kernel_size // 2, config.channels, config.filters, config.num_layers
    middle = (config.levels - 1) / 2
    out, pixel, biases = {}, [], []
    for n in range(layers):
        h_kernel = p[f"h_kernel_{n}"].astype(np.float64).reshape(pad + 1, c if n == 0 else f, 2 * f)
        h_bias, v_bias = p[f"h_bias_{n}"].astype(np.float64), p[f"v_bias_{n}"].astype(np.float64)
        if n == 0:
            h_bias = h_bias + middle * h_kernel.sum(axis=(0, 1))
            v_bias = v_bias + middle * p["v_kernel_0"].astype(np.float64).sum(axis=(0, 1, 2))
            out["centre_0"] = h_kernel[pad].astype(np.float32)
        else:
            out[f"h_centre_{n}"] = p[f"h_centre_{n}"]
        pixel.append(pixel_taps(h_kernel, pad, f))
        biases.append(h_bias)
        out[f"v_kernel_{n}"], out[f"v_bias_{n}"] = p[f"v_kernel_{n}"], v_bias.astype(np.float32)
        out[f"link_kernel_{n}"] = p[f"link_kernel_{n}"]
        if n < layers - 1:
            out[f"out_kernel_{n}"], out[f"out_bias_{n}"] = p[f"out_kernel_{n}"], p[f"out_bias_{n}"]
        for stack in ("v", "h"):
            if f"{stack}_embedding_{n}" in p:
                out[f"{stack}_embedding_{n}"] = p[f"{stack}_embedding_{n}"]
    out["pixel_kernel"] = np.stack(pixel).astype(np.float32)
    out["h_bias"] = np.stack(biases).astype(np.float32)
    out |= stacked_skips({name: value for name, value in p.items() if name.startswith("skip_")}, layers)
    for name in ("final_kernel", "final_bias", "head_kernel", "head_bias"):
        out[name] = p[name]
    return out


class Graph(GraphPart):
    """The gated PixelCNN: the row part runs the vertical stack over the finished row and its link to the next."""

    bias, label_prefix, width_out, row_slots = "h_bias", "h_", 2, 1  # its row part reads only the levels

    # The maths at a position and over a row is serve's (serve/architectures/gated.py), run with TensorFlow ops on
    # these re-laid params (same names; the skip kernels already stacked), built per trace as the constants are.
    # ctx (aboves plus pixel taps) stays the graph's own: the step's window @ h_kernel factored per row.

    def forward(self, ctx, pix):
        first = ctx[0] if pix is None else ctx[0] + tf.matmul(pix, self.c["centre_0"])
        return horizontal(TensorFlowOps, self.c, self.layers)([first] + list(ctx[1:]))

    def row(self, row, bands, terms, label):
        """The vertical stack over the finished row: new bands and the next row's link terms (W, L, N, 2F)."""
        new_row = pad_columns(tf.transpose(row[:, 0, :, : self.config.channels], (1, 0, 2))[:, None], self.pad)
        fulls, _, aboves = vertical(TensorFlowOps, self.c, self.layers, self.pad)(bands, new_row, label)
        above = tf.transpose(tf.stack(aboves), (2, 0, 1, 3))  # (W, L, N, 2F)
        return [full[:, 1:] for full in fulls], above + terms[None]
