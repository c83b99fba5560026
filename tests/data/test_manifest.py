"""The dataset manifests of ``datasets/``: every one valid, the DIV2K ones carrying the published checksums, and the
model refusing malformed manifests with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from bench.data.embedded import EVAL_NAMES, TRAIN_NAMES
from bench.data.manifest import (
    DatasetManifest,
    ManifestError,
    json_schema,
    load_manifest,
    load_manifests,
    parse_manifest,
)
from bench.errors import ConfigFileError

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"

# The DIV2K archives' sizes and sha256 as published in the DIV2K checksum file of tensorflow-datasets 4.9.10
# (tensorflow_datasets/datasets/div2k/checksums.tsv), base URL https://data.vision.ee.ethz.ch/cvl/DIV2K/.
PUBLISHED_DIV2K = {
    "DIV2K_train_HR.zip": (3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
    "DIV2K_valid_HR.zip": (448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
    "DIV2K_valid_LR_bicubic_X4.zip": (31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553"),
}

REQUIRED = {
    "embedded-eval",
    "embedded-train",
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
}


def test_every_manifest_is_valid_and_the_required_ones_exist() -> None:
    manifests, invalid = load_manifests(DATASETS_DIR)
    assert invalid == {}
    assert set(manifests) >= REQUIRED
    for m in manifests.values():
        assert m.license and m.citation
        if m.kind == "archive":
            assert m.fetchable or m.manual, m.name  # a user can always learn how to get it


def test_div2k_manifests_carry_the_published_checksums() -> None:
    seen = set()
    for name in ("div2k-train", "div2k-val", "div2k-val-bicubic-x4"):
        m = load_manifest(DATASETS_DIR / f"{name}.yaml")
        for src in m.sources:
            size, sha = PUBLISHED_DIV2K[src.file]
            assert (src.size, src.sha256) == (size, sha), src.file
            assert src.url == f"https://data.vision.ee.ethz.ch/cvl/DIV2K/{src.file}"
            seen.add(src.file)
    assert seen == set(PUBLISHED_DIV2K)


def test_shared_assets_table_agrees_when_present() -> None:
    """The project's ASSETS.md table (outside the repository on the build machines) lists the same figures."""
    table = Path("/work/shared/ASSETS.md")
    if not table.is_file():
        pytest.skip("ASSETS.md is not on this machine")
    rows = {}
    for line in table.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].endswith(".zip"):
            rows[cells[0]] = (int(cells[1]), cells[2])
    for file, figures in PUBLISHED_DIV2K.items():
        assert rows[file] == figures


def test_embedded_manifests_match_the_code() -> None:
    assert load_manifest(DATASETS_DIR / "embedded-eval.yaml").embedded_images == EVAL_NAMES
    assert load_manifest(DATASETS_DIR / "embedded-train.yaml").embedded_images == TRAIN_NAMES


def test_no_ground_truth_and_manual_sets_are_declared() -> None:
    t2 = load_manifest(DATASETS_DIR / "ntire20-t2-val.yaml")
    assert t2.ground_truth is False and t2.pairing.hr is None
    for name in ("realsr-v3", "drealsr", "super", "imagepairs"):
        m = load_manifest(DATASETS_DIR / f"{name}.yaml")
        assert not m.fetchable and m.manual and "--from" in m.fetch_command()
    assert load_manifest(DATASETS_DIR / "realsr-v3.yaml").pairing.lr_at_hr_size is False


def _base(**over) -> dict:
    data = yaml.safe_load((DATASETS_DIR / "div2k-val.yaml").read_text(encoding="utf-8"))
    data.update(over)
    return data


@pytest.mark.parametrize(
    "change, field",
    [
        ({"unknown_key": 1}, "unknown_key"),
        ({"name": "Bad_Name"}, "name"),
        ({"split": "dev"}, "split"),
        ({"scales": []}, "scales"),
        ({"scale": 8}, "scale 8 is not one of"),
        ({"sources": [{"file": "a.zip", "url": "https://x.org/a.zip", "sha256": "abc"}]}, "sha256"),
        ({"sources": [{"file": "../a.zip", "url": "https://x.org/a.zip", "sha256": "lock"}]}, "file"),
        ({"sources": [{"file": "a.zip", "url": "ftp://x.org/a.zip", "sha256": "lock"}]}, "url"),
        ({"sources": [{"file": "a.zip", "url": None, "sha256": "lock"}]}, "manual"),
        ({"sources": [{"file": "a.zip", "url": "https://x/a", "sha256": "lock", "extract_to": "../up"}]}, "extract_to"),
        ({"ground_truth": False}, "ground_truth: false"),
        ({"pairing": {"hr": "HR/{name}.png"}}, "unknown fields"),
        ({"pairing": {"hr": "HR/x.png"}}, "exactly once"),
        ({"pairing": {"hr": "/abs/{id}.png"}}, "relative path"),
        ({"pairing": {"hr": "{id}/x.png"}}, "in the file name"),
        ({"pairing": {"hr": "HR/{id}.png", "lr": "LR/{id}.png"}}, "has no {scale}"),
        ({"images": {8: 100}}, "images"),
    ],
)
def test_malformed_manifests_are_refused(change, field) -> None:
    with pytest.raises(ManifestError, match=r"div2k-val\.yaml") as err:
        parse_manifest(_base(**change), "datasets/div2k-val.yaml")
    assert field in str(err.value)


