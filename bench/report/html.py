"""The HTML leaderboard: a packaged Jinja2 template rendered with autoescape into ``index.html``.

``write_report(run_dir)`` reads the store (``run.json``, ``cells/``), writes ``results.csv``, ``tables/*.csv``,
``figures/*.png`` and ``index.html``, and returns the path of ``index.html``. Nothing is loaded from the network: CSS
and the small script (sortable, filterable tables; the gallery's A/B viewer) are inline; the gallery shows compressed
thumbnails and links the full-size PNGs and curve figures beside ``index.html`` (``inline=True``: every image
embedded as a ``data:`` URI, one self-contained file). It opens with the overview (:mod:`bench.report.overview`: one
ranked table, methods as rows, clean / per threat family / mean / worst / drop), then the run's provenance, a note
when crops were used, one leaderboard per (dataset, condition, attack, budget) with the best and second-best value of
each column marked in the direction of the metric spec's ``higher_is_better`` (attacked boards name the mode that made
each row -- white-box, eot, transfer -- and, for entries run with several seeds, the worst per-seed mean under the
mean; a metric skipped by design shows its reason instead, "skipped: no ground truth"), each column's spec line
(header tooltip and footnote), the robustness curves (metric vs budget, metric vs severity;
:mod:`bench.report.curves`), the sigma chosen for median smoothing with the grid's validation scores and the
certification settings, the failures, the gallery (for attacks: the adversarial input and its output per method)
and, apart, the published tables of ``bench/report/papers/*.yaml`` with their caption.

Example::

    index = write_report("reports/smoke")   # -> reports/smoke/index.html
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2

from bench.atomic import atomic_write, retry_fix
from bench.errors import OutputError
from bench.report.board import board_context
from bench.report.board import template_globals as board_globals
from bench.report.nr_board import nr_boards
from bench.report.tables import (
    NO_ATTACK,
    Entry,
    RunData,
    failures,
    format_value,
    leaderboard,
    load_published,
    load_run,
    published_marks,
    rank_marks,
    select,
    skip_reasons,
    worst_over_seeds,
    write_tables,
)

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "index.html.j2"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(board_globals())  # leaderboard hook: board ids (bench/report/board.py)
    return env


def _describe(spec: dict[str, Any]) -> str:
    from bench.metrics.base import MetricSpec

    fields = {k: spec[k] for k in MetricSpec.__dataclass_fields__ if k in spec}
    return MetricSpec(**fields).describe()


def _certified(spec: dict[str, Any] | None) -> bool:
    return bool(((spec or {}).get("extra") or {}).get("certified"))


def _threshold(spec: dict[str, Any] | None) -> float | None:
    """A pass threshold the metric's spec carries (``extra.threshold_db``: the NTIRE 2021 LR-PSNR rule, 45 dB)."""
    value = ((spec or {}).get("extra") or {}).get("threshold_db")
    return None if value is None else float(value)


def _eps_text(eps: float) -> str:
    from bench.runner.matrix import format_epsilon

    return format_epsilon(float(eps))


_EMPTY_CELL = {"text": "—", "worst": "", "seeds": 0, "mark": "", "n": 0, "partial": False, "below": False}


def _missing(data: RunData, dataset: str, condition: str, attack: str, epsilon: float) -> dict[str, str]:
    """Methods whose cell of this board failed as a whole (a missing checkpoint, say) -> the command that fixes it.

    Their rows stay on the leaderboard, marked, with that command."""
    out = {}
    for payload in data.payloads:
        if payload.ok or not payload.fix:
            continue
        if payload.labels.same_scenario(dataset, condition, attack, epsilon):
            out[payload.labels.method] = payload.fix
    return out


