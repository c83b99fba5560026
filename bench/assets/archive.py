"""Read named members out of a zip (wheel) or tar (sdist) archive, without extracting or running anything else.

Only regular files whose path equals a requested member are read, and they are written under names the caller
chooses, so a hostile archive cannot write outside the destination (no path traversal, no links followed).
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from bench.assets.errors import ConversionError

logger = logging.getLogger(__name__)


def extract_members(archive: str | Path, members: Mapping[str, str], dest_dir: str | Path) -> dict[str, Path]:
    """Copy ``members`` (role -> path inside ``archive``) to ``dest_dir/<role><suffix>``; return role -> path.

    ``archive`` is a zip file (``.whl``, ``.zip``) or a tar file (``.tar.gz``, ``.tgz``, ``.tar``), detected by
    content. Raises :class:`ConversionError` naming the members that are missing (with a few similar names).
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    wanted = {path: role for role, path in members.items()}
    targets = {role: dest_dir / f"{role}-{Path(path).name}" for role, path in members.items()}
    found: dict[str, Path] = {}
    names: list[str] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                names.append(info.filename)
                role = wanted.get(info.filename)
                if role is None or info.is_dir():
                    continue
                with zf.open(info) as src, open(targets[role], "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                found[role] = targets[role]
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            for info in tf:  # streams through the archive once
                names.append(info.name)
                role = wanted.get(info.name)
                if role is None or not info.isfile():
                    continue
                src = tf.extractfile(info)
                if src is None:
                    continue
                with src, open(targets[role], "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                found[role] = targets[role]
                if len(found) == len(members):
                    break
    else:
        raise ConversionError(f"{archive.name} is neither a zip nor a tar archive")
    missing = [members[r] for r in members if r not in found]
    if missing:
        hints = sorted({n for n in names for m in missing if Path(n).name == Path(m).name})[:5]
        hint = f"; entries with the same file name: {hints}" if hints else ""
        raise ConversionError(f"{archive.name} has no member(s) {missing}{hint}")
    logger.info("read %s from %s", ", ".join(members.values()), archive.name)
    return found
