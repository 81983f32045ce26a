"""PixelCNN++'s discretized logistic mixture (arXiv 1701.05517): its maths once over an array API, and numpy."""
from __future__ import annotations

import math

import numpy as np

from serve.distributions.arrays import NumpyOps
from serve.distributions.base import Distribution, DistributionError, Record, check_int

# log-scales are clipped to this range: -7 as PixelCNN++'s code (a level can reach probability ~0.97 at 256 levels);
# 7 so the bin width in logistic units, 2/(levels-1)/scale, never underflows to 0 in float32 (log 0 = -inf loss).
LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 7.0
LOG2 = math.log(2.0)

# The functions below take `ops` (serve.distributions.arrays.NumpyOps or pixelcnn_tf's TensorFlow twin), so numpy
# and TensorFlow run the same lines. Shapes: `...` is any batch of pixels, K the mixtures, C the channels.


def pairs(channels: int) -> int:
    """Coupling coefficients per component: one per (c, c') with c' < c; RGB: (G,R), (B,R), (B,G)."""
    return channels * (channels - 1) // 2


def features_per_pixel(channels: int, mixtures: int) -> int:
    return mixtures * (1 + 2 * channels + pairs(channels))


def unpack(ops, head, channels: int, mixtures: int):
    """head (..., F) -> mixture logits (..., K), means (..., C, K), log-scales (..., C, K), coefficients (..., P, K).

    Layout along F: K mixture logits | C*K means | C*K log-scales | P*K coefficients, component fastest.
    Log-scales are clipped, coefficients pass through tanh (as PixelCNN++), means are free.
    """
    k, c = mixtures, channels
    logits = head[..., :k]
    means = ops.reshape_last(head[..., k : k + c * k], (c, k))
    log_scales = ops.clip(ops.reshape_last(head[..., k + c * k : k + 2 * c * k], (c, k)), LOG_SCALE_MIN, LOG_SCALE_MAX)
    coefficients = ops.tanh(ops.reshape_last(head[..., k + 2 * c * k :], (pairs(c), k))) if c > 1 else None
    return logits, means, log_scales, coefficients


def to_unit(ops, level, levels: int):
    """Level indices 0..levels-1 -> [-1, 1], as the network's input scaling."""
    return level * (2.0 / (levels - 1)) - 1.0


def log1mexp(ops, d):
    """log(1 - exp(-d)) for d > 0 without cancellation (Maechler 2012): expm1 near 0, log1p further out."""
    near = d < LOG2
    return ops.where(near, ops.log(-ops.expm1(-ops.where(near, d, LOG2))), ops.log1p(-ops.exp(-ops.where(near, LOG2, d))))


def log_bin(ops, level, centre, log_scale, levels: int):
    """log P(level) of a logistic(centre, exp(log_scale)) on [-1, 1] discretised into `levels` bins of half-width
    h = 1/(levels-1); level 0 takes the mass from -inf, level levels-1 up to +inf. Arguments broadcast.

    With a, b the bin's edges in logistic units, sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - exp(a - b)):
    three logs that stay finite and exact in both far tails, where the difference itself would cancel to 0.
    """
    h = 1.0 / (levels - 1)
    inv_scale = ops.exp(-log_scale)
    offset = to_unit(ops, level, levels) - centre
    log_below_upper = -ops.softplus(-inv_scale * (offset + h))  # log sigmoid(b)
    log_above_lower = -ops.softplus(inv_scale * (offset - h))  # log sigmoid(-a)
    middle = log_below_upper + log_above_lower + log1mexp(ops, inv_scale * (2.0 * h))
    return ops.where(level < 0.5, log_below_upper, ops.where(level > levels - 1.5, log_above_lower, middle))


def channel_centres(ops, means, coefficients, earlier_unit: list, c: int):
    """Component means (..., K) of channel c: mu_c + sum_{c'<c} coef_(c,c') x_c' (PixelCNN++: G on R, B on R and G)."""
    centre = means[..., c, :]
    for i, x in enumerate(earlier_unit):
        centre = centre + coefficients[..., pairs(c) + i, :] * x[..., None]
    return centre


