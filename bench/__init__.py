

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
