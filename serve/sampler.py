"""One sampler over any logits function: Sampler.load(export_dir, backend) for onnxruntime or LiteRT exports."""
from __future__ import annotations

from typing import Callable

import numpy as np

from serve.metadata import ModelSpec, ServeError, artifact, read_metadata, spec_of
from serve.runtimes import LOADERS
from serve.sampling import LogitsFn, SamplingError, check_labels, check_request, nll_per_image, sample_naive

SCORE_BATCH = 256  # images per forward pass in nll(): bounds memory, the result does not depend on it


class Sampler:
    """Draws and scores images with the shared numpy loop, so one seed gives the same draws on every backend."""

    def __init__(self, logits_fn: LogitsFn, spec: ModelSpec, backend: str = "custom", metadata: dict | None = None):
        self.logits_fn = logits_fn
        self.spec = spec
        self.backend = backend
        self.metadata = metadata or {}

    @classmethod
    def load(cls, export_dir: str, backend: str = "onnx", num_threads: int | None = None) -> "Sampler":
        """Open one artifact of an export: backend is 'onnx', 'tflite' or a variant such as 'tflite_int8'."""
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ServeError(f"num_threads must be a positive integer, got {num_threads!r}")
        meta = read_metadata(export_dir)
        spec = spec_of(meta)
        servable = sorted(name for name, entry in meta["artifacts"].items() if entry.get("kind") in LOADERS)
        if backend not in meta["artifacts"] or meta["artifacts"][backend].get("kind") not in LOADERS:
            raise ServeError(f"unknown backend {backend!r} for {export_dir}; choose one of {', '.join(servable) or '(none)'}")
        entry, path = artifact(meta, export_dir, backend)
        return cls(LOADERS[entry["kind"]](path, entry, spec, num_threads), spec, backend, meta)

    def sample(
        self,
        num_images: int,
        seed: int = 0,
        temperature: float = 1.0,
        labels=None,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """uint8 level indices (N, H, W, C); labels: one class for all, or one per image (conditional models)."""
        check_request(num_images, temperature, batch_size)
        labels = check_labels(labels, num_images, self.spec.num_classes)
        return sample_naive(
            self.logits_fn,
            num_images=num_images,
            shape=self.spec.shape,
            seed=seed,
            temperature=temperature,
            batch_size=batch_size,
            labels=labels,
            progress=progress,
        )

    def nll(self, images, labels=None, batch_size: int = SCORE_BATCH) -> np.ndarray:
        """Negative log-likelihood in nats of each image (N, H, W, C) of level indices, as float64 (N,)."""
        images = self.check_images(images)
        labels = check_labels(labels, len(images), self.spec.num_classes)
        if batch_size < 1:
            raise SamplingError(f"batch_size must be positive, got {batch_size!r}")
        scores = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            logits = self.logits_fn(batch.astype(np.float32), None if labels is None else labels[start : start + batch_size])
            scores.append(nll_per_image(logits, batch))
        return np.concatenate(scores)

    def log_prob(self, images, labels=None) -> np.ndarray:
        """log p(image) in nats, float64 (N,): minus nll()."""
        return -self.nll(images, labels)

    def check_images(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != self.spec.shape or len(images) == 0:
            raise SamplingError(f"images must have shape (N, {', '.join(map(str, self.spec.shape))}) with N >= 1, got {images.shape}")
        if not np.issubdtype(images.dtype, np.number) or not np.all(np.isfinite(images)):
            raise SamplingError("images must be finite numbers (level indices)")
        levels = images.astype(np.int64)
        if np.any(levels != images) or levels.min() < 0 or levels.max() >= self.spec.levels:
            raise SamplingError(f"images must hold integer level indices in 0..{self.spec.levels - 1}")
        return levels

