"""serve.compression: which Content-Encoding a request gets, pre-compressed siblings, and the gzip cache."""
from __future__ import annotations

import gzip
import os

import pytest

from serve.compression import GzipCache, accepted_encodings, encoded_body


@pytest.mark.parametrize("header, codings", [
    ("gzip, deflate, br, zstd", {"gzip", "deflate", "br", "zstd"}),
    ("gzip;q=0, br", {"br"}),
    ("*;q=0.5, br;q=0", {"gzip"}),
    ("identity", {"identity"}),
    ("gzip;q=abc", set()),
    ("", set()),
    (None, set()),
])  # fmt: skip
def test_accept_encoding_is_read_with_its_weights(header, codings):
    assert accepted_encodings(header) - {"identity"} == codings - {"identity"}


def write(path, data: bytes, mtime: float) -> str:
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))
    return str(path)


def test_gzip_on_the_fly_decompresses_to_the_file(tmp_path):
    data = b"wasm bytes " * 5000
    path = write(tmp_path / "a.wasm", data, 1_000_000)
    coding, body = encoded_body(path, "gzip, deflate, br")
    assert coding == "gzip" and gzip.decompress(body) == data and len(body) < len(data) / 10
    assert encoded_body(path, "br") is None  # no .br beside it, and no brotli encoder in the stdlib
    assert encoded_body(path, None) is None and encoded_body(path, "identity") is None
    assert encoded_body(write(tmp_path / "small.json", b"{}", 1_000_000), "gzip") is None  # too small to gain
    assert encoded_body(write(tmp_path / "a.png", data, 1_000_000), "gzip") is None  # not a type that shrinks


def test_a_fresh_sibling_is_sent_and_a_stale_one_is_not(tmp_path):
    data = b"x" * 4096
    path = write(tmp_path / "m.mjs", data, 2_000_000)
    write(tmp_path / "m.mjs.br", b"brotli bytes", 2_000_001)
    write(tmp_path / "m.mjs.gz", gzip.compress(data), 2_000_001)
    assert encoded_body(path, "gzip, br") == ("br", b"brotli bytes")
    assert encoded_body(path, "gzip")[0] == "gzip" and gzip.decompress(encoded_body(path, "gzip")[1]) == data
    os.rename(tmp_path / "m.mjs.br", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", tmp_path / "m.mjs.br")
    assert encoded_body(path, "br") is None  # a symlinked sibling could lead out of the served folders
    os.remove(tmp_path / "m.mjs.br")
    os.rename(tmp_path / "elsewhere", tmp_path / "m.mjs.br")
    os.utime(tmp_path / "m.mjs.br", (1_000_000, 1_000_000))  # the file changed after its .br was made
    coding, body = encoded_body(path, "br, gzip")
    assert coding == "gzip" and gzip.decompress(body) == data


def test_the_cache_compresses_an_edited_file_again_and_stays_under_its_limit(tmp_path):
    cache = GzipCache(limit=3000)
    path = write(tmp_path / "a.js", os.urandom(2000), 1_000_000)  # random: gzip cannot shrink it
    first = cache.get(path, os.stat(path))
    assert cache.get(path, os.stat(path)) is first  # compressed once
    write(path, b"y" * 2000, 1_000_005)
    assert gzip.decompress(cache.get(path, os.stat(path))) == b"y" * 2000
    other = write(tmp_path / "b.js", os.urandom(2000), 1_000_000)
    cache.get(other, os.stat(other))
    assert sum(map(len, cache.bodies.values())) <= 3000


def test_concurrent_requests_compress_a_file_once(tmp_path, monkeypatch):
    import threading

    import serve.compression as compression

    calls = []
    real = gzip.compress
    monkeypatch.setattr(compression.gzip, "compress", lambda data, **kw: calls.append(1) or real(data, **kw))
    cache = GzipCache()
    path = write(tmp_path / "big.wasm", b"z" * 3_000_000, 1_000_000)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(path, os.stat(path)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4 and all(r is results[0] for r in results)
