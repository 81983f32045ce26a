"""The serve side's architectures (numpy only): one module each registers one record; this is their table."""
from __future__ import annotations

from serve.architectures import gated, seed
from serve.architectures.record import StepArchitecture
from serve.names import ARCHITECTURE_NAMES
from serve.sampling import SamplingError

# pixelcnn_tf/architectures/ keys its TensorFlow side by these names.
ARCHITECTURES: dict[str, StepArchitecture] = {record.name: record for record in (seed.RECORD, gated.RECORD)}
assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES, "serve/names.py must list this table's architectures"


def step_architecture(name: str) -> StepArchitecture:
    if name not in ARCHITECTURES:
        raise SamplingError(f"unknown architecture {name!r}; this serve knows {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]
