"""Bad input everywhere: one 'prog: error: ...' line, exit 2, nothing written; serve raises SamplingError/ServeError.

One table of CLI cases (train.py, generate.py, python -m export, python -m pixelcnn_tf.evaluate), each run in a
subprocess inside a workspace whose every file is compared before and after, and one table of serve API calls.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from serve import ModelSpec, Sampler, SamplingError, ServeError
from tests.conftest import ROOT

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")
TINY = ["--num-layers", "1", "--filters", "4", "--kernel-size", "3", "--levels", "4"]
READ_ONLY = "ro"  # a read-only tmpfs in the workspace, where mount works (root); those cases skip elsewhere

TRAIN, GENERATE, EXPORT, EVALUATE = "train.py", "generate.py", "export", "pixelcnn_tf.evaluate"
PROGS = {TRAIN: "train.py", GENERATE: "generate.py", EXPORT: "python -m export", EVALUATE: "python -m pixelcnn_tf.evaluate"}

# (command, arguments, a fragment of the error line). {ws}: the workspace; runs in it: good (the tiny trained run),
# trunc (model.keras cut short), random (random bytes), mismatch (config.json says 16 filters).
CLI_CASES = [
    # train.py: values
    (TRAIN, ["--levels", "300"], "levels must be in 2..256, got 300"),
    (TRAIN, ["--levels", "1"], "levels must be in 2..256, got 1"),
    (TRAIN, ["--epochs", "0"], "epochs must be positive, got 0"),
    (TRAIN, ["--output", "logistic_mixture"], "logistic_mixture needs the number of mixture components (--mixtures K)"),
    (TRAIN, ["--output", "logistic_mixture", "--mixtures", "0"], "mixtures (at most levels, 256) must be an integer in 1..256, got 0"),
    (TRAIN, ["--output", "logistic_mixture", "--mixtures", "3", "--levels", "2"], "mixtures (at most levels, 2) must be an integer in 1..2, got 3"),
    (TRAIN, ["--mixtures", "4"], "softmax takes no mixture components (got mixtures=4); they are for logistic_mixture"),
    (TRAIN, ["--output", "beta"], "argument --output: invalid choice: 'beta'"),
    (TRAIN, ["--epochs", "-3"], "epochs must be positive, got -3"),
    (TRAIN, ["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (TRAIN, ["--batch-size", "0"], "batch_size must be positive"),
    (TRAIN, ["--learning-rate", "0"], "learning_rate must be a positive number"),
    (TRAIN, ["--learning-rate", "nan"], "learning_rate must be a positive number, got nan"),
    (TRAIN, ["--learning-rate", "inf"], "learning_rate must be a positive number, got inf"),
    (TRAIN, ["--filters", "0"], "filters (0) must be at least the image channels"),
    (TRAIN, ["--kernel-size", "4"], "kernel_size must be a positive odd number, got 4"),
    (TRAIN, ["--num-layers", "0"], "num_layers must be at least 1"),
    (TRAIN, ["--dataset", "svhn"], "unknown dataset 'svhn'"),
    (TRAIN, ["--architecture", "transformer"], "invalid choice: 'transformer'"),
    (TRAIN, ["--precision", "float8"], "invalid choice: 'float8'"),
    (TRAIN, ["--lr-schedule", "step"], "invalid choice: 'step'"),
    (TRAIN, ["--ema-decay", "1"], "ema_decay must be in [0, 1) (0: no weight averaging), got 1.0"),
    (TRAIN, ["--ema-decay", "-0.5"], "ema_decay must be in [0, 1)"),
    (TRAIN, ["--ema-decay", "nan"], "ema_decay must be in [0, 1) (0: no weight averaging), got nan"),
    (TRAIN, ["--preset", "huge"], "invalid choice: 'huge'"),
    (TRAIN, ["--train-examples", "0"], "train_examples must be positive"),
    (TRAIN, ["--test-examples", "-1"], "test_examples must be positive"),
    (TRAIN, ["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (TRAIN, ["--filters", "100000"], "GiB to train"),
    (TRAIN, ["--batch-size", "100000000"], "GiB to train"),
    # train.py: run names and paths
    (TRAIN, ["--run-name", "../../x"], "run name '../../x' must be a single folder name"),
    (TRAIN, ["--run-name", "/tmp/absolute"], "run name '/tmp/absolute' must be a single folder name"),
    (TRAIN, ["--run-name", ".."], "run name '..' must be a single folder name"),
    (TRAIN, ["--run-name", ""], "run name '' must be a single folder name"),
    (TRAIN, [*TINY, "--save-path", "{ws}/afile/models"], "is a file, not a folder"),
    (TRAIN, [*TINY, "--save-path", "/proc/models"], "cannot write the run folder /proc/models"),
    (TRAIN, [*TINY, "--save-path", f"{{ws}}/{READ_ONLY}/models"], "Read-only file system"),
    (TRAIN, [*TINY, "--save-path", "{ws}", "--run-name", "afile"], "is a file; choose another --run-name"),
    (TRAIN, [*TINY, "--save-path", "{ws}", "--run-name", "foreign"], "is not a run folder (it holds notes.txt)"),
    (TRAIN, ["--num-layers", "2", "--filters", "16", "--kernel-size", "3", "--levels", "4", "--save-path", "{ws}",
             "--run-name", "good"], "holds a run of another model (filters 8 -> 16)"),
    (TRAIN, ["--save-path", "{ws}", "--run-name", "trunc", "--levels", "4"], "model.keras is damaged"),
    # train.py: INI files
    (TRAIN, ["{ws}/missing.txt"], "not found"),
    (TRAIN, ["{ws}/latin1.txt"], "is not UTF-8 text"),
    (TRAIN, ["{ws}/malformed.txt"], "not a valid INI file"),
    (TRAIN, ["{ws}/unknown_key.txt"], "unknown key 'width'"),
    (TRAIN, ["{ws}/bad_int.txt"], "no_layers = 'two' is not a valid int"),
    (TRAIN, ["{ws}/adir"], "is a directory"),
    # evaluate
    (EVALUATE, ["--checkpoint", "{ws}/nope"], "does not exist"),
    (EVALUATE, ["--checkpoint", "{ws}/trunc"], "trunc/model.keras is damaged"),
    (EVALUATE, ["--checkpoint", "{ws}/random"], "random/model.keras is damaged"),
    (EVALUATE, ["--checkpoint", "{ws}/mismatch"], "does not match its config.json: filters 8 -> 16"),
    (EVALUATE, ["--checkpoint", "{ws}/afile"], "is not a .keras checkpoint"),
    (EVALUATE, ["--checkpoint", "{ws}/adir"], "no checkpoint (model.keras + config.json)"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--out", "{ws}/adir"], "--out {ws}/adir is a folder"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--out", "{ws}/missing/r.json"], "does not exist"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--out", f"{{ws}}/{READ_ONLY}/r.json"], "is not writable: Read-only file system"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--out", "/proc/r.json"], "is not writable"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--batch-size", "0"], "--batch-size must be positive"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--examples", "0"], "--examples must be positive"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--split", ""], "--split must not be empty"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--batch-size", "x"], "invalid int value: 'x'"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--weights", "raw"], "good was trained without --ema-decay"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--weights", "best"], "invalid choice: 'best'"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--backend", "onnx"], "scores an export directory"),
    (EVALUATE, ["--checkpoint", PRETRAINED, "--weights", "raw"], "holds only its shipped weights"),
    (EVALUATE, ["--checkpoint", PRETRAINED, "--backend", "tflite_int8"], "unknown backend 'tflite_int8'"),
    (EVALUATE, ["--checkpoint", PRETRAINED, "--backend", "bogus"], "argument --backend: invalid choice: 'bogus'"),
    (EVALUATE, ["--checkpoint", "{ws}/good", "--backend", "numpy"], "scores an export directory"),
    (EVALUATE, ["--checkpoint", "{ws}/v3_export"], "format_version 3; this serve reads 2: re-export the checkpoint with `python -m export"),
    # export
    (EXPORT, ["--checkpoint", "{ws}/trunc", "--out", "{ws}/e"], "trunc/model.keras is damaged"),
    (EXPORT, ["--checkpoint", "{ws}/random", "--out", "{ws}/e"], "random/model.keras is damaged"),
    (EXPORT, ["--checkpoint", "{ws}/nope", "--out", "{ws}/e"], "does not exist"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/afile"], "already exists; pass --overwrite"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/afile", "--overwrite"], "is not an export directory"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/old_export"], "already exists; pass --overwrite"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/afile/e"], "afile is not a folder"),
    (EXPORT, ["--checkpoint", "{ws}/trunc", "--out", "{ws}/missing/e"], "trunc/model.keras is damaged"),  # missing/ not made
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "/proc/e"], "is not writable"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", f"{{ws}}/{READ_ONLY}/e"], "Read-only file system"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/e", "--tflite-quantize", "int4"], "unknown quantization int4"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/e", "--parity-images", "0"], "must be a positive integer"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/e", "--calibration-images", "-2"], "must be a positive integer"),
    (EXPORT, ["--checkpoint", "{ws}/good"], "the following arguments are required: --out"),
    (EXPORT, ["--checkpoint", "{ws}/good", "--out", "{ws}/e", "--weights", "raw"], "was trained without --ema-decay"),
    # generate
    (GENERATE, ["--checkpoint", "{ws}/good", "--seed", "-1", "--out", "{ws}/s.png"], "seed must be an integer >= 0, got -1"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--num-images", "0", "--out", "{ws}/s.png"], "--num-images must be positive"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--num-images", "1000000", "--out", "{ws}/s.png"], "is more than 100000"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--temperature", "0", "--out", "{ws}/s.png"], "temperature must be a positive"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--temperature", "nan", "--out", "{ws}/s.png"], "temperature must be a positive"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--temperature", "-1", "--out", "{ws}/s.png"], "temperature must be a positive"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--batch-size", "0", "--out", "{ws}/s.png"], "batch_size must be a positive"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--label", "abc", "--out", "{ws}/s.png"], "this model is not class-conditional"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--backend", "onnx", "--out", "{ws}/s.png"], "needs an export directory"),
    (GENERATE, ["--checkpoint", "{ws}/trunc", "--out", "{ws}/s.png"], "trunc/model.keras is damaged"),
    (GENERATE, ["--checkpoint", "{ws}/random", "--out", "{ws}/s.png"], "random/model.keras is damaged"),
    (GENERATE, ["--checkpoint", "{ws}/mismatch", "--out", "{ws}/s.png"], "does not match its config.json"),
    (GENERATE, ["--checkpoint", "{ws}/nope", "--out", "{ws}/s.png"], "does not exist"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--out", "{ws}/s.jpg"], "--out must name a .png file"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--out", "{ws}/adir.png"], "is a folder; name a file"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--out", "{ws}/missing/s.png"], "does not exist"),
    (GENERATE, ["--checkpoint", "{ws}/good", "--out", f"{{ws}}/{READ_ONLY}/s.png"], "Read-only file system"),
    (GENERATE, ["{ws}/latin1.txt", "--out", "{ws}/s.png"], "is not UTF-8 text"),
    (GENERATE, ["--checkpoint", PRETRAINED, "--label", "3", "--out", "{ws}/s.png", "--no-progress"], "not class-conditional"),
    (GENERATE, ["--checkpoint", PRETRAINED, "--backend", "tflite_int8", "--out", "{ws}/s.png"], "unknown backend 'tflite_int8'"),
    (GENERATE, ["--checkpoint", PRETRAINED, "--backend", "bogus", "--out", "{ws}/s.png"], "argument --backend: invalid choice: 'bogus'"),
    (GENERATE, ["--checkpoint", "{ws}/v3_export", "--out", "{ws}/s.png"], "format_version 3; this serve reads 2: re-export"),
    (GENERATE, ["--seed", "x"], "invalid int value: 'x'"),
]


def make_run(run_dir) -> None:
    """A run folder as training leaves it after one epoch, without training: untrained weights, the epoch stamp."""
    from pixelcnn_tf.config import ModelConfig, TrainConfig, save_config, to_dict
    from pixelcnn_tf.model import build_model
    from pixelcnn_tf.run.folder import MODEL_FILE, write_checkpoint

    config = TrainConfig(model=ModelConfig(num_layers=2, filters=8, kernel_size=3, levels=4), epochs=1, precision="float32")
    os.makedirs(run_dir)
    save_config(config, str(run_dir))
    write_checkpoint(build_model(config.model), os.path.join(run_dir, MODEL_FILE), {"epoch": 1, "model": to_dict(config.model)})


def make_workspace(root) -> None:
    make_run(root / "good")
    for name in ("trunc", "random", "mismatch"):
        shutil.copytree(root / "good", root / name)
    model = (root / "good" / "model.keras").read_bytes()
    (root / "trunc" / "model.keras").write_bytes(model[: len(model) // 2])
    (root / "random" / "model.keras").write_bytes(np.random.default_rng(0).bytes(len(model)))
    config = json.loads((root / "good" / "config.json").read_text())
    config["model"]["filters"] = 16
    (root / "mismatch" / "config.json").write_text(json.dumps(config))
    (root / "afile").write_text("not a folder\n")
    (root / "adir").mkdir()
    (root / "adir.png").mkdir()
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("my notes\n")
    (root / "old_export").mkdir()
    (root / "old_export" / "metadata.json").write_text("{}\n")
    (root / "v3_export").mkdir()  # an export of a manifest version this code does not know
    meta = json.loads(open(os.path.join(PRETRAINED, "metadata.json")).read()) | {"format_version": 3}
    (root / "v3_export" / "metadata.json").write_text(json.dumps(meta))
    (root / "latin1.txt").write_bytes(b"[network]\nsave_path = caf\xe9\n")
    (root / "malformed.txt").write_text("this is not [an ini\n")
    (root / "unknown_key.txt").write_text("[network]\nwidth = 3\n")
    (root / "bad_int.txt").write_text("[network]\nno_layers = two\n")


def snapshot(root) -> dict:
    """Every file and folder under root with its size and modification time."""
    out = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            stat = os.lstat(path)
            out[os.path.relpath(path, root)] = (stat.st_size if name in files else None, stat.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    make_workspace(root)
    read_only = root / READ_ONLY
    read_only.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(read_only)], capture_output=True).returncode == 0
    yield root, mounted
    if mounted:
        subprocess.run(["umount", str(read_only)], check=False)


def run(command: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    """The command as a user types it, from the workspace (PYTHONPATH: `-m export` resolves in the checkout)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.pop("PIXELCNN_TF_FAULT", None)
    entry = [os.path.join(ROOT, command)] if command.endswith(".py") else ["-m", command]
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


