"""CertSR in the runner: sigma chosen per condition on a disjoint validation split (cached, stored with the cells),
certified columns for smoothed methods, the ``smoothing:`` section's validation, and the packaged certsr matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.runner.matrix import MatrixError, load_matrix
from bench.runner.runner import Runner, certified_specs, run_matrix
from bench.runner.store import Store

SMOOTHING = {
    "sigma_grid": [None, 0.02, 0.1],
    # a small crop of the embedded training photos: disjoint from the tiny project's evaluation images
    "validation": {"dataset": "embedded-train", "crop": 32, "images": 2},
    "metric": "psnr",  # LPIPS needs weights the isolated test home does not hold
    "certify": {"epsilons": [0.0, 0.01, 0.05], "n_samples": 15, "alpha": 0.01},
}


def _project(tiny_project: dict, sigma: str = "auto", **changes) -> Path:
    # bicubic as the base: the smoothing visibly changes its output (a random-init RRDB's output is nearly constant)
    text = f"title: Tiny MRS\nadapter: median_smoothing\nargs: {{base: bicubic, sigma: {sigma}, n: 3}}\ntile: null\n"
    (tiny_project["methods"] / "tiny-mrs.yaml").write_text(text)
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data.update({"methods": ["tiny-rrdb", "tiny-mrs"], "smoothing": SMOOTHING, "metrics": ["psnr"], **changes})
    tiny_project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))
    return tiny_project["matrix"]


def _payloads(run_dir: Path, method: str) -> list[dict]:
    return [p for p in Store(run_dir).iter_cells() if p["labels"]["method"] == method]


def test_sigma_is_chosen_per_condition_and_stored_with_the_cells(tiny_project, tmp_path, monkeypatch):
    import bench.certify

    calls = []
    real = bench.certify.select_sigma

    def counting(*args, **kwargs):
        calls.append(kwargs.get("evaluation_names"))
        return real(*args, **kwargs)

    monkeypatch.setattr(bench.certify, "select_sigma", counting)
    m = load_matrix(_project(tiny_project))
    summary = run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    assert summary.exit_code == 0
    assert len(calls) == 2  # once per condition (clean, noise), before the cells
    assert all(set(names) == {"img0", "img1", "img2"} for names in calls)  # evaluation names passed: disjointness
    for payload in _payloads(tmp_path / "run", "tiny-mrs"):
        sm = payload["smoothing"]
        sel = sm["selection"]
        assert sm["sigma_auto"] and sel["condition"] == payload["labels"]["condition"]
        assert sel["grid"] == [None, 0.02, 0.1] and set(sel["scores"]) == {"none", "0.02", "0.1"}
        order = ["none", "0.02", "0.1"]  # psnr: higher is better; ties go to the first grid value
        best = max(order, key=lambda k: (sel["scores"][k], -order.index(k)))
        assert len(set(sel["scores"].values())) == 3  # the grid values are told apart
        assert sm["sigma"] == (None if best == "none" else float(best)) == sel["sigma"]
        assert sel["images"] == ["flower", "hubble_deep_field"] and sel["dataset"] == "embedded-train"
        assert sm["settings"]["n"] == 3
        assert {r["sigma"] for r in payload["records"]} == {sm["sigma"]}
    selections = list((tmp_path / "run" / "sigma").glob("*.json"))
    assert len(selections) == 2
    # a rerun in a new run folder of the same matrix recomputes nothing once cells and selections are stored
    calls.clear()
    run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    assert calls == []


def test_selection_cache_is_reused_when_cells_are_recomputed(tiny_project, tmp_path, monkeypatch):
    import bench.certify

    m = load_matrix(_project(tiny_project))
    run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    for path in (tmp_path / "run" / "cells").glob("*.json"):
        path.unlink()  # the cells are gone, the sigma files stay

    def forbidden(*args, **kwargs):
        raise AssertionError("sigma selected again")

    monkeypatch.setattr(bench.certify, "select_sigma", forbidden)
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0


def test_fixed_sigma_forces_smoothing_and_certified_columns(tiny_project, tmp_path):
    m = load_matrix(_project(tiny_project, sigma="0.05"))
    run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    from bench.report.tables import load_run

    df = load_run(tmp_path / "run").records
    mrs = df[df.method == "tiny-mrs"]
    names = {"psnr", "cert_width@0", "cert_width@0.01", "cert_width@0.05", "cert_psnr@0", "cert_psnr@0.01"}
    assert names <= set(mrs["metric"])
    assert not df[df.method == "tiny-rrdb"]["metric"].str.startswith("cert_").any()  # the base has no certificate
    wide = mrs.pivot_table(index=["condition", "image"], columns="metric", values="value")
    # the interval grows with the budget: width up, PSNR bound down
    assert (wide["cert_width@0"] <= wide["cert_width@0.01"] + 1e-12).all()
    assert (wide["cert_width@0.01"] <= wide["cert_width@0.05"] + 1e-12).all()
    assert (wide["cert_psnr@0.01"] >= wide["cert_psnr@0.05"] - 1e-9).all()
    assert wide["cert_width@0.05"].between(0, 1).all()
    spec = mrs[mrs.metric == "cert_psnr@0.01"]["spec"].iloc[0]
    assert spec["higher_is_better"] and spec["crop_border"] == 4 and spec["extra"]["certified"]
    assert spec["extra"]["eps_l2_lr"] == 0.01 and spec["extra"]["alpha"] == 0.01
    payload = _payloads(tmp_path / "run", "tiny-mrs")[0]
    assert payload["smoothing"]["selection"] is None and payload["smoothing"]["sigma"] == 0.05
    assert payload["smoothing"]["certificates"][0]["n_samples"] == 15
    # the certificate's prediction is the smoothed output: its psnr equals a direct super_resolve's
    from bench.methods.cards import build_method
    from bench.metrics import build_metric
    from bench.runner.stages.prepare import prepare
    from bench.seeding import make_generator, seed_from

    runner = Runner(m, tmp_path / "check", device="cpu", progress=False)
    cell = next(c for c in runner.cells if c.method == "tiny-mrs" and c.condition.name == "noise")
    method, psnr = build_method("tiny-mrs"), build_metric("psnr", crop_border=4)
    stored = mrs[(mrs.metric == "psnr") & (mrs.condition == "noise")].set_index("image")["value"]
    for image in ("img0", "img2"):
        prepared = runner.corrupt(cell, prepare(runner.dataset(cell), image, m.scale, runner.device))
        sr = method.super_resolve(prepared.lr, make_generator(seed_from(cell.key, image, "method")))
        assert stored[image] == pytest.approx(float(psnr(sr, prepared.hr)[0]), abs=1e-4)


def test_certified_specs_describe_the_columns():
    specs = certified_specs(0.01, 0.001, 100, 4)
    width, psnr = specs["cert_width@0.01"], specs["cert_psnr@0.01"]
    assert not width["higher_is_better"] and not width["full_reference"]
    assert psnr["higher_is_better"] and psnr["full_reference"] and psnr["crop_border"] == 4
    assert width["extra"]["n_samples"] == 100 and "Lemma 4.1" in width["reference"]


def test_auto_sigma_without_smoothing_section_fails_its_cells(tiny_project, tmp_path):
    path = _project(tiny_project)
    data = yaml.safe_load(path.read_text())
    del data["smoothing"]
    path.write_text(yaml.safe_dump(data))
    summary = run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    assert summary.exit_code == 1 and len(summary.failed) == 2
    failed = [p for p in Store(tmp_path / "run").iter_cells() if p["status"] == "failed"]
    assert all("no 'smoothing:' section" in p["error"] for p in failed)


def test_smoothing_section_is_validated(tiny_project):
    path = _project(
        tiny_project,
        smoothing={
            "sigma_grid": [0.05, -1, 0.05],
            "validation": {"dataset": "folder", "path": str(tiny_project["hr"]), "crop": 30},
            "metric": "psnrr",
            "certify": {"epsilons": [], "alpha": 0.7},
            "grid": 1,
        },
    )
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    text = str(info.value)
    for expected in (
        "smoothing.sigma_grid.1: Input should be greater than 0",
        "repeated values",
        "is also evaluated",
        "smoothing.validation.crop: must be a multiple of the scale 4",
        "Did you mean psnr",
        "smoothing.certify.epsilons: List should have at least 1 item",
        "smoothing.certify.alpha: Input should be less than 0.5",
        "unknown key 'smoothing.grid'",
    ):
        assert expected in text, expected


def test_packaged_certsr_matrix(monkeypatch):
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    m = load_matrix("certsr")
    assert m.methods == ("realesrgan-x4plus", "realesrgan-x4plus-mrs-auto")
    assert {c.name: c.params for c in m.conditions} == {"clean": {}, "noise": {"sigma": 0.03}}
    assert m.smoothing is not None and len(m.smoothing.certify.epsilons) >= 3
    assert m.smoothing.validation.dataset == "embedded-train" and m.smoothing.metric == "lpips_alex"
    assert {d.name for d in m.datasets} == {"embedded-eval"}
    from bench.data.embedded import EVAL_NAMES

    assert not set(m.smoothing.validation.images) & set(EVAL_NAMES)
    from bench.methods.cards import load_card

    assert load_card("realesrgan-x4plus-mrs-auto").sigma_auto


def test_run_json_and_report_show_the_selection(tiny_project, tmp_path):
    m = load_matrix(_project(tiny_project))
    run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["matrix"]["smoothing"]["sigma_grid"] == [None, 0.02, 0.1]
    assert info["methods"]["tiny-mrs"]["base"]["card"] == "bicubic"  # wrapper provenance: the base card
    from bench.report.html import write_report

    html = write_report(tmp_path / "run").read_text()
    assert "Median smoothing (CertSR)" in html and "(auto)" in html
    assert "flower, hubble_deep_field" in html and "embedded-train crop 32" in html
