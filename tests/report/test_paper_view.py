"""The paper view: published | measured | delta in the paper's layout, tolerances, Avg columns, metric mapping, rows
without weights marked with their command, the CPU default's CertSR layouts, CSV and LaTeX."""

from __future__ import annotations

import csv
import io
from html import unescape
from pathlib import Path

import pytest

from bench.report.paper_view import (
    EMBEDDED_LABEL,
    TOLERANCES,
    paper_view,
    render_html,
    run_metric,
    to_csv,
    to_latex,
    views_for_run,
)
from bench.report.papers import load_table
from bench.report.tables import load_run
from bench.runner.store import Store

SPEC = {m: {"name": m, "full_reference": True, "higher_is_better": True} for m in ("psnr", "ssim")}


def _write_run(root: Path, name: str, datasets: list[str], rows: list[tuple], attacks=()) -> Path:
    """A run directory whose records are ``rows``: (method, dataset, condition, attack, eps, metric, [values])."""
    store = Store(root / name)
    keys = []
    for i, (method, dataset, condition, attack, eps, metric, values) in enumerate(rows):
        records = [
            {"run": name, "method": method, "dataset": dataset, "image": f"im{j}", "condition": condition,
             "corruption": condition, "severity": 0, "attack": attack, "epsilon": eps, "seed": 0, "metric": metric,
             "value": v, "spec": SPEC[metric], "status": "ok", "error": None, "cell": f"c{i}",
             "attack_mode": None if attack == "none" else "white-box", "attack_surrogate": None}
            for j, v in enumerate(values)
        ]  # fmt: skip
        store.write(f"c{i}", {"key": f"c{i}", "status": "ok", "records": records, "labels": {}})
        keys.append(f"c{i}")
    methods = sorted({r[0] for r in rows})
    metrics = sorted({r[5] for r in rows})
    matrix = {"name": name, "scale": 4, "datasets": [{"name": d, "crop": None} for d in datasets],
              "methods": methods, "conditions": [{"name": c} for c in ("clean", "noise", "blur")],
              "metrics": [{"name": m} for m in metrics], "attacks": [{"name": a} for a in attacks]}  # fmt: skip
    store.write_run_info(
        {"run": name, "matrix": matrix, "cells": keys, "metric_specs": [SPEC[m] for m in metrics], "methods": {}}
    )
    return store.run_dir


@pytest.fixture
def certsr_run(tmp_path):
    rows = [
        ("esrgan-ft", "div2k-val", "clean", "none", 0.0, "psnr", [27.5, 27.6]),  # 27.55 vs 27.48: +0.07, within
        ("esrgan-ft", "div2k-val", "noise", "none", 0.0, "psnr", [18.0, 18.0]),  # 18.00 vs 20.25: -2.25, beyond
        ("esrgan-ft", "div2k-val", "clean", "none", 0.0, "ssim", [0.70, 0.70]),  # 0.70 vs 0.75: -0.05, beyond
        ("esrgan-ft", "div2k-val", "blur", "none", 0.0, "ssim", [0.61, 0.62]),  # 0.615 vs 0.62: within 0.02
    ]
    return _write_run(tmp_path, "certsr-t1", ["div2k-val"], rows)


def test_cells_hold_published_measured_delta_and_tolerance(certsr_run):
    view = paper_view(load_table("certsr-t1"), load_run(certsr_run), readiness={})
    cell = view.cell("esrgan", "clean", "psnr")
    assert (cell.published, cell.n) == (27.48, 2) and cell.measured == pytest.approx(27.55)
    assert cell.delta == pytest.approx(0.07) and cell.within is True
    noisy = view.cell("esrgan", "noisy", "psnr")
    assert noisy.delta == pytest.approx(-2.25) and noisy.within is False
    assert view.cell("esrgan", "clean", "ssim").within is False  # |-0.05| > 0.02
    assert view.cell("esrgan", "blurry", "ssim").within is True
    lp = view.cell("esrgan", "clean", "lpips")
    assert lp.measured is None and lp.delta is None and lp.within is None and view.metric_used["lpips"] is None
    assert TOLERANCES["psnr"] == 0.3 and TOLERANCES["ssim"] == 0.02 and TOLERANCES["lpips"] == 0.02
    html = render_html(view)
    assert (
        '<span class="meas">27.55</span><span class="pub">27.48</span><span class="delta within">+0.07</span>' in html
    )
    assert (
        '<span class="meas">18.00</span><span class="pub">20.25</span><span class="delta beyond">-2.25</span>' in html
    )


def test_rows_without_card_or_weights_stay_marked_with_their_command(certsr_run):
    from bench.runner.reproduce import Requirement

    cmd = "python -m bench train ad-l-pgd --data div2k-train  (time: not estimated)"
    readiness = {"ad-l-pgd": Requirement("checkpoint", "ad-l-pgd", False, "not trained (no checkpoint)", cmd)}
    view = paper_view(load_table("certsr-t1"), load_run(certsr_run), readiness=readiness)
    assert [r.label for r in view.rows] == [r.label for r in load_table("certsr-t1").rows]
    pgd = next(r for r in view.rows if r.card == "ad-l-pgd")
    assert pgd.method is None and pgd.marker == "not trained (no checkpoint)" and pgd.command == cmd
    assert pgd.cells[0].published == 26.60 and pgd.cells[0].measured is None
    certsr = next(r for r in view.rows if r.card == "certsr")
    assert certsr.marker == "card not in this matrix"
    html = unescape(render_html(view))
    assert cmd in html and "not trained (no checkpoint)" in html
    lines = list(csv.DictReader(io.StringIO(to_csv(view))))
    assert len(lines) == 6 * 9
    pgd_line = next(x for x in lines if x["card"] == "ad-l-pgd" and x["group"] == "clean" and x["metric"] == "psnr")
    assert pgd_line["published"] == "26.6" and pgd_line["measured"] == "" and pgd_line["status"].startswith("not")


