"""The report's overview: one ranked table per dataset and metric, methods as rows, robustness summarised.

Computed from the tidy records (:func:`bench.report.tables.records_frame`), never from display labels:

* a **scenario** is (condition, attack, epsilon); its score for a method is the mean over images and seeds of the
  ``ok`` values. An attacked scenario run in several modes (white-box, eot, transfer from another method) counts the
  **worst** mode for the method (the strongest evaluated attack), in the metric's direction.
* its **threat family** comes from the record's ``corruption`` column (resolved through the corruption registry, so
  aliases agree) and its ``attack`` column: any attack -> ``attacks``; otherwise the ``family`` the corruption class
  declares (``gaussian_noise`` -> ``noise``, ``gaussian_blur`` -> ``blur``, ``jpeg`` -> ``jpeg``, ...); a
  corruption the registry does not know (or one declaring no family) is its own family. The unattacked ``clean``
  corruption (family ``clean``) is the ``clean`` column.
* per method: ``clean``; one column per family (mean over the family's scenarios); ``mean`` and ``worst`` over all
  threat scenarios (every scenario but clean, each weighted equally; worst in the metric's direction); ``drop`` =
  how much worse ``mean`` is than ``clean`` (positive = worse; ``clean - mean`` for a higher-is-better metric,
  ``mean - clean`` otherwise).
* **rank**: by ``mean`` in the direction of the metric spec's ``higher_is_better`` (by ``clean`` when the run has no
  threat scenario). Methods evaluated on fewer scenarios than the others (``partial``) rank after the complete ones,
  methods without any value last.

The primary metric (the overview shown first) is ``primary`` when given, else the first metric the matrix declares
that has a value (certified columns excluded). A method whose rows of a (dataset, metric) are all ``skipped`` (a
full-reference metric on a set without ground truth) shows the reason, "skipped: no ground truth", in its scenario
columns instead of a number.

Example::

    frame = overview_frame(load_run("reports/default").records, "embedded-eval", "lpips_alex", higher_is_better=False)
    frame[["clean", "noise", "attacks", "mean", "worst", "drop", "rank"]]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bench.report.tables import NO_ATTACK, RunData, format_value, rank_marks, skip_reasons
from bench.results.schema import STATUS_SKIPPED
from bench.runner.store import STATUS_OK

logger = logging.getLogger(__name__)

CLEAN = "clean"
ATTACKS = "attacks"
#: Display order of the family columns (families not listed follow, alphabetically).
FAMILY_ORDER = (CLEAN, "noise", "blur", "jpeg", "mixed", ATTACKS)
SUMMARY_COLUMNS = ("mean", "worst", "drop")


def threat_family(corruption: Any, attack: Any = NO_ATTACK) -> str:
    """The overview family of a scenario from its record fields: ``attacks`` for any attack, else the corruption's."""
    if isinstance(attack, str) and attack != NO_ATTACK:
        return ATTACKS
    if not isinstance(corruption, str) or not corruption:
        return "other"
    from bench.corruptions import CORRUPTIONS

    try:
        cls = CORRUPTIONS.get(corruption)
    except KeyError:  # a corruption this bench does not know (a run made elsewhere): its own family
        return corruption
    return cls.family or CORRUPTIONS.canonical(corruption)


