"""Reproducing one paper table: what its matrix needs, what is missing, how much it costs, and running it.

A paper table (:mod:`bench.report.papers`, ``tables/<id>.yaml``) has a matrix of the same name
(``bench/matrices/<id>.yaml``; ``<id>-auto`` is the variant whose CertSR sigma is chosen per column). Before running
it, :func:`plan_table` checks three kinds of inputs and says how to get each missing one:

* **datasets**: the manifest status of every evaluated dataset (and of the sigma-selection split when a column's
  sigma is ``auto``) -- ``python -m bench datasets fetch NAME`` (with ``--from PATH`` for manual downloads);
* **weights**: the cards' checkpoints that are assets of the store -- ``python -m bench assets fetch NAME`` (a
  wrapper card's include its base's: the card's own rule, :meth:`bench.methods.cards.MethodCard.missing_checkpoints`);
* **checkpoints**: the cards' checkpoints produced by a training recipe -- ``python -m bench train RECIPE --data
  DATA``; their training time is not estimated here (``bench train RECIPE --dry-run`` times two iterations of it,
  which needs the training data and minutes of compute per recipe).

Time (``estimate=True``, what ``--dry-run`` asks for): the same cost plan as ``python -m bench run --dry-run``
(:func:`bench.runner.cost.plan_matrix`: a short probe per kind of cell on the current device, scaled by the images'
pixels) over the cells that can run now -- the ready datasets and the cards whose weights are there; the rest is
"time: not estimated" with the reason.

Work counted (:class:`Plan`): cells of the matrix, and SR-network passes (forwards / backwards, summed over images)
by the one counting rule of ``bench run --dry-run`` (:func:`bench.runner.passes.count_cells`: inference, smoothing
copies and certificate samples, SR-space samples, attack steps x restarts x EOT draws, transfer surrogates, sigma
selection), for every cell, the unmeasurable ones included. Image counts come from the dataset itself when it is ready
(what the run will read, as ``bench run --dry-run`` counts them), else from its manifest (``images`` at the matrix's
scale); ``attack_images`` caps attacked cells; a dataset without ground truth (manifest ``ground_truth: false``) has
no attacked images. For a matrix whose datasets and cards are all ready, the counts equal ``bench run --dry-run``'s.

Example::

    plan = plan_table("certsr-t1")
    print(format_plan(plan))            # what `python -m bench reproduce certsr-t1 --dry-run` prints
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report.papers import PaperTable, load_table, table_ids

logger = logging.getLogger(__name__)

NOT_ESTIMATED = "time: not estimated"


@dataclass(frozen=True)
class Requirement:
    """One input of a table's run: a dataset, a card's weights or a trained checkpoint.

    Attributes:
        kind: ``dataset``, ``weights`` (an asset), ``checkpoint`` (a training recipe's output) or ``card`` (a card
            file that does not load).
        name: the dataset, the card.
        ready: whether it is there.
        state: what the check found (``ready``, ``missing``, ``partial``, ``modified``, ``no card`` ...).
        command: the command that makes it ready (``None`` when ready or when nothing can).
        fetchable: whether :func:`reproduce` can get it without a training run or a manual download.
    """

    kind: str
    name: str
    ready: bool
    state: str
    command: str | None = None
    fetchable: bool = False
    asset: str | None = None
    recipe: str | None = None
    train_data: str | None = None


@dataclass
class Plan:
    """What reproducing a table needs and costs (see the module docstring)."""

    table: PaperTable
    matrix_name: str
    matrix: Any
    requirements: list[Requirement] = field(default_factory=list)
    cells: int = 0
    measurable_cells: int = 0
    images: dict[str, int | None] = field(default_factory=dict)
    forwards: int = 0
    backwards: int = 0
    rows_measurable: int = 0
    rows_total: int = 0
    cost: Any = None  # the cost plan (bench.runner.cost.CostPlan) of the cells that can run now, when estimated
    cost_note: str = "not asked for"  # why there is no cost plan

    @property
    def missing(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.ready]


def matrix_name_for(table_id: str, sigma: str = "published") -> str:
    """The packaged matrix of a table: ``<id>``, or ``<id>-auto`` for ``sigma="auto"`` (CertSR tables)."""
    from bench.runner.matrix import available_matrices

    base = "ntire20-t1" if table_id == "ntire20-t1-val" else table_id  # one matrix measures both NTIRE track-1 tables
    name = f"{base}-auto" if sigma == "auto" else base
    if name not in available_matrices():
        raise KeyError(f"no matrix {name!r} for table {table_id!r} (sigma {sigma}); tables: {', '.join(table_ids())}")
    return name


def card_requirement(name: str) -> Requirement:
    """Whether card ``name`` can be built offline, and the command that makes it so (fetch or train): the card's own
    rule, :meth:`bench.methods.cards.MethodCard.missing_checkpoints` (its base's checkpoints included), first
    missing piece first."""
    from bench.methods.cards import load_card

    try:
        card = load_card(name)
    except (KeyError, OSError, ValueError) as exc:
        return Requirement("card", name, False, "no card", f"write methods/{name}.yaml ({str(exc)[:80]})")
    missing = card.missing_checkpoints()
    if not missing:
        return Requirement("weights", name, True, "ready")
    m = missing[0]
    of_base = "" if m.card == name else f" (base {m.card})"
    if m.kind == "card":
        return Requirement("card", name, False, f"base card {m.ref} does not load", m.fix)
    if m.kind == "checkpoint" and m.recipe is not None:
        command = f"{m.fix}  (time: not estimated; add --dry-run to time it)"
        return Requirement("checkpoint", name, False, f"not trained (no checkpoint){of_base}", command,
                           recipe=m.recipe, train_data=m.train_data)  # fmt: skip
    if m.kind == "checkpoint":
        return Requirement("checkpoint", name, False, f"missing file {m.ref}{of_base}", m.fix)
    fetchable = m.fix.startswith("python -m bench assets fetch")  # not an asset name the manifest lacks
    return Requirement("weights", name, False, f"not fetched{of_base}", m.fix, fetchable, asset=m.ref)


def dataset_requirement(name: str) -> Requirement:
    """The manifest status of dataset ``name`` (registered non-manifest datasets are ready)."""
    from bench.data.store import DatasetStore

    store = DatasetStore()
    if name not in store.manifests:
        return Requirement("dataset", name, True, "registered (no manifest)")
    manifest = store.get(name)
    state = store.status(name).state
    command = None if state == "ready" else manifest.fetch_command() + (" --force" if state == "modified" else "")
    return Requirement("dataset", name, state == "ready", state, command, manifest.fetchable)


def _images(name: str, scale: int, ready: bool, entry: Any) -> int | None:
    """The images the run will read: the dataset's own list when it is ready (as ``bench run --dry-run``), else its
    manifest's count at ``scale``; ``None`` when neither is known."""
    from bench.data.store import DatasetStore

    if ready:
        try:
            from bench.data import DATASETS

            factory = DATASETS.get(name)
            return len(factory(**entry.factory_kwargs(factory, scale)).names())
        except (KeyError, OSError, ValueError, TypeError) as exc:
            logger.warning("dataset %s is ready but cannot be listed (%s); using its manifest's count", name, exc)
    store = DatasetStore()
    if name in store.manifests:
        counts = store.get(name).images or {}
        if scale in counts:
            return int(counts[scale])
    return None


def _ground_truth(name: str) -> bool:
    """Whether dataset ``name`` has HR images (its manifest's ``ground_truth``; registered datasets: yes)."""
    from bench.data.store import DatasetStore

    store = DatasetStore()
    return bool(store.get(name).ground_truth) if name in store.manifests else True


def plan_table(
    table_id: str,
    *,
    sigma: str = "published",
    overrides: Sequence[str] = (),
    estimate: bool = False,
    device: str = "auto",
) -> Plan:
    """Check the inputs of table ``table_id``'s matrix and count its work (see the module docstring); with
    ``estimate``, also probe the cost of the cells that can run now on ``device`` (:attr:`Plan.cost`)."""
    from bench.runner.matrix import load_matrix
    from bench.runner.passes import count_cells
    from bench.runner.stages.plan import plan as plan_cells

    table = load_table(table_id)
    name = matrix_name_for(table_id, sigma)
    matrix = load_matrix(name, overrides=overrides)
    out = Plan(table, name, matrix)
    seen: set[str] = set()
    for entry in matrix.datasets:
        if entry.name not in seen:
            seen.add(entry.name)
            out.requirements.append(dataset_requirement(entry.name))
    needs_selection = matrix.smoothing is not None and any(v == "auto" for _, v in matrix.smoothing.sigmas)
    if needs_selection and matrix.smoothing.validation.dataset not in seen:
        out.requirements.append(dataset_requirement(matrix.smoothing.validation.dataset))
    cards = {m: card_requirement(m) for m in matrix.methods}
    out.requirements += list(cards.values())
    ready_data = {r.name: r.ready for r in out.requirements if r.kind == "dataset"}
    for entry in matrix.datasets:
        out.images[entry.name] = _images(entry.name, matrix.scale, ready_data.get(entry.name, False), entry)
    the_plan = plan_cells(matrix)
    out.cells = len(the_plan.cells)
    truth = {entry.name: _ground_truth(entry.name) for entry in matrix.datasets}
    counts = count_cells(
        the_plan.cells,
        matrix,
        the_plan.provenances,
        lambda cell: out.images.get(cell.dataset.name),
        lambda cell: truth[cell.dataset.name],
    )
    for count in counts:
        out.forwards += count.total.all_forwards
        out.backwards += count.total.all_backwards
        if cards[count.cell.method].ready and ready_data.get(count.cell.dataset.name, False):
            out.measurable_cells += 1
    rows = [r for r in table.rows]
    out.rows_total = len(rows)
    out.rows_measurable = sum(1 for r in rows if r.card in cards and cards[r.card].ready)
    if estimate:
        _estimate(out, cards, ready_data, device)
    return out


def _estimate(plan: Plan, cards: Mapping[str, Requirement], ready_data: Mapping[str, bool], device: str) -> None:
    """The cost plan (as ``bench run --dry-run``) of the cells whose dataset and card are ready."""
    from bench.runner.cost import plan_matrix

    datasets = tuple(d for d in plan.matrix.datasets if ready_data.get(d.name, False))
    methods = [m for m in plan.matrix.methods if cards[m].ready]
    if not datasets or not methods:
        plan.cost_note = "no dataset of the matrix is ready" if not datasets else "no card of the matrix is ready"
        return
    matrix = plan.matrix.model_copy(update={"datasets": datasets})
    plan.cost = plan_matrix(matrix, device, methods=methods)
    plan.cost_note = ""


def _fmt_count(value: int) -> str:
    return f"{value:,}".replace(",", " ")


def format_plan(plan: Plan) -> str:
    """The ``--dry-run`` text: datasets, cards, what is missing with its command, and the counts."""
    t, m = plan.table, plan.matrix
    lines = [f"{t.id}: {t.title} ({t.source}) -- matrix {plan.matrix_name}"]
    lines.append("datasets:")
    for r in plan.requirements:
        if r.kind == "dataset":
            n = plan.images.get(r.name)
            lines.append(f"  {r.name}: {r.state}" + (f", {n} images" if n is not None else ""))
    lines.append("rows (paper row -> card):")
    cards = {r.name: r for r in plan.requirements if r.kind != "dataset"}
    for row in t.rows:
        if row.card is None:
            lines.append(f"  {row.label}: no card ({row.status.replace('_', ' ')})")
            continue
        req = cards.get(row.card)
        state = "not in the matrix" if req is None else req.state
        lines.append(f"  {row.label}: {row.card} -- {state}")
    missing = plan.missing
    lines.append(f"missing ({len(missing)}):" if missing else "missing: nothing")
    for r in missing:
        lines.append(f"  {r.kind} {r.name}: {r.command}")
    lines.append(
        f"cells: {plan.cells} ({plan.measurable_cells} measurable now); rows measurable now: "
        f"{plan.rows_measurable} of {plan.rows_total}"
    )
    unknown = [k for k, v in plan.images.items() if v is None]
    lines.append(
        f"model evaluations: {_fmt_count(plan.forwards)} forwards, {_fmt_count(plan.backwards)} backwards "
        "(SR-network passes, the count of `bench run --dry-run`: inference, smoothing copies, certificate and SR-space "
        "samples, attack steps x restarts x EOT draws, surrogates, sigma selection, over images"
        + (f"; image count unknown for {', '.join(unknown)}" if unknown else "")
        + ")"
    )
    if plan.cost is None:
        lines.append(f"{NOT_ESTIMATED} ({plan.cost_note})")
    else:
        from bench.runner.cost import format_seconds

        c = plan.cost
        in_matrix = {d.name for d in m.datasets}
        names = [r.name for r in plan.requirements if r.kind == "dataset" and r.ready and r.name in in_matrix]
        lines.append(
            f"estimated on {c.device} for the cells that can run now ({', '.join(names)}; ready cards): {c.cells} "
            f"cells, {c.forwards:.0f} forwards, {c.backwards:.0f} backwards, {c.flops / 1e12:.3f} TFLOP, time "
            f"{format_seconds(c.seconds)} (the cost plan of `bench run --dry-run`; probes took "
            f"{format_seconds(c.probe_seconds)}):"
        )
        lines += ["  " + line for line in [*c.table(), *c.notes()]]
    if m.smoothing is not None and m.smoothing.sigmas:
        lines.append("smoothing sigma per column: " + ", ".join(f"{k}={v}" for k, v in m.smoothing.sigmas))
    return "\n".join(lines)


def summary_lines() -> list[str]:
    """One line per table: rows measurable now / rows, cells measurable now / cells, missing datasets."""
    out = []
    for tid in table_ids():
        try:
            p = plan_table(tid)
        except (KeyError, ValueError) as exc:
            out.append(f"{tid}: {exc}")
            continue
        data = [r.name for r in p.missing if r.kind == "dataset"]
        pct = 100.0 * p.measurable_cells / p.cells if p.cells else math.nan
        out.append(
            f"{tid:15s} rows {p.rows_measurable}/{p.rows_total}, cells {p.measurable_cells}/{p.cells} "
            f"({pct:.0f}%) measurable now" + (f"; datasets missing: {', '.join(data)}" if data else "")
        )
    return out


def fetch_missing(plan: Plan) -> list[str]:
    """Fetch the missing datasets and weights that need no manual step; return what could not be fetched."""
    from bench.data.store import DatasetStore

    left = []
    for r in plan.missing:
        try:
            if r.kind == "dataset" and r.fetchable:
                DatasetStore().fetch(r.name, force=r.state == "modified")
            elif r.kind == "weights" and r.asset is not None:
                from bench.assets import fetch

                fetch(r.asset)
            else:
                left.append(f"{r.kind} {r.name}: {r.command}")
        except Exception as exc:
            logger.error("cannot fetch %s %s: %s", r.kind, r.name, exc)
            left.append(f"{r.kind} {r.name}: {r.command} (failed: {str(exc)[:120]})")
    return left


def train_missing(plan: Plan, device: str) -> list[str]:
    """Train the recipes of the missing checkpoints (``python -m bench train``), one process each; return failures."""
    import subprocess
    import sys

    failed = []
    for r in plan.missing:
        if r.kind != "checkpoint" or r.recipe is None:
            continue
        cmd = [sys.executable, "-m", "bench", "train", r.recipe, "--data", r.train_data or "", "--device", device]
        logger.info("training %s: %s", r.name, " ".join(cmd))
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(r.name)
    return failed


def reproduce(
    table_id: str,
    run_dir: str | Path,
    *,
    device: str = "auto",
    sigma: str = "published",
    overrides: Sequence[str] = (),
    train: bool = False,
    fetch: bool = True,
    progress: bool = True,
) -> tuple[Path, Any, list[str]]:
    """Fetch what can be fetched, train when asked, run the table's matrix (resumable) and write the report.

    Returns ``(index.html, run summary, what is still missing)``. Cells whose card cannot be built or whose dataset is
    missing are recorded as failures by the runner (with the repairing command); the paper view marks their rows.
    """
    from bench.report.html import write_report
    from bench.runner.runner import run_matrix

    plan = plan_table(table_id, sigma=sigma, overrides=overrides)
    if fetch:
        fetch_missing(plan)
    if train:
        failed = train_missing(plan, device)
        if failed:
            logger.error("training failed for %s", ", ".join(failed))
    if fetch or train:
        plan = plan_table(table_id, sigma=sigma, overrides=overrides)
    left = [f"{r.kind} {r.name}: {r.command}" for r in plan.missing]
    ready = {r.name for r in plan.requirements if r.kind == "dataset" and r.ready}
    datasets = tuple(d for d in plan.matrix.datasets if d.name in ready)
    if not datasets:
        raise DatasetsMissing(table_id, left)
    matrix = plan.matrix.model_copy(update={"datasets": datasets})  # the missing datasets' cells are not run
    summary = run_matrix(matrix, run_dir, device=device, progress=progress)
    index = write_report(run_dir)
    return index, summary, left


class DatasetsMissing(FileNotFoundError):
    """None of a table's datasets is ready; the message lists the commands that get them."""

    def __init__(self, table_id: str, missing: Sequence[str]) -> None:
        super().__init__(f"table {table_id}: no dataset of its matrix is ready; " + "; ".join(missing))
