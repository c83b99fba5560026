"""The overview: threat families from the record fields, per-family scores, mean / worst / drop in the metric's
direction, the worst attack mode counted, partial entries ranked after complete ones, links to the boards."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from bench.report.html import write_report
from bench.report.overview import overview_context, overview_frame, primary_metric, scenario_scores, threat_family
from bench.report.tables import load_run

E8 = 8 / 255  # the larger PGD budget of the ``board_run`` fixture (tests/report/conftest.py)


def test_threat_family_from_corruption_and_attack_fields():
    assert threat_family("clean") == "clean" and threat_family("identity") == "clean"  # registry alias
    assert threat_family("noisy") == "noise" and threat_family("poisson_noise") == "noise"
    assert threat_family("blurry") == "blur" and threat_family("motion_blur") == "blur"
    assert threat_family("jpeg_compression") == "jpeg"
    assert threat_family("clean", "pgd") == "attacks" and threat_family("gaussian_noise", "fgsm") == "attacks"
    assert threat_family("my_new_corruption") == "my_new_corruption"  # unknown: its own family
    assert threat_family(float("nan")) == "other"


def test_worst_attack_mode_counts(board_run):
    scores = scenario_scores(load_run(board_run).records, "ds", "psnr", True)
    pgd8 = scores[(scores["method"] == "smooth") & (scores["attack"] == "pgd") & (scores["epsilon"] == E8)]
    assert pgd8["value"].tolist() == pytest.approx([21.0]) and pgd8["entries"].tolist() == [2]  # transfer was worse
    dist = scenario_scores(load_run(board_run).records, "ds", "dist", False)
    pgd8 = dist[(dist["method"] == "smooth") & (dist["attack"] == "pgd") & (dist["epsilon"] == E8)]
    assert pgd8["value"].tolist() == pytest.approx([0.40])  # lower is better: the worst is the highest


def test_overview_higher_is_better(board_run):
    frame = overview_frame(load_run(board_run).records, "ds", "psnr", True, ["sharp", "smooth", "fragile"])
    assert [c for c in frame.columns if c in ("clean", "noise", "blur", "jpeg", "attacks")] == [
        "clean",
        "noise",
        "blur",
        "jpeg",
        "attacks",
    ]
    sharp, smooth, fragile = frame.loc["sharp"], frame.loc["smooth"], frame.loc["fragile"]
    assert sharp["clean"] == pytest.approx(30) and sharp["attacks"] == pytest.approx((20 + 16) / 2)
    assert sharp["mean"] == pytest.approx((24 + 26 + 25 + 20 + 16) / 5) and sharp["worst"] == pytest.approx(16)
    assert sharp["drop"] == pytest.approx(30 - 22.2) and "pgd" in sharp["worst_scenario"]
    assert smooth["attacks"] == pytest.approx((24 + 21) / 2) and smooth["mean"] == pytest.approx(24.6)
    assert smooth["drop"] == pytest.approx(28 - 24.6) and smooth["worst"] == pytest.approx(21)
    assert fragile["n"] == 3 and fragile["n_total"] == 5 and bool(fragile["partial"]) and math.isnan(fragile["attacks"])
    assert fragile["mean"] == pytest.approx(29)  # the highest mean, but over fewer scenarios
    assert frame["rank"].to_dict() == {"smooth": 1, "sharp": 2, "fragile": 3}


def test_overview_lower_is_better(board_run):
    frame = overview_frame(load_run(board_run).records, "ds", "dist", False, ["sharp", "smooth", "fragile"])
    assert frame.loc["smooth", "mean"] == pytest.approx((0.3 * 3 + 0.4 + 0.4) / 5)  # transfer (worst) at both budgets
    assert frame.loc["smooth", "worst"] == pytest.approx(0.40)
    assert frame.loc["smooth", "drop"] == pytest.approx(0.34 - 0.05)  # positive: worse than clean
    assert frame.loc["sharp", "drop"] == pytest.approx(0.10)
    assert frame["rank"].to_dict() == {"sharp": 1, "smooth": 2, "fragile": 3}


def test_overview_without_threats_ranks_by_clean():
    rec = pd.DataFrame(
        {
            "method": ["a", "b"],
            "dataset": "d",
            "condition": "clean",
            "corruption": "clean",
            "attack": "none",
            "epsilon": 0.0,
            "metric": "m",
            "value": [1.0, 2.0],
            "status": "ok",
            "entry": ["a", "b"],
        }
    )
    frame = overview_frame(rec, "d", "m", False)
    assert frame["rank"].to_dict() == {"a": 1, "b": 2} and frame["n_total"].max() == 0


def test_primary_metric_defaults_to_the_matrix_first_and_checks_names(board_run):
    data = load_run(board_run)
    assert primary_metric(data) == "psnr" and primary_metric(data, "dist") == "dist"
    with pytest.raises(ValueError, match="not a metric of this run"):
        primary_metric(data, "nope")
    (ds,) = overview_context(data, "dist")
    assert [t["metric"] for t in ds["tables"]] == ["dist", "psnr"]


def test_overview_comes_first_and_links_every_board(board_run):
    html = write_report(board_run).read_text()
    assert html.index('id="overview"') < html.index('id="provenance"') < html.index('id="boards"')
    overview = html.split('id="overview"')[1].split('id="provenance"')[0]
    ranked = re.findall(r'<td class="method ov"[^>]*>(\w+)', overview.split("</table>")[0])
    assert ranked == ["smooth", "sharp", "fragile"]
    board_ids = set(re.findall(r'<h3 id="(board-[^"]+)"', html))
    assert len(board_ids) == 6  # clean, noise, blur, jpeg, pgd x 2 budgets
    linked = set(re.findall(r'href="#(board-[^"]+)"', overview))
    assert linked == board_ids
    assert "Ranked by <strong>mean psnr ↑</strong>" in overview and "partial" in overview
