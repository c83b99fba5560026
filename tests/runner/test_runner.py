"""The runner on a tiny project: records, resume without recomputation, failures as rows, sharding, the gallery."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.methods import cards
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix
from bench.runner.store import Store


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the images each method super-resolves (and how often each method is built)."""
    calls: Counter = Counter()
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        calls[f"build:{name}"] += 1
        inner = method.super_resolve

        def super_resolve(lr, generator=None):
            calls[name] += lr.shape[0]
            return inner(lr, generator)

        method.super_resolve = super_resolve
        return method

    monkeypatch.setattr(cards, "build_method", build)
    return calls


def _records(run_dir: Path) -> pd.DataFrame:
    rows = [r for p in Store(run_dir).iter_cells() for r in p["records"]]
    order = ["method", "condition", "image", "metric"]
    return pd.DataFrame(rows).sort_values(order, key=lambda s: s.astype(str)).reset_index(drop=True)


def test_run_records_and_provenance(tiny_project, tmp_path, counted):
    m = load_matrix(tiny_project["matrix"])
    summary = run_matrix(m, tmp_path / "out" / "r1", device="cpu", progress=False)
    assert (summary.total, summary.computed, summary.skipped, summary.failed) == (4, 4, 0, [])
    assert summary.exit_code == 0
    # each method built once per run, 3 images x 2 conditions each
    assert counted == Counter({"build:bicubic": 1, "build:tiny-rrdb": 1, "bicubic": 6, "tiny-rrdb": 6})
    df = _records(tmp_path / "out" / "r1")
    assert len(df) == 2 * 2 * 3 * 2  # methods x conditions x images x metrics
    assert set(df.columns) >= {"run", "method", "dataset", "image", "condition", "corruption", "severity", "attack"}
    assert set(df["status"]) == {"ok"} and df["run"].unique().tolist() == ["r1"]
    assert (df["attack"] == "none").all() and (df["epsilon"] == 0).all()
    psnr = df[df.metric == "psnr"]
    assert psnr["value"].between(0, 100).all()
    assert psnr[psnr.method == "bicubic"]["value"].between(15, 60).all()  # random-init tiny RRDB is far worse
    assert all(s["crop_border"] == 4 and s["higher_is_better"] for s in psnr["spec"])
    # noise lowers bicubic's PSNR on every image
    pivot = psnr[psnr.method == "bicubic"].pivot_table(index="image", columns="condition", values="value")
    assert (pivot["clean"] > pivot["noise"]).all()
    payload = next(Store(tmp_path / "out" / "r1").iter_cells())
    prov = payload["provenance"]
    assert prov["device"] == "cpu" and prov["environment"]["torch"] == torch.__version__
    assert prov["seconds_per_image"] > 0 and prov["images"] == 3 and prov["started"] <= prov["finished"]
    assert prov["method"]["card"] in ("bicubic", "tiny-rrdb")
    info = json.loads((tmp_path / "out" / "r1" / "run.json").read_text())
    assert len(info["cells"]) == 4 and info["matrix"]["name"] == "tiny"
    gallery = tmp_path / "out" / "r1" / "gallery" / "folder"
    assert {p.name for p in (gallery / "noise").iterdir()} == {"HR.png", "LR.png", "sr-bicubic.png", "sr-tiny-rrdb.png"}


def test_rerun_skips_finished_cells(tiny_project, tmp_path, counted, caplog):
    m = load_matrix(tiny_project["matrix"])
    run_dir = tmp_path / "run"
    run_matrix(m, run_dir, device="cpu", progress=False)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (run_dir / "cells").iterdir()}
    counted.clear()
    caplog.set_level("INFO", logger="bench.runner.runner")
    summary = run_matrix(m, run_dir, device="cpu", progress=False)
    assert (summary.skipped, summary.computed) == (4, 0)
    assert not any(k in counted for k in ("bicubic", "tiny-rrdb"))  # nothing recomputed
    assert "4 already stored (skipped)" in caplog.text
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (run_dir / "cells").iterdir()}
    assert after == before
    # a changed condition makes new cells only for that condition
    counted.clear()
    m2 = load_matrix(tiny_project["matrix"], overrides=["conditions.noise.params.sigma=0.1"])
    summary = run_matrix(m2, run_dir, device="cpu", progress=False)
    assert (summary.skipped, summary.computed) == (2, 2)
    assert counted["bicubic"] == 3 and counted["tiny-rrdb"] == 3


def test_seeded_corruption_is_reproducible(tiny_project, tmp_path):
    m = load_matrix(tiny_project["matrix"], overrides=["methods=[bicubic]"])
    run_matrix(m, tmp_path / "a", device="cpu", progress=False)
    run_matrix(m, tmp_path / "b", device="cpu", progress=False)
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert a["value"].tolist() == b["value"].tolist()
    m2 = load_matrix(tiny_project["matrix"], overrides=["methods=[bicubic]", "seeds=[1]"])
    run_matrix(m2, tmp_path / "c", device="cpu", progress=False)
    c = _records(tmp_path / "c")
    noisy = (a.condition == "noise").to_numpy()
    assert a["value"][noisy].tolist() != c["value"][noisy].tolist()  # another seed, another noise draw
    assert a["value"][~noisy].tolist() == c["value"][~noisy].tolist()  # the clean condition has no randomness


