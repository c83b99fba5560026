"""Fetching, verifying and locating the manifest datasets: what ``python -m bench datasets ...`` does.

Where things go: a dataset ``NAME`` lands in ``<data root>/NAME/`` where the data root (:func:`bench.paths.data_dir`)
is ``$BENCH_DATA``, else the project's ``datasets/`` folder beside the manifests (git-ignored sub-folders), else --
manifests read from an installed wheel's packaged copy -- ``$BENCH_HOME/datasets``. Downloads are cached in
``<data root>/.downloads/`` (a ``.part`` file resumes). The checksum lock is ``datasets/checksums.lock`` beside the
manifests (commit it); beside the packaged manifests, which are never written, the shipped lock is read and new
checksums go to ``<data root>/checksums.lock`` (:attr:`DatasetStore.lock_path`), both read on every check.

A fetch, step by step (nothing is ever left looking ready half-way):

1. each source archive is downloaded (resumable; URL from ``--url``, ``$BENCH_DATASET_MIRROR`` + file name, or the
   manifest) or taken from ``--from`` (a local archive, or a folder holding the archives by name, or the unpacked
   dataset folder itself);
2. its size and sha256 are checked against the manifest -- or, for ``sha256: lock``, against the lock file when it has
   an entry -- *before* anything is extracted; a mismatch is refused and a bad download deleted;
3. the archives are extracted safely (:mod:`bench.data.extract`) into ``<data root>/.tmp-NAME-<pid>/``, bounded in
   total size (``max_extracted_bytes``, default 8x the archives' size plus 64 MiB);
4. the layout is checked: at every declared scale the HR/LR patterns must match files (a count differing from the
   manifest's ``images`` is a warning, recorded);
5. a ready-marker ``.ready.json`` is written (manifest sha256, sources with their sha256, every file with size and
   sha256, the image counts), the temporary folder is renamed to ``NAME/`` and only then are new checksums written to
   the lock file.

Status (``datasets list``): ``missing`` (nothing there), ``partial`` (a download or extraction in progress or broken,
or a folder without marker), ``ready`` (marker present, manifest unchanged, same files and sizes), ``modified`` (files
added, removed or resized, or the manifest edited since the fetch). ``verify`` re-hashes every file.

Length (over ~500 lines): one class, :class:`DatasetStore`, whose fetch is a single transaction -- resolve, verify,
extract, check the layout, mark ready, rename, write the lock -- sharing the temporary folder and the lock entries
between its steps; split across modules, those steps would pass that state through arguments and the ordering
guarantee (nothing looks ready half-way) would no longer be visible in one place. Lock-file and tree-hash helpers are
the candidates to move out if it grows.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.assets.download import download, sha256_file
from bench.assets.errors import AssetError, ChecksumError
from bench.data.extract import UnsafeArchiveError, copy_tree, extract_archive
from bench.data.manifest import DatasetManifest, SourceFile, load_manifest, load_manifests
from bench.data.pairing import scan
from bench.paths import DATA_ENV, is_shipped

logger = logging.getLogger(__name__)

MIRROR_ENV = "BENCH_DATASET_MIRROR"
READY_MARKER = ".ready.json"
DOWNLOADS = ".downloads"
TREE = "<unpacked folder>"
_EXTRA_BYTES = 64 << 20


class DatasetError(AssetError):
    """A dataset could not be fetched or verified (bad layout, no source, manual download needed, ...)."""


class DatasetNotReadyError(FileNotFoundError):
    """The dataset is not fetched (or is partial or modified); the message holds the exact command that fixes it,
    and ``fix`` holds that command as data (the runner's failed cells carry it to the report)."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class Status:
    """What ``datasets list`` shows for one dataset."""

    state: str  # missing | partial | ready | modified
    size_bytes: int = 0
    images: int | None = None
    detail: str = ""


@dataclass
class FetchResult:
    path: Path
    images: dict[int, int] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    already: bool = False


def data_root() -> Path:
    """Where datasets land: ``$BENCH_DATA``, else the project's ``datasets/`` folder, else (packaged manifests)
    ``$BENCH_HOME/datasets``; :func:`bench.paths.data_dir`."""
    from bench.paths import data_dir

    return data_dir()


# ---------------------------------------------------------------------------------------------------- lock file
def read_lock(path: Path) -> dict[tuple[str, str], tuple[str, int]]:
    """(dataset, file) -> (sha256, size) from a lock file (``<sha256>  <size>  <dataset>/<file>`` lines)."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            sha, size, key = line.split(None, 2)
            dataset, file = key.split("/", 1)
            out[(dataset, file)] = (sha.lower(), int(size))
        except ValueError:
            raise DatasetError(f"{path}:{n}: expected '<sha256>  <size>  <dataset>/<file>', got {line!r}") from None
    return out


def write_lock(path: Path, entries: dict[tuple[str, str], tuple[str, int]]) -> None:
    header = (
        "# Checksums recorded by the first verified fetch of datasets that publish none (python -m bench datasets\n"
        "# fetch). Every later fetch is checked against them. Commit this file. Format: sha256  size  dataset/file\n"
    )
    lines = [f"{sha}  {size}  {d}/{f}" for (d, f), (sha, size) in sorted(entries.items())]
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def tree_digest(files: dict[str, tuple[int, str]]) -> str:
    """One sha256 over a folder's (relative path, size, sha256) triples: the identity of an unpacked folder."""
    h = hashlib.sha256()
    for rel in sorted(files):
        size, sha = files[rel]
        h.update(f"{rel}\0{size}\0{sha}\n".encode())
    return h.hexdigest()


def _hash_tree(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != READY_MARKER:
            out[p.relative_to(root).as_posix()] = (p.stat().st_size, sha256_file(p))
    return out


def _unwrap(folder: Path) -> None:
    """``X/X/...`` -> ``X/...``: an archive declared to unpack into ``X`` that holds a single top folder ``X`` itself
    (both ways of zipping a folder are common) lands the same way."""
    entries = list(folder.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name == folder.name:
        inner = folder.with_name(folder.name + ".unwrap")
        os.replace(entries[0], inner)
        folder.rmdir()
        os.replace(inner, folder)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ---------------------------------------------------------------------------------------------------- the store
class DatasetStore:
    """The manifests of a folder, the data root and the lock file.

    Args:
        manifest_dir: folder of ``*.yaml`` manifests (default: the project's ``datasets/``).
        root: where datasets land (default: :func:`data_root`).
        lock_path: the checksum lock that new checksums are written to (default: ``<manifest_dir>/checksums.lock``;
            ``<root>/checksums.lock`` when the manifests are the installed package's, whose own lock,
            :attr:`shipped_lock`, is then read too and never written).
    """

    def __init__(
        self,
        manifest_dir: str | Path | None = None,
        root: str | Path | None = None,
        lock_path: str | Path | None = None,
    ) -> None:
        from bench.paths import datasets_dir

        self.manifest_dir = Path(manifest_dir) if manifest_dir is not None else datasets_dir()
        self.root = Path(root) if root is not None else data_root()
        beside = self.manifest_dir / "checksums.lock"
        self.shipped_lock: Path | None = beside if is_shipped(self.manifest_dir) else None
        if lock_path is not None:
            self.lock_path = Path(lock_path)
        else:
            self.lock_path = self.root / "checksums.lock" if self.shipped_lock is not None else beside
        self.manifests, self.invalid = load_manifests(self.manifest_dir)

    def read_locks(self) -> dict[tuple[str, str], tuple[str, int]]:
        """The recorded checksums: :attr:`lock_path`'s, and the packaged lock's (:attr:`shipped_lock`, which wins)."""
        entries = read_lock(self.lock_path)
        if self.shipped_lock is not None:
            entries.update(read_lock(self.shipped_lock))
        return entries

    # ------------------------------------------------------------------------------------------------- lookup
    def get(self, name: str) -> DatasetManifest:
        """The manifest of ``name``; its :class:`~bench.data.manifest.ManifestError` (every problem) when it is
        invalid; ``KeyError`` with the nearest names when there is none."""
        if name in self.manifests:
            return self.manifests[name]
        if f"{name}.yaml" in self.invalid:
            load_manifest(self.manifest_dir / f"{name}.yaml")  # raises the located problems (or it was fixed since)
            self.manifests, self.invalid = load_manifests(self.manifest_dir)
            return self.get(name)
        close = difflib.get_close_matches(name, list(self.manifests), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no dataset manifest {name!r} in {self.manifest_dir}.{hint} Known: {', '.join(self.manifests)}")

    def folder(self, name: str) -> Path:
        return self.root / name

    def marker(self, name: str) -> dict | None:
        path = self.folder(name) / READY_MARKER
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------------------------------------- status
    def status(self, name: str) -> Status:
        m = self.get(name)
        if m.kind == "embedded":
            return Status("ready", 0, len(m.embedded_images), "ships in Python packages")
        folder = self.folder(name)
        temps = list(self.root.glob(f".tmp-{name}-*")) if self.root.is_dir() else []
        parts = [self.root / DOWNLOADS / (s.file + ".part") for s in m.sources]
        in_progress = temps or any(p.exists() for p in parts)
        marker = self.marker(name)
        if marker is None:
            if folder.exists() or in_progress:
                why = "no ready-marker" if folder.exists() else "download or extraction not finished"
                return Status("partial", _du(folder), None, why)
            return Status("missing")
        images = marker.get("images", {}).get(str(m.default_scale))
        size = sum(v[0] for v in marker.get("files", {}).values())
        problems = self._quick_problems(m, marker)
        if problems:
            return Status("modified", _du(folder), images, "; ".join(problems[:3]))
        return Status("ready", size, images, "")

    def _quick_problems(self, m: DatasetManifest, marker: dict) -> list[str]:
        problems = []
        if marker.get("manifest_sha256") != m.digest():
            problems.append("the manifest changed since the fetch")
        folder = self.folder(m.name)
        recorded = marker.get("files", {})
        present = {
            p.relative_to(folder).as_posix(): p.stat().st_size
            for p in folder.rglob("*")
            if p.is_file() and p.name != READY_MARKER
        }
        missing = sorted(set(recorded) - set(present))
        extra = sorted(set(present) - set(recorded))
        resized = sorted(k for k in set(recorded) & set(present) if recorded[k][0] != present[k])
        for what, items in (("missing", missing), ("added", extra), ("resized", resized)):
            if items:
                problems.append(f"{len(items)} files {what} ({', '.join(items[:3])}{' ...' if len(items) > 3 else ''})")
        return problems

    def require_ready(self, name: str) -> Path:
        """The dataset's folder; :class:`DatasetNotReadyError` with the exact command when it is not ready."""
        m = self.get(name)
        st = self.status(name)
        if st.state == "ready":
            return self.folder(name)
        cmd = m.fetch_command()
        if st.state == "modified":
            raise DatasetNotReadyError(
                f"dataset {name!r} in {self.folder(name)} was modified since it was fetched ({st.detail}); "
                f"run: {cmd} --force",
                fix=f"{cmd} --force",
            )
        where = f"; {m.manual}" if m.manual and not m.fetchable else ""
        raise DatasetNotReadyError(
            f"dataset {name!r} is {st.state} in {self.folder(name)}"
            + (f" ({st.detail})" if st.detail else "")
            + f"; run: {cmd}{where}",
            fix=cmd,
        )

    # ------------------------------------------------------------------------------------------------- verify
    def verify(self, name: str) -> list[str]:
        """Re-hash every file of a fetched dataset against its ready-marker and the lock; the problems found."""
        m = self.get(name)
        if m.kind == "embedded":
            return []
        marker = self.marker(name)
        if marker is None:
            return [f"not fetched ({self.status(name).state}); run: {m.fetch_command()}"]
        problems = self._quick_problems(m, marker)
        folder = self.folder(name)
        for rel, (size, sha) in sorted(marker.get("files", {}).items()):
            p = folder / rel
            if p.is_file() and p.stat().st_size == size and sha256_file(p) != sha:
                problems.append(f"{rel}: sha256 differs from the one recorded at fetch time")
        lock = self.read_locks()
        for src in marker.get("sources", []):
            declared = next((s for s in m.sources if s.file == src.get("file")), None)
            want = None
            if declared is not None and not declared.locked:
                want = declared.sha256
            elif (name, src.get("file")) in lock:
                want = lock[(name, src.get("file"))][0]
            if want is not None and src.get("sha256") != want:
                problems.append(f"{src.get('file')}: fetched with sha256 {src.get('sha256')}, expected {want}")
        return problems

    # -------------------------------------------------------------------------------------------------- fetch
    def fetch(
        self,
        name: str,
        *,
        from_paths: tuple[str | Path, ...] = (),
        url: str | None = None,
        force: bool = False,
        keep_archives: bool = False,
        timeout: float = 60.0,
    ) -> FetchResult:
        """Fetch, check, extract and register dataset ``name`` (see the module docstring). Returns where it is."""
        m = self.get(name)
        if m.kind == "embedded":
            raise DatasetError(f"{name} ships in Python packages; there is nothing to fetch")
        if not force and not from_paths and self.status(name).state == "ready":
            return FetchResult(self.folder(name), already=True)
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.read_locks()
        for stale in [*self.root.glob(f".tmp-{name}-*"), *self.root.glob(f".old-{name}-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed fetch (one fetch per dataset at a time)
        tmp = self.root / f".tmp-{name}-{os.getpid()}"
        new_lock: dict[tuple[str, str], tuple[str, int]] = {}
        downloaded: list[Path] = []
        warnings: list[str] = []
        try:
            archives, tree = self._resolve_local(m, from_paths)
            if tree is not None:
                self._import_tree(m, tree, tmp, lock, new_lock, warnings)
                sources = [{"file": TREE, "sha256": new_lock.get((name, TREE), lock.get((name, TREE)))[0]}]
            else:
                checked: list[tuple[SourceFile, Path, str, int]] = []
                for src in m.sources:
                    if src.file in archives:
                        path = archives[src.file]
                        sha, size = self._check_local(m, src, path, lock)
                    else:
                        path = self.root / DOWNLOADS / src.file
                        sha, size = self._download(m, src, path, url, lock, timeout)
                        downloaded.append(path)
                    if src.locked and (name, src.file) not in lock:
                        new_lock[(name, src.file)] = (sha, size)
                    checked.append((src, path, sha, size))
                bound = m.max_extracted_bytes or 8 * sum(size for *_, size in checked) + _EXTRA_BYTES
                tmp.mkdir(parents=True)
                for src, path, _, _ in checked:  # every archive checked before any is extracted
                    written = extract_archive(path, tmp / src.extract_to, bound)
                    bound -= sum(p.stat().st_size for p in written)
                    if src.extract_to:
                        _unwrap(tmp / src.extract_to)
                sources = [
                    {
                        "file": s.file,
                        "sha256": sha,
                        "size": size,
                        "url": s.url,
                        "local": str(p) if s.file in archives else None,
                    }
                    for s, p, sha, size in checked
                ]
            images, failures = self._check_layout(m, tmp, warnings)
            files = _hash_tree(tmp)
            marker = {
                "name": name,
                "manifest_sha256": m.digest(),
                "origin": "folder" if tree is not None else "archives",
                "sources": sources,
                "files": {k: list(v) for k, v in files.items()},
                "images": {str(k): v for k, v in images.items()},
                "failures": {str(k): v for k, v in failures.items()},
                "warnings": warnings,
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / READY_MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
            target = self.folder(name)
            if target.exists():
                old = self.root / f".old-{name}-{os.getpid()}"
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if new_lock:
            write_lock(self.lock_path, {**read_lock(self.lock_path), **new_lock})
            logger.info("recorded %d checksums in %s (commit it)", len(new_lock), self.lock_path)
        if not keep_archives:
            for p in downloaded:
                p.unlink(missing_ok=True)
        return FetchResult(self.folder(name), images, failures, warnings)

    def _resolve_local(
        self, m: DatasetManifest, from_paths: tuple[str | Path, ...]
    ) -> tuple[dict[str, Path], Path | None]:
        """--from paths -> ({source file: local archive}, unpacked folder or None)."""
        archives: dict[str, Path] = {}
        tree: Path | None = None
        by_name = {s.file: s for s in m.sources}
        for raw in from_paths:
            p = Path(raw).expanduser()
            if not p.exists():
                raise FileNotFoundError(f"--from {p}: no such file or folder")
            if p.is_dir():
                held = {f: p / f for f in by_name if (p / f).is_file()}
                if held:
                    archives.update(held)
                elif tree is None:
                    tree = p
                else:
                    raise DatasetError(f"--from: two unpacked folders given ({tree}, {p}); give one")
            elif p.name in by_name:
                archives[p.name] = p
            elif len(m.sources) == 1 and len(from_paths) == 1:
                archives[m.sources[0].file] = p
            else:
                raise DatasetError(
                    f"--from {p}: its file name matches no source of {m.name} ({', '.join(by_name)}); rename it"
                )
        if tree is not None and archives:
            raise DatasetError("--from: give either the archives or one unpacked folder, not both")
        if from_paths and tree is None:
            missing = [f for f in by_name if f not in archives and by_name[f].url is None]
            if missing:
                raise DatasetError(f"--from: no local copy of {missing} (manual download: {m.manual})")
        return archives, tree

    def _expected(self, m: DatasetManifest, src: SourceFile, lock) -> tuple[str | None, int | None]:
        if not src.locked:
            return src.sha256, src.size
        if (m.name, src.file) in lock:
            sha, size = lock[(m.name, src.file)]
            return sha, size
        return None, src.size

    def _check_local(self, m: DatasetManifest, src: SourceFile, path: Path, lock) -> tuple[str, int]:
        sha_want, size_want = self._expected(m, src, lock)
        size = path.stat().st_size
        if size_want is not None and size != size_want:
            raise ChecksumError(f"{path}: {size} bytes, the manifest of {m.name} expects {size_want} for {src.file}")
        sha = sha256_file(path)
        if sha_want is not None and sha != sha_want:
            raise ChecksumError(f"{path}: sha256 {sha} != expected {sha_want} for {src.file}; nothing was extracted")
        if sha_want is None:
            logger.warning(
                "%s: no checksum known for %s; recording sha256 %s (first verified fetch)", m.name, src.file, sha
            )
        return sha, size

    def _url(self, m: DatasetManifest, src: SourceFile, override: str | None) -> str:
        if override:
            return override if len(m.sources) == 1 else override.rstrip("/") + "/" + src.file
        mirror = os.environ.get(MIRROR_ENV)
        if mirror:
            return mirror.rstrip("/") + "/" + src.file
        if src.url is None:
            raise DatasetError(
                f"{m.name}: {src.file} cannot be downloaded by a script. {m.manual} "
                f"Then run: python -m bench datasets fetch {m.name} --from PATH"
            )
        return src.url

    def _download(self, m: DatasetManifest, src: SourceFile, dest: Path, override, lock, timeout) -> tuple[str, int]:
        sha_want, size_want = self._expected(m, src, lock)
        url = self._url(m, src, override)
        if dest.is_file():  # a cached archive from an earlier fetch (--keep-archives)
            try:
                return self._check_local(m, src, dest, lock)
            except ChecksumError:
                dest.unlink()
        sha = download(url, dest, sha256=sha_want, timeout=timeout)
        size = dest.stat().st_size
        if size_want is not None and size != size_want:
            dest.unlink()
            raise ChecksumError(f"{url}: {size} bytes, expected {size_want}; the file was deleted")
        return sha, size

    def _import_tree(self, m: DatasetManifest, tree: Path, tmp: Path, lock, new_lock, warnings: list[str]) -> None:
        bound = m.max_extracted_bytes or 8 * sum(s.size or 0 for s in m.sources) + _du(tree) + _EXTRA_BYTES
        copy_tree(tree, tmp, bound)
        if not self._layout_matches(m, tmp):  # the user gave the folder one level down (e.g. DIV2K_valid_HR/)
            inner = tmp.with_name(tmp.name + "-inner")
            os.replace(tmp, inner)
            tmp.mkdir()
            os.replace(inner, tmp / tree.name)
        digest = tree_digest(_hash_tree(tmp))
        known = lock.get((m.name, TREE))
        if known is not None and known[0] != digest:
            raise ChecksumError(
                f"--from {tree}: the folder's content (tree sha256 {digest}) differs from the one recorded in "
                f"{self.lock_path} ({known[0]})"
            )
        if known is None:
            new_lock[(m.name, TREE)] = (digest, _du(tmp))
            if not all(s.locked for s in m.sources):
                warnings.append(
                    f"{tree} is an unpacked folder: it cannot be checked against the published archive sha256; "
                    f"its content digest {digest} is recorded in the lock file"
                )

    def _layout_matches(self, m: DatasetManifest, folder: Path) -> bool:
        p = m.pairing
        s = m.default_scale
        r = scan(folder, p.hr, p.lr, s)
        return bool(r.entries or r.failures)

    def _check_layout(self, m: DatasetManifest, folder: Path, warnings: list[str]) -> tuple[dict, dict]:
        from bench.data.pairing import check_entry

        p = m.pairing
        images, failures = {}, {}
        for s in m.scales:
            r = scan(folder, p.hr, p.lr, s)
            if not r.entries and not r.failures:
                found = sorted(q.relative_to(folder).as_posix() for q in folder.rglob("*") if q.is_file())[:5]
                raise DatasetError(
                    f"{m.name}: no file matches the layout at scale {s} (hr {p.hr!r}, lr {p.lr!r}); "
                    f"the archive holds e.g. {found}"
                )
            bad = dict(r.failures)
            for name, entry in r.entries.items():
                f = check_entry(entry, s, p.modcrop, p.lr_at_hr_size)
                if f is not None:
                    bad[name] = f
            images[s] = len(r.entries) - sum(1 for n in bad if n in r.entries)
            failures[s] = len(bad)
            for f in list(bad.values())[:5]:  # paths as they will be once the folder is in place
                warnings.append(f"x{s}: " + f.message.replace(str(folder), str(self.folder(m.name))))
            want = m.images.get(s)
            if want is not None and len(r.names()) != want:
                warnings.append(f"x{s}: {len(r.names())} images found, the manifest expects {want}")
        for w in warnings:
            logger.warning("%s: %s", m.name, w)
        return images, failures


__all__ = [
    "DATA_ENV",
    "MIRROR_ENV",
    "READY_MARKER",
    "DatasetError",
    "DatasetNotReadyError",
    "DatasetStore",
    "FetchResult",
    "Status",
    "UnsafeArchiveError",
    "data_root",
    "read_lock",
    "tree_digest",
]
