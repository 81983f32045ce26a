"""Sampling in one runtime call (numpy only): the exported sampler graph's request checks, feeds and runner."""
from __future__ import annotations

from typing import Callable

import numpy as np

from serve.architectures import step_architecture
from serve.backends import KINDS
from serve.cached import LAYOUT_KEYS
from serve.manifest import Manifest
from serve.metadata import ModelSpec, ServeError, checked_path
from serve.names import IMAGES, LABEL, PREFIX, START, TEMPERATURE, UNIFORMS
from serve.runtime import ALL_CORES, check_io
from serve.sampling import SamplingError

# The graph (pixelcnn_tf/sampler_graph.py) trusts its inputs: check_graph_request checks each one here first, so a
# bad request is one SamplingError line and never reaches (or crashes) a runtime.
# One intra-op thread for small batches: most of the graph's time goes to tiny per-sub-pixel ops, where waking
# workers costs more than it saves. Measured side by side on the pretrained gated model (2 shared cores, load ~5),
# 1 vs 2 threads: batch 1 LiteRT 13 vs 18 ms, onnxruntime 45 vs 62 ms. From ALL_CORES_FROM_BATCH images every core:
# on the current graph (gated_mnist shape, 2 cores, load 1.0-1.4, `python -m bench.sampling --preset gated_mnist
# --threads 1|2`, alternating) batch 144 LiteRT 127 / 110 vs 162 / 164 images/s, onnxruntime 120 / 98 vs 129 / 123;
# batch 32 mixed (LiteRT 127 / 128 vs 158 / 128, onnxruntime 78 / 71 vs 104 / 66), batch 8 no better.
GRAPH_THREADS = 1
ALL_CORES_FROM_BATCH = 64
BELOW_ONE = np.float32(1.0) - np.float32(2.0**-24)  # the largest float32 under 1


def as_float32_uniforms(u: np.ndarray) -> np.ndarray:
    """serve.sampling.uniforms' float64 numbers as the graph takes them: float32, still below 1 after rounding."""
    return np.minimum(np.asarray(u, np.float32), BELOW_ONE)


def check_graph_request(spec: ModelSpec, uniforms, temperature, prefix=None, start=0, labels=None) -> dict:
    """The graph's feeds, every input checked against the contract; prefix None means zeros (start must be 0)."""
    shape = (spec.height, spec.width, spec.channels)
    if not isinstance(uniforms, np.ndarray) or uniforms.dtype != np.float32:
        raise SamplingError(f"uniforms must be a float32 numpy array, got {getattr(uniforms, 'dtype', type(uniforms).__name__)}")
    if uniforms.ndim != 4 or uniforms.shape[1:] != shape or len(uniforms) == 0:
        raise SamplingError(f"uniforms must have shape (N, {', '.join(map(str, shape))}) with N >= 1, got {uniforms.shape}")
    if not np.all((uniforms >= 0) & (uniforms < 1)):  # NaN fails both comparisons
        raise SamplingError("uniforms must lie in [0, 1)")
    if not (isinstance(temperature, (int, float, np.floating, np.integer)) and temperature > 0 and np.isfinite(temperature)):
        raise SamplingError(f"temperature must be a positive number, got {temperature!r}")
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or not 0 <= start <= spec.dims:
        raise SamplingError(f"start must be an integer in 0..{spec.dims} (sub-pixels copied from prefix), got {start!r}")
    if prefix is None:
        if start:
            raise SamplingError("start > 0 copies sub-pixels from prefix: give a prefix")
        prefix = np.zeros_like(uniforms)
    prefix = np.asarray(prefix)
    if prefix.shape != uniforms.shape or not np.issubdtype(prefix.dtype, np.number):
        raise SamplingError(f"prefix must be numbers of the uniforms' shape {uniforms.shape}, got {prefix.dtype} {prefix.shape}")
    if not np.all(np.isfinite(prefix)) or np.any(prefix != np.round(prefix)) or prefix.min() < 0 or prefix.max() >= spec.levels:
        raise SamplingError(f"prefix must hold integer level indices in 0..{spec.levels - 1}")
    # Clipped into float32's positive range rather than cast to inf or 0 (with a RuntimeWarning): the graph then
    # draws what the float64 Python loop draws at such extremes, near-uniform or the argmax.
    tiny, huge = float(np.finfo(np.float32).smallest_subnormal), float(np.finfo(np.float32).max)
    feeds = {UNIFORMS: uniforms, TEMPERATURE: np.array(min(max(float(temperature), tiny), huge), np.float32),
             PREFIX: np.ascontiguousarray(prefix, np.float32), START: np.array(start, np.int32)}
    if spec.num_classes:
        if labels is None:
            raise SamplingError(f"this model is class-conditional: give a label in 0..{spec.num_classes - 1}")
        labels = np.asarray(labels)
        if labels.shape != (len(uniforms),) or not np.issubdtype(labels.dtype, np.integer):
            raise SamplingError(f"labels must be integers of shape ({len(uniforms)},), got {labels.dtype} {labels.shape}")
        if labels.min() < 0 or labels.max() >= spec.num_classes:
            raise SamplingError(f"labels must be in 0..{spec.num_classes - 1}")
        feeds[LABEL] = labels.astype(np.int32)
    elif labels is not None:
        raise SamplingError("this model is not class-conditional; it takes no labels")
    return feeds


