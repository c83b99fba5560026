"""The asset manifest is declared configuration: one loader, located problems, all at once, and a JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bench.assets import ManifestError, list_assets
from bench.assets.manifest import PACKAGED_MANIFEST, AssetManifest, load_manifest, parse_manifest
from bench.cli import main
from bench.config.errors import ConfigError

GOOD_SHA = "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"


def _manifest() -> dict:
    return {
        "version": 1,
        "assets": [
            {
                "name": "tiny",
                "kind": "rrdbnet",
                "description": "t",
                "license": "MIT",
                "paper": "-",
                "arch": {"num_block": 1},
                "sources": [
                    {
                        "type": "url",
                        "format": "basicsr-pth",
                        "files": [{"role": "weights", "url": "https://example.org/tiny.pth", "sha256": GOOD_SHA}],
                    },
                    {
                        "type": "pypi",
                        "package": "tiny-weights==1.0",
                        "filename": "tiny_weights-1.0-py3-none-any.whl",
                        "sha256": GOOD_SHA,
                        "format": "basicsr-pth",
                        "member": "tiny_weights/tiny.pth",
                    },
                ],
            }
        ],
    }


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _problems(path: Path) -> tuple[ManifestError, list[str]]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return info.value, info.value.problems


def test_a_valid_file_loads(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, _manifest()))
    assert isinstance(manifest, AssetManifest) and manifest.path == str((tmp_path / "manifest.yaml").resolve())
    url, pypi = manifest.assets[0].sources
    assert url.files[0].sha256 == GOOD_SHA and url.verified
    assert (pypi.project, pypi.version, pypi.members) == ("tiny-weights", "1.0", {"weights": "tiny_weights/tiny.pth"})


def test_a_typod_key_names_the_file_the_key_and_the_closest_name(tmp_path: Path) -> None:
    data = _manifest()
    data["assets"][0]["sources"][0]["files"][0]["sha265"] = data["assets"][0]["sources"][0]["files"][0].pop("sha256")
    path = _write(tmp_path, data)
    exc, problems = _problems(path)
    assert problems == [
        "unknown key 'assets.tiny.sources.0.files.0.sha265' (did you mean 'assets.tiny.sources.0.files.0.sha256'?)"
    ]
    assert str(exc) == f"asset manifest {path.resolve()}: {problems[0]}"


def test_a_typod_asset_key_is_located_by_the_asset_name(tmp_path: Path) -> None:
    data = _manifest()
    data["assets"][0]["sorces"] = data["assets"][0].pop("sources")
    _, problems = _problems(_write(tmp_path, data))
    assert problems == ["unknown key 'assets.tiny.sorces' (did you mean 'assets.tiny.sources'?)"]  # no 'missing' too


def test_a_bad_sha256_names_the_file_and_the_key(tmp_path: Path) -> None:
    data = _manifest()
    data["assets"][0]["sources"][0]["files"][0]["sha256"] = "4fa0d389"
    path = _write(tmp_path, data)
    exc, problems = _problems(path)
    assert problems == ["assets.tiny.sources.0.files.0.sha256: sha256 must be 64 hex digits, got '4fa0d389'"]
    assert str(exc) == f"asset manifest {path.resolve()}: {problems[0]}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = _manifest()
    data["assets"][0]["sources"][1]["sha256"] = "xyz"
    data["assets"][0]["licence"] = "MIT"
    data["assets"].append(dict(data["assets"][0], name="other", kind="gan"))
    data["assets"][1]["sources"] = [{"type": "ftp"}]
    path = _write(tmp_path, data)
    exc, problems = _problems(path)
    assert problems == [
        "assets.tiny.sources.1.sha256: sha256 must be 64 hex digits, got 'xyz'",
        "unknown key 'assets.tiny.licence' (did you mean 'assets.tiny.license'?)",
        "assets.other.kind: kind must be one of rrdbnet, lpips, niqe, brisque, nrqm, got 'gan'",
        "assets.other.sources.0: type must be one of url, pypi, got 'ftp'",
        "unknown key 'assets.other.licence' (did you mean 'assets.other.license'?)",
    ]
    assert str(exc).startswith(f"asset manifest {path.resolve()}: 5 problems\n  - ")


def test_cross_checks_are_located_too() -> None:
    data = _manifest()
    data["assets"][0]["sources"][0]["format"] = "basicsr-pht"
    data["assets"][0]["sources"][1]["members"] = {"param": "a", "bin": "b"}
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "m.yaml")
    first, second = info.value.problems
    assert first.startswith("assets.tiny.sources.0.format: unknown format 'basicsr-pht' (did you mean 'basicsr-pth'?)")
    assert second == "assets.tiny.sources.1: give exactly one of 'member' (one file) or 'members' (role: path)"
    data = _manifest()
    data["assets"][0]["kind"] = "niqe"
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "m.yaml")
    assert info.value.problems == [
        "assets.tiny.sources: source 0: format 'basicsr-pth' produces rrdbnet; "
        "source 1: format 'basicsr-pth' produces rrdbnet, not kind 'niqe'"
    ]


def test_a_manifest_error_is_an_asset_error_and_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "absent.yaml")
    assert isinstance(info.value, ConfigError) and info.value.problems == ["the file does not exist"]
    (tmp_path / "broken.yaml").write_text("version: [1\n")
    with pytest.raises(ManifestError, match=r"broken\.yaml: invalid YAML"):
        load_manifest(tmp_path / "broken.yaml")


def test_bench_assets_list_stops_with_the_located_line(tmp_path: Path, monkeypatch, capsys) -> None:
    data = _manifest()
    data["assets"][0]["sources"][0]["files"][0]["sha256"] = "0" * 63
    path = _write(tmp_path, data)
    monkeypatch.setenv("BENCH_ASSETS_MANIFEST", str(path))
    assert main(["assets", "list"]) == 2
    err = capsys.readouterr().err.strip()
    key = "assets.tiny.sources.0.files.0.sha256"
    assert err == f"error: asset manifest {path.resolve()}: {key}: sha256 must be 64 hex digits, got '{'0' * 63}'"


def test_the_packaged_manifest_validates_against_the_exported_schema(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    schema = json.loads((tmp_path / "asset-manifest.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    data = yaml.safe_load(PACKAGED_MANIFEST.read_text())
    assert [e.message for e in validator.iter_errors(data)] == []
    assert len(data["assets"]) == len(list_assets())
    data["assets"][0]["sources"][0]["files"][0]["sha265"] = "x"
    data["assets"][0]["sources"][1]["type"] = "ftp"
    errors = list(validator.iter_errors(data))
    assert len(errors) == 2, [e.message for e in errors]  # one per bad source (each a oneOf of url | pypi)

    def messages(error: jsonschema.ValidationError) -> list[str]:
        return [error.message] + [m for sub in error.context or [] for m in messages(sub)]

    assert any("'sha265' was unexpected" in m for e in errors for m in messages(e))
    assert any("'ftp' is not one of ['pypi']" in m or "'pypi' was expected" in m for e in errors for m in messages(e))


def test_schema_check_names_the_file_and_the_key(tmp_path: Path, capsys) -> None:
    data = _manifest()
    data["assets"][0]["sources"][0]["fromat"] = data["assets"][0]["sources"][0].pop("format")
    path = _write(tmp_path, data)
    assert main(["schema", "--check", str(path), "--kind", "asset-manifest"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: asset manifest {path.resolve()}: unknown key 'assets.tiny.sources.0.fromat' "
        "(did you mean 'assets.tiny.sources.0.format'?)"
    )
    assert main(["schema", "--check", str(PACKAGED_MANIFEST)]) == 0
    assert "(asset-manifest)" in capsys.readouterr().out
