"""python -m serve.web on 127.0.0.1: hostile requests (symlinks out, NUL bytes, other methods), damaged exports, its stop."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse

import pytest
from helpers import ROOT, copy_export

from bench.browser import WebServer

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")
SECRET = b"outside the served folders"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """serve.web on a copy of the shipped export holding symlinks to a file and a folder outside it, and one inside."""
    tmp = tmp_path_factory.mktemp("web_server")
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    export = copy_export(PRETRAINED, tmp / "export")
    os.symlink(outside / "secret.txt", os.path.join(export, "passwd"))
    os.symlink(outside, os.path.join(export, "linked_folder"))
    os.symlink("metadata.json", os.path.join(export, "inside.json"))
    with WebServer(export) as server:
        server.port = urllib.parse.urlsplit(server.url).port
        yield server
    assert "Traceback" not in server.process.stderr.read()


def request(server, method: str, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def raw_request(server, request_line: bytes) -> bytes:
    """The status line answering a request line sent byte for byte (http.client refuses control characters)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
        return connection.makefile("rb").readline()


def test_files_inside_the_export_are_served_symlink_or_not(served):
    status, body = request(served, "GET", "/export/metadata.json")
    assert status == 200 and json.loads(body)["format_version"] == 2
    assert request(served, "GET", "/export/inside.json") == (200, body)  # resolves inside: served
    assert request(served, "HEAD", "/web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm")[0] == 200


@pytest.mark.parametrize("path", ["/export/passwd", "/export/linked_folder/secret.txt", "/export/linked_folder/",
                                  "/export/../outside/secret.txt", "/web/../../outside/secret.txt"])
def test_symlinks_and_paths_leading_outside_the_roots_are_not_found(served, path):
    status, body = request(served, "GET", path)
    assert status == 404 and SECRET not in body


@pytest.mark.parametrize("path", ["/export/metadata.json%00.png", "/export/%00", "/web/%ff%fe.html"])
def test_nul_bytes_and_undecodable_paths_are_bad_requests(served, path):
    assert request(served, "GET", path)[0] == 400


def test_a_raw_nul_byte_in_the_request_line_is_a_bad_request(served):
    assert raw_request(served, b"GET /export/metadata.json\x00.png HTTP/1.1").split()[1] == b"400"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"])
def test_methods_other_than_get_and_head_are_not_allowed(served, method):
    assert request(served, method, "/export/metadata.json")[0] == 405
    assert request(served, "HEAD", "/export/metadata.json")[0] == 200


def serve_web_refuses(export_dir: str) -> str:
    from test_web import serve_web_error

    return serve_web_error("--export", export_dir, "--port", "0")


def test_a_damaged_sampler_graph_is_refused_before_serving(tmp_path):
    cut = copy_export(PRETRAINED, tmp_path / "cut")
    graph = os.path.join(cut, "sampler.onnx")
    data = open(graph, "rb").read()
    open(graph, "wb").write(data[: len(data) // 2])
    assert "sampler.onnx has" in serve_web_refuses(cut) and "bytes" in serve_web_refuses(cut)
    swapped = copy_export(PRETRAINED, tmp_path / "swapped")
    open(os.path.join(swapped, "sampler.onnx"), "wb").write(data[:100] + bytes(100) + data[200:])
    assert "does not match the sha256" in serve_web_refuses(swapped)


@pytest.mark.parametrize("skip", ["", "1"])
def test_a_missing_browser_fails_the_browser_tests_with_the_install_command(monkeypatch, skip):
    from helpers import need_browser

    import bench.browser

    monkeypatch.setattr(bench.browser.shutil, "which", lambda name: None)  # no chromium, no chromedriver
    monkeypatch.setenv("PIXELCNN_TF_SKIP_BROWSER", skip)
    expected = pytest.skip.Exception if skip else pytest.fail.Exception
    with pytest.raises(expected) as outcome:
        need_browser()
    assert "apt-get install -y chromium chromium-driver" in str(outcome.value)
    assert ("PIXELCNN_TF_SKIP_BROWSER=1" in str(outcome.value)) != bool(skip)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_no_temporary_folder(tmp_path, stop):
    """Stopped by a service manager (SIGTERM) or Ctrl-C (SIGINT): exit 0, and the index's temporary folder is gone."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-m", "serve.web", "--export", PRETRAINED, "--port", "0"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving "), line + process.stderr.read()
        assert os.listdir(tmp_path)  # the index.json folder exists while it serves
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert "Traceback" not in process.stderr.read()
    assert os.listdir(tmp_path) == []
