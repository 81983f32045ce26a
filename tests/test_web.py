"""The browser page (web/) in real headless Chromium: it draws Python's pixels, and shows errors instead of a blank page."""
from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
from functools import partial

import numpy as np
import pytest
from helpers import MATCH, ROOT, assert_same_pixels, copy_export, need_browser, page_images, rewrite_metadata, run_without_tensorflow

from bench.browser import RUNTIME, WebServer
from serve import Sampler
from serve.sampling import uniforms

SHIPPED = os.path.join(ROOT, "pretrained", "gated_mnist")



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
    assert "6 images in" in page.js("return document.getElementById('sample-time').textContent")


def test_page_on_two_threads_samples_what_python_samples(page, server, web_export):
    meta = meta_of(web_export)
    assert page.open(server.url + "web/?export=../export/&threads=2") == "ready", page.error()
    threads = page.result("threads")
    # Really threaded: onnxruntime-web's own setting read back, on a cross-origin isolated page.
    assert threads["crossOriginIsolated"] is True and threads["used"] == 2 and threads["unavailable"] is None
    assert page.js("return document.getElementById('notice').hidden") is True
    page.set("count", 5)
    page.set("seed", 8)
    page.click("sample")
    expected = python_sampler(web_export).sample(5, seed=8)
    assert_same_pixels(page_images(page.result("sampled"), (meta["height"], meta["width"], meta["channels"])), expected)


def test_page_uses_every_core_by_default_and_refuses_bad_threads(page, server):
    assert page.open(server.url) == "ready", page.error()
    assert page.result("threads")["used"] == page.js("return navigator.hardwareConcurrency")
    assert "thread" in page.js("return document.getElementById('info').textContent")
    for bad in ("0.5", "0", ""):
        assert page.open(server.url + f"web/?export=../export/&threads={bad}") == "error"
        assert "threads= must be a whole number" in page.error()


