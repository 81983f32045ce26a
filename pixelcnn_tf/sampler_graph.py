"""The whole sampler as one TensorFlow graph: uniforms in, images out, in nested while loops (rows, then columns)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.distributions import tf_distribution
from serve.names import IMAGES, LABEL, PREFIX, START, TEMPERATURE, UNIFORMS

# Inputs and output: docs/device.md (the contract); serve.graph checks every input before a runtime sees it.
# Loop state per column: the pad columns left of it (window (L, N, pad*F), oldest first, as the pixel taps read
# them), each column's cache slots (slot 0 the centred levels zero-padded to F channels, slot l the output of layer
# l-1), and the finished row's slots the architecture's row part reads (row_slots: the gated model only its levels),
# written with one op on their leading axis; per image: the last pad rows each layer's row part reads (bands) and
# the row's aboves (pixel_taps below; each architecture's graph.py). Small loop state matters at large batches: a
# runtime may copy it every iteration. Writes: XLA's DynamicUpdateSlice (TFLite's builtin DYNAMIC_UPDATE_SLICE) or,
# for ONNX, ScatterND (tf2onnx maps no dynamic-update op). The draw is serve.sampling.draw's inverse CDF, in float32.
UPDATES = ("dynamic_update_slice", "scatter_nd")

# Both architectures split the same way. Inside a row, what every position reads from earlier rows is known when the
# row starts, so a row part computes it for the whole row at once ("aboves", with every other term that is constant
# along the row: biases, label embeddings); the pixel part adds the current row's cached taps left of the position
# and the position's own earlier channels. The image enters centred (level - (levels-1)/2): its padding is then 0
# like every other cache's, and each layer-0 bias absorbs the shift.


def pixel_taps(kernel: np.ndarray, pad: int, filters: int) -> np.ndarray:
    """(pad, F_in, out) taps left of the centre, F_in zero-padded to filters: one (pad*filters, out) matrix."""
    taps = np.zeros((pad, filters, kernel.shape[-1]), np.float32)
    taps[:, : kernel.shape[1]] = kernel[:pad]
    return taps.reshape(pad * filters, -1)


def _writer(update: str):
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")

    def write(tensor, index, value):
        """tensor with value (1, *tensor.shape[1:]) written at position index of the leading axis."""
        if update == "scatter_nd":
            return tf.tensor_scatter_nd_update(tensor, tf.reshape(index, (1, 1)), value)
        return xla.dynamic_update_slice(tensor, value, tf.stack([index] + [0] * (len(tensor.shape) - 1)))

    return write


def draw(logits, u, inv_temperature, levels: int):
    """serve.sampling.draw in float32: log-weights (N, levels), u (N, 1) -> float levels (N,)."""
    z = logits * inv_temperature
    z = z - tf.reduce_max(z, axis=-1, keepdims=True)
    cdf = tf.cumsum(tf.exp(z), axis=-1)
    index = tf.reduce_sum(tf.cast(cdf < u * cdf[:, levels - 1 :], tf.float32), axis=-1)
    return tf.minimum(index, levels - 1.0)


def pad_columns(row, pad: int):
    """(N, 1, W, F) -> (N, 1, W + 2*pad, F) with zeros: a band row as the row part's convolutions read it."""
    return tf.pad(row, [[0, 0], [0, 0], [pad, pad], [0, 0]])


def conv(band, kernel):
    return tf.nn.conv2d(band, kernel, strides=1, padding="VALID")


def dense(x, kernel, bias=None):
    y = tf.matmul(x, kernel)
    return y if bias is None else y + bias


class _Constants:
    """params[name] as a constant of the graph being traced: built inside each loop body, not captured from outside.

    A captured tensor becomes a loop input, whose value converters cannot see (tf2onnx then cannot tell a
    convolution kernel's shape); one constant per body graph, so no weight is stored twice in a converted file.
    """

    def __init__(self, params: dict, variables: dict | None = None):
        self.params, self.made, self.variables = params, {}, variables

    def __getitem__(self, name: str):
        if self.variables is not None:  # a SavedModel signature: TensorFlow reads captured variables anywhere
            return self.variables[name]
        key = (id(tf.compat.v1.get_default_graph()), name)
        if key not in self.made:
            self.made[key] = tf.constant(self.params[name], name=name)
        return self.made[key]

    def __contains__(self, name: str) -> bool:
        return name in self.params


class GraphPart:
    """What every architecture's graph part shares: its weights, the cache layout, the terms constant along a row.

    A part (architectures/<name>/graph.py, class Graph) adds forward(ctx, pix) -> (hidden, features) at one position
    and row(row, bands, terms, label) -> (bands, aboves) after each finished row, row (W, row_slots, N, F)."""

    bias, label_prefix, width_out = "bias", "", 1  # a row's constant terms: this bias and label embedding, width*F
    row_slots = None  # the leading cache slots row() reads of a finished row (None: all L; 1: the image's levels)

    def __init__(self, params: dict, config: ModelConfig, variables: dict | None = None):
        self.c = _Constants(params, variables)
        self.config = config
        self.pad, self.layers, self.filters = config.kernel_size // 2, config.num_layers, config.filters
        self.row_slots = self.row_slots or self.layers

    def embedded(self, prefix: str, label, n: int):
        key = f"{prefix}embedding_{n}"
        return tf.gather(self.c[key], label) if label is not None and key in self.c else None

    def row_terms(self, label, batch):
        """(L, N, width_out*F): the bias plus the label embedding, added at every position of every row."""
        terms = tf.broadcast_to(self.c[self.bias][:, None], (self.layers, batch, self.width_out * self.filters))
        if label is not None:
            terms = terms + tf.stack([self.embedded(self.label_prefix, label, n) for n in range(self.layers)])
        return terms

    def initial_bands(self, batch):
        """Each layer's input on the pad rows above row 0: zeros (the image is centred, so its padding is 0 too)."""
        w = self.config.width + 2 * self.pad
        shapes = [self.config.channels] + [self.filters] * (self.layers - 1)
        return [tf.zeros(tf.stack([batch, self.pad, w, f])) for f in shapes]


