"""The page's model picker, RGB models and "complete your own picture" in headless Chromium, against serve.Sampler."""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import numpy as np
import pytest
from helpers import ROOT, assert_same_pixels, page_images
from PIL import Image

from bench.browser import RUNTIME, WebServer
from pixelcnn_tf.figures import read_png_images
from serve import Sampler
from serve.manifest import read_manifest
from serve.sampling import to_grid

SHIPPED = os.path.join(ROOT, "pretrained", "gated_mnist")


@pytest.fixture(scope="module")
def served(rgb_export, rgb_mixture_export):
    """serve.web on the shipped pretrained/ folder and the two tiny RGB exports."""
    with WebServer([os.path.join(ROOT, "pretrained"), rgb_export, rgb_mixture_export]) as server:
        yield server


def need_runtime() -> None:
    if not os.path.isdir(RUNTIME):
        pytest.skip("web/node_modules missing: npm ci in web/")


def graph_sampler(export: str) -> Sampler:
    return Sampler.load(export, "onnx", sampler="graph")


def open_model(page, server, name: str) -> None:
    assert page.open(server.url + f"web/?export=../exports/{name}/") == "ready", page.error()


def index_of(server) -> list[dict]:
    with urllib.request.urlopen(server.url + "exports/index.json") as response:
        return json.load(response)["exports"]


def test_the_index_lists_every_export_of_a_folder_from_its_manifest(tmp_path):
    """No browser: `python -m serve.web` on pretrained/ (its default) lists each export there, read from metadata.json."""
    from serve.web import DEFAULT_EXPORTS, make_server

    need_runtime()
    server = make_server(port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/exports/index.json") as response:
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            entries = json.load(response)["exports"]
        home = urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/").geturl()
    finally:
        server.shutdown()
        server.server_close()
    folders = sorted(name for name in os.listdir(DEFAULT_EXPORTS) if os.path.isfile(os.path.join(DEFAULT_EXPORTS, name, "metadata.json")))
    assert [e["name"] for e in entries] == folders and "gated_mnist" in folders
    for entry in entries:
        m = read_manifest(os.path.join(DEFAULT_EXPORTS, entry["name"]))
        assert entry["url"] == entry["name"] + "/"
        assert (entry["height"], entry["width"], entry["channels"], entry["levels"], entry["num_classes"]) == (m.height, m.width, m.channels, m.levels, m.num_classes)
        assert entry["distribution"] == (m.distribution or "softmax") and entry["sampler_bytes"] == m.graph_file("onnx").bytes
    assert home.endswith("/web/")  # the page itself picks the index's first export


def test_the_server_takes_several_exports_and_refuses_a_folder_without_any(tmp_path):
    from serve.metadata import ServeError
    from serve.web import make_server

    need_runtime()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServeError, match="no metadata.json in .*empty nor in any folder inside it"):
        make_server([SHIPPED, str(tmp_path / "empty")], port=0)
    server = make_server([SHIPPED, os.path.join(ROOT, "pretrained")], port=0)  # the same export twice: listed once
    try:
        shipped = sorted(name for name in os.listdir(os.path.join(ROOT, "pretrained")) if name != "gated_mnist")
        assert list(server.exports) == ["gated_mnist", *shipped]  # the named one first, then the folder's others
    finally:
        server.server_close()


def test_export_names_are_unique_url_safe_and_never_the_index():
    from serve.web_index import unique_names

    assert unique_names(["a/cifar", "b/cifar", "c/index.json", "d/..", "e/my model é"]) == [
        "cifar", "cifar-2", "index.json-2", "export", "my_model__"]


def test_the_picker_lists_what_the_index_lists_and_switches_models(page, served):
    entries = index_of(served)
    assert [e["name"] for e in entries][-2:] == ["rgb", "rgb_mixture"] and "gated_mnist" in [e["name"] for e in entries]
    assert page.open(served.url) == "ready", page.error()  # no export=: the index's first
    options = page.js("return Array.from(document.querySelectorAll('#model option'), (o) => [o.dataset.name, o.textContent, o.selected])")
    assert [name for name, _, _ in options] == [e["name"] for e in entries]
    assert options[0][2] and not any(selected for _, _, selected in options[1:])
    by_name = {name: text for name, text, _ in options}
    assert by_name["rgb"].startswith("rgb: 8×10 RGB, 16 levels, softmax")
    assert by_name["rgb_mixture"].startswith("rgb_mixture: 8×10 RGB, 16 levels, logistic mixture of 2")
    assert by_name["gated_mnist"].startswith("gated_mnist: 28×28 grey, 2 levels, softmax")
    # Choosing another model reloads the page on it.
    page.js("window.beforeSwitch = true; const s = document.getElementById('model');"
            "s.value = Array.from(s.options).find((o) => o.dataset.name === 'rgb').value; s.dispatchEvent(new Event('change'));")
    deadline = time.monotonic() + 60
    while page.js("return window.beforeSwitch === true") and time.monotonic() < deadline:  # until the new page runs
        time.sleep(0.1)
    assert page.wait() == "ready", page.error()
    assert page.js("return window.pixelcnnPage.graph.shape") == [8, 10, 3]
    assert page.js("return document.querySelector('#model option:checked').dataset.name") == "rgb"


