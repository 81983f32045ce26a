"""The README, run: its bash and Python blocks in order in a fresh clone (offline MNIST, tiny sizes where they train)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import ROOT

# Size flags the README documents, appended where a command trains, samples or scores: the commands stay as written.
SIZES = {
    "train.py": ["--train-examples", "96", "--test-examples", "32", "--batch-size", "32"],
    "pixelcnn_tf.distribute.launch": ["--train-examples", "96", "--test-examples", "32", "--batch-size", "32"],
    "generate.py": ["--num-images", "4", "--no-progress"],
    "pixelcnn_tf.evaluate": ["--examples", "64"],
}
# Commands this test does not run, and why: each is CI's own job (.ci/run) or this suite itself.
NOT_RUN = {
    "pip install": "the packages are installed: .ci/run installs them",
    "npm ci": "web/node_modules is linked from the checkout (npm ci needs the registry)",
    "pytest": "the suite that runs this test",
}
TIMEOUT = 900


def readme_blocks() -> list[tuple[str, str]]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```(bash|python)\n(.*?)```", f.read(), re.S)


def commands(block: str) -> list[str]:
    """The block's commands in order: one per line, `a && b` split, `(cd web && npm ci)` kept whole."""
    out = []
    for line in block.splitlines():
        line = line.split(" # ")[0].strip()
        out += [part.strip() for part in re.split(r"&&(?![^(]*\))", line) if part.strip()]
    return out


def sized(command: str) -> list[str]:
    words = shlex.split(command)
    for name, flags in SIZES.items():
        if any(word.endswith(name) for word in words):
            return words + flags  # launch passes what follows its `--` to train.py
    return words


def skipped(command: str) -> str | None:
    return next((why for what, why in NOT_RUN.items() if what in command), None)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of the checkout's HEAD, web/node_modules linked in (it is not in git)."""
    path = tmp_path_factory.mktemp("readme") / "pixelcnn-tf"
    subprocess.run(["git", "clone", "-q", ROOT, str(path)], check=True, timeout=120)
    node_modules = os.path.join(ROOT, "web", "node_modules")
    if os.path.isdir(node_modules):
        os.symlink(node_modules, path / "web" / "node_modules")
    return path


def environment() -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CONFIG", "PIXELCNN_TF_FAULT"))}
    assert env.get("TFDS_DATA_DIR"), "conftest points TFDS_DATA_DIR at the prepared MNIST"
    return dict(env, TF_CPP_MIN_LOG_LEVEL="3")


def serve_web(words: list[str], cwd) -> None:
    """python -m serve.web serves until stopped: it must say where, then answer the page and the export."""
    process = subprocess.Popen(words + ["--port", "0"], cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving ") and " at http://127.0.0.1:" in line, line + process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "export/metadata.json", timeout=30) as response:
            assert response.status == 200
        with urllib.request.urlopen(url, timeout=30) as response:  # redirected to the page
            assert b"<html" in response.read().lower()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_every_readme_block_runs_in_order_in_a_fresh_clone(clone):
    blocks = readme_blocks()
    assert [kind for kind, _ in blocks].count("bash") >= 3 and any(kind == "python" for kind, _ in blocks)
    ran, started = [], time.monotonic()
    for kind, block in blocks:
        began = time.monotonic()
        if kind == "python":
            run_python_block(block, clone)
            ran.append(f"python block ({time.monotonic() - began:.0f} s)")
            continue
        for command in commands(block):
            if skipped(command):
                continue
            began, words = time.monotonic(), sized(command)
            if words[:3] in (["python3", "-m", "serve.web"], ["python", "-m", "serve.web"]):
                serve_web(words, clone)
            else:
                done = subprocess.run(words, cwd=clone, env=environment(), capture_output=True, text=True, timeout=TIMEOUT)
                assert done.returncode == 0, f"README command failed: {command}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            ran.append(f"{command} ({time.monotonic() - began:.0f} s)")
    print(f"ran {len(ran)} README commands in {time.monotonic() - started:.0f} s: {ran}")
    assert os.path.isfile(clone / "sample.png") and os.path.isfile(clone / "sampling.gif")
    assert os.path.isfile(clone / "exports" / "quick" / "metadata.json")
    assert os.path.isfile(clone / "models" / "quick_2workers" / "model.keras")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status.split() == [], f"the README's commands leave files git does not ignore: {status}"


def run_python_block(block: str, clone) -> None:
    """A Python block as written, then again with each other backend its comment names (numpy: the step model)."""
    backends = ["onnx"] + re.findall(r'"(\w+)"', block.split("backend=", 1)[1].split("\n", 1)[0])[1:]
    assert "numpy" in backends, backends
    for backend in dict.fromkeys(backends):
        if backend not in ("onnx", "tflite", "numpy"):
            continue  # quantized variants exist only in an export made with --tflite-quantize
        source = block.replace('backend="onnx"', f'backend="{backend}"') + "\nassert nll.shape == (16,) and (nll > 0).all()\n"
        done = subprocess.run([sys.executable, "-c", source], cwd=clone, env=environment(), capture_output=True,
                              text=True, timeout=TIMEOUT)
        assert done.returncode == 0, f"README Python block failed with backend {backend}:\n{done.stderr[-3000:]}"
