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


DATASETS = {
    "mnist": DatasetSpec(28, 28, 1, 10),
    "fashion_mnist": DatasetSpec(28, 28, 1, 10),
    "cifar10": DatasetSpec(32, 32, 3, 10),
}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]
