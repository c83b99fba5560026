"""The dataset manifests of an installed wheel (``bench/_project/datasets``): read from the package, never written.

Fetched data lands in ``$BENCH_HOME/datasets`` and new checksums in ``$BENCH_HOME/datasets/checksums.lock``; the
lock shipped beside the packaged manifests is read and enforced. The installed layout is faked by pointing
``bench.paths.PACKAGE_DIR`` and ``SHIPPED_DIR`` into ``tmp_path`` (tests/test_packaging.py installs a real wheel)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import bench.paths as paths
from bench.assets.errors import ChecksumError
from bench.cli import main
from bench.data.store import DatasetStore, read_lock, write_lock

NAME = "ntire20-t2-val"  # a `sha256: lock` set: its first fetch records a checksum
ARCHIVE = "DPEDiphone-va.zip"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def installed(tmp_path, monkeypatch, kit, server) -> dict:
    """A fake wheel install whose packaged manifests are the replica's of ``NAME`` (served on 127.0.0.1)."""
    package = tmp_path / "site-packages" / "bench"
    shipped = package / "_project"
    replica = kit.build_replica(NAME)
    for file, data in replica.archives.items():
        server.files["/" + file] = data
    kit.write_replica_manifest(replica, shipped / "datasets", server)
    (shipped / "methods").mkdir(parents=True)
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.setattr(paths, "PACKAGE_DIR", package)
    monkeypatch.setattr(paths, "SHIPPED_DIR", shipped)
    for var in ("BENCH_PROJECT", "BENCH_DATA", "BENCH_DATASET_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(cwd)
    return {"shipped": shipped / "datasets", "data": tmp_path / "home" / "datasets", "replica": replica, "cwd": cwd}


def test_fetch_lands_in_the_user_cache_and_never_writes_the_package(installed, capsys) -> None:
    shipped, data = installed["shipped"], installed["data"]
    before = _tree(shipped.parent.parent)
    store = DatasetStore()
    assert store.manifest_dir == shipped and store.root == data
    assert store.shipped_lock == shipped / "checksums.lock"
    assert store.lock_path == data / "checksums.lock"

    assert main(["datasets", "fetch", NAME]) == 0
    assert f"{data / NAME}" in capsys.readouterr().out
    archive = installed["replica"].archives[ARCHIVE]
    assert read_lock(data / "checksums.lock") == {(NAME, ARCHIVE): (hashlib.sha256(archive).hexdigest(), len(archive))}
    assert _tree(shipped.parent.parent) == before  # not one byte written into the package
    assert list(installed["cwd"].iterdir()) == []

    assert main(["datasets", "verify", NAME]) == 0
    assert main(["datasets", "info", NAME]) == 0
    out = capsys.readouterr().out
    assert f"folder: {data / NAME}" in out and f"{ARCHIVE}: sha256 {hashlib.sha256(archive).hexdigest()}" in out
    assert _tree(shipped.parent.parent) == before


def test_the_shipped_lock_is_enforced_and_wins(installed) -> None:
    """A checksum the project recorded (and shipped) refuses other bytes, whatever the user's own lock says."""
    shipped, data = installed["shipped"], installed["data"]
    archive = installed["replica"].archives[ARCHIVE]
    write_lock(shipped / "checksums.lock", {(NAME, ARCHIVE): ("0" * 64, len(archive))})
    write_lock(data / "checksums.lock", {(NAME, ARCHIVE): (hashlib.sha256(archive).hexdigest(), len(archive))})
    before = (shipped / "checksums.lock").read_bytes()
    store = DatasetStore()
    assert store.read_locks()[(NAME, ARCHIVE)][0] == "0" * 64
    with pytest.raises(ChecksumError):
        store.fetch(NAME)
    assert not (data / NAME).exists()
    assert (shipped / "checksums.lock").read_bytes() == before


def test_a_user_manifest_folder_keeps_its_lock_beside_it(installed, kit) -> None:
    """``./datasets`` with manifests (the user's project): the lock and the data are beside them, as in a checkout."""
    kit.write_replica_manifest(installed["replica"], installed["cwd"] / "datasets")
    store = DatasetStore()
    assert store.manifest_dir == installed["cwd"] / "datasets"
    assert store.root == installed["cwd"] / "datasets"
    assert store.shipped_lock is None and store.lock_path == installed["cwd"] / "datasets" / "checksums.lock"