def test_model_is_frozen_and_digest_tracks_content() -> None:
    m = parse_manifest(_base())
    with pytest.raises(ValidationError):
        m.name = "x"  # type: ignore[misc]
    assert m.digest() == parse_manifest(_base()).digest()
    assert m.digest() != parse_manifest(_base(title="other")).digest()
    assert "properties" in json_schema() and json_schema()["additionalProperties"] is False
    assert isinstance(m, DatasetManifest) and m.default_scale == 4


def test_file_name_must_match(tmp_path) -> None:
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(_base()), encoding="utf-8")
    with pytest.raises(ManifestError, match="differs from the file name"):
        load_manifest(tmp_path / "other.yaml")
    (tmp_path / "bad.yaml").write_text("name: [", encoding="utf-8")
    good, bad = load_manifests(tmp_path)
    assert good == {} and set(bad) == {"other.yaml", "bad.yaml"}


# ---- through the shared configuration loader: located problems, did-you-mean, every problem at once ------------------


def _write(tmp_path: Path, data: dict, name: str = "div2k-val") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_typoed_key_names_file_key_and_closest(tmp_path) -> None:
    data = _base()
    data["licence"] = data.pop("license")
    path = _write(tmp_path, data)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    # one problem (the missing 'license' is the typo's, not reported twice), one line with the file
    assert err.value.problems == ["unknown key 'licence' (did you mean 'license'?)"]
    assert str(err.value) == f"dataset manifest {path}: unknown key 'licence' (did you mean 'license'?)"
    assert isinstance(err.value, ConfigFileError) and isinstance(err.value, ValueError)


def test_bad_sha256_is_located_at_its_source(tmp_path) -> None:
    data = _base()
    data["sources"][0]["sha256"] = data["sources"][0]["sha256"].upper()
    with pytest.raises(ManifestError) as err:
        load_manifest(_write(tmp_path, data))
    (line,) = err.value.problems
    assert line.startswith("sources.0.sha256: must be 64 lower-case hex digits or 'lock', got '20DD31FD")


def test_two_problems_are_reported_at_once(tmp_path) -> None:
    data = _base(split="dev")
    data["pairing"]["hrr"] = data["pairing"].pop("hr")
    path = _write(tmp_path, data)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert sorted(err.value.problems) == [
        "split: Input should be 'train', 'val' or 'test', got 'dev'",
        "unknown key 'pairing.hrr' (did you mean 'pairing.hr'?)",
    ]
    assert str(err.value).startswith(f"dataset manifest {path}: 2 problems\n  - ")


def test_cross_field_problems_are_each_located(tmp_path) -> None:
    """Rules that tie fields together are reported together, each at its key (not at 'the top level')."""
    data = _base(ground_truth=False, scale=8, sources=[{"file": "a.zip", "url": None, "sha256": "lock"}])
    with pytest.raises(ManifestError) as err:
        load_manifest(_write(tmp_path, data, "other"))
    assert err.value.problems == [
        "name: 'div2k-val' differs from the file name (expected 'other', or rename the file)",
        "scale: the default scale 8 is not one of scales [2, 3, 4]",
        "manual: sources without url (a.zip) need a manual: text saying where to get them",
        "pairing.hr: ground_truth: false means no hr pattern (LR only); set hr: null",
        "pairing.lr: ground_truth: false needs an lr pattern",
    ]


def test_unreadable_manifests_name_the_file(tmp_path) -> None:
    (tmp_path / "div2k-val.yaml").write_bytes(b"name: div2k-val\ntitle: \xff\n")
    with pytest.raises(ManifestError, match=r"dataset manifest .*div2k-val\.yaml: not UTF-8 text"):
        load_manifest(tmp_path / "div2k-val.yaml")
    (tmp_path / "div2k-val.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="the top level must be a mapping of keys, got list"):
        load_manifest(tmp_path / "div2k-val.yaml")
