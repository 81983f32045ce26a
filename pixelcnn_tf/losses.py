"""Likelihood units and the per-epoch loss table (losses.csv, losses.md, losses.png) of a run."""
from __future__ import annotations

import csv
import math
import os

import keras

from pixelcnn_tf.files import write_text_atomic

COLUMNS = (
    "epoch",
    "train_nats_per_image",
    "train_bits_per_dim",
    "test_nats_per_image",
    "test_bits_per_dim",
    "seconds",
)


def nats_per_image(nats_per_dim: float, dims: int) -> float:
    return nats_per_dim * dims


def bits_per_dim(nats_per_dim: float) -> float:
    return nats_per_dim / math.log(2.0)


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_tables(run_dir: str, rows: list[dict]) -> None:
    """Rewrite losses.csv, losses.md and losses.png from rows (dicts keyed by COLUMNS)."""
    lines = [",".join(COLUMNS)] + [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    write_text_atomic(os.path.join(run_dir, "losses.csv"), "\n".join(lines) + "\n")
    header = "| epoch | train nats/image | train bits/dim | test nats/image | test bits/dim | seconds |"
    md = [header, "|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        md.append("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    write_text_atomic(os.path.join(run_dir, "losses.md"), "\n".join(md) + "\n")
    plot(run_dir, rows)


def plot(run_dir: str, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.plot(epochs, [float(r["train_bits_per_dim"]) for r in rows], "o-", label="train")
    ax.plot(epochs, [float(r["test_bits_per_dim"]) for r in rows], "s-", label="test")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (bits/dim)")
    ax.set_title(os.path.basename(os.path.normpath(run_dir)))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = os.path.join(run_dir, "losses.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, os.path.join(run_dir, "losses.png"))


class LossTable(keras.callbacks.Callback):
    """After each epoch, record train and test NLL (nats/image, bits/dim) of the run.

    Rows are keyed by epoch: a resumed run replaces the rows it re-trains instead of duplicating them.
    """

    def __init__(self, run_dir: str, dims: int):
        super().__init__()
        self.run_dir = run_dir
        self.dims = dims
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import time

        logs = logs or {}
        if "loss" not in logs or "val_loss" not in logs:
            return
        train, test = float(logs["loss"]), float(logs["val_loss"])
        row = {
            "epoch": epoch + 1,
            "train_nats_per_image": f"{nats_per_image(train, self.dims):.3f}",
            "train_bits_per_dim": f"{bits_per_dim(train):.4f}",
            "test_nats_per_image": f"{nats_per_image(test, self.dims):.3f}",
            "test_bits_per_dim": f"{bits_per_dim(test):.4f}",
            "seconds": f"{time.perf_counter() - self._started:.1f}",
        }
        rows = [r for r in read_rows(os.path.join(self.run_dir, "losses.csv")) if int(r["epoch"]) < epoch + 1]
        write_tables(self.run_dir, rows + [row])
