"""Bad input is answered before heavy imports: generate.py's model checks from config.json, train/export flags without numpy."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT, run_without_tensorflow

HEAVY = ("numpy", "tensorflow", "keras", "onnxruntime", "tf2onnx")


def make_run(run_dir, num_classes: int) -> None:
    """A run folder as one epoch leaves it (untrained weights), unconditional or with num_classes labels."""
    from pixelcnn_tf.config import ModelConfig, TrainConfig, save_config, to_dict
    from pixelcnn_tf.model import build_model
    from pixelcnn_tf.run.folder import MODEL_FILE, write_checkpoint

    model = ModelConfig(num_layers=1, filters=4, kernel_size=3, levels=2, num_classes=num_classes)
    config = TrainConfig(model=model, epochs=1, precision="float32")
    os.makedirs(run_dir)
    save_config(config, str(run_dir))
    write_checkpoint(build_model(config.model), os.path.join(run_dir, MODEL_FILE), {"epoch": 1, "model": to_dict(config.model)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fail_fast")
    make_run(root / "plain", 0)
    make_run(root / "labelled", 10)
    (root / "size32.txt").write_text(f"[model]\nload_path = {root / 'plain'}\n[images]\nimages_size = 32\n")
    return root


@pytest.mark.parametrize("run, flags, message", [
    ("plain", ["--label", "3"], "not class-conditional"),
    ("labelled", ["--label", "10"], "--label must be in 0..9, got 10"),
    ("labelled", [], "this model is class-conditional: pass --label 0..9"),
    ("labelled", ["--label", "dog"], "--label 'dog' is not a class of this model; its classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (or "
                                     "ids 0..9, or all)"),
    ("plain", ["--complete", "test", "--keep-rows", "29"], "at most the image height 28"),
    ("plain", ["{root}/size32.txt"], "images_size = 32 but the checkpoint draws images 28 pixels high"),
    ("plain", ["--backend", "onnx"], "`python -m export --checkpoint {root}/plain --out exports/plain`"),
])
def test_generate_checks_a_keras_checkpoint_before_tensorflow(runs, tmp_path, run, flags, message):
    argv = ["--checkpoint", str(runs / run), "--out", str(tmp_path / "s.png"), "--no-progress"]
    argv += [flag.replace("{root}", str(runs)) for flag in flags]
    script = "import sys, generate\nprint('exit', generate.main(sys.argv[1:]))\n"
    done = run_without_tensorflow(script, *argv, blocked=("tensorflow", "keras", "tf_keras"))  # an import would fail
    assert done.returncode == 0 and done.stdout.strip() == "exit 2", done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generate.py: error:"), lines
    assert message.replace("{root}", str(runs)) in lines[0]
    assert not os.path.exists(tmp_path / "s.png")


@pytest.mark.parametrize("command", [["train.py", "--epochs", "0"], ["train.py", "--architecture", "resnet"],
                                     ["-m", "export", "--out", "x", "--parity-images", "0"]])
def test_train_and_export_refuse_bad_flags_without_heavy_imports(command):
    entry = [os.path.join(ROOT, command[0]), *command[1:]] if command[0].endswith(".py") else command
    done = subprocess.run([sys.executable, "-X", "importtime", *entry], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if line.startswith("import time:")}
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and ": error: " in errors[0], errors
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
