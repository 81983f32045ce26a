"""Cached PixelCNN sampling (numpy only): one step-model call per sub-pixel over per-layer activation caches."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from serve.gated_cached import Chooser, run_gated
from serve.metadata import ModelSpec
from serve.sampling import SamplingError, check_labels, check_request, check_step_output, draw, uniforms

# step_fn(windows, labels) -> (features, logits): windows[0] float32 (B, k//2+1, k, C) of level indices,
# windows[l] float32 (B, k//2+1, k, F) of layer l-1's outputs; labels int32 (B,) or None.
# features[l] (B, F) is layer l's new output at the position (l = 0..num_layers-2); logits (B, C, levels).
StepFn = Callable[[Sequence[np.ndarray], "np.ndarray | None"], "tuple[Sequence[np.ndarray], np.ndarray]"]


def _check_shape(shape, num_layers: int, kernel_size: int, filters: int, levels: int) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise SamplingError(f"shape must be (height, width, channels) of positive sizes, got {shape!r}")
    if num_layers < 1 or filters < 1:
        raise SamplingError(f"num_layers and filters must be positive, got {num_layers} and {filters}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise SamplingError(f"kernel_size must be a positive odd number, got {kernel_size}")
    if not 2 <= levels <= 256:
        raise SamplingError(f"levels must be in 2..256, got {levels}")


def new_caches(batch: int, shape, num_layers: int, kernel_size: int, filters: int, levels: int) -> list[np.ndarray]:
    """Cache l holds layer l's input, padded k//2 above, left and right (rows below are never read).

    The image cache's padding is the level that the model's Rescaling maps to 0, as its 'same' zero padding is;
    activation caches are padded with 0.
    """
    height, width, channels = shape
    pad = kernel_size // 2
    caches = [np.full((batch, height + pad, width + 2 * pad, channels), (levels - 1) / 2, dtype=np.float32)]
    caches += [np.zeros((batch, height + pad, width + 2 * pad, filters), np.float32) for _ in range(num_layers - 1)]
    return caches


def sample_cached(
    step_fn: StepFn,
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
    progress: Callable[[int], None] | None = None,
    architecture: str = "pixelcnn",
) -> np.ndarray:
    """Draw images computing each layer only at the current position; returns uint8 level indices (N, H, W, C).

    architecture 'gated': step_fn is a serve.gated_cached.GatedStep (pixel and row steps) and the gated loop runs.

    Uses serve.sampling's uniforms and draw, so with the same seed it draws what sample_naive draws. For RGB the
    position is recomputed for each channel step (R, G, B); the activations written after the last one are final.
    labels: int32 (N,) already checked (serve.sampling.check_labels) for a conditional model, else None.
    """
    check_request(num_images, temperature, batch_size)
    _check_shape(shape, num_layers, kernel_size, filters, levels)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int32)
        if labels.shape != (num_images,):
            raise SamplingError(f"labels must have shape ({num_images},), got {labels.shape}")
    run = {"pixelcnn": run_seed, "gated": run_gated}.get(architecture)
    if run is None:
        raise SamplingError(f"unknown architecture {architecture!r} for cached sampling")
    height, width, channels = shape
    u = uniforms(num_images, height, width, channels, seed)
    images = np.zeros((num_images, height, width, channels), dtype=np.uint8)
    batch_size = batch_size or num_images
    for start in range(0, num_images, batch_size):
        stop = min(start + batch_size, num_images)
        batch_u = u[start:stop]
        images[start:stop] = run(
            step_fn, shape=shape, num_layers=num_layers, kernel_size=kernel_size, filters=filters, levels=levels,
            choose=lambda i, j, c, logits: draw(logits, batch_u[:, i, j, c], temperature),
            batch=stop - start, labels=None if labels is None else labels[start:stop], progress=progress,
        )
    return images


def run_seed(step_fn: StepFn, *, shape, num_layers: int, kernel_size: int, filters: int, levels: int,
             choose: Chooser, batch: int, labels, progress=None) -> np.ndarray:
    """The seed architecture's raster/RGB loop over one batch (see serve.gated_cached.run_gated for choose)."""
    height, width, channels = shape
    pad, span = kernel_size // 2, kernel_size
    caches = new_caches(batch, shape, num_layers, kernel_size, filters, levels)
    out = np.zeros((batch, height, width, channels), np.uint8)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                # Cache row i..i+pad, column j..j+2*pad covers image rows i-pad..i, columns j-pad..j+pad.
                windows = [cache[:, i : i + pad + 1, j : j + span] for cache in caches]
                features, logits = step_fn(windows, labels)
                check_step_output("step function", features, logits, num_layers, channels)
                level = choose(i, j, c, logits[:, c])
                out[:, i, j, c] = level
                caches[0][:, i + pad, j + pad, c] = level
                for index, feature in enumerate(features):
                    caches[index + 1][:, i + pad, j + pad] = feature
                if progress:
                    progress(batch)
    return out


