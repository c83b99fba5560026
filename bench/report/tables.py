"""Tables from the store: the tidy records as a DataFrame, and method x metric pivots per (dataset, condition).

Everything here reads ``<run_dir>/run.json`` and ``<run_dir>/cells/*.json`` only. When ``run.json`` lists the run's
cells, only those are read (cells left over from an earlier matrix in the same folder are ignored and counted).

Columns of ``results.csv`` (one row per image x metric, or per failure)::

    run, method, dataset, image, condition, corruption, severity, attack, epsilon, seed, metric, value,
    status, error, cell, spec

``value`` is a float (empty for a failure row); ``spec`` is the metric's :class:`~bench.metrics.base.MetricSpec` as
JSON. A leaderboard is the mean over images and seeds of the ``ok`` rows; the direction of "best" comes from the
spec's ``higher_is_better``, never from the metric's name.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.runner.store import STATUS_OK, Store

logger = logging.getLogger(__name__)

RECORD_COLUMNS = (
    "run",
    "method",
    "dataset",
    "image",
    "condition",
    "corruption",
    "severity",
    "attack",
    "epsilon",
    "seed",
    "metric",
    "value",
    "status",
    "error",
    "cell",
    "spec",
)


@dataclass
class RunData:
    """What a report is made from: the run's info, its cell payloads, the records and what is missing."""

    run_dir: Path
    info: dict[str, Any]
    payloads: list[dict[str, Any]]
    records: pd.DataFrame
    missing: list[str] = field(default_factory=list)  # cell keys listed in run.json but not stored
    stale: int = 0  # cell files in the folder that the run's matrix does not list

    @property
    def name(self) -> str:
        return str(self.info.get("run") or self.run_dir.name)

    def specs(self) -> dict[str, dict[str, Any]]:
        """metric name -> spec dict (from run.json, else from the records)."""
        specs = {s["name"]: s for s in self.info.get("metric_specs", [])}
        for payload in self.payloads:
            for rec in payload.get("records", []):
                if rec.get("spec") and rec.get("metric") not in specs:
                    specs[rec["metric"]] = rec["spec"]
        return specs

    def order(self, column: str) -> list[str]:
        """Display order of methods / datasets / conditions / metrics: the matrix's, then any others found."""
        matrix = self.info.get("matrix", {})
        declared = {
            "method": list(matrix.get("methods", [])),
            "dataset": [d["name"] for d in matrix.get("datasets", [])],
            "condition": [c["name"] for c in matrix.get("conditions", [])],
            "metric": [m["name"] for m in matrix.get("metrics", [])],
        }.get(column, [])
        found = [v for v in self.records.get(column, pd.Series(dtype=object)).dropna().unique().tolist()]
        return declared + [v for v in found if v not in declared]


