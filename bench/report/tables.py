"""Tables from the store: the tidy records as a DataFrame, and method x metric pivots per scenario.

Everything here reads ``<run_dir>/run.json`` and ``<run_dir>/cells/*.json`` only. When ``run.json`` lists the run's
cells, only those are read (cells left over from an earlier matrix in the same folder are ignored and counted).

Columns of ``results.csv`` (one row per image x metric, or per failure)::

    run, method, dataset, image, condition, corruption, severity, attack, epsilon, seed, metric, value,
    status, error, cell, spec, sigma, attack_mode, attack_surrogate, attack_loss_clean, attack_loss_adv,
    attack_forward, attack_backward, attack_seconds, attack_linf, entry

``value`` is a float (empty for a failure row); ``spec`` is the metric's :class:`~bench.metrics.base.MetricSpec` as
JSON; ``sigma`` the noise level of a median-smoothing method (chosen per condition for ``sigma: auto``); the
``attack_*`` columns are the attack's mode (white-box, eot, transfer, gradient-free), surrogate, loss before/after,
forward/backward passes, seconds per image and L-inf distance. ``entry`` names a leaderboard row: the method, and
for attacked rows the mode that produced the number, ``"method [mode]"`` (``"method [transfer from base]"``).

A **scenario** is (condition, attack, epsilon); the unattacked one has attack ``none``. A leaderboard is the mean over
images and seeds of the ``ok`` rows of one (dataset, scenario); with several seeds, :func:`worst_over_seeds` gives
the worst per-seed mean. The direction of "best" comes from the spec's ``higher_is_better``, never from the name.
Rows with status ``skipped`` (a full-reference metric on a set without ground truth) hold no value: a board shows
their reason (:func:`skip_reasons`, "skipped: no ground truth") in place of a number; they are not failures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.atomic import atomic_write, remove_file
from bench.paths import safe_filename
from bench.results.schema import (
    NO_ATTACK,
    RECORD_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    AttackMode,
    CellPayload,
    RunInfo,
)
from bench.runner.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: the method and, on attacked boards, the mode (and surrogate) that made its numbers."""

    method: str
    mode: AttackMode | None = None
    surrogate: str | None = None

    @property
    def mode_text(self) -> str:
        """``white-box``, ``eot``, ``transfer from <surrogate>``...; empty for unattacked rows."""
        if self.mode is None:
            return ""
        if self.mode is AttackMode.TRANSFER and self.surrogate is not None:
            return f"transfer from {self.surrogate}"
        return self.mode.value