def _leaderboards(data: RunData) -> list[dict[str, Any]]:
    specs = data.specs()
    metrics = data.order("metric")
    direction = {m: bool(specs[m]["higher_is_better"]) for m in metrics if m in specs}
    boards = []
    parts = data.entry_parts()
    for dataset in data.order("dataset"):
        for condition, attack, epsilon in data.scenarios(dataset):
            entries = data.entries(dataset, condition, attack, epsilon)
            means, counts = leaderboard(
                data.records, dataset, condition, entries, metrics, attack=attack, epsilon=epsilon
            )
            if counts.to_numpy().sum() == 0 and means.isna().all().all():
                sel = data.records[(data.records["dataset"] == dataset) & (data.records["condition"] == condition)]
                if sel[sel["attack"] == attack].empty:
                    continue
            worst, seeds = worst_over_seeds(
                data.records, dataset, condition, entries, metrics, direction, attack=attack, epsilon=epsilon
            )
            skipped = skip_reasons(select(data.records, dataset, condition, attack, epsilon))
            shown = [m for m in metrics if not (_certified(specs.get(m)) and counts[m].sum() == 0)]
            marks = rank_marks(means[shown], direction)
            expected = {m: int(counts[m].max()) if len(counts) else 0 for m in shown}
            rows = []
            for entry in entries:
                cells = []
                for metric in shown:
                    value, n = means.at[entry, metric], int(counts.at[entry, metric])
                    several = int(seeds.at[entry, metric]) > 1
                    optional = _certified(specs.get(metric)) and n == 0
                    threshold = _threshold(specs.get(metric))
                    reason = skipped.get((entry, metric)) if n == 0 else None
                    cells.append(
                        {
                            "text": reason or format_value(value),
                            "worst": format_value(worst.at[entry, metric]) if several else "",
                            "seeds": int(seeds.at[entry, metric]),
                            "mark": "skipped" if reason else marks.get((entry, metric), ""),
                            "n": n,
                            "partial": not optional and not reason and n < expected[metric],
                            "below": threshold is not None and value == value and value < threshold,
                        }
                    )
                part = parts.get(entry, Entry(entry))
                rows.append(
                    {
                        "method": entry,
                        "mode": part.mode_text,
                        "title": data.info.method_title(part.method),
                        "cells": cells,
                        "missing": "",
                        "_method": part.method,
                    }
                )
            missing = _missing(data, dataset, condition, attack, epsilon)
            present = set()
            for row in rows:
                present.add(row["_method"])
                row["missing"] = missing.get(row.pop("_method"), "")
            rows += [
                {
                    "method": m,
                    "mode": "",
                    "title": data.info.method_title(m),
                    "cells": [_EMPTY_CELL] * len(shown),
                    "missing": f,
                }
                for m, f in missing.items()
                if m not in present
            ]
            cond = data.info.matrix.condition(condition)
            boards.append(
                {
                    "dataset": dataset,
                    "condition": condition,
                    "attack": attack if attack != NO_ATTACK else "",
                    "epsilon": _eps_text(epsilon) if attack != NO_ATTACK else "",
                    "corruption": cond.get("corruption", ""),
                    "params": cond.get("params", {}),
                    "columns": [
                        {
                            "metric": m,
                            "spec": _describe(specs[m]) if m in specs else m,
                            "arrow": ("↑" if direction[m] else "↓") if m in direction else "",
                            "threshold": _threshold(specs.get(m)),
                        }
                        for m in shown
                    ],
                    "rows": rows,
                    "images": max(expected.values(), default=0),
                    "any_worst": any(c["worst"] for r in rows for c in r["cells"]),
                }
            )
    return boards


def _smoothing(data: RunData) -> list[dict[str, Any]]:
    """One row per sigma choice (or fixed sigma) of the median-smoothing methods of the run."""
    seen: dict[tuple, dict[str, Any]] = {}
    for payload in data.payloads:
        sm = payload.smoothing_summary()
        if sm is None:
            continue
        labels = payload.labels
        attack = labels.attack
        label = f"{attack} eps={_eps_text(labels.epsilon or 0.0)}" if attack else "none"
        if labels.variant not in (None, "direct"):
            label += f" ({labels.variant})"
        key = (labels.method, labels.dataset, labels.condition, label)
        if key in seen:
            continue
        chosen_key = "none" if sm.sigma is None else repr(sm.sigma)
        seen[key] = {
            "method": labels.method,
            "dataset": labels.dataset,
            "condition": labels.condition,
            "attack": label,
            "sigma": "none" if sm.sigma is None else f"{sm.sigma:g}",
            "auto": sm.auto,
            "paper_sigma": sm.paper_sigma,
            "metric": sm.metric,
            "scores": [{"sigma": k, "score": format_value(v), "chosen": k == chosen_key} for k, v in sm.scores.items()],
            "images": ", ".join(sm.images),
            "validation": sm.validation,
            "n": sm.n,
            "certify": None if sm.certify is None else {"n_samples": sm.certify[0], "alpha": sm.certify[1]},
        }
    return list(seen.values())


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


def _paper_tables(data: RunData) -> list[str]:
    """The HTML fragments of the run's paper views (none when the run maps to no paper table)."""
    from bench.report.paper_view import render_html, views_for_run

    return [render_html(v) for v in views_for_run(data)]


