"""The browser page (web/) in real headless Chromium: it draws Python's pixels, and shows errors instead of a blank page."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from bench.browser import BrowserMissing, Page, WebServer, find_browser
from helpers import ROOT, copy_export, rewrite_metadata, run_without_tensorflow
from serve import Sampler
from serve.sampling import uniforms

MATCH = 0.999  # fraction of sub-pixels that must agree (float32 kernels differ across runtimes in rare ties)


SKIP_BROWSER = "PIXELCNN_TF_SKIP_BROWSER"


def need_browser() -> None:
    """A missing browser fails the browser tests with the command that installs it: a green run includes them,
    unless PIXELCNN_TF_SKIP_BROWSER=1 says to skip them."""
    try:
        find_browser()
    except BrowserMissing as e:
        if os.environ.get(SKIP_BROWSER) == "1":
            pytest.skip(str(e))
        pytest.fail(f"{e} (or set {SKIP_BROWSER}=1 to skip the browser tests)", pytrace=False)


@pytest.fixture(scope="module")
def page():
    need_browser()
    with Page() as p:
        yield p


@pytest.fixture(scope="module")
def web_export(tiny_export):
    return with_sampler_graph(tiny_export)


def with_sampler_graph(export_dir: str) -> str:
    assert (meta_of(export_dir).get("sampler_graph") or {}).get("artifacts", {}).get("onnx"), "the export has no sampler.onnx"
    return export_dir


def python_sampler(export_dir: str) -> Sampler:
    """What Python draws: serve.Sampler through the same sampler.onnx with onnxruntime."""
    sampler = Sampler.load(export_dir, "onnx")
    assert sampler.sampler == "graph"
    return sampler


@pytest.fixture(scope="module")
def server(web_export):
    with WebServer(web_export) as s:
        yield s


def page_images(result: dict, shape) -> np.ndarray:
    return np.asarray(result["images"], dtype=np.int64).reshape(-1, *shape)


def assert_same_pixels(page_result: np.ndarray, python_result: np.ndarray) -> None:
    assert page_result.shape == python_result.shape
    agree = float(np.mean(page_result == python_result))
    assert agree >= MATCH, f"only {agree:.4%} of sub-pixels agree with Python"


def meta_of(export_dir: str) -> dict:
    return json.load(open(os.path.join(export_dir, "metadata.json")))


def test_page_samples_what_python_samples_for_a_seed(page, server, web_export):
    meta = meta_of(web_export)
    shape = (meta["height"], meta["width"], meta["channels"])
    assert page.open(server.url) == "ready", page.error()
    page.set("count", 6)
    page.set("seed", 21)
    page.set("temperature", 0.8)
    page.click("sample")
    result = page.result("sampled")
    # The page's own seeded generator is numpy's default_rng: no file needed for the same numbers.
    expected = python_sampler(web_export).sample(6, seed=21, temperature=0.8)
    assert_same_pixels(page_images(result, shape), expected)
    assert "6 digits in" in page.js("return document.getElementById('sample-time').textContent")


def test_page_completes_what_python_completes_from_a_uniforms_file(page, server, web_export, tmp_path):
    meta = meta_of(web_export)
    shape = (meta["height"], meta["width"], meta["channels"])
    np.save(tmp_path / "u.npy", uniforms(8, *shape, seed=5))  # what Sampler.complete(num_samples=8, seed=5) draws
    assert page.open(server.url) == "ready", page.error()
    page.upload("uniforms-file", str(tmp_path / "u.npy"))
    page.js("document.querySelector('#digits canvas[data-index=\"3\"]').click()")
    page.set("rows", 10)
    page.click("complete")
    result = page.result("completed")
    digit = np.asarray(page.js("return Array.from(window.pixelcnnPage.digits[3].levels)")).reshape(shape)
    images = page_images(result, shape)
    np.testing.assert_array_equal(images[:, :10], np.broadcast_to(digit[:10], images[:, :10].shape))
    expected = python_sampler(web_export).complete(digit[None], start_row=10, num_samples=8, seed=5)
    assert_same_pixels(images, expected)


def test_class_buttons_draw_the_chosen_class(page, tiny_conditional_export):
    export = with_sampler_graph(tiny_conditional_export)
    meta = meta_of(export)
    shape = (meta["height"], meta["width"], meta["channels"])
    with WebServer(export) as server:
        assert page.open(server.url) == "ready", page.error()
        assert page.js("return document.querySelectorAll('#classes button').length") == meta["num_classes"] + 1  # + mixed
        page.js("document.querySelector('#classes button[data-label=\"3\"]').click()")
        page.set("count", 4)
        page.set("seed", 2)
        page.click("sample")
        images = page_images(page.result("sampled"), shape)
    expected = python_sampler(export).sample(4, seed=2, labels=3)
    assert_same_pixels(images, expected)


def test_a_bad_export_url_shows_an_error_on_the_page(page, server):
    assert page.open(server.url + "web/?export=../no-such-export/") == "error"
    text = page.error()
    assert "metadata.json" in text and "404" in text, text


def damage(export_dir: str, keep_checksums: bool) -> None:
    path = os.path.join(export_dir, meta_of(export_dir)["sampler_graph"]["artifacts"]["onnx"]["path"])
    data = bytearray(open(path, "rb").read())
    if keep_checksums:  # same size, other bytes: only the sha256 tells
        data[len(data) // 3 : len(data) // 3 + 64] = b"\xff" * 64
    else:  # truncated, with no size or sha256 to check: onnxruntime-web itself meets the damage
        data = data[: len(data) // 2]
        rewrite_metadata(export_dir, lambda meta: [meta["sampler_graph"]["artifacts"]["onnx"].pop(key) for key in ("sha256", "bytes")])
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("keep_checksums", [True, False], ids=["checksum", "runtime"])
def test_a_damaged_sampler_graph_shows_an_error_on_the_page(page, web_export, tmp_path, keep_checksums):
    copy = copy_export(web_export, tmp_path / "damaged")
    with WebServer(copy) as damaged:  # the server checks the files when it starts; these change after
        damage(copy, keep_checksums)
        assert page.open(damaged.url) == "error"
    text = page.error()
    expected = "does not match the sha256" if keep_checksums else "cannot load"
    assert expected in text and "sampler.onnx" in text, text


def test_server_sends_the_types_browsers_require(server):
    for path, mime in [("web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm", "application/wasm"),
                       ("export/sampler.onnx", "application/octet-stream"), ("web/app.mjs", "text/javascript"),
                       ("export/metadata.json", "application/json")]:
        with urllib.request.urlopen(server.url + path) as response:
            assert response.headers["Content-Type"] == mime, path
    for outside in ("serve/web.py", "web/../serve/web.py", "export/../../README.md"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + outside)
        assert e.value.code == 404


def test_server_needs_no_tensorflow(web_export):
    script = "import sys\nfrom serve.web import make_server\nmake_server(sys.argv[1], port=0).server_close()\n"
    done = run_without_tensorflow(script, web_export)
    assert done.returncode == 0, done.stderr


def serve_web_error(*argv) -> str:
    """python -m serve.web must refuse: exit 2, nothing on stdout, one error line and nothing else."""
    run = subprocess.run([sys.executable, "-m", "serve.web", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m serve.web: error:"), run.stderr
    return lines[0]


def test_server_refuses_what_the_page_cannot_run(tmp_path, web_export):
    assert "no metadata.json" in serve_web_error("--export", str(tmp_path), "--port", "0")
    copy = copy_export(web_export, tmp_path / "no_graph")
    rewrite_metadata(copy, lambda meta: meta.pop("sampler_graph"))
    assert "no sampler graph" in serve_web_error("--export", str(copy), "--port", "0")
    assert "--port must be in 0..65535" in serve_web_error("--export", web_export, "--port", "70000")


@pytest.mark.slow
def test_the_default_page_samples_the_shipped_model_as_python_does(page):
    pretrained = with_sampler_graph(os.path.join(ROOT, "pretrained", "gated_mnist"))
    with WebServer(pretrained) as server:
        assert page.open(server.url + "web/") == "ready", page.error()  # no ?export=: the page's own default
        page.set("count", 4)
        page.set("seed", 3)
        page.click("sample")
        images = page_images(page.result("sampled"), (28, 28, 1))
    assert_same_pixels(images, python_sampler(pretrained).sample(4, seed=3))


def test_bench_times_the_page_and_python_and_takes_screenshots(web_export, tmp_path, capsys):
    from bench import web as bench_web

    need_browser()
    out = tmp_path / "bench.json"
    assert bench_web.main(["--export", web_export, "--counts", "2", "--keep-rows", "5", "--screenshots", str(tmp_path), "--json", str(out)]) == 0
    report = json.load(open(out))
    assert [row["what"] for row in report["rows"]] == ["sample 2", "complete 8"]
    assert all(row["same_subpixels"] >= MATCH and row["browser_s"] > 0 and row["python_s"] > 0 for row in report["rows"])
    assert report["load"]["modelBytes"] == meta_of(web_export)["sampler_graph"]["artifacts"]["onnx"]["bytes"]
    for name in bench_web.SCREENSHOTS:
        assert open(tmp_path / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "sample 2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # never overwrites unasked
        bench_web.main(["--export", web_export, "--screenshots", str(tmp_path)])
    assert refused.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