def earlier_log_weights(ops, head, earlier, c: int, channels: int, mixtures: int, levels: int):
    """Log posterior weights (..., K) of the components given the pixel's channels < c, and the centres of c.

    Weights are log pi_k + sum_{c'<c} log p_k(x_c' | x_<c'), normalised: the mixture the conditional of c is.
    """
    logits, means, log_scales, coefficients = unpack(ops, head, channels, mixtures)
    weights = ops.log_softmax(logits, -1)
    unit = []
    for i in range(c):
        value = ops.cast_like(earlier[..., i], head)
        weights = weights + log_bin(ops, value[..., None], channel_centres(ops, means, coefficients, unit, i),
                                    log_scales[..., i, :], levels)
        unit.append(to_unit(ops, value, levels))
    return ops.log_softmax(weights, -1), channel_centres(ops, means, coefficients, unit, c), log_scales[..., c, :]


def conditional_log_probs(ops, head, c: int, earlier, channels: int, mixtures: int, levels: int):
    """log P(x_c = l | x_<c = earlier) for every level l: head (..., F), earlier (..., >=c) levels -> (..., levels)."""
    weights, centres, log_scales = earlier_log_weights(ops, head, earlier, c, channels, mixtures, levels)
    grid = ops.constant(np.arange(levels, dtype=np.float64), head)
    per_level = log_bin(ops, grid, centres[..., None], log_scales[..., None], levels)  # (..., K, levels)
    return ops.logsumexp(weights[..., None] + per_level, -2)


def pixel_log_probs(ops, head, values, channels: int, mixtures: int, levels: int):
    """log P(pixel = values) (...,): head (..., F), values (..., C) levels; the component is shared by the channels,
    so this is log sum_k pi_k prod_c p_k(x_c | x_<c), computed without the posterior weights."""
    logits, means, log_scales, coefficients = unpack(ops, head, channels, mixtures)
    total = ops.log_softmax(logits, -1)
    unit = []
    for c in range(channels):
        value = ops.cast_like(values[..., c], head)
        centre = channel_centres(ops, means, coefficients, unit, c)
        total = total + log_bin(ops, value[..., None], centre, log_scales[..., c, :], levels)
        unit.append(to_unit(ops, value, levels))
    return ops.logsumexp(total, -1)


class LogisticMixture(Distribution):
    """K logistics per pixel shared by its channels; pixel-level causal network, channels coupled through the means."""

    name = "logistic_mixture"
    channel_masks = False

    def __init__(self, *, channels: int, levels: int, mixtures: int | None = None):
        super().__init__(channels=channels, levels=levels)
        if mixtures is None:
            raise DistributionError("logistic_mixture needs the number of mixture components (--mixtures K)")
        # More components than levels adds parameters but no distribution over the levels that K = levels lacks.
        self.mixtures = check_int(f"mixtures (at most levels, {self.levels})", mixtures, 1, self.levels)

    @property
    def head_shape(self) -> tuple[int, ...]:
        return (features_per_pixel(self.channels, self.mixtures),)

    def describe(self) -> str:
        return f"logistic_mixture with {self.mixtures} component(s)"

    def _args(self):
        return self.channels, self.mixtures, self.levels

    def log_weights(self, head, c, earlier):
        return conditional_log_probs(NumpyOps, self.check_head(head), c, np.asarray(earlier), *self._args())

    def log_probs(self, head, c, earlier):
        return self.log_weights(head, c, earlier)  # already normalised: exact log-probabilities

    def pixel_log_probs(self, head, values):
        return pixel_log_probs(NumpyOps, self.check_head(head), np.asarray(values), *self._args())

    def nll_per_image(self, head, images):
        return -self.pixel_log_probs(head, images).reshape(len(images), -1).sum(axis=1)


RECORD = Record(
    name="logistic_mixture",
    summary="PixelCNN++'s discretized mixture of K logistics per pixel, channels coupled through linear means",
    build=LogisticMixture,
    takes_mixtures=True,
)
