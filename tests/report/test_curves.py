"""Robustness curves and attacked leaderboards from a hand-written store: the points of metric-vs-epsilon (the
epsilon-0 point on the attacked images only) and metric-vs-severity, the PNGs linked (or inlined) in the HTML, mode
columns, the worst over seeds, and the attacked gallery."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.images import write_image
from bench.report.curves import attack_curves, attack_series, severity_curves, severity_series
from bench.report.html import write_report
from bench.report.tables import load_run, worst_over_seeds
from bench.runner.store import Store

PSNR = {"name": "psnr", "full_reference": True, "higher_is_better": True, "crop_border": 4}
LPIPS = {"name": "lpips_alex", "full_reference": True, "higher_is_better": False}
E2, E8 = 2 / 255, 8 / 255


def _rec(method, image, metric, value, *, condition="clean", attack="none", eps=0.0, mode=None, seed=0, sur=None):
    return {
        "run": "t",
        "method": method,
        "dataset": "ds",
        "image": image,
        "condition": condition,
        "corruption": "clean" if condition == "clean" else "gaussian_noise",
        "severity": 0,
        "attack": attack,
        "epsilon": eps,
        "seed": seed,
        "metric": metric,
        "value": value,
        "spec": PSNR if metric == "psnr" else LPIPS,
        "status": "ok",
        "error": None,
        "cell": "k",
        "attack_mode": mode,
        "attack_surrogate": sur,
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = Store(tmp_path / "t")
    cells = {
        # unattacked: im2 is far off, so a zero point that used it would be visibly wrong
        "clean": [_rec("det", im, "psnr", v) for im, v in (("im0", 30.0), ("im1", 28.0), ("im2", 10.0))]
        + [_rec("det", im, "lpips_alex", 0.1) for im in ("im0", "im1", "im2")],
        "fgsm2": [_rec("det", im, "psnr", v, attack="fgsm", eps=E2, mode="white-box") for im, v in (("im0", 25.0),)]
        + [_rec("det", "im1", "psnr", 23.0, attack="fgsm", eps=E2, mode="white-box")],
        "fgsm8": [_rec("det", im, "psnr", 20.0, attack="fgsm", eps=E8, mode="white-box") for im in ("im0", "im1")],
        "sto0": [_rec("sto", "im0", "psnr", 27.0, attack="fgsm", eps=E8, mode="eot", seed=0)],
        "sto1": [_rec("sto", "im0", "psnr", 21.0, attack="fgsm", eps=E8, mode="eot", seed=1)],
        "stoT": [_rec("sto", "im0", "psnr", 26.0, attack="fgsm", eps=E8, mode="transfer", sur="det")],
        "sto_clean": [_rec("sto", "im0", "psnr", 29.0, seed=s) for s in (0, 1)],
        "n1": [_rec("det", im, "psnr", 26.0, condition="noise-s1") for im in ("im0", "im1")],
        "n3": [_rec("det", im, "psnr", 22.0, condition="noise-s3") for im in ("im0", "im1")],
    }
    gallery = [  # gallery facts travel as entries of the results schema, not in file names
        {"dataset": "ds", "condition": "clean", "attack": "fgsm", "kind": kind, "path": f"gallery/ds/x/{name}", **who}
        for kind, name, who in (
            ("hr", "HR.png", {}),
            ("lr", "LR.png", {}),
            ("adv", "a.png", {"method": "det", "mode": "white-box"}),
            ("sr_adv", "b.png", {"method": "det", "mode": "white-box"}),
        )
    ]
    for key, records in cells.items():
        payload = {"key": key, "status": "ok", "records": records, "labels": {}}
        if key == "fgsm8":
            labels = {"method": "det", "dataset": "ds", "condition": "clean", "attack": "fgsm", "epsilon": E8}
            payload.update(version=2, labels=labels, gallery=gallery)
        store.write(key, payload)
    matrix = {
        "name": "m",
        "scale": 4,
        "datasets": [{"name": "ds", "crop": None}],
        "methods": ["det", "sto"],
        "conditions": [
            {"name": "clean", "corruption": "clean", "params": {}, "severity": 0},
            {"name": "noise-s1", "corruption": "gaussian_noise", "severity": 1, "family": "noise"},
            {"name": "noise-s3", "corruption": "gaussian_noise", "severity": 3, "family": "noise"},
        ],
        "metrics": [{"name": "psnr"}, {"name": "lpips_alex"}],
        "attacks": [{"name": "none"}, {"name": "fgsm", "attack": "fgsm"}],
        "attack_images": 2,
        "seeds": [0],
    }
    store.write_run_info({"run": "t", "matrix": matrix, "cells": list(cells), "metric_specs": [PSNR, LPIPS]})
    g = torch.linspace(0, 1, 16 * 16 * 3).reshape(1, 3, 16, 16)
    for entry in gallery:
        write_image(g, store.run_dir / entry["path"])
    return store.run_dir


def test_attack_series_start_from_the_unattacked_value_on_the_same_images(run_dir):
    data = load_run(run_dir)
    series = {(s["entry"], s["metric"]): s for s in attack_series(data)}
    det = series[("det [white-box]", "psnr")]
    assert det["eps"] == pytest.approx([0.0, E2, E8])
    assert det["values"] == pytest.approx([29.0, 24.0, 20.0])  # 29 = mean of im0, im1 (not im2)
    assert det["images"] == ["im0", "im1"]
    eot = series[("sto [eot]", "psnr")]
    assert eot["values"] == pytest.approx([29.0, 24.0])  # mean over the two seeds
    assert series[("sto [transfer from det]", "psnr")]["values"] == pytest.approx([29.0, 26.0])
    assert ("det [white-box]", "lpips_alex") not in series  # no attacked lpips values


def test_severity_series_use_clean_as_level_zero(run_dir):
    (item,) = [s for s in severity_series(load_run(run_dir)) if s["metric"] == "psnr" and s["method"] == "det"]
    assert item["family"] == "noise" and item["levels"] == [0.0, 1.0, 3.0]
    assert item["values"] == pytest.approx([(30 + 28 + 10) / 3, 26.0, 22.0])


def test_curves_are_pngs_linked_or_inlined(run_dir):
    data = load_run(run_dir)
    (curve,) = attack_curves(data)
    assert curve["png"].startswith(b"\x89PNG") and curve["images"] == 2 and curve["attack"] == "fgsm"
    (sev,) = severity_curves(data)
    assert sev["png"].startswith(b"\x89PNG") and sev["levels"] == [0.0, 1.0, 3.0]
    html = write_report(run_dir).read_text()
    assert "Robustness curves" in html
    assert {p.name for p in (run_dir / "figures").iterdir()} == {curve["file"], sev["file"]}
    assert f'src="figures/{curve["file"]}"' in html and f'src="figures/{sev["file"]}"' in html  # files beside it
    assert "x_adv: det [white-box]" in html and "SR(x_adv): det [white-box]" in html
    html = write_report(run_dir, inline=True).read_text()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # curves + gallery tiles: HR, LR, x_adv, its perturbation, SR(x_adv)
    assert sum(base64.b64decode(u).startswith(b"\x89PNG") for u in uris) == 2 + 5
    assert "first 2 image(s)" in html


def test_attacked_boards_show_mode_and_worst_over_seeds(run_dir):
    data = load_run(run_dir)
    entries = data.entries("ds", "clean", "fgsm", E8)
    assert entries == ["det [white-box]", "sto [eot]", "sto [transfer from det]"]
    worst, seeds = worst_over_seeds(
        data.records, "ds", "clean", entries, ["psnr"], {"psnr": True}, attack="fgsm", epsilon=E8
    )
    assert worst.at["sto [eot]", "psnr"] == 21.0 and seeds.at["sto [eot]", "psnr"] == 2
    assert seeds.at["det [white-box]", "psnr"] == 1
    worst_lpips, _ = worst_over_seeds(
        data.records, "ds", "clean", ["sto"], ["psnr"], {"psnr": False}
    )  # direction: lower is better -> the worst is the highest
    assert worst_lpips.at["sto", "psnr"] == 29.0
    html = write_report(run_dir).read_text()
    board = html.split("+ <code>fgsm</code> ε = 8/255")[1].split("</table>")[0]
    assert '<td class="mode">eot</td>' in board and '<td class="mode">transfer from det</td>' in board
    assert 'class="worst">worst 21.00' in board
    table = pd.read_csv(run_dir / "tables" / f"ds__clean__fgsm_eps{E8:.6g}.csv", index_col=0)
    assert table.loc["sto [eot]", "worst_psnr"] == 21.0 and table.loc["sto [eot]", "psnr"] == 24.0
    assert pd.isna(table.loc["det [white-box]", "worst_psnr"])  # one seed: no worst
    scenarios = data.scenarios("ds")
    assert scenarios[:3] == [("clean", "none", 0.0), ("clean", "fgsm", E2), ("clean", "fgsm", E8)]
