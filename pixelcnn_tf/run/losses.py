"""Likelihood units and the per-epoch loss table (losses.csv, losses.md, losses.png) of a run."""
from __future__ import annotations

import csv
import math
import os

from pixelcnn_tf.files import replacing, write_text_atomic

PLOT_TMP = "losses.tmp.png"
TABLE_FILES = ("losses.csv", "losses.md", "losses.png")
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
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def epoch_row(epoch: int, train_nats_per_dim: float, test_nats_per_dim: float, dims: int, seconds: float) -> dict:
    """The table row of one epoch (1-based) from the mean train and test NLL per sub-pixel in nats."""
    return {
        "epoch": epoch,
        "train_nats_per_image": f"{nats_per_image(train_nats_per_dim, dims):.3f}",
        "train_bits_per_dim": f"{bits_per_dim(train_nats_per_dim):.4f}",
        "test_nats_per_image": f"{nats_per_image(test_nats_per_dim, dims):.3f}",
        "test_bits_per_dim": f"{bits_per_dim(test_nats_per_dim):.4f}",
        "seconds": f"{seconds:.1f}",
    }


def with_row(run_dir: str, row: dict) -> list[dict]:
    """The rows of losses.csv before row's epoch, then row: a replayed epoch replaces its row, never duplicates it."""
    return [r for r in read_rows(os.path.join(run_dir, "losses.csv")) if int(r["epoch"]) < int(row["epoch"])] + [row]


def write_tables(run_dir: str, rows: list[dict], epoch: int | None = None) -> None:
    """Rewrite losses.csv, losses.md and losses.png from rows (dicts keyed by COLUMNS)."""
    lines = [",".join(COLUMNS)] + [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    write_text_atomic(os.path.join(run_dir, "losses.csv"), "\n".join(lines) + "\n", epoch)
    header = "| epoch | train nats/image | train bits/dim | test nats/image | test bits/dim | seconds |"
    md = [header, "|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        md.append("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    write_text_atomic(os.path.join(run_dir, "losses.md"), "\n".join(md) + "\n", epoch)
    plot(run_dir, rows, epoch)


def plot(run_dir: str, rows: list[dict], epoch: int | None = None) -> None:
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
    try:
        with replacing(os.path.join(run_dir, "losses.png"), os.path.join(run_dir, PLOT_TMP), epoch) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
