"""Robustness curves from a run's store: metric vs attack budget, and metric vs corruption severity.

Both are drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`, rendered by the Agg canvas; pyplot's
global state is never touched) and returned as PNG bytes, which the HTML report inlines as ``data:`` URIs and
:func:`write_curves` also saves under ``<run_dir>/figures/``.

* :func:`attack_curves`: one figure per (dataset, condition, attack) with one panel per metric; x = the budget
  epsilon in 8-bit levels (eps x 255), y = the mean over images and seeds; one line per leaderboard entry (method and
  attack mode, e.g. ``realesrgan-x4plus [white-box]``, ``...-mrs [eot]``). The point at epsilon 0 is the entry's
  method without attack, on the **same images** as the attacked cells (``attack_images`` may attack fewer images than
  the unattacked cells hold), so the curve starts where the attack starts.
* :func:`severity_curves`: one figure per (dataset, corruption family) for matrices with ``severities:``; x = the
  severity level (0 = the matrix's ``clean`` condition when it has one), y = the mean per method.

Metrics are the run's declared metrics (the certified columns are left out); each panel's y label carries the
metric's direction from its spec (an arrow up when higher is better).

Example::

    for curve in attack_curves(load_run("reports/default")):
        Path(curve["file"]).write_bytes(curve["png"])
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bench.atomic import atomic_write, remove_file
from bench.paths import safe_filename
from bench.report.tables import NO_ATTACK, RunData
from bench.runner.store import STATUS_OK

logger = logging.getLogger(__name__)

PANEL_SIZE = (3.6, 2.8)  # inches per metric panel
PANELS_PER_ROW = 3
DPI = 100


def _curve_metrics(data: RunData) -> list[str]:
    specs = data.specs()
    declared = data.info.matrix.names("metric")
    metrics = declared or data.order("metric")
    return [m for m in metrics if not (specs.get(m, {}).get("extra") or {}).get("certified")]


def _ok(records: pd.DataFrame) -> pd.DataFrame:
    return records[(records["status"] == STATUS_OK) & records["metric"].notna()]


def _figure(n_panels: int):
    """A figure of ``n_panels`` panels, at most :data:`PANELS_PER_ROW` a row (unused slots hidden)."""
    from matplotlib.figure import Figure

    cols = min(n_panels, PANELS_PER_ROW)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows + 0.3), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def figure_png(fig: Any) -> bytes:
    """The PNG bytes of a matplotlib figure (Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _ylabel(metric: str, specs: dict[str, dict[str, Any]]) -> str:
    spec = specs.get(metric)
    if spec is None:
        return metric
    return f"{metric} {'↑' if spec.get('higher_is_better') else '↓'}"


def attack_series(data: RunData, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The points of the metric-vs-epsilon curves: one dict per (dataset, condition, attack, metric, entry) with
    ``eps`` (budgets, 0 first when the unattacked value exists on the same images), ``values`` (means) and
    ``images`` (the attacked images)."""
    records = _ok(data.records)
    attacked = records[records["attack"] != NO_ATTACK]
    if attacked.empty:
        return []
    metrics = list(metrics) if metrics is not None else _curve_metrics(data)
    clean = records[records["attack"] == NO_ATTACK]
    out = []
    for dataset in data.order("dataset"):
        for condition in data.order("condition"):
            sel = attacked[(attacked["dataset"] == dataset) & (attacked["condition"] == condition)]
            base = clean[(clean["dataset"] == dataset) & (clean["condition"] == condition)]
            for attack, _ in _attack_order(data, sel):
                cur = sel[sel["attack"] == attack]
                entries = [e for e in data.entries(dataset, condition, attack) if e in set(cur["entry"])]
                for metric in metrics:
                    for entry in entries:
                        rows = cur[(cur["entry"] == entry) & (cur["metric"] == metric)]
                        if rows.empty:
                            continue
                        images = sorted(set(rows["image"]))
                        zero = base[(base["method"] == rows["method"].iloc[0]) & (base["metric"] == metric)]
                        zero = zero[zero["image"].isin(images)]
                        means = rows.groupby("epsilon")["value"].mean()
                        if not zero.empty:
                            means = pd.concat([pd.Series({0.0: zero["value"].mean()}), means]).sort_index()
                        out.append(
                            {
                                "dataset": dataset,
                                "condition": condition,
                                "attack": attack,
                                "metric": metric,
                                "entry": entry,
                                "eps": [float(e) for e in means.index],
                                "values": [float(v) for v in means.to_numpy()],
                                "images": images,
                            }
                        )
    return out


def attack_curves(data: RunData, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Metric-vs-epsilon figures of a run (see the module docstring and :func:`attack_series`).

    Returns a list of ``{"dataset", "condition", "attack", "title", "entries", "epsilons", "images", "png",
    "file"}`` (``png``: bytes; ``file``: a suggested file name); empty when the run has no attacked records.
    """
    series = attack_series(data, metrics)
    specs = data.specs()
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for item in series:
        groups.setdefault((item["dataset"], item["condition"], item["attack"]), []).append(item)
    out = []
    for (dataset, condition, attack), items in groups.items():
        panels = list(dict.fromkeys(i["metric"] for i in items))
        fig, axes = _figure(len(panels))
        for ax, metric in zip(axes, panels, strict=True):
            for item in (i for i in items if i["metric"] == metric):
                ax.plot([e * 255 for e in item["eps"]], item["values"], marker="o", label=item["entry"])
            ax.set_xlabel("epsilon (x 1/255, L-inf)")
            ax.set_ylabel(_ylabel(metric, specs))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        images = len({image for i in items for image in i["images"]})
        title = f"{dataset} / {condition}: {attack} ({images} image{'s' if images != 1 else ''})"
        fig.suptitle(title, fontsize=10)
        out.append(
            {
                "dataset": dataset,
                "condition": condition,
                "attack": attack,
                "title": title,
                "entries": list(dict.fromkeys(i["entry"] for i in items)),
                "epsilons": sorted({e for i in items for e in i["eps"]}),
                "images": images,
                "png": figure_png(fig),
                "file": f"attack__{safe_filename(dataset)}__{safe_filename(condition)}__{safe_filename(attack)}.png",
            }
        )
    return out


def _attack_order(data: RunData, sel: pd.DataFrame) -> list[tuple[str, int]]:
    declared = data.info.matrix.names("attack")
    found = sel["attack"].dropna().unique().tolist()
    names = [a for a in declared if a in found] + sorted(a for a in found if a not in declared)
    return [(a, i) for i, a in enumerate(names)]


def severity_series(data: RunData, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The points of the metric-vs-severity curves: one dict per (dataset, family, metric, method) with ``levels``
    (0 = the matrix's clean condition when it has one) and ``values`` (unattacked means over images and seeds)."""
    conditions = data.info.matrix.conditions
    families: dict[str, dict[str, float]] = {}
    for c in conditions:
        if c.get("family"):
            families.setdefault(c["family"], {})[c["name"]] = float(c["severity"])
    if not families:
        return []
    from bench.report.overview import CLEAN, threat_family

    clean_name = next((c["name"] for c in conditions if threat_family(c.get("corruption")) == CLEAN), None)
    records = _ok(data.records)
    records = records[records["attack"] == NO_ATTACK]
    metrics = list(metrics) if metrics is not None else _curve_metrics(data)
    out = []
    for dataset in data.order("dataset"):
        ds = records[records["dataset"] == dataset]
        for family, levels in families.items():
            levels = {**levels, **({clean_name: 0.0} if clean_name else {})}
            sel = ds[ds["condition"].isin(list(levels))]
            for metric in metrics:
                for method in data.order("method"):
                    rows = sel[(sel["method"] == method) & (sel["metric"] == metric)]
                    if rows.empty:
                        continue
                    points = sorted((levels[c], v) for c, v in rows.groupby("condition")["value"].mean().items())
                    out.append(
                        {
                            "dataset": dataset,
                            "family": family,
                            "metric": metric,
                            "method": method,
                            "levels": [x for x, _ in points],
                            "values": [float(v) for _, v in points],
                        }
                    )
    return out


def severity_curves(data: RunData, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Metric-vs-severity figures for the corruption families of a run (conditions declared with ``severities:``).

    Returns ``{"dataset", "family", "title", "levels", "png", "file"}`` per figure; empty without families.
    """
    specs = data.specs()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in severity_series(data, metrics):
        groups.setdefault((item["dataset"], item["family"]), []).append(item)
    out = []
    for (dataset, family), items in groups.items():
        panels = list(dict.fromkeys(i["metric"] for i in items))
        fig, axes = _figure(len(panels))
        for ax, metric in zip(axes, panels, strict=True):
            for item in (i for i in items if i["metric"] == metric):
                ax.plot(item["levels"], item["values"], marker="o", label=item["method"])
            ax.set_xlabel(f"{family} severity")
            ax.set_ylabel(_ylabel(metric, specs))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        title = f"{dataset}: {family} by severity"
        fig.suptitle(title, fontsize=10)
        out.append(
            {
                "dataset": dataset,
                "family": family,
                "title": title,
                "levels": sorted({x for i in items for x in i["levels"]}),
                "png": figure_png(fig),
                "file": f"severity__{safe_filename(dataset)}__{safe_filename(family)}.png",
            }
        )
    return out


def write_curves(data: RunData) -> list[dict[str, Any]]:
    """Draw every curve of the run, save the PNGs under ``<run_dir>/figures/`` (atomically, :mod:`bench.atomic`) and
    return the curve dicts."""
    curves = attack_curves(data) + severity_curves(data)
    folder = data.run_dir / "figures"
    written = {atomic_write(folder / curve["file"], curve["png"]) for curve in curves}
    for old in sorted(set(folder.glob("*.png")) - written):  # curves of an earlier matrix in this folder
        remove_file(old)
    logger.debug("%d curve(s) written to %s", len(curves), folder)
    return curves
