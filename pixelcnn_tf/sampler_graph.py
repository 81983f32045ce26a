"""The whole sampler as one TensorFlow graph: uniforms in, images out, in nested while loops (rows, then columns)."""
from __future__ import annotations

import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from pixelcnn_tf.config import ModelConfig
from serve.names import IMAGES, LABEL, PREFIX, START, TEMPERATURE, UNIFORMS

# Inputs and output: docs/device.md (the contract); serve.graph checks every input before a runtime sees it.
# Loop state per row: the current row's cache (W+pad, L, N, F): slot 0 the centred levels (zero-padded to F
# channels), slot l the output of layer l-1; per image: the last pad rows each layer's row part reads (bands),
# and the row's aboves (pixelcnn_tf/sampler_params.py). Caches are written with one op on their leading axis:
# XLA's DynamicUpdateSlice (TFLite's builtin DYNAMIC_UPDATE_SLICE) or, for ONNX, ScatterND (tf2onnx maps no
# dynamic-update op). The draw is serve.sampling.draw's inverse CDF, in float32.
UPDATES = ("dynamic_update_slice", "scatter_nd")


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
    """serve.sampling.draw in float32: logits (N, levels), u (N, 1) -> float levels (N,)."""
    z = logits * inv_temperature
    z = z - tf.reduce_max(z, axis=-1, keepdims=True)
    cdf = tf.cumsum(tf.exp(z), axis=-1)
    index = tf.reduce_sum(tf.cast(cdf < u * cdf[:, levels - 1 :], tf.float32), axis=-1)
    return tf.minimum(index, levels - 1.0)


def _pad_columns(row, pad: int):
    """(N, 1, W, F) -> (N, 1, W + 2*pad, F) with zeros: a band row as the row part's convolutions read it."""
    return tf.pad(row, [[0, 0], [0, 0], [pad, pad], [0, 0]])


def _conv(band, kernel):
    return tf.nn.conv2d(band, kernel, strides=1, padding="VALID")


def _dense(x, kernel, bias=None):
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


class _Arch:
    """What the two architectures share: their weights, the cache layout, the terms constant along a row."""

    bias, label_prefix, width_out = "bias", "", 1  # a row's constant terms: this bias and label embedding, width*F

    def __init__(self, params: dict, config: ModelConfig, variables: dict | None = None):
        self.c = _Constants(params, variables)
        self.config = config
        self.pad, self.layers, self.filters = config.kernel_size // 2, config.num_layers, config.filters

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


class SeedGraph(_Arch):
    """The seed PixelCNN: the row part convolves the pad rows above with each layer's upper kernel rows."""

    def forward(self, ctx, pix):
        """Layer outputs at the position: (hidden for the head, features written to slots 1..L-1)."""
        y = ctx[0] if pix is None else ctx[0] + tf.matmul(pix, self.c["centre_0"])
        x, features = tf.nn.relu(y), []
        for n in range(1, self.layers):
            features.append(x)
            x = tf.nn.relu(ctx[n] + tf.matmul(x, self.c[f"centre_{n}"]))
        return x, features

    def row(self, row, bands, terms, label):
        """After a row: new bands (shifted by the finished row) and the next row's aboves (W, L, N, F)."""
        new_rows = [row[:, 0, :, : self.config.channels]] + [row[:, n] for n in range(1, self.layers)]
        bands = [tf.concat([band[:, 1:], _pad_columns(tf.transpose(r, (1, 0, 2))[:, None], self.pad)], axis=1)
                 for band, r in zip(bands, new_rows)]
        above = tf.concat([_conv(band, self.c[f"row_kernel_{n}"]) for n, band in enumerate(bands)], axis=1)  # (N, L, W, F)
        return bands, tf.transpose(above, (2, 1, 0, 3)) + terms[None]