@pytest.mark.parametrize("command, args, message", CLI_CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CLI_CASES)])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(workspace, command, args, message):
    root, mounted = workspace
    if any(f"{{ws}}/{READ_ONLY}" in arg for arg in args) and not mounted:
        pytest.skip("needs a read-only mount (mount -t tmpfs -o ro)")
    args = [arg.replace("{ws}", str(root)) for arg in args]
    message = message.replace("{ws}", str(root))
    before = snapshot(root)
    result = run(command, args, cwd=root)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{PROGS[command]}: error: "), lines
    assert message in lines[0], lines[0]
    assert snapshot(root) == before, "a refused command changed the workspace"


def test_the_table_is_broad():
    assert len(CLI_CASES) + len(API_CASES) >= 60
    assert {command for command, _, _ in CLI_CASES} == {TRAIN, GENERATE, EXPORT, EVALUATE}


# serve API: a numpy logits function stands in for a backend (the checks run before any model call).
CONDITIONAL = ModelSpec(4, 4, 1, 2, num_classes=3)
UNCONDITIONAL = ModelSpec(4, 4, 1, 2)


def uniform_logits(images, labels):
    return np.zeros(images.shape + (2,), np.float32)


def sampler(spec=CONDITIONAL) -> Sampler:
    return Sampler(uniform_logits, spec, "numpy-test")