@dataclass
class RunData:
    """What a report is made from: the run's info, its cell payloads, the records and what is missing."""

    run_dir: Path
    info: RunInfo
    payloads: list[CellPayload]
    records: pd.DataFrame
    missing: list[str] = field(default_factory=list)  # cell keys listed in run.json but not stored
    stale: int = 0  # cell files in the folder that the run's matrix does not list

    @property
    def name(self) -> str:
        return self.info.run or self.run_dir.name

    def specs(self) -> dict[str, dict[str, Any]]:
        """metric name -> spec dict (from run.json, else from the records)."""
        specs = {s["name"]: dict(s) for s in self.info.metric_specs}
        for payload in self.payloads:
            for name, spec in payload.metric_specs.items():
                specs.setdefault(name, spec)
        for rec in self.records[["metric", "spec"]].itertuples(index=False):  # certified columns
            if isinstance(rec.spec, Mapping) and rec.metric not in specs:
                specs[rec.metric] = rec.spec
        return specs

    def entry_parts(self) -> dict[str, Entry]:
        """Leaderboard entry label -> :class:`Entry`, from the records' columns (never parsed from the label)."""
        out: dict[str, Entry] = {}
        cols = self.records[["entry", "method", "attack", "attack_mode", "attack_surrogate"]]
        for entry, method, attack, mode, surrogate in (
            cols.dropna(subset=["entry"]).drop_duplicates().itertuples(index=False)
        ):
            attacked = attack != NO_ATTACK and isinstance(mode, str)
            surrogate = surrogate if isinstance(surrogate, str) else None
            out.setdefault(entry, Entry(method, AttackMode(mode) if attacked else None, surrogate))
        return out

    def scenarios(self, dataset: str | None = None) -> list[tuple[str, str, float]]:
        """(condition, attack, epsilon) present in the records, in display order: the matrix's conditions; in each,
        no attack first, then the attacks in matrix order, budgets ascending."""
        rec = self.records if dataset is None else self.records[self.records["dataset"] == dataset]
        if rec.empty:
            return []
        conds = {c: i for i, c in enumerate(self.order("condition"))}
        attacks = [NO_ATTACK, *self.info.matrix.names("attack")]
        rank = {a: i for i, a in enumerate(attacks)}
        found = rec[["condition", "attack", "epsilon"]].drop_duplicates()
        keys = [(str(c), str(a), float(e)) for c, a, e in found.itertuples(index=False) if isinstance(c, str)]
        return sorted(set(keys), key=lambda k: (conds.get(k[0], 1e9), rank.get(k[1], 1e9), k[1], k[2]))

    def entries(self, dataset: str, condition: str, attack: str = NO_ATTACK, epsilon: float | None = None) -> list:
        """Leaderboard rows of one scenario: the matrix's methods in order, each with the modes found for it."""
        sel = select(self.records, dataset, condition, attack, epsilon)
        out: list[str] = []
        parts = self.entry_parts()
        for method in self.order("method"):
            if attack == NO_ATTACK:
                out.append(method)
                continue
            found = sel.loc[sel["method"] == method, "entry"].dropna().unique().tolist()
            out.extend(sorted(found, key=lambda e: (parts[e].mode is AttackMode.TRANSFER, e)))
        return out

    def order(self, column: str) -> list[str]:
        """Display order of methods / datasets / conditions / metrics: the matrix's, then any others found."""
        declared = self.info.matrix.names(column) if column in ("method", "dataset", "condition", "metric") else []
        found = [v for v in self.records.get(column, pd.Series(dtype=object)).dropna().unique().tolist()]
        return declared + [v for v in found if v not in declared]


def records_frame(payloads: Sequence[CellPayload]) -> pd.DataFrame:
    """The tidy records of the payloads (``spec`` kept as a dict; see :func:`results_csv_frame` for the CSV form)."""
    rows = [rec for p in payloads for rec in p.records]
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame["attack"] = frame["attack"].fillna(NO_ATTACK)
    frame["epsilon"] = pd.to_numeric(frame["epsilon"], errors="coerce").fillna(0.0).astype(float)
    frame["entry"] = [
        _entry(m, a, mode, sur)
        for m, a, mode, sur in zip(
            frame["method"], frame["attack"], frame["attack_mode"], frame["attack_surrogate"], strict=True
        )
    ]
    return frame


def _entry(method: Any, attack: Any, mode: Any, surrogate: Any) -> Any:
    """The display label of a leaderboard row (the report reads method and mode from the columns, not from it)."""
    if attack == NO_ATTACK or not isinstance(mode, str):
        return method
    info = Entry(method, AttackMode(mode), surrogate if isinstance(surrogate, str) else None)
    return f"{method} [{info.mode_text}]"


