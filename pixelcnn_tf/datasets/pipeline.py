"""tf.data pipelines over tensorflow-datasets or image folders: quantized to `levels`, stochastic binarization for levels=2."""
from __future__ import annotations

import logging
import os
import re
import socket

import numpy as np
import tensorflow as tf

from pixelcnn_tf.datasets.catalog import (  # noqa: F401  (re-exported)
    DATASETS,
    DatasetSpec,
    dataset_spec,
    is_folder_dataset,
)
from pixelcnn_tf.errors import UserError, first_line
from serve.names import IMAGE, LABEL

# The fixed seed of the test split's binarization: every run scores the very same binary test images.
TEST_BINARIZATION_SEED = 1234
DOWNLOAD_PROBE = ("storage.googleapis.com", 443)


def resolve_data_dir(data_dir: str | None) -> str | None:
    """--data-dir wins, then TFDS_DATA_DIR, then tfds's own default (None)."""
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _can_download(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(DOWNLOAD_PROBE, timeout=timeout).close()
        return True
    except OSError:
        return False


def _builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    dataset_spec(name)
    data_dir = resolve_data_dir(data_dir)
    # tfds logs a warning per empty version folder it looks at; the error below says what matters.
    logging.getLogger("absl").setLevel(logging.ERROR)
    where = data_dir or "tfds's default data directory"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as e:  # tfds raises parse, OS and registry errors alike for a damaged dataset_info.json
        raise UserError(f"the prepared {name} in {where} cannot be read ({first_line(e)}); prepare it again") from None
    if not prepared:
        # tfds would retry a download for minutes without a network; check once, quickly.
        if not _can_download():
            raise UserError(
                f"dataset {name!r} is not in {where} and cannot be downloaded (no network); "
                f"point --data-dir or TFDS_DATA_DIR at a prepared TFDS directory that holds {name}/"
            )
        builder.download_and_prepare()
    return builder


def damaged(error: Exception, name: str) -> UserError:
    """The one-line error for a tf.errors.DataLossError met while reading a dataset's files (truncated, corrupted)."""
    match = re.search(r"(truncated|corrupted) record at \d+", str(error))
    detail = match.group(0) if match else first_line(error)
    return UserError(f"the prepared {name} files are damaged ({detail}); prepare the dataset again")


def quantize(images: tf.Tensor, levels: int, *, binarize_seed=None) -> tf.Tensor:
    """uint8 0..255 -> int32 level indices 0..levels-1.

    levels=2 binarizes stochastically (pixel on with probability x/255): with binarize_seed=None a fresh
    draw on every pass (training), else a stateless draw from (seed, example index) that never changes.
    """
    if levels == 2:
        probability = tf.cast(images, tf.float32) / 255.0
        if binarize_seed is None:
            noise = tf.random.uniform(tf.shape(probability))
        else:
            noise = tf.random.stateless_uniform(tf.shape(probability), seed=binarize_seed)
        return tf.cast(noise < probability, tf.int32)
    return tf.cast(tf.cast(images, tf.int32) * levels // 256, tf.int32)


def load_split(
    name: str,
    split: str,
    *,
    levels: int,
    data_dir: str | None = None,
    take: int | None = None,
    image_size: int | None = None,
) -> tf.data.Dataset:
    """Unbatched (image int32 levels (H, W, C), label int32) pairs of one split.

    The test split's binarization is fixed (seeded per example index); the train split draws afresh
    each time it is iterated, i.e. each epoch. Folder datasets (image files) are read by pixelcnn_tf.datasets.folder_data,
    resized to image_size x image_size when it is given; the rest by tensorflow-datasets.
    """
    if is_folder_dataset(name):
        from pixelcnn_tf.datasets.folder_data import folder_pairs

        ds = folder_pairs(name, split, data_dir=data_dir, image_size=image_size, take=take)
    else:
        dataset_spec(name, image_size=image_size)  # refuses an image size for a tfds dataset
        builder = _builder(name, data_dir)
        try:
            ds = builder.as_dataset(split=split, shuffle_files=False)
        except (ValueError, KeyError) as e:
            raise UserError(f"dataset {name!r} has no split {split!r}: {e}") from None
        if take is not None:
            ds = ds.take(take)
        ds = ds.map(lambda example: (example["image"], tf.cast(example["label"], tf.int32)))
    # Decode once; quantization (and the stochastic binarization) still runs on every pass.
    ds = ds.cache()
    ds = ds.enumerate()
    if split != "train":
        # One draw per example index, the same in every run: test NLLs stay comparable.
        pass_seeds = tf.data.Dataset.from_tensors(tf.constant(TEST_BINARIZATION_SEED, tf.int64)).repeat()
    else:
        # A new random value per example on every pass. (A stateful tf.random op in map would repeat
        # the same draw each epoch once a global seed is set, as train() does.)
        pass_seeds = tf.data.Dataset.random(rerandomize_each_iteration=True)

    def convert(indexed, pass_seed):
        index, (image, label) = indexed
        return quantize(image, levels, binarize_seed=tf.stack([pass_seed, index])), label

    return tf.data.Dataset.zip(ds, pass_seeds).map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def fit_dataset(
    ds: tf.data.Dataset,
    *,
    batch_size: int,
    conditional: bool,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batch (image, label) pairs into Keras (inputs, targets): inputs hold float levels, targets int levels."""
    if shuffle:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)

    def to_keras(images, labels):
        inputs = {IMAGE: tf.cast(images, tf.float32)}
        if conditional:
            inputs[LABEL] = labels
        return inputs, images

    return ds.batch(batch_size).map(to_keras, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def load_arrays(name: str, split: str, *, levels: int, count: int, data_dir: str | None = None, image_size: int | None = None):
    """The first `count` examples of a split as numpy (images uint8 levels (N, H, W, C), labels int32)."""
    images, labels = [], []
    try:
        for image, label in load_split(name, split, levels=levels, data_dir=data_dir, take=count, image_size=image_size):
            images.append(image.numpy())
            labels.append(int(label))
    except tf.errors.DataLossError as e:
        raise damaged(e, name) from None
    return np.stack(images).astype(np.uint8), np.asarray(labels, np.int32)