def test_latex_is_booktabs_in_the_paper_layout(certsr_run):
    tex = to_latex(paper_view(load_table("certsr-t1"), load_run(certsr_run), readiness={}))
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 1
    assert r"\begin{tabular}{lccccccccc}" in tex
    assert r"\cmidrule(lr){2-4} \cmidrule(lr){5-7} \cmidrule(lr){8-10}" in tex
    assert r"PSNR $\uparrow$ & SSIM $\uparrow$ & LPIPS $\downarrow$" in tex
    assert r"ESRGAN [33] & 27.55 (27.48) & 0.70 (0.75) & 0.12\dag & 18.00 (20.25)" in tex
    assert r"CertSR (ours) & 28.24\dag" in tex
    assert "% note: Sec. 5.4 says" in tex  # the table's known inconsistencies follow


def test_avg_columns_average_the_measured_groups_metric_major(tmp_path):
    rows = [
        ("bicubic", "ntire20-t1-val", "clean", "none", 0.0, "psnr", [25.0, 26.0]),
        ("bicubic", "aim19-t2-val", "clean", "none", 0.0, "psnr", [24.0]),
    ]
    run = _write_run(tmp_path, "rsr", ["ntire20-t1-val", "aim19-t2-val"], rows)
    table = load_table("rsr")
    assert table.layout == "metric-major"
    view = paper_view(table, load_run(run), readiness={})
    assert view.cell("bicubic", "avg", "psnr").measured == pytest.approx((25.5 + 24.0) / 2)
    assert view.cell("bicubic", "avg", "ssim").measured is None
    tex = to_latex(view)
    assert r"\multicolumn{3}{c}{PSNR" in tex  # metric-major: metrics on top, datasets below


def test_run_metric_follows_the_papers_specs():
    and_t1, certsr = load_table("and-t1"), load_table("certsr-t1")
    assert run_metric(and_t1.metric("psnr"), ["psnr", "psnr_y"]) == "psnr_y"  # "calculated on Y channel"
    assert run_metric(and_t1.metric("psnr"), ["psnr"]) is None  # RGB PSNR does not stand for a Y-channel one
    assert run_metric(and_t1.metric("lpips"), ["lpips_vgg"]) == "lpips_vgg"  # backbone unstated
    assert run_metric(certsr.metric("lpips"), ["lpips_vgg"]) is None  # the paper says AlexNet
    assert run_metric(certsr.metric("lpips"), ["lpips_alex"]) == "lpips_alex"


def test_the_cpu_default_shows_certsr_tables_1_and_2_on_embedded_crops(tmp_path):
    """The default's numbers in CertSR's layouts, labelled; its cards map to no printed row (listed as measured only);
    BIM and CW are not in the default matrix and the header says so; the report has the section and the files."""
    e10 = 10 / 255
    rows = [("realesrgan-x4plus", "embedded-eval", c, "none", 0.0, "psnr", [23.0]) for c in ("clean", "noise", "blur")]
    rows += [("realesrgan-x4plus", "embedded-eval", "clean", a, e, "psnr", [v]) for a, e, v in
             (("fgsm", 2 / 255, 25.0), ("fgsm", e10, 21.0), ("pgd", e10, 20.0))]  # fmt: skip
    run = _write_run(tmp_path, "default", ["embedded-eval"], rows, attacks=("none", "fgsm", "pgd"))
    data = load_run(run)
    views = views_for_run(data)
    assert [v.table.id for v in views] == ["certsr-t1", "certsr-t2"]
    assert all(v.label == EMBEDDED_LABEL == "embedded crops, not DIV2K-val" for v in views)
    t2 = views[1]
    assert t2.missing_groups == ["bim", "cw"]
    extra = next(r for r in t2.rows if not r.paper)
    assert extra.label == "realesrgan-x4plus" and extra.cells[0].measured == 21.0  # FGSM at 10/255, not 2/255
    assert extra.cells[6].measured == 20.0 and extra.cells[3].measured is None  # PGD measured, BIM not
    assert all(r.method is None for r in t2.rows if r.paper)  # the paper's rows need trained checkpoints
    from bench.report.html import write_report

    html = write_report(run).read_text(encoding="utf-8")
    section = html[html.index('<h2 id="paper-tables">') :]
    assert section.index('id="paper-certsr-t1"') < section.index('id="paper-certsr-t2"')
    assert html.index('<h2 id="paper-tables">') < html.index('<h2 id="provenance">')  # right after the overview
    assert "measured on embedded crops, not DIV2K-val" in section and "not in this matrix" in section
    assert "Published numbers (not measured here)" not in html  # the detached block gives way to the paper tables
    assert (run / "paper_tables" / "certsr-t2.csv").is_file() and (run / "paper_tables" / "certsr-t1.tex").is_file()


def test_runs_of_other_matrices_show_no_paper_table(tmp_path):
    run = _write_run(tmp_path, "other", ["folder"], [("m", "folder", "clean", "none", 0.0, "psnr", [1.0])])
    assert views_for_run(load_run(run)) == []
