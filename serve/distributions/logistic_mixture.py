"""PixelCNN++'s discretized logistic mixture (arXiv 1701.05517): its maths once over an array API, and numpy."""
from __future__ import annotations

import numpy as np

from serve.distributions.arrays import NumpyOps
from serve.distributions.base import Distribution, DistributionError, Record, check_int

# log-scales are clipped to this range: -7 as PixelCNN++'s code (a level can reach probability ~0.97 at 256 levels);
# 7 so the bin width in logistic units, 2/(levels-1)/scale, never underflows to 0 in float32 (log 0 = -inf loss).
LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 7.0
# exp(-80) = 2e-35 is below float64's resolution next to the terms it is added to (>= 1/4 here) and still a
# normal float32: clipping there changes no result and keeps exp off the slow subnormal path.
EXP_FLOOR = 80.0
CHUNK_TERMS = 8192

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
    """log(1 - exp(-d)) for d > 0 without cancellation, through 1 - exp(-d) = 2 tanh(d/2) / (1 + tanh(d/2)):
    tanh is exact near 0 where 1 - exp(-d) cancels, and every runtime has it (ONNX has no Expm1, TFLite no Log1p)."""
    half = ops.tanh(d * 0.5)
    return ops.log(2.0 * half) - ops.log(1.0 + half)


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


def mixture_over_levels(ops, log_weights, centres, log_scales, levels: int):
    """log sum_k w_k P_k(l) for every level l (..., levels) from log-weights, centres, log-scales (..., K).

    The same bins as log_bin, written for all levels at once and fast: with t the interior bin edges in logistic
    units, log sigmoid(t) = min(t, 0) + log sigmoid(|t|), so P_k(l) = exp(m) * rho with m the min(., 0) terms plus
    log(1 - exp(a - b)) (one per component) and rho = sigmoid(|b|) sigmoid(|a|) in [1/4, 1]. Neighbouring levels
    share an edge, and the only logs are one per level after the sum over components (numpy's float64 log costs
    ~15x its exp here).
    """
    h = 1.0 / (levels - 1)
    inv_scale = ops.exp(-log_scales)[..., None]  # (..., K, 1)
    edges = ops.constant(-1.0 + (2.0 * np.arange(levels - 1) + 1.0) * h, centres)  # upper edge of level j
    t = (edges - centres[..., None]) * inv_scale  # (..., K, levels-1)
    sig_abs = 1.0 / (1.0 + ops.exp(ops.clip(-ops.abs(t), -EXP_FLOOR, 0.0)))
    zero = t[..., :1] * 0.0
    # Level l's upper edge is t_l (none for the last level), its lower edge t_(l-1) (none for level 0); the middle
    # levels also take log(1 - exp(a - b)), one value per component.
    middle = ops.constant((np.arange(levels) > 0) & (np.arange(levels) < levels - 1), centres)
    total = (log_weights[..., None] + middle * log1mexp(ops, (2.0 * h) * inv_scale)
             + ops.concat([ops.minimum(t, 0.0), zero], -1) + ops.concat([zero, ops.minimum(-t, 0.0)], -1))
    rho = ops.concat([sig_abs, zero + 1.0], -1) * ops.concat([zero + 1.0, sig_abs], -1)  # in [1/4, 1]
    top = ops.max(total, -2)
    return top + ops.log(ops.sum(ops.exp(ops.clip(total - top[..., None, :], -EXP_FLOOR, 0.0)) * rho, -2))


def conditional_log_probs(ops, head, c: int, earlier, channels: int, mixtures: int, levels: int):
    """log P(x_c = l | x_<c = earlier) for every level l: head (..., F), earlier (..., >=c) levels -> (..., levels)."""
    weights, centres, log_scales = earlier_log_weights(ops, head, earlier, c, channels, mixtures, levels)
    return mixture_over_levels(ops, weights, centres, log_scales, levels)


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
        head, earlier = self.check_head(head), self.check_values(earlier, "earlier channels")
        flat_head = head.reshape(-1, head.shape[-1])
        flat_earlier = earlier.reshape(len(flat_head), earlier.shape[-1])
        # In blocks of 8192 (pixel, component, level) terms: numpy's temporaries (64 KiB) then stay below glibc's mmap
        # and trim thresholds (batch 144, K=10, 256 levels at once spent over half its time in page faults).
        weights, centres, log_scales = earlier_log_weights(NumpyOps, flat_head, flat_earlier, c, *self._args())
        rows = max(1, CHUNK_TERMS // (self.mixtures * self.levels))
        out = [mixture_over_levels(NumpyOps, weights[i : i + rows], centres[i : i + rows], log_scales[i : i + rows],
                                   self.levels) for i in range(0, len(flat_head), rows)] or [np.zeros((0, self.levels))]
        return np.concatenate(out).reshape(head.shape[:-1] + (self.levels,))

    def log_probs(self, head, c, earlier):
        return self.log_weights(head, c, earlier)  # already normalised: exact log-probabilities

    def pixel_log_probs(self, head, values):
        return pixel_log_probs(NumpyOps, self.check_head(head), self.check_values(values), *self._args())

    def nll_per_image(self, head, images):
        return -self.pixel_log_probs(head, images).reshape(len(images), -1).sum(axis=1)


RECORD = Record(
    name="logistic_mixture",
    summary="PixelCNN++'s discretized mixture of K logistics per pixel, channels coupled through linear means",
    build=LogisticMixture,
    takes_mixtures=True,
)
