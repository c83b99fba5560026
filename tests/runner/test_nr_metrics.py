"""No-reference metrics are ordinary matrix metrics: a matrix lists niqe, brisque, piqe like psnr, it validates, runs,
stores their specs, and the report shows them (and the no-reference board when the dataset has no ground truth)."""

from __future__ import annotations

import re
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


class _WithoutGroundTruth:
    """A dataset's images as a set without ground truth (NTIRE 2020 track 2 style): each sample is its LR only,
    ``imresize(HR, 1/4)`` rounded to 8 bits, and no HR."""

    has_ground_truth = False

    def __init__(self, inner) -> None:
        self.inner = inner

    def names(self) -> list[str]:
        return self.inner.names()

    def load(self, name: str):
        from bench.data.base import Sample
        from bench.data.imresize import imresize
        from bench.images import modcrop, quantize

        hr = modcrop(self.inner.load(name).hr, 4)
        return Sample(name, None, quantize(imresize(hr.unsqueeze(0), 1 / 4))[0])


def test_consistency_measure_runs_without_ground_truth_but_is_not_on_the_nr_board(nr_project, tmp_path, monkeypatch):
    """lr_psnr_input + niqe on a set without ground truth: both are computed (neither needs the HR), but only niqe,
    a perceptual no-reference score, is a column of the no-reference board; lr_psnr_input (a consistency measure)
    stays on the ordinary board. The SR-space columns and psnr need the HR: skipped, the cell ok."""
    from bench.report.html import write_report
    from bench.report.nr_board import nr_boards
    from bench.report.tables import load_run
    from bench.results.schema import NO_GROUND_TRUTH
    from bench.runner.runner import Runner

    real = Runner.dataset
    monkeypatch.setattr(Runner, "dataset", lambda self, entry: _WithoutGroundTruth(real(self, entry)))
    data = yaml.safe_load(nr_project["matrix"].read_text())
    data.update(
        methods=["bicubic", "tiny-rrdb"],
        metrics=["psnr", "lr_psnr_input", "niqe"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        sr_space={"samples": 2, "columns": ["lr_psnr"]},
    )
    data.pop("gallery")
    run_dir = tmp_path / "run"
    assert run_matrix(parse_matrix(data, source="test"), run_dir, device="cpu", progress=False).exit_code == 0
    rows = [r for p in Store(run_dir).iter_payloads() for r in p.records]
    by = {(r["method"], r["image"], r["metric"]): r for r in rows}
    assert len(by) == 2 * 2 * 5
    for method in ("bicubic", "tiny-rrdb"):
        for image in ("img0", "img1"):
            assert by[(method, image, "niqe")]["status"] == "ok"
            given = by[(method, image, "lr_psnr_input")]
            assert given["status"] == "ok" and given["spec"]["kind"] == "consistency"
            for metric in ("psnr", "lr_psnr_mean", "lr_psnr_worst"):
                skipped = by[(method, image, metric)]
                assert (skipped["status"], skipped["error"]) == ("skipped", NO_GROUND_TRUTH)
    # bicubic downscaled back is (almost) its input; the random tiny network is not
    assert (
        by[("bicubic", "img0", "lr_psnr_input")]["value"] > 35.0 > by[("tiny-rrdb", "img0", "lr_psnr_input")]["value"]
    )
    (board,) = nr_boards(load_run(run_dir))
    assert [c["metric"] for c in board["columns"]] == ["niqe"]
    html = write_report(run_dir).read_text(encoding="utf-8")
    section = html[html.index('id="no-reference"') :]
    section = section[: section.index("</section>")]
    assert re.findall(r"<th title=\"[^\"]*\">(\w+) [↑↓]</th>", section) == ["niqe"]
    assert "lr_psnr_input ↑" in html.replace(section, "")  # on the ordinary board
