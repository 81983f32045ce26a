"""The categorical over levels per sub-pixel (today's output): its head is (channels, levels) logits per pixel."""
from __future__ import annotations

import numpy as np

from serve.distributions.base import Distribution, DistributionError, Record
from serve.sampling import nll_per_image


class Softmax(Distribution):
    """softmax(logits) over levels for each sub-pixel; channel c's logits saw channels < c through Mask-B masks."""

    name = "softmax"
    channel_masks = True

    def __init__(self, *, channels: int, levels: int, mixtures: int | None = None):
        super().__init__(channels=channels, levels=levels)
        if mixtures is not None:
            raise DistributionError(f"softmax takes no mixture components (got mixtures={mixtures!r}); "
                                    "they are for logistic_mixture")

    @property
    def head_shape(self) -> tuple[int, ...]:
        return (self.channels, self.levels)

    def log_weights(self, head, c, earlier):
        # The logits themselves: the draw's arithmetic then is serve.sampling.draw on the same numbers as before.
        self.check_head(head)
        return np.asarray(head)[..., c, :]

    def nll_per_image(self, head, images):
        return nll_per_image(self.check_head(head), self.check_values(images))


RECORD = Record(
    name="softmax",
    summary="a categorical over the levels of each sub-pixel, channels ordered R -> G -> B by masks",
    build=Softmax,
)
