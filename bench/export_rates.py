"""Sampling images/s of an export as users run it: `python -m bench.export_rates --export pretrained/<name>`.

Through serve.Sampler (no TensorFlow): the sampler graph and the cached loop on onnxruntime and LiteRT, each batch
size timed over whole calls after a warm-up call, labels drawn round-robin for a conditional model; and the files'
sizes from the export's metadata.json. The yardstick: one batched full forward pass per image of the same export on
each runtime (1 thread and all cores), and every sampler's time per image as a multiple of the fastest of them.
"""
from __future__ import annotations

import json
import os
import sys
import time

from bench import batch_sizes, timed
from pixelcnn_tf.errors import ArgumentParser
from pixelcnn_tf.files import write_json_atomic


def sizes(export_dir: str) -> dict:
    """Bytes of the export's full models, step parts (summed per runtime) and sampler graphs, from its manifest."""
    from serve.manifest import read_manifest

    m = read_manifest(export_dir)
    out = {name: entry.bytes for name, entry in m.artifacts.items() if entry.bytes is not None}
    out |= {f"sampler_{name}": entry.bytes for name, entry in (m.sampler_graph.artifacts if m.sampler_graph else {}).items()}
    out |= {f"step_{name}": sum(part.bytes or 0 for part in entry.parts.values())
            for name, entry in (m.step.artifacts if m.step else {}).items()}
    return out


def rates(export_dir: str, runtimes=("onnx", "tflite"), samplers=("graph", "cached"), batches=(1, 144),
          min_seconds: float = 0.0) -> dict:
    """Images/s per runtime, sampler and batch: whole sample() calls, repeated until min_seconds have passed."""
    import numpy as np

    from serve import Sampler

    out = {}
    for runtime in runtimes:
        for sampler in samplers:
            loaded = Sampler.load(export_dir, runtime, sampler=sampler)
            classes = loaded.spec.num_classes
            loaded.sample(1, seed=0, labels=0 if classes else None)  # warm-up: first-call allocation
            for batch in batches:
                labels = np.arange(batch) % classes if classes else None
                calls, started = 0, time.perf_counter()
                while True:
                    loaded.sample(batch, seed=1 + calls, labels=labels)
                    calls += 1
                    elapsed = time.perf_counter() - started
                    if elapsed >= min_seconds:
                        break
                out[f"{runtime}_{sampler}_batch{batch}"] = round(calls * batch / elapsed, 3)
    return out


def forward_seconds(export_dir: str, runtimes=("onnx", "tflite"), batches=(1, 144), min_seconds: float = 1.0) -> dict:
    """Seconds per image of one batched full forward pass (the naive sampler's step), per runtime, threads and batch."""
    import numpy as np

    from serve import Sampler

    out = {}
    for runtime in runtimes:
        for threads in sorted({1, len(os.sched_getaffinity(0))}):
            loaded = Sampler.load(export_dir, runtime, num_threads=threads, sampler="naive")
            spec = loaded.spec
            for batch in batches:
                images = np.zeros((batch, *spec.shape), np.float32)
                labels = np.arange(batch, dtype=np.int32) % spec.num_classes if spec.num_classes else None
                seconds, _ = timed(lambda: loaded.logits_fn(images, labels), min_seconds)
                out[f"{runtime}_threads{threads}_batch{batch}"] = seconds / batch
    return out


def against_forward(images_per_second: dict, forward: dict) -> dict:
    """Each sampler's seconds per image as a multiple of the fastest forward pass per image at its batch size."""
    out = {}
    for name, rate in images_per_second.items():
        batch = name.rsplit("_batch", 1)[1]
        fastest = min(seconds for key, seconds in forward.items() if key.endswith(f"_batch{batch}"))
        out[name] = round(1 / rate / fastest, 2)
    return out


def measure(args) -> dict:
    """The figures main prints: sizes, images/s per runtime, sampler and batch, the forward yardsticks, the load."""
    load = os.getloadavg()[0]
    result = {"export": args.export, "load_average_before": round(load, 2), "file_bytes": sizes(args.export),
              "images_per_second": rates(args.export, args.runtimes.split(","), batches=args.batch_sizes,
                                         min_seconds=args.min_seconds)}
    forward = forward_seconds(args.export, args.runtimes.split(","), args.batch_sizes)
    result["forward_ms_per_image"] = {name: round(seconds * 1e3, 3) for name, seconds in forward.items()}
    result["x_fastest_forward"] = against_forward(result["images_per_second"], forward)
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.export_rates", description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="an export folder (python -m export --out ...)")
    parser.add_argument("--batch-sizes", type=batch_sizes, default=[1, 144], help="comma-separated (default 1,144)")
    parser.add_argument("--runtimes", default="onnx,tflite", help="comma-separated (default onnx,tflite)")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="repeat each call until this long (default: once)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    from serve.metadata import ServeError

    try:
        result = measure(args)
    except ServeError as e:  # a missing or damaged export, a runtime it lacks: one line, nothing written
        parser.error(str(e))
    print(json.dumps(result, indent=1))
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
