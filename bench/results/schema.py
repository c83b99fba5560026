"""The versioned results schema: what a cell file holds, written by the runner and read by the report.

A run directory holds ``cells/<key>.json``, one :class:`CellPayload` each (``version`` :data:`SCHEMA_VERSION`):

* ``records``: tidy rows, one per (image, metric) or per failure, with the columns :data:`RECORD_COLUMNS`;
* ``metric_specs``: ``{metric name: spec}`` of the metrics whose records the cell holds -- a metric added to the
  matrix is computed for a finished cell on its own (the cell key does not include the metric list);
* ``labels``: :class:`CellLabels` (method, dataset, condition; attack, epsilon and variant of attacked cells);
* ``attack``: the threat and the per-batch :meth:`~bench.attacks.base.AttackResult.record` of attacked cells;
* ``smoothing``: sigma, its selection and certificates of median-smoothing methods;
* ``gallery``: :class:`GalleryEntry` items (the PNG crops this cell wrote; the report never reads file names);
* ``sr_space``: the SR-space protocol of a matrix with ``sr_space:`` (samples per image, whether the method was
  sampled, per image the samples' generator seeds and the forward passes; :mod:`bench.runner.stages.sample`);
* ``outputs``: the stored SR outputs (``outputs/<key>.safetensors``) when the matrix has ``store_outputs: true``;
* ``error``/``fix``: why a cell failed as a whole and the command that repairs it (a missing checkpoint, say).

Versions: 1 is the format before this module (no ``version`` field, no ``metric_specs`` nor ``gallery``; the cell key
included the metric list). Version-1 files are **read** (records, labels, provenance; their gallery is not shown, as
its facts lived in file names); the runner never finds them under the new keys and computes those cells again.

Record statuses (:data:`RECORD_STATUSES`): ``ok`` (a value), ``failed`` (``error`` says why; the cell is computed
again by the next run) and ``skipped`` (no value by design, ``error`` gives the reason, e.g. :data:`NO_GROUND_TRUTH`
for a full-reference metric or an attack on a set without ground truth; the cell stays ``ok`` and the report shows
the reason as a mark instead of a number). ``skipped`` came without a version bump: the cell format is unchanged,
and a reader that predates it shows such rows as failures -- never as a number.

The attack mode is the :class:`AttackMode` enum (a ``str`` enum: JSON holds its value, ``"white-box"``...).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: The format this code writes; :meth:`CellPayload.from_dict` reads this one and version 1.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"
RECORD_STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_SKIPPED)
#: The ``error`` of a skipped row whose metric (or attack) needs the HR on a set without ground truth.
NO_GROUND_TRUTH = "skipped: no ground truth"
#: The ``attack`` column of unattacked rows in the report (the records hold ``None``).
NO_ATTACK = "none"


class AttackMode(str, enum.Enum):
    """How an attacked number was obtained (the attack's result says it; the report shows it)."""

    WHITE_BOX = "white-box"  # gradients through the method itself
    EOT = "eot"  # expectation over transformation: gradients averaged over the stochastic method's draws
    TRANSFER = "transfer"  # crafted on a differentiable surrogate, evaluated on the target
    GRADIENT_FREE = "gradient-free"  # no gradient (random sign)

    @classmethod
    def decide(cls, *, transfer: bool, gradient: bool, stochastic: bool) -> AttackMode:
        """The one place the mode is decided: transfer > gradient-free > EOT (stochastic) > white-box."""
        if transfer:
            return cls.TRANSFER
        if not gradient:
            return cls.GRADIENT_FREE
        return cls.EOT if stochastic else cls.WHITE_BOX

    def __str__(self) -> str:
        return self.value


#: Per-image attack columns of the records (``None`` for unattacked cells).
ATTACK_COLUMNS = (
    "attack_mode",
    "attack_surrogate",
    "attack_loss_clean",
    "attack_loss_adv",
    "attack_forward",
    "attack_backward",
    "attack_seconds",
    "attack_linf",
)
#: The columns of a record (one row of ``results.csv``, before the report adds ``entry``).
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
    "sigma",
    *ATTACK_COLUMNS,
)


class SchemaError(ValueError):
    """A cell file this code cannot read (an unknown version or a missing field); the message names the file."""


@dataclass(frozen=True)
class CellLabels:
    """The display labels of a cell (the report's axes)."""

    method: str
    dataset: str
    condition: str
    attack: str | None = None
    epsilon: float | None = None
    variant: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "dataset": self.dataset, "condition": self.condition}
        if self.attack is not None:
            out.update(attack=self.attack, epsilon=self.epsilon, variant=self.variant)
        return out

    def same_scenario(self, dataset: str, condition: str, attack: str, epsilon: float | None) -> bool:
        """Whether this cell belongs to the board (dataset, condition, attack, epsilon); ``attack`` is ``none`` for
        the unattacked board."""
        if self.dataset != dataset or self.condition != condition or (self.attack or NO_ATTACK) != attack:
            return False
        return attack == NO_ATTACK or abs(float(self.epsilon or 0.0) - float(epsilon or 0.0)) < 1e-9


