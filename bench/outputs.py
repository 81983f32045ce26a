"""Output distributions at equal wall time: `python -m bench.outputs [--minutes 10] [--mixtures 10]`.

8-bit MNIST (--levels 256), one architecture, softmax vs the logistic mixture. The candidates run side by side,
each pinned to its own core with one thread, so both see the same machine load: first a probe of each one's
training images/s, then each trains on as many images as its rate allows in the budget (cosine over the run).
Then, one at a time: test bits/dim (the last epoch's whole-split figure training records), `python -m export`,
the export's file sizes, and sampling images/s through onnxruntime (sampler graph and cached loop, batch 1 and 144).
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
from pixelcnn_tf.distribute.launch import thread_env  # noqa: E402
from pixelcnn_tf.files import write_json_atomic  # noqa: E402
from pixelcnn_tf.run.losses import read_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IMAGES = 60000
DIMS = 28 * 28


def candidates(architecture: str, mixtures: int) -> dict[str, list[str]]:
    base = ["--preset", "gated_mnist", "--architecture", architecture, "--levels", "256", "--no-tensorboard"]
    return {"softmax": base, f"logistic_mixture{mixtures}": base + ["--output", "logistic_mixture", "--mixtures", str(mixtures)]}


def side_by_side(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Run each command pinned to its own core (one thread), all at once; fail loudly on any error."""
    cores = sorted(os.sched_getaffinity(0))
    env = dict(os.environ, **thread_env(1))
    procs = [subprocess.Popen(["taskset", "-c", str(cores[n % len(cores)]), sys.executable, *command], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n, command in enumerate(commands)]
    done = []
    for proc, command in zip(procs, commands):
        out, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"failed: {' '.join(command)}\n{err[-2000:]}")
        done.append(subprocess.CompletedProcess(command, 0, out, err))
    return done


def run_flags(flags: list[str], rate: float, seconds: float, save_path: str, name: str) -> list[str]:
    images = min(int(rate * seconds), 20 * TRAIN_IMAGES)
    epochs = max(1, math.ceil(images / TRAIN_IMAGES))
    return flags + ["--epochs", str(epochs), "--train-examples", str(images // epochs), "--save-path", save_path,
                    "--run-name", name]


def sampling_rates(export_dir: str) -> dict:
    """Images/s through onnxruntime: the sampler graph and the cached loop, batch 1 and 144 (one call each, timed)."""
    from serve import Sampler

    rates = {}
    for sampler in ("graph", "cached"):
        loaded = Sampler.load(export_dir, "onnx", sampler=sampler)
        loaded.sample(1, seed=0)  # warm-up: first-call allocation
        for batch in (1, 144):
            started = time.perf_counter()
            loaded.sample(batch, seed=1)
            rates[f"{sampler}_batch{batch}"] = round(batch / (time.perf_counter() - started), 3)
    return rates


def sizes(export_dir: str) -> dict:
    with open(os.path.join(export_dir, "metadata.json"), encoding="utf-8") as f:
        meta = json.load(f)
    out = {name: entry["bytes"] for name, entry in meta["artifacts"].items() if "bytes" in entry}
    out |= {f"sampler_{name}": entry["bytes"] for name, entry in (meta.get("sampler_graph") or {}).get("artifacts", {}).items()}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outputs", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time per candidate (default 10)")
    parser.add_argument("--architecture", default="gated", choices=["pixelcnn", "gated"])
    parser.add_argument("--mixtures", type=int, default=10, help="the mixture's components (default 10, as PixelCNN++)")
    parser.add_argument("--save-path", default="models/outputs", help="where the candidates' runs and exports go")
    parser.add_argument("--out", default="docs/bench_outputs.json", help="results JSON")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.mixtures < 1:
        parser.error("--minutes and --mixtures must be positive")
    names = candidates(args.architecture, args.mixtures)
    load_before = os.getloadavg()[0]
    rates = [float(done.stdout.strip().splitlines()[-1]) for done in
             side_by_side([["-m", "bench.recipes", "--probe", json.dumps(flags)] for flags in names.values()])]
    runs = {name: run_flags(flags, rate, args.minutes * 60, args.save_path, name)
            for (name, flags), rate in zip(names.items(), rates)}
    started = time.perf_counter()
    side_by_side([["train.py", *flags] for flags in runs.values()])
    results = []
    for (name, flags), rate in zip(names.items(), rates):
        run_dir = os.path.join(args.save_path, name)
        rows = read_rows(os.path.join(run_dir, "losses.csv"))
        nats = float(rows[-1]["test_nats_per_image"])
        export_dir = os.path.join(args.save_path, f"{name}_export")
        subprocess.run([sys.executable, "-m", "export", "--checkpoint", run_dir, "--out", export_dir, "--overwrite"],
                       cwd=ROOT, check=True, capture_output=True)
        results.append({
            "name": name, "flags": " ".join(flags), "probe_images_per_s_one_core": round(rate, 1),
            "train_seconds": round(sum(float(r["seconds"]) for r in rows), 1), "epochs": len(rows),
            "train_images": int(runs[name][runs[name].index("--train-examples") + 1]) * len(rows),
            "test_nats_per_image": round(nats, 3), "test_bits_per_dim": round(nats / (DIMS * math.log(2)), 4),
            "export_bytes": sizes(export_dir), "sampling_images_per_s_onnx": sampling_rates(export_dir),
        })
    report = {"benchmark": "python -m bench.outputs " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "load_average_before": round(load_before, 2),
              "wall_seconds_side_by_side": round(time.perf_counter() - started, 1), "candidates": results}
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
