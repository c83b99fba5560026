"""Matrices through the declared models: one error naming file, key and closest name; every problem at once;
--set; NaN/inf, unsafe names and scale mismatches refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.runner.matrix import Condition, DatasetEntry, Matrix, MatrixError, load_matrix

BASE = {
    "version": 1,
    "name": "mini",
    "scale": 4,
    "datasets": [{"name": "embedded-eval", "crop": 32}],
    "methods": ["bicubic"],
    "conditions": [
        {"name": "clean", "corruption": "clean"},
        {"name": "noise", "corruption": "gaussian_noise", "params": {"sigma": 0.03}},
    ],
    "metrics": ["psnr", "ssim"],
}


@pytest.fixture(autouse=True)
def _shipped_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_PROJECT", raising=False)  # the checkout's methods/ (bicubic, realesrgan-x4plus, ...)


def _matrix(tmp_path: Path, text: str | None = None, **changes) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(text if text is not None else yaml.safe_dump({**BASE, **changes}, sort_keys=False))
    return path


def _error(path: Path, overrides: list[str] | None = None) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        load_matrix(path, overrides=overrides or [])
    return info.value


def test_the_base_matrix_is_valid(tmp_path: Path) -> None:
    m = load_matrix(_matrix(tmp_path))
    assert isinstance(m, Matrix) and m.name == "mini" and m.store_outputs is False
    assert [(e.name, e.crop_border) for e in m.metrics] == [("psnr", 4), ("ssim", 4)]
    assert m.conditions[1] == Condition("noise", "gaussian_noise", {"sigma": 0.03}, 0.03)
    assert m.datasets == (DatasetEntry("embedded-eval", 32),)


def test_a_typod_key_is_one_line_with_file_key_and_closest_name(tmp_path: Path) -> None:
    data = dict(BASE)
    data["metircs"] = data.pop("metrics")
    path = _matrix(tmp_path, yaml.safe_dump(data))
    err = _error(path)
    assert str(err) == f"matrix {path}: unknown key 'metircs' (did you mean 'metrics'?)"  # no extra "required" line
    assert err.problems == ["unknown key 'metircs' (did you mean 'metrics'?)"]


def test_a_nested_typo_names_the_dotted_key(tmp_path: Path) -> None:
    path = _matrix(tmp_path, gallery={"image": "astronaut", "sise": 8})
    assert _error(path).problems == ["unknown key 'gallery.sise' (did you mean 'gallery.size'?)"]


def test_a_typod_method_name_names_the_file_key_and_closest_card(tmp_path: Path) -> None:
    path = _matrix(tmp_path, methods=["bicubic", "realesrgan-x4plsu"])
    err = _error(path)
    assert len(err.problems) == 1
    text = str(err)
    assert text.startswith(f"matrix {path}: methods.realesrgan-x4plsu: unknown method card 'realesrgan-x4plsu'")
    assert "Did you mean realesrgan-x4plus" in text


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    path = _matrix(
        tmp_path,
        seed=[1],
        methods=["bicubik"],
        metrics=["psnr", "lpips_alx"],
        conditions=[{"name": "noise", "corruption": "gaussian_noise", "params": {"sigmaa": 0.1}}],
        batch_images=0,
    )
    err = _error(path)
    assert len(err.problems) == 5, err.problems
    text = str(err)
    assert text.startswith(f"matrix {path}: 5 problems\n  - ")
    assert "unknown key 'seed' (did you mean 'seeds'?)" in text
    assert "batch_images: Input should be greater than 0, got 0" in text
    assert "methods.bicubik: unknown method card 'bicubik'" in text and "Did you mean bicubic" in text
    assert "metrics.lpips_alx: unknown metric 'lpips_alx'" in text and "lpips_alex" in text
    assert "conditions.noise.params: corruption 'gaussian_noise' rejects {'sigmaa': 0.1}" in text
    assert "(did you mean 'sigma'?)" in text


def test_set_addresses_list_entries_by_name(tmp_path: Path) -> None:
    path = _matrix(tmp_path)
    m = load_matrix(path, overrides=["conditions.noise.params.sigma=0.1", "metrics.ssim.crop_border=0"])
    assert next(c for c in m.conditions if c.name == "noise").params == {"sigma": 0.1}
    assert {e.name: e.crop_border for e in m.metrics} == {"psnr": 4, "ssim": 0}
    assert m.overrides == ("conditions.noise.params.sigma=0.1", "metrics.ssim.crop_border=0")


def test_bad_yaml_in_a_set_value_is_one_line_naming_the_key(tmp_path: Path) -> None:
    err = _error(_matrix(tmp_path), ["conditions.noise.params={sigma: 0.1"])
    assert len(err.problems) == 1
    assert err.problems[0].startswith("--set conditions.noise.params: the value '{sigma: 0.1' is not valid YAML")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_sigma_is_refused(tmp_path: Path, value: str) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False).replace("sigma: 0.03", f"sigma: {value}")
    assert value in text
    err = _error(_matrix(tmp_path, text))
    assert any(p.startswith("conditions.noise.params.sigma:") and "not a finite number" in p for p in err.problems)
    err = _error(_matrix(tmp_path), [f"conditions.noise.params.sigma={value}"])  # the same through --set
    assert any("conditions.noise.params.sigma" in p and "finite" in p for p in err.problems)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "/abs", ".hidden", ""])
def test_matrix_names_must_be_safe_folder_names(tmp_path: Path, name: str) -> None:
    err = _error(_matrix(tmp_path, name=name))
    assert len(err.problems) == 1 and err.problems[0].startswith("name: ")


def test_run_refuses_an_unsafe_run_name_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli import main

    out = tmp_path / "out"
    assert main(["run", "--matrix", str(_matrix(tmp_path)), "--out", str(out), "--run", "../escape"]) == 2
    assert "--run: '../escape' is not a safe name" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "escape").exists()
    assert main(["run", "--matrix", str(_matrix(tmp_path)), "--out", str(out), "--set", "name=../x"]) == 2
    assert "name: '../x' is not a safe name" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "x").exists()


def test_scale_mismatch_with_a_x4_card_is_caught_at_validation(tmp_path: Path) -> None:
    err = _error(_matrix(tmp_path, scale=3, methods=["bicubic", "realesrgan-x4plus"]))
    assert len(err.problems) == 2
    assert err.problems[1] == (
        "methods.realesrgan-x4plus: the card's method upscales x4 but the matrix's scale is 3; "
        "use a x3 card or set scale: 4"
    )


def test_a_smoothing_card_takes_the_scale_of_its_base(tmp_path: Path) -> None:
    m = load_matrix(_matrix(tmp_path, methods=["realesrgan-x4plus-mrs"]))
    assert m.methods == ("realesrgan-x4plus-mrs",)
    assert len(_error(_matrix(tmp_path, scale=2, methods=["realesrgan-x4plus-mrs"])).problems) == 1


def test_store_outputs_is_a_declared_boolean(tmp_path: Path) -> None:
    assert load_matrix(_matrix(tmp_path, store_outputs=True)).store_outputs is True
    assert load_matrix(_matrix(tmp_path)).as_dict()["store_outputs"] is False
    err = _error(_matrix(tmp_path, store_outputs="yes"))
    assert err.problems == ["store_outputs: Input should be a valid boolean, got 'yes'"]


def test_non_utf8_matrix_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(BASE).encode("utf-8") + "description: caf\xe9\n".encode("latin-1"))
    err = _error(path)
    assert str(err).startswith(f"matrix {path}: not UTF-8 text (byte 0xe9")


def test_matrices_are_frozen_and_keep_positional_construction(tmp_path: Path) -> None:
    m = load_matrix(_matrix(tmp_path))
    with pytest.raises(ValueError, match="frozen"):
        m.scale = 2  # type: ignore[misc]
    assert Condition("n", "jpeg", {"quality": 30}, 30).identity() == {
        "name": "n",
        "corruption": "jpeg",
        "params": {"quality": 30},
        "attack": "none",
        "epsilon": 0.0,
    }
    with pytest.raises(ValueError, match="crop"):
        DatasetEntry("embedded-eval", "big")


def test_run_with_bad_set_yaml_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli import main

    out = tmp_path / "out"
    assert main(["run", "--matrix", str(_matrix(tmp_path)), "--out", str(out), "--set", "seeds=[0, 1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: matrix ") and "--set seeds: the value '[0, 1' is not valid YAML" in err
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists()
