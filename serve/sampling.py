"""The backend-independent sampling loop (numpy only): seeded uniforms, raster then R->G->B order, inverse CDF."""
from __future__ import annotations

from typing import Callable

import numpy as np

# logits_fn(images float32 (B, H, W, C) of level indices, labels int32 (B,) or None) -> the output head
# (B, H, W, *head_shape): softmax's logits (B, H, W, C, levels), a mixture's parameters (B, H, W, F)
LogitsFn = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]

MAX_IMAGES = 100_000


class SamplingError(ValueError):
    """Bad sampling arguments (counts, temperature, labels)."""


def is_integer(value) -> bool:
    """An int or numpy integer, not a bool (True is an int to Python, never a count or a seed here)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_request(num_images: int, temperature: float, batch_size: int | None) -> None:
    if not is_integer(num_images) or num_images < 1:
        raise SamplingError(f"num_images must be a positive integer, got {num_images!r}")
    if num_images > MAX_IMAGES:
        raise SamplingError(f"num_images={num_images} is more than {MAX_IMAGES}; sample in several runs")
    if not is_number(temperature) or not (temperature > 0 and np.isfinite(temperature)):
        raise SamplingError(f"temperature must be a positive number, got {temperature!r}")
    if batch_size is not None and (not is_integer(batch_size) or batch_size < 1):
        raise SamplingError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_seed(seed) -> int:
    """A seed for numpy's generator: an integer >= 0."""
    if not is_integer(seed) or seed < 0:
        raise SamplingError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_labels(labels, num_images: int, num_classes: int) -> np.ndarray | None:
    """Labels as int32 (N,): one class id for every image or one per image, required exactly for a conditional model."""
    if not num_classes:
        if labels is not None:
            raise SamplingError("this model is not class-conditional; it takes no labels")
        return None
    if labels is None:
        raise SamplingError(f"this model is class-conditional: give a label in 0..{num_classes - 1}")
    try:
        values = np.asarray(labels)
    except (TypeError, ValueError):
        values = np.asarray([], dtype=object)
    if values.dtype == object or values.ndim > 1 or not (np.issubdtype(values.dtype, np.integer)
                                                         or np.issubdtype(values.dtype, np.floating)):
        raise SamplingError(f"labels must be integer class ids (one, or one per image), got {labels!r:.80}")
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values) & (values == np.round(values))):
        raise SamplingError(f"labels must be whole class ids, got {labels!r:.80}")
    if values.ndim == 1 and len(values) != num_images:
        raise SamplingError(f"labels must be one class id or {num_images} (one per image), got {len(values)}")
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise SamplingError(f"labels must be in 0..{num_classes - 1}, got {sorted(set(values.ravel().tolist()))[:10]}")
    return np.broadcast_to(values.astype(np.int64), (num_images,)).astype(np.int32)


def check_step_output(what: str, features, head: np.ndarray, num_layers: int, head_shape: tuple[int, ...]) -> None:
    """A cached step must give one feature map per layer but the last and the output head (batch, *head_shape)."""
    if len(features) != num_layers - 1 or tuple(head.shape[1:]) != tuple(head_shape):
        raise SamplingError(
            f"{what} gave {len(features)} feature maps and a head {head.shape}; expected "
            f"{num_layers - 1} and (batch, {', '.join(map(str, head_shape))}): does it match the model config?"
        )


def uniforms(num_images: int, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """One uniform per sub-pixel, drawn up front so every backend and batch size sees the same numbers."""
    return np.random.default_rng(check_seed(seed)).random((num_images, height, width, channels))


def draw(logits: np.ndarray, u: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Inverse-CDF draw of a level per row of logits (B, levels) from uniforms u (B,).

    The maximum is subtracted before dividing, so a temperature that overflows the division (5e-324) gives
    -inf for every level but the most likely: the argmax, the limit of a vanishing temperature, never NaN.
    """
    z = logits.astype(np.float64)
    with np.errstate(over="ignore"):
        z = (z - z.max(axis=-1, keepdims=True)) / temperature
    cdf = np.cumsum(np.exp(z), axis=-1)
    index = (cdf < u[:, None] * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(index, logits.shape[-1] - 1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def nll_per_image(logits: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Negative log-likelihood in nats of each image (N, H, W, C) under logits (N, H, W, C, levels)."""
    picked = np.take_along_axis(log_softmax(logits), images.astype(np.int64)[..., None], axis=-1)
    return -picked.reshape(len(images), -1).sum(axis=1)


def sample_naive(
    logits_fn: LogitsFn,
    *,
    distribution,
    num_images: int,
    shape: tuple[int, int, int],
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int | None = None,
    labels: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Draw images with one full forward pass per sub-pixel (per pixel when the distribution's one head serves all
    of a pixel's channels); returns uint8 level indices (N, H, W, C).

    distribution: the output's serve.distributions.Distribution, which draws each sub-pixel from the head.
    progress(n) is called after each sub-pixel step with the number of images that step advanced.
    """
    check_request(num_images, temperature, batch_size)
    height, width, channels = shape
    u = uniforms(num_images, height, width, channels, seed)
    images = np.zeros((num_images, height, width, channels), dtype=np.float32)
    batch_size = batch_size or num_images
    for start in range(0, num_images, batch_size):
        stop = min(start + batch_size, num_images)
        batch = images[start:stop]  # a view: writes land in images
        batch_labels = None if labels is None else labels[start:stop]
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    if c == 0 or distribution.channel_masks:
                        head = logits_fn(batch, batch_labels)[:, i, j]
                    batch[:, i, j, c] = distribution.draw(head, c, batch[:, i, j, :c], u[start:stop, i, j, c], temperature)
                    if progress:
                        progress(stop - start)
    return images.astype(np.uint8)


def to_grid(images: np.ndarray, levels: int, columns: int | None = None) -> np.ndarray:
    """Tile (N, H, W, C) level indices into one uint8 picture (rows*H, columns*W[, 3]) scaled to 0..255."""
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    pixels = np.round(images.astype(np.float64) * 255.0 / (levels - 1)).astype(np.uint8)
    grid = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for index in range(n):
        r, col = divmod(index, columns)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = pixels[index]
    return grid[..., 0] if c == 1 else grid
