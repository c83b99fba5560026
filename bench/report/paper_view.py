"""A paper table in the paper's own layout, side by side with what a run measured: published | measured | delta.

Given a :class:`~bench.report.papers.model.PaperTable` and a run's tidy records (:class:`bench.report.tables.RunData`),
:func:`paper_view` builds the table as printed -- rows = the paper's rows in order, column groups = its datasets /
conditions / attacks, columns = its metrics (group-major or metric-major as printed) -- and, per cell, the published
value, the measured mean and the difference ``delta = measured - published``.

Mapping (no guessing from labels):

* a **row** is measured by the run's method named by the row's ``card``; a row without a card, or whose card is not in
  the run, or whose card's weights / checkpoint are missing, stays in the table, marked, with the command that makes
  it measurable (``python -m bench assets fetch NAME``, ``python -m bench train RECIPE --data DATA`` -- marked "time:
  not estimated; add --dry-run to time it": ``bench train --dry-run`` builds the trainer on the training data and
  times two iterations, too costly to run while rendering a report -- or why it cannot be, e.g. "needs an
  adapter");
* a **group** is measured by the records of ``(bench_dataset, bench_condition, attack, bench_epsilon)``
  (:class:`~bench.report.papers.model.Group`); ``dataset_map`` renames datasets (the CPU default shows CertSR's
  DIV2K-val layout on its embedded crops); an ``Avg`` group is the mean of the measured groups it averages;
* a **metric** is measured by the run metric that computes what the paper states: ``<metric>_y`` for a Y-channel
  metric, ``lpips_<backbone>`` (AlexNet when unstated), else the metric itself (:func:`run_metric`).

Measured value: the mean over images (and seeds) of the ``ok`` records; for attacked groups the direct attack
(white-box / EOT), not a transfer variant.

Tolerances (:data:`TOLERANCES`, absolute, per metric family): PSNR 0.3 dB, SSIM 0.02, LPIPS 0.02, NIQE 0.3,
BRISQUE 2.0, PIQE 2.0. A delta within the tolerance is coloured green, beyond it red (``class="within"`` /
``"beyond"``); the sign says which way (``+`` = measured higher). Printed precision: the paper's ``decimals``.

Outputs: :func:`render_html` (a fragment for the report's "Paper tables" section), :func:`to_csv` (one line per row x
column: published, measured, delta, within) and :func:`to_latex` (``booktabs``, measured values in the paper's layout
with the published value in parentheses), written by :func:`write_paper_tables` to ``<run>/paper_tables/``.

Example::

    data = load_run("reports/certsr-t1")
    view = paper_view(load_table("certsr-t1"), data)
    html = render_html(view)
"""

from __future__ import annotations

import csv
import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.atomic import atomic_write
from bench.report.papers import PaperTable, load_table, table_ids
from bench.report.papers.model import Group, Metric, Row
from bench.results.schema import NO_ATTACK, STATUS_OK

logger = logging.getLogger(__name__)

#: Absolute tolerance of |measured - published| per metric family (see the module docstring).
TOLERANCES: Mapping[str, float] = {"psnr": 0.3, "ssim": 0.02, "lpips": 0.02, "niqe": 0.3, "brisque": 2.0, "piqe": 2.0}
#: The label of the CPU default's paper views: its numbers are not the papers' data.
EMBEDDED_LABEL = "embedded crops, not DIV2K-val"
STATUS_TEXT = {
    "needs_adapter": "needs an adapter (new architecture)",
    "no_weights": "no public weights and no recipe",
    "unavailable": "challenge entry; the model was never released",
    "not_measurable": "not measurable as one method",
}


def tolerance(metric: Metric) -> float | None:
    """The tolerance of a table metric (by its harness metric or id), ``None`` when none is stated."""
    name = (metric.bench_metric or metric.id).lower()
    for family, tol in TOLERANCES.items():
        if name.startswith(family):
            return tol
    return None


def run_metric(metric: Metric, available: Sequence[str]) -> str | None:
    """The run's metric that measures a table metric as the paper states it (see the module docstring), or None."""
    bench = metric.bench_metric
    if bench is None:
        candidates = [metric.id]
    elif bench.startswith("lpips"):
        backbone = metric.spec.backbone
        candidates = [f"lpips_{backbone}"] if backbone else ["lpips_alex", "lpips_vgg"]
    elif metric.spec.space == "Y":
        candidates = [f"{bench}_y"]
    else:
        candidates = [bench]
    return next((c for c in candidates if c in available), None)


