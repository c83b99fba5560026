"""The resumable, checksummed downloader against a local HTTP server."""

from __future__ import annotations

import hashlib
import os

import pytest

from bench.assets.download import cached_or_download, download, sha256_file
from bench.assets.errors import ChecksumError, DownloadError

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)  # a bit more than 3 chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_full_download(http_server, tmp_path):
    http_server.files["/w.bin"] = PAYLOAD
    dest = tmp_path / "w.bin"
    assert download(http_server.url("/w.bin"), dest, sha256=SHA) == SHA
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.bin.part").exists()
    assert http_server.requests_for("/w.bin") == [
        {"path": "/w.bin", "range": None, "status": 200, "sent": len(PAYLOAD)}
    ]


def test_resume_requests_only_the_missing_bytes(http_server, tmp_path):
    http_server.files["/w.bin"] = PAYLOAD
    dest = tmp_path / "w.bin"
    cut = 1_000_003
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD[:cut])
    assert download(http_server.url("/w.bin"), dest, sha256=SHA) == SHA
    assert dest.read_bytes() == PAYLOAD
    (req,) = http_server.requests_for("/w.bin")
    assert req["range"] == f"bytes={cut}-"
    assert req["status"] == 206
    assert req["sent"] == len(PAYLOAD) - cut


def test_server_ignoring_range_restarts_from_zero(http_server, tmp_path):
    http_server.files["/w.bin"] = PAYLOAD
    http_server.ignore_range = True
    dest = tmp_path / "w.bin"
    (tmp_path / "w.bin.part").write_bytes(b"garbage that must not survive")
    assert download(http_server.url("/w.bin"), dest, sha256=SHA) == SHA
    assert dest.read_bytes() == PAYLOAD
    assert http_server.requests_for("/w.bin")[0]["status"] == 200


def test_complete_part_file_and_416(http_server, tmp_path):
    http_server.files["/w.bin"] = PAYLOAD
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD)
    assert download(http_server.url("/w.bin"), tmp_path / "w.bin", sha256=SHA) == SHA
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    assert http_server.requests_for("/w.bin")[0]["status"] == 416


def test_tampered_file_is_refused_and_not_kept(http_server, tmp_path):
    tampered = bytearray(PAYLOAD)
    tampered[12345] ^= 0xFF
    http_server.files["/w.bin"] = bytes(tampered)
    dest = tmp_path / "w.bin"
    with pytest.raises(ChecksumError, match="sha256"):
        download(http_server.url("/w.bin"), dest, sha256=SHA)
    assert not dest.exists()
    assert not (tmp_path / "w.bin.part").exists()


def test_existing_file_survives_a_failed_download(http_server, tmp_path):
    http_server.files["/w.bin"] = b"not the payload"
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"previous good file")
    with pytest.raises(ChecksumError):
        download(http_server.url("/w.bin"), dest, sha256=SHA)
    assert dest.read_bytes() == b"previous good file"


def test_sha256_prefix_is_checked(http_server, tmp_path):
    http_server.files["/w.bin"] = PAYLOAD
    assert download(http_server.url("/w.bin"), tmp_path / "a", sha256_prefix=SHA[:8]) == SHA
    with pytest.raises(ChecksumError):
        download(http_server.url("/w.bin"), tmp_path / "b", sha256_prefix="00000000" if SHA[:8] != "00000000" else "1")


def test_http_error_and_unreachable_host(http_server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(http_server.url("/missing.bin"), tmp_path / "m")
    with pytest.raises(DownloadError):
        download("http://127.0.0.1:9/nothing", tmp_path / "n", timeout=2)
    assert not (tmp_path / "m").exists()


def test_cached_file_is_reused_without_request(http_server, tmp_path):
    http_server.files["/w.bin"] = PAYLOAD
    dest = tmp_path / "w.bin"
    dest.write_bytes(PAYLOAD)
    assert cached_or_download(http_server.url("/w.bin"), dest, sha256=SHA) == SHA
    assert http_server.log == []
    dest.write_bytes(b"corrupted cache")
    assert cached_or_download(http_server.url("/w.bin"), dest, sha256=SHA) == SHA
    assert sha256_file(dest) == SHA
    assert len(http_server.log) == 1
