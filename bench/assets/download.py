"""A resumable, checksummed HTTP downloader on the standard library (urllib).

The file streams to ``<dest>.part`` while its sha256 is computed. When a ``.part`` file exists, the download resumes
with an HTTP ``Range`` request: a ``206 Partial Content`` answer is appended, a ``200`` answer (a server that ignores
ranges) restarts from zero. The finished file is renamed to ``dest`` only when its sha256 matches; on a mismatch the
bad bytes are deleted and :class:`~bench.assets.errors.ChecksumError` is raised. A progress bar (tqdm) is shown only
when stderr is a terminal.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from bench.assets.errors import ChecksumError, DownloadError

logger = logging.getLogger(__name__)

USER_AGENT = "robust-sr-bench/0.1 (+python-urllib)"
CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def sha256_file(path: str | os.PathLike[str], chunk: int = CHUNK) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _progress(total: int | None, initial: int, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _copy(resp, out: BinaryIO, hasher, bar) -> int:
    n = 0
    while block := resp.read(CHUNK):
        out.write(block)
        hasher.update(block)
        n += len(block)
        if bar is not None:
            bar.update(len(block))
    return n


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 60.0,
) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and return the file's sha256.

    Args:
        url: http(s) or file URL.
        dest: final path; its folder is created. An existing ``dest`` is overwritten only after a successful check.
        sha256: expected lower-case hex digest; ``None`` accepts any content (the caller records the digest).
        sha256_prefix: expected start of the digest (checked when given, whether or not ``sha256`` is).
        timeout: seconds for the connection and for each read.

    Raises:
        ChecksumError: the digest differs (the downloaded bytes are deleted; ``dest`` is not touched).
        DownloadError: HTTP error, timeout or short read (the ``.part`` file is kept for a later resume).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    hasher = hashlib.sha256()
    if offset:
        with open(part, "rb") as fh:
            while block := fh.read(CHUNK):
                hasher.update(block)
        logger.info("resuming %s at byte %d", url, offset)
    else:
        logger.info("downloading %s", url)
    try:
        try:
            resp = _open(url, offset, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            # Range not satisfiable: the .part file may already hold the whole file, else start again.
            exc.close()
            if sha256 is not None and hasher.hexdigest() == sha256:
                os.replace(part, dest)
                return sha256
            logger.info("server refused the range of %s; restarting", url)
            part.unlink()
            offset = 0
            hasher = hashlib.sha256()
            resp = _open(url, 0, timeout)
        with resp:
            status = getattr(resp, "status", None) or 200
            expected_len = resp.headers.get("Content-Length")
            if offset and status == 206:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != offset:
                    raise DownloadError(f"{url}: bad Content-Range {resp.headers.get('Content-Range')!r} for {offset}")
                mode = "ab"
            elif status == 200:
                if offset:
                    logger.info("server ignored the range request for %s; restarting from byte 0", url)
                    offset = 0
                    hasher = hashlib.sha256()
                mode = "wb"
            else:
                raise DownloadError(f"{url}: unexpected HTTP status {status}")
            total = offset + int(expected_len) if expected_len is not None else None
            bar = _progress(total, offset, dest.name)
            try:
                with open(part, mode) as out:
                    received = _copy(resp, out, hasher, bar)
            finally:
                if bar is not None:
                    bar.close()
            if expected_len is not None and received != int(expected_len):
                raise DownloadError(f"{url}: short read, {received} of {expected_len} bytes (kept {part} to resume)")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or repr(exc)
        kept = f" (partial data kept in {part} to resume)" if part.exists() and part.stat().st_size else ""
        raise DownloadError(f"{url}: {reason}{kept}") from exc
    digest = hasher.hexdigest()
    wrong = (sha256 is not None and digest != sha256.lower()) or (
        sha256_prefix is not None and not digest.startswith(sha256_prefix.lower())
    )
    if wrong:
        part.unlink(missing_ok=True)
        want = sha256 or f"{sha256_prefix}..."
        raise ChecksumError(f"{url}: sha256 {digest} != expected {want}; the file was deleted")
    os.replace(part, dest)
    logger.info("stored %s (sha256 %s)", dest, digest)
    return digest


def cached_or_download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 60.0,
) -> str:
    """Reuse ``dest`` when it exists and matches ``sha256`` (re-hashed); download it otherwise. Returns the digest."""
    dest = Path(dest)
    if dest.is_file() and sha256 is not None:
        digest = sha256_file(dest)
        if digest == sha256:
            logger.info("using cached %s", dest)
            return digest
        logger.warning("cached %s has sha256 %s, expected %s; downloading again", dest, digest, sha256)
        dest.unlink()
    return download(url, dest, sha256=sha256, sha256_prefix=sha256_prefix, timeout=timeout)