API_CASES = [
    ("seed -1", lambda: sampler().sample(2, seed=-1, labels=0), SamplingError, "seed must be an integer >= 0, got -1"),
    ("seed string", lambda: sampler().sample(2, seed="3", labels=0), SamplingError, "seed must be an integer >= 0, got '3'"),
    ("seed float", lambda: sampler().sample(2, seed=1.5, labels=0), SamplingError, "seed must be an integer >= 0, got 1.5"),
    ("seed bool", lambda: sampler().sample(2, seed=True, labels=0), SamplingError, "seed must be an integer >= 0, got True"),
    ("labels too few", lambda: sampler().sample(3, labels=[0, 1]), SamplingError, "labels must be one class id or 3 (one per image), got 2"),
    ("labels too many", lambda: sampler().sample(2, labels=[0, 1, 2]), SamplingError, "one class id or 2 (one per image), got 3"),
    ("labels string", lambda: sampler().sample(2, labels="a"), SamplingError, "labels must be integer class ids"),
    ("labels strings", lambda: sampler().sample(2, labels=["a", "b"]), SamplingError, "labels must be integer class ids"),
    ("labels nan", lambda: sampler().sample(2, labels=float("nan")), SamplingError, "labels must be whole class ids, got nan"),
    ("labels 3.7", lambda: sampler().sample(2, labels=3.7), SamplingError, "labels must be whole class ids, got 3.7"),
    ("labels 1.5 list", lambda: sampler().sample(2, labels=[0, 1.5]), SamplingError, "labels must be whole class ids"),
    ("labels bool", lambda: sampler().sample(2, labels=True), SamplingError, "labels must be integer class ids"),
    ("labels 2-D", lambda: sampler().sample(1, labels=[[0]]), SamplingError, "labels must be integer class ids"),
    ("labels out of range", lambda: sampler().sample(2, labels=3), SamplingError, "labels must be in 0..2, got [3]"),
    ("labels negative", lambda: sampler().sample(2, labels=[-1, 0]), SamplingError, "labels must be in 0..2, got [-1, 0]"),
    ("labels missing", lambda: sampler().sample(2), SamplingError, "this model is class-conditional"),
    ("labels unconditional", lambda: sampler(UNCONDITIONAL).sample(2, labels=0), SamplingError, "not class-conditional"),
    ("num_images bool", lambda: sampler().sample(True, labels=0), SamplingError, "num_images must be a positive integer, got True"),
    ("num_images string", lambda: sampler().sample("3", labels=0), SamplingError, "num_images must be a positive integer, got '3'"),
    ("num_images float", lambda: sampler().sample(2.0, labels=0), SamplingError, "num_images must be a positive integer, got 2.0"),
    ("num_images 0", lambda: sampler().sample(0, labels=0), SamplingError, "num_images must be a positive integer, got 0"),
    ("temperature 0", lambda: sampler().sample(2, temperature=0, labels=0), SamplingError, "temperature must be a positive number"),
    ("temperature string", lambda: sampler().sample(2, temperature="1", labels=0), SamplingError, "temperature must be a positive number, got '1'"),
    ("temperature nan", lambda: sampler().sample(2, temperature=float("nan"), labels=0), SamplingError, "temperature must be a positive"),
    ("temperature inf", lambda: sampler().sample(2, temperature=float("inf"), labels=0), SamplingError, "temperature must be a positive"),
    ("batch_size 0", lambda: sampler().sample(2, batch_size=0, labels=0), SamplingError, "batch_size must be a positive integer, got 0"),
    ("batch_size string", lambda: sampler().sample(2, batch_size="2", labels=0), SamplingError, "batch_size must be a positive integer, got '2'"),
    ("nll shape", lambda: sampler().nll(np.zeros((2, 5, 4, 1)), labels=0), SamplingError, "images must have shape (N, 4, 4, 1)"),
    ("nll fractions", lambda: sampler().nll(np.full((1, 4, 4, 1), 0.5), labels=0), SamplingError, "integer level indices in 0..1"),
    ("nll batch string", lambda: sampler().nll(np.zeros((1, 4, 4, 1)), labels=0, batch_size="x"), SamplingError, "batch_size must be a positive integer"),
    ("load missing", lambda: Sampler.load("/nonexistent/export"), ServeError, "does not exist"),
    ("load backend", lambda: Sampler.load(PRETRAINED, "bogus"), ServeError, "unknown backend 'bogus'"),
    ("load threads", lambda: Sampler.load(PRETRAINED, "onnx", num_threads=0), ServeError, "num_threads must be a positive integer"),
    ("load sampler", lambda: Sampler.load(PRETRAINED, "onnx", sampler="fast"), ServeError, "sampler must be one of graph, cached, naive"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES])
def test_serve_bad_arguments_raise_its_own_errors(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert type(raised.value) is error and message in str(raised.value), str(raised.value)


def test_an_underflowing_temperature_draws_the_argmax_never_nan():
    def peaked(images, labels):
        logits = np.zeros(images.shape + (2,), np.float32)
        logits[..., 1] = 0.5  # level 1 is the more likely everywhere
        return logits

    images = Sampler(peaked, UNCONDITIONAL, "numpy-test").sample(3, seed=1, temperature=5e-324)
    assert images.shape == (3, 4, 4, 1) and np.all(images == 1)


@pytest.mark.parametrize("temperature", [1e300, 1e-300])
def test_an_extreme_temperature_draws_what_the_loop_draws_without_a_warning(temperature):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning (float32 overflow in the cast) fails the test
        graph = Sampler.load(PRETRAINED, "onnx").sample(1, seed=3, temperature=temperature)
        loop = Sampler.load(PRETRAINED, "numpy").sample(1, seed=3, temperature=temperature)
    np.testing.assert_array_equal(graph, loop)
