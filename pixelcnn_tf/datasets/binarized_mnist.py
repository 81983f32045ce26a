"""The binarized MNIST test split that evaluate scores, shipped in data/ and read with numpy alone (no TensorFlow).

The test split's binarization is TensorFlow's seeded draw (pixelcnn_tf.datasets.pipeline.quantize, TEST_BINARIZATION_SEED): the
draw needs TensorFlow, its result does not. `python -m pixelcnn_tf.datasets.binarized_mnist --data-dir TFDS_DIR` writes the
draw once from tfds's MNIST (pixels packed 8 to a byte, deflated: under 1 MB) and checks it against CONTENT_SHA256,
so an export of a binarized MNIST model is scored on a machine without TensorFlow on the very images Keras scores.
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
import zipfile

import numpy as np

from pixelcnn_tf.errors import ArgumentParser, UserError, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
SHIPPED = "data/binarized_mnist_test.npz"
DATA_FILE = os.path.join(ROOT, SHIPPED)
SHAPE = (28, 28, 1)
COUNT = 10_000
# sha256 of the bits and labels arrays' bytes (not of the file: deflate's output may differ between zlib versions).
CONTENT_SHA256 = "f4a85ef2c85bdd3523155170cf3030d28f64e63484982e31cb1b6e0f7050ce40"
BUILD = "python -m pixelcnn_tf.datasets.binarized_mnist --data-dir TFDS_DIR"


def content_sha256(bits: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(bits).tobytes() + np.ascontiguousarray(labels).tobytes()).hexdigest()


def covers(dataset: str, levels: int, split: str) -> bool:
    """Whether the shipped file holds what load_split(dataset, split, levels=levels) gives."""
    return dataset == "mnist" and levels == 2 and split == "test"


def load(count: int | None = None, path: str = DATA_FILE) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images (uint8 0/1, (N, 28, 28, 1)) and labels (int32), checked against CONTENT_SHA256."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            bits, labels = arrays["bits"], arrays["labels"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"cannot read {path} ({e}); restore it (git checkout) or rebuild it with `{BUILD}`") from None
    if content_sha256(bits, labels) != CONTENT_SHA256:
        raise UserError(f"{path} is not the recorded binarized MNIST test split (sha256 differs); "
                        f"restore it (git checkout) or rebuild it with `{BUILD}`")
    count = len(labels) if count is None else min(count, len(labels))
    pixels = int(np.prod(SHAPE))
    images = np.unpackbits(bits[:count], axis=1, count=pixels).reshape((count, *SHAPE))
    return images, labels[:count].astype(np.int32)


def write_npz(path: str, arrays: dict) -> None:
    """An .npz numpy reads, with fixed entry dates: the same arrays give the same bytes (for one zlib)."""
    from pixelcnn_tf.files import replacing

    with replacing(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(entry, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def draw(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The packed bits and labels of the test split as TensorFlow binarizes it (what evaluate's TensorFlow path scores)."""
    from pixelcnn_tf.datasets import pipeline as data

    images, labels = data.load_arrays("mnist", "test", levels=2, count=None, data_dir=data_dir)
    if images.shape != (COUNT, *SHAPE) or images.max() > 1:
        raise UserError(f"the MNIST test split in {data_dir} gave {images.shape} images, not {(COUNT, *SHAPE)} binary ones")
    return np.packbits(images.reshape(len(images), -1), axis=1), labels.astype(np.uint8)


def _main(argv) -> int:
    parser = ArgumentParser(prog="python -m pixelcnn_tf.datasets.binarized_mnist", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="TFDS data directory holding mnist/ (default: TFDS_DATA_DIR, then tfds's)")
    parser.add_argument("--out", default=DATA_FILE, help=f"where to write (default: the checkout's {SHIPPED})")
    args = parser.parse_args(argv)
    bits, labels = draw(args.data_dir)
    digest = content_sha256(bits, labels)
    if digest != CONTENT_SHA256:
        raise UserError(f"this TensorFlow draws other bits (content sha256 {digest}, recorded {CONTENT_SHA256}); "
                        f"nothing written to {args.out}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_npz(args.out, {"bits": bits, "labels": labels})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), content sha256 {digest}")
    return 0


def main(argv=None) -> int:
    return run_cli(lambda: _main(argv), "python -m pixelcnn_tf.datasets.binarized_mnist")


if __name__ == "__main__":
    sys.exit(main())
