"""Benchmark: numpy cost of drawing one pixel per output distribution (head given); `python -m bench.distributions`."""
from __future__ import annotations

import time

import numpy as np

from bench import batch_sizes
from pixelcnn_tf.errors import ArgumentParser
from serve import distributions

# (name, mixtures): the network's cost is not in these figures, only the per-pixel distribution work a cached
# loop adds on top of its steps (softmax: C draws from C heads; mixture: C draws from one head).
CASES = (("softmax", None), ("logistic_mixture", 5), ("logistic_mixture", 10))


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.distributions", description=__doc__)
    parser.add_argument("--batch-sizes", type=batch_sizes, default="1,144",
                        help="comma-separated batch sizes (default 1,144)")
    parser.add_argument("--levels", type=int, default=256, help="levels per sub-pixel (default 256)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the best is reported (default 5)")
    parser.add_argument("--pixels", type=int, default=50, help="pixels drawn per timing (default 50)")
    return parser.parse_args(argv)


def pixel_drawer(dist, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    head = rng.normal(size=(batch,) + dist.head_shape).astype(np.float32)  # float32 as the runtimes give it
    u = rng.random((batch, dist.channels))

    def draw_one_pixel():
        values = np.zeros((batch, dist.channels), np.int64)
        for c in range(dist.channels):
            values[:, c] = dist.draw(head, c, values[:, :c], u[:, c])
        return values

    return draw_one_pixel


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = []
    for channels in (1, 3):
        for batch in args.batch_sizes:
            dists = [distributions.build(name, channels=channels, levels=args.levels, mixtures=k) for name, k in CASES]
            drawers = [pixel_drawer(dist, batch) for dist in dists]
            best = [float("inf")] * len(dists)
            for _ in range(args.rounds):  # alternate, so a burst of load on the shared machine hits every case
                for index, drawer in enumerate(drawers):
                    start = time.perf_counter()
                    for _ in range(args.pixels):
                        drawer()
                    best[index] = min(best[index], (time.perf_counter() - start) / args.pixels)
            for dist, seconds in zip(dists, best):
                rows.append((channels, batch, dist.describe(), dist.features, dist.steps_per_pixel, seconds * 1e3))
    print(f"levels={args.levels}; best of {args.rounds} alternating rounds of {args.pixels} pixels")
    print("| channels | batch | output | head features/pixel | network steps/pixel | ms per pixel (distribution) |")
    print("|---:|---:|---|---:|---:|---:|")
    for channels, batch, name, features, steps, ms in rows:
        print(f"| {channels} | {batch} | {name} | {features} | {steps} | {ms:.3f} |")


if __name__ == "__main__":
    main()
