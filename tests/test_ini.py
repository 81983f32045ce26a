"""The seed project's INI configs: values map onto our configs, unknown keys and bad files are clear errors."""
from __future__ import annotations

import os

import pytest

from pixelcnn_tf.config import TrainConfig, apply_overrides
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.ini import read_generate_ini, read_train_ini

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_shipped_train_config_is_the_seed():
    config = apply_overrides(TrainConfig(), read_train_ini(os.path.join(ROOT, "config", "config_train.txt")))
    assert (config.model.num_layers, config.model.kernel_size, config.model.filters) == (8, 7, 64)
    assert (config.batch_size, config.epochs, config.dataset, config.save_path) == (144, 25, "mnist", "models")
    assert config.data_dir is None  # empty path: TFDS_DATA_DIR or tfds's default


def test_shipped_generate_config():
    values = read_generate_ini(os.path.join(ROOT, "config", "config_generate.txt"))
    assert values == {"load_path": "models", "num_images": 144, "image_size": 28}


def test_values_are_parsed(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("[data]\npath = /data\nbatch_size = 32\n[network]\nno_layers = 3\nlevels = 2\nlr_schedule = cosine\n")
    assert read_train_ini(str(path)) == {
        "model": {"num_layers": 3, "levels": 2}, "data_dir": "/data", "batch_size": 32, "lr_schedule": "cosine"}


def test_distribution_keys(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("[network]\nstrategy = multiworker\ntensorboard = no\n")
    assert read_train_ini(str(path)) == {"model": {}, "strategy": "multiworker", "tensorboard": False}
    path.write_text("[network]\ntensorboard = maybe\n")
    with pytest.raises(UserError, match="tensorboard = 'maybe' is not a valid boolean \\(yes/no\\)"):
        read_train_ini(str(path))
    path.write_text("[network]\nstrategy = cluster\n")
    with pytest.raises(UserError, match="unknown strategy 'cluster'"):
        apply_overrides(TrainConfig(), read_train_ini(str(path))).validate()


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("[network]\nno_layers = 3\ndropout = 0.5\n")
    with pytest.raises(UserError, match="unknown key 'dropout' in \\[network\\]"):
        read_train_ini(str(path))


def test_unknown_section_is_named(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(UserError, match="unknown section \\[optimizer\\]"):
        read_train_ini(str(path))


def test_malformed_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("no_layers = 3\n")
    with pytest.raises(UserError, match="not a valid INI file"):
        read_train_ini(str(path))


def test_bad_value_type(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("[network]\nno_layers = many\n")
    with pytest.raises(UserError, match="no_layers = 'many' is not a valid int"):
        read_train_ini(str(path))


def test_missing_file():
    with pytest.raises(UserError, match="not found"):
        read_train_ini("/nonexistent/config_train.txt")
