"""The versioned results schema: what a cell file holds, written by the runner and read by the report.

A run directory holds ``run.json``, one :class:`RunInfo` (``version`` :data:`RUN_SCHEMA_VERSION`: the matrix as
:class:`MatrixInfo`, provenance, the cells' keys), and ``cells/<key>.json``, one :class:`CellPayload` each (``version``
:data:`SCHEMA_VERSION`):

* ``records``: tidy rows, one per (image, metric) or per failure, with the columns :data:`RECORD_COLUMNS`;
* ``metric_specs``: ``{metric name: spec}`` of the metrics whose records the cell holds -- a metric added to the
  matrix is computed for a finished cell on its own (the cell key does not include the metric list);
* ``labels``: :class:`CellLabels` (method, dataset, condition; attack, epsilon and variant of attacked cells);
* ``attack``: the threat and the per-batch :meth:`~bench.attacks.base.AttackResult.record` of attacked cells;
* ``smoothing``: sigma, its selection and certificates of median-smoothing methods;
* ``gallery``: :class:`GalleryEntry` items (the PNG crops this cell wrote; the report never reads file names);
* ``sr_space``: the SR-space protocol of a matrix with ``sr_space:`` (samples per image, whether the method was
  sampled, per image the samples' generator seeds, the forward passes and, when the outputs are stored, the
  ``sha256`` of the image's stored samples; :mod:`bench.runner.stages.sample`);
* ``outputs``: the stored SR outputs (``outputs/<key>.safetensors``) when the matrix has ``store_outputs: true``;
* ``outputs_tensors``: each tensor of that file, its shape and SHA-256 (``{"sr/<image>": {"shape": [1, 3, H, W],
  "sha256": hex}, "x/<image>": ..., ...}``, :func:`bench.runner.stages.outputs.describe`), checked before a metric
  added later is scored on them;
* ``error``/``fix``: why a cell failed as a whole and the command that repairs it (a missing checkpoint, say).

Versions: 1 is the format before this module (no ``version`` field, no ``metric_specs`` nor ``gallery``; the cell key
included the metric list). Version-1 files are **read** (records, labels, provenance; their gallery is not shown, as
its facts lived in file names); the runner never finds them under the new keys and computes those cells again.

Record statuses (:data:`RECORD_STATUSES`): ``ok`` (a value), ``failed`` (``error`` says why; the cell is computed
again by the next run) and ``skipped`` (no value by design, ``error`` gives the reason, e.g. :data:`NO_GROUND_TRUTH`
for a full-reference metric or an attack on a set without ground truth; the cell stays ``ok`` and the report shows
the reason as a mark instead of a number). ``skipped`` came without a version bump: the cell format is unchanged,
and a reader that predates it shows such rows as failures -- never as a number.

Precision columns (:data:`PRECISION_COLUMNS`: ``precision``, ``precision_delta_db``, ``precision_fallback``, the
precision the method actually ran in and the accuracy guard's measurement, :mod:`bench.runner.stages.precision`)
came without a version bump either: rows of older cells lack them and read as missing (None), never as a wrong
number. The same holds for the surrogate's columns (:data:`SURROGATE_PRECISION_COLUMNS`: ``surrogate_precision``,
``surrogate_precision_delta_db``, ``surrogate_precision_fallback``), set on the rows of transfer attacks.

``outputs_tensors`` came without a version bump: a cell stored before it (``outputs`` set, no checksums) reads as
*unverified* -- its outputs are never scored; a metric added to it is computed by running the method again, which
writes the outputs again with their checksums. A value that is not a mapping reads as absent (unverified).

The attack mode is the :class:`AttackMode` enum (a ``str`` enum: JSON holds its value, ``"white-box"``...).

Length (over ~500 lines): the one place where the stored format is declared -- the run file, the cell payload, its
labels, gallery entries, record columns and statuses -- so that the runner writes and the report reads one definition.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
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
#: The compute precision of a row's method (:mod:`bench.runner.stages.precision`); absent from older cells.
PRECISION_COLUMNS = ("precision", "precision_delta_db", "precision_fallback")
#: The compute precision of a transfer attack's surrogate (the same guard and policy as the method; ``None`` for rows
#: without a surrogate); absent from older cells.
SURROGATE_PRECISION_COLUMNS = tuple(f"surrogate_{c}" for c in PRECISION_COLUMNS)
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
    *PRECISION_COLUMNS,
    *SURROGATE_PRECISION_COLUMNS,
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
    outputs_tensors: dict[str, dict[str, Any]] | None = None
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
            "outputs_tensors": self.outputs_tensors,
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
                outputs_tensors=_checksums(data.get("outputs_tensors")),
                error=data.get("error"),
                fix=data.get("fix"),
                version=version,
                sr_space=data.get("sr_space"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(
                f"{source}: not a results cell of version {version} ({type(exc).__name__}: {exc})"
            ) from exc


def _checksums(value: Any) -> dict[str, Any] | None:
    """A cell's ``outputs_tensors`` as stored, ``None`` (unverified) when absent or not a mapping; an entry that is
    not a shape and a checksum is refused when the outputs are read (:func:`bench.runner.stages.outputs.verify`)."""
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else None


#: The ``run.json`` format this code writes; :meth:`RunInfo.from_dict` reads the versions of :data:`RUN_READABLE`.
RUN_SCHEMA_VERSION = 1
#: Version 1 is also the format written before ``run.json`` carried a ``version`` field (same keys).
RUN_READABLE = (1,)


def _names(entries: Sequence[Any]) -> list[str]:
    return [str(e["name"]) for e in entries if isinstance(e, Mapping) and e.get("name") is not None]


@dataclass(frozen=True)
class MatrixInfo:
    """The matrix as ``run.json`` stores it (:meth:`bench.runner.matrix.Matrix.as_dict`), read once for the report.

    The entries of ``datasets``, ``conditions``, ``metrics`` and ``attacks`` stay the stored mappings (their identity
    forms: ``name`` and the settings); :meth:`names` gives their names in the matrix's order. ``raw`` is the whole
    stored mapping (written back unchanged by :meth:`RunInfo.as_dict`).
    """

    name: str = "?"
    description: str = ""
    source: str = ""
    overrides: tuple[str, ...] = ()
    scale: int | None = None
    seeds: tuple[int, ...] = ()
    methods: tuple[str, ...] = ()
    datasets: tuple[Mapping[str, Any], ...] = ()
    conditions: tuple[Mapping[str, Any], ...] = ()
    metrics: tuple[Mapping[str, Any], ...] = ()
    attacks: tuple[Mapping[str, Any], ...] = ()
    attack_images: int | None = None
    sr_space: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    AXES = ("method", "dataset", "condition", "metric", "attack")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatrixInfo:
        def entries(key: str) -> tuple[Mapping[str, Any], ...]:
            return tuple(dict(e) for e in data.get(key) or [])

        scale = data.get("scale")
        return cls(
            name=str(data.get("name") or "?"),
            description=str(data.get("description") or ""),
            source=str(data.get("source") or ""),
            overrides=tuple(str(o) for o in data.get("overrides") or []),
            scale=None if scale is None else int(scale),
            seeds=tuple(int(s) for s in data.get("seeds") or []),
            methods=tuple(str(m) for m in data.get("methods") or []),
            datasets=entries("datasets"),
            conditions=entries("conditions"),
            metrics=entries("metrics"),
            attacks=entries("attacks"),
            attack_images=data.get("attack_images"),
            sr_space=dict(data["sr_space"]) if data.get("sr_space") else None,
            raw=dict(data),
        )

    def names(self, axis: str) -> list[str]:
        """The declared names of ``axis`` (``method``, ``dataset``, ``condition``, ``metric``, ``attack``) in order."""
        if axis == "method":
            return list(self.methods)
        if axis not in self.AXES:
            raise ValueError(f"unknown matrix axis {axis!r}; axes: {', '.join(self.AXES)}")
        sections = {"dataset": self.datasets, "condition": self.conditions, "metric": self.metrics}
        return _names(sections.get(axis, self.attacks))

    def condition(self, name: str) -> Mapping[str, Any]:
        """The stored entry of condition ``name`` (``{}`` when the matrix does not declare it)."""
        return next((c for c in self.conditions if c.get("name") == name), {})


@dataclass(frozen=True)
class RunInfo:
    """The content of ``<run_dir>/run.json``: the matrix, the run's provenance and the keys of its cells.

    Written by the runner's rank 0 (:meth:`bench.runner.store.Store.write_run_info`), read by the report through
    :meth:`from_dict` (never through ``.get`` chains). ``cells`` is ``None`` for a run that does not list its cells
    (then every stored cell file belongs to it). ``methods`` maps a method name to its provenance (``title``, card,
    checkpoint...); ``metric_specs`` holds the matrix's metric specs. Keys this version does not know are kept in
    ``extra`` and written back, so a newer runner's additions survive a round trip.
    """

    run: str = ""
    matrix: MatrixInfo = field(default_factory=MatrixInfo)
    cells: tuple[str, ...] | None = None
    metric_specs: tuple[Mapping[str, Any], ...] = ()
    methods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    device: str = "?"
    world_size: int = 1
    lr_synthesis: str = ""
    started: str | None = None
    first_started: str | None = None
    finished: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    version: int = RUN_SCHEMA_VERSION

    _KEYS = (
        "run",
        "matrix",
        "cells",
        "metric_specs",
        "methods",
        "environment",
        "device",
        "world_size",
        "lr_synthesis",
        "started",
        "first_started",
        "finished",
        "version",
    )

    @property
    def started_first(self) -> str | None:
        """When the run was first started (a resumed run keeps its first start)."""
        return self.first_started or self.started

    def method_title(self, method: str) -> str:
        """The display title of ``method`` (its card's ``title``), else the name."""
        return str((self.methods.get(method) or {}).get("title") or method)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            version=self.version,
            run=self.run,
            matrix=dict(self.matrix.raw),
            cells=None if self.cells is None else list(self.cells),
            metric_specs=[dict(s) for s in self.metric_specs],
            methods={k: dict(v) for k, v in self.methods.items()},
            environment=dict(self.environment),
            device=self.device,
            world_size=self.world_size,
            lr_synthesis=self.lr_synthesis,
            started=self.started,
        )
        # written only once known: the runner reads "first_started" with a fallback to "started", and "finished"
        # is absent until the run ends
        if self.first_started is not None:
            out["first_started"] = self.first_started
        if self.finished is not None:
            out["finished"] = self.finished
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "run.json") -> RunInfo:
        """Read a stored ``run.json``; :class:`SchemaError` naming ``source`` for an unknown version or a bad field."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"{source}: run.json holds a {type(data).__name__}, not a mapping; recompute the run")
        version = data.get("version", 1)
        if version not in RUN_READABLE:
            raise SchemaError(
                f"{source}: run.json schema version {version!r} is not readable by this bench (reads "
                f"{', '.join(map(str, RUN_READABLE))}); upgrade the bench or run `python -m bench run` again"
            )
        try:
            cells = data.get("cells")
            return cls(
                run=str(data.get("run") or ""),
                matrix=MatrixInfo.from_dict(data.get("matrix") or {}),
                cells=None if cells is None else tuple(str(k) for k in cells),
                metric_specs=tuple(dict(s) for s in data.get("metric_specs") or []),
                methods={str(k): dict(v) for k, v in (data.get("methods") or {}).items()},
                environment=dict(data.get("environment") or {}),
                device=str(data.get("device") or "?"),
                world_size=int(data.get("world_size") or 1),
                lr_synthesis=str(data.get("lr_synthesis") or ""),
                started=data.get("started"),
                first_started=data.get("first_started"),
                finished=data.get("finished"),
                extra={k: v for k, v in data.items() if k not in cls._KEYS},
                version=int(version),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"{source}: not a run.json of version {version} ({type(exc).__name__}: {exc})") from exc
