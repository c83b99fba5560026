"""Fetching manifest datasets from a local HTTP server: replicas of every dataset in its real layout, checksums,
resume, the lock file, --from, status and verify, and reading the pairs the runner will score."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.assets.errors import ChecksumError, DownloadError
from bench.data.catalog import ManifestDataset, build_manifest_dataset
from bench.data.store import READY_MARKER, DatasetError, DatasetNotReadyError, DatasetStore, read_lock

ARCHIVE_DATASETS = (
    "div2k-train",
    "div2k-val",
    "div2k-val-bicubic-x4",
    "ntire20-t1-val",
    "ntire20-t2-val",
    "aim19-t2-val",
    "realsr-v3",
    "drealsr",
    "super",
    "imagepairs",
)


def _as_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(manifest_dir=tmp_path / "manifests", root=tmp_path / "data")


def _serve(server, replica) -> None:
    for file, data in replica.archives.items():
        server.files["/" + file] = data


def _check_samples(store: DatasetStore, replica) -> None:
    m = store.get(replica.name)
    for scale in m.scales:
        expected_lr = replica.lr.get(scale, {})
        expected_hr = replica.hr.get(scale, {})
        ds = build_manifest_dataset(replica.name, scale=scale, store=store)
        names = sorted(set(expected_hr) | set(expected_lr))
        assert ds.names() == names, (scale, ds.names())
        assert ds.failures() == []
        assert ds.has_ground_truth == m.ground_truth
        for name in names:
            s = ds.load(name)
            if m.ground_truth:
                np.testing.assert_array_equal(_as_uint8(s.hr), expected_hr[name])
                assert s.has_ground_truth
            else:
                assert s.hr is None and not s.has_ground_truth
            if expected_lr:
                np.testing.assert_array_equal(_as_uint8(s.lr), expected_lr[name])
                if s.hr is not None:
                    assert s.lr.shape[-2:] == (s.hr.shape[-2] // scale, s.hr.shape[-1] // scale)
            else:
                assert s.lr is None  # synthesised by the runner


@pytest.mark.parametrize("name", ARCHIVE_DATASETS)
def test_fetch_verify_read_each_dataset(kit, name, server, tmp_path) -> None:
    replica = kit.build_replica(name)
    _serve(server, replica)
    kit.write_replica_manifest(replica, tmp_path / "manifests", server)
    store = _store(tmp_path)
    assert store.status(name).state == "missing"
    result = store.fetch(name)
    assert result.path == tmp_path / "data" / name and (result.path / READY_MARKER).is_file()
    assert result.warnings == [] or all("expects" in w for w in result.warnings)  # tiny replicas: fewer images
    st = store.status(name)
    d = store.get(name).default_scale
    assert st.state == "ready" and st.images == len(set(replica.hr.get(d, {})) | set(replica.lr.get(d, {})))
    assert st.size_bytes > 0
    assert store.verify(name) == []
    _check_samples(store, replica)
    assert not list((tmp_path / "data").glob(".tmp-*"))
    assert not list((tmp_path / "data" / ".downloads").glob("*"))  # archives removed after extraction
    if store.get(name).sources[0].locked:
        lock = read_lock(store.lock_path)
        assert {f for (d, f) in lock if d == name} == set(replica.archives)
    again = store.fetch(name)
    assert again.already and len(server.log) == len(replica.archives)  # nothing downloaded twice


def test_wrong_sha256_is_refused_and_nothing_extracted(kit, server, tmp_path, monkeypatch) -> None:
    """The real div2k-val manifest (published sha256) against a replica served by a mirror: refused."""
    replica = kit.build_replica("div2k-val")
    _serve(server, replica)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "div2k-val.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "datasets" / "div2k-val.yaml").read_text()
    )
    monkeypatch.setenv("BENCH_DATASET_MIRROR", server.base + "/")
    store = _store(tmp_path)
    with pytest.raises(ChecksumError, match="20dd31fd"):
        store.fetch("div2k-val")
    assert server.requests_for("/DIV2K_valid_HR.zip")  # the mirror was used
    data = tmp_path / "data"
    assert not (data / "div2k-val").exists()
    assert not list(data.glob(".tmp-*"))
    assert not [p for p in data.rglob("*") if p.is_file()]  # the bad download was deleted, nothing extracted
    assert store.status("div2k-val").state == "missing"


def test_wrong_size_is_refused_before_extraction(kit, tmp_path) -> None:
    replica = kit.build_replica("div2k-val")
    path = kit.write_replica_manifest(replica, tmp_path / "manifests")
    path.write_text(path.read_text().replace(f"size: {len(replica.archives['DIV2K_valid_HR.zip'])}", "size: 12345"))
    archive = tmp_path / "DIV2K_valid_HR.zip"
    archive.write_bytes(replica.archives["DIV2K_valid_HR.zip"])
    with pytest.raises(ChecksumError, match="12345"):
        _store(tmp_path).fetch("div2k-val", from_paths=(archive,))
    assert not (tmp_path / "data" / "div2k-val").exists()


def test_interrupted_download_resumes(kit, server, tmp_path) -> None:
    replica = kit.build_replica("div2k-val")
    _serve(server, replica)
    server.cut_first.add("/DIV2K_valid_HR.zip")
    kit.write_replica_manifest(replica, tmp_path / "manifests", server)
    store = _store(tmp_path)
    with pytest.raises(DownloadError, match="resume"):
        store.fetch("div2k-val")
    part = tmp_path / "data" / ".downloads" / "DIV2K_valid_HR.zip.part"
    size = len(replica.archives["DIV2K_valid_HR.zip"])
    assert 0 < part.stat().st_size < size
    assert store.status("div2k-val").state == "partial"
    with pytest.raises(DatasetNotReadyError, match="partial"):
        build_manifest_dataset("div2k-val", store=store)
    store.fetch("div2k-val")
    first, second = server.requests_for("/DIV2K_valid_HR.zip")
    assert second["range"] == f"bytes={first['sent']}-" and second["sent"] == size - first["sent"]
    assert store.status("div2k-val").state == "ready"
    _check_samples(store, replica)


def test_from_local_archive_and_folder_of_archives(kit, tmp_path) -> None:
    replica = kit.build_replica("ntire20-t1-val")
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for file, data in replica.archives.items():
        (downloads / file).write_bytes(data)
    store = _store(tmp_path)
    store.fetch("ntire20-t1-val", from_paths=(downloads,))  # a folder holding the archives
    _check_samples(store, replica)
    assert (downloads / "Corrupted-va-x.zip").is_file()  # the user's files are left alone
    store.fetch("ntire20-t1-val", from_paths=tuple(downloads / f for f in replica.archives), force=True)
    assert store.status("ntire20-t1-val").state == "ready"


def test_from_manual_archive_any_name(kit, tmp_path) -> None:
    """RealSR cannot be fetched by a script: without --from the error says where to get it; with it, it works."""
    replica = kit.build_replica("realsr-v3")
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    store = _store(tmp_path)
    with pytest.raises(DatasetError, match="csjcai/RealSR"):
        store.fetch("realsr-v3")
    with pytest.raises(DatasetNotReadyError, match=r"fetch realsr-v3 --from PATH"):
        build_manifest_dataset("realsr-v3", store=store)
    archive = tmp_path / "my download.zip"
    archive.write_bytes(replica.archives["RealSR(V3).zip"])
    store.fetch("realsr-v3", from_paths=(archive,))
    _check_samples(store, replica)


@pytest.mark.parametrize("one_level_down", [False, True])
def test_from_unpacked_folder(kit, tmp_path, one_level_down) -> None:
    import zipfile

    replica = kit.build_replica("div2k-val")
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(__import__("io").BytesIO(replica.archives["DIV2K_valid_HR.zip"])) as zf:
        zf.extractall(unpacked)
    source = unpacked / "DIV2K_valid_HR" if one_level_down else unpacked
    store = _store(tmp_path)
    result = store.fetch("div2k-val", from_paths=(source,))
    assert any("cannot be checked against the published archive" in w for w in result.warnings)
    _check_samples(store, replica)
    assert ("div2k-val", "<unpacked folder>") in read_lock(store.lock_path)
    # the recorded folder digest is enforced on a later import
    (source / ("0801.png" if one_level_down else "DIV2K_valid_HR/0801.png")).write_bytes(
        replica.archives["DIV2K_valid_HR.zip"][:10]
    )
    with pytest.raises(ChecksumError, match="differs from the one recorded"):
        store.fetch("div2k-val", from_paths=(source,))
    assert store.status("div2k-val").state == "ready"  # the good copy is untouched


def test_lock_written_then_enforced(kit, server, tmp_path) -> None:
    replica = kit.build_replica("ntire20-t2-val")
    _serve(server, replica)
    kit.write_replica_manifest(replica, tmp_path / "manifests", server)
    store = _store(tmp_path)
    assert not store.lock_path.exists()
    store.fetch("ntire20-t2-val")
    data = replica.archives["DPEDiphone-va.zip"]
    assert read_lock(store.lock_path) == {
        ("ntire20-t2-val", "DPEDiphone-va.zip"): (hashlib.sha256(data).hexdigest(), len(data))
    }
    assert "commit" in store.lock_path.read_text().lower()
    # the server now serves other bytes (same size): refused against the lock, the ready copy untouched
    changed = kit.zip_bytes({"0001.png": b"x" * 10})
    server.files["/DPEDiphone-va.zip"] = changed
    with pytest.raises(ChecksumError):
        store.fetch("ntire20-t2-val", force=True)
    assert store.status("ntire20-t2-val").state == "ready"
    assert store.verify("ntire20-t2-val") == []
    # a tampered lock entry is noticed by verify
    lock = store.lock_path.read_text().replace(hashlib.sha256(data).hexdigest(), "0" * 64)
    store.lock_path.write_text(lock)
    assert any("expected 000000" in p for p in store.verify("ntire20-t2-val"))


def test_url_override_for_a_single_archive(kit, server, tmp_path) -> None:
    replica = kit.build_replica("div2k-val")
    server.files["/mirror/elsewhere.zip"] = replica.archives["DIV2K_valid_HR.zip"]
    kit.write_replica_manifest(replica, tmp_path / "manifests")  # official URL (unreachable here)
    store = _store(tmp_path)
    store.fetch("div2k-val", url=server.url("/mirror/elsewhere.zip"))
    assert store.status("div2k-val").state == "ready"


def test_modified_and_manifest_changed(kit, server, tmp_path) -> None:
    replica = kit.build_replica("aim19-t2-val")
    _serve(server, replica)
    manifest = kit.write_replica_manifest(replica, tmp_path / "manifests", server)
    store = _store(tmp_path)
    store.fetch("aim19-t2-val")
    folder = store.folder("aim19-t2-val")
    # same size, other bytes: the quick status cannot see it, verify does
    target = folder / "valid-gt-clean" / "0801.png"
    raw = bytearray(target.read_bytes())
    raw[-20] ^= 0xFF
    target.write_bytes(bytes(raw))
    assert store.status("aim19-t2-val").state == "ready"
    assert any("0801.png: sha256 differs" in p for p in store.verify("aim19-t2-val"))
    (folder / "valid-input-noisy" / "0802.png").unlink()
    st = store.status("aim19-t2-val")
    assert st.state == "modified" and "missing" in st.detail
    with pytest.raises(DatasetNotReadyError, match=r"fetch aim19-t2-val --force"):
        build_manifest_dataset("aim19-t2-val", store=store)
    store.fetch("aim19-t2-val", force=True)
    assert _store(tmp_path).status("aim19-t2-val").state == "ready"
    manifest.write_text(manifest.read_text().replace("title:", "title: edited"))
    assert "manifest changed" in _store(tmp_path).status("aim19-t2-val").detail


def test_wrong_layout_is_refused_and_nothing_looks_ready(kit, tmp_path) -> None:
    replica = kit.build_replica("div2k-val")
    bad = kit.zip_bytes({"somewhere/else/0801.png": b"not even an image"})
    replica.archives["DIV2K_valid_HR.zip"] = bad
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    archive = tmp_path / "DIV2K_valid_HR.zip"
    archive.write_bytes(bad)
    store = _store(tmp_path)
    with pytest.raises(DatasetError, match=r"no file matches the layout.*somewhere/else/0801.png"):
        store.fetch("div2k-val", from_paths=(archive,))
    assert store.status("div2k-val").state == "missing"
    assert not list((tmp_path / "data").glob(".tmp-*"))


def test_unsafe_archive_through_fetch(kit, tmp_path) -> None:
    replica = kit.build_replica("div2k-val")
    replica.archives["DIV2K_valid_HR.zip"] = kit.zip_bytes({"DIV2K_valid_HR/0801.png": b"x", "../escape.png": b"x"})
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    archive = tmp_path / "DIV2K_valid_HR.zip"
    archive.write_bytes(replica.archives["DIV2K_valid_HR.zip"])
    with pytest.raises(ValueError, match=r"\.\./escape\.png"):
        _store(tmp_path).fetch("div2k-val", from_paths=(archive,))
    assert not (tmp_path / "data" / "escape.png").exists() and not (tmp_path / "escape.png").exists()
    assert not (tmp_path / "data" / "div2k-val").exists()


def test_partial_temp_folder_is_partial(kit, tmp_path) -> None:
    replica = kit.build_replica("div2k-val")
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    (tmp_path / "data" / ".tmp-div2k-val-999").mkdir(parents=True)
    store = _store(tmp_path)
    assert store.status("div2k-val").state == "partial"
    (tmp_path / "data" / "div2k-val" / "DIV2K_valid_HR").mkdir(parents=True)  # a folder without ready-marker
    assert store.status("div2k-val").detail == "no ready-marker"
    archive = tmp_path / "DIV2K_valid_HR.zip"
    archive.write_bytes(replica.archives["DIV2K_valid_HR.zip"])
    store.fetch("div2k-val", from_paths=(archive,))  # a new fetch clears what a killed one left
    assert store.status("div2k-val").state == "ready"
    assert not list((tmp_path / "data").glob(".tmp-*"))


def test_registry_resolves_manifest_names(tmp_path, monkeypatch) -> None:
    """A matrix entry {name: div2k-val} and `bench train --data div2k-train` go through the manifest; when the data
    is missing the error carries the exact fetch command."""
    import inspect

    from bench.data import DATASETS, build_dataset

    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "nothing-here"))
    for name in ("div2k-val", "div2k-train", "ntire20-t2-val", "realsr-v3", "drealsr"):
        factory = DATASETS.get(name)
        inspect.signature(factory).bind(crop=None, scale=4)  # what the matrix parser checks
    with pytest.raises(FileNotFoundError, match=r"run: python -m bench datasets fetch div2k-val$"):
        DATASETS.get("div2k-val")(crop=None, scale=4)
    with pytest.raises(FileNotFoundError, match=r"python -m bench datasets fetch div2k-train"):
        build_dataset("div2k-train", scale=4)


def test_registered_factory_reads_fetched_data(kit, server, tmp_path, monkeypatch) -> None:
    """With $BENCH_DATA pointing at a fetched replica, the registered div2k-val reads it (the packaged manifest
    carries the published sha256, so the replica is registered with --from an unpacked folder)."""
    import zipfile

    from bench.data import DATASETS

    replica = kit.build_replica("div2k-val")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(__import__("io").BytesIO(replica.archives["DIV2K_valid_HR.zip"])) as zf:
        zf.extractall(unpacked)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    store = DatasetStore(lock_path=tmp_path / "checksums.lock")
    store.fetch("div2k-val", from_paths=(unpacked,))
    ds = DATASETS.get("div2k-val")(scale=4, crop=8)
    assert isinstance(ds, ManifestDataset) and ds.names() == ["0801", "0802", "0803"]
    s = ds["0802"]
    assert s.hr.shape == (3, 8, 8) and s.lr is None
    assert "DIV2K validation HR" in ds.description and os.fspath(ds.folder).startswith(str(tmp_path))


def test_fetch_counts_pairing_failures_and_names_final_paths(kit, tmp_path) -> None:
    """A set whose archive holds an HR-sized LR and an HR without LR: fetched (the other images are good), the
    failures counted and named with the paths they will have, and the dataset reads the good ones."""
    import io
    import zipfile

    replica = kit.build_replica("ntire20-t1-val")
    hr_png, _ = kit.png(24, 36, 7)
    gt = zipfile.ZipFile(io.BytesIO(replica.archives["track1-valid-gt.zip"]))
    lr = zipfile.ZipFile(io.BytesIO(replica.archives["Corrupted-va-x.zip"]))
    gt_members = {n: gt.read(n) for n in gt.namelist()} | {
        "track1-valid-gt/0803.png": hr_png,
        "track1-valid-gt/0804.png": hr_png,
    }
    lr_members = {n: lr.read(n) for n in lr.namelist()} | {"0803.png": hr_png}
    local = tmp_path / "local"
    local.mkdir()
    (local / "track1-valid-gt.zip").write_bytes(kit.zip_bytes(gt_members))
    (local / "Corrupted-va-x.zip").write_bytes(kit.zip_bytes(lr_members))
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    store = _store(tmp_path)
    result = store.fetch("ntire20-t1-val", from_paths=(local,))
    assert result.images == {4: 2} and result.failures == {4: 2}
    final = str(store.folder("ntire20-t1-val"))
    assert any("0803" in w and "24x36" in w and "6x9" in w and final in w for w in result.warnings)
    assert not any(".tmp-" in w for w in result.warnings)
    ds = build_manifest_dataset("ntire20-t1-val", store=store)
    assert ds.names() == ["0801", "0802", "0803", "0804"]
    assert [f.name for f in ds.failures()] == ["0803", "0804"]
    assert ds["0801"].lr.shape == (3, 6, 9)


def test_archive_with_its_own_top_folder_lands_the_same(kit, tmp_path) -> None:
    """Corrupted-va-x.zip is assumed flat (unpacked into Corrupted-va-x/); one holding that folder itself works too."""
    import io
    import zipfile

    replica = kit.build_replica("ntire20-t1-val")
    flat = zipfile.ZipFile(io.BytesIO(replica.archives["Corrupted-va-x.zip"]))
    replica.archives["Corrupted-va-x.zip"] = kit.zip_bytes(
        {f"Corrupted-va-x/{n}": flat.read(n) for n in flat.namelist()}
    )
    kit.write_replica_manifest(replica, tmp_path / "manifests")
    local = tmp_path / "local"
    local.mkdir()
    for file, data in replica.archives.items():
        (local / file).write_bytes(data)
    store = _store(tmp_path)
    store.fetch("ntire20-t1-val", from_paths=(local,))
    assert (store.folder("ntire20-t1-val") / "Corrupted-va-x" / "0801.png").is_file()
    _check_samples(store, replica)
