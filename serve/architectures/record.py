"""What one architecture gives cached sampling (numpy only): the record serve/cached.py keeps a table of."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# choose(i, j, c, head (B, *head_shape), earlier (B, c)) -> the levels (B,) written at sub-pixel (i, j, c), given the
# pixel's channels before c: a draw when sampling, the image's own levels when teacher-forcing
# (serve.cached.teacher_forced_logits).
Chooser = Callable[[int, int, int, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StepArchitecture:
    """An architecture's cached sampling: its step-model parts, its raster loop, and how to build its step.

    A "step" is whatever the loop calls (a function for the seed model, a pair for the gated one); it is built
    from folded numpy weights (numpy_step) or from one runtime runner per part (from_runners).
    """

    name: str
    parts: tuple[str, ...]  # the exported step models, in order: one file per part and runtime
    min_kernel_size: int  # smaller kernels have no cached sampling (the naive sampler still works)
    # loop(step, *, shape, num_layers, kernel_size, filters, levels, distribution, choose, batch, labels, progress)
    # -> uint8 images; the step runs once per sub-pixel (distribution.channel_masks) or once per pixel
    loop: Callable[..., np.ndarray]
    numpy_step: Callable[[dict], Any]  # fold params (np.load of step_params.npz) -> step
    # from_runners({part: runner}, num_layers, conditional) -> step
    from_runners: Callable[[dict, int, bool], Any]
    # part_inputs(layout, spec) -> {part: {input name: shape after the batch axis}} (without the label)
    part_inputs: Callable[[dict, Any], dict]
    # part_outputs(num_layers) -> {part: [output names]}
    part_outputs: Callable[[int], dict]
    # param_layers(params) -> the layer count that folded params hold (checked against the layout)
    param_layers: Callable[[dict], int]
    # part -> intra-op threads when the caller sets none: 1 for a per-sub-pixel part, 0 (one per core) for a part
    # that does a whole row per call (measured: bench/threads.py, docs/benchmarks.md)
    threads: dict