@dataclass
class ViewCell:
    """One (row, column): published, measured (mean over ``n`` records), delta and whether within the tolerance."""

    published: float | None
    measured: float | None = None
    n: int = 0
    decimals: int = 2
    tolerance: float | None = None

    @property
    def delta(self) -> float | None:
        if self.published is None or self.measured is None:
            return None
        return self.measured - self.published

    @property
    def within(self) -> bool | None:
        d = self.delta
        if d is None or self.tolerance is None:
            return None
        return abs(d) <= self.tolerance + 1e-12

    def fmt(self, value: float | None, signed: bool = False) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return f"{value:+.{self.decimals}f}" if signed else f"{value:.{self.decimals}f}"


@dataclass
class ViewRow:
    """A printed row (``paper`` True) or a run method the table does not print (``paper`` False)."""

    label: str
    card: str | None
    method: str | None  # the run's method that measures it (None: not measured)
    cells: list[ViewCell]
    marker: str = ""  # why it is not measured
    command: str = ""  # what makes it measurable
    note: str = ""
    paper: bool = True


@dataclass
class ViewGroup:
    """A column group as printed, and where the run measured it."""

    id: str
    label: str
    measured_on: str
    note: str = ""


@dataclass
class PaperView:
    """A table in its paper's layout with the run's numbers (see the module docstring)."""

    table: PaperTable
    run: str
    label: str
    groups: list[ViewGroup]
    metric_used: dict[str, str | None]
    rows: list[ViewRow]
    notes: tuple[str, ...]
    missing_groups: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [(c.group, c.metric) for c in self.table.columns]

    def cell(self, row: str, group: str, metric: str) -> ViewCell:
        """The cell of a row (label, id or card) and a (group, metric) column."""
        i = self.columns.index((group, metric))
        for r in self.rows:
            if row in (r.label, r.card, r.method):
                return r.cells[i]
        for prow, r in zip(self.table.rows, self.rows, strict=False):
            if row == prow.id:
                return r.cells[i]
        raise KeyError(f"no row {row!r} in the view of {self.table.id}")


# ------------------------------------------------------------------------------------------------------- building
def _measured(records: Any, dataset: str, group: Group, method: str, metric: str) -> tuple[float | None, int]:
    from bench.report.tables import select

    attack = group.attack or NO_ATTACK
    epsilon = group.bench_epsilon if group.bench_epsilon is not None else group.epsilon
    sel = select(records, dataset, group.bench_condition or "clean", attack, epsilon)
    sel = sel[(sel["method"] == method) & (sel["metric"] == metric) & (sel["status"] == STATUS_OK)]
    if attack != NO_ATTACK and not sel.empty:
        direct = sel[sel["attack_mode"] != "transfer"]
        sel = direct if not direct.empty else sel
    values = sel["value"].dropna()
    if values.empty:
        return None, 0
    return float(values.mean()), int(values.size)


def _row_marker(row: Row, methods: Sequence[str], readiness: Mapping[str, Any]) -> tuple[str, str]:
    """(why the row is not measured, the command that makes it measurable) -- empty strings when it is measured."""
    if row.card is None:
        return STATUS_TEXT.get(row.status, row.status), ""
    req = readiness.get(row.card)
    if req is not None and not req.ready:
        return req.state, req.command or ""
    if row.card not in methods:
        return "card not in this matrix", f"add {row.card} to the matrix's methods"
    return "", ""


