"""What every output distribution implements (numpy, float64), its error type and its registry record."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from serve.sampling import draw as inverse_cdf_draw
from serve.sampling import is_integer, log_softmax

MAX_LEVELS = 256


class DistributionError(ValueError):
    """A bad output distribution request (name, levels, mixtures) or a head that does not fit it: one line."""


def check_int(what: str, value, low: int, high: int) -> int:
    if not is_integer(value) or not low <= value <= high:
        raise DistributionError(f"{what} must be an integer in {low}..{high}, got {value!r}")
    return int(value)


class Distribution:
    """One output distribution bound to an image shape: how big its head is and what that head means.

    A head is the network's output for a batch of pixels, (..., *head_shape) per pixel. Sub-pixel values are
    level indices 0..levels-1; `earlier` holds the values already drawn for the pixel's channels 0..c-1.
    Subclasses set `name`, `channel_masks`, `head_shape` and implement `log_weights` and `nll_per_image`.
    """

    name: str = ""
    # True when the head of channel c was computed from the pixel's channels < c (Mask-B channel masks): the
    # network must run again after every sub-pixel. False: one run per pixel serves all its channels.
    channel_masks: bool = True

    def __init__(self, *, channels: int, levels: int, mixtures: int | None = None):
        self.channels = check_int("channels", channels, 1, 3)
        self.levels = check_int("levels", levels, 2, MAX_LEVELS)
        self.mixtures = mixtures

    @property
    def head_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def features(self) -> int:
        """Head features per pixel: the 1x1 head convolution's filters."""
        return int(np.prod(self.head_shape))

    @property
    def steps_per_pixel(self) -> int:
        """Network runs a sampler needs per pixel."""
        return self.channels if self.channel_masks else 1

    def describe(self) -> str:
        return self.name

    def check_head(self, head: np.ndarray, what: str = "the head") -> np.ndarray:
        """head as float64, after checking its per-pixel shape: a mismatch names both shapes."""
        shape = tuple(np.shape(head))
        if shape[len(shape) - len(self.head_shape):] != self.head_shape:
            raise DistributionError(
                f"{what} has shape {shape}; {self.describe()} over {self.levels} levels and {self.channels} "
                f"channel(s) needs (..., {', '.join(map(str, self.head_shape))}): does it match the model config?"
            )
        return np.asarray(head, dtype=np.float64)

    def check_values(self, values, what: str = "the images") -> np.ndarray:
        """Sub-pixel values as given, checked to be whole levels 0..levels-1 (a mixture would score others)."""
        values = np.asarray(values)
        whole = np.all(values == np.round(values)) if values.size else True
        if values.size and not (whole and 0 <= values.min() and values.max() < self.levels):
            raise DistributionError(f"{what} must hold whole levels in 0..{self.levels - 1}, got values in "
                                    f"{values.min()}..{values.max()}")
        return values

    def log_weights(self, head: np.ndarray, c: int, earlier: np.ndarray) -> np.ndarray:
        """Unnormalised log-probabilities (..., levels) of sub-pixel c given the pixel's earlier channels."""
        raise NotImplementedError

    def log_probs(self, head: np.ndarray, c: int, earlier: np.ndarray) -> np.ndarray:
        """log P(x_c = l | x_<c = earlier) for every level l: (..., levels), float64, summing to 1 in probability."""
        return log_softmax(self.log_weights(head, c, earlier))

    def nll_per_image(self, head: np.ndarray, images: np.ndarray) -> np.ndarray:
        """Negative log-likelihood in nats of each image (N, H, W, C) under its head (N, H, W, *head_shape)."""
        raise NotImplementedError

    def draw(self, head: np.ndarray, c: int, earlier: np.ndarray, u: np.ndarray, temperature: float = 1.0):
        """Levels (B,) of sub-pixel c by inverse CDF from uniforms u (B,), head (B, *head_shape).

        Temperature T raises the sub-pixel's conditional distribution to 1/T and renormalises it (softmax: today's
        softmax(logits / T)); the arithmetic is serve.sampling.draw's, so softmax draws stay bit-identical.
        """
        return inverse_cdf_draw(self.log_weights(head, c, earlier), u, temperature)

    def draw_pixel(self, head: np.ndarray, u: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """All channels (B, C) of a pixel from one head (B, *head_shape) and uniforms u (B, C), R then G then B."""
        if self.channel_masks and self.channels > 1:
            raise DistributionError(f"{self.name}'s head changes after every sub-pixel: draw channel by channel")
        values = np.zeros((len(u), self.channels), dtype=np.int64)
        for c in range(self.channels):
            values[:, c] = self.draw(head, c, values[:, :c], u[:, c], temperature)
        return values


@dataclass(frozen=True)
class Record:
    """One output distribution as the registry lists it; build(channels=, levels=, mixtures=) validates."""

    name: str
    summary: str
    build: Callable[..., Distribution]
    takes_mixtures: bool = False