def select(
    records: pd.DataFrame, dataset: str, condition: str, attack: str = NO_ATTACK, epsilon: float | None = None
) -> pd.DataFrame:
    """The records of one (dataset, scenario); ``epsilon=None`` takes every budget of the attack."""
    sel = records[(records["dataset"] == dataset) & (records["condition"] == condition)]
    sel = sel[sel["attack"] == attack]
    if epsilon is not None and attack != NO_ATTACK:
        sel = sel[(sel["epsilon"] - float(epsilon)).abs() < 1e-12]
    return sel


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory's store."""
    run_dir = Path(run_dir)
    store = Store(run_dir)
    info = store.read_info()
    stored = store.keys()
    if info is None and not stored:
        raise FileNotFoundError(f"{run_dir} holds no run (no run.json and no cells/); run `python -m bench run` first")
    info = info if info is not None else RunInfo(run=run_dir.name)
    listed = info.cells
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
    payloads = list(store.iter_payloads(keys))
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
    *,
    attack: str = NO_ATTACK,
    epsilon: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Entry x metric means (over images and seeds) of the ok rows of one scenario, and the count behind each mean.

    Rows follow ``methods`` (entries: method names, or ``"method [mode]"`` for attacked scenarios; entries with no row
    are kept, as NaN), columns ``metrics``. The index is named ``method``.
    """
    sel = select(records, dataset, condition, attack, epsilon)
    ok = sel[(sel["status"] == STATUS_OK) & sel["metric"].notna()]
    means = ok.pivot_table(index="entry", columns="metric", values="value", aggfunc="mean")
    counts = ok.pivot_table(index="entry", columns="metric", values="value", aggfunc="count")
    methods = list(methods) if methods is not None else sorted(sel["entry"].dropna().unique())
    metrics = list(metrics) if metrics is not None else sorted(ok["metric"].unique())
    means = means.reindex(index=methods, columns=metrics)
    counts = counts.reindex(index=methods, columns=metrics).fillna(0).astype(int)
    means.index.name, means.columns.name = "method", None
    counts.index.name, counts.columns.name = "method", None
    return means, counts


def skip_reasons(records: pd.DataFrame, by: Sequence[str] = ("entry", "metric")) -> dict[Any, str]:
    """``{key: reason}`` of the keys (columns ``by``) whose rows are all ``skipped`` -- none ``ok`` nor ``failed`` --
    e.g. ``{("bicubic", "psnr"): "skipped: no ground truth"}``; the reasons of a key joined when they differ."""
    rows = records[records["metric"].notna()]
    if rows.empty:
        return {}
    out: dict[Any, str] = {}
    for key, group in rows.groupby(list(by), dropna=False):
        if (group["status"] == STATUS_SKIPPED).all():
            out[key] = "; ".join(sorted({str(e) for e in group["error"].dropna()})) or STATUS_SKIPPED
    return out


def worst_over_seeds(
    records: pd.DataFrame,
    dataset: str,
    condition: str,
    entries: Sequence[str],
    metrics: Sequence[str],
    higher_is_better: Mapping[str, bool],
    *,
    attack: str = NO_ATTACK,
    epsilon: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Worst per-seed mean (over images) of each entry and metric, and the number of seeds behind it.

    "Worst" follows the metric's direction (the lowest PSNR, the highest LPIPS). Where an entry has one seed the
    worst is its mean; callers show it only for entries with several seeds (stochastic methods).
    """
    sel = select(records, dataset, condition, attack, epsilon)
    ok = sel[(sel["status"] == STATUS_OK) & sel["metric"].notna()]
    per_seed = ok.groupby(["entry", "metric", "seed"])["value"].mean().reset_index()
    worst = pd.DataFrame(index=list(entries), columns=list(metrics), dtype=float)
    seeds = pd.DataFrame(0, index=list(entries), columns=list(metrics), dtype=int)
    for (entry, metric), group in per_seed.groupby(["entry", "metric"]):
        if entry not in worst.index or metric not in worst.columns:
            continue
        high = higher_is_better.get(metric)
        worst.at[entry, metric] = group["value"].min() if high in (True, None) else group["value"].max()
        seeds.at[entry, metric] = len(group)
    worst.index.name = seeds.index.name = "method"
    return worst, seeds


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