class GraphRunner:
    """Images from one call of an exported sampler graph; run(feeds dict) -> {"images": ...} is the runtime.

    open_large: opens the same graph on every core, for batches of ALL_CORES_FROM_BATCH or more (once, when first
    needed); None runs every batch on run.
    """

    def __init__(self, run: Callable[[dict], dict], spec: ModelSpec, open_large: Callable[[], Callable] | None = None):
        self.run, self.spec = run, spec
        self._open_large, self._run_large = open_large, None

    def runner_for(self, batch: int) -> Callable[[dict], dict]:
        if self._open_large is None or batch < ALL_CORES_FROM_BATCH:
            return self.run
        if self._run_large is None:
            self._run_large = self._open_large()
        return self._run_large

    def __call__(self, uniforms, temperature=1.0, prefix=None, start=0, labels=None) -> np.ndarray:
        feeds = check_graph_request(self.spec, uniforms, temperature, prefix, start, labels)
        images = np.asarray(self.runner_for(len(uniforms))(feeds)[IMAGES])
        if images.shape != uniforms.shape:
            raise SamplingError(f"the sampler graph returned shape {images.shape}, expected {uniforms.shape}")
        return images.astype(np.uint8)


def open_graph(open_runner: Callable, path: str, spec: ModelSpec, threads: int | None = None) -> GraphRunner:
    """A GraphRunner over a graph file; threads None is serve's choice: one thread, every core for large batches."""
    if threads is not None:
        return GraphRunner(open_runner(path, threads), spec)
    return GraphRunner(open_runner(path, GRAPH_THREADS), spec, open_large=lambda: open_runner(path, ALL_CORES))


def load_graph(manifest: Manifest, export_dir: str, backend: str, spec: ModelSpec, threads: int | None = None) -> GraphRunner:
    """The sampler graph of an export for backend, its file checked (size, sha256) and its tensors against the contract."""
    entry = manifest.graph_file(backend)
    if entry is None or KINDS[entry.kind].runner is None:
        raise ServeError(f"export {export_dir} has no sampler graph for backend {backend!r}; use sampler='cached'")
    path = checked_path(entry, export_dir, f"sampler graph {backend}")
    graph = open_graph(KINDS[entry.kind].runner, path, spec, threads)
    inputs = {UNIFORMS: list(spec.shape), TEMPERATURE: None, PREFIX: list(spec.shape), START: None}
    check_io(graph.run, path, inputs | ({LABEL: []} if spec.num_classes else {}), {IMAGES: list(spec.shape)})
    return graph


def prefix_chooser(uniforms: np.ndarray, temperature: float, prefix: np.ndarray, start: int, shape, distribution) -> Callable:
    """The Python loop's choose(i, j, c, head, earlier): prefix levels before raster sub-pixel start, draws after.

    Feeds serve.cached / serve.architectures.gated loops so they complete images exactly as the graph does.
    """
    _, width, channels = shape

    def choose(i, j, c, head, earlier):
        if (i * width + j) * channels + c < start:
            return prefix[:, i, j, c]
        return distribution.draw(head, c, earlier, uniforms[:, i, j, c], temperature)

    return choose


def forced_draws(step, layout: dict, spec: ModelSpec, images, uniforms, temperature=1.0, prefix=None, start=0,
                 labels=None) -> np.ndarray:
    """What the Python cached loop draws at each sub-pixel given images' own earlier sub-pixels (teacher-forced).

    Compared with the images a graph drew, a float32-vs-float64 tie at a bin edge then costs one sub-pixel, not every
    later one of the image (each draw conditions on the last): the measure of parity for long, many-level images.
    """
    own, labels = _chooser(spec, uniforms, temperature, prefix, start, labels)
    images = np.asarray(images)
    draws = np.zeros(images.shape, np.int64)

    def choose(i, j, c, head, earlier):
        draws[:, i, j, c] = own(i, j, c, head, earlier)
        return images[:, i, j, c].astype(np.int64)

    _loop(step, layout, spec, choose, len(images), labels)
    return draws


def loop_images(step, layout: dict, spec: ModelSpec, uniforms, temperature=1.0, prefix=None, start=0, labels=None,
                progress=None) -> np.ndarray:
    """The Python cached loop (serve.cached / serve.architectures.gated) on a graph request: what the graph must equal.

    step and layout as serve.Sampler holds them (a StepFn or GatedStep, and the step layout).
    """
    choose, labels = _chooser(spec, uniforms, temperature, prefix, start, labels)
    return _loop(step, layout, spec, choose, len(uniforms), labels, progress)


def _chooser(spec: ModelSpec, uniforms, temperature, prefix, start, labels) -> tuple[Callable, np.ndarray | None]:
    """(prefix_chooser, labels) of a graph request, checked as the graph checks it."""
    feeds = check_graph_request(spec, uniforms, temperature, prefix, start, labels)
    choose = prefix_chooser(feeds[UNIFORMS].astype(np.float64), float(temperature), feeds[PREFIX], int(start), spec.shape,
                            spec.distribution)
    return choose, feeds.get(LABEL)


def _loop(step, layout: dict, spec: ModelSpec, choose, batch: int, labels, progress=None) -> np.ndarray:
    """The step architecture's Python loop over every sub-pixel in sampling order, choose() picking each value."""
    loop = step_architecture(layout["architecture"]).loop
    return loop(step, shape=spec.shape, distribution=spec.distribution, choose=choose, batch=batch, labels=labels,
                progress=progress, **{key: layout[key] for key in LAYOUT_KEYS})
