"""The no-reference board (NTIRE 2020 track 2 layout) on a hand-built run with a dataset without ground truth, and
the LR-PSNR threshold in the leaderboards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.report.html import render_report
from bench.report.nr_board import mean_ranks, no_reference_datasets, nr_boards, nr_metrics
from bench.report.tables import load_run, select
from bench.runner.store import Store

NR_SPECS = {
    # written in an order other than the table's: the board orders them as NTIRE 2020 track 2 does
    "pi": {"name": "pi", "full_reference": False, "higher_is_better": False},
    "nrqm": {"name": "nrqm", "full_reference": False, "higher_is_better": True},
    "niqe": {"name": "niqe", "full_reference": False, "higher_is_better": False},
    "brisque": {"name": "brisque", "full_reference": False, "higher_is_better": False},
    "piqe": {"name": "piqe", "full_reference": False, "higher_is_better": False},
    "sharpness": {"name": "sharpness", "full_reference": False, "higher_is_better": True},  # any other NR metric
}
#: A consistency measure that needs no HR (SR downscaled against its LR input): on no board of perceptual quality.
LR_INPUT = {"name": "lr_psnr_input", "full_reference": False, "higher_is_better": True, "kind": "consistency"}
FR_SPECS = {
    "psnr": {"name": "psnr", "full_reference": True, "higher_is_better": True},
    "lr_psnr_worst": {
        "name": "lr_psnr_worst",
        "full_reference": True,
        "higher_is_better": True,
        "extra": {"threshold_db": 45.0},
    },
}
# per method, per image: values of (niqe, brisque, piqe, nrqm, pi, sharpness)
VALUES = {
    "good": {"a": (4.0, 20.0, 15.0, 7.0, 3.5, 2.0), "b": (6.0, 30.0, 25.0, 6.0, 5.0, 2.0)},
    "bad": {"a": (8.0, 50.0, 80.0, 3.0, 7.5, 1.0), "b": (9.0, 60.0, 90.0, 2.0, 8.5, 3.0)},
    "mid": {"a": (5.0, 40.0, 20.0, 5.0, 5.0, 1.5), "b": (7.0, 20.0, 30.0, 4.0, 6.5, 1.5)},
}
ORDER = ("niqe", "brisque", "piqe", "nrqm", "pi", "sharpness")


def _row(method: str, dataset: str, image: str, metric: str, value, spec, status: str = "ok") -> dict:
    return {
        "run": "nr",
        "method": method,
        "dataset": dataset,
        "image": image,
        "condition": "clean",
        "corruption": "clean",
        "severity": 0,
        "attack": "none",
        "epsilon": 0.0,
        "seed": 0,
        "metric": metric,
        "value": value,
        "spec": spec,
        "status": status,
        "error": None if status == "ok" else "no ground truth",
        "cell": f"{method}-{dataset}",
    }


@pytest.fixture
def nr_run(tmp_path: Path) -> Path:
    """Three methods on ``phone`` (no ground truth: the psnr rows are not ok) and on ``paired`` (psnr + niqe)."""
    store = Store(tmp_path / "nr")
    keys = []
    for method, per_image in VALUES.items():
        rows = []
        for image, values in per_image.items():
            rows += [_row(method, "phone", image, m, v, NR_SPECS[m]) for m, v in zip(ORDER, values, strict=True)]
            rows.append(_row(method, "phone", image, "psnr", None, FR_SPECS["psnr"], status="skipped"))
            rows.append(_row(method, "phone", image, "lr_psnr_input", 30.0 + len(method), LR_INPUT))
        store.write(f"{method}-phone", {"key": f"{method}-phone", "status": "ok", "records": rows, "labels": {}})
        paired = [
            _row(method, "paired", "a", "psnr", 30.0 + len(method), FR_SPECS["psnr"]),
            _row(method, "paired", "a", "niqe", 5.0, NR_SPECS["niqe"]),
            _row(method, "paired", "a", "lr_psnr_worst", 40.0 + len(method), FR_SPECS["lr_psnr_worst"]),
        ]
        store.write(f"{method}-paired", {"key": f"{method}-paired", "status": "ok", "records": paired, "labels": {}})
        keys += [f"{method}-phone", f"{method}-paired"]
    names = ("psnr", "lr_psnr_worst", "lr_psnr_input", "pi", "nrqm", "niqe", "brisque", "piqe", "sharpness")
    metrics = [{"name": m} for m in names]
    matrix = {
        "name": "nr",
        "scale": 4,
        "datasets": [{"name": "phone", "crop": None}, {"name": "paired", "crop": None}],
        "methods": list(VALUES),
        "conditions": [{"name": "clean", "corruption": "clean", "params": {}, "severity": 0}],
        "metrics": metrics,
        "seeds": [0],
    }
    specs = [*FR_SPECS.values(), LR_INPUT, *NR_SPECS.values()]
    store.write_run_info({"run": "nr", "matrix": matrix, "cells": keys, "metric_specs": specs, "methods": {}})
    return store.run_dir


def test_columns_are_the_nr_metrics_in_the_ntire2020_order(nr_run):
    data = load_run(nr_run)
    # the spec's flags decide (no HR needed, kind quality), the table's order first; lr_psnr_input needs no HR but
    # is a consistency measure: not a column, not in the mean rank
    assert nr_metrics(data) == list(ORDER)
    assert no_reference_datasets(data) == ["phone"]  # paired has psnr values: it has ground truth


def test_a_consistency_measure_alone_gives_no_board(nr_run):
    """A set without ground truth scored by lr_psnr_input only has no perceptual score to rank: no board (its
    values stay on the ordinary board)."""
    store = Store(nr_run)
    for method in VALUES:
        payload = store.load_payload(f"{method}-phone")
        payload.records = [r for r in payload.records if r["metric"] in ("psnr", "lr_psnr_input")]
        store.write(f"{method}-phone", payload.as_dict())
    data = load_run(nr_run)
    assert "lr_psnr_input" not in nr_metrics(data) and no_reference_datasets(data) == []
    assert 'id="no-reference"' not in render_report(data)


def test_board_values_ranks_and_order(nr_run):
    (board,) = nr_boards(load_run(nr_run))
    assert (board["dataset"], board["condition"], board["images"]) == ("phone", "clean", 2)
    assert [c["metric"] for c in board["columns"]] == list(ORDER)
    assert [c["arrow"] for c in board["columns"]] == ["↓", "↓", "↓", "↑", "↓", "↑"]
    rows = {r["method"]: r for r in board["rows"]}
    # means over the two images
    assert [c["text"] for c in rows["good"]["cells"]] == ["5.0000", "25.00", "20.00", "6.5000", "4.2500", "2.0000"]
    # column ranks in each metric's direction (sharpness: good and bad tie at 2.0 and share rank 1)
    assert [c["rank"] for c in rows["good"]["cells"]][:5] == [1, 1, 1, 1, 1]
    assert [c["rank"] for c in rows["bad"]["cells"]] == [3, 3, 3, 3, 3, 1]
    assert rows["mid"]["cells"][1]["rank"] == 2 and rows["mid"]["cells"][1]["mark"] == "second"
    assert rows["good"]["cells"][0]["mark"] == "best"
    # sorted by mean rank (per image and metric), best first
    assert [r["method"] for r in board["rows"]] == ["good", "mid", "bad"]


def test_mean_rank_by_hand(nr_run):
    data = load_run(nr_run)
    metrics = list(ORDER)
    direction = {m: NR_SPECS[m]["higher_is_better"] for m in metrics}
    ranks = mean_ranks(select(data.records, "phone", "clean"), metrics, direction)
    # image a: good 1,1,1,1,1,1 ; image b: good 1,2,1,1,1,2 (brisque: mid 20 < good 30; sharpness: bad 3 > good 2)
    assert ranks["good"] == pytest.approx((6 + 8) / 12)
    # sharpness on a: good 2 (1), mid 1.5 (2), bad 1 (3); on b: bad 3 (1), good 2 (2), mid 1.5 (3)
    assert ranks["bad"] == pytest.approx((3 * 5 + 3 + 3 * 4 + 3 + 1) / 12)


def test_report_renders_the_nr_board_and_the_threshold(nr_run):
    html = render_report(load_run(nr_run))
    assert "No-reference boards (no ground truth)" in html
    section = html[html.index('id="no-reference"') :]
    section = section[: section.index("</section>")]
    headers = re.findall(r"<th title=\"[^\"]*\">(\w+) [↑↓]</th>", section)
    assert headers == list(ORDER)
    assert section.count("<tr>") == 1 + 3 and "mean rank" in section
    assert "phone — clean" in section and "paired" not in section
    # the NTIRE 2021 LR-PSNR rule on the ordinary boards: the header says it, means below it are marked
    assert "≥ 45 dB" in html and len(re.findall(r'<td class="[^"]*below-threshold', html)) == 3


def test_no_board_without_nr_metrics(board_run):
    """The hand-written full-reference run of the report tests: no no-reference board."""
    assert nr_boards(load_run(board_run)) == []
    assert 'id="no-reference"' not in render_report(load_run(board_run))
