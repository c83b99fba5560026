"""Matrix files: validation reports every problem at once, overrides, includes, the packaged matrices."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.runner.matrix import MatrixError, apply_override, available_matrices, load_matrix


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_several_problems_reported_at_once_with_suggestions(tiny_project):
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data["seed"] = [1]  # unknown top-level key (seeds)
    data["methods"] = ["bicubic", "tiny-rrbd"]  # unknown card
    data["metrics"] = ["psnr", "ssimm"]  # unknown metric
    data["conditions"] = [
        {"name": "clean", "corruption": "clean"},
        {"name": "noise", "corruption": "gausian_noise", "params": {"sigma": 0.1}},  # unknown corruption
        {"name": "noise2", "corruption": "gaussian_noise", "params": {"sgima": 0.1}},  # rejected parameter
        {"name": "clean", "corruption": "clean"},  # duplicate name
    ]
    path = _write(tiny_project["root"] / "bad.yaml", data)
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    err = info.value
    text = str(err)
    assert str(path) in text
    assert len(err.problems) == 6, err.problems
    assert "'seed'" in text and "did you mean 'seeds'" in text
    assert "tiny-rrbd" in text and "tiny-rrdb" in text  # the card loader's suggestion
    assert "ssimm" in text and "Did you mean" in text
    assert "gausian_noise" in text and "gaussian_noise" in text
    assert "sgima" in text
    assert "duplicate condition name 'clean'" in text


def test_dataset_arguments_checked_against_the_factory(tiny_project):
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data["datasets"] = [{"name": "folder", "path": "x", "colour": 1}, {"name": "embeded-eval"}]
    with pytest.raises(MatrixError) as info:
        load_matrix(_write(tiny_project["root"] / "bad.yaml", data))
    assert len(info.value.problems) == 2
    assert "colour" in str(info.value)
    assert "embedded" in str(info.value)  # suggestion for the misspelt dataset


def test_overrides_by_name_index_and_whole_list(tiny_project):
    m = load_matrix(
        tiny_project["matrix"],
        overrides=[
            "conditions.noise.params.sigma=0.2",
            "methods=[bicubic]",
            "datasets.0.crop=16",
            "metrics.psnr.crop_border=2",
        ],
    )
    noise = next(c for c in m.conditions if c.name == "noise")
    assert noise.params == {"sigma": 0.2}
    assert noise.severity == 0.2
    assert m.methods == ("bicubic",)
    assert m.datasets[0].crop == 16
    assert {e.name: e.crop_border for e in m.metrics} == {"psnr": 2, "ssim": 4}  # ssim keeps its default: the scale
    assert m.overrides[0] == "conditions.noise.params.sigma=0.2"


def test_override_errors_are_collected(tiny_project):
    with pytest.raises(MatrixError) as info:
        load_matrix(tiny_project["matrix"], overrides=["conditions.fog.params.sigma=1", "nokey", "seeds=[x]"])
    text = str(info.value)
    assert "no entry named 'fog'" in text and "clean, noise" in text
    assert "expected KEY=VALUE" in text
    assert "seeds" in text
    assert len(info.value.problems) == 3


def test_apply_override_parses_yaml_values():
    data = {"conditions": [{"name": "a", "params": {}}], "metrics": ["psnr"]}
    apply_override(data, "conditions.a.params.quality=30")
    apply_override(data, "metrics.psnr.crop_border=0")
    assert data["conditions"][0]["params"]["quality"] == 30
    assert data["metrics"][0] == {"name": "psnr", "crop_border": 0}


def test_include_merges_and_the_including_file_wins(tiny_project):
    base = tiny_project["matrix"]
    child = _write(
        tiny_project["root"] / "child.yaml",
        {"include": base.name, "name": "child", "seeds": [1, 2], "gallery": {"size": 8}},
    )
    m = load_matrix(child)
    assert m.name == "child" and m.seeds == (1, 2)
    assert m.methods == ("bicubic", "tiny-rrdb")  # inherited
    assert m.gallery is not None and m.gallery.size == 8 and m.gallery.image == "img0"  # dicts deep-merged


def test_include_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", {"include": "b.yaml", "name": "a"})
    _write(tmp_path / "b.yaml", {"include": "a.yaml", "name": "b"})
    with pytest.raises(MatrixError, match="include cycle"):
        load_matrix(tmp_path / "a.yaml")


def test_unknown_packaged_matrix_suggests():
    with pytest.raises(MatrixError, match="Did you mean smoke"):
        load_matrix("smok")


@pytest.mark.parametrize("name", available_matrices())
def test_packaged_matrices_validate(name, monkeypatch):
    monkeypatch.delenv("BENCH_PROJECT", raising=False)  # the checkout's methods and manifests
    m = load_matrix(name)
    assert m.name == name
    assert m.scale == 4 and m.metrics and m.conditions
    from bench.report.papers import table_ids

    if name.removesuffix("-auto") not in table_ids():  # a paper table's matrix has the paper's conditions only
        assert "clean" in {c.name for c in m.conditions}  # ntire21-srspace has no corrupted condition


def test_default_matrix_conditions_follow_the_paper():
    m = load_matrix("default")
    by_name = {c.name: c for c in m.conditions}
    assert by_name["noise"].corruption == "gaussian_noise" and by_name["noise"].params == {"sigma": 0.03}
    assert by_name["blur"].corruption == "gaussian_blur" and by_name["blur"].params == {"size": 10, "sigma": 0.3}
    assert by_name["jpeg"].params == {"quality": 30}
    assert m.uses_crops
    assert m.methods == ("bicubic", "realesrgan-x4plus", "realsr-df2k", "realsr-df2k-jpeg")
    assert {(e.name, e.crop_border) for e in m.metrics} >= {("psnr", 4), ("ssim_y", 4), ("lpips_alex", 0)}