@pytest.mark.parametrize("name", ["rgb", "rgb_mixture"])
def test_an_rgb_model_on_the_page_draws_what_the_sampler_draws(page, served, rgb_export, rgb_mixture_export, name):
    export = {"rgb": rgb_export, "rgb_mixture": rgb_mixture_export}[name]
    open_model(page, served, name)
    page.set("count", 5)
    page.set("seed", 7)
    page.click("sample")
    images = page_images(page.result("sampled"), (8, 10, 3))
    expected = graph_sampler(export).sample(5, seed=7)
    np.testing.assert_array_equal(images, expected)
    # Drawn in colour as serve.sampling.to_grid scales levels: the canvas's first image is to_grid's, pixel for pixel.
    canvas = page.js("const c = document.getElementById('sample-canvas');"
                     "return Array.from(c.getContext('2d').getImageData(0, 0, 10, 8).data)")
    drawn = np.asarray(canvas, np.uint8).reshape(8, 10, 4)[..., :3]
    np.testing.assert_array_equal(drawn, to_grid(expected[:1], 16, columns=1))
    assert page.js("return parseInt(document.getElementById('sample-canvas').style.width)") >= 3 * 10 * 3  # zoomed


def write_picture(path, size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return str(path)


def upload_picture(page, path) -> None:
    page.js("document.body.dataset.state = 'busy'")
    page.upload("picture-file", path)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_an_uploaded_picture_is_completed_as_the_sampler_completes_it(page, served, rgb_export, tmp_path, ext):
    """A 37x23 PNG or JPEG: the page's decode, crop and resize equal generate.py --complete's (Pillow; Chromium's
    JPEG decoder gives libjpeg-turbo's pixels, as Pillow's does), and its completions equal Sampler.complete on
    those pixels for the same seed."""
    picture = write_picture(tmp_path / f"photo.{ext}", (37, 23))
    open_model(page, served, "rgb")
    upload_picture(page, picture)
    assert page.wait() == "ready", page.error()
    levels = np.asarray(page.js("return Array.from(window.pixelcnnPage.picture.levels)")).reshape(8, 10, 3)
    expected_levels, note = read_png_images(picture, (8, 10, 3), 16)
    np.testing.assert_array_equal(levels, expected_levels[0])
    shown = page.js("return document.getElementById('picture-note').textContent")
    assert shown == f"photo.{ext} is 37×23: centre-cropped to 29×23 and resized to 10×8", shown
    assert note.endswith("centre-cropped to 29x23 and resized to 10x8")  # generate.py's note: the same crop
    # Shown before completing: the selected thumbnail is the picture.
    assert page.js("return document.querySelector('#digits canvas.selected').title") == shown
    page.set("rows", 3)
    page.set("completions", 4)
    page.set("seed", 9)
    page.click("complete")
    images = page_images(page.result("completed"), (8, 10, 3))
    assert images.shape == (4, 8, 10, 3)
    np.testing.assert_array_equal(images[:, :3], np.broadcast_to(expected_levels[0, :3], (4, 3, 10, 3)))
    np.testing.assert_array_equal(images, graph_sampler(rgb_export).complete(expected_levels, 3, num_samples=4, seed=9))


@pytest.mark.slow
def test_a_colour_picture_on_the_grey_shipped_model_is_completed_as_the_sampler_completes_it(page, tmp_path):
    """RGB to grey as Pillow's convert("L"), cropped, resized and binarized; then 8 completions as Python draws them."""
    picture = write_picture(tmp_path / "wide.png", (90, 61), seed=4)
    with WebServer(SHIPPED) as server:
        assert page.open(server.url) == "ready", page.error()
        upload_picture(page, picture)
        assert page.wait() == "ready", page.error()
        levels = np.asarray(page.js("return Array.from(window.pixelcnnPage.picture.levels)")).reshape(28, 28, 1)
        expected_levels, _ = read_png_images(picture, (28, 28, 1), 2)
        np.testing.assert_array_equal(levels, expected_levels[0])
        page.set("rows", 12)
        page.set("seed", 2)
        page.click("complete")
        images = page_images(page.result("completed"), (28, 28, 1))
    assert_same_pixels(images, graph_sampler(SHIPPED).complete(expected_levels, 12, num_samples=8, seed=2))


def bad_file(tmp_path, kind: str) -> tuple[str, str]:
    """(path, what the page says) for a file it must refuse."""
    if kind == "empty":
        (tmp_path / "empty.png").write_bytes(b"")
        return str(tmp_path / "empty.png"), "empty.png is empty (0 bytes): choose a PNG or JPEG picture"
    if kind == "not an image":
        (tmp_path / "notes.png").write_text("these are not pixels\n" * 100)
        return str(tmp_path / "notes.png"), "notes.png is not a picture this browser can decode (image/png): choose a PNG or JPEG"
    if kind == "huge file":
        with open(tmp_path / "huge.jpg", "wb") as f:
            f.truncate(60_000_000)
        return str(tmp_path / "huge.jpg"), "huge.jpg is 60.0 MB, more than the 50.0 MB this page reads: choose a smaller picture"
    Image.new("L", (9000, 6000)).save(tmp_path / "vast.png")  # 54 megapixels in a few kB
    return str(tmp_path / "vast.png"), "vast.png is 9000×6000 pixels, more than the 50 million this page reads: choose a smaller picture"


@pytest.mark.parametrize("kind", ["empty", "not an image", "huge file", "huge picture"])
def test_a_bad_file_gets_one_line_on_the_page(page, served, tmp_path, kind):
    path, message = bad_file(tmp_path, kind)
    open_model(page, served, "rgb")
    upload_picture(page, path)
    assert page.wait() == "error"
    text = page.error()
    assert text == f"Error: {message}", text
    assert page.js("return window.pixelcnnPage.picture") is None  # nothing selected from it
    # The page still works: a good picture after the bad one.
    upload_picture(page, write_picture(tmp_path / "good.png", (12, 12)))
    assert page.wait() == "ready" and page.error() == ""
