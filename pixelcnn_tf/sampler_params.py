"""The folded step weights re-laid for the sampler graph: a row part (once per finished row) and a pixel part."""
from __future__ import annotations

import numpy as np

from pixelcnn_tf.config import ModelConfig

# Both architectures split the same way. Inside a row, what every position reads from earlier rows is known when the
# row starts, so a row part computes it for the whole row at once ("aboves", with every other term that is constant
# along the row: biases, label embeddings); the pixel part adds the current row's cached taps left of the position
# and the position's own earlier channels. The image enters centred (level - (levels-1)/2): its padding is then 0
# like every other cache's, and each layer-0 bias absorbs the shift.


def _pixel_taps(kernel: np.ndarray, pad: int, filters: int) -> np.ndarray:
    """(pad, F_in, out) taps left of the centre, F_in zero-padded to filters: one (pad*filters, out) matrix."""
    taps = np.zeros((pad, filters, kernel.shape[-1]), np.float32)
    taps[:, : kernel.shape[1]] = kernel[:pad]
    return taps.reshape(pad * filters, -1)


def seed_graph_params(p: dict, config: ModelConfig) -> dict[str, np.ndarray]:
    """The seed model's step params (pixelcnn_tf.seed_cached.fold_step_params) re-laid: row_kernel_l (pad, k, F_in, F) over the pad rows above; pixel_kernel
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
        pixel.append(_pixel_taps(kernel[pad], pad, f))
        biases.append(bias)
        if config.num_classes:
            out[f"embedding_{n}"] = p[f"embedding_{n}"]
    out["pixel_kernel"] = np.stack(pixel).astype(np.float32)
    out["bias"] = np.stack(biases).astype(np.float32)
    out["head_kernel"], out["head_bias"] = p["head_kernel"], p["head_bias"]
    return out


def gated_graph_params(p: dict, config: ModelConfig) -> dict[str, np.ndarray]:
    """The gated model's step params (pixelcnn_tf.gated_cached.fold_gated_params) re-laid: v_kernel_n/v_bias_n/link_kernel_n for the row part (vertical stack and the
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
        pixel.append(_pixel_taps(h_kernel, pad, f))
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

