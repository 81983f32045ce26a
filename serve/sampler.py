"""One sampler over any logits function: Sampler.load(export_dir, backend, sampler=...) for onnxruntime, LiteRT or numpy."""
from __future__ import annotations

from typing import Callable

import numpy as np

from serve.backends import BACKENDS, EXPORT_DEFAULT, KINDS, SERVED
from serve.cached import sample_cached, teacher_forced_logits
from serve.graph import GraphRunner, as_float32_uniforms, load_graph, loop_images
from serve.manifest import Artifact, Manifest, read_manifest
from serve.metadata import ModelSpec, ServeError, checked_path
from serve.names import IMAGE, LABEL, LOGITS
from serve.runtime import ALL_CORES, check_io, feeds
from serve.sampling import LogitsFn, SamplingError, check_labels, check_request, is_integer, sample_naive, uniforms
from serve.step_loader import load_step, step_artifact

SAMPLERS = ("graph", "cached", "naive")

SCORE_BATCH = 256  # images per forward pass in nll(): bounds memory, the result does not depend on it


class Sampler:
    """Draws and scores images with the shared numpy loop, so one seed gives the same draws on every backend."""

    def __init__(self, logits_fn: LogitsFn | None, spec: ModelSpec, backend: str = "custom", manifest: Manifest | None = None,
                 step=None, layout: dict | None = None, graph: GraphRunner | None = None):
        """graph (serve.graph) makes sample() one runtime call per batch; step and layout (serve.cached) make it
        cached (and complete() too, without a graph); logits_fn serves nll() (None: no full model, and nll() feeds
        the step model the images' own levels)."""
        if step is not None and (layout or {}).get("levels") != spec.levels:
            raise SamplingError(f"step layout levels {(layout or {}).get('levels')} differ from the model's {spec.levels}")
        self.logits_fn = logits_fn
        self.spec = spec
        self.backend = backend
        self.manifest = manifest  # the export's metadata.json (serve.manifest), None for a model of no export
        self.step, self.layout, self.graph = step, dict(layout or {}), graph
        self.sampler = "graph" if graph is not None else "cached" if step is not None else "naive"

    @classmethod
    def load(cls, export_dir: str, backend: str = EXPORT_DEFAULT, num_threads: int | None = None, sampler: str | None = None) -> "Sampler":
        """Open one backend of an export: 'onnx', 'tflite', a variant such as 'tflite_int8', or 'numpy' (cached only).

        sampler: 'graph' (the exported sampler graph: one runtime call per batch), 'cached' (one step-model call per
        sub-pixel), 'naive' (one full forward pass per sub-pixel) or None: the first of these the export has for
        backend. Quantized TFLite variants have neither graph nor step model: naive. All draw the same pixels.
        nll() and log_prob() use the full model (one forward pass per image batch); numpy's, the step model fed the
        images' own levels (one step per sub-pixel: the same sums, slower).
        num_threads: intra-op threads for every model; None: measured defaults (serve/runtime.py).
        """
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ServeError(f"num_threads must be a positive integer, got {num_threads!r}")
        if sampler is not None and sampler not in SAMPLERS:
            raise ServeError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        manifest = read_manifest(export_dir)
        spec = manifest.spec
        # The backends of serve.backends this export has files for: a full model, or (numpy) a step model only.
        servable = [name for name in SERVED if BACKENDS[name].artifact in manifest.artifacts
                    or (BACKENDS[name].artifact is None and step_artifact(manifest, name))]
        if backend not in servable:
            raise ServeError(f"unknown backend {backend!r} for {export_dir}; choose one of {', '.join(servable) or '(none)'}")
        if sampler is None:
            sampler = "graph" if manifest.graph_file(backend) else "cached" if step_artifact(manifest, backend) else "naive"
        full = BACKENDS[backend].artifact
        if full is None and sampler == "naive":
            raise ServeError(f"the {backend} backend samples with the step model only; use sampler='cached'")
        logits_fn = None
        if full is not None:
            # Loaded even for cached sampling: nll() needs it, and a damaged file is better refused now than later.
            entry = manifest.artifacts[full]
            logits_fn = model_logits_fn(entry, checked_path(entry, export_dir, full), spec, num_threads)
        step, layout = load_step(manifest, export_dir, backend, spec, num_threads) if sampler == "cached" else (None, None)
        graph = load_graph(manifest, export_dir, backend, spec, num_threads) if sampler == "graph" else None
        return cls(logits_fn, spec, backend, manifest, step, layout, graph)

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
        if self.graph is not None:
            u = as_float32_uniforms(uniforms(num_images, *self.spec.shape, seed))
            return self._graph_batches(u, temperature, None, 0, labels, batch_size, progress)
        if self.step is not None:
            return sample_cached(self.step, num_images=num_images, shape=self.spec.shape, seed=seed, temperature=temperature,
                                 batch_size=batch_size, labels=labels, progress=progress, distribution=self.spec.distribution,
                                 **self.layout)
        return sample_naive(
            self.logits_fn,
            distribution=self.spec.distribution,
            num_images=num_images,
            shape=self.spec.shape,
            seed=seed,
            temperature=temperature,
            batch_size=batch_size,
            labels=labels,
            progress=progress,
        )

    def complete(self, images, start_row: int, num_samples: int = 1, seed: int = 0, temperature: float = 1.0,
                 labels=None, batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Keep the top start_row rows of each image (N, H, W, C) and draw the rest: uint8 (N*num_samples, H, W, C).

        Completions of image k are rows k*num_samples ... (k+1)*num_samples-1; labels: one class or one per image.
        The graph and the cached loop complete with the same pixels for the same seed; naive sampling cannot.
        """
        images = self.check_images(images)
        if not is_integer(start_row) or not 0 <= start_row <= self.spec.height:
            raise SamplingError(f"start_row must be an integer in 0..{self.spec.height}, got {start_row!r}")
        if not is_integer(num_samples) or num_samples < 1:
            raise SamplingError(f"num_samples must be a positive integer, got {num_samples!r}")
        total = len(images) * num_samples
        check_request(total, temperature, batch_size)
        labels = check_labels(labels, len(images), self.spec.num_classes)
        labels = None if labels is None else np.repeat(labels, num_samples)
        prefix = np.repeat(images, num_samples, axis=0).astype(np.float32)
        start = int(start_row) * self.spec.width * self.spec.channels
        u = as_float32_uniforms(uniforms(total, *self.spec.shape, seed))
        if self.graph is not None:
            return self._graph_batches(u, temperature, prefix, start, labels, batch_size, progress)
        if self.step is None:
            raise SamplingError("completion needs the sampler graph or the cached sampler; this one samples naively")
        out = np.zeros(u.shape, np.uint8)
        for first in range(0, total, batch_size or total):
            part = slice(first, first + (batch_size or total))
            out[part] = loop_images(self.step, self.layout, self.spec, u[part], temperature, prefix[part], start,
                                    None if labels is None else labels[part], progress)
        return out

    def _graph_batches(self, u, temperature, prefix, start, labels, batch_size, progress) -> np.ndarray:
        """The graph over batches of batch_size images; progress hears of each batch's sub-pixels at its end."""
        out = np.zeros(u.shape, np.uint8)
        for first in range(0, len(u), batch_size or len(u)):
            part = slice(first, first + (batch_size or len(u)))
            out[part] = self.graph(u[part], temperature, None if prefix is None else prefix[part], start,
                                   None if labels is None else labels[part])
            if progress:
                progress(len(out[part]) * self.spec.dims)
        return out

    def nll(self, images, labels=None, batch_size: int = SCORE_BATCH) -> np.ndarray:
        """Negative log-likelihood in nats of each image (N, H, W, C) of level indices, as float64 (N,)."""
        if self.logits_fn is None and self.step is None:
            raise ServeError(f"the {self.backend} backend has no full model or step model to score images; use onnx or tflite")
        images = self.check_images(images)
        labels = check_labels(labels, len(images), self.spec.num_classes)
        if not is_integer(batch_size) or batch_size < 1:
            raise SamplingError(f"batch_size must be a positive integer, got {batch_size!r}")
        scores, distribution = [], self.spec.distribution
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            batch_labels = None if labels is None else labels[start : start + batch_size]
            if self.logits_fn is None:  # the step model, teacher-forced: the head the full model gives, position by position
                head = teacher_forced_logits(self.step, batch, batch_labels, self.layout, distribution)
            else:
                head = self.logits_fn(batch.astype(np.float32), batch_labels)
            scores.append(distribution.nll_per_image(head, batch))
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


def model_logits_fn(entry: Artifact, path: str, spec: ModelSpec, threads: int | None = None) -> LogitsFn:
    """A full model's runner as a logits function, its tensors checked against the metadata's names and the spec."""
    inputs, outputs = entry.inputs, entry.outputs
    if IMAGE not in inputs or LOGITS not in outputs:
        raise ServeError(f"{path}: metadata names no {IMAGE} input or {LOGITS} output")
    conditional = bool(spec.num_classes)
    if conditional != (LABEL in inputs):
        raise ServeError(f"{path}: metadata says num_classes={spec.num_classes} but {'names' if LABEL in inputs else 'lacks'} a label input")
    runner = KINDS[entry.kind].runner(path, ALL_CORES if threads is None else threads)
    image, label, output = inputs[IMAGE], inputs.get(LABEL), outputs[LOGITS]
    head = [spec.height, spec.width, *spec.distribution.head_shape]
    check_io(runner, path, {image: list(spec.shape)} | ({label: []} if conditional else {}), {output: head})

    def logits_fn(images, labels):
        return runner(feeds({image: images}, labels, conditional, label))[output]

    return logits_fn
