"""Sampling images/s of an export as users run it: `python -m bench.export_rates --export pretrained/<name>`.

Through serve.Sampler (no TensorFlow): the sampler graph and the cached loop on onnxruntime and LiteRT, each batch
size timed over whole calls after a warm-up call, labels drawn round-robin for a conditional model; and the files'
sizes from the export's metadata.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import batch_sizes
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_rates", description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="an export folder (python -m export --out ...)")
    parser.add_argument("--batch-sizes", type=batch_sizes, default=[1, 144], help="comma-separated (default 1,144)")
    parser.add_argument("--runtimes", default="onnx,tflite", help="comma-separated (default onnx,tflite)")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="repeat each call until this long (default: once)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    result = {"export": args.export, "load_average_before": round(load, 2), "file_bytes": sizes(args.export),
              "images_per_second": rates(args.export, args.runtimes.split(","), batches=args.batch_sizes,
                                         min_seconds=args.min_seconds)}
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