def records_frame(payloads: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The tidy records of the payloads (``spec`` kept as a dict; see :func:`results_csv_frame` for the CSV form)."""
    rows = [rec for p in payloads for rec in p.get("records", [])]
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    return frame


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory's store."""
    run_dir = Path(run_dir)
    store = Store(run_dir)
    info = store.read_run_info() or {}
    stored = store.keys()
    if not info and not stored:
        raise FileNotFoundError(f"{run_dir} holds no run (no run.json and no cells/); run `python -m bench run` first")
    listed = info.get("cells")
    if listed is None:
        keys = stored
        missing: list[str] = []
        stale = 0
    else:
        stored_set = set(stored)
        keys = [k for k in listed if k in stored_set]
        missing = [k for k in listed if k not in stored_set]
        stale = len(stored_set - set(listed))
        if stale:
            logger.info("%s: ignoring %d cell file(s) not in the run's matrix", run_dir, stale)
    payloads = list(store.iter_cells(keys))
    return RunData(run_dir, info, payloads, records_frame(payloads), missing, stale)


def results_csv_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The records with ``spec`` as compact JSON (what ``results.csv`` holds)."""
    out = records.copy()
    out["spec"] = [json.dumps(s, sort_keys=True) if isinstance(s, Mapping) else "" for s in out["spec"]]
    return out


def leaderboard(
    records: pd.DataFrame,
    dataset: str,
    condition: str,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Method x metric means (over images and seeds) of the ok rows, and the count of values behind each mean.

    Rows follow ``methods`` (methods with no row at all are kept, as NaN), columns ``metrics``.
    """
    sel = records[(records["dataset"] == dataset) & (records["condition"] == condition)]
    ok = sel[(sel["status"] == STATUS_OK) & sel["metric"].notna()]
    means = ok.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
    counts = ok.pivot_table(index="method", columns="metric", values="value", aggfunc="count")
    methods = list(methods) if methods is not None else sorted(sel["method"].dropna().unique())
    metrics = list(metrics) if metrics is not None else sorted(ok["metric"].unique())
    means = means.reindex(index=methods, columns=metrics)
    counts = counts.reindex(index=methods, columns=metrics).fillna(0).astype(int)
    means.index.name, means.columns.name = "method", None
    counts.index.name, counts.columns.name = "method", None
    return means, counts


def rank_marks(table: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> dict[tuple[str, str], str]:
    """``{(method, metric): "best" | "second"}`` per column; ties share a mark; NaN never ranks.

    The direction of each column comes from ``higher_is_better[metric]`` (a column without one is not ranked).
    """
    marks: dict[tuple[str, str], str] = {}
    for metric in table.columns:
        if metric not in higher_is_better:
            continue
        col = table[metric].dropna()
        if col.empty:
            continue
        distinct = sorted(set(col.tolist()), reverse=bool(higher_is_better[metric]))
        for method, value in col.items():
            if value == distinct[0]:
                marks[(method, metric)] = "best"
            elif len(distinct) > 1 and value == distinct[1]:
                marks[(method, metric)] = "second"
    return marks


def table_path(run_dir: Path, dataset: str, condition: str) -> Path:
    return run_dir / "tables" / f"{_safe(dataset)}__{_safe(condition)}.csv"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def write_tables(data: RunData) -> list[Path]:
    """Write ``results.csv`` and ``tables/<dataset>__<condition>.csv`` (means; ``n_<metric>`` counts beside them)."""
    run_dir = data.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    written = [run_dir / "results.csv"]
    results_csv_frame(data.records).to_csv(written[0], index=False)
    methods, metrics = data.order("method"), data.order("metric")
    for old in (run_dir / "tables").glob("*.csv"):  # tables of an earlier matrix in this folder
        old.unlink()
    for dataset in data.order("dataset"):
        for condition in data.order("condition"):
            means, counts = leaderboard(data.records, dataset, condition, methods, metrics)
            if means.isna().all().all() and counts.to_numpy().sum() == 0:
                continue
            out = means.copy()
            for metric in metrics:
                out[f"n_{metric}"] = counts[metric]
            path = table_path(run_dir, dataset, condition)
            path.parent.mkdir(parents=True, exist_ok=True)
            out.to_csv(path, float_format="%.6g")
            written.append(path)
    return written


def failures(records: pd.DataFrame) -> pd.DataFrame:
    """The failure rows, one per (cell, image, metric)."""
    cols = ["method", "dataset", "condition", "seed", "image", "metric", "error"]
    return records.loc[records["status"] != STATUS_OK, cols].reset_index(drop=True)


def format_value(value: float) -> str:
    """4 decimals below 10 (SSIM, LPIPS), 2 above (PSNR in dB); an en dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


PAPERS_DIR = Path(__file__).resolve().parent / "papers"


def load_published(paper_id: str | None = None) -> list[dict[str, Any]]:
    """Published tables transcribed as data (``bench/report/papers/*.yaml``), checked for consistent shapes.

    Each returned paper has ``tables``; each table ``groups`` (column groups, e.g. conditions), ``rows`` with
    ``values[group][metric]`` and the paper's ``metrics`` with their direction.
    """
    import yaml

    papers = []
    for path in sorted(PAPERS_DIR.glob("*.yaml")):
        paper = yaml.safe_load(path.read_text(encoding="utf-8"))
        if paper_id is not None and paper.get("id") != paper_id:
            continue
        n_metrics = len(paper["metrics"])
        for table in paper["tables"]:
            for row in table["rows"]:
                shape = [len(v) for v in row["values"]]
                if len(row["values"]) != len(table["groups"]) or any(n != n_metrics for n in shape):
                    raise ValueError(f"{path.name}: {table['id']} row {row['method']!r} has shape {shape}")
        papers.append(paper)
    return papers


def published_marks(table: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int, int], str]:
    """Best/second marks of a published table: ``{(row, group, metric): mark}`` per (group, metric) column."""
    marks: dict[tuple[int, int, int], str] = {}
    for g in range(len(table["groups"])):
        for m, metric in enumerate(metrics):
            col = pd.DataFrame({metric["name"]: [row["values"][g][m] for row in table["rows"]]})
            for (r, _), mark in rank_marks(col, {metric["name"]: metric["higher_is_better"]}).items():
                marks[(r, g, m)] = mark
    return marks
