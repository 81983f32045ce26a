"""bench.sampling's graph column: the sampler graph's runtimes, one timed call, and peak memory graph vs loop."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

GRAPH_RUNTIMES = ("onnx", "tflite")

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
from serve.step_runtimes import RUNNERS
spec = ModelSpec(*request["spec"])
labels = np.zeros(request["batch"], np.int32) if spec.num_classes else None
rt = request["runtime"]
if request["mode"] == "graph":
    from serve.graph import GraphRunner, as_float32_uniforms
    graph = GraphRunner(RUNNERS[rt](request["paths"][0]), spec)
    run = lambda: graph(as_float32_uniforms(uniforms(request["batch"], *spec.shape, 0)), 1.0, labels=labels)
else:
    from serve.cached import sample_cached
    layout = request["layout"]
    if layout["architecture"] == "gated":
        from serve.gated_cached import step_from_runners
        step = step_from_runners(*[RUNNERS[rt](p) for p in request["paths"]], num_layers=layout["num_layers"],
                                 conditional=bool(spec.num_classes))
    else:
        from serve.step_runtimes import seed_step
        step = seed_step(RUNNERS[rt](request["paths"][0]))
    run = lambda: sample_cached(step, num_images=request["batch"], shape=spec.shape, labels=labels, **layout)
loaded = high_water_mb()
run()
print(json.dumps({"loaded_mb": loaded, "peak_mb": high_water_mb()}))
"""


def graph_files(runtimes, model, config, workdir) -> dict:
    """runtime -> the converted sampler graph file (pixelcnn_tf.sampler_export.convert_sampler)."""
    from pixelcnn_tf.sampler_export import convert_sampler
    from pixelcnn_tf.sampler_params import graph_params

    if not runtimes:
        return {}
    written = convert_sampler(graph_params(model, config), config, os.path.join(workdir, "graph"), formats=runtimes)
    return {runtime: written[runtime] for runtime in runtimes}


def graph_runners(files: dict, spec, threads) -> dict:
    from serve.graph import GraphRunner
    from serve.step_runtimes import RUNNERS

    return {runtime: GraphRunner(RUNNERS[runtime](path, threads), spec) for runtime, path in files.items()}


def time_graph(runner, spec, batch: int, labels) -> float:
    """Seconds for one call drawing batch images, after an untimed warm-up call at the same batch size."""
    from serve.graph import as_float32_uniforms
    from serve.sampling import uniforms

    u = as_float32_uniforms(uniforms(batch, *spec.shape, 0))
    runner(u, 1.0, labels=labels)
    start = time.perf_counter()
    runner(u, 1.0, labels=labels)
    return time.perf_counter() - start


def step_files(config, workdir: str, runtime: str) -> list[str]:
    """Where bench.sampling.step_fns exported the step model(s) for runtime: one for the seed, pixel and row for gated."""
    if config.architecture == "gated":
        return [os.path.join(workdir, part, f"step.{runtime}") for part in ("pixel", "row")]
    return [os.path.join(workdir, f"step.{runtime}")]


def peak_memory(mode: str, runtime: str, paths: list[str], spec, layout: dict, batch: int) -> dict:
    """Peak resident memory (MB) of a fresh process sampling batch images with the graph or the Python loop."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    request = {"mode": mode, "runtime": runtime, "paths": paths, "batch": batch, "layout": layout,
               "spec": [spec.height, spec.width, spec.channels, spec.levels, spec.num_classes]}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, root, json.dumps(request)], capture_output=True,
                          text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"sampling_mb": result["peak_mb"] - result["loaded_mb"]}
