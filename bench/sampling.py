"""Benchmark: naive vs cached vs sampler-graph images/s per backend; `python -m bench.sampling --batch-sizes 1,144 --json out.json`."""
from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time

from bench import batch_sizes, timed
from bench.graph import GRAPH_RUNTIMES, graph_files, graph_runners, peak_memory, step_files, time_graph
from pixelcnn_tf.errors import ArgumentParser
from pixelcnn_tf.files import write_json_atomic
from serve.backends import BACKENDS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The numpy backend's matmuls are small: on a few shared cores one OpenBLAS thread beats several by ~10x.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

CACHED = tuple(name for name, row in BACKENDS.items() if row.step)  # keras, onnx, tflite, numpy


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.sampling", description=__doc__)
    parser.add_argument("--preset", default="seed", help="model shape from this preset (random weights); default seed")
    parser.add_argument("--batch-sizes", type=batch_sizes, default="1,144", help="comma-separated batch sizes (default 1,144)")
    parser.add_argument("--backends", default=",".join(CACHED), help=f"cached-sampling backends (default {','.join(CACHED)})")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time forward passes and naive steps for at least this long (default 3; at least 2 calls)")
    parser.add_argument("--graph-runtimes", default=",".join(GRAPH_RUNTIMES),
                        help=f"sampler-graph runtimes (default {','.join(GRAPH_RUNTIMES)}; '' for none)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure peak memory of the graph vs the Python loop per runtime (fresh processes)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime / LiteRT threads (default: serve's, per step part)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.graph_runtimes = [r for r in args.graph_runtimes.split(",") if r]
    bad = sorted(set(args.backends) - set(CACHED)) + sorted(set(args.graph_runtimes) - set(GRAPH_RUNTIMES))
    if bad or not args.min_seconds > 0:
        parser.error(f"unknown backend(s) {bad}" if bad else "--min-seconds must be positive")
    return args


def step_fns(backends, model, config, threads, workdir):
    """backend -> the cached sampler's step (whatever the architecture's loop calls), through the architecture table."""
    from export.step import convert_step_model
    from pixelcnn_tf.generation import keras_sampler
    from pixelcnn_tf.model import architecture, step_params

    entry = architecture(config)
    params = step_params(model, config)
    kinds = [b for b in backends if BACKENDS[b].runner]
    exported = {part: convert_step_model(m, os.path.join(workdir, "saved"), workdir, part, kinds)
                for part, m in entry.step_models(params, config).items()} if kinds else {}
    fns = {}
    for backend in backends:
        if BACKENDS[backend].tensorflow:
            fns[backend] = keras_sampler(model, config, "cached").step
        elif not BACKENDS[backend].runner:  # numpy: the folded weights
            fns[backend] = entry.serving.numpy_step(params)
        else:
            runners = {part: BACKENDS[backend].runner(paths[backend], entry.serving.threads[part] if threads is None else threads)
                       for part, paths in exported.items()}
            fns[backend] = entry.serving.from_runners(runners, config.num_layers, bool(config.num_classes))
    return fns


def forward_fns(model, config, runtimes, threads, workdir) -> dict:
    """runtime -> logits_fn(images, labels) of the full model converted as export converts it: the yardsticks."""
    from export.artifacts import write_onnx, write_saved_model, write_tflite
    from pixelcnn_tf.model import model_spec
    from serve.sampler import model_logits_fn

    if not runtimes:
        return {}
    full, conditional = os.path.join(workdir, "full"), bool(config.num_classes)
    os.makedirs(full)
    write_saved_model(model, full, conditional)
    writers = {"onnx": write_onnx, "tflite": write_tflite}
    return {runtime: model_logits_fn(entry, os.path.join(full, entry.path), model_spec(config), threads)
            for runtime in runtimes for entry in [writers[runtime](full, conditional)]}


def main(argv=None) -> int:
    args = parse_args(argv)

    import keras
    import tensorflow as tf

    from pixelcnn_tf.generation import keras_logits_fn
    from pixelcnn_tf.model import build_model
    from pixelcnn_tf.presets import preset

    m = preset(args.preset).model
    model = build_model(m)  # random weights: timing does not depend on them
    logits_fn = keras_logits_fn(model, conditional=bool(m.num_classes))  # the naive steps' and a yardstick
    from pixelcnn_tf.model import model_spec

    spec = model_spec(m)
    with tempfile.TemporaryDirectory() as workdir:
        fns = step_fns(args.backends, model, m, args.threads, workdir)
        files = graph_files(args.graph_runtimes, model, m, workdir)
        graphs = graph_runners(files, spec, args.threads)
        forwards = {"keras": logits_fn} | forward_fns(model, m, args.graph_runtimes, args.threads, workdir)
        sizes = {f"graph_{rt}": os.path.getsize(path) for rt, path in files.items()}
        sizes |= {f"step_{rt}": sum(os.path.getsize(p) for p in step_files(m, workdir, rt))
                  for rt in args.graph_runtimes if rt in args.backends}
        rows = [bench_batch(args, m, forwards, fns, batch, graphs, files, workdir, spec) for batch in args.batch_sizes]
    print("file bytes: " + ", ".join(f"{name} {size:,}" for name, size in sizes.items()))
    result = {
        "preset": args.preset,
        "model": {"architecture": m.architecture, "height": m.height, "width": m.width, "channels": m.channels, "levels": m.levels,
                  "num_layers": m.num_layers, "kernel_size": m.kernel_size, "filters": m.filters},
        "note": f"naive s/image = mean time of a timed naive step x {m.dims} steps / batch (extrapolated)",
        "rows": rows,
        "file_bytes": sizes,
        "cpu_count": os.cpu_count(),
        "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if args.json:
        write_json_atomic(args.json, result)
    return 0


def figures(seconds: float, batch: int, naive_image: float, forward: dict) -> dict:
    """One sampler's figures for a batch drawn in `seconds`, against naive sampling and one batched forward pass per
    image of each runtime (forward: runtime -> seconds per image)."""
    return {
        "batch_seconds": seconds,
        "s_per_image": seconds / batch,
        "images_per_second": batch / seconds,
        "speedup_vs_naive": naive_image / (seconds / batch),
        "x_forward_per_image": {runtime: (seconds / batch) / per_image for runtime, per_image in forward.items()},
    }


def bench_batch(args, m, forwards: dict, fns, batch: int, graphs: dict, files: dict, workdir: str, spec) -> dict:
    """Forward (each runtime), naive (extrapolated), cached and graph timings at one batch size; prints its table.

    forwards: runtime -> logits_fn(images, labels); its "keras" entry is also the naive sampler's step."""
    import numpy as np

    from pixelcnn_tf.model import cached_layout
    from serve.cached import sample_cached
    from serve.sampling import draw, uniforms

    shape = (m.height, m.width, m.channels)
    rng = np.random.default_rng(0)
    images = rng.integers(0, m.levels, (batch, *shape)).astype(np.float32)
    labels = rng.integers(0, m.num_classes, batch).astype(np.int32) if m.num_classes else None
    forward = {name: timed(lambda fn=fn: fn(images, labels), args.min_seconds) for name, fn in forwards.items()}
    forward_calls = forward["keras"][1]
    forward = {name: seconds / batch for name, (seconds, _) in forward.items()}  # s/image per runtime
    u = uniforms(batch, *shape, seed=0)
    steps = itertools.count()

    def naive_step():
        # Exactly sample_naive's inner step: a full forward pass, then one sub-pixel drawn.
        i, rest = divmod(next(steps) % m.dims, m.width * m.channels)  # wraps on tiny models
        j, c = divmod(rest, m.channels)
        images[:, i, j, c] = draw(forwards["keras"](images, labels)[:, i, j, c], u[:, i, j, c])

    step_seconds, naive_steps = timed(naive_step, args.min_seconds)
    naive_image = step_seconds * m.dims / batch  # extrapolated: one image takes dims steps
    row = {
        "batch_size": batch,
        "forward_s_per_image": forward,
        "naive_s_per_image": naive_image,
        "forward_passes_timed": forward_calls,
        "naive_extrapolated_from_steps": naive_steps,
        "cached": {},
    }
    for backend, fn in fns.items():
        kwargs = dict(num_images=batch, shape=shape, labels=labels, distribution=m.distribution, **cached_layout(m))
        sample_cached(fn, **(kwargs | {"shape": (2, m.width, m.channels)}))  # warm-up: traces every step at this batch
        start = time.perf_counter()
        sample_cached(fn, **kwargs)
        seconds = time.perf_counter() - start
        row["cached"][backend] = figures(seconds, batch, naive_image, forward)
    row["graph"] = {}
    for runtime, runner in graphs.items():
        seconds = time_graph(runner, spec, batch, labels, args.min_seconds)
        row["graph"][runtime] = figures(seconds, batch, naive_image, forward)
        if args.memory and runtime in args.backends:
            layout = cached_layout(m)
            row.setdefault("peak_memory_mb", {})[runtime] = {
                "graph": peak_memory("graph", runtime, [files[runtime]], spec, layout, batch, args.threads),
                "loop": peak_memory("loop", runtime, step_files(m, workdir, runtime), spec, layout, batch, args.threads),
            }
    print_row(row, m.dims)
    return row


def print_row(row: dict, dims: int) -> None:
    batch = row["batch_size"]
    forwards = ", ".join(f"{name} {seconds * 1e3:.1f}" for name, seconds in row["forward_s_per_image"].items())
    print(f"\nbatch {batch}: one full forward pass per image (ms): {forwards}; naive "
          f"{row['naive_s_per_image']:.2f} s/image ({1 / row['naive_s_per_image']:.4f} images/s, extrapolated "
          f"x{dims} from {row['naive_extrapolated_from_steps']} timed steps)")
    yardsticks = list(row["forward_s_per_image"])
    print(f"{'backend':<12} {'images/s':>10} {'s/image':>9} {'batch s':>9} {'vs naive':>9} "
          + " ".join(f"{'x ' + name + ' fwd':>13}" for name in yardsticks))
    table = [(backend, c) for backend, c in row["cached"].items()] + [(f"graph {rt}", c) for rt, c in row["graph"].items()]
    for backend, c in table:
        print(f"{backend:<12} {c['images_per_second']:>10.2f} {c['s_per_image']:>9.3f} {c['batch_seconds']:>9.2f} "
              f"{c['speedup_vs_naive']:>8.0f}x " + " ".join(f"{c['x_forward_per_image'][name]:>12.2f}x" for name in yardsticks))
    for runtime, memory in row.get("peak_memory_mb", {}).items():
        print(f"peak memory {runtime}: graph {memory['graph']['peak_mb']:.0f} MB (+{memory['graph']['sampling_mb']:.0f} sampling), "
              f"loop {memory['loop']['peak_mb']:.0f} MB (+{memory['loop']['sampling_mb']:.0f} sampling)")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
