"""bench.sampling's graph column: the sampler graph's runtimes, one timed call, and peak memory graph vs loop."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from bench import timed
from serve.backends import BACKENDS, GRAPH_EXPORTS

GRAPH_RUNTIMES = GRAPH_EXPORTS  # the exported sampler graphs' backends: onnx, tflite

# Run in a child process, so its high-water mark (VmHWM: ru_maxrss would carry the forking parent's over exec) is
# this sampler's alone: prints {"loaded_mb", "peak_mb"}.
_MEMORY_SCRIPT = r"""
import json, sys
def high_water_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
sys.path.insert(0, sys.argv[1])
request = json.loads(sys.argv[2])
import numpy as np
from serve.metadata import ModelSpec
from serve.sampling import uniforms
from serve.backends import BACKENDS
spec = ModelSpec(*request["spec"])
labels = np.zeros(request["batch"], np.int32) if spec.num_classes else None
rt, threads = request["runtime"], request["threads"]
if request["mode"] == "graph":
    from serve.graph import as_float32_uniforms, open_graph
    graph = open_graph(BACKENDS[rt].runner, request["paths"][0], spec, threads)
    run = lambda: graph(as_float32_uniforms(uniforms(request["batch"], *spec.shape, 0)), 1.0, labels=labels)
else:
    from serve.architectures import step_architecture
    from serve.cached import sample_cached
    layout = request["layout"]
    entry = step_architecture(layout["architecture"])
    runners = {part: BACKENDS[rt].runner(path, entry.threads[part] if threads is None else threads)
               for part, path in zip(entry.parts, request["paths"])}
    step = entry.from_runners(runners, layout["num_layers"], bool(spec.num_classes))
    run = lambda: sample_cached(step, num_images=request["batch"], shape=spec.shape, labels=labels,
                                distribution=spec.distribution, **layout)
loaded = high_water_mb()
run()
print(json.dumps({"loaded_mb": loaded, "peak_mb": high_water_mb()}))
"""


def graph_files(runtimes, model, config, workdir) -> dict:
    """runtime -> the converted sampler graph file (export.sampler.convert_sampler)."""
    from export.sampler import convert_sampler
    from pixelcnn_tf.model import graph_params, step_params

    if not runtimes:
        return {}
    return convert_sampler(graph_params(step_params(model, config), config), config, os.path.join(workdir, "graph"), runtimes)


def graph_runners(files: dict, spec, threads) -> dict:
    from serve.graph import open_graph

    return {runtime: open_graph(BACKENDS[runtime].runner, path, spec, threads) for runtime, path in files.items()}


def time_graph(runner, spec, batch: int, labels, min_seconds: float) -> float:
    """Mean seconds per call drawing batch images: one untimed warm-up call, then calls for min_seconds (at least 2)."""
    from serve.graph import as_float32_uniforms
    from serve.sampling import uniforms

    u = as_float32_uniforms(uniforms(batch, *spec.shape, 0))
    return timed(lambda: runner(u, 1.0, labels=labels), min_seconds)[0]


def step_files(config, workdir: str, runtime: str) -> list[str]:
    """Where bench.sampling.step_fns converted the step model parts for runtime (export.step.convert_step_model)."""
    from pixelcnn_tf.model import architecture

    return [os.path.join(workdir, BACKENDS[runtime].file(part)) for part in architecture(config).serving.parts]


def peak_memory(mode: str, runtime: str, paths: list[str], spec, layout: dict, batch: int, threads=None) -> dict:
    """Peak resident memory (MB) of a fresh process sampling batch images with the graph or the Python loop."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    request = {"mode": mode, "runtime": runtime, "paths": paths, "batch": batch, "layout": layout, "threads": threads,
               "spec": dataclasses.astuple(spec)}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, root, json.dumps(request)], capture_output=True,
                          text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"sampling_mb": result["peak_mb"] - result["loaded_mb"]}
