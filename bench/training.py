"""Benchmark: training images/s of a config at a precision; `python -m bench.training --preset seed --precision float32`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pixelcnn_tf.files import write_json_atomic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from pixelcnn_tf.config import preset
    from pixelcnn_tf.model import build_model
    from pixelcnn_tf.training import compile_model, set_precision
    from serve.names import IMAGE, LABEL

    config = preset(args.preset)
    batch = args.batch_size or config.batch_size
    set_precision(args.precision)
    model = compile_model(build_model(config.model), config.learning_rate)
    m = config.model
    rng = np.random.default_rng(0)
    targets = rng.integers(0, m.levels, (batch, m.height, m.width, m.channels)).astype(np.int32)
    inputs = {IMAGE: tf.constant(targets.astype(np.float32))}
    if m.num_classes:
        inputs[LABEL] = tf.constant(rng.integers(0, m.num_classes, batch).astype(np.int32))
    ds = tf.data.Dataset.from_tensors((inputs, tf.constant(targets))).repeat()
    model.fit(ds, steps_per_epoch=args.warmup, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    result = {
        "preset": args.preset,
        "precision": args.precision,
        "batch_size": batch,
        "steps": args.steps,
        "seconds": round(seconds, 3),
        "images_per_second": round(args.steps * batch / seconds, 1),
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "keras": keras.__version__,
    }
    print(json.dumps(result))
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