class GatedGraph(_Arch):
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
                out = _dense(g, self.c[f"out_kernel_{n}"], self.c[f"out_bias_{n}"])
                x = out if n == 0 else x + out
                features.append(x)
        skip = _dense(tf.concat(gated, axis=-1) if len(gated) > 1 else gated[0], self.c["skip_kernel"], self.c["skip_bias"])
        hidden = tf.nn.relu(_dense(tf.nn.relu(skip), self.c["final_kernel"], self.c["final_bias"]))
        return hidden, features

    def row(self, row, bands, terms, label):
        """The vertical stack over the finished row: new bands and the next row's link terms (W, L, N, 2F)."""
        f, w = self.filters, self.config.width
        new_row = _pad_columns(tf.transpose(row[:, 0, :, : self.config.channels], (1, 0, 2))[:, None], self.pad)
        new_bands, aboves = [], []
        for n, band in enumerate(bands):
            full = tf.concat([band, new_row], axis=1)  # rows i-pad..i
            new_bands.append(full[:, 1:])
            pre = _conv(full, self.c[f"v_kernel_{n}"]) + self.c[f"v_bias_{n}"]  # (N, 1, W, 2F)
            aboves.append(tf.reshape(tf.matmul(tf.reshape(pre, (-1, 2 * f)), self.c[f"link_kernel_{n}"]), (-1, w, 2 * f)))
            if n < self.layers - 1:
                label_term = self.embedded("v_", label, n)
                if label_term is not None:
                    pre = pre + label_term[:, None, None]
                new_row = _pad_columns(self._gate(pre), self.pad)
        above = tf.transpose(tf.stack(aboves), (2, 0, 1, 3))  # (W, L, N, 2F)
        return new_bands, above + terms[None]


def sampler_function(params: dict, config: ModelConfig, graph: type, update: str = "dynamic_update_slice",
                     variables: dict | None = None):
    """A tf.function(uniforms, temperature, prefix, start[, label]) -> {"images": int32 (N, H, W, C)}.

    graph: the architecture's SeedGraph or GatedGraph (pixelcnn_tf.model's table); params its graph_params, as
    constants of the graph (what the converters need), or read from variables {name: tf.Variable} holding them.
    """
    arch = graph(params, config, variables)
    write = _writer(update)
    h, w, c, levels = config.height, config.width, config.channels, config.levels
    pad, layers, f = arch.pad, arch.layers, arch.filters
    middle = (levels - 1) / 2
    conditional = bool(config.num_classes)

    def sample(uniforms, temperature, prefix, start, label=None):
        batch = tf.shape(uniforms)[0]
        draws = tf.transpose(tf.concat([uniforms, prefix], axis=-1), (1, 2, 0, 3))  # (H, W, N, 2C)
        inv_temperature = 1.0 / temperature
        terms = arch.row_terms(label, batch)
        aboves = tf.broadcast_to(terms[None], tf.stack([w, layers, batch, arch.width_out * f]))
        image = tf.zeros(tf.stack([h, w, batch, c]))

        def row_body(i, image, aboves, *bands):
            row_draws = tf.gather(draws, i)

            def column_body(j, cache):
                window = tf.transpose(tf.slice(cache, tf.stack([j, 0, 0, 0]), tf.stack([pad, layers, batch, f])), (1, 2, 0, 3))
                ctx = tf.unstack(tf.matmul(tf.reshape(window, tf.stack([layers, batch, pad * f])), arch.c["pixel_kernel"])
                                 + tf.gather(aboves, j), num=layers)
                here = tf.gather(row_draws, j)  # (N, 2C): uniforms, then prefix levels
                first = (i * w + j) * c
                centred, pix = [], None
                for k in range(c):
                    hidden, features = arch.forward(ctx, pix)
                    part = slice(k * levels, (k + 1) * levels)  # channel k's logits
                    logits = _dense(hidden, arch.c["head_kernel"][:, part], arch.c["head_bias"][part])
                    level = draw(logits, here[:, k : k + 1], inv_temperature, levels)
                    level = tf.where(first + k < start, here[:, c + k], level)
                    centred.append(level - middle)
                    if k + 1 < c:  # the next colour sees this one (mask A at the centre); later ones are masked
                        pix = tf.stack(centred + [tf.zeros_like(level)] * (c - k - 1), axis=-1)
                slot0 = tf.pad(tf.stack(centred, axis=-1), [[0, 0], [0, f - c]])
                return j + 1, write(cache, j + pad, tf.stack([slot0] + features)[None])

            cache = tf.zeros(tf.stack([w + pad, layers, batch, f]))
            _, cache = tf.while_loop(lambda j, _: j < w, column_body, (tf.constant(0), cache))
            row = cache[pad:]  # (W, L, N, F)
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
