"""Where things live: the declarations the benchmark reads, and the folders it writes.

**Declaration folders** (read only): the method cards (``methods/*.yaml``) and the dataset manifests
(``datasets/*.yaml`` with their ``checksums.lock``). :func:`methods_dir` and :func:`datasets_dir` take the first of

1. ``$BENCH_PROJECT/methods`` (``/datasets``) when ``$BENCH_PROJECT`` is set (used as it is, even when empty);
2. the checkout around the package (``bench/`` beside ``methods/`` and ``pyproject.toml``: a clone, an editable
   install, an unpacked sdist) -- its own files, as they are edited;
3. ``./methods`` (``./datasets``) of the current directory when it holds at least one ``*.yaml``/``*.yml`` file: a
   user's own cards replace the packaged ones as a whole (copy the packaged folder to start from it); each kind is
   decided on its own, so ``./methods`` alone keeps the packaged manifests;
4. the copy an installed wheel carries, :data:`SHIPPED_DIR` (``bench/_project/methods`` and ``/datasets``, mapped
   there by ``pyproject.toml``), never written to.

**Writable folders** are never inside the installed package. The project folder, :func:`project_root`, is
``$BENCH_PROJECT``, else the checkout, else the current directory; it holds ``reports/`` (:func:`reports_dir`) and
``schemas/`` (:func:`schemas_dir`) -- for a checkout exactly where they have always been. Fetched dataset data
(:func:`data_dir`) goes to ``$BENCH_DATA``, else beside the manifests (``datasets/<name>/`` of ``$BENCH_PROJECT``, the
checkout or the current directory), else -- manifests read from the packaged copy -- to ``$BENCH_HOME/datasets``.
Converted assets and downloads go to :func:`bench_home` (``$BENCH_HOME`` or the user's cache folder).

Example (a wheel installed in a virtual environment, run from ``~/work`` which has no ``methods/``)::

    methods_dir()   # .../site-packages/bench/_project/methods
    reports_dir()   # ~/work/reports
    data_dir()      # ~/.cache/robust-sr-bench/datasets
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_DIR = PACKAGE_DIR / "_project"
"""The declarations a wheel carries (``methods/``, ``datasets/``); absent from a checkout, which has its own."""
PROJECT_ENV = "BENCH_PROJECT"
DATA_ENV = "BENCH_DATA"
DECLARATION_SUFFIXES = (".yaml", ".yml")


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


def checkout_root() -> Path | None:
    """The source checkout around the package (the folder holding ``bench/``, ``methods/`` and ``pyproject.toml``),
    or ``None`` for an installed package (``bench/`` in site-packages)."""
    root = PACKAGE_DIR.parent
    if (root / "methods").is_dir() and (root / "pyproject.toml").is_file():
        return root
    return None


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The commit of the checkout around the package (:func:`checkout_root`; stamped on runs and checkpoints):
    ``None`` for an installed package -- never the commit of a repository that happens to hold its site-packages --,
    outside a git checkout, or without git. Asked once per process."""
    import subprocess

    root = checkout_root()
    if root is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def project_root() -> Path:
    """The project folder, parent of the writable ``reports/`` and ``schemas/`` (and of relative paths in training
    recipes): ``$BENCH_PROJECT``, the checkout around the package, or the current directory -- never the installed
    package."""
    env = os.environ.get(PROJECT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    checkout = checkout_root()
    return checkout if checkout is not None else Path.cwd()


def _holds_declarations(folder: Path) -> bool:
    """Whether ``folder`` holds at least one YAML file (an unreadable folder does not)."""
    try:
        return folder.is_dir() and any(p.suffix in DECLARATION_SUFFIXES and p.is_file() for p in folder.iterdir())
    except OSError:
        return False


def declarations_dir(kind: str) -> Path:
    """The folder of one kind of declarations, ``"methods"`` or ``"datasets"`` (the order: the module docstring)."""
    env = os.environ.get(PROJECT_ENV)
    if env:
        return Path(env).expanduser().resolve() / kind
    checkout = checkout_root()
    if checkout is not None:
        return checkout / kind
    local = Path.cwd() / kind
    if _holds_declarations(local):
        return local
    return SHIPPED_DIR / kind


def methods_dir() -> Path:
    """The folder of the method cards (:func:`declarations_dir`)."""
    return declarations_dir("methods")


def datasets_dir() -> Path:
    """The folder of the dataset manifests and their ``checksums.lock`` (:func:`declarations_dir`)."""
    return declarations_dir("datasets")


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` lies in the installed package (the packaged declarations): a place never written to."""
    return Path(path).expanduser().resolve().is_relative_to(PACKAGE_DIR)


def reports_dir() -> Path:
    """Where runs are written: ``<project>/reports`` (:func:`project_root`; the current directory's for a wheel)."""
    return project_root() / "reports"


def schemas_dir() -> Path:
    """Where ``python -m bench schema`` writes the JSON Schemas by default: ``<project>/schemas``."""
    return project_root() / "schemas"


def data_dir() -> Path:
    """Where fetched datasets land: ``$BENCH_DATA``; else beside the manifests (``datasets/``) when they are the
    user's; else, for the packaged manifests, ``$BENCH_HOME/datasets`` (:func:`bench_home`)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    manifests = datasets_dir()
    return bench_home() / "datasets" if is_shipped(manifests) else manifests
