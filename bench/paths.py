"""Where things live: the user's cache (``$BENCH_HOME``), the project's declaration folders and reports."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent


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
