"""``run.json`` is read through the results schema (:class:`RunInfo`): round trip, versions, the report's use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import OutputError
from bench.report.tables import load_run
from bench.results.schema import RUN_SCHEMA_VERSION, MatrixInfo, RunInfo, SchemaError
from bench.runner.store import Store

MATRIX = {
    "version": 1,
    "name": "m",
    "description": "two methods",
    "scale": 4,
    "datasets": [{"name": "ds", "crop": 64, "kwargs": {}}],
    "methods": ["alpha", "beta"],
    "conditions": [
        {"name": "clean", "corruption": "clean", "params": {}, "severity": 0},
        {"name": "noise-s1", "corruption": "gaussian_noise", "params": {"sigma": 0.01}, "severity": 1, "family": "n"},
    ],
    "metrics": [{"name": "psnr", "crop_border": 4}, {"name": "lpips_alex", "crop_border": 0}],
    "seeds": [0, 1],
    "source": "/x/m.yaml",
    "overrides": ["seeds=[0,1]"],
    "attacks": [{"name": "pgd", "attack": "pgd", "epsilons": [0.01]}, {"name": "fgsm", "attack": "fgsm"}],
    "attack_images": 2,
    "batch_images": 4,
}
INFO = {
    "run": "r",
    "matrix": MATRIX,
    "cells": ["k1", "k2"],
    "metric_specs": [{"name": "psnr", "higher_is_better": True, "full_reference": True}],
    "methods": {"alpha": {"title": "Alpha SR", "adapter": "bicubic"}, "beta": {"adapter": "rrdbnet"}},
    "environment": {"torch": "2.x"},
    "device": "cpu",
    "world_size": 2,
    "lr_synthesis": "MATLAB bicubic",
    "started": "2026-01-02T00:00:00Z",
    "first_started": "2026-01-01T00:00:00Z",
    "added_by_a_newer_runner": {"kept": True},
}


def test_round_trip_keeps_every_field_and_adds_the_version() -> None:
    info = RunInfo.from_dict(INFO)
    assert info.version == RUN_SCHEMA_VERSION == 1  # a file without "version" is version 1 (the same keys)
    assert info.run == "r" and info.cells == ("k1", "k2") and info.world_size == 2 and info.device == "cpu"
    assert info.started_first == "2026-01-01T00:00:00Z" and info.finished is None
    assert info.method_title("alpha") == "Alpha SR" and info.method_title("beta") == "beta"
    assert info.extra == {"added_by_a_newer_runner": {"kept": True}}
    out = info.as_dict()
    assert out == {**INFO, "version": RUN_SCHEMA_VERSION}
    assert RunInfo.from_dict(json.loads(json.dumps(out))) == info


def test_matrix_names_in_the_matrix_order() -> None:
    matrix = MatrixInfo.from_dict(MATRIX)
    assert matrix.names("method") == ["alpha", "beta"]
    assert matrix.names("dataset") == ["ds"]
    assert matrix.names("condition") == ["clean", "noise-s1"]
    assert matrix.names("metric") == ["psnr", "lpips_alex"]
    assert matrix.names("attack") == ["pgd", "fgsm"]
    assert matrix.condition("noise-s1")["family"] == "n" and matrix.condition("fog") == {}
    assert (matrix.scale, matrix.seeds, matrix.overrides, matrix.attack_images) == (4, (0, 1), ("seeds=[0,1]",), 2)
    with pytest.raises(ValueError, match="unknown matrix axis 'seed'"):
        matrix.names("seed")


def test_a_resumed_run_keeps_its_first_start(tmp_path: Path) -> None:
    """What the runner does on a second start: read run.json, carry the first start over (absent keys stay absent)."""
    store = Store(tmp_path / "run")
    store.write_run_info({k: v for k, v in INFO.items() if k != "first_started"})
    previous = store.read_run_info()
    assert "first_started" not in previous and "finished" not in previous
    assert previous.get("first_started", previous["started"]) == INFO["started"]
    store.write_run_info({**previous, "finished": "2026-01-03T00:00:00Z"})
    assert store.read_info().finished == "2026-01-03T00:00:00Z"


def test_a_minimal_old_run_json_reads_with_defaults() -> None:
    info = RunInfo.from_dict({"run": "old", "matrix": {"methods": ["a"]}})
    assert info.cells is None  # every stored cell belongs to the run
    assert (info.device, info.world_size, info.lr_synthesis, info.started_first) == ("?", 1, "", None)
    assert info.matrix.name == "?" and info.matrix.scale is None and info.matrix.names("metric") == []


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unknown_version_is_refused_naming_the_file(version) -> None:
    with pytest.raises(SchemaError, match=r"/runs/x/run\.json: run\.json schema version .* not readable"):
        RunInfo.from_dict({**INFO, "version": version}, source="/runs/x/run.json")


def test_a_malformed_field_is_refused_naming_the_file() -> None:
    with pytest.raises(SchemaError, match=r"/runs/x/run\.json: not a run\.json of version 1"):
        RunInfo.from_dict({**INFO, "world_size": "two"}, source="/runs/x/run.json")
    with pytest.raises(SchemaError, match="not a mapping"):
        RunInfo.from_dict([1, 2], source="/runs/x/run.json")


def test_the_store_writes_the_version_and_the_report_refuses_a_newer_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "run")
    store.write_run_info(INFO)
    stored = json.loads(store.run_file.read_text())
    assert stored["version"] == RUN_SCHEMA_VERSION
    assert store.read_info() == RunInfo.from_dict(INFO)
    store.write(
        "k1",
        {"key": "k1", "status": "ok", "records": [], "labels": {"method": "alpha", "dataset": "ds", "condition": "c"}},
    )
    data = load_run(store.run_dir)
    assert isinstance(data.info, RunInfo) and data.name == "r" and data.missing == ["k2"]
    assert data.order("method") == ["alpha", "beta"] and data.order("metric") == ["psnr", "lpips_alex"]
    store.run_file.write_text(json.dumps({**stored, "version": 99}))
    with pytest.raises(SchemaError, match=str(store.run_file)):
        load_run(store.run_dir)
    store.run_file.write_text("{not json")
    with pytest.raises(OutputError, match=r"run\.json is not valid JSON"):  # names the file, says how to fix it
        load_run(store.run_dir)
