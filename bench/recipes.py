"""Compare training recipes at equal wall time on this CPU: `python -m bench.recipes [--minutes 10] [--only NAME ...]`.

Each candidate's training images/s is probed first (random binary images, the run's precision and threads); its
run then sees as many MNIST training images as that rate allows in the budget (whole epochs of an equal share,
cosine schedule over the run). Test NLL over the whole binarized test split with the averaged weights (the
per-epoch figure training records) and with the raw ones (`evaluate --weights raw`): EMA on vs off, same run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from export.results import machine  # noqa: E402
from pixelcnn_tf.errors import ArgumentParser  # noqa: E402
from pixelcnn_tf.run.losses import read_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IMAGES = 60000
BASE = ["--preset", "gated_mnist", "--ema-decay", "0.999", "--no-tensorboard"]

# name -> flags over BASE (the gated_mnist preset: 6 layers, 32 filters, kernel 5, batch 64, Adam 1e-3 cosine).
CANDIDATES = {
    "base": [],
    "lr2e-3": ["--learning-rate", "2e-3"],
    "batch32": ["--batch-size", "32"],
    "wide48-lr2e-3": ["--filters", "48", "--learning-rate", "2e-3"],  # 64 filters would not fit 3 MB per exported file
}


def probe(flags: list[str], steps: int = 20) -> float:
    """Training images/s of the config the flags give (train.py's config, precision and compile; random images of its
    shape and levels)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import train
    from pixelcnn_tf.model import build_model
    from pixelcnn_tf.run.training import compile_model, set_precision

    config = train.build_config(train.parse_args(flags))
    set_precision(config.precision)
    model = compile_model(build_model(config.model), config.model, config.learning_rate, config.ema_decay)
    batch, m = config.batch_size, config.model
    images = np.random.default_rng(0).integers(0, m.levels, (batch * 8, m.height, m.width, m.channels)).astype("float32")
    inputs = {"image": images}
    if m.num_classes:  # a conditional model's label input
        inputs["label"] = np.random.default_rng(1).integers(0, m.num_classes, len(images)).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((inputs, images.astype("int32"))).batch(batch).repeat()
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace and warm up
    started = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    keras.backend.clear_session()
    return steps * batch / (time.perf_counter() - started)


def python(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    return done


def run_candidate(name: str, flags: list[str], seconds: float, save_path: str) -> dict:
    rate = float(python("-m", "bench.recipes", "--probe", json.dumps(flags)).stdout.strip().splitlines()[-1])
    images = min(int(rate * seconds), 20 * TRAIN_IMAGES)
    epochs = max(1, math.ceil(images / TRAIN_IMAGES))
    per_epoch = images // epochs
    run_flags = flags + ["--epochs", str(epochs), "--train-examples", str(per_epoch), "--save-path", save_path,
                         "--run-name", name]
    started = time.perf_counter()
    python("train.py", *run_flags)
    wall = time.perf_counter() - started
    run_dir = os.path.join(save_path, name)
    rows = read_rows(os.path.join(run_dir, "losses.csv"))
    python("-m", "pixelcnn_tf.evaluate", "--checkpoint", run_dir, "--weights", "raw", "--out", os.path.join(run_dir, "raw.json"))
    with open(os.path.join(run_dir, "raw.json"), encoding="utf-8") as f:
        raw_nats = json.load(f)["nats_per_image"]
    return {
        "name": name, "flags": " ".join(flags[len(BASE):]) or "(gated_mnist preset)", "probe_images_per_s": round(rate, 1),
        "train_images": per_epoch * epochs, "epochs": epochs, "train_seconds": round(sum(float(r["seconds"]) for r in rows), 1),
        "wall_seconds": round(wall, 1), "test_nats_averaged": float(rows[-1]["test_nats_per_image"]),
        "test_nats_raw": round(raw_nats, 3),
    }


def table(results: list[dict]) -> str:
    """Markdown; the lowest NLL (averaged or raw weights, whichever is lower per candidate) in bold."""
    lines = ["| candidate | flags over the gated_mnist preset + `--ema-decay 0.999` | probed images/s | images seen (epochs) "
             "| training wall time | test NLL, averaged | test NLL, raw |", "|---|---|---:|---:|---:|---:|---:|"]
    best = min(min(row["test_nats_averaged"], row["test_nats_raw"]) for row in results)
    for row in results:
        cells = [f"{row[key]:.2f}" for key in ("test_nats_averaged", "test_nats_raw")]
        cells = [f"**{cell}**" if float(cell) == round(best, 2) else cell for cell in cells]
        lines.append(f"| {row['name']} | `{row['flags']}` | {row['probe_images_per_s']} | {row['train_images']:,} ({row['epochs']}) "
                     f"| {row['train_seconds'] / 60:.1f} min | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.recipes", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time per candidate (default 10)")
    parser.add_argument("--only", nargs="*", choices=sorted(CANDIDATES), help="candidates to run (default: all)")
    parser.add_argument("--save-path", default="models/recipes", help="where the candidates' run folders go")
    parser.add_argument("--out", default="docs/recipes.json", help="results JSON, rewritten after each candidate")
    parser.add_argument("--table", action="store_true", help="print --out's results as a Markdown table and stop")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # internal: print one config's images/s
    args = parser.parse_args(argv)
    if args.probe:
        print(probe(json.loads(args.probe)))
        return 0
    if args.table:
        with open(args.out, encoding="utf-8") as f:
            print(table(json.load(f)["candidates"]))
        return 0
    names = args.only or list(CANDIDATES)
    results = []  # candidates measured before (another --only) stay in the table
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            results = [row for row in json.load(f)["candidates"] if row["name"] not in names]
    for name in names:
        row = run_candidate(name, BASE + CANDIDATES[name], args.minutes * 60, args.save_path)
        results.append(row)
        print(json.dumps(row), flush=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"minutes": args.minutes, "machine": machine(), "candidates": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