@dataclass(frozen=True)
class GalleryEntry:
    """One PNG crop of the gallery: ``path`` is relative to the run directory.

    ``kind``: ``hr``, ``lr`` (the LR, or the attacked cell's clean LR input, nearest-upscaled), ``sr`` (the method's
    output), ``adv`` (the adversarial input, nearest-upscaled) or ``sr_adv`` (the output on it). ``attack`` is the
    attack's name for the crops of an attacked cell (largest budget), ``mode`` its :class:`AttackMode`.
    """

    dataset: str
    condition: str
    kind: str
    path: str
    method: str | None = None
    attack: str | None = None
    mode: AttackMode | None = None

    KINDS = ("hr", "lr", "sr", "adv", "sr_adv")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mode"] = None if self.mode is None else self.mode.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GalleryEntry:
        mode = data.get("mode")
        return cls(
            dataset=str(data["dataset"]),
            condition=str(data["condition"]),
            kind=str(data["kind"]),
            path=str(data["path"]),
            method=data.get("method"),
            attack=data.get("attack"),
            mode=None if mode is None else AttackMode(mode),
        )


@dataclass(frozen=True)
class SmoothingSummary:
    """What the report shows of a median-smoothing cell's ``smoothing`` section (read here, once).

    ``scores``: the validation score per grid value (``"none"``, ``"0.05"``...) of a ``sigma: auto`` selection;
    ``certify``: ``(n_samples, alpha)`` of the first certificate, ``None`` without certification.
    """

    sigma: float | None
    auto: bool
    n: int | None
    selected: bool
    scores: dict[str, float]
    paper_sigma: Any
    metric: str
    images: tuple[str, ...]
    validation: str
    certify: tuple[Any, Any] | None

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> SmoothingSummary:
        selection = section.get("selection") or {}
        certificates = section.get("certificates") or []
        settings = section.get("settings") or {}
        chosen = selection["sigma"] if selection else section.get("sigma")
        return cls(
            sigma=None if chosen is None else float(chosen),
            auto=bool(section.get("sigma_auto")),
            n=settings.get("n"),
            selected=bool(selection),
            scores=dict(selection.get("scores", {})),
            paper_sigma=selection.get("paper_sigma", "—") if selection else "—",
            metric=(selection.get("metric") or {}).get("name", "") if selection else "",
            images=tuple(selection.get("images", [])),
            validation=f"{selection.get('dataset', '')} crop {selection.get('crop')}" if selection else "",
            certify=(certificates[0].get("n_samples"), certificates[0].get("alpha")) if certificates else None,
        )


@dataclass
class CellPayload:
    """The content of one ``cells/<key>.json``."""

    key: str
    status: str
    cell: dict[str, Any]
    labels: CellLabels
    records: list[dict[str, Any]]
    provenance: dict[str, Any]
    metric_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    attack: dict[str, Any] | None = None
    smoothing: dict[str, Any] | None = None
    gallery: list[GalleryEntry] = field(default_factory=list)
    outputs: str | None = None
    error: str | None = None
    fix: str | None = None
    version: int = SCHEMA_VERSION
    sr_space: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def smoothing_summary(self) -> SmoothingSummary | None:
        return None if not self.smoothing else SmoothingSummary.from_section(self.smoothing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "key": self.key,
            "status": self.status,
            "cell": self.cell,
            "labels": self.labels.as_dict(),
            "records": self.records,
            "provenance": self.provenance,
            "metric_specs": self.metric_specs,
            "attack": self.attack,
            "smoothing": self.smoothing,
            "gallery": [g.as_dict() for g in self.gallery],
            "outputs": self.outputs,
            "error": self.error,
            "fix": self.fix,
            "sr_space": self.sr_space,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "cell file") -> CellPayload:
        """Read a stored payload of version 1 or 2 (see the module docstring); :class:`SchemaError` otherwise."""
        version = int(data.get("version", 1))
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f"{source}: results schema version {version} is not readable by this bench (reads "
                f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade the bench or recompute the run"
            )
        try:
            records = list(data.get("records", []))
            labels = data["labels"]
            if version == 1 and not labels and records:  # hand-written version-1 cells: the rows say it
                labels = {k: records[0][k] for k in ("method", "dataset", "condition")}
            specs = dict(data.get("metric_specs") or {})
            if version == 1:  # the specs travelled on the records
                for rec in records:
                    if rec.get("spec") and rec.get("metric") and rec["status"] == STATUS_OK:
                        specs.setdefault(rec["metric"], rec["spec"])
            return cls(
                key=str(data["key"]),
                status=str(data["status"]),
                cell=dict(data.get("cell") or {}),
                labels=CellLabels(
                    method=labels["method"],
                    dataset=labels["dataset"],
                    condition=labels["condition"],
                    attack=labels.get("attack"),
                    epsilon=labels.get("epsilon"),
                    variant=labels.get("variant"),
                ),
                records=records,
                provenance=dict(data.get("provenance") or {}),
                metric_specs=specs,
                attack=data.get("attack"),
                smoothing=data.get("smoothing"),
                gallery=[GalleryEntry.from_dict(g) for g in data.get("gallery") or []],
                outputs=data.get("outputs"),
                error=data.get("error"),
                fix=data.get("fix"),
                version=version,
                sr_space=data.get("sr_space"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(
                f"{source}: not a results cell of version {version} ({type(exc).__name__}: {exc})"
            ) from exc
