"""Benchmark: naive vs cached sampling images/s per backend; `python -m bench.sampling --batch-sizes 1,144 --json out.json`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BACKENDS = ("keras", "numpy", "onnx", "tflite")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.sampling", description=__doc__)
    parser.add_argument("--preset", default="seed", help="model shape from this preset (random weights); default seed")
    parser.add_argument("--batch-sizes", default="1,144", help="comma-separated batch sizes (default 1,144)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"cached-sampling backends (default {','.join(BACKENDS)})")
    parser.add_argument("--naive-steps", type=int, default=2, help="timed naive steps, extrapolated to a whole image")
    parser.add_argument("--forward-repeats", type=int, default=2, help="timed full forward passes per batch size")
    parser.add_argument("--threads", type=int, help="ONNX Runtime / LiteRT threads (default: theirs)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        parser.error(f"--batch-sizes must be integers, got {args.batch_sizes!r}")
    args.backends = [b for b in args.backends.split(",") if b]
    bad = sorted(set(args.backends) - set(BACKENDS))
    if bad or min(args.batch_sizes) < 1 or args.naive_steps < 1 or args.forward_repeats < 1:
        parser.error(f"unknown backend(s) {bad}" if bad else "batch sizes, --naive-steps and --forward-repeats must be positive")
    return args


def timed(fn, repeats: int = 1, warm_up: bool = True) -> float:
    """Seconds per call, after one untimed warm-up call (tracing, allocation) unless warm_up is False."""
    if warm_up:
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def step_fns(backends, model, config, threads, workdir):
    from pixelcnn_tf.cached import build_step_model, export_step_model, fold_step_params, keras_step_fn
    from serve.cached import numpy_step_fn
    from serve.step_runtimes import onnx_step_fn, tflite_step_fn

    step_model = build_step_model(model, config)
    fns = {}
    exported = {}
    formats = [b for b in backends if b in ("onnx", "tflite")]
    if formats:
        exported = export_step_model(step_model, workdir, formats=formats)
    for backend in backends:
        if backend == "keras":
            fns[backend] = keras_step_fn(step_model)
        elif backend == "numpy":
            fns[backend] = numpy_step_fn(fold_step_params(model, config))
        elif backend == "onnx":
            fns[backend] = onnx_step_fn(exported["onnx"], threads)
        else:
            fns[backend] = tflite_step_fn(exported["tflite"], threads)
    return fns


def main(argv=None) -> int:
    args = parse_args(argv)

    import keras
    import tensorflow as tf

    from pixelcnn_tf.config import preset
    from pixelcnn_tf.generation import keras_logits_fn
    from pixelcnn_tf.model import build_model

    m = preset(args.preset).model
    model = build_model(m)  # random weights: timing does not depend on them
    logits_fn = keras_logits_fn(model, conditional=bool(m.num_classes))
    with tempfile.TemporaryDirectory() as workdir:
        fns = step_fns(args.backends, model, m, args.threads, workdir)
        rows = [bench_batch(args, m, logits_fn, fns, batch) for batch in args.batch_sizes]
    result = {
        "preset": args.preset,
        "model": {"height": m.height, "width": m.width, "channels": m.channels, "levels": m.levels,
                  "num_layers": m.num_layers, "kernel_size": m.kernel_size, "filters": m.filters},
        "note": f"naive s/image = (time of {args.naive_steps} naive steps) / {args.naive_steps} x {m.dims} steps / batch",
        "rows": rows,
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def bench_batch(args, m, logits_fn, fns, batch: int) -> dict:
    """Forward, naive (extrapolated) and cached timings at one batch size; prints its table."""
    import numpy as np

    from serve.cached import sample_cached
    from serve.sampling import draw, uniforms

    shape = (m.height, m.width, m.channels)
    rng = np.random.default_rng(0)
    images = rng.integers(0, m.levels, (batch, *shape)).astype(np.float32)
    labels = rng.integers(0, m.num_classes, batch).astype(np.int32) if m.num_classes else None
    forward = timed(lambda: logits_fn(images, labels), args.forward_repeats)
    u = uniforms(batch, *shape, seed=0)

    def naive_steps():
        # Exactly sample_naive's inner step: a full forward pass, then one sub-pixel drawn.
        for step in range(args.naive_steps):
            i, rest = divmod(step, m.width * m.channels)
            j, c = divmod(rest, m.channels)
            images[:, i, j, c] = draw(logits_fn(images, labels)[:, i, j, c], u[:, i, j, c])

    naive_image = timed(naive_steps, warm_up=False) / args.naive_steps * m.dims / batch  # extrapolated: x dims steps
    row = {
        "batch_size": batch,
        "forward_s_per_image": forward / batch,
        "naive_s_per_image": naive_image,
        "naive_extrapolated_from_steps": args.naive_steps,
        "cached": {},
    }
    for backend, fn in fns.items():
        kwargs = dict(num_images=batch, shape=shape, num_layers=m.num_layers, kernel_size=m.kernel_size,
                      filters=m.filters, levels=m.levels, labels=labels)
        fn([np.zeros((batch, m.kernel_size // 2 + 1, m.kernel_size, f), np.float32)
            for f in [m.channels] + [m.filters] * (m.num_layers - 1)], labels)  # warm-up (tracing)
        start = time.perf_counter()
        sample_cached(fn, **kwargs)
        seconds = time.perf_counter() - start
        row["cached"][backend] = {
            "batch_seconds": seconds,
            "s_per_image": seconds / batch,
            "images_per_second": batch / seconds,
            "speedup_vs_naive": naive_image / (seconds / batch),
            "x_forward_per_image": (seconds / batch) / (forward / batch),
        }
    print_row(row, m.dims)
    return row


def print_row(row: dict, dims: int) -> None:
    batch = row["batch_size"]
    print(f"\nbatch {batch}: one full forward pass {row['forward_s_per_image'] * 1e3:.1f} ms/image; naive "
          f"{row['naive_s_per_image']:.2f} s/image ({1 / row['naive_s_per_image']:.4f} images/s, extrapolated "
          f"x{dims} from {row['naive_extrapolated_from_steps']} timed steps)")
    print(f"{'backend':<8} {'images/s':>10} {'s/image':>9} {'batch s':>9} {'vs naive':>9} {'x forward':>10}")
    for backend, c in row["cached"].items():
        print(f"{backend:<8} {c['images_per_second']:>10.2f} {c['s_per_image']:>9.3f} {c['batch_seconds']:>9.2f} "
              f"{c['speedup_vs_naive']:>8.0f}x {c['x_forward_per_image']:>9.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