class CachedSampler:
    """serve.Sampler's sample() over a step function: same arguments, same seeds, same draws, ~dims times fewer passes.

    layout: num_layers, kernel_size, filters, levels and architecture (pixelcnn_tf.cached.cached_layout); for
    architecture 'gated' step_fn is a serve.gated_cached.GatedStep.
    """

    sampler = "cached"  # what serve.Sampler.sampler says of itself: generate.py reports it

    def __init__(self, step_fn: StepFn, spec: ModelSpec, layout: dict, backend: str = "custom"):
        if layout.get("levels") != spec.levels:
            raise SamplingError(f"layout levels {layout.get('levels')} differ from the model's {spec.levels}")
        self.step_fn, self.spec, self.layout, self.backend = step_fn, spec, dict(layout), backend

    def sample(self, num_images: int, seed: int = 0, temperature: float = 1.0, labels=None,
               batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """uint8 level indices (N, H, W, C); labels: one class for all, or one per image (conditional models)."""
        check_request(num_images, temperature, batch_size)
        labels = check_labels(labels, num_images, self.spec.num_classes)
        return sample_cached(self.step_fn, num_images=num_images, shape=self.spec.shape, seed=seed,
                             temperature=temperature, batch_size=batch_size, labels=labels, progress=progress,
                             **self.layout)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def numpy_step_fn(params: dict) -> StepFn:
    """A TensorFlow-free step function from pixelcnn_tf.cached.fold_step_params (or np.load of its np.savez file).

    Its matmuls are small: on a few shared cores set OPENBLAS_NUM_THREADS=1 before numpy loads (about 10x faster).
    """
    num_layers = sum(1 for name in params if name.startswith("kernel_"))
    kernels = [np.asarray(params[f"kernel_{n}"], np.float32) for n in range(num_layers)]
    biases = [np.asarray(params[f"bias_{n}"], np.float32) for n in range(num_layers)]
    centres = [None] + [np.asarray(params[f"centre_{n}"], np.float32) for n in range(1, num_layers)]
    conditional = "embedding_0" in params
    embeddings = [np.asarray(params[f"embedding_{n}"], np.float32) for n in range(num_layers)] if conditional else []
    head_kernel = np.asarray(params["head_kernel"], np.float32)
    head_bias = np.asarray(params["head_bias"], np.float32)

    def step(windows, labels):
        if conditional and labels is None:
            raise SamplingError("this step function is class-conditional: it needs labels")
        batch = windows[0].shape[0]
        features, x = [], None
        for n in range(num_layers):
            y = windows[n].reshape(batch, -1) @ kernels[n] + biases[n]
            if n:
                y += x @ centres[n]
            if conditional:
                y += embeddings[n][labels]
            x = _relu(y)
            features.append(x)
        logits = x @ head_kernel + head_bias
        return features[:-1], logits.reshape(batch, windows[0].shape[-1], -1)

    return step
