"""The image datasets train.py knows (shape, classes), importable without TensorFlow for fast argument checks."""
from __future__ import annotations

from dataclasses import dataclass

from pixelcnn_tf.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    height: int
    width: int
    channels: int
    num_classes: int
    class_names: tuple[str, ...] = ()  # label id -> name (exports carry them: the page and --label show names)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Prepared by tensorflow-datasets (pixelcnn_tf.datasets.pipeline); --data-dir is the TFDS data directory. The names
# are tfds' label names.
DATASETS = {
    "mnist": DatasetSpec(28, 28, 1, 10, tuple(str(digit) for digit in range(10))),
    "fashion_mnist": DatasetSpec(28, 28, 1, 10, ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                                 "Sneaker", "Bag", "Ankle boot")),
    "cifar10": DatasetSpec(32, 32, 3, 10, CIFAR10_CLASSES),
}
# Read from image files (pixelcnn_tf.datasets.folders); their shape and classes come from the files themselves.
# folder: --data-dir is the image folder; cifar10_jpeg: --data-dir (optional) is its archive or the archive's folder.
FOLDER_DATASETS = ("folder", "cifar10_jpeg")


def is_folder_dataset(name: str) -> bool:
    return name in FOLDER_DATASETS


def image_root(name: str, data_dir: str | None) -> str:
    """The folder holding train/ and test/ of a folder dataset (cifar10_jpeg: extracted first, once)."""
    if name == "cifar10_jpeg":
        from pixelcnn_tf.datasets.cifar_jpeg import extracted_root

        return extracted_root(data_dir)
    return data_dir


def folder_scan(name: str, data_dir: str | None):
    from pixelcnn_tf.datasets.folders import scan_folder

    return scan_folder(image_root(name, data_dir))


def dataset_spec(name: str, data_dir: str | None = None, image_size: int | None = None) -> DatasetSpec:
    """A dataset's image shape and class count; a folder dataset is scanned (and refused in one line) to know them."""
    if is_folder_dataset(name):
        from pixelcnn_tf.datasets.folders import folder_shape

        scan = folder_scan(name, data_dir)
        height, width, channels = folder_shape(scan, image_size)
        return DatasetSpec(height, width, channels, len(scan.classes), scan.classes if scan.labelled else ())
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(list(DATASETS) + list(FOLDER_DATASETS))}")
    if image_size is not None:
        raise UserError(f"--image-size applies to image-folder datasets ({', '.join(FOLDER_DATASETS)}), not {name}")
    return DATASETS[name]


def known_class_names(config) -> tuple[str, ...]:
    """A training config's class names, if they can be known without reading data: a tfds dataset's, or a folder
    dataset's from its cached or present folder; () when the folder is gone (ids still work)."""
    if config.dataset == "cifar10_jpeg":  # its class folders are CIFAR-10's names, in this (sorted) order
        return CIFAR10_CLASSES
    try:
        return dataset_spec(config.dataset, config.data_dir, config.image_size).class_names
    except UserError:
        return ()
