"""Image folders through TensorFlow: pixels equal to Pillow's decode, the CIFAR-10 JPEG copy on a slice, and an RGB
folder trained, conditioned on its class folders, and completing pictures of other sizes with generate.py."""
from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image
from test_folders import make_folder, write_image

from pixelcnn_tf.datasets import cifar_jpeg, folders
from pixelcnn_tf.datasets import pipeline as data

pytestmark = pytest.mark.slow
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELCNN_CACHE_DIR", str(tmp_path / "cache"))


def pillow_pixels(path, channels):
    with Image.open(path) as picture:
        return np.asarray(picture.convert("L" if channels == 1 else "RGB")).reshape(picture.height, picture.width, channels)


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("RGB", "jpg"), ("RGB", "png"), ("L", "jpg")])
def test_the_reader_gives_pillows_pixels_and_the_class_ids(tmp_path, mode, ext):
    root = make_folder(tmp_path / "f", classes=("b", "a"), per_split=(4, 3), mode=mode, ext=ext)
    channels = 1 if mode == "L" else 3
    images, labels = data.load_arrays("folder", "test", levels=256, count=100, data_dir=root)
    paths, expected_labels = folders.split_files(folders.scan_folder(root), "test")
    assert images.shape == (6, 12, 10, channels) and labels.tolist() == expected_labels
    for image, path in zip(images, paths):
        np.testing.assert_array_equal(image, pillow_pixels(path, channels))  # JPEG too: the accurate DCT, as Pillow
    quantized, _ = data.load_arrays("folder", "test", levels=4, count=2, data_dir=root)
    np.testing.assert_array_equal(quantized, images[:2] // 64)  # the --levels quantisation MNIST has


def test_image_size_centre_crops_then_resizes(tmp_path):
    root = make_folder(tmp_path / "f", classes=None, per_split=(2, 2), size=(8, 8))
    write_image(tmp_path / "f" / "test" / "wide.png", (24, 8))  # its centre 8x8 square is kept as is
    images, _ = data.load_arrays("folder", "test", levels=256, count=10, data_dir=root, image_size=8)
    scan = folders.scan_folder(root)
    paths, _ = folders.split_files(scan, "test")
    wide = str(tmp_path / "f" / "test" / "wide.png")
    np.testing.assert_array_equal(images[paths.index(wide)], pillow_pixels(wide, 3)[:, 8:16])
    small, _ = data.load_arrays("folder", "train", levels=256, count=10, data_dir=root, image_size=4)
    assert small.shape == (2, 4, 4, 3)
    with Image.open(folders.split_files(scan, "train")[0][0]) as picture:  # as generate.py --complete resizes a picture
        expected = np.asarray(picture.resize((4, 4), Image.Resampling.BILINEAR))
    assert np.abs(small[0].astype(int) - expected).max() <= 1  # antialiased bilinear both, up to rounding


@pytest.fixture(scope="module")
def cifar_slice(tmp_path_factory):
    """An archive of the shipped copy's first 12 images of every class of both splits (240 of 60,000)."""
    source = cifar_jpeg.DEFAULT_ARCHIVE
    if not os.path.isfile(source):
        pytest.skip(f"{source} is not beside the checkout")
    out = tmp_path_factory.mktemp("cifar") / "cifar10_jpeg.tar.gz"
    kept, counts = {}, {}
    with tarfile.open(source) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and counts.get(tuple(parts[1:3]), 0) < 12:
                counts[tuple(parts[1:3])] = counts.get(tuple(parts[1:3]), 0) + 1
                kept[member.name] = (member, tar.extractfile(member).read())
    with tarfile.open(out, "w:gz") as tar:
        for member, payload in kept.values():
            tar.addfile(member, io.BytesIO(payload))
    return str(out), {name: payload for name, (_, payload) in kept.items()}


def test_the_cifar10_jpeg_copy_on_a_slice(cifar_slice):
    archive, payloads = cifar_slice
    spec = data.dataset_spec("cifar10_jpeg", archive)
    assert (spec.height, spec.width, spec.channels, spec.num_classes) == (32, 32, 3, 10)
    root = cifar_jpeg.extracted_root(archive)
    images, labels = data.load_arrays("cifar10_jpeg", "test", levels=256, count=1000, data_dir=archive)
    paths, _ = folders.split_files(folders.scan_folder(root), "test")
    assert images.shape == (120, 32, 32, 3) and np.bincount(labels).tolist() == [12] * 10
    for image, label, path in zip(images, labels, paths):
        name = "cifar10_jpeg/" + os.path.relpath(path, root)
        assert name.split("/")[2] == CIFAR_CLASSES[label]
        with Image.open(io.BytesIO(payloads[name])) as picture:
            np.testing.assert_array_equal(image, np.asarray(picture.convert("RGB")))


def test_an_rgb_folder_trains_conditionally_and_completes_any_picture(tmp_path, capsys):
    """Class folders become labels (their number saved in config.json); generate.py completes a JPEG and a PNG of other
    sizes, centre-cropped and resized, and says so in one line."""
    import generate
    import train

    root = make_folder(tmp_path / "f", classes=("x", "y", "z"), per_split=(6, 2), size=(8, 8), ext="jpg")
    write_image(tmp_path / "f" / "train" / "y" / "odd.png", (20, 11))  # a different size: --image-size 8 crops it
    flags = ["--dataset", "folder", "--data-dir", root, "--image-size", "8", "--conditional", "--num-layers", "2",
             "--filters", "6", "--kernel-size", "3", "--levels", "8", "--epochs", "1", "--batch-size", "4",
             "--save-path", str(tmp_path / "models"), "--run-name", "rgb", "--no-tensorboard"]  # fmt: skip
    assert train.main(flags) == 0
    run_dir = str(tmp_path / "models" / "rgb")
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["model"]["num_classes"] == 3 and saved["model"]["channels"] == 3 and saved["image_size"] == 8
    photo = write_image(tmp_path / "photo.jpg", (40, 30))
    odd = write_image(tmp_path / "odd.png", (13, 21))
    for picture, note in ((photo, "40x30: centre-cropped to 30x30"), (odd, "13x21: centre-cropped to 13x13")):
        out = str(tmp_path / "completed.png")
        capsys.readouterr()
        assert generate.main(["--checkpoint", run_dir, "--complete", picture, "--label", "2", "--completions", "2",
                              "--out", out, "--no-progress"]) == 0
        assert f"generate.py: note: {picture} is {note} and resized to 8x8" in capsys.readouterr().err
        grid = np.asarray(Image.open(out))
        assert grid.shape == (8, 8 * 4, 3)  # kept part, 2 completions, original
        np.testing.assert_array_equal(grid[:4, 8:16], grid[:4, 24:32])  # the kept rows are the picture's
    # A class folder's name is a label too: --label z draws what --label 2 draws.
    for label in ("z", "2"):
        assert generate.main(["--checkpoint", run_dir, "--label", label, "--num-images", "2", "--out",
                              str(tmp_path / f"{label}.png"), "--no-progress"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "z.png")), np.asarray(Image.open(tmp_path / "2.png")))
    # --complete test reads the run's own folder (its test images, labels and --image-size).
    out = str(tmp_path / "test.png")
    assert generate.main(["--checkpoint", run_dir, "--complete", "test", "--num-images", "3", "--completions", "1",
                          "--out", out, "--no-progress"]) == 0
    originals, _ = data.load_arrays("folder", "test", levels=8, count=3, data_dir=root, image_size=8)
    grid = np.asarray(Image.open(out))
    np.testing.assert_array_equal(grid[:, 16:24].reshape(3, 8, 8, 3), np.round(originals.astype(float) * 255 / 7).astype(np.uint8))