@pytest.fixture
def plain_static_host():
    """The repository on a static host that sends no isolation headers (the stdlib's own handler)."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=ROOT)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.slow
def test_page_without_isolation_says_threads_are_unavailable_and_still_samples(page, plain_static_host):
    assert page.open(plain_static_host + "web/index.html?threads=2") == "ready", page.error()
    threads = page.result("threads")
    assert threads["crossOriginIsolated"] is False and threads["used"] == 1
    notice = page.js("const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent")
    assert "not cross-origin isolated" in notice and "require-corp" in notice, notice
    page.set("count", 2)
    page.set("seed", 4)
    page.click("sample")
    assert_same_pixels(page_images(page.result("sampled"), (28, 28, 1)), python_sampler(SHIPPED).sample(2, seed=4))


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
        # Named by the export's class names (MNIST's are its digits), after "mixed"; data-label is the class id.
        texts = page.js("return Array.from(document.querySelectorAll('#classes button'), (b) => b.textContent)")
        assert texts == ["mixed", *meta["class_names"]] and meta["class_names"] == [str(d) for d in range(10)]
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


def fetch(url: str, accept: str | None = None, method: str = "GET", **headers):
    """(status, headers, body) of one request; accept=None sends no Accept-Encoding at all."""
    if accept is not None:
        headers["Accept-Encoding"] = accept
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def shipped_server():
    if not os.path.isdir(RUNTIME):
        pytest.skip("web/node_modules missing: npm ci in web/")
    with WebServer(SHIPPED) as s:
        yield s


# What the page loads first, with the file each URL serves.
PAGE_FILES = {"web/": "web/index.html", "web/app.mjs": "web/app.mjs", "web/digits.json": "web/digits.json",
              "export/sampler.onnx": "pretrained/gated_mnist/sampler.onnx", "export/metadata.json": "pretrained/gated_mnist/metadata.json",
              "web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm": "web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
              "web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs": "web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs"}  # fmt: skip


@pytest.mark.parametrize("path", sorted(PAGE_FILES))
def test_server_isolates_the_page_and_gzips_what_the_client_accepts(shipped_server, path):
    data = open(os.path.join(ROOT, PAGE_FILES[path]), "rb").read()
    url = shipped_server.url + path
    for accept in (None, "identity", "gzip;q=0, deflate"):  # nothing it may decode: the file as it is
        status, headers, body = fetch(url, accept)
        assert status == 200 and body == data and "Content-Encoding" not in headers, (path, accept)
        assert int(headers["Content-Length"]) == len(data)
        # Cross-origin isolation on every response, or onnxruntime-web gets no SharedArrayBuffer (no threads).
        assert (headers["Cross-Origin-Opener-Policy"], headers["Cross-Origin-Embedder-Policy"]) == ("same-origin", "require-corp")
        assert headers["Vary"] == "Accept-Encoding"  # a cache must not hand gzip to a client that did not ask
    status, headers, body = fetch(url, "gzip, deflate")
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["Vary"] == "Accept-Encoding"
    assert int(headers["Content-Length"]) == len(body) < len(data)
    assert gzip.decompress(body) == data
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert headers["Content-Type"] == fetch(url)[1]["Content-Type"]  # the type of the file, not of gzip
    brotli = os.path.join(ROOT, PAGE_FILES[path] + ".br")  # made by `node web/precompress.mjs`, if it ran
    status, chromium, body = fetch(url, "gzip, deflate, br, zstd")  # Chromium's header
    if os.path.exists(brotli):
        assert chromium["Content-Encoding"] == "br" and body == open(brotli, "rb").read()
    else:  # no brotli encoder in Python's standard library: gzip
        assert chromium["Content-Encoding"] == "gzip" and gzip.decompress(body) == data
    assert int(chromium["Content-Length"]) == len(body) and chromium["Vary"] == "Accept-Encoding"
    status, head, empty = fetch(url, "gzip", method="HEAD")
    assert status == 200 and empty == b"" and head["Content-Length"] == headers["Content-Length"]
    status, _, empty = fetch(url, "gzip", **{"If-Modified-Since": headers["Last-Modified"]})
    assert status == 304 and empty == b""  # a revisit re-downloads nothing


def test_server_refuses_outside_files_whatever_the_encoding(shipped_server):
    for outside in ("serve/web.py", "web/../serve/web.py", "export/../../README.md", "web/app.mjs/"):
        status, headers, _ = fetch(shipped_server.url + outside, "gzip")
        assert status == 404 and headers.get("Content-Encoding") is None, outside


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
    argv = ["--export", web_export, "--counts", "2", "--keep-rows", "5", "--page-threads", "1,2", "--threads", "1", "--repeats", "1",
            "--forward"]
    assert bench_web.main([*argv, "--screenshots", str(tmp_path), "--json", str(out)]) == 0
    report = json.load(open(out))
    assert [row["what"] for row in report["rows"]] == ["sample 2", "read picture", "complete 8", "forward 2"]
    assert report["columns"] == ["page 1 thr", "python 1 thr", "page 2 thr"]
    # "same": the share of sub-pixels equal to Python's; for the forward row, of full-model logits within 1e-4 of Python's
    assert all(row["same_subpixels"] >= MATCH and all(row[c] > 0 for c in report["columns"]) for row in report["rows"])
    assert all(p["threads"]["crossOriginIsolated"] for p in report["pages"].values())
    assert report["pages"]["page 2 thr"]["load"]["modelBytes"] == meta_of(web_export)["sampler_graph"]["artifacts"]["onnx"]["bytes"]
    wasm = [f for f in report["files"] if f["url"].endswith("ort-wasm-simd-threaded.wasm")]
    assert len(wasm) == 1 and wasm[0]["encoding"] in ("gzip", "br") and wasm[0]["sent"] < wasm[0]["plain"] / 2
    for name in bench_web.SCREENSHOTS:
        assert open(tmp_path / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "sample 2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # never overwrites unasked
        bench_web.main(["--export", web_export, "--screenshots", str(tmp_path)])
    assert refused.value.code == 2 and "pass --overwrite" in capsys.readouterr().err


def test_bench_forward_needs_the_exports_full_onnx_model(tmp_path, capsys):
    from bench import web as bench_web

    export = copy_export(os.path.join(ROOT, "pretrained", "gated_mnist"), tmp_path / "export")
    rewrite_metadata(export, lambda meta: meta["artifacts"].pop("onnx"))
    with pytest.raises(SystemExit) as refused:
        bench_web.main(["--export", export, "--forward"])
    assert refused.value.code == 2 and "full ONNX model" in capsys.readouterr().err.splitlines()[-1]


# The page's metadata check in Node (no browser): pixelcnn.mjs with fetch answering the given metadata.json.
NODE_LOAD = r"""
import { PageError, SamplerGraph } from "./web/pixelcnn.mjs";
const meta = process.argv[1];
globalThis.fetch = async () => new Response(meta, { status: 200 });
try {
  await SamplerGraph.load("http://export.invalid/");
  console.log(JSON.stringify({ loaded: true }));
} catch (e) {
  console.log(JSON.stringify({ page: e instanceof PageError, message: e.message }));
}
"""


def node_load(meta: dict) -> dict:
    run = subprocess.run(["node", "--input-type=module", "-e", NODE_LOAD, json.dumps(meta)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_page_reads_the_format_version_serve_reads_and_refuses_others_in_one_line():
    from serve.manifest import FORMAT, FORMAT_VERSION, REEXPORT

    meta = meta_of(SHIPPED)
    assert (meta["format"], meta["format_version"]) == (FORMAT, FORMAT_VERSION)
    # The shipped version passes the check and goes on to the download (here: fetch's metadata, not the graph).
    assert "metadata.json says" in node_load(meta)["message"]
    for version in (1, 3, "2", None):
        refused = node_load(meta | {"format_version": version})
        assert refused["page"] and "\n" not in refused["message"], refused
        assert f"has format_version {json.dumps(version)}; this page reads {FORMAT_VERSION}: re-export the checkpoint with `{REEXPORT}`" in refused["message"]


@pytest.mark.slow
def test_the_page_shows_that_it_refuses_an_export_of_another_version(page, tmp_path):
    export = copy_export(SHIPPED, tmp_path / "v3")
    with WebServer(export) as server:  # the server reads metadata.json when it starts; it changes after
        rewrite_metadata(export, lambda meta: meta.update(format_version=3))
        assert page.open(server.url) == "error"
    text = page.error()
    assert "\n" not in text and "format_version 3; this page reads 2: re-export the checkpoint with `python -m export" in text, text
