"""The schema of a published results table transcribed as data (``bench/report/papers/tables/<id>.yaml``).

One YAML file per table of the seed documents, loaded into a frozen :class:`PaperTable` (pydantic v2, unknown keys
refused). A table is laid out as printed:

- ``metrics``: the metrics of the table, each with its direction (``higher_is_better``) and what the paper says of its
  computation (:class:`MetricSpec`: colour space, border crop, LPIPS backbone; ``null`` where the paper is silent).
- ``groups``: the column groups (datasets, conditions, attacks), each with the protocol settings the paper gives
  (attack and budget, CertSR's smoothing sigma ...).
- ``columns``: the numeric columns **in printed order**, each a (group, metric) pair. Whether the header is
  group-major (CertSR Table 1: Clean: PSNR SSIM LPIPS | Noisy: ...) or metric-major (RSR: PSNR: NTIRE AIM Avg | SSIM:
  ...) is read off this order (:attr:`PaperTable.layout`).
- ``rows``: one per printed row: the method name as printed (``label``), the card of ``methods/`` it maps to
  (``card``, or null), descriptive cells (``attributes``: training data ...), the values aligned with ``columns``
  (``null`` for a cell the paper leaves empty; the row's ``note`` then says so) and, where printed, the ranks.
- ``notes``: the paper's own inconsistencies (numbers that contradict the text, averages that do not average ...),
  each a one-line statement a reader can check against the seed.

Values are copied as printed (floats; the number of decimals is kept in ``decimals`` per metric for rendering).

Example::

    from bench.report.papers import load_table
    table = load_table("certsr-t1")
    table.value("CertSR (ours)", "noisy", "psnr")   # 26.35
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = r"^[a-z0-9][a-z0-9_-]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Frozen):
    """How the paper says a metric is computed; ``None`` = the paper does not say.

    Attributes:
        space: ``"Y"`` (Y of YCbCr) or ``"RGB"``.
        crop_border: pixels removed at each border before computing.
        backbone: LPIPS network (``"alex"``, ``"vgg"``).
        reference: full-reference (``True``) or no-reference (``False``) metric.
        source: where the paper states it (section / caption), or why it is unknown.
    """

    space: Literal["Y", "RGB"] | None = None
    crop_border: int | None = None
    backbone: str | None = None
    reference: bool = True
    source: str = ""


class Metric(_Frozen):
    """A metric column type: ``id`` (``psnr``), ``label`` as printed (``PSNR ↑``), direction and spec.

    ``bench_metric`` names the metric of :data:`bench.metrics.METRICS` that measures it (``None``: not measurable here,
    e.g. MOS); ``decimals`` is the printed precision.
    """

    id: str = Field(pattern=_ID)
    label: str
    higher_is_better: bool
    decimals: int = Field(ge=0, le=6)
    bench_metric: str | None = None
    spec: MetricSpec = MetricSpec()


class Group(_Frozen):
    """A column group as printed (a dataset, a condition or an attack) with the protocol the paper gives for it.

    Attributes:
        id: short identifier (``clean``, ``fgsm``, ``ntire``).
        label: header as printed.
        dataset: the evaluation data in words (and the benchmark dataset name when there is one).
        condition: corruption applied to the LR (``clean``, ``noise``, ``blur``), ``None`` when not applicable.
        attack: attack name of :data:`bench.attacks.ATTACKS`, ``None`` for no attack.
        epsilon: attack budget on the [0, 1] scale, ``None`` when the paper does not state it for this table.
        sigma: CertSR's MRS inference sigma for this column as published (``None``: no smoothing or not stated).
        scale: upscaling factor of the column (4 unless printed otherwise).
        aggregate: ``"mean"`` when the column is the average of other groups (``Avg``).
        note: anything else the paper says about the column.
        bench_dataset, bench_condition, bench_epsilon: where the group's numbers are in a run of the table's matrix
            (``bench/matrices/<table id>.yaml``): the dataset (a manifest name), the matrix condition and, for an
            attacked group, the budget the matrix runs (``epsilon`` when the paper states it, else the matrix's
            choice, e.g. 10/255 as CertSR's Figure 1); with :attr:`attack` they name the records exactly. ``None``
            for a group that no matrix measures (an ``Avg`` column is computed from the others).
        bench_note: what the reader must know about that mapping (e.g. a validation set standing in for a test set
            whose ground truth is not public); shown with the measured table.
    """

    id: str = Field(pattern=_ID)
    label: str
    dataset: str | None = None
    condition: str | None = None
    attack: str | None = None
    epsilon: float | None = None
    sigma: float | None = None
    scale: int = 4
    aggregate: Literal["mean"] | None = None
    note: str = ""
    bench_dataset: str | None = None
    bench_condition: str | None = None
    bench_epsilon: float | None = None
    bench_note: str = ""

    @field_validator("bench_epsilon", mode="before")
    @classmethod
    def _fraction(cls, value: object) -> object:
        from bench.config.epsilon import parse_epsilon

        return None if value is None else parse_epsilon(value)


class Column(_Frozen):
    """One numeric column: a (group, metric) pair, in printed order."""

    group: str
    metric: str


class Row(_Frozen):
    """One printed row.

    Attributes:
        id: unique identifier of the row in the table (``impressionism-aim``).
        label: the method name exactly as printed (``AD-L-FGSM (ours)``, ``ESRGAN [33]``).
        method: the method's name without citation marks (``AD-L-FGSM``).
        continued: the method cell is blank in print (the row continues the method of the row above; ``label``
            repeats that method's name).
        card: the card of ``methods/`` that stands for the row, or ``None``.
        status: ``card`` (a card exists), ``needs_adapter`` (new architecture, no adapter yet), ``no_weights`` (the
            architecture is supported but the weights are not public, or come from a recipe that does not exist yet),
            ``unavailable`` (a challenge entry whose model was never released), ``not_measurable`` (a row the harness
            cannot reproduce as one method, e.g. cells taken from two models).
        attributes: descriptive cells (training data, ablation switches), keyed by ``PaperTable.attributes``.
        values: the numbers aligned with ``PaperTable.columns``; ``None`` for an empty cell (``note`` says why).
        ranks: printed ranks aligned with ``columns`` (NTIRE's subscripts), ``None`` where none is printed.
        note: what the reader must know about the row (mapping caveats, missing cells).
    """

    id: str = Field(pattern=_ID)
    label: str
    method: str
    continued: bool = False
    card: str | None = None
    status: Literal["card", "needs_adapter", "no_weights", "unavailable", "not_measurable"]
    attributes: dict[str, str] = Field(default_factory=dict)
    values: tuple[float | None, ...]
    ranks: tuple[int | None, ...] | None = None
    note: str = ""

    @model_validator(mode="after")
    def _card_matches_status(self) -> Row:
        if (self.card is not None) != (self.status == "card"):
            raise ValueError(f"row {self.label!r}: status 'card' if and only if a card is given")
        if any(v is None for v in self.values) and not self.note:
            raise ValueError(f"row {self.label!r}: an empty (null) cell needs a note saying why")
        return self


class PaperTable(_Frozen):
    """A published table (see the module docstring).

    Attributes:
        id: the table's name (``certsr-t2``), equal to its file stem.
        seed: the seed document it is transcribed from (a file name of ``../shared/seeds``).
        anchor: text of the table's last header line in the seed; the rows are the next non-empty lines (the test
            re-reads every value there).
        paper, source, title, caption, marks: citation, where in the paper, the caption as printed and what the
            paper's colour/bold marks meant (they are lost in the text).
    """

    id: str = Field(pattern=_ID)
    seed: str
    anchor: str
    paper: str
    source: str
    title: str
    caption: str = ""
    marks: str = ""
    metrics: tuple[Metric, ...]
    groups: tuple[Group, ...]
    attributes: tuple[str, ...] = ()
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()

    @field_validator("seed")
    @classmethod
    def _seed_name(cls, value: str) -> str:
        if not value.endswith(".txt") or "/" in value:
            raise ValueError(f"seed must be a file name of ../shared/seeds (NNN_hash.txt), got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PaperTable:
        metrics = [m.id for m in self.metrics]
        groups = [g.id for g in self.groups]
        for what, ids in (("metric", metrics), ("group", groups), ("row id", [r.id for r in self.rows])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"table {self.id}: duplicate {what} {dup}")
        pairs = [(c.group, c.metric) for c in self.columns]
        for group, metric in pairs:
            if group not in groups or metric not in metrics:
                raise ValueError(f"table {self.id}: column ({group}, {metric}) names an undeclared group or metric")
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"table {self.id}: a (group, metric) column appears twice")
        for row in self.rows:
            if len(row.values) != len(self.columns):
                raise ValueError(
                    f"table {self.id}: row {row.label!r} has {len(row.values)} values for {len(self.columns)} columns"
                )
            if row.ranks is not None and len(row.ranks) != len(self.columns):
                raise ValueError(f"table {self.id}: row {row.label!r} has ranks of the wrong length")
            unknown = set(row.attributes) - set(self.attributes)
            if unknown:
                raise ValueError(f"table {self.id}: row {row.label!r} has undeclared attributes {sorted(unknown)}")
        return self

    @property
    def layout(self) -> Literal["group-major", "metric-major"]:
        """``group-major`` when each group's metrics are printed together, ``metric-major`` otherwise."""
        firsts = [c.group for c in self.columns]
        runs = sum(1 for i, g in enumerate(firsts) if i == 0 or g != firsts[i - 1])
        return "group-major" if runs == len({*firsts}) else "metric-major"

    def row(self, key: str) -> Row:
        """The row with id ``key``, else the one printed as ``key``, else the one whose ``method`` is ``key``."""
        hits = [r for r in self.rows if r.id == key]
        hits = hits or [r for r in self.rows if r.label == key] or [r for r in self.rows if r.method == key]
        if len(hits) != 1:
            known = ", ".join(r.label for r in self.rows)
            raise KeyError(f"table {self.id}: {len(hits)} rows match {key!r}; rows: {known}")
        return hits[0]

    def column_index(self, group: str, metric: str) -> int:
        """Position of the (group, metric) column in :attr:`columns`."""
        for i, c in enumerate(self.columns):
            if c.group == group and c.metric == metric:
                return i
        raise KeyError(f"table {self.id}: no column ({group}, {metric})")

    def value(self, row: str, group: str, metric: str) -> float | None:
        """The published value of a cell (``None`` for an empty cell); ``row`` as for :meth:`row`."""
        return self.row(row).values[self.column_index(group, metric)]

    def metric(self, metric_id: str) -> Metric:
        return next(m for m in self.metrics if m.id == metric_id)

    def cards(self) -> list[str]:
        """The cards the rows map to, in row order, each once."""
        return list(dict.fromkeys(r.card for r in self.rows if r.card is not None))
