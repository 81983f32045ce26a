"""Content-Encoding for serve.web: a fresh pre-compressed .br/.gz beside a file, else gzip made once and kept."""
from __future__ import annotations

import collections
import email.utils
import gzip
import io
import os
import threading

# Text, wasm and ONNX shrink (onnxruntime-web's 14 MB wasm gzips to 3.7 MB); PNGs and the like would not.
COMPRESSIBLE = frozenset({".wasm", ".mjs", ".js", ".json", ".html", ".css", ".onnx", ".npy", ".map", ".txt", ".md"})
MIN_BYTES = 1024  # below this the gzip header and a second round trip of CPU outweigh the saving
GZIP_LEVEL = 6  # level 9 takes 1.6x as long for 0.4 % fewer bytes on the wasm
CACHE_BYTES = 64 << 20  # compressed bodies kept in memory; the page needs about 5 MB of them
SIBLINGS = (("br", ".br"), ("gzip", ".gz"))  # preferred first: brotli is smaller, and only a file can offer it


def accepted_encodings(header: str | None) -> set[str]:
    """The codings an Accept-Encoding header allows (q=0 excludes one; `*` allows gzip and br)."""
    allowed, refused = set(), set()
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # a malformed weight: do not guess that the client copes
        (allowed if q > 0 else refused).add(name)
    if "*" in allowed:
        allowed |= {"gzip", "br"}
    return {name for name in allowed if name not in refused and name != "*"}


class GzipCache:
    """gzip bodies of files, keyed by (path, size, mtime) so an edited file is compressed again; thread-safe."""

    def __init__(self, limit: int = CACHE_BYTES):
        self.limit = limit
        self.bodies: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self.lock = threading.Lock()  # guards bodies and busy
        # One lock per file version: two requests for the wasm compress it once, and a small file never waits
        # behind the wasm's 0.5 s.
        self.busy: dict[tuple, threading.Lock] = {}

    def get(self, path: str, stat: os.stat_result) -> bytes:
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self.lock:
            file_lock = self.busy.setdefault(key, threading.Lock())
        with file_lock:
            with self.lock:
                body = self.bodies.get(key)
            if body is None:
                with open(path, "rb") as f:
                    body = gzip.compress(f.read(), compresslevel=GZIP_LEVEL, mtime=0)  # mtime=0: same bytes every time
            with self.lock:
                self.bodies[key] = body
                self.bodies.move_to_end(key)
                while sum(map(len, self.bodies.values())) > self.limit and len(self.bodies) > 1:
                    self.busy.pop(self.bodies.popitem(last=False)[0], None)
        return body


CACHE = GzipCache()


def warm(paths) -> threading.Thread:
    """gzip these files in a background thread, so the first visitor does not wait for the 14 MB wasm's 0.5 s."""

    def run():
        for path in paths:
            if os.path.isfile(path) and os.path.splitext(path)[1].lower() in COMPRESSIBLE:
                CACHE.get(path, os.stat(path))

    thread = threading.Thread(target=run, name="gzip-warm", daemon=True)
    thread.start()
    return thread


def encoded_body(path: str, accept_encoding: str | None) -> tuple[str, bytes] | None:
    """(coding, body) to send for the file at path, or None for the file as it is."""
    if os.path.splitext(path)[1].lower() not in COMPRESSIBLE:
        return None
    codings = accepted_encodings(accept_encoding)
    if not codings:
        return None
    stat = os.stat(path)
    for coding, suffix in SIBLINGS:
        sibling = path + suffix
        # A sibling older than its file was made from an older version: sending it would send the wrong bytes.
        # A symlinked one could point outside the served folders: never followed.
        if (coding in codings and os.path.isfile(sibling) and not os.path.islink(sibling)
                and os.stat(sibling).st_mtime_ns >= stat.st_mtime_ns):
            with open(sibling, "rb") as f:
                return coding, f.read()
    if "gzip" in codings and stat.st_size >= MIN_BYTES:
        return "gzip", CACHE.get(path, stat)
    return None


class CompressingMixin:
    """For http.server.SimpleHTTPRequestHandler: regular files go out gzip/br-encoded when the client accepts it."""

    vary = False

    def send_head(self):
        path = self.translate_path(self.path)
        folder = self.path.split("?")[0].split("#")[0].endswith("/")
        if folder and os.path.isdir(path) and os.path.isfile(os.path.join(path, "index.html")):
            path = os.path.join(path, "index.html")  # what the stdlib sends for a folder: its index.html
            folder = False
        folder = folder and os.path.isdir(path)  # a handler may already have mapped a folder's URL to its index.html
        self.vary = os.path.splitext(path)[1].lower() in COMPRESSIBLE  # caches must key on Accept-Encoding
        if not self.vary or folder or not os.path.isfile(path):
            return super().send_head()  # redirects, 404s and files sent as they are: the stdlib's answers
        encoded = encoded_body(path, self.headers.get("Accept-Encoding"))
        if encoded is None:
            return super().send_head()
        coding, body = encoded
        mtime = int(os.stat(path).st_mtime)
        if self.not_modified_since(mtime):
            self.send_response(304)
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", self.date_time_string(mtime))
        self.end_headers()
        return io.BytesIO(body)

    def not_modified_since(self, mtime: int) -> bool:
        since = self.headers.get("If-Modified-Since")
        if not since or "If-None-Match" in self.headers:
            return False
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return when.tzinfo is not None and mtime <= when.timestamp()

    def end_headers(self):
        if getattr(self, "vary", False):
            self.send_header("Vary", "Accept-Encoding")
        super().end_headers()
