"""`python -m serve.web [--export DIR ...] [--port 8000]`: serve the browser page (web/) and exports on 127.0.0.1."""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import posixpath
import shutil
import signal
import sys
import tempfile
import urllib.parse

from serve.compression import CompressingMixin, warm
from serve.manifest import read_manifest
from serve.metadata import ServeError
from serve.web_index import INDEX_FILE, PAGE_BACKEND, build_index

PROG = "python -m serve.web"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB_DIR = os.path.join(ROOT, "web")
DEFAULT_EXPORTS = os.path.join(ROOT, "pretrained")  # every export in it: the shipped models, found, not listed
RUNTIME_DIR = os.path.join("node_modules", "onnxruntime-web", "dist")  # under web/, made by `npm ci`
# What browsers insist on: a streaming-compiled .wasm must be application/wasm, an ES module a JavaScript type.
MIME_TYPES = {".wasm": "application/wasm", ".onnx": "application/octet-stream", ".mjs": "text/javascript",
              ".js": "text/javascript", ".json": "application/json", ".npy": "application/octet-stream"}


class Handler(CompressingMixin, http.server.SimpleHTTPRequestHandler):
    """Static files from mounted folders: /web/ (the page), /exports/<name>/ (each export, and index.json listing
    them), /export/ (the first export) and /pretrained/."""

    mounts: dict[str, str] = {}
    real_path: str | None = None  # what send_head resolved the request to (see resolve)
    home = "/web/"
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def send_head(self):
        try:
            self.real_path = resolve(self.mounts, self.path)
        except ValueError as e:  # a NUL byte or bad percent-encoding: no file can have that name
            self.send_error(400, str(e))
            return None
        if urllib.parse.urlsplit(self.path).path == "/":
            self.send_response(302)
            self.send_header("Location", self.home)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()

    def translate_path(self, path: str) -> str:
        return self.real_path or os.path.join(WEB_DIR, "does-not-exist")  # outside every mount: 404

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # any method but GET and HEAD (which the base class has): 405, not 501
            return self.refuse_method
        raise AttributeError(name)

    def refuse_method(self):
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def list_directory(self, path):
        self.send_error(404, "No directory listings")

    def end_headers(self):
        # Cross-origin isolation lets onnxruntime-web use wasm threads (SharedArrayBuffer). require-corp, not
        # credentialless: Safari knows only require-corp, and the page's own loads are same-origin or CORS fetches,
        # which require-corp allows (docs/web.md).
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


def resolve(mounts: dict[str, str], url: str) -> str | None:
    """The real path a URL names: a regular file or folder inside its mount once symlinks are resolved, else None (404).

    Raises ValueError for a path no file can have (NUL byte, undecodable percent-encoding): 400.
    """
    try:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("path is not UTF-8") from None
    if "\0" in path:
        raise ValueError("NUL byte in path")
    clean = posixpath.normpath(path)
    for prefix, folder in mounts.items():
        if clean == prefix.rstrip("/") or clean.startswith(prefix):
            root = os.path.realpath(folder)
            real = os.path.realpath(os.path.join(root, clean[len(prefix):]))
            if path.endswith("/"):  # a folder's URL: the base class opens its index.html; a file named so is 404
                if not os.path.isdir(real):
                    return None
                real = os.path.realpath(os.path.join(real, "index.html"))
            inside = os.path.commonpath([root, real]) == root
            return real if inside and (os.path.isfile(real) or os.path.isdir(real)) else None
    return None


class Server(http.server.ThreadingHTTPServer):
    """The page's server: .exports {name: folder}; closing it removes the folder its index.json was written to."""

    daemon_threads = True
    exports: dict[str, str] = {}
    index_dir: str | None = None
    verbose = False

    def server_close(self):
        super().server_close()
        if self.index_dir:
            shutil.rmtree(self.index_dir, ignore_errors=True)


def make_server(exports: str | list[str] = DEFAULT_EXPORTS, port: int = 8000, verbose: bool = False) -> Server:
    """A server (not yet serving) for the page and the exports (export folders, or folders holding exports; the
    first found is the page's default); port 0 picks a free one. Raises ServeError."""
    named, index = build_index([exports] if isinstance(exports, str) else list(exports))
    if not os.path.isdir(os.path.join(WEB_DIR, RUNTIME_DIR)):
        raise ServeError(f"no onnxruntime-web in {os.path.join(WEB_DIR, RUNTIME_DIR)}: run `npm ci` in {WEB_DIR} first")
    index_dir = tempfile.mkdtemp(prefix="pixelcnn-web-index-")  # a file, so it is served (and gzipped) like the rest
    with open(os.path.join(index_dir, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)
    # The runtime is a root of its own (checked first): web/node_modules may be a symlink to a shared copy. Each
    # export's prefix comes before /exports/, which holds only the index.
    mounts = {f"/web/{RUNTIME_DIR}/": os.path.join(WEB_DIR, RUNTIME_DIR), "/web/": WEB_DIR,
              **{f"/exports/{name}/": os.path.abspath(folder) for name, folder in named.items()}, "/exports/": index_dir,
              "/export/": os.path.abspath(next(iter(named.values()))), "/pretrained/": os.path.join(ROOT, "pretrained")}
    handler = type("MountedHandler", (Handler,), {"mounts": mounts, "home": "/web/"})
    try:
        server = Server(("127.0.0.1", port), functools.partial(handler, directory=WEB_DIR))
    except OSError as e:
        shutil.rmtree(index_dir, ignore_errors=True)
        raise ServeError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}") from None
    default = next(iter(named.values()))
    warm([os.path.join(WEB_DIR, RUNTIME_DIR, name) for name in ("ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")]
         + [os.path.join(default, read_manifest(default).graph_file(PAGE_BACKEND).path)])  # the first load's largest files
    server.verbose, server.exports, server.index_dir = verbose, named, index_dir
    return server


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")  # one line, no usage block: the CLIs' error shape


def parse_args(argv):
    parser = ArgumentParser(prog=PROG, description="Serve the in-browser sampling page and an export on 127.0.0.1.")
    parser.add_argument("--export", action="append", metavar="DIR",
                        help="an export directory, or a folder holding exports, for the page's model picker; repeat for more "
                        "(default: every export in pretrained/); the first is the page's default")
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1; 0 picks a free one (default: 8000)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    return parser, args


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        server = make_server(args.export or [DEFAULT_EXPORTS], args.port, args.verbose)
    except ServeError as e:
        parser.error(str(e))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        # A service manager's or a test's stop (SIGTERM) ends like Ctrl-C: server_close removes the index folder. Set
        # before the line below, which tells a waiting caller it may stop the server.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        print(f"serving {', '.join(server.exports)} at {url} (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