def table_path(run_dir: Path, dataset: str, condition: str, attack: str = NO_ATTACK, epsilon: float = 0.0) -> Path:
    """``tables/<dataset>__<condition>.csv``; attacked scenarios add ``__<attack>_eps<epsilon>``."""
    name = f"{safe_filename(dataset)}__{safe_filename(condition)}"
    if attack != NO_ATTACK:
        name += f"__{safe_filename(attack)}_eps{epsilon:.6g}"
    return run_dir / "tables" / f"{name}.csv"


def table_paths(run_dir: Path, scenarios: Sequence[tuple[str, str, str, float]]) -> dict[tuple, Path]:
    """:func:`table_path` of each ``(dataset, condition, attack, epsilon)``; names that collide once sanitised
    (``a/b`` and ``a_b``) each get ``__<8 hex of sha256 of the raw names>`` appended, so no table overwrites another."""
    plain = {sc: table_path(run_dir, *sc) for sc in scenarios}
    uses: dict[Path, int] = {}
    for path in plain.values():
        uses[path] = uses.get(path, 0) + 1
    out = {}
    for sc, path in plain.items():
        if uses[path] > 1:
            digest = hashlib.sha256(json.dumps([str(v) for v in sc]).encode("utf-8")).hexdigest()[:8]
            path = path.with_name(f"{path.stem}__{digest}{path.suffix}")
        out[sc] = path
    return out


def write_tables(data: RunData) -> list[Path]:
    """Write ``results.csv`` and ``tables/<dataset>__<condition>.csv`` (means; ``n_<metric>`` counts beside them), each
    atomically (:mod:`bench.atomic`), then remove the tables of an earlier matrix; :class:`~bench.errors.OutputError`
    naming the file when one cannot be written."""
    run_dir = data.run_dir
    written = [run_dir / "results.csv"]
    atomic_write(written[0], results_csv_frame(data.records).to_csv(index=False, lineterminator="\n"))
    metrics = data.order("metric")
    specs = data.specs()
    direction = {m: bool(specs[m]["higher_is_better"]) for m in metrics if m in specs}
    scenarios = [(d, *sc) for d in data.order("dataset") for sc in data.scenarios(d)]
    paths = table_paths(run_dir, scenarios)
    for dataset, condition, attack, epsilon in scenarios:
        entries = data.entries(dataset, condition, attack, epsilon)
        means, counts = leaderboard(data.records, dataset, condition, entries, metrics, attack=attack, epsilon=epsilon)
        if means.isna().all().all() and counts.to_numpy().sum() == 0:
            continue
        out = means.copy()
        for metric in metrics:
            out[f"n_{metric}"] = counts[metric]
        worst, seeds = worst_over_seeds(
            data.records, dataset, condition, entries, metrics, direction, attack=attack, epsilon=epsilon
        )
        if (seeds.to_numpy() > 1).any():
            for metric in metrics:
                out[f"worst_{metric}"] = worst[metric].where(seeds[metric] > 1)
                out[f"seeds_{metric}"] = seeds[metric]
        if attack != NO_ATTACK:
            out.insert(0, "attack_mode", [_mode_of(data.records, e) for e in out.index])
        path = paths[(dataset, condition, attack, epsilon)]
        atomic_write(path, out.to_csv(float_format="%.6g", lineterminator="\n"))
        written.append(path)
    for old in sorted(set((run_dir / "tables").glob("*.csv")) - set(written)):  # of an earlier matrix in this folder
        remove_file(old)
    return written


def _mode_of(records: pd.DataFrame, entry: str) -> str:
    modes = records.loc[records["entry"] == entry, "attack_mode"].dropna().unique().tolist()
    return ",".join(sorted(str(m) for m in modes))


def failures(records: pd.DataFrame) -> pd.DataFrame:
    """The failure rows, one per (cell, image, metric) (``skipped`` rows are not failures)."""
    cols = ["method", "dataset", "condition", "attack", "epsilon", "seed", "image", "metric", "error"]
    return records.loc[records["status"] == STATUS_FAILED, cols].reset_index(drop=True)


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
