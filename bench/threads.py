"""Benchmark: step-model calls per runtime thread setting, wall AND process CPU time; `python -m bench.threads --models a.onnx,b.tflite`."""
from __future__ import annotations

import json
import sys
import time

from bench import batch_sizes
from pixelcnn_tf.errors import ArgumentParser
from serve.names import LABEL

# (label, onnxruntime intra-op threads (0 = its default: one per core), allow_spinning) and LiteRT thread counts.
ONNX_SETTINGS = [("1 thread", 1, "0"), ("1 thread, spin", 1, "1"), ("2 threads", 2, "0"), ("2 threads, spin", 2, "1"),
                 ("default", 0, "0"), ("default, spin", 0, "1")]
TFLITE_THREADS = [1, 2]  # LiteRT has no spinning option; 2 = one per core here


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.threads", description=__doc__)
    parser.add_argument("--models", required=True, help="comma list of .onnx / .tflite step models (or full models)")
    parser.add_argument("--batch-sizes", type=batch_sizes, default="1,144", help="comma list (default 1,144)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each setting at least this long (default 2)")
    parser.add_argument("--json", help="also write the rows here")
    return parser.parse_args(argv)


def random_feeds(runner, batch: int):
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape in runner.inputs.items():
        if name == LABEL:
            feeds[name] = np.zeros(batch, np.int32)
        else:
            feeds[name] = rng.random((batch, *shape[1:])).astype(np.float32)
    return feeds


def measure(run, feeds, min_seconds: float) -> tuple[float, float, int]:
    """(wall ms per call, process CPU ms per call, calls): CPU time counts every thread of this process."""
    run(feeds)
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while calls < 3 or time.perf_counter() - wall0 < min_seconds:
        run(feeds)
        calls += 1
    return (time.perf_counter() - wall0) * 1e3 / calls, (time.process_time() - cpu0) * 1e3 / calls, calls


def settings(path: str):
    from serve.runtime import onnx_runner, tflite_runner

    if path.endswith(".onnx"):
        for label, threads, spin in ONNX_SETTINGS:
            yield f"onnx {label}", onnx_runner(path, threads=threads, spinning=spin == "1")
    else:
        for threads in TFLITE_THREADS:
            yield f"tflite {threads} thread(s)", tflite_runner(path, threads=threads)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = []
    for path in args.models.split(","):
        for batch in args.batch_sizes:
            for label, runner in settings(path):
                wall, cpu, calls = measure(runner, random_feeds(runner, batch), args.min_seconds)
                row = {"model": path, "batch": batch, "setting": label, "wall_ms": round(wall, 3), "cpu_ms": round(cpu, 3),
                       "cpu_per_wall": round(cpu / wall, 2), "calls": calls}
                rows.append(row)
                print(f"{path:<40} batch {batch:>4}  {label:<22} wall {wall:8.3f} ms  cpu {cpu:8.3f} ms  "
                      f"cpu/wall {cpu / wall:4.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
