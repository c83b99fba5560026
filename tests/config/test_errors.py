"""One error hierarchy: every configuration file's error is a ConfigFileError, a ConfigError, a BenchError and a
ValueError, so each ``except`` site and the CLI's one ``error:`` line (with the fix) work for all of them."""

from __future__ import annotations

import pytest

import bench.config.errors
from bench import errors
from bench.assets.errors import ManifestError as AssetManifestError
from bench.cli import error_line, main
from bench.data.manifest import ManifestError as DatasetManifestError
from bench.methods.cards import CardError
from bench.runner.matrix import MatrixError
from bench.train.recipe import RecipeError

FILE_ERRORS = (MatrixError, CardError, RecipeError, DatasetManifestError, AssetManifestError)


def test_one_class_per_name() -> None:
    assert bench.config.errors.ConfigError is errors.ConfigError
    assert bench.config.errors.ConfigFileError is errors.ConfigFileError
    assert issubclass(errors.ConfigFileError, errors.ConfigError)


@pytest.mark.parametrize("cls", FILE_ERRORS, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_file_error_is_a_config_error_of_the_project(cls) -> None:
    exc = cls("x.yaml", ["a.b: wrong", "c: missing"])
    assert isinstance(exc, errors.ConfigFileError) and isinstance(exc, errors.ConfigError)
    assert isinstance(exc, errors.BenchError) and isinstance(exc, ValueError)
    assert exc.source == "x.yaml" and exc.problems == ["a.b: wrong", "c: missing"] and exc.fix is None
    assert str(exc) == f"{cls.kind} x.yaml: 2 problems\n  - a.b: wrong\n  - c: missing"
    assert error_line(exc) == f"error: {cls.kind} x.yaml: 2 problems - a.b: wrong - c: missing"


def test_a_fix_is_printed_once_on_the_error_line() -> None:
    exc = errors.ConfigFileError("m.yaml", ["seeds: empty"], "matrix", fix="add seeds: [0]")
    assert str(exc) == "matrix m.yaml: seeds: empty; fix: `add seeds: [0]`"
    assert error_line(exc) == "error: matrix m.yaml: seeds: empty; fix: add seeds: [0]"
    plain = errors.ConfigError("unknown device 'tpu'", fix="--device auto, cpu, cuda or cuda:N")
    assert error_line(plain) == "error: unknown device 'tpu'; fix: --device auto, cpu, cuda or cuda:N"


def test_cli_prints_one_error_line_for_a_bad_config_file(tmp_path, capsys) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("name: m\nmetircs: [psnr]\n", encoding="utf-8")
    assert main(["run", "--matrix", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err  # one error: line, the file's problems indented below it
    assert err.count("error:") == 1 and err.startswith(f"error: matrix {bad}: ")
    assert "  - unknown key 'metircs' (did you mean 'metrics'?)\n" in err
    manifest = tmp_path / "set-a.yaml"
    manifest.write_text("name: set-a\ntitel: A\n", encoding="utf-8")
    assert main(["schema", "--check", str(manifest), "--kind", "dataset-manifest"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: dataset manifest {manifest}: ") and "unknown key 'titel' (did you mean 'title'?)" in err
    )
