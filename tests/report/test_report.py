"""Reports from a hand-written store: tables, marks in each metric's direction, escaping, embedded images."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.images import write_image
from bench.report.html import render_report, write_report
from bench.report.tables import leaderboard, load_published, load_run, rank_marks
from bench.runner.store import Store

EVIL = "<script>alert('x')</script>"
SPECS = {
    "psnr": {"name": "psnr", "full_reference": True, "higher_is_better": True, "crop_border": 4},
    # a lower-is-better metric whose name says nothing about its direction
    "dist": {"name": "dist", "full_reference": True, "higher_is_better": False, "backbone": "net <b>v1</b>"},
}
# method -> metric -> per-image values
VALUES = {
    "alpha": {"psnr": [30.0, 32.0], "dist": [0.30, 0.10]},  # psnr 31 (best), dist 0.20 (second)
    "beta": {"psnr": [28.0, 28.0], "dist": [0.05, 0.05]},  # psnr 28 (second), dist 0.05 (best)
    EVIL: {"psnr": [20.0, 22.0], "dist": [0.90, 0.70]},  # last on both
}


def _rec(method, image, metric, value, status="ok", error=None, condition="clean"):
    return {
        "run": "t",
        "method": method,
        "dataset": "ds",
        "image": image,
        "condition": condition,
        "corruption": "clean",
        "severity": 0,
        "attack": "none",
        "epsilon": 0.0,
        "seed": 0,
        "metric": metric,
        "value": value,
        "spec": SPECS.get(metric),
        "status": status,
        "error": error,
        "cell": f"key-{abs(hash(method)) % 1000}",
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = Store(tmp_path / "t")
    keys = []
    for i, (method, metrics) in enumerate(VALUES.items()):
        records = [
            _rec(method, f"im{j}", metric, v) for metric, values in metrics.items() for j, v in enumerate(values)
        ]
        if method == EVIL:
            records.append(_rec(method, "im2", None, None, "failed", f"ValueError: bad {EVIL}"))
        key = f"cell{i}"
        keys.append(key)
        payload = {"key": key, "status": "ok", "records": records, "labels": {}}
        if method == "alpha":  # a version-2 cell with its gallery entries (the report reads no file names)
            payload.update(
                version=2,
                labels={"method": "alpha", "dataset": "ds", "condition": "clean"},
                gallery=[
                    {"dataset": "ds", "condition": "clean", "kind": "hr", "path": "gallery/ds/clean/HR.png"},
                    {
                        "dataset": "ds",
                        "condition": "clean",
                        "kind": "sr",
                        "method": "alpha",
                        "path": "gallery/ds/clean/sr-alpha.png",
                    },
                ],
            )
        store.write(key, payload)
    matrix = {
        "name": "m",
        "scale": 4,
        "datasets": [{"name": "ds", "crop": 64}],
        "methods": list(VALUES),
        "conditions": [{"name": "clean", "corruption": "clean", "params": {}}],
        "metrics": [{"name": "psnr"}, {"name": "dist"}],
        "seeds": [0],
    }
    info = {"run": "t", "matrix": matrix, "cells": [*keys, "notyet"], "metric_specs": list(SPECS.values())}
    store.write_run_info(info)
    g = torch.linspace(0, 1, 16 * 16 * 3).reshape(1, 3, 16, 16)
    write_image(g, store.gallery_dir / "ds" / "clean" / "HR.png")
    write_image(g, store.gallery_dir / "ds" / "clean" / "sr-alpha.png")
    return store.run_dir


def _cell(html: str, method_text: str, column: int) -> str:
    row = re.search(rf"<tr><td class=\"method\"[^>]*>{re.escape(method_text)}</td>(.*?)</tr>", html)
    assert row, method_text
    return re.findall(r"<td class=\"([^\"]*)\"", row.group(1))[column]


def test_leaderboard_means_and_marks_follow_the_spec_direction(run_dir):
    data = load_run(run_dir)
    means, counts = leaderboard(data.records, "ds", "clean", data.order("method"), ["psnr", "dist"])
    assert means.loc["alpha", "psnr"] == pytest.approx(31.0) and means.loc["alpha", "dist"] == pytest.approx(0.2)
    assert counts.loc["alpha", "psnr"] == 2 and counts.loc[EVIL, "psnr"] == 2  # the failure row is not a value
    marks = rank_marks(means, {"psnr": True, "dist": False})
    assert marks[("alpha", "psnr")] == "best" and marks[("beta", "psnr")] == "second"
    assert marks[("beta", "dist")] == "best" and marks[("alpha", "dist")] == "second"
    assert (EVIL, "psnr") not in marks and (EVIL, "dist") not in marks
    assert data.missing == ["notyet"]


def test_rank_marks_ties_and_missing():
    table = pd.DataFrame({"m": [1.0, 1.0, 2.0, float("nan")]}, index=list("abcd"))
    assert rank_marks(table, {"m": False}) == {("a", "m"): "best", ("b", "m"): "best", ("c", "m"): "second"}
    assert rank_marks(table, {"m": True}) == {("c", "m"): "best", ("a", "m"): "second", ("b", "m"): "second"}
    assert rank_marks(table, {}) == {}


def test_html_is_escaped_marked_and_linked_or_self_contained(run_dir):
    index = write_report(run_dir)
    html = index.read_text()
    assert EVIL not in html and "&lt;script&gt;" in html  # autoescape, in the table and in the failure list
    assert "net &lt;b&gt;v1&lt;/b&gt;" in html  # spec text escaped too
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    assert _cell(html, "alpha", 0) == "best" and _cell(html, "beta", 0) == "second"  # psnr: higher is better
    assert _cell(html, "beta", 1) == "best" and _cell(html, "alpha", 1) == "second"  # dist: lower is better
    assert _cell(html, escaped, 1) == ""
    assert "dist ↓" in html and "psnr ↑" in html
    assert 'title="dist: RGB' in html and "lower is better" in html  # spec tooltip + footnote
    assert "Crops were used" in html and "HR crop 64" in html
    links = re.findall(r'(?:src|href|data-full)="(?!data:|#)([^"]+)"', html)
    assert links and all((run_dir / link).is_file() for link in links)  # full-size files beside index.html
    assert not any(link.startswith(("http:", "https:", "//", "/")) for link in links)  # nothing from the network
    html = write_report(run_dir, inline=True).read_text()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == 2 and all(base64.b64decode(u).startswith(b"\x89PNG") for u in uris)
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # one self-contained file
    assert "<style>" in html
    assert "1 cell(s) of the matrix are not stored yet" in html
    assert "Published numbers" in html and "DIV2K" in html and "not comparable" in html


def test_tables_and_results_csv(run_dir):
    write_report(run_dir)
    results = pd.read_csv(run_dir / "results.csv")
    assert len(results) == 13 and set(results["status"]) == {"ok", "failed"}
    assert results.loc[results.status == "failed", "error"].str.contains("bad").all()
    table = pd.read_csv(run_dir / "tables" / "ds__clean.csv", index_col="method")
    assert list(table.index) == list(VALUES)
    assert table.loc["beta", "dist"] == pytest.approx(0.05) and table.loc["alpha", "n_psnr"] == 2


def test_render_only_reads_the_listed_cells(run_dir):
    Store(run_dir).write("stale", {"status": "ok", "records": [_rec("ghost", "im0", "psnr", 99.0)]})
    data = load_run(run_dir)
    assert data.stale == 1 and "ghost" not in set(data.records["method"])
    assert "ghost" not in render_report(data).split("<h2>Failures")[0]


def test_published_certsr_tables_transcribed():
    (paper,) = load_published("certsr2024")
    t1, t2 = paper["tables"]
    assert t1["groups"] == ["Clean", "Noisy", "Blurry"] and t2["groups"] == ["FGSM", "BIM", "PGD", "CW"]
    rows = {r["method"]: r["values"] for r in t1["rows"]}
    assert rows["CertSR"][1] == [26.35, 0.70, 0.19]  # noisy PSNR/SSIM/LPIPS
    assert rows["ESRGAN"][0] == [27.48, 0.75, 0.12]
    assert {r["method"]: r["values"] for r in t2["rows"]}["AD-L-CW"][0] == [4.72, 0.23, 0.99]
    assert [m["higher_is_better"] for m in paper["metrics"]] == [True, True, False]
    assert "Chaouai" in paper["citation"] and "Table" in paper["source"]


def test_report_of_a_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run"):
        load_run(tmp_path / "nothing")


def test_missing_checkpoint_rows_stay_on_the_leaderboard_marked() -> None:
    """A method whose checkpoint is missing keeps its row, marked with the command that produces it."""
    from types import SimpleNamespace

    from bench.report.html import _missing
    from bench.results.schema import CellPayload

    base = {"key": "k", "records": [], "version": 2}
    data = SimpleNamespace(
        payloads=[
            CellPayload.from_dict({**base, **p})
            for p in [
                {"status": "ok", "labels": {"method": "bicubic", "dataset": "d", "condition": "clean"}},
                {
                    "status": "failed",
                    "fix": "python -m bench train andnet",
                    "labels": {"method": "andnet", "dataset": "d", "condition": "clean"},
                },
                {
                    "status": "failed",
                    "fix": "python -m bench train andnet",
                    "labels": {"method": "andnet", "dataset": "d", "condition": "noise"},
                },
            ]
        ]
    )
    assert _missing(data, "d", "clean", "none", 0.0) == {"andnet": "python -m bench train andnet"}
    assert _missing(data, "d", "clean", "pgd", 0.02) == {}