def sampler_function(params: dict, config: ModelConfig, graph: type, update: str = "dynamic_update_slice",
                     variables: dict | None = None):
    """A tf.function(uniforms, temperature, prefix, start[, label]) -> {"images": int32 (N, H, W, C)}.

    graph: the architecture's graph part (its graph.py's Graph); params its graph_params, as
    constants of the graph (what the converters need), or read from variables {name: tf.Variable} holding them.
    """
    arch = graph(params, config, variables)
    write = _writer(update)
    output = tf_distribution(config.distribution)  # the draw's log-weights, as serve.distributions computes them
    per_channel = config.distribution.channel_masks  # softmax: the network runs again for each channel
    head_shape = (-1, *config.distribution.head_shape)
    h, w, c, levels = config.height, config.width, config.channels, config.levels
    pad, layers, f = arch.pad, arch.layers, arch.filters
    middle = (levels - 1) / 2
    conditional = bool(config.num_classes)

    def sample(uniforms, temperature, prefix, start, label=None):
        batch = tf.shape(uniforms)[0]
        draws = tf.transpose(tf.concat([uniforms, prefix], axis=-1), (1, 2, 0, 3))  # (H, W, N, 2C)
        inv_temperature = 1.0 / temperature
        known = tf.reshape(tf.range(h * w * c) < start, (h, w, c))  # raster sub-pixels copied from the prefix
        terms = arch.row_terms(label, batch)
        aboves = tf.broadcast_to(terms[None], tf.stack([w, layers, batch, arch.width_out * f]))
        image = tf.zeros(tf.stack([h, w, batch, c]))

        def row_body(i, image, aboves, *bands):
            row_draws, row_known = tf.gather(draws, i), tf.gather(known, i)

            def column_body(j, window, row):
                ctx = tf.unstack(tf.matmul(window, arch.c["pixel_kernel"]) + tf.gather(aboves, j), num=layers)
                here = tf.gather(row_draws, j)  # (N, 2C): uniforms, then prefix levels
                here_known = tf.gather(row_known, j)  # (C,)
                centred, drawn, pix = [], [], None
                for k in range(c):
                    if k == 0 or per_channel:  # a mixture's one head serves the pixel's channels
                        hidden, features = arch.forward(ctx, pix)
                        head = tf.reshape(dense(hidden, arch.c["head_kernel"], arch.c["head_bias"]), head_shape)
                    earlier = tf.stack(drawn + [tf.zeros_like(here[:, 0])] * (c - k), axis=-1)  # (N, C), channels < k set
                    level = draw(output.log_weights(head, k, earlier), here[:, k : k + 1], inv_temperature, levels)
                    known_here = here_known if c == 1 else here_known[k : k + 1]  # (1,); grey needs no slice op
                    level = tf.where(known_here, here[:, c + k], level)
                    drawn.append(level)
                    centred.append(level - middle)
                    if per_channel and k + 1 < c:  # the next colour sees this one (mask A at the centre); later ones are masked
                        pix = tf.stack(centred + [tf.zeros_like(level)] * (c - k - 1), axis=-1)
                slots = tf.stack([tf.pad(tf.stack(centred, axis=-1), [[0, 0], [0, f - c]])] + features)  # (L, N, F)
                window = tf.concat([window[:, :, f:], slots], axis=-1)  # one column on: drop the oldest, add this one
                return j + 1, window, write(row, j, slots[None, : arch.row_slots])

            window = tf.zeros(tf.stack([layers, batch, pad * f]))
            row = tf.zeros(tf.stack([w, arch.row_slots, batch, f]))
            _, _, row = tf.while_loop(lambda j, *_: j < w, column_body, (tf.constant(0), window, row))
            image = write(image, i, row[None, :, 0, :, :c] + middle)
            bands, aboves = arch.row(row, list(bands), terms, label)
            return (i + 1, image, aboves, *bands)

        state = (tf.constant(0), image, aboves, *arch.initial_bands(batch))
        final = tf.while_loop(lambda i, *_: i < h, row_body, state)
        return {IMAGES: tf.cast(tf.transpose(final[1], (2, 0, 1, 3)), tf.int32)}

    spec = [tf.TensorSpec((None, h, w, c), tf.float32, UNIFORMS), tf.TensorSpec((), tf.float32, TEMPERATURE),
            tf.TensorSpec((None, h, w, c), tf.float32, PREFIX), tf.TensorSpec((), tf.int32, START)]
    if conditional:
        return tf.function(sample, input_signature=spec + [tf.TensorSpec((None,), tf.int32, LABEL)])
    return tf.function(lambda uniforms, temperature, prefix, start: sample(uniforms, temperature, prefix, start),
                       input_signature=spec)
