"""The architecture table (readable without TensorFlow): one record per folder; an unknown name is one line."""
from __future__ import annotations

from pixelcnn_tf.architectures import gated, seed
from pixelcnn_tf.architectures.record import Architecture
from pixelcnn_tf.errors import UserError
from serve.names import ARCHITECTURE_NAMES

# A new architecture: a folder like seed/ (its record, network.py, step.py, graph.py), a module in
# serve/architectures/, its name in serve/names.py, and one entry here and in serve/architectures/__init__.py.
ARCHITECTURES: dict[str, Architecture] = {record.name: record for record in (seed.RECORD, gated.RECORD)}
assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES, "serve/names.py must list this table's architectures"


def get(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def register_layers() -> None:
    """Import every network module, registering its serializable layers, and the distributions' Keras loss (a
    compiled checkpoint names it): what keras.saving.load_model needs."""
    import pixelcnn_tf.distributions.base  # noqa: F401  registers DistributionLoss

    for record in ARCHITECTURES.values():
        record.module("network")
