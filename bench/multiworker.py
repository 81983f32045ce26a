"""Benchmark: training images/s of one process vs N local workers (same global batch, threads per process fixed);
`python -m bench.multiworker [--workers 2] [--threads 1]`. Figures come from each run's TensorBoard images_per_second."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from pixelcnn_tf.distribute.launch import thread_env
from pixelcnn_tf.errors import ArgumentParser

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {  # name -> train.py flags (levels 2: binarized MNIST, as the quick preset)
    "tiny": ["--num-layers", "2", "--filters", "8", "--kernel-size", "3", "--levels", "2"],
    "quick": ["--preset", "quick"],
}


def images_per_second(run_dir: str) -> list[float]:
    import tensorflow as tf

    board = os.path.join(run_dir, "tensorboard")
    values = []
    for name in sorted(os.listdir(board)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(board, name)):
            values += [float(tf.make_ndarray(v.tensor)) for v in event.summary.value if v.tag == "images_per_second"]
    return values


def run(command: list[str], env: dict) -> None:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.multiworker", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every process (default 1)")
    parser.add_argument("--models", default="tiny,quick", help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--train-examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch of both set-ups")
    parser.add_argument("--epochs", type=int, default=3, help="epoch 1 (tracing) is left out of the figure")
    args = parser.parse_args(argv)
    common = ["--train-examples", str(args.train_examples), "--test-examples", "256", "--batch-size", str(args.batch_size),
              "--epochs", str(args.epochs), "--precision", "float32"]
    env = dict(os.environ, **thread_env(args.threads))
    env.pop("TF_CONFIG", None)
    print(f"| model | set-up | images/s (epochs 2..{args.epochs}, mean) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            flags = MODELS[model] + common + ["--save-path", tmp]
            setups = {
                f"1 process x {args.threads} thread(s)": [sys.executable, "train.py", *flags, "--run-name", f"{model}_one", "--strategy", "one"],
                f"{args.workers} workers x {args.threads} thread(s)": [
                    sys.executable, "-m", "pixelcnn_tf.distribute.launch", "--workers", str(args.workers), "--threads", str(args.threads),
                    "--", *flags, "--run-name", f"{model}_workers"],
            }
            for (setup, command), suffix in zip(setups.items(), ("one", "workers")):
                run(command, env)
                rates = images_per_second(os.path.join(tmp, f"{model}_{suffix}"))[1:]
                print(f"| {model} | {setup} | {sum(rates) / len(rates):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
