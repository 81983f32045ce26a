"""A scanned image folder as a tf.data pipeline of (uint8 image, int32 label), decoded as Pillow decodes."""
from __future__ import annotations

import tensorflow as tf

from pixelcnn_tf.datasets.catalog import folder_scan
from pixelcnn_tf.datasets.folders import folder_shape, split_files


def decode(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """PNG or JPEG bytes -> uint8 (H, W, channels).

    JPEG uses the accurate integer DCT: it gives Pillow's (libjpeg's default) pixels exactly, where tf.io.decode_image
    (and so tfds ImageFolder and keras image_dataset_from_directory) uses the fast DCT and differs by a level or two.
    """
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=channels, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(contents, channels=channels),
    )


def centre_crop_resize(image: tf.Tensor, size: int) -> tf.Tensor:
    """The largest centred square, resized (antialiased bilinear) to size x size; a square of that size is kept as is."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    square = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2, (shape[1] - side) // 2, side, side)
    return tf.cond(
        tf.equal(side, size),
        lambda: square,
        lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(square, [size, size], antialias=True)), 0, 255), tf.uint8),
    )


def folder_pairs(name: str, split: str, *, data_dir: str | None, image_size: int | None, take: int | None) -> tf.data.Dataset:
    """Unbatched (uint8 image (H, W, C), int32 label) of a split, in split_files' fixed order."""
    scan = folder_scan(name, data_dir)
    height, width, channels = folder_shape(scan, image_size)
    paths, labels = split_files(scan, split)
    if take is not None:
        paths, labels = paths[:take], labels[:take]

    def load(path, label):
        image = decode(tf.io.read_file(path), channels)
        if image_size is not None:
            image = centre_crop_resize(image, image_size)
        return tf.ensure_shape(image, (height, width, channels)), label

    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths), tf.constant(labels, tf.int32)))
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
