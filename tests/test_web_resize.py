"""The page's crop-and-resize (web/resize.mjs, in Node) gives Pillow's pixels, as generate.py --complete reads a picture."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from helpers import ROOT
from PIL import Image

from pixelcnn_tf.figures import centre_crop_resize, read_png_images

NODE_RESIZE = r"""
import { centreCropBox, fromRGBA, resizeBilinear, toLevels } from "./web/resize.mjs";
import fs from "node:fs";
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map((c) => {
  const pixels = fromRGBA(Uint8Array.from(c.rgba), c.channels);
  const box = c.box ?? centreCropBox(c.inWidth, c.inHeight, c.width, c.height);
  const resized = resizeBilinear(pixels, c.inWidth, c.inHeight, c.channels, c.width, c.height, box);
  return { box, pixels: Array.from(resized), levels: Array.from(toLevels(resized, c.levels)) };
});
console.log(JSON.stringify(out));
"""


def node_resize(cases: list[dict]) -> list[dict]:
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    run = subprocess.run(["node", "--input-type=module", "-e", NODE_RESIZE], input=json.dumps(cases), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def random_cases(seed: int, count: int) -> list[tuple]:
    """(picture size, model size) pairs: shrinking and growing, wide and tall (both pass orders of Pillow's)."""
    rng = np.random.default_rng(seed)
    fixed = [((40, 30), (8, 8)), ((13, 21), (8, 8)), ((1000, 700), (28, 28)), ((7, 5), (28, 28)), ((28, 28), (28, 28)),
             ((333, 129), (10, 8)), ((31, 97), (32, 32)), ((5, 300), (10, 8)), ((64, 640), (32, 32)), ((1, 1), (32, 32))]
    drawn = [(tuple(rng.integers(1, 160, 2)), tuple(rng.integers(2, 40, 2))) for _ in range(count)]
    return fixed + [((int(a), int(b)), (int(c), int(d))) for (a, b), (c, d) in drawn]


@pytest.mark.parametrize("channels", [1, 3])
def test_the_page_crops_and_resizes_to_pillows_pixels(channels):
    rng = np.random.default_rng(channels)
    cases, expected = [], []
    for (in_w, in_h), (w, h) in random_cases(channels, 60):
        rgba = rng.integers(0, 256, (in_h, in_w, 4), dtype=np.uint8)
        picture = Image.fromarray(rgba[..., :3], "RGB").convert("L" if channels == 1 else "RGB")  # as read_png_images
        pixels, _ = centre_crop_resize(picture, h, w)
        expected.append(pixels.reshape(h, w, channels))
        cases.append({"rgba": rgba.ravel().tolist(), "inWidth": in_w, "inHeight": in_h, "width": w, "height": h,
                      "channels": channels, "levels": 16})
    for case, want, got in zip(cases, expected, node_resize(cases)):
        size = f"{case['inWidth']}x{case['inHeight']} -> {case['width']}x{case['height']}"
        np.testing.assert_array_equal(np.asarray(got["pixels"]).reshape(want.shape), want, err_msg=size)


def test_any_box_resizes_as_pillow_does():
    """Boxes the page never asks for (off-centre, fractional aspect) still follow Pillow: the filter is the same."""
    rng = np.random.default_rng(7)
    cases, expected = [], []
    for _ in range(40):
        in_w, in_h, w, h = (int(v) for v in rng.integers(2, 90, 4))
        left, top = int(rng.integers(0, in_w - 1)), int(rng.integers(0, in_h - 1))
        box = [left, top, int(rng.integers(left + 1, in_w + 1)), int(rng.integers(top + 1, in_h + 1))]
        rgba = rng.integers(0, 256, (in_h, in_w, 4), dtype=np.uint8)
        expected.append(np.asarray(Image.fromarray(rgba[..., :3], "RGB").resize((w, h), Image.Resampling.BILINEAR, box=box)))
        cases.append({"rgba": rgba.ravel().tolist(), "inWidth": in_w, "inHeight": in_h, "width": w, "height": h,
                      "channels": 3, "levels": 2, "box": box})
    for want, got in zip(expected, node_resize(cases)):
        np.testing.assert_array_equal(np.asarray(got["pixels"]).reshape(want.shape), want)


def test_the_page_quantizes_a_picture_as_generate_does(tmp_path):
    """Levels from 0..255 as figures.read_png_images rounds them, for a picture of another size (grey and RGB)."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    rgba = np.concatenate([rgb, np.full((23, 37, 1), 255, np.uint8)], axis=-1)
    for channels, levels in ((1, 2), (3, 16), (3, 256), (1, 7)):
        want, note = read_png_images(str(tmp_path / "p.png"), (8, 10, channels), levels)
        got = node_resize([{"rgba": rgba.ravel().tolist(), "inWidth": 37, "inHeight": 23, "width": 10, "height": 8,
                            "channels": channels, "levels": levels}])[0]
        left, top, right, bottom = got["box"]
        assert f"centre-cropped to {right - left}x{bottom - top} " in note and (left, top) == ((37 - 29) // 2, 0), note
        np.testing.assert_array_equal(np.asarray(got["levels"]).reshape(want[0].shape), want[0])
