"""Benchmark: training images/s of a preset and where the step's time goes; `python -m bench.training --preset seed`."""
from __future__ import annotations

import json
import os
import sys
import time

from pixelcnn_tf.errors import ArgumentParser
from pixelcnn_tf.files import write_json_atomic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.training")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat (after one untimed)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (alternating between XLA settings)")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--jit", default="table", choices=["table", "on", "off", "both"],
                        help="XLA for the train step: training's choice (the architecture table's, default), on, off, or both")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false", help="skip the per-op-class timings")
    parser.add_argument("--data-dir", help="tfds data directory, to time the real input pipeline (default: tfds's)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    for name in ("steps", "warmup", "repeats", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be {'>= 0' if name == 'warmup' else 'positive'}, got {value}")
    from pixelcnn_tf.errors import UserError
    from pixelcnn_tf.presets import preset

    try:
        config = preset(args.preset)  # a bad name fails here, before TensorFlow is imported
    except UserError as e:
        parser.error(str(e))

    import keras
    import numpy as np
    import tensorflow as tf

    from bench.op_classes import breakdown, input_batches_per_second
    from pixelcnn_tf.model import build_model, train_jit
    from pixelcnn_tf.run.training import compile_model, datasets, set_precision
    from serve.names import IMAGE, LABEL

    m = config.model
    batch = args.batch_size or config.batch_size
    config.batch_size = batch
    set_precision(args.precision)
    table = train_jit(m, args.precision)
    # What training's choice means here ("auto": Keras's rule for this machine), read off a compiled model.
    table_jit = bool(compile_model(build_model(m), m, config.learning_rate, jit_compile=table).jit_compile)
    jits = {"table": [table_jit], "on": [True], "off": [False], "both": [table_jit, not table_jit]}[args.jit]
    rng = np.random.default_rng(0)
    targets = rng.integers(0, m.levels, (batch, m.height, m.width, m.channels)).astype(np.int32)
    inputs = {IMAGE: tf.constant(targets.astype(np.float32))}
    if m.num_classes:
        inputs[LABEL] = tf.constant(rng.integers(0, m.num_classes, batch).astype(np.int32))
    ds = tf.data.Dataset.from_tensors((inputs, tf.constant(targets))).repeat()

    class StepTimer(keras.callbacks.Callback):
        """Seconds per step between the ends of the first and the last step of one fit: fit's start-up excluded."""

        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))  # the step's work is finished once its loss is read
            self.ends.append(time.perf_counter())

        def seconds(self):
            return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)

    models = {}
    for jit in jits:
        keras.utils.set_random_seed(0)
        models[jit] = compile_model(build_model(m), m, config.learning_rate, jit_compile=jit)
        models[jit].fit(ds, steps_per_epoch=max(args.warmup, 1), epochs=1, verbose=0, shuffle=False)
    seconds = {jit: [] for jit in jits}
    timer = StepTimer()
    for _ in range(args.repeats):  # alternate the settings, so load changes hit both alike
        for jit, model in models.items():
            model.fit(ds, steps_per_epoch=args.steps + 1, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
            seconds[jit].append(timer.seconds())
    step = {jit: min(s) for jit, s in seconds.items()}
    result = {
        "preset": args.preset,
        "precision": args.precision,
        "batch_size": batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "training_jit": f"{table} (XLA {'on' if table_jit else 'off'} here)",
        "images_per_second": {("xla" if jit else "no_xla"): round(batch / s, 1) for jit, s in step.items()},
        "seconds_per_step": {("xla" if jit else "no_xla"): round(s, 4) for jit, s in step.items()},
    }
    if args.breakdown:
        jit = jits[0]
        parts, comparisons = breakdown(models[jit], tf.constant(targets), batch, jit, max(args.repeats, 2))
        parts["other (activations, gates, adds, Keras step)"] = step[jit] - sum(parts.values())
        result["breakdown_jit"] = jit
        result["breakdown_seconds"] = {name: round(s, 4) for name, s in parts.items()}
        result["breakdown_share"] = {name: round(s / step[jit], 3) for name, s in parts.items()}
        result["comparison_seconds"] = {name: round(s, 4) for name, s in comparisons.items()}
        try:
            config.data_dir = args.data_dir or config.data_dir
            train_ds = datasets(config)[0]
            rate = input_batches_per_second(train_ds, 20)
            result["input_pipeline_batches_per_second"] = round(rate, 1)
            result["input_pipeline_vs_step"] = round(rate * step[jit], 1)  # >> 1: prefetch hides it entirely
        except Exception as e:  # no dataset on this machine: the step figures stand without it
            result["input_pipeline_batches_per_second"] = f"unavailable: {type(e).__name__}: {str(e).splitlines()[0]}"
    result.update(onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS"), cpu_count=os.cpu_count(),
                  load_average=[round(x, 2) for x in os.getloadavg()],
                  gpus=len(tf.config.list_physical_devices("GPU")), tensorflow=tf.__version__, keras=keras.__version__)
    print(json.dumps(result))
    if args.breakdown:
        print(f"\n{args.preset} {args.precision} batch {batch}, XLA {'on' if result['breakdown_jit'] else 'off'}: "
              f"{batch / step[result['breakdown_jit']]:.1f} images/s, {step[result['breakdown_jit']]:.3f} s/step")
        for name, s in result["breakdown_seconds"].items():
            print(f"  {name:48s} {s:8.3f} s  {100 * result['breakdown_share'][name]:5.1f}%")
        for name, s in result["comparison_seconds"].items():
            print(f"  (for comparison) {name}: {s:.3f} s")
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
