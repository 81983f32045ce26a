"""Output distributions at equal wall time: `python -m bench.outputs [--dataset mnist|cifar10_jpeg] [--minutes 10]`.

8-bit MNIST (--levels 256) or CIFAR-10 (JPEG q75 copy), one architecture, softmax vs the logistic mixture. The candidates run side by side,
each pinned to its own core with one thread, so both see the same machine load: first a probe of each one's
training images/s, then each trains on as many images as its rate allows in the budget (cosine over the run).
Then, one at a time: test bits/dim (the last epoch's whole-split figure training records), `python -m export`,
the export's file sizes, and sampling images/s through onnxruntime (sampler graph and cached loop, batch 1 and 144).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bench.export_rates import rates, sizes  # noqa: E402
from export.results import machine  # noqa: E402
from pixelcnn_tf.distribute.launch import thread_env  # noqa: E402
from pixelcnn_tf.errors import ArgumentParser  # noqa: E402
from pixelcnn_tf.files import write_json_atomic  # noqa: E402
from pixelcnn_tf.run.losses import read_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# dataset -> (training images, dimensions per image, flags every candidate shares, default results JSON). CIFAR: the 3 MB-per-file cap of the
# shipped models allows 48 filters for the gated stacks; conditional, so a grid can show one class per row.
DATASETS = {
    "mnist": (60000, 28 * 28, ["--preset", "gated_mnist", "--levels", "256"], "docs/bench_outputs_mnist.json"),
    "cifar10_jpeg": (50000, 32 * 32 * 3, ["--preset", "gated_mnist", "--dataset", "cifar10_jpeg", "--levels", "256",
                                          "--filters", "48", "--conditional", "--learning-rate", "2e-3",
                                          "--ema-decay", "0.999", "--test-examples", "2000"],
                     "docs/bench_outputs_cifar.json"),
}


def candidates(dataset: str, architecture: str, mixtures: int, also: list[str] = ()) -> dict[str, list[str]]:
    """Softmax and the mixture on the dataset's shared flags; each of `also` ("NAME=FLAGS") is the mixture plus FLAGS."""
    base = DATASETS[dataset][2] + ["--architecture", architecture, "--no-tensorboard"]
    mixture = base + ["--output", "logistic_mixture", "--mixtures", str(mixtures)]
    extra = dict(item.split("=", 1) for item in also)
    return {"softmax": base, f"logistic_mixture{mixtures}": mixture} | {
        name: mixture + flags.split() for name, flags in extra.items()}


def test_examples(flags: list[str]) -> int:
    """The test images a candidate's epochs are scored on (the dataset's shared --test-examples, else the split)."""
    return int(flags[flags.index("--test-examples") + 1]) if "--test-examples" in flags else 10000


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


def run_flags(flags: list[str], rate: float, seconds: float, save_path: str, name: str, train_images: int) -> list[str]:
    images = min(int(rate * seconds), 20 * train_images)
    epochs = max(1, math.ceil(images / train_images))
    return flags + ["--epochs", str(epochs), "--train-examples", str(images // epochs), "--save-path", save_path,
                    "--run-name", name]


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.outputs", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time per candidate (default 10)")
    parser.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    parser.add_argument("--no-export", action="store_true", help="skip the exports' sizes and sampling rates")
    parser.add_argument("--architecture", default="gated", choices=["pixelcnn", "gated"])
    parser.add_argument("--mixtures", type=int, default=10, help="the mixture's components (default 10, as PixelCNN++)")
    parser.add_argument("--also", nargs="*", default=[], metavar="NAME=FLAGS",
                        help='more mixture candidates, e.g. "lr4e-3=--learning-rate 4e-3" (they share the cores)')
    parser.add_argument("--save-path", default="models/outputs", help="where the candidates' runs and exports go")
    parser.add_argument("--out", help="results JSON (default: the dataset's, docs/bench_outputs_mnist.json or _cifar.json)")
    args = parser.parse_args(argv)
    args.out = args.out or DATASETS[args.dataset][3]
    if args.minutes <= 0 or args.mixtures < 1:
        parser.error("--minutes and --mixtures must be positive")
    if any("=" not in item for item in args.also):
        parser.error("--also takes NAME=FLAGS")
    train_images, dims = DATASETS[args.dataset][:2]
    names = candidates(args.dataset, args.architecture, args.mixtures, args.also)
    load_before = os.getloadavg()[0]
    # Probes run one per core; when there are more candidates than cores, they share the cores while training, so
    # each one's images are its one-core rate times its share of a core.
    cores = len(os.sched_getaffinity(0))
    probes = [["-m", "bench.recipes", "--probe", json.dumps(flags)] for flags in names.values()]
    probed = [float(done.stdout.strip().splitlines()[-1]) for start in range(0, len(probes), cores)
              for done in side_by_side(probes[start:start + cores])]
    share = min(1.0, cores / len(names))
    runs = {name: run_flags(flags, rate * share, args.minutes * 60, args.save_path, name, train_images)
            for (name, flags), rate in zip(names.items(), probed)}
    started = time.perf_counter()
    side_by_side([["train.py", *flags] for flags in runs.values()])
    wall = time.perf_counter() - started
    # A short run's averaged weights (EMA) still carry its initial ones: score the raw weights too, on the test images
    # training scored, pinned as training was.
    raw = {}
    if "--ema-decay" in DATASETS[args.dataset][2]:
        scores = {name: os.path.join(args.save_path, f"{name}_raw_weights.json") for name in names}
        scored = [["-m", "pixelcnn_tf.evaluate", "--checkpoint", os.path.join(args.save_path, name), "--weights", "raw",
                   "--examples", str(test_examples(flags)), "--out", scores[name]] for name, flags in names.items()]
        for start in range(0, len(scored), cores):
            side_by_side(scored[start:start + cores])
        for name, path in scores.items():
            with open(path) as f:
                raw[name] = json.load(f)["bits_per_dim"]
    results = []
    for (name, flags), rate in zip(names.items(), probed):
        run_dir = os.path.join(args.save_path, name)
        rows = read_rows(os.path.join(run_dir, "losses.csv"))
        nats = float(rows[-1]["test_nats_per_image"])
        row = {
            "name": name, "flags": " ".join(flags), "probe_images_per_s_one_core": round(rate, 1),
            "train_seconds": round(sum(float(r["seconds"]) for r in rows), 1), "epochs": len(rows),
            "train_images": int(runs[name][runs[name].index("--train-examples") + 1]) * len(rows),
            "test_nats_per_image": round(nats, 3), "test_bits_per_dim": round(nats / (dims * math.log(2)), 4),
            "test_images": test_examples(flags),
        }
        if name in raw:
            row["test_bits_per_dim_raw_weights"] = raw[name]
        if not args.no_export:
            export_dir = os.path.join(args.save_path, f"{name}_export")
            subprocess.run([sys.executable, "-m", "export", "--checkpoint", run_dir, "--out", export_dir, "--overwrite"],
                           cwd=ROOT, check=True, capture_output=True)
            row |= {"export_bytes": sizes(export_dir), "sampling_images_per_s_onnx": rates(export_dir, ("onnx",))}
        results.append(row)
    report = {"benchmark": "python -m bench.outputs " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "load_average_before": round(load_before, 2),
              "wall_seconds_side_by_side": round(wall, 1), "candidates": results}
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
