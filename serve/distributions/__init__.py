"""Output distributions as plug-ins (numpy, no TensorFlow): the registry, one record per name, built by keyword."""
from __future__ import annotations

from serve.distributions import logistic_mixture, softmax
from serve.distributions.base import Distribution, DistributionError, Record
from serve.names import OUTPUT_NAMES

RECORDS: dict[str, Record] = {record.name: record for record in (softmax.RECORD, logistic_mixture.RECORD)}
assert tuple(RECORDS) == OUTPUT_NAMES, "serve/names.py must list this table's output distributions"
DEFAULT = OUTPUT_NAMES[0]


def record(name) -> Record:
    if name not in RECORDS:
        raise DistributionError(f"unknown output distribution {name!r}; choose one of {', '.join(RECORDS)}")
    return RECORDS[name]


def build(name, *, channels: int, levels: int, mixtures: int | None = None) -> Distribution:
    """The distribution `name` bound to channels and levels; a bad combination raises one DistributionError line."""
    return record(name).build(channels=channels, levels=levels, mixtures=mixtures)


def check(name, *, channels: int, levels: int, mixtures: int | None = None) -> None:
    """Validate an output request (CLI flags, INI keys, metadata) without building anything heavy."""
    build(name, channels=channels, levels=levels, mixtures=mixtures)


__all__ = ["RECORDS", "DEFAULT", "Distribution", "DistributionError", "Record", "build", "check", "record"]
