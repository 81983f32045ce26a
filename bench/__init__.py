"""Benchmarks (python -m bench.NAME): shared argument types and the one timer every benchmark uses."""
import time


def batch_sizes(text: str) -> list[int]:
    """argparse type for --batch-sizes: a comma list of positive integers ("1,144")."""
    import argparse

    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def timed(fn, min_seconds: float) -> tuple[float, int]:
    """(seconds per call, calls timed): one untimed warm-up call, then calls until min_seconds pass (at least 2)."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls, calls