def paper_view(
    table: PaperTable,
    data: Any,
    *,
    dataset_map: Mapping[str, str] | None = None,
    label: str = "",
    extra_methods: bool = False,
    readiness: Mapping[str, Any] | None = None,
) -> PaperView:
    """Build the view of ``table`` from a run (``RunData``).

    Args:
        dataset_map: manifest dataset name -> the run's dataset (e.g. ``{"div2k-val": "embedded-eval"}``).
        label: what the measured numbers are, shown in the caption (``EMBEDDED_LABEL`` on the CPU default).
        extra_methods: also list the run's methods that map to no printed row (measured only, no published value).
        readiness: card -> :class:`bench.runner.reproduce.Requirement` (default: checked here for the rows' cards).
    """
    records = data.records
    methods = data.order("method")
    available = data.order("metric")
    dataset_map = dict(dataset_map or {})
    if readiness is None:
        from bench.runner.reproduce import card_requirement

        readiness = {c: card_requirement(c) for c in table.cards() if c not in methods}
    metric_used = {m.id: run_metric(m, available) for m in table.metrics}
    groups, missing_groups = [], []
    run_datasets = set(data.order("dataset"))
    run_attacks = set(records["attack"].dropna().unique().tolist()) if "attack" in records else set()
    for g in table.groups:
        ds = dataset_map.get(g.bench_dataset or "", g.bench_dataset)
        if g.aggregate:
            where = "mean of the measured groups"
        elif ds is None:
            where = "not measured by any matrix"
        else:
            eps = g.bench_epsilon if g.bench_epsilon is not None else g.epsilon
            where = f"{ds} / {g.bench_condition}" + (f" / {g.attack}" if g.attack else "")
            where += f" eps={eps * 255:.4g}/255" if eps else ""
            if ds not in run_datasets:
                missing_groups.append(g.id)
                where += " (dataset not in this run)"
            elif g.attack and g.attack not in run_attacks:
                missing_groups.append(g.id)
                where += " (attack not in this matrix)"
        groups.append(ViewGroup(g.id, g.label, where + (f" ({g.bench_note})" if g.bench_note else ""), g.note))
    by_group = {g.id: g for g in table.groups}

    def cells_for(method: str | None, published: Sequence[float | None]) -> list[ViewCell]:
        cells = []
        for c, pub in zip(table.columns, published, strict=True):
            m = table.metric(c.metric)
            cell = ViewCell(pub, decimals=m.decimals, tolerance=tolerance(m))
            g = by_group[c.group]
            ds = dataset_map.get(g.bench_dataset or "", g.bench_dataset)
            if method is not None and metric_used[c.metric] and ds is not None and not g.aggregate:
                cell.measured, cell.n = _measured(records, ds, g, method, metric_used[c.metric])
            cells.append(cell)
        for i, c in enumerate(table.columns):  # Avg columns: the mean of the groups' measured values of the metric
            if by_group[c.group].aggregate:
                parts = [
                    cells[j].measured
                    for j, o in enumerate(table.columns)
                    if o.metric == c.metric and not by_group[o.group].aggregate
                ]
                if parts and all(p is not None for p in parts):
                    cells[i].measured, cells[i].n = (
                        sum(parts) / len(parts),
                        sum(cells[j].n for j, o in enumerate(table.columns) if o.metric == c.metric),
                    )
        return cells

    rows = []
    for row in table.rows:
        marker, command = _row_marker(row, methods, readiness)
        method = row.card if not marker else None
        view_row = ViewRow(row.label, row.card, method, cells_for(method, row.values), marker, command, row.note)
        if method is not None and not any(c.measured is not None for c in view_row.cells):
            view_row.marker = "no measured record (failed or not run; see Failures)"
        rows.append(view_row)
    if extra_methods:
        mapped = {r.card for r in table.rows}
        for method in methods:
            if method not in mapped:
                rows.append(
                    ViewRow(method, method, method, cells_for(method, [None] * len(table.columns)), paper=False,
                            note="measured only: the paper prints no row for this card")
                )  # fmt: skip
                if not any(c.measured is not None for c in rows[-1].cells):
                    rows[-1].marker = "no measured record (failed or not run; see Failures)"
    return PaperView(table, data.name, label, groups, metric_used, rows, table.notes, missing_groups)


def views_for_run(data: Any) -> list[PaperView]:
    """The paper views a run's report shows: its table(s) when the run's matrix is a paper table's (``certsr-t1``,
    ``certsr-t1-auto`` ...); for a run on the embedded photos (the CPU default) CertSR Tables 1 and 2 on its numbers,
    labelled :data:`EMBEDDED_LABEL`; otherwise none."""
    matrix = data.info.matrix
    name = str(matrix.name or "").removesuffix("-auto")
    ids = table_ids()
    if name in ids:
        tables = [name, "ntire20-t1-val"] if name == "ntire20-t1" else [name]
        return [paper_view(load_table(t), data) for t in tables]
    datasets = matrix.names("dataset")
    if "embedded-eval" in datasets:
        mapping = {"div2k-val": "embedded-eval"}
        return [
            paper_view(load_table(t), data, dataset_map=mapping, label=EMBEDDED_LABEL, extra_methods=True)
            for t in ("certsr-t1", "certsr-t2")
        ]
    return []