def precision_line(data: RunData) -> str:
    """One line for the provenance section: the requested ``precision:`` mode and, per method, the precision its
    rows were computed in (with the guard's PSNR delta or its fallback reason), then the transfer attacks' surrogates
    the same way; rows older than the precision columns show as "not recorded"."""
    requested = str(data.info.matrix.raw.get("precision") or "auto")
    records = data.records
    if "precision" not in records or records.empty:
        return f"requested {requested}; used: not recorded"
    parts = []
    for method, rows in records.groupby("method", sort=False):
        used = sorted({str(p) for p in rows["precision"].dropna()}) or ["not recorded"]
        text = f"{method}: {'/'.join(used)}"
        deltas = rows["precision_delta_db"].dropna() if "precision_delta_db" in rows else []
        if len(deltas):
            text += f" (Δ {float(deltas.iloc[0]):+.3f} dB)"
        reasons = rows["precision_fallback"].dropna() if "precision_fallback" in rows else []
        if len(reasons):
            text += f" (fell back: {reasons.iloc[0]})"
        parts.append(text)
    line = f"requested {requested}; used: " + "; ".join(parts)
    if "surrogate_precision" in records and records["surrogate_precision"].notna().any():
        surrogates = []
        rows = records[records["surrogate_precision"].notna()]
        for surrogate, group in rows.groupby("attack_surrogate", sort=False):
            text = f"{surrogate}: {'/'.join(sorted({str(p) for p in group['surrogate_precision']}))}"
            deltas = group["surrogate_precision_delta_db"].dropna()
            if len(deltas):
                text += f" (Δ {float(deltas.iloc[0]):+.3f} dB)"
            reasons = group["surrogate_precision_fallback"].dropna()
            if len(reasons):
                text += f" (fell back: {reasons.iloc[0]})"
            surrogates.append(text)
        line += "; transfer surrogates: " + "; ".join(surrogates)
    return line


def render_report(
    data: RunData, curves: list[dict[str, Any]] | None = None, *, inline: bool = False, primary: str | None = None
) -> str:
    """The HTML of a run's report (a string); ``curves`` as :func:`bench.report.curves.write_curves` returns them
    (drawn here when not given). ``inline``: embed every image (a single-file report) instead of linking the
    full-size files beside ``index.html``; ``primary``: the overview's ranking metric (default: the matrix's first)."""
    if curves is None:
        from bench.report.curves import attack_curves, severity_curves

        curves = attack_curves(data) + severity_curves(data)
    info = data.info
    matrix = info.matrix
    crops = [d for d in matrix.datasets if d.get("crop")]
    specs = data.specs()
    fails = failures(data.records)
    context = {
        "run": data.name,
        "info": info,
        "matrix": matrix,
        "environment": info.environment,
        "crops": crops,
        "leaderboards": _leaderboards(data),
        "footnotes": [_describe(specs[m]) for m in data.order("metric") if m in specs],
        "failures": fails.fillna("").to_dict("records"),
        "failed_cells": [p.as_dict() for p in data.payloads if not p.ok and p.fix],
        "missing": data.missing,
        "stale": data.stale,
        "smoothing": _smoothing(data),
        "attacks": list(matrix.attacks),
        "attack_images": matrix.attack_images,
        "published": _published(),
        "methods": info.methods,
        "precision": precision_line(data),
    }
    # --- paper tables hook: the run's numbers in the papers' layouts (bench/report/paper_view.py) ---
    context["paper_tables"] = _paper_tables(data)
    # --- end paper tables hook ---
    # --- leaderboard hook: overview, gallery comparison, sortable tables, linked images (bench/report/board.py) ---
    context.update(board_context(data, curves, inline=inline, primary=primary))  # also "curves": linked or inlined
    # --- end leaderboard hook ---
    context["nr_boards"] = nr_boards(data)  # no-reference boards (bench/report/nr_board.py)
    return _environment().get_template(TEMPLATE).render(**context)


def write_report(run_dir: str | Path, *, inline: bool = False, primary: str | None = None) -> Path:
    """Write ``results.csv``, ``tables/*.csv``, ``paper_tables/``, ``figures/`` and ``index.html`` of a run directory;
    return ``index.html``.

    ``inline`` and ``primary`` as in :func:`render_report`. Every file is written atomically (:mod:`bench.atomic`): a
    full disk or an unwritable folder raises :class:`~bench.errors.OutputError` naming the file, with the fix
    (free space or make the folder writable, then ``python -m bench report RUN`` again), leaves no partial file and
    never touches the stored cells."""
    from bench.report.curves import write_curves

    data = load_run(run_dir)
    try:
        write_tables(data)
        from bench.report.paper_view import views_for_run, write_paper_tables

        write_paper_tables(data.run_dir, views_for_run(data))  # <run>/paper_tables/<table>.csv and .tex
        curves = write_curves(data)
        index = atomic_write(data.run_dir / "index.html", render_report(data, curves, inline=inline, primary=primary))
    except OutputError as exc:  # no space, no permission: the cells are untouched; the fix is to render again
        retry_fix(exc, f"python -m bench report {data.run_dir}")
        raise
    logger.info("report written to %s", index)
    return index
