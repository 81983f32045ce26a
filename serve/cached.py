"""Cached sampling (numpy only): the sampling driver over an architecture's step, and teacher forcing for parity."""
from __future__ import annotations

from typing import Callable

import numpy as np

from serve.architectures import step_architecture
from serve.architectures.record import StepArchitecture
from serve.sampling import SamplingError, check_request, uniforms

LAYOUT_KEYS = ("num_layers", "kernel_size", "filters", "levels")  # with "architecture": a step's cache layout


def _check_layout(shape, num_layers: int, kernel_size: int, filters: int, levels: int, entry: StepArchitecture) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise SamplingError(f"shape must be (height, width, channels) of positive sizes, got {shape!r}")
    if num_layers < 1 or filters < 1:
        raise SamplingError(f"num_layers and filters must be positive, got {num_layers} and {filters}")
    if kernel_size < entry.min_kernel_size or kernel_size % 2 == 0:
        raise SamplingError(f"cached {entry.name} sampling needs an odd kernel_size >= {entry.min_kernel_size}, got {kernel_size}")
    if not 2 <= levels <= 256:
        raise SamplingError(f"levels must be in 2..256, got {levels}")


def _run(step, layout: dict, shape, distribution, choose, batch: int, labels, progress=None) -> np.ndarray:
    entry = step_architecture(layout["architecture"])
    sizes = {key: layout[key] for key in LAYOUT_KEYS}
    _check_layout(shape, **sizes, entry=entry)
    return entry.loop(step, shape=shape, distribution=distribution, choose=choose, batch=batch, labels=labels,
                      progress=progress, **sizes)


def sample_cached(
    step,
    *,
    num_images: int,
    shape: tuple[int, int, int],
    num_layers: int,
    kernel_size: int,
    filters: int,
    levels: int,
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int | None = None,
    labels: np.ndarray | None = None,
    architecture: str,
    distribution,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Draw images computing each layer only at the current position; returns uint8 level indices (N, H, W, C).

    step is what the architecture's loop calls (a seed StepFn, a gated GatedStep). Uses serve.sampling's uniforms
    and draw, so with the same seed it draws what sample_naive draws. For RGB the position is recomputed for each
    channel step (R, G, B); the activations written after the last one are final.
    labels: int32 (N,) already checked (serve.sampling.check_labels) for a conditional model, else None.
    """
    check_request(num_images, temperature, batch_size)
    layout = dict(num_layers=num_layers, kernel_size=kernel_size, filters=filters, levels=levels, architecture=architecture)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int32)
        if labels.shape != (num_images,):
            raise SamplingError(f"labels must have shape ({num_images},), got {labels.shape}")
    height, width, channels = shape
    u = uniforms(num_images, height, width, channels, seed)
    images = np.zeros((num_images, height, width, channels), dtype=np.uint8)
    batch_size = batch_size or num_images
    for start in range(0, num_images, batch_size):
        stop = min(start + batch_size, num_images)
        batch_u = u[start:stop]
        images[start:stop] = _run(
            step, layout, shape, distribution,
            lambda i, j, c, head, earlier: distribution.draw(head, c, earlier, batch_u[:, i, j, c], temperature),
            stop - start, None if labels is None else labels[start:stop], progress,
        )
    return images


def teacher_forced_logits(step, images: np.ndarray, labels, layout: dict, distribution) -> np.ndarray:
    """The head (N, H, W, *head_shape) the full model gives, from the step run in sampling order on images' own levels.

    A channel-masked head (softmax's (C, levels)) is recomputed for each channel and only channel c's row of the
    c-th one is final; a mixture's one head per pixel is final at once.
    """
    images = np.asarray(images)
    n, height, width, channels = images.shape
    heads = np.zeros((n, height, width, *distribution.head_shape), np.float32)

    def choose(i, j, c, head, earlier):
        if distribution.channel_masks:
            heads[:, i, j, c] = head[:, c]
        elif c == 0:
            heads[:, i, j] = head
        return images[:, i, j, c]

    _run(step, layout, (height, width, channels), distribution, choose, n, labels)
    return heads
