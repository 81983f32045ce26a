"""Image-folder datasets without TensorFlow: layout, labels, shape and channels, every refusal, the scan cache, the
CIFAR-10 archive's atomic extraction, and generate.py --complete reading any picture size."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from helpers import ROOT, assert_one_line_error, run_without_tensorflow
from PIL import Image

from pixelcnn_tf.datasets import cifar_jpeg, folders
from pixelcnn_tf.datasets.catalog import dataset_spec
from pixelcnn_tf.errors import UserError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder (scans, extracted archives): nothing is written to the user's."""
    path = tmp_path / "cache"
    monkeypatch.setenv("PIXELCNN_CACHE_DIR", str(path))
    return path


def write_image(path, size=(10, 12), mode="RGB", seed=0, fmt=None):
    """A random picture of size (width, height) in mode, saved by extension (PNG or JPEG)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, fmt)
    return str(path)


def make_folder(root, classes=("cat", "dog"), per_split=(3, 2), mode="RGB", size=(10, 12), ext="png"):
    """root/{train,test}/<class>/N.ext; classes=None: images directly in train/ and test/."""
    for split, count in zip(("train", "test"), per_split):
        for c, name in enumerate(classes or [""]):
            for i in range(count):
                write_image(os.path.join(root, split, name, f"{i}.{ext}"), size, mode, seed=100 * c + i)
    return str(root)


def test_rgb_folder_with_classes(tmp_path):
    root = make_folder(tmp_path / "pets", classes=("dog", "cat", "bird"))
    assert dataset_spec("folder", root) == dataset_spec("folder", root)  # cached scan: the same answer
    spec = dataset_spec("folder", root)
    assert (spec.height, spec.width, spec.channels, spec.num_classes) == (12, 10, 3, 3)
    assert spec.class_names == ("bird", "cat", "dog")  # exports carry them: the page's class buttons, --label NAME
    scan = folders.scan_folder(root)
    assert scan.classes == ("bird", "cat", "dog")  # sorted folder names -> ids 0, 1, 2
    paths, labels = folders.split_files(scan, "test")
    assert sorted(paths) == sorted(str(p) for p in (tmp_path / "pets" / "test").glob("*/*.png"))
    assert all(scan.classes[label] == os.path.basename(os.path.dirname(path)) for path, label in zip(paths, labels))
    assert labels != sorted(labels)  # a fixed shuffle, not one class after another...
    assert folders.split_files(scan, "test") == (paths, labels)  # ...the same in every run


def test_grey_folder_without_classes_is_one_class(tmp_path):
    root = make_folder(tmp_path / "digits", classes=None, mode="L", size=(16, 16), ext="jpg")
    spec = dataset_spec("folder", root)
    assert (spec.height, spec.width, spec.channels, spec.num_classes) == (16, 16, 1, 1)
    assert set(folders.scan_folder(root).labels["train"]) == {0}


def test_one_colour_image_makes_the_folder_rgb_and_image_size_sets_the_shape(tmp_path):
    root = make_folder(tmp_path / "f", mode="L", size=(20, 14))
    write_image(tmp_path / "f" / "test" / "cat" / "colour.png", (30, 40), "RGB")
    spec = dataset_spec("folder", root, image_size=8)
    assert (spec.height, spec.width, spec.channels) == (8, 8, 3)


def refuse(root, pattern, **flags):
    with pytest.raises(UserError, match=pattern):
        dataset_spec("folder", root and str(root), **flags)


def test_refusals_name_the_split_class_or_file(tmp_path):
    refuse(tmp_path / "nowhere", "does not exist")
    refuse(None, "needs --data-dir")
    (tmp_path / "a" / "train" / "cat").mkdir(parents=True)
    write_image(tmp_path / "a" / "train" / "cat" / "0.png")
    refuse(tmp_path / "a", "has no test/ folder")
    write_image(tmp_path / "a" / "test" / "cat" / "0.png")
    (tmp_path / "a" / "train" / "dog").mkdir()
    refuse(tmp_path / "a", r"class folder .*train/dog holds no PNG or JPEG")
    write_image(tmp_path / "a" / "train" / "dog" / "0.png")
    write_image(tmp_path / "a" / "test" / "emu" / "0.png")
    refuse(tmp_path / "a", "class 'emu' is in .*test but not in .*train")


def test_mixed_sizes_need_image_size(tmp_path):
    root = make_folder(tmp_path / "f")
    write_image(tmp_path / "f" / "train" / "dog" / "big.png", (40, 30))
    refuse(root, r"differ in size \(.*train/dog/big.png 40x30\); pass --image-size N")
    assert dataset_spec("folder", root, image_size=6).height == 6
    refuse(root, "must be positive", image_size=0)


@pytest.mark.parametrize("damage, pattern", [
    ("truncate", r"cannot read image .*train/cat/1.jpg: Truncated File Read"),
    ("garbage", r"cannot read image .*train/cat/1.jpg: cannot identify image file"),
    ("gif", r"image .*train/cat/1.jpg is a GIF file, not PNG or JPEG"),
    ("cmyk", r"image .*train/cat/1.jpg has colour mode CMYK"),
])  # fmt: skip
def test_a_damaged_or_unusable_image_is_named(tmp_path, damage, pattern):
    root = make_folder(tmp_path / "f", ext="jpg")
    path = tmp_path / "f" / "train" / "cat" / "1.jpg"
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])  # Image.open alone accepts this file: only decoding finds it
    elif damage == "garbage":
        path.write_bytes(b"not an image at all")
    elif damage == "gif":
        write_image(path, fmt="GIF")
    else:
        Image.new("CMYK", (10, 12)).save(path, "JPEG")
    refuse(root, pattern)


def test_split_layouts_must_agree(tmp_path):
    root = make_folder(tmp_path / "f")
    write_image(tmp_path / "f" / "train" / "stray.png")
    refuse(root, r"train/stray.png lies beside the class folders")
    root = make_folder(tmp_path / "g", classes=None)
    write_image(tmp_path / "g" / "test" / "cat" / "0.png")
    os.remove(tmp_path / "g" / "test" / "0.png"), os.remove(tmp_path / "g" / "test" / "1.png")
    refuse(root, "test/ has class folders but the other split has none")


def test_the_scan_cache_is_used_until_a_file_changes(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "f", ext="jpg")
    folders.scan_folder(root)
    folders._SCANS.clear()  # a new process: only the cache file remains
    monkeypatch.setattr(folders, "_inspect", lambda path: pytest.fail("an unchanged folder was decoded again"))
    assert folders.scan_folder(root).channels == 3
    monkeypatch.undo()
    monkeypatch.setenv("PIXELCNN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "f" / "test" / "dog" / "0.jpg"
    path.write_bytes(path.read_bytes()[:-200])  # a file damaged after the cached scan is found
    refuse(root, r"test/dog/0.jpg: Truncated File Read")


def test_train_py_refuses_a_bad_folder_in_one_line_without_tensorflow(tmp_path):
    root = make_folder(tmp_path / "f")
    write_image(tmp_path / "f" / "test" / "emu" / "0.png")
    script = "import sys, train; sys.exit(train.main(sys.argv[1:]))"
    result = run_without_tensorflow(script, "--dataset", "folder", "--data-dir", root, "--save-path", str(tmp_path / "m"),
                                    blocked=("tensorflow", "keras"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"train.py: error: class 'emu' is in {root}/test but not in {root}/train"]
    assert not (tmp_path / "m").exists()


def test_train_py_folder_flags_and_ini(tmp_path, capsys):
    import train

    root = make_folder(tmp_path / "f", classes=None, mode="L", size=(9, 9))
    assert_one_line_error(train.main, ["--dataset", "folder", "--data-dir", root, "--conditional"], "needs class folders", capsys)
    assert_one_line_error(train.main, ["--dataset", "mnist", "--image-size", "8"], "applies to image-folder datasets", capsys)
    ini = tmp_path / "train.ini"
    ini.write_text(f"[data]\ndata_name = folder\npath = {os.path.relpath(root)}\nimage_size = 7\n")
    config = train.build_config(train.parse_args([str(ini), "--num-layers", "2"]))
    m = config.model
    assert (m.height, m.width, m.channels, m.num_classes, config.data_dir) == (7, 7, 1, 0, root)


def tiny_archive(tmp_path, name="cifar10_jpeg.tar.gz"):
    source = tmp_path / "source"
    make_folder(source / "cifar10_jpeg", ext="jpg", size=(32, 32))
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source / "cifar10_jpeg", arcname="cifar10_jpeg")
    return str(path)


def test_the_archive_is_extracted_once_into_the_cache(tmp_path, cache, capsys):
    archive = tiny_archive(tmp_path)
    root = cifar_jpeg.extracted_root(archive)
    assert root.startswith(str(cache)) and "extracting" in capsys.readouterr().err
    assert cifar_jpeg.extracted_root(os.path.dirname(archive)) == root  # the folder holding it works too
    assert capsys.readouterr().err == ""  # not extracted again
    spec = dataset_spec("cifar10_jpeg", archive)
    assert (spec.height, spec.width, spec.channels, spec.num_classes) == (32, 32, 3, 2)
    with pytest.raises(UserError, match="does not exist; point --data-dir"):
        cifar_jpeg.archive_path(str(tmp_path / "missing.tar.gz"))


def test_an_interrupted_extraction_leaves_nothing_that_is_trusted(tmp_path, cache, monkeypatch):
    archive = tiny_archive(tmp_path)

    def interrupted(self, path, *args, **kwargs):
        os.makedirs(os.path.join(path, "cifar10_jpeg", "train"))  # half written when the interrupt comes
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cifar_jpeg.extracted_root(archive)
    assert os.listdir(cache / "datasets") == []
    # A kill -9 cannot clean up: its temporary folder (a dead process's id in its name) is never read, then removed.
    script = "import sys; from pixelcnn_tf.datasets import cifar_jpeg; cifar_jpeg.extracted_root(sys.argv[1])"
    env = dict(os.environ, PIXELCNN_TF_FAULT="kill@extracted", PYTHONPATH=ROOT)
    killed = subprocess.run([sys.executable, "-c", script, archive], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    (abandoned,) = os.listdir(cache / "datasets")
    assert abandoned.startswith(".extracting-")
    monkeypatch.undo()
    monkeypatch.setenv("PIXELCNN_CACHE_DIR", str(cache))
    root = cifar_jpeg.extracted_root(archive)
    assert os.listdir(cache / "datasets") == [os.path.basename(os.path.dirname(root))]
    assert len(os.listdir(os.path.join(root, "train", "cat"))) == 3


def test_a_damaged_archive_is_one_line(tmp_path):
    archive = tmp_path / "cifar10_jpeg.tar.gz"
    archive.write_bytes(open(tiny_archive(tmp_path, "good.tar.gz"), "rb").read()[:300])
    with pytest.raises(UserError, match="is not a readable .tar.gz archive"):
        cifar_jpeg.extracted_root(str(archive))


@pytest.mark.parametrize("size, fmt, tiles, note", [
    ((28, 28), "JPEG", 1, None),
    ((56, 28), "PNG", 2, None),  # a grid generate.py wrote: read tile by tile
    ((56, 28), "JPEG", 1, "56x28: centre-cropped to 28x28 and resized to 28x28"),
    ((50, 80), "PNG", 1, "50x80: centre-cropped to 50x50 and resized to 28x28"),
])  # fmt: skip
def test_complete_reads_any_picture_size(tmp_path, size, fmt, tiles, note):
    from pixelcnn_tf.figures import read_png_images

    path = write_image(tmp_path / f"picture.{fmt.lower()}", size, "RGB", fmt=fmt)
    images, said = read_png_images(path, (28, 28, 1), levels=256)
    assert images.shape == (tiles, 28, 28, 1)
    assert said == (note and f"{path} is {note}")
    with Image.open(path) as picture:
        grey = picture.convert("L")
        left, top = (size[0] - min(size)) // 2, (size[1] - min(size)) // 2
        if note:  # the centred square, resized: what a user expects of a photo
            expected = grey.resize((28, 28), Image.Resampling.BILINEAR, box=(left, top, left + min(size), top + min(size)))
        else:
            expected = grey.crop((0, 0, 28, 28))
    np.testing.assert_array_equal(images[0, ..., 0], np.asarray(expected))