def scenario_scores(
    records: pd.DataFrame, dataset: str, metric: str, higher_is_better: bool, methods: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per (method, scenario) with its score: columns ``method, condition, corruption, attack, epsilon,
    family, value, entries`` (``entries``: the attack modes the worst was taken over)."""
    rec = records[(records["dataset"] == dataset) & (records["metric"] == metric) & (records["status"] == STATUS_OK)]
    rec = rec[rec["value"].notna()]
    cols = ["method", "condition", "corruption", "attack", "epsilon"]
    if rec.empty:
        return pd.DataFrame(columns=[*cols, "family", "value", "entries"])
    per_entry = rec.groupby([*cols, "entry"], dropna=False)["value"].mean().reset_index()
    worst = "min" if higher_is_better else "max"
    out = per_entry.groupby(cols, dropna=False).agg(value=("value", worst), entries=("entry", "nunique")).reset_index()
    out["family"] = [threat_family(c, a) for c, a in zip(out["corruption"], out["attack"], strict=True)]
    if methods is not None:
        out = out[out["method"].isin(list(methods))]
    return out.reset_index(drop=True)


def _families(scores: pd.DataFrame) -> list[str]:
    found = set(scores["family"]) - {CLEAN}
    return [f for f in FAMILY_ORDER if f in found] + sorted(found - set(FAMILY_ORDER))


def overview_frame(
    records: pd.DataFrame,
    dataset: str,
    metric: str,
    higher_is_better: bool,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Method x (clean, families..., mean, worst, worst_scenario, drop, n, n_total, partial, rank) for one metric.

    ``n`` is the number of threat scenarios the method has a value for, ``n_total`` the number in the run;
    ``rank`` starts at 1 (ties share the smaller rank).
    """
    scores = scenario_scores(records, dataset, metric, higher_is_better, methods)
    order = list(methods) if methods is not None else sorted(scores["method"].unique())
    families = _families(scores)
    frame = pd.DataFrame(index=pd.Index(order, name="method"))
    clean = scores[scores["family"] == CLEAN].groupby("method")["value"].mean()
    frame[CLEAN] = clean.reindex(order)
    threats = scores[scores["family"] != CLEAN].copy()
    threats["key"] = [
        _scenario_label(c, a, e)
        for c, a, e in zip(threats["condition"], threats["attack"], threats["epsilon"], strict=True)
    ]
    for family in families:
        frame[family] = threats[threats["family"] == family].groupby("method")["value"].mean().reindex(order)
    grouped = threats.groupby("method")
    frame["mean"] = grouped["value"].mean().reindex(order)
    pick = "idxmin" if higher_is_better else "idxmax"
    worst_rows = {m: g.loc[getattr(g["value"], pick)()] for m, g in grouped if g["value"].notna().any()}
    frame["worst"] = [worst_rows[m]["value"] if m in worst_rows else math.nan for m in order]
    frame["worst_scenario"] = [worst_rows[m]["key"] if m in worst_rows else "" for m in order]
    sign = 1.0 if higher_is_better else -1.0
    frame["drop"] = sign * (frame[CLEAN] - frame["mean"])
    frame["n"] = grouped["key"].nunique().reindex(order).fillna(0).astype(int)
    frame["n_total"] = int(threats["key"].nunique())
    frame["partial"] = (frame["n"] < frame["n_total"]) & (frame["n"] > 0)
    key = "mean" if frame["n_total"].max() > 0 else CLEAN
    frame["rank"] = _ranks(frame, key, higher_is_better)
    return frame


def _scenario_label(condition: str, attack: str, epsilon: float) -> str:
    if attack == NO_ATTACK:
        return str(condition)
    from bench.runner.matrix import format_epsilon

    return f"{condition} + {attack} ε={format_epsilon(float(epsilon))}"


def _ranks(frame: pd.DataFrame, key: str, higher_is_better: bool) -> list[int]:
    """Complete rows by ``key`` in the metric's direction, then partial rows, then rows without a value."""
    tier = [2 if math.isnan(v) else (1 if p else 0) for v, p in zip(frame[key], frame["partial"], strict=True)]
    value = [(-v if higher_is_better else v) if not math.isnan(v) else 0.0 for v in frame[key]]
    keys = list(zip(tier, value, strict=True))
    return [1 + sum(1 for other in keys if other < k) for k in keys]


def primary_metric(data: RunData, primary: str | None = None) -> str | None:
    """The metric the overview ranks by first: ``primary`` if the run has it, else the matrix's first declared one."""
    metrics = overview_metrics(data)
    if primary is not None:
        if primary not in metrics:
            raise ValueError(f"--primary {primary!r} is not a metric of this run; its metrics: {', '.join(metrics)}")
        return primary
    valued = set(data.records.loc[data.records["status"] == STATUS_OK, "metric"].dropna())
    return next((m for m in metrics if m in valued), metrics[0] if metrics else None)


def overview_metrics(data: RunData) -> list[str]:
    """The run's metrics with a direction and a value or a skip reason, certified columns excluded, in the matrix's
    order."""
    specs = data.specs()
    ok = set(data.records.loc[data.records["status"].isin([STATUS_OK, STATUS_SKIPPED]), "metric"].dropna())
    return [
        m for m in data.order("metric") if m in specs and m in ok and not (specs[m].get("extra") or {}).get("certified")
    ]


def board_anchor(dataset: str, condition: str, attack: str = "", epsilon: str = "") -> str:
    """The HTML id of a per-scenario board (``epsilon`` as displayed, e.g. ``"2/255"``)."""
    parts = [dataset, condition] + ([attack, epsilon] if attack and attack != NO_ATTACK else [])
    slug = "-".join("".join(ch if ch.isalnum() else "_" for ch in str(p)) for p in parts)
    return f"board-{slug}"


def overview_context(data: RunData, primary: str | None = None) -> list[dict[str, Any]]:
    """What the ``_overview.html.j2`` partial shows: per dataset, one table per metric (the primary one first)."""
    from bench.runner.matrix import format_epsilon

    specs = data.specs()
    metrics = overview_metrics(data)
    first = primary_metric(data, primary)
    if first is None:
        return []
    metrics = [first] + [m for m in metrics if m != first]
    methods = data.order("method")
    out = []
    for dataset in data.order("dataset"):
        tables = []
        scen = data.scenarios(dataset)
        links: dict[str, list[dict[str, str]]] = {}
        for condition, attack, eps in scen:
            sel = data.records[(data.records["condition"] == condition) & (data.records["dataset"] == dataset)]
            corruption = sel["corruption"].dropna().iloc[0] if sel["corruption"].notna().any() else ""
            family = threat_family(corruption, attack)
            eps_text = format_epsilon(eps) if attack != NO_ATTACK else ""
            label = condition if attack == NO_ATTACK else f"{condition} + {attack} ε={eps_text}"
            anchor = board_anchor(dataset, condition, attack, eps_text)
            links.setdefault(family, []).append({"label": label, "anchor": anchor})
        for metric in metrics:
            hib = bool(specs[metric]["higher_is_better"])
            frame = overview_frame(data.records, dataset, metric, hib, methods)
            in_dataset = data.records[(data.records["dataset"] == dataset) & (data.records["metric"] == metric)]
            skipped = {m: r for (m,), r in skip_reasons(in_dataset, ("method",)).items()}
            if frame[[c for c in frame.columns if c in (CLEAN, "mean")]].isna().all().all() and not skipped:
                continue
            families = [c for c in frame.columns if c not in (CLEAN, *SUMMARY_COLUMNS) and c not in _META]
            value_cols = [CLEAN, *families, "mean", "worst", "drop"]
            direction = {c: hib for c in value_cols}
            direction["drop"] = False  # a smaller drop is better whatever the metric's direction
            ranked = frame[value_cols].astype(float)
            ranked.loc[frame["partial"], ["mean", "worst", "drop"]] = math.nan  # not comparable: fewer scenarios
            marks = rank_marks(ranked, direction)
            rows = []
            for method in frame.sort_values("rank", kind="stable").index:
                r = frame.loc[method]
                cells = []
                for col in value_cols:
                    v = float(r[col])
                    title = ""
                    if col == "worst" and r["worst_scenario"]:
                        title = f"worst scenario: {r['worst_scenario']}"
                    reason = skipped.get(method) if math.isnan(v) and col not in SUMMARY_COLUMNS else None
                    cells.append(
                        {
                            "col": col,
                            "text": reason or format_value(v),
                            "value": "" if math.isnan(v) else repr(v),
                            "mark": "skipped" if reason else marks.get((method, col), ""),
                            "title": title,
                        }
                    )
                rows.append(
                    {
                        "rank": int(r["rank"]),
                        "method": method,
                        "title": data.info.method_title(method),
                        "cells": cells,
                        "partial": bool(r["partial"]),
                        "empty": all(c["value"] == "" and c["mark"] != "skipped" for c in cells),
                        "n": int(r["n"]),
                        "n_total": int(r["n_total"]),
                    }
                )
            columns = [{"name": CLEAN, "anchor": (links.get(CLEAN) or [{"anchor": ""}])[0]["anchor"], "hib": hib}]
            columns += [
                {"name": f, "anchor": (links.get(f) or [{"anchor": ""}])[0]["anchor"], "hib": hib} for f in families
            ]
            columns += [
                {"name": "mean", "anchor": "", "hib": hib},
                {"name": "worst", "anchor": "", "hib": hib},
                {"name": "drop", "anchor": "", "hib": False},
            ]
            tables.append(
                {
                    "metric": metric,
                    "arrow": "↑" if hib else "↓",
                    "hib": hib,
                    "spec": specs[metric].get("name", metric),
                    "columns": columns,
                    "rows": rows,
                    "n_total": int(frame["n_total"].max()) if len(frame) else 0,
                    "ranked_by": "mean" if len(frame) and frame["n_total"].max() > 0 else CLEAN,
                }
            )
        if tables:
            families_present = [f for f in FAMILY_ORDER if f in links] + sorted(set(links) - set(FAMILY_ORDER))
            out.append(
                {
                    "dataset": dataset,
                    "primary": first,
                    "tables": tables,
                    "links": [{"family": f, "boards": links[f]} for f in families_present],
                }
            )
    return out


_META = ("worst_scenario", "n", "n_total", "partial", "rank")
