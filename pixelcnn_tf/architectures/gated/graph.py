"""The Gated PixelCNN's part of the sampler graph: its weights re-laid (graph_params) and its row and pixel maths."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.sampler_graph import GraphPart, conv, dense, pad_columns, pixel_taps


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
    out["skip_kernel"] = np.concatenate([p[f"skip_kernel_{n}"] for n in range(layers)])
    out["skip_bias"] = np.sum([p[f"skip_bias_{n}"] for n in range(layers)], axis=0).astype(np.float32)
    for name in ("final_kernel", "final_bias", "head_kernel", "head_bias"):
        out[name] = p[name]
    return out


class Graph(GraphPart):
    """The gated PixelCNN: the row part runs the vertical stack over the finished row and its link to the next."""

    bias, label_prefix, width_out = "h_bias", "h_", 2

    def _gate(self, y):
        return tf.tanh(y[..., : self.filters]) * tf.sigmoid(y[..., self.filters :])

    def forward(self, ctx, pix):
        gated, features, x = [], [], None
        for n in range(self.layers):
            y = ctx[n]
            if n == 0 and pix is not None:
                y = y + tf.matmul(pix, self.c["centre_0"])
            if n:
                y = y + tf.matmul(x, self.c[f"h_centre_{n}"])
            g = self._gate(y)
            gated.append(g)
            if n < self.layers - 1:  # the last layer's horizontal output feeds nothing
                out = dense(g, self.c[f"out_kernel_{n}"], self.c[f"out_bias_{n}"])
                x = out if n == 0 else x + out
                features.append(x)
        skip = dense(tf.concat(gated, axis=-1) if len(gated) > 1 else gated[0], self.c["skip_kernel"], self.c["skip_bias"])
        hidden = tf.nn.relu(dense(tf.nn.relu(skip), self.c["final_kernel"], self.c["final_bias"]))
        return hidden, features

    def row(self, row, bands, terms, label):
        """The vertical stack over the finished row: new bands and the next row's link terms (W, L, N, 2F)."""
        f, w = self.filters, self.config.width
        new_row = pad_columns(tf.transpose(row[:, 0, :, : self.config.channels], (1, 0, 2))[:, None], self.pad)
        new_bands, aboves = [], []
        for n, band in enumerate(bands):
            full = tf.concat([band, new_row], axis=1)  # rows i-pad..i
            new_bands.append(full[:, 1:])
            pre = conv(full, self.c[f"v_kernel_{n}"]) + self.c[f"v_bias_{n}"]  # (N, 1, W, 2F)
            aboves.append(tf.reshape(tf.matmul(tf.reshape(pre, (-1, 2 * f)), self.c[f"link_kernel_{n}"]), (-1, w, 2 * f)))
            if n < self.layers - 1:
                label_term = self.embedded("v_", label, n)
                if label_term is not None:
                    pre = pre + label_term[:, None, None]
                new_row = pad_columns(self._gate(pre), self.pad)
        above = tf.transpose(tf.stack(aboves), (2, 0, 1, 3))  # (W, L, N, 2F)
        return new_bands, above + terms[None]
