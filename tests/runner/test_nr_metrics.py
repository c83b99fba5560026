"""No-reference metrics are ordinary matrix metrics: a matrix lists niqe, brisque, piqe like psnr, it validates, runs,
stores their specs, and the report shows them (and the no-reference board when the dataset has no ground truth)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bench.metrics import METRICS
from bench.runner.matrix import parse_matrix
from bench.runner.runner import run_matrix
from bench.runner.store import Store

NR = ("niqe", "brisque", "piqe")


def _nr_registered() -> list[str]:
    """Registered native metrics whose spec says no-reference (new ones are picked up the day they land)."""
    out = []
    for name, factory in METRICS.items():
        static = getattr(factory, "static_spec", None)  # a backend's spec known without building it (pyiqa)
        if name.startswith("pyiqa:") or (static is not None and static() is not None):
            continue
        try:
            metric = factory(pretrained=False) if getattr(factory, "needs_weights", ()) else factory()
        except TypeError:  # a learned metric without a random-weights mode: its asset decides, not tested here
            continue
        if not metric.spec.full_reference:
            out.append(name)
    return out


@pytest.fixture
def nr_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The tiny project with 192x192 images (NIQE needs two 96-pixel blocks) and the user's converted NR assets
    copied into an isolated ``$BENCH_HOME`` (skips when they were never fetched)."""
    from bench.paths import bench_home
    from tests.runner.conftest import write_tiny_project

    real = bench_home() / "assets"
    home = tmp_path / "home"
    (home / "assets").mkdir(parents=True)
    for asset in ("niqe-pristine", "brisque-live"):
        files = list(real.glob(f"{asset}.*"))
        if not files:
            pytest.skip(f"asset {asset} not fetched (python -m bench assets fetch {asset})")
        for f in files:
            shutil.copy2(f, home / "assets" / f.name)
    monkeypatch.setenv("BENCH_HOME", str(home))
    paths = write_tiny_project(tmp_path / "project", n_images=2, size=192)
    monkeypatch.setenv("BENCH_PROJECT", str(paths["root"]))
    return paths


def test_the_native_nr_metrics_are_registered():
    assert set(NR) <= set(_nr_registered())


@pytest.mark.parametrize("name", _nr_registered())
def test_every_nr_metric_validates_in_a_matrix(name):
    data = {
        "version": 1,
        "name": "nr",
        "datasets": [{"name": "embedded-eval", "crop": 192}],
        "methods": ["bicubic"],
        "conditions": [{"name": "clean"}],
        "metrics": ["psnr", name],
    }
    m = parse_matrix(data, source="test")
    assert [(e.name, e.crop_border) for e in m.metrics] == [("psnr", 4), (name, 0)]


def test_nr_metrics_run_in_a_matrix(nr_project, tmp_path):
    from bench.report.html import write_report

    data = yaml.safe_load(nr_project["matrix"].read_text())
    data.update(methods=["bicubic"], metrics=["psnr", *NR], conditions=[{"name": "clean", "corruption": "clean"}])
    run_dir = tmp_path / "run"
    assert run_matrix(parse_matrix(data, source="test"), run_dir, device="cpu", progress=False).exit_code == 0
    (payload,) = list(Store(run_dir).iter_payloads())
    assert {m: s["full_reference"] for m, s in payload.metric_specs.items()} == {
        "psnr": True,
        "niqe": False,
        "brisque": False,
        "piqe": False,
    }
    values = {(r["image"], r["metric"]): r["value"] for r in payload.records}
    assert len(values) == 2 * 4 and all(v is not None for v in values.values())
    assert all(0.0 <= values[(i, "piqe")] <= 100.0 for i in ("img0", "img1"))
    assert all(values[(i, "niqe")] > 0.0 for i in ("img0", "img1"))
    html = write_report(run_dir).read_text(encoding="utf-8")
    for name in NR:
        assert f"{name} ↓" in html  # lower is better, from the spec
    assert 'id="no-reference"' not in html  # this dataset has ground truth: psnr has values
