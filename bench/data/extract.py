"""Safe extraction of dataset archives (zip, tar, tar.gz/bz2/xz) and safe copying of unpacked folders.

Every member is checked before a single byte is written: an absolute path, a ``..`` component, a drive letter, a
symbolic or hard link, a device or FIFO is refused with :class:`UnsafeArchiveError` naming the member, and nothing is
extracted. The total size the archive declares must stay under ``max_bytes``, and the bytes actually written are
counted again while streaming (a member that lies about its size is caught too). Extraction goes to the folder the
caller gives (a temporary folder renamed on success by :mod:`bench.data.store`).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


class UnsafeArchiveError(ValueError):
    """An archive or folder holds a member that could write outside its target, a link, or too many bytes."""


def _progress(total: int, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def safe_member_path(name: str, archive: str) -> PurePosixPath | None:
    """The relative path of member ``name``, ``None`` for the archive's root entry; refuses unsafe names."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a NUL byte in its name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the target ('..')")
    return PurePosixPath(*parts) if parts else None


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    kind = stat.S_IFMT(info.external_attr >> 16)  # unix file type when the zip was made on unix, else 0
    return kind not in (0, stat.S_IFREG, stat.S_IFDIR)


def _members(archive: Path) -> tuple[str, list[tuple[PurePosixPath, int, object]]]:
    """(kind, [(relative path, declared size, handle)]) of the archive's regular files, after the safety checks."""
    out: list[tuple[PurePosixPath, int, object]] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = safe_member_path(info.filename, archive.name)
                if _zip_is_link(info):
                    raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a link or special file")
                if info.is_dir() or rel is None:
                    continue
                out.append((rel, info.file_size, info))
        return "zip", out
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            for info in tf.getmembers():
                rel = safe_member_path(info.name, archive.name)
                if info.issym() or info.islnk():
                    raise UnsafeArchiveError(f"{archive.name}: member {info.name!r} is a link (-> {info.linkname!r})")
                if info.isdir() or rel is None:
                    continue
                if not info.isfile():
                    raise UnsafeArchiveError(f"{archive.name}: member {info.name!r} is not a regular file")
                out.append((rel, info.size, info.name))
        return "tar", out
    raise UnsafeArchiveError(f"{archive.name} is neither a zip nor a tar archive")


def _copy_counted(src: BinaryIO, dst_path: Path, budget: list[int], what: str, bar) -> None:
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    with open(dst_path, "xb") as dst:
        while block := src.read(CHUNK):
            budget[0] -= len(block)
            if budget[0] < 0:
                raise UnsafeArchiveError(f"{what}: more bytes than the bound on extracted size")
            dst.write(block)
            if bar is not None:
                bar.update(len(block))


def extract_archive(archive: str | Path, dest: str | Path, max_bytes: int) -> list[Path]:
    """Extract every regular file of ``archive`` under ``dest`` (created); return the written paths.

    Raises:
        UnsafeArchiveError: an unsafe member (nothing is written then), a duplicate member, or more than ``max_bytes``
            declared or written (what was written is left for the caller to delete with its temporary folder).
    """
    archive, dest = Path(archive), Path(dest)
    kind, members = _members(archive)
    declared = sum(size for _, size, _ in members)
    if declared > max_bytes:
        raise UnsafeArchiveError(f"{archive.name}: {declared} bytes to extract, over the bound of {max_bytes}")
    seen: set[PurePosixPath] = set()
    for rel, _, _ in members:
        if rel in seen:
            raise UnsafeArchiveError(f"{archive.name}: member {str(rel)!r} appears twice")
        seen.add(rel)
    dest.mkdir(parents=True, exist_ok=True)
    budget = [max_bytes]
    written: list[Path] = []
    bar = _progress(declared, f"extract {archive.name}")
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                for rel, _, info in members:
                    with zf.open(info) as src:  # type: ignore[arg-type]
                        _copy_counted(src, dest / rel, budget, archive.name, bar)
                    written.append(dest / rel)
        else:
            wanted = {name: rel for rel, _, name in members}
            with tarfile.open(archive, "r:*") as tf:
                for info in tf:
                    rel = wanted.get(info.name)
                    if rel is None or not info.isfile():
                        continue
                    src = tf.extractfile(info)
                    if src is None:
                        continue
                    with src:
                        _copy_counted(src, dest / rel, budget, archive.name, bar)
                    written.append(dest / rel)
    finally:
        if bar is not None:
            bar.close()
    logger.info("extracted %d files (%d bytes) from %s", len(written), max_bytes - budget[0], archive.name)
    return written


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                raise UnsafeArchiveError(f"{folder}: {os.path.join(root, d)} is a symbolic link; copy real folders")
        for f in files:
            yield Path(root) / f


def copy_tree(src: str | Path, dest: str | Path, max_bytes: int) -> list[Path]:
    """Copy the regular files of folder ``src`` under ``dest``; links and special files are refused."""
    src, dest = Path(src), Path(dest)
    files = sorted(_walk(src))
    for f in files:
        if f.is_symlink() or not f.is_file():
            raise UnsafeArchiveError(f"{f} is a link or special file; only regular files are imported")
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise UnsafeArchiveError(f"{src}: {total} bytes, over the bound of {max_bytes}")
    out = []
    bar = _progress(total, f"copy {src.name}")
    try:
        for f in files:
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            out.append(target)
            if bar is not None:
                bar.update(f.stat().st_size)
    finally:
        if bar is not None:
            bar.close()
    return out
