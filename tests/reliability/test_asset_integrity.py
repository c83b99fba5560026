"""Converted weights are verified when they are used: a changed, truncated or unreadable asset is refused with the file
and the fix, and provenance is the hash of the bytes on disk, so a changed file can never share a cell key with the
original (issue 11, items 1, 5 and 8)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import yaml

import bench.assets
from bench.assets import AssetError, load_state_dict, read_metadata
from bench.methods.cards import load_card
from bench.methods.checkpoint import checkpoint_sha256, load_weights


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_intact_asset_loads_and_its_hash_is_the_files(tiny_asset):
    digest = bench.assets.verified_sha256(tiny_asset.name)
    assert digest == _sha(tiny_asset.path) == read_metadata(tiny_asset.name)["sha256"]
    assert bench.assets.verified_sha256(tiny_asset.path) == digest  # by stored path too (the runner's view)
    assert checkpoint_sha256(tiny_asset.name) == digest
    sd = load_state_dict(tiny_asset.name)
    assert all(torch.equal(sd[k], tiny_asset.state[k]) for k in tiny_asset.state)


def test_each_file_is_hashed_once_per_version(tiny_asset, tamper, monkeypatch):
    import bench.assets.store as store

    calls = []
    real = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda p, *a: calls.append(str(p)) or real(p, *a))
    store._HASHES.clear()
    for _ in range(3):
        bench.assets.verified_sha256(tiny_asset.name)
        load_state_dict(tiny_asset.name)
    assert len(calls) == 1  # six uses, one hash
    tamper(tiny_asset.path)
    assert bench.assets.file_sha256(tiny_asset.path) == _sha(tiny_asset.path)  # a new version is hashed again
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["bit_flip", "truncated", "appended", "zeroed_header"])
def test_changed_asset_is_refused_on_load(tiny_asset, tamper, damage):
    path = tiny_asset.path
    if damage == "bit_flip":
        tamper(path)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "appended":
        path.write_bytes(path.read_bytes() + b"\0" * 8)
    else:
        path.write_bytes(b"\0" * 8 + path.read_bytes()[8:])
    with pytest.raises(bench.assets.IntegrityError, match="has changed since it was stored") as exc:
        load_state_dict(tiny_asset.name)
    assert str(path) in str(exc.value)
    assert exc.value.fix == f"python -m bench assets fetch {tiny_asset.name} --force"
    with pytest.raises(bench.assets.IntegrityError):
        load_weights(tiny_asset.name)  # what every method adapter calls


def test_provenance_is_the_hash_of_the_bytes_used(tiny_asset, tamper):
    """A changed file changes checkpoint_sha256, hence the card's provenance and the runner's cell key."""
    card = load_card(tiny_asset.card)
    stored = read_metadata(tiny_asset.name)["sha256"]
    assert card.provenance()["checkpoint_sha256"] == stored
    tamper(tiny_asset.path)
    now = card.provenance()["checkpoint_sha256"]
    assert now == _sha(tiny_asset.path) and now != stored  # was the stored (metadata) hash: same key, wrong weights


@pytest.mark.parametrize("damage", ["bit_flip", "truncated"])
def test_upscale_refuses_a_changed_asset(tiny_asset, tamper, cli, one_line_error, rgb8, tmp_path, damage):
    if damage == "bit_flip":
        tamper(tiny_asset.path)
    else:
        tiny_asset.path.write_bytes(tiny_asset.path.read_bytes()[:100])
    out = tmp_path / "sr.png"
    result = cli("upscale", tiny_asset.card, rgb8, out, "--device", "cpu")
    one_line_error(result, 2, str(tiny_asset.path), f"fix: python -m bench assets fetch {tiny_asset.name} --force")
    assert not out.exists()


def test_upscale_with_an_intact_asset_works(tiny_asset, cli, rgb8, tmp_path):
    out = tmp_path / "sr.png"
    assert cli("upscale", tiny_asset.card, rgb8, out, "--device", "cpu").code == 0
    assert out.is_file()


def test_unreadable_metadata(tiny_asset, cli, one_line_error, rgb8, tmp_path):
    tiny_asset.meta.write_text("{not json")
    result = cli("upscale", tiny_asset.card, rgb8, tmp_path / "sr.png", "--device", "cpu")
    one_line_error(result, 2, str(tiny_asset.meta), "not a valid JSON object", "assets fetch tiny-rrdb --force")
    with pytest.raises(AssetError, match="not valid JSON"):
        read_metadata(tiny_asset.name)


def test_corrupt_local_checkpoint_file(tiny_asset, cli, one_line_error, rgb8, tmp_path):
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    card = tmp_path / "local.yaml"
    data = yaml.safe_load(tiny_asset.card.read_text())
    card.write_text(yaml.safe_dump({**data, "checkpoint": str(weights)}))
    result = cli("upscale", card, rgb8, tmp_path / "sr.png", "--device", "cpu")
    one_line_error(result, 2, str(weights), "not a valid safetensors file")


def test_checkpoint_that_does_not_fit_the_card(tiny_asset, cli, one_line_error, rgb8, tmp_path):
    card = tmp_path / "wide.yaml"
    data = yaml.safe_load(tiny_asset.card.read_text())
    card.write_text(yaml.safe_dump({**data, "args": {**data["args"], "num_feat": 16}}))
    result = cli("upscale", card, rgb8, tmp_path / "sr.png", "--device", "cpu")
    one_line_error(result, 2, "checkpoint tiny-rrdb does not fit RRDBNet", "Fix the card's args")


@pytest.mark.parametrize("missing", ["weights", "metadata"])
def test_assets_verify_reports_a_missing_file(tiny_asset, cli, missing):
    gone = tiny_asset.path if missing == "weights" else tiny_asset.meta
    gone.unlink()
    result = cli("assets", "verify")
    assert result.code == 1  # was 0 with "no stored assets" (the asset was skipped, silently)
    assert f"MISSING {tiny_asset.name}" in result.out and str(gone) in result.out
    assert f"python -m bench assets fetch {tiny_asset.name} --force" in result.out


def test_assets_verify_names_the_changed_file(tiny_asset, tamper, cli):
    assert cli("assets", "verify").code == 0
    tamper(tiny_asset.path)
    result = cli("assets", "verify")
    assert result.code == 1
    assert f"BAD     {tiny_asset.name}  ({tiny_asset.path}: sha256 differs" in result.out
    assert json.loads(tiny_asset.meta.read_text())["sha256"] != _sha(tiny_asset.path)
