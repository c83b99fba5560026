"""The no-reference board: datasets without ground truth, in the layout of NTIRE 2020 Real-World SR track 2.

NTIRE 2020 track 2 (smartphone images, no HR; seed 003) lists per team NIQE ↓, BRISQUE ↓, PIQE ↓, NRQM ↑, PI ↓ and
an IQA rank. Here the columns are the run's **perceptual no-reference** metrics -- every metric whose spec says
``full_reference: false`` and ``kind: quality`` (:func:`bench.metrics.base.is_perceptual_no_reference`; so a metric
added to the registry appears the day it lands) -- ordered as that table (:data:`NTIRE20_TRACK2_ORDER`), then in the
matrix's order. Left out: certified columns, and measures that need no HR but are not quality scores -- the
consistency measure ``lr_psnr_input`` (SR downscaled against its LR input; spec ``kind: consistency``) would
otherwise be ranked as if a higher LR-PSNR were a better-looking image. Such values stay on the dataset's ordinary
board. (A spec stored before the ``kind`` field reads as ``quality``: a run made then shows ``lr_psnr_input`` here
until the next ``bench run`` of its matrix, which writes the label into the stored specs without computing anything,
:func:`bench.runner.stages.rescore.relabel`.)

A dataset gets the board when the run has no-reference values on it and no full-reference value (its full-reference
rows are failures or skips: there is no ground truth). Per (dataset, scenario): the mean over images and seeds of each
no-reference metric per entry, best and second marked in the spec's direction, the entry's rank in each column
(1 = best), and the **mean rank**: per image, entries are ranked on each no-reference metric (ties share the mean
rank; an entry's seeds are averaged first), and the ranks are averaged over metrics and images -- the idea of the
challenge's IQA rank, computed among this run's entries only (the challenge ranked among its participants). Rows are
sorted by mean rank.

Example::

    boards = nr_boards(load_run("reports/realsr-nogt"))
    boards[0]["columns"]  # [{"metric": "niqe", "arrow": "↓", ...}, {"metric": "brisque", ...}, ...]
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from bench.metrics.base import is_perceptual_no_reference
from bench.report.tables import NO_ATTACK, RunData, format_value, leaderboard, rank_marks, select
from bench.results.schema import STATUS_OK

logger = logging.getLogger(__name__)

#: Column order of the NTIRE 2020 track 2 table; other no-reference metrics follow in the matrix's order.
NTIRE20_TRACK2_ORDER = ("niqe", "brisque", "piqe", "nrqm", "pi")


def _certified(spec: dict[str, Any]) -> bool:
    return bool((spec.get("extra") or {}).get("certified"))


def nr_metrics(data: RunData) -> list[str]:
    """The run's perceptual no-reference metrics (spec ``full_reference`` false and ``kind`` quality, not certified),
    NTIRE 2020 track 2 order first."""
    specs = data.specs()
    found = [m for m in data.order("metric") if m in specs and is_perceptual_no_reference(specs[m])]
    found = [m for m in found if not _certified(specs[m])]
    return [m for m in NTIRE20_TRACK2_ORDER if m in found] + [m for m in found if m not in NTIRE20_TRACK2_ORDER]


def no_reference_datasets(data: RunData) -> list[str]:
    """Datasets with ok values of a perceptual no-reference metric and none of a full-reference one (no ground
    truth; a consistency measure alone, ``lr_psnr_input``, gives no board)."""
    specs = data.specs()
    nr = set(nr_metrics(data))
    fr = {m for m, s in specs.items() if s.get("full_reference", True)}
    ok = data.records[(data.records["status"] == STATUS_OK) & data.records["value"].notna()]
    out = []
    for dataset in data.order("dataset"):
        metrics = set(ok.loc[ok["dataset"] == dataset, "metric"].dropna())
        if metrics & nr and not metrics & fr:
            out.append(dataset)
    return out


def mean_ranks(sel: pd.DataFrame, metrics: list[str], higher_is_better: dict[str, bool]) -> pd.Series:
    """Entry -> mean over images and ``metrics`` of its rank among the entries on that image and metric (1 = best,
    ties share the mean rank; an entry's seeds are averaged first)."""
    ok = sel[(sel["status"] == STATUS_OK) & sel["metric"].isin(metrics) & sel["value"].notna()]
    if ok.empty:
        return pd.Series(dtype=float)
    per = ok.groupby(["entry", "image", "metric"])["value"].mean().reset_index()
    sign = per["metric"].map(lambda m: -1.0 if higher_is_better.get(m, False) else 1.0)
    per["key"] = per["value"] * sign  # smaller is better for every metric now
    per["rank"] = per.groupby(["image", "metric"])["key"].rank(method="average", ascending=True)
    return per.groupby("entry")["rank"].mean()


def nr_boards(data: RunData, datasets: list[str] | None = None) -> list[dict[str, Any]]:
    """The template variables of ``_nr_board.html.j2``: one board per (no-reference dataset, scenario)."""
    metrics = nr_metrics(data)
    if not metrics:
        return []
    specs = data.specs()
    direction = {m: bool(specs[m]["higher_is_better"]) for m in metrics}
    titles = {name: p.get("title", name) for name, p in data.info.methods.items()}
    boards = []
    for dataset in no_reference_datasets(data) if datasets is None else datasets:
        for condition, attack, epsilon in data.scenarios(dataset):
            entries = data.entries(dataset, condition, attack, epsilon)
            means, counts = leaderboard(
                data.records, dataset, condition, entries, metrics, attack=attack, epsilon=epsilon
            )
            if counts.to_numpy().sum() == 0:
                continue
            marks = rank_marks(means, direction)
            ranks = mean_ranks(select(data.records, dataset, condition, attack, epsilon), metrics, direction)
            column_rank = {
                m: means[m].mul(-1.0 if direction[m] else 1.0).rank(method="min", ascending=True) for m in metrics
            }
            rows = []
            for entry in entries:
                cells = []
                for m in metrics:
                    value, rank = means.at[entry, m], column_rank[m].get(entry, math.nan)
                    cells.append(
                        {
                            "text": format_value(value),
                            "mark": marks.get((entry, m), ""),
                            "rank": "" if rank != rank else int(rank),
                            "n": int(counts.at[entry, m]),
                        }
                    )
                mean_rank = float(ranks.get(entry, math.nan))
                rows.append(
                    {
                        "method": entry,
                        "title": titles.get(entry, entry),
                        "cells": cells,
                        "mean_rank": "–" if math.isnan(mean_rank) else f"{mean_rank:.2f}",
                        "_sort": math.inf if math.isnan(mean_rank) else mean_rank,
                    }
                )
            rows.sort(key=lambda r: r.pop("_sort"))
            boards.append(
                {
                    "dataset": dataset,
                    "condition": condition,
                    "attack": attack if attack != NO_ATTACK else "",
                    "epsilon": f"{epsilon:g}" if attack != NO_ATTACK else "",
                    "columns": [
                        {"metric": m, "arrow": "↑" if direction[m] else "↓", "spec": _describe(specs[m])}
                        for m in metrics
                    ],
                    "rows": rows,
                    "images": int(counts.to_numpy().max()) if counts.size else 0,
                }
            )
    return boards


def _describe(spec: dict[str, Any]) -> str:
    from bench.metrics.base import MetricSpec

    fields = {k: spec[k] for k in MetricSpec.__dataclass_fields__ if k in spec}
    return MetricSpec(**fields).describe()
