"""Benchmark: naive sampling images/s per export backend and batch size, with artifact sizes; `python -m bench.export_sampling --checkpoint models/<run>`."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from bench import batch_sizes
from pixelcnn_tf.errors import ArgumentParser
from pixelcnn_tf.files import write_json_atomic
from serve.backends import BACKENDS, FULL

DEFAULT_BACKENDS = [name for name in FULL if not BACKENDS[name].quantization]  # keras, savedmodel, onnx, tflite

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.export_sampling", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="run directory (the keras backend, and the export if --export is not given)")
    parser.add_argument("--export", help="an existing export of that checkpoint (default: export into a temporary folder)")
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help=f"comma list of {', '.join(FULL)} (default {','.join(DEFAULT_BACKENDS)}); tflite_int8 etc. need those variants")
    parser.add_argument("--tflite-quantize", default="", help="variants to export when --export is not given, e.g. float16,int8")
    parser.add_argument("--batch-sizes", type=batch_sizes, default="1,144", help="comma list (default 1,144)")
    parser.add_argument("--steps", type=int, default=20,
                        help="timed sub-pixel steps per batch size, extrapolated to whole images (every naive step is one "
                        "full forward pass, so each costs the same); 0 = all of them, i.e. really sample whole images")
    parser.add_argument("--threads", type=int, help="onnxruntime / LiteRT threads (default: theirs)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    if sorted(set(args.backends) - set(FULL)):
        parser.error(f"unknown backend(s) {sorted(set(args.backends) - set(FULL))}; choose from {', '.join(FULL)}")
    if args.steps < 0:
        parser.error("--steps must be >= 0")
    return args


def samplers(args, export_dir: str):
    """name -> Sampler for each requested backend (keras from the checkpoint, the rest from the export)."""
    from export.savedmodel import savedmodel_sampler
    from pixelcnn_tf.generation import keras_sampler
    from pixelcnn_tf.run.checkpoints import load_checkpoint
    from serve import Sampler
    from serve.manifest import read_manifest

    result = {}
    for name in args.backends:
        if BACKENDS[name].tensorflow and BACKENDS[name].artifact is None:  # keras: the checkpoint itself
            model, config, _ = load_checkpoint(args.checkpoint)
            result[name] = keras_sampler(model, config.model)
        elif BACKENDS[name].tensorflow:
            result[name] = savedmodel_sampler(export_dir)
        else:
            result[name] = Sampler.load(export_dir, name, num_threads=args.threads)
    return result, read_manifest(export_dir)


def time_sampling(sampler, batch: int, steps: int) -> dict:
    """Seconds per naive step (forward pass + draw) at this batch, over the first `steps` sub-pixels in order."""
    import numpy as np

    from serve.sampling import draw, uniforms

    spec = sampler.spec
    dims = spec.dims
    steps = min(steps or dims, dims)
    u = uniforms(batch, *spec.shape, seed=0)
    images = np.zeros((batch,) + spec.shape, np.float32)
    labels = np.zeros(batch, np.int32) if spec.num_classes else None
    sampler.logits_fn(images, labels)  # warm-up: allocation, tracing, XNNPACK packing
    start = time.perf_counter()
    for step in range(steps):
        i, j, c = np.unravel_index(step, spec.shape)
        logits = sampler.logits_fn(images, labels)
        images[:, i, j, c] = draw(logits[:, i, j, c], u[:, i, j, c])
    seconds = time.perf_counter() - start
    per_step = seconds / steps
    return {
        "batch_size": batch,
        "steps_timed": steps,
        "ms_per_step": round(per_step * 1000, 3),
        "images_per_second": round(batch / (per_step * dims), 4),
        "seconds_per_batch_of_images": round(per_step * dims, 2),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from pixelcnn_tf.errors import UserError

    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        export_dir = args.export
        if not export_dir:
            from export.build import export_checkpoint

            export_dir = os.path.join(scratch, "export")
            quantize = [q for q in args.tflite_quantize.split(",") if q]
            try:
                export_checkpoint(args.checkpoint, export_dir, quantize, log=lambda line: print(line, file=sys.stderr))
            except UserError as e:
                print(f"python -m bench.export_sampling: error: {e}", file=sys.stderr)
                return 2
        by_name, meta = samplers(args, export_dir)
        result = {
            "checkpoint": os.path.abspath(args.checkpoint),
            "model_config": meta.model_config,
            "artifact_bytes": {name: entry.bytes for name, entry in meta.artifacts.items()},
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "runs": [],
        }
        for name, sampler in by_name.items():
            for batch in args.batch_sizes:
                row = {"backend": name, **time_sampling(sampler, batch, args.steps)}
                print(json.dumps(row), file=sys.stderr)
                result["runs"].append(row)
    print(json.dumps(result))
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
