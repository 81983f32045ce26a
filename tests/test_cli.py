"""train.py and generate.py end to end, and one clear error line for bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, assert_one_line_error
from PIL import Image

import generate
import train


def test_train_writes_a_complete_run(tiny_run):
    for name in ("model.keras", "config.json", "losses.csv", "losses.md", "losses.png"):
        assert os.path.isfile(os.path.join(tiny_run, name)), name
    with open(os.path.join(tiny_run, "config.json")) as f:
        config = json.load(f)
    assert config["model"]["num_layers"] == 2 and config["model"]["levels"] == 4
    with open(os.path.join(tiny_run, "losses.md")) as f:
        table = f.read()
    assert table.startswith("| epoch | train nats/image | train bits/dim | test nats/image | test bits/dim |")


def test_generate_writes_a_grid_png(tiny_run, tmp_path):
    out = tmp_path / "grid.png"
    assert generate.main(["--checkpoint", tiny_run, "--num-images", "6", "--out", str(out), "--no-progress"]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (2 * 28, 3 * 28) and picture.dtype == np.uint8  # ceil(sqrt(6)) = 3 columns
    assert set(np.unique(picture)) <= {0, 85, 170, 255}  # 4 levels scaled to 0..255


def test_same_seed_same_images(tiny_run, tmp_path):
    paths = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (5, 5, 6)):
        args = ["--checkpoint", tiny_run, "--num-images", "4", "--seed", str(seed), "--out", str(path), "--no-progress"]
        assert generate.main(args) == 0
    a, b, c = (np.asarray(Image.open(p)) for p in paths)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_generate_reads_the_seed_ini(tiny_run, tmp_path):
    ini = tmp_path / "gen.txt"
    ini.write_text(f"[model]\nload_path = {tiny_run}\n[images]\nno_images = 4\nimages_size = 28\n")
    out = tmp_path / "s.png"
    assert generate.main([str(ini), "--out", str(out), "--no-progress"]) == 0
    assert np.asarray(Image.open(out)).shape == (56, 56)


def run_script(script, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_a_real_process_exits_2_with_one_line_and_no_traceback():
    result = run_script("train.py", "--levels", "300")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "train.py: error: levels must be in 2..256, got 300"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent/config_train.txt"], "not found"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'"),
        (["--levels", "300"], "levels must be in 2..256"),
        (["--levels", "1"], "levels must be in 2..256"),
        (["--epochs", "0"], "epochs must be positive"),
    ],
)
def test_train_bad_input(args, message, capsys):
    assert_one_line_error(train.main, args, message, capsys)


def test_train_malformed_ini(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not [an ini\n")
    assert_one_line_error(train.main, [str(bad)], "not a valid INI file", capsys)


def test_train_unknown_ini_key(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("[network]\nno_layers = 2\nwidth = 3\n")
    assert_one_line_error(train.main, [str(bad)], "unknown key 'width'", capsys)


def test_generate_missing_checkpoint(tmp_path, capsys):
    assert_one_line_error(generate.main, ["--checkpoint", str(tmp_path / "nope")], "does not exist", capsys)


def test_generate_checkpoint_whose_config_does_not_match(tiny_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    with open(broken / "config.json") as f:
        config = json.load(f)
    config["model"]["levels"] = 8
    (broken / "config.json").write_text(json.dumps(config))
    out = tmp_path / "never.png"
    assert_one_line_error(generate.main, ["--checkpoint", str(broken), "--out", str(out)], "does not match", capsys)
    assert not out.exists()


def test_generate_bad_requests_write_nothing(tiny_run, tmp_path, capsys):
    out = tmp_path / "never.png"
    assert_one_line_error(generate.main, ["--checkpoint", tiny_run, "--num-images", "0", "--out", str(out)], "positive", capsys)
    assert_one_line_error(generate.main, ["--checkpoint", tiny_run, "--temperature", "0", "--out", str(out)], "temperature", capsys)
    assert_one_line_error(generate.main, ["--checkpoint", tiny_run, "--label", "3", "--out", str(out)], "not class-conditional", capsys)
    missing_dir = str(tmp_path / "missing" / "x.png")
    assert_one_line_error(generate.main, ["--checkpoint", tiny_run, "--out", missing_dir], "does not exist", capsys)
    assert not out.exists()
