"""The PyTorch yardstick: the original project's seed PixelCNN trained in PyTorch; run it with a torch venv's python.

torch is not a project dependency. Set up once (that exact version, from the machine's wheel cache):
    python3 -m venv /work/torchenv && /work/torchenv/bin/pip install torch==2.13.0 numpy
then: /work/torchenv/bin/python bench/torch_seed.py --threads 2 --steps 5
It builds what the original builds: 8 masked 7x7 convolutions (Mask A first, then B), 64 channels, no bias, each
followed by BatchNorm and ReLU, a 1x1 convolution to 256 logits, cross-entropy, Adam, batch 144, 28x28x1 input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """The original's masked convolution: the full kernel times a 0/1 mask on every forward."""

    def __init__(self, mask_type: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _, _, kh, kw = self.weight.shape
        mask = torch.ones_like(self.weight)
        mask[:, :, kh // 2, kw // 2 + (mask_type == "B"):] = 0
        mask[:, :, kh // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        self.weight.data *= self.mask
        return super().forward(x)


def seed_net(filters: int = 64, layers: int = 8, kernel: int = 7, levels: int = 256) -> nn.Sequential:
    blocks = []
    for index in range(layers):
        blocks += [MaskedConv2d("A" if index == 0 else "B", 1 if index == 0 else filters, filters, kernel, 1,
                                kernel // 2, bias=False), nn.BatchNorm2d(filters), nn.ReLU(True)]
    return nn.Sequential(*blocks, nn.Conv2d(filters, levels, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/torch_seed.py")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=144)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = seed_net()
    optimizer = torch.optim.Adam(net.parameters())
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 256, (args.batch_size, 28, 28)).astype(np.int64))
    inputs = (target.float() / 255.0).unsqueeze(1)

    def step():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(inputs), target)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"framework": f"torch {torch.__version__}", "threads": args.threads, "batch_size": args.batch_size,
                      "steps": args.steps, "seconds": round(seconds, 3),
                      "images_per_second": round(args.steps * args.batch_size / seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