# ------------------------------------------------------------------------------------------------------ rendering
def _header_runs(keys: Sequence[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for k in keys:
        if runs and runs[-1][0] == k:
            runs[-1] = (k, runs[-1][1] + 1)
        else:
            runs.append((k, 1))
    return runs


def _names(view: PaperView) -> tuple[dict[str, str], dict[str, str]]:
    groups = {g.id: g.label for g in view.table.groups}
    metrics = {m.id: m.label for m in view.table.metrics}
    return groups, metrics


def _header_levels(view: PaperView) -> tuple[list[tuple[str, int]], list[str]]:
    """(top header runs with spans, second header labels), both per printed column."""
    groups, metrics = _names(view)
    if view.table.layout == "group-major":
        top = [(groups[g], n) for g, n in _header_runs([c[0] for c in view.columns])]
        second = [metrics[m] for _, m in view.columns]
    else:
        top = [(metrics[m], n) for m, n in _header_runs([c[1] for c in view.columns])]
        second = [groups[g] for g, _ in view.columns]
    return top, second


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def render_html(view: PaperView) -> str:
    """An HTML fragment: caption, the table (published | measured | delta per column), the notes beside it."""
    t = view.table
    top, second = _header_levels(view)
    caption = f"{_esc(t.title)} — {_esc(t.source)}"
    if view.label:
        caption += f' <span class="paper-label">measured on {_esc(view.label)}</span>'
    out = [f'<div class="paper-table" id="paper-{_esc(t.id)}" data-table="{_esc(t.id)}">']
    out.append(f"<h3>{caption}</h3>")
    out.append('<div class="paper-wrap"><div class="paper-main"><table class="paper">')
    if t.layout == "group-major":  # say which groups the run does not measure
        gids = [g for g, _ in _header_runs([c[0] for c in view.columns])]
        miss = '<br><span class="paper-missing">not in this matrix</span>'
        heads = "".join(
            f"<th colspan={n}>{_esc(k)}{miss if gid in view.missing_groups else ''}</th>"
            for (k, n), gid in zip(top, gids, strict=True)
        )
    else:
        heads = "".join(f"<th colspan={n}>{_esc(k)}</th>" for k, n in top)
    out.append(f'<thead><tr><th rowspan="2">Method</th>{heads}<th rowspan="2">Status / command</th></tr>')
    out.append("<tr>" + "".join(f"<th>{_esc(s)}</th>" for s in second) + "</tr>")
    out.append("</thead><tbody>")
    commands: list[tuple[str, str]] = []
    for row in view.rows:
        cls = "measured" if row.method and not row.marker else "unmeasured"
        cls += "" if row.paper else " extra"
        cells = []
        for cell in row.cells:
            within = cell.within
            dclass = "" if within is None else ("within" if within else "beyond")
            cells.append(
                f'<td class="cell {dclass}"><span class="meas">{cell.fmt(cell.measured)}</span>'
                f'<span class="pub">{cell.fmt(cell.published)}</span>'
                f'<span class="delta {dclass}">{cell.fmt(cell.delta, signed=True)}</span></td>'
            )
        status = _esc(row.marker) if row.marker else ("measured" if row.paper else "measured only")
        if row.command:
            commands.append((row.label, row.command))
            status += f" <sup>[{len(commands)}]</sup>"
        label = _esc(row.label) + (f'<br><span class="muted card">{_esc(row.card)}</span>' if row.card else "")
        out.append(
            f'<tr class="{cls}"><th class="row">{label}</th>{"".join(cells)}<td class="status">{status}</td></tr>'
        )
    out.append("</tbody></table></div>")
    out.append('<aside class="paper-notes"><h4>Known inconsistencies of this table</h4>')
    if view.notes:
        out.append("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in view.notes) + "</ul>")
    else:
        out.append('<p class="muted">none noted</p>')
    out.append("</aside></div>")
    if commands:
        out.append('<ol class="paper-commands">')
        out += [f"<li>{_esc(label)}: <code>{_esc(cmd)}</code></li>" for label, cmd in commands]
        out.append("</ol>")
    tol = ", ".join(
        f"{m.label} ±{tolerance(m)}" for m in t.metrics if tolerance(m) is not None and view.metric_used.get(m.id)
    )
    used = ", ".join(f"{m.label} = {view.metric_used.get(m.id) or 'not measured'}" for m in t.metrics)
    out.append(
        f'<p class="muted">Each cell, top to bottom: <b>measured</b>, published, Δ = measured − published; '
        f'<span class="within">green</span> within the tolerance '
        f'({_esc(tol or "none stated")}), <span class="beyond">red</span> beyond. Metrics: {_esc(used)}. Column groups '
        "measured on: " + "; ".join(f"{_esc(g.label)} = {_esc(g.measured_on)}" for g in view.groups) + ".</p>"
    )
    out.append("</div>")
    return "\n".join(out)


def to_csv(view: PaperView) -> str:
    """One line per (row, column): table, row, card, group, metric, published, measured, delta, within, n, status."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "row", "card", "group", "metric", "published", "measured", "delta", "within", "n", "status"])
    for row in view.rows:
        for (g, m), cell in zip(view.columns, row.cells, strict=True):
            w.writerow([
                view.table.id, row.label, row.card or "", g, m,
                "" if cell.published is None else cell.published,
                "" if cell.measured is None else round(cell.measured, 6),
                "" if cell.delta is None else round(cell.delta, 6),
                "" if cell.within is None else cell.within,
                cell.n,
                row.marker or ("measured" if row.paper else "measured only"),
            ])  # fmt: skip
    return buf.getvalue()


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$", "×": r"$\times$", "Δ": r"$\Delta$"}  # fmt: skip


def _tex(text: Any) -> str:
    """``text`` with LaTeX's special characters escaped (one character at a time, so nothing is escaped twice)."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(view: PaperView) -> str:
    """A ``booktabs`` table in the paper's layout: measured values, the published one in parentheses; unmeasured
    cells give the published value alone, marked with a dagger, and the notes follow as a comment block."""
    top, second = _header_levels(view)
    n = len(second)
    lines = [
        f"% {view.table.id}: {view.table.title} ({view.table.source}); run {view.run}"
        + (f"; measured on {view.label}" if view.label else ""),
        "% cells: measured (published); \\dag: not measured, published value only; rows without a published value"
        " are the run's other methods. Requires \\usepackage{booktabs}.",
        r"\begin{tabular}{l" + "c" * n + "}",
        r"\toprule",
        "Method & " + " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{_tex(name)}}}" for name, k in top) + r" \\",
    ]
    col, rules = 2, []
    for _, k in top:
        rules.append(rf"\cmidrule(lr){{{col}-{col + k - 1}}}")
        col += k
    lines.append(" ".join(rules))
    lines.append(" & " + " & ".join(_tex(s) for s in second) + r" \\")
    lines.append(r"\midrule")
    for row in view.rows:
        cells = []
        for cell in row.cells:
            if cell.measured is not None and cell.published is None:
                cells.append(cell.fmt(cell.measured))
            elif cell.measured is not None:
                cells.append(f"{cell.fmt(cell.measured)} ({cell.fmt(cell.published)})")
            else:
                cells.append(rf"{cell.fmt(cell.published)}\dag" if cell.published is not None else "--")
        lines.append(_tex(row.label) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in view.notes:
        lines.append("% note: " + " ".join(note.split()))
    return "\n".join(lines) + "\n"


def write_paper_tables(run_dir: str | Path, views: Sequence[PaperView]) -> list[Path]:
    """Write ``<run>/paper_tables/<table>.csv`` and ``.tex`` of each view, each atomically (:mod:`bench.atomic`:
    :class:`~bench.errors.OutputError` naming the file when it cannot be written); return the paths."""
    out_dir = Path(run_dir) / "paper_tables"
    written = []
    for view in views:
        for suffix, text in ((".csv", to_csv(view)), (".tex", to_latex(view))):
            written.append(atomic_write(out_dir / f"{view.table.id}{suffix}", text))
    return written
