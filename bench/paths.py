"""Where things live: the user's cache (``$BENCH_HOME``), the project's declaration folders and reports."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent


def safe_filename(name: str) -> str:
    """``name`` made into one file or folder name that stays inside the folder it is joined to.

    Letters and digits (``str.isalnum``, so Unicode letters too), ``-``, ``_`` and ``.`` are kept; every other
    character (``/``, ``\\``, spaces, ``:``, ``@``, control characters) becomes ``_``, one for one, so the result never
    holds a path separator. A result that would be empty or only dots (``""``, ``.``, ``..``) has each character
    replaced by ``_`` instead (at least one): it can neither name the folder itself nor its parent. Every other name
    comes out as the report and the gallery have always written it (``x4@pgd`` -> ``x4_pgd``, ``a/b`` -> ``a_b``), so
    the files of stored runs are still found. Different names may give the same result (``a/b`` and ``a_b``);
    callers that must keep them apart add a hash (:func:`bench.report.tables.table_paths`).

    Args:
        name: any string (other objects are converted with ``str``).

    Returns:
        A non-empty name of the kept characters and ``_``, neither ``.`` nor ``..``.
    """
    text = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))
    if not text.strip("."):
        return "_" * max(1, len(text))
    return text


def bench_home() -> Path:
    """The cache directory for converted assets and downloads: ``$BENCH_HOME`` or the user's cache dir."""
    env = os.environ.get("BENCH_HOME")
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("robust-sr-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def project_root() -> Path:
    """The folder with ``methods/`` and ``datasets/``: ``$BENCH_PROJECT``, the checkout around the package, or cwd."""
    env = os.environ.get("BENCH_PROJECT")
    if env:
        return Path(env).expanduser().resolve()
    checkout = PACKAGE_DIR.parent
    if (checkout / "methods").is_dir():
        return checkout
    return Path.cwd()


def methods_dir() -> Path:
    return project_root() / "methods"


def datasets_dir() -> Path:
    return project_root() / "datasets"


def reports_dir() -> Path:
    return project_root() / "reports"
