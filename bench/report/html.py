"""The HTML leaderboard: a packaged Jinja2 template rendered with autoescape into one self-contained file.

``write_report(run_dir)`` reads the store (``run.json``, ``cells/``), writes ``results.csv``, ``tables/*.csv`` and
``index.html``, and returns the path of ``index.html``. The page has no external resource: CSS is inline and the
gallery PNGs are embedded as base64 ``data:`` URIs. It shows the run's provenance, a note when crops were used, one
leaderboard per (dataset, condition) with the best and second-best value of each column marked in the direction of
the metric spec's ``higher_is_better``, each column's spec line (header tooltip and footnote), the failures, the
gallery and, apart, the published tables of ``bench/report/papers/*.yaml`` with their caption.

Example::

    index = write_report("reports/smoke")   # -> reports/smoke/index.html
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import jinja2

from bench.report.tables import (
    RunData,
    failures,
    format_value,
    leaderboard,
    load_published,
    load_run,
    published_marks,
    rank_marks,
    write_tables,
)

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "index.html.j2"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _describe(spec: dict[str, Any]) -> str:
    from bench.metrics.base import MetricSpec

    fields = {k: spec[k] for k in MetricSpec.__dataclass_fields__ if k in spec}
    return MetricSpec(**fields).describe()


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _leaderboards(data: RunData) -> list[dict[str, Any]]:
    specs = data.specs()
    methods, metrics = data.order("method"), data.order("metric")
    titles = {name: p.get("title", name) for name, p in data.info.get("methods", {}).items()}
    conditions = {c["name"]: c for c in data.info.get("matrix", {}).get("conditions", [])}
    direction = {m: bool(specs[m]["higher_is_better"]) for m in metrics if m in specs}
    boards = []
    for dataset in data.order("dataset"):
        for condition in data.order("condition"):
            means, counts = leaderboard(data.records, dataset, condition, methods, metrics)
            if counts.to_numpy().sum() == 0 and means.isna().all().all():
                sel = data.records[(data.records["dataset"] == dataset) & (data.records["condition"] == condition)]
                if sel.empty:
                    continue
            marks = rank_marks(means, direction)
            expected = int(counts.to_numpy().max()) if counts.size else 0
            rows = []
            for method in methods:
                cells = []
                for metric in metrics:
                    value, n = means.at[method, metric], int(counts.at[method, metric])
                    cells.append(
                        {
                            "text": format_value(value),
                            "mark": marks.get((method, metric), ""),
                            "n": n,
                            "partial": 0 < n < expected or (n == 0 and expected > 0),
                        }
                    )
                rows.append({"method": method, "title": titles.get(method, method), "cells": cells})
            cond = conditions.get(condition, {})
            boards.append(
                {
                    "dataset": dataset,
                    "condition": condition,
                    "corruption": cond.get("corruption", ""),
                    "params": cond.get("params", {}),
                    "columns": [
                        {
                            "metric": m,
                            "spec": _describe(specs[m]) if m in specs else m,
                            "arrow": ("↑" if direction[m] else "↓") if m in direction else "",
                        }
                        for m in metrics
                    ],
                    "rows": rows,
                    "images": expected,
                }
            )
    return boards


def _gallery(data: RunData) -> list[dict[str, Any]]:
    root = data.run_dir / "gallery"
    if not root.is_dir():
        return []
    methods = data.order("method")
    out = []
    for dataset_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        order = {c: i for i, c in enumerate(data.order("condition"))}
        for cond_dir in sorted((p for p in dataset_dir.iterdir() if p.is_dir()), key=lambda p: order.get(p.name, 1e9)):
            tiles = []
            for label, name in (("HR", "HR.png"), ("LR (nearest)", "LR.png")):
                if (cond_dir / name).is_file():
                    tiles.append({"label": label, "src": _data_uri(cond_dir / name)})
            srs = {p.stem[3:]: p for p in cond_dir.glob("sr-*.png")}
            for method in [m for m in methods if m in srs] + sorted(set(srs) - set(methods)):
                tiles.append({"label": method, "src": _data_uri(srs[method])})
            if tiles:
                out.append({"dataset": dataset_dir.name, "condition": cond_dir.name, "tiles": tiles})
    return out


def _published() -> list[dict[str, Any]]:
    out = []
    for paper in load_published():
        tables = []
        for table in paper["tables"]:
            marks = published_marks(table, paper["metrics"])
            rows = []
            for r, row in enumerate(table["rows"]):
                cells = [
                    {"text": f"{v:.2f}", "mark": marks.get((r, g, m), "")}
                    for g, group in enumerate(row["values"])
                    for m, v in enumerate(group)
                ]
                rows.append({"method": row["method"], "cells": cells})
            tables.append({**table, "rendered_rows": rows})
        metrics = [{**m, "arrow": "↑" if m["higher_is_better"] else "↓"} for m in paper["metrics"]]
        out.append({**paper, "tables": tables, "metrics": metrics})
    return out


def render_report(data: RunData) -> str:
    """The HTML of a run's report (a string)."""
    info = data.info
    matrix = info.get("matrix", {})
    crops = [d for d in matrix.get("datasets", []) if d.get("crop")]
    specs = data.specs()
    fails = failures(data.records)
    context = {
        "run": data.name,
        "info": info,
        "matrix": matrix,
        "environment": info.get("environment", {}),
        "crops": crops,
        "leaderboards": _leaderboards(data),
        "footnotes": [_describe(specs[m]) for m in data.order("metric") if m in specs],
        "failures": fails.fillna("").to_dict("records"),
        "failed_cells": [p for p in data.payloads if p.get("status") != "ok" and p.get("fix")],
        "missing": data.missing,
        "stale": data.stale,
        "gallery": _gallery(data),
        "published": _published(),
        "methods": info.get("methods", {}),
    }
    return _environment().get_template(TEMPLATE).render(**context)


def write_report(run_dir: str | Path) -> Path:
    """Write ``results.csv``, ``tables/*.csv`` and ``index.html`` of a run directory; return ``index.html``."""
    data = load_run(run_dir)
    write_tables(data)
    index = data.run_dir / "index.html"
    index.write_text(render_report(data), encoding="utf-8")
    logger.info("report written to %s", index)
    return index