def test_nan_method_and_broken_image_become_failure_rows(tiny_project, tmp_path, monkeypatch):
    (tiny_project["hr"] / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        if name == "tiny-rrdb":
            method.super_resolve = lambda lr, generator=None: torch.full(
                (lr.shape[0], 3, lr.shape[2] * 4, lr.shape[3] * 4), float("nan")
            )
        return method

    monkeypatch.setattr(cards, "build_method", build)
    m = load_matrix(tiny_project["matrix"])
    summary = run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    assert summary.computed == 4 and len(summary.failed) == 4 and summary.exit_code == 1
    df = _records(tmp_path / "run")
    failed = df[df.status == "failed"]
    broken = failed[failed.image == "zz_broken"]
    assert len(broken) == 4 and broken["error"].str.contains("zz_broken").all()  # one row per cell, names the file
    nan_rows = failed[(failed.method == "tiny-rrdb") & (failed.image != "zz_broken")]
    assert len(nan_rows) == 6 and nan_rows["error"].str.contains("NaN").all()
    assert nan_rows["value"].isna().all()
    ok = df[df.status == "ok"]
    assert set(ok.method) == {"bicubic"} and len(ok) == 3 * 2 * 2  # the run went on for the good images
    # failed cells are retried by the next run
    summary = run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    assert summary.skipped == 0 and summary.computed == 4


@pytest.mark.parametrize("asset", ["esrgan-x4", "ghost-x4"])  # a known asset that is not stored; an unknown one
def test_method_that_cannot_be_built_fails_its_cells_with_the_fix(tiny_project, tmp_path, counted, asset):
    (tiny_project["methods"] / "ghost.yaml").write_text(
        f"title: Ghost\nadapter: rrdbnet\nargs: {{num_block: 1, num_feat: 8, num_grow_ch: 4}}\ncheckpoint: {asset}\n"
    )
    m = load_matrix(tiny_project["matrix"], overrides=["methods=[ghost, bicubic]"])
    summary = run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    assert len(summary.failed) == 2 and summary.exit_code == 1
    assert counted["bicubic"] == 6  # the other method's cells were computed
    failed = [p for p in Store(tmp_path / "run").iter_cells() if p["status"] == "failed"]
    assert len(failed) == 2
    for payload in failed:
        assert payload["labels"]["method"] == "ghost"
        assert payload["fix"].startswith(f"python -m bench assets fetch {asset}")  # quoted from the error
        assert payload["records"][0]["error"]


def test_shards_merge_to_the_single_run(tiny_project, tmp_path):
    from bench.report.tables import load_run

    m = load_matrix(tiny_project["matrix"])
    run_matrix(m, tmp_path / "single" / "r", device="cpu", progress=False)
    for rank in (1, 0):
        s = run_matrix(m, tmp_path / "sharded" / "r", device="cpu", rank=rank, world_size=2, progress=False)
        assert s.total == 2
    single = load_run(tmp_path / "single" / "r").records.drop(columns=["spec"])
    sharded = load_run(tmp_path / "sharded" / "r").records.drop(columns=["spec"])
    pd.testing.assert_frame_equal(single, sharded)


def test_batched_images_match_single_images(tiny_project, tmp_path):
    m1 = load_matrix(tiny_project["matrix"])
    m3 = load_matrix(tiny_project["matrix"], overrides=["batch_images=3"])
    run_matrix(m1, tmp_path / "a", device="cpu", progress=False)
    run_matrix(m3, tmp_path / "b", device="cpu", progress=False)
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert a["value"].to_numpy() == pytest.approx(b["value"].to_numpy(), abs=1e-6)


def test_device_run_matches_cpu(tiny_project, tmp_path, device):
    """The same cells on each available device give the same numbers (the corruption noise is drawn on CPU)."""
    m = load_matrix(tiny_project["matrix"])
    run_matrix(m, tmp_path / "cpu", device="cpu", progress=False)
    if device.type == "cpu":
        b = _records(tmp_path / "cpu")
    else:
        run_matrix(m, tmp_path / "dev", device=str(device), progress=False)
        b = _records(tmp_path / "dev")
        assert json.loads((tmp_path / "dev" / "run.json").read_text())["device"].startswith("cuda")
    a = _records(tmp_path / "cpu")
    assert list(a["cell"]) == list(b["cell"])  # the device is not part of the key
    assert b["value"].to_numpy() == pytest.approx(a["value"].to_numpy(), abs=2e-3)
