"""The dataset registry resolves the manifests of the project current at each lookup: two projects with different
manifests in one process, ``$BENCH_PROJECT`` switched between lookups, names listed as the manifests spell them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from bench.data import DATASETS, build_dataset
from bench.data.catalog import project_catalog


def _manifest(name: str, scales: list[int], title: str | None = None) -> dict:
    return {
        "name": name,
        "title": title or f"Set {name}",
        "split": "test",
        "license": "test data",
        "citation": "none",
        "scales": scales,
        "sources": [{"file": f"{name}.zip", "url": f"https://example.org/{name}.zip", "sha256": "lock"}],
        "pairing": {"hr": "HR/{id}.png", "lr": "LR/x{scale}/{id}.png" if len(scales) > 1 else "LR/{id}.png"},
    }


def _project(root: Path, *manifests: dict) -> Path:
    (root / "datasets").mkdir(parents=True)
    for m in manifests:
        (root / "datasets" / f"{m['name']}.yaml").write_text(yaml.safe_dump(m), encoding="utf-8")
    return root


@pytest.fixture
def two_projects(tmp_path, monkeypatch):
    a = _project(tmp_path / "a", _manifest("alpha-set", [2]), _manifest("shared-set", [2, 4]))
    b = _project(tmp_path / "b", _manifest("beta-set", [3]), _manifest("shared-set", [3]))
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))  # nothing fetched
    return a, b


def test_switching_projects_between_lookups(two_projects, monkeypatch) -> None:
    a, b = two_projects
    monkeypatch.setenv("BENCH_PROJECT", str(a))
    assert "alpha-set" in DATASETS and "beta-set" not in DATASETS
    assert DATASETS.get("shared-set").scales == (2, 4)
    names_a = DATASETS.names()
    assert {"alpha-set", "shared-set", "embedded-eval", "folder"} <= set(names_a) and "beta-set" not in names_a
    assert not any("_" in n for n in names_a)  # as the manifests spell them, not the registry's normalised keys

    monkeypatch.setenv("BENCH_PROJECT", str(b))
    assert "beta-set" in DATASETS and "alpha-set" not in DATASETS
    assert DATASETS.get("shared-set").scales == (3,)  # b's manifest, not the one seen first
    assert DATASETS.canonical("beta_set") == "beta-set"  # lookups stay dash/underscore-insensitive
    with pytest.raises(KeyError, match=r"unknown dataset 'alpha-set'\..* Known: .*beta-set.*manifests of .*b"):
        DATASETS.get("alpha-set")

    monkeypatch.setenv("BENCH_PROJECT", str(a))  # and back
    assert DATASETS.get("shared-set").scales == (2, 4) and "alpha-set" in DATASETS


def test_a_manifest_dataset_reads_its_own_project(two_projects, monkeypatch) -> None:
    """The factory of b's dataset, built while b is current, names b's fetch command; code datasets are unaffected."""
    a, b = two_projects
    monkeypatch.setenv("BENCH_PROJECT", str(b))
    with pytest.raises(FileNotFoundError, match=r"python -m bench datasets fetch beta-set"):
        build_dataset("beta-set")
    monkeypatch.setenv("BENCH_PROJECT", str(a))
    with pytest.raises(KeyError, match=r"unknown dataset 'beta-set'\. Known: alpha-set, "):
        build_dataset("beta-set")
    assert len(build_dataset("embedded-eval", crop=16)) == 6


def test_edited_added_and_invalid_manifests_are_seen(two_projects, monkeypatch) -> None:
    a, _ = two_projects
    monkeypatch.setenv("BENCH_PROJECT", str(a))
    assert DATASETS.get("alpha-set").scales == (2,)
    path = a / "datasets" / "alpha-set.yaml"
    path.write_text(yaml.safe_dump(_manifest("alpha-set", [2, 4], title="Set alpha, edited")), encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a coarse clock may not tick
    assert DATASETS.get("alpha-set").scales == (2, 4)
    (a / "datasets" / "gamma-set.yaml").write_text(yaml.safe_dump(_manifest("gamma-set", [4])), encoding="utf-8")
    assert "gamma-set" in DATASETS.names()
    broken = _manifest("delta-set", [4])
    broken["sources"][0]["sha256"] = "abc"
    (a / "datasets" / "delta-set.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(
        KeyError, match=r"Its manifest is invalid: dataset manifest .*delta-set\.yaml: sources\.0\.sha256"
    ):
        DATASETS.get("delta-set")
    assert set(project_catalog(a / "datasets").invalid) == {"delta-set.yaml"}


def test_the_checkout_manifests_resolve_without_bench_project(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "nothing"))
    factory = DATASETS.get("div2k_val")
    assert DATASETS.canonical("div2k_val") == "div2k-val" and factory.scales == (2, 3, 4)
    assert factory is DATASETS.get("div2k-val")  # cached while the folder is unchanged
    assert factory.__doc__.startswith("DIV2K validation HR") and factory.ground_truth is True


def test_two_manifests_whose_names_differ_only_in_case_or_dash_are_one_clear_error(tmp_path, monkeypatch) -> None:
    """``div2k-val.yaml`` and ``DIV2K_val.yaml`` are one name to every lookup (the second is also invalid: a name is
    lower-case with dashes). Looking it up, in any spelling, is one line naming both files -- never the valid set
    silently in place of the one the user added; the other datasets still resolve."""
    from bench.errors import NameCollision

    root = _project(tmp_path / "p", _manifest("div2k-val", [4]), _manifest("other", [4]))
    (root / "datasets" / "DIV2K_val.yaml").write_text(yaml.safe_dump(_manifest("DIV2K_val", [2])), encoding="utf-8")
    monkeypatch.setenv("BENCH_PROJECT", str(root))
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    folder = (root / "datasets").resolve()
    for spelling in ("div2k-val", "DIV2K_val", "Div2k-Val"):
        with pytest.raises(NameCollision) as exc:
            DATASETS.get(spelling)
        message = str(exc.value)
        assert "\n" not in message and message.startswith(
            f"dataset {spelling!r} is ambiguous: the manifests div2k-val.yaml and DIV2K_val.yaml of {folder} have "
            "names that differ only in case or '-'/'_'"
        )
        assert message.endswith("rename or remove one of them")
    assert DATASETS.get("other").scales == (4,)
    (root / "datasets" / "DIV2K_val.yaml").unlink()  # removed: the name is one set again
    assert DATASETS.get("DIV2K_val").scales == (4,)


def test_a_matrix_naming_a_colliding_dataset_is_refused_with_both_files(tmp_path, monkeypatch) -> None:
    from bench.runner.matrix import MatrixError, load_matrix

    root = _project(tmp_path / "p", _manifest("div2k-val", [4]), _manifest("div2k_val", [4]))
    monkeypatch.setenv("BENCH_PROJECT", str(root))
    matrix = {"version": 1, "name": "m", "scale": 4, "datasets": [{"name": "div2k-val"}], "methods": ["bicubic"]}
    matrix.update(conditions=[{"name": "clean", "corruption": "clean"}], metrics=["psnr"])
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(matrix), encoding="utf-8")
    with pytest.raises(MatrixError, match=r"datasets\.div2k-val: dataset 'div2k-val' is ambiguous: the manifests "):
        load_matrix(path)
