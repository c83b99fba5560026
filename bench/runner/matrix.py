"""Declared evaluation matrices: YAML files validated into frozen pydantic models before any work.

A matrix file (``bench/matrices/<name>.yaml``, or any path) looks like::

    version: 1
    name: smoke
    description: two methods, two conditions, seconds on a CPU
    include: base.yaml               # optional; merged, the including file wins (dicts deep-merged, lists replaced)
    scale: 4
    datasets: [{name: embedded-eval, crop: 64}]        # other keys are passed to the dataset factory
    methods: [bicubic, realesrgan-x4plus]              # card names (methods/*.yaml)
    conditions:
      - {name: clean, corruption: clean}
      - {name: noise, corruption: gaussian_noise, params: {sigma: 0.03}}
    metrics: [psnr, {name: lpips_alex}]                # a bare string = defaults
    seeds: [0]
    gallery: {image: astronaut, size: 48}              # LR-size crop shown in the report
    batch_images: 1
    store_outputs: false                               # true: keep SR outputs (re-scoring runs no model)
    attacks:                                           # optional; absent = no attack at all
      - {name: none}                                   # the unattacked cells (list it to keep them)
      - {name: pgd, attack: pgd, params: {steps: 3}, epsilons: [2/255, 5/255], conditions: [clean],
         eot_samples: 4, restarts: 1, transfer_from_base: true, surrogate: null, loss: l1_perceptual}
    attack_images: 2                                   # attacked cells use the first N images of each dataset
    stochastic_seeds: [0, 1, 2]                        # seeds of stochastic methods (default: ``seeds``)
    smoothing:                                         # CertSR (median smoothing): sigma selection + certificates
      sigma_grid: [0.01, 0.02, 0.03, 0.05]             # null = no smoothing
      sigmas: {blur: 0.05, fgsm: 0.06}                 # optional per-column override (attack > condition > dataset)
      validation: {dataset: embedded-train, crop: 128, images: 3}   # or images: [a, b]; other keys: dataset args
      metric: lpips_alex
      certify: {epsilons: [0.005, 0.01, 0.02], n_samples: 100, alpha: 0.001}
    sr_space: {samples: 10, columns: [lpips, lr_psnr, diversity]}   # NTIRE 2021 SR-space columns (see below)
    precision: auto                                    # auto | fp32 | bf16 (see below)
    compile: false                                     # false | true | auto: torch.compile the fast path (below)

Conditions may declare ``severities: [1, 3, 5]`` instead of ``params``: the entry expands into one condition per
level, named ``<name>-s<level>``, with the parameters the corruption class declares (its ``severities``) and
``family: <name>`` (the report draws metric-vs-severity curves per family).

Attacks (``attacks:``): each entry names a registered attack (:data:`bench.attacks.ATTACKS`) and its ``params``; an
``epsilons`` list (numbers or ``a/b`` strings) expands into one setting per budget, passed as ``eps``. ``conditions``
restricts the entry to some conditions (default: all). ``eot_samples`` and ``restarts`` apply to stochastic methods
(EOT, worst of the restarts); deterministic methods get one draw and one run. ``surrogate`` names a method card used
to attack non-differentiable methods by transfer (without it their settings are planned ``refused``: failure rows
with the message; a median-smoothing card is as differentiable as its base).
``transfer_from_base: true`` adds, for stochastic wrapper methods (median smoothing), cells attacked by transfer from
their base card, besides the adaptive (EOT) ones. ``loss`` is the attack loss (a name of
:data:`bench.attacks.ATTACK_LOSSES` or ``{name, **params}``; default ``l1_perceptual``, CertSR's). A cell is
(method, dataset, condition, attack setting, seed).

SR space (``sr_space:``, the NTIRE 2021 "Learning the SR space" protocol): each image of a stochastic method's cell is
super-resolved ``samples`` times (default 10; sample 0 is the cell's own output, sample i > 0 is drawn with the
generator seeded by (cell key, image, ``"method"``, i); the seeds are recorded in the cell's ``sr_space`` section) and
the ``columns`` are computed by :func:`bench.metrics.diversity.diversity_score` on them, exactly as
``bench score diversity`` does: ``lpips`` (``diversity_lpips_mean``: LPIPS mean over the samples), ``lr_psnr``
(``lr_psnr_mean`` and ``lr_psnr_worst``: the ``ntire21`` LR-PSNR, 45 dB rule), ``diversity`` (``diversity_score``).
Deterministic methods get the columns from their one output (one forward pass; diversity 0). ``samples`` is part
of a stochastic cell's key; the columns are metrics (sub-keyed by their spec, like ``metrics:``). With
``store_outputs: true`` the samples are stored with a checksum, and a column added later is scored on them without
running the method (:mod:`bench.runner.stages.rescore`).

Precision (``precision:``, :mod:`bench.methods.precision`): ``auto`` (default) resolves per device -- bf16 autocast +
channels_last behind the accuracy guard (fp32 when it moves PSNR by more than 0.05 dB on the calibration crop) on
CUDA, plain fp32 on the CPU; ``fp32`` never uses the fast path; ``bf16`` asks for it on any device. The precision
actually used is stamped on every row (``precision``, ``precision_delta_db``, ``precision_fallback``); a transfer
attack's surrogate runs in the same policy behind its own guard (``surrogate_precision*`` columns). A mode other
than ``auto`` is part of the cell key; ``auto`` is not (existing keys stay as they are). ``bench run --precision``
overrides it. ``compile:`` (``false`` default | ``true`` | ``auto``) runs that fast path through ``torch.compile``:
``true`` wherever the fast path runs, ``auto`` on CUDA only; the calibration then measures the compiled output, the
label on the rows becomes ``bf16+channels_last+compile``, and a compile error falls back to the eager fast path with
the reason in ``precision_fallback`` (the run goes on). With ``precision: fp32`` it is an error (nothing to compile).
A value other than ``false`` is part of the cell key; like the precision, it never changes a cell's seeds
(:attr:`~bench.runner.cells.Cell.seed_key`). ``bench run --compile`` overrides it.

Defaults: ``crop_border`` is the metric class's :meth:`~bench.metrics.base.Metric.default_crop_border` (the scale for
the PSNR/SSIM family, which declares ``default_crop = "scale"``, 0 for the others);
a condition's ``severity`` is its single parameter's value (0 for ``clean``, ``k=v,...`` for several) unless given;
``attack: none`` and ``epsilon: 0`` are reserved for attacks.

Overrides (``--set``) are dotted paths applied to the merged YAML before validation: ``conditions.noise.params.sigma=
0.05`` (entries of a list are addressed by their ``name`` or by index), ``methods=[bicubic]``, ``datasets.0.crop=128``.
Values are parsed as YAML scalars/flow collections.

Reading, ``include:`` and ``--set`` are :mod:`bench.config.loader`'s (one loader for every configuration kind).
Validation collects every problem — unknown keys with the closest valid key, types and bounds
(:mod:`bench.runner.matrix_spec`, the JSON Schema of ``python -m bench schema``), unknown dataset/method/corruption/
metric/attack names with the registry's suggestions, constructor parameters the components reject, method cards
whose scale differs from the matrix's, NaN/infinite numbers, names that are not safe folder names, duplicates
(:mod:`bench.runner.matrix_checks`) — and raises one :class:`MatrixError` naming the file and each dotted key.

Length (over ~500 lines): the matrix's frozen models (datasets, conditions, attacks, smoothing, SR space) with their
derived views and the one loader entry point; the checks that need the registries live in
:mod:`bench.runner.matrix_checks`, the file schema in :mod:`bench.runner.matrix_spec`.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from bench.config.epsilon import format_epsilon, parse_epsilon
from bench.config.errors import ConfigFileError
from bench.config.loader import apply_overrides, load_yaml, parse_set, set_dotted, validate_model
from bench.config.models import Frozen
from bench.runner.matrix_spec import DEFAULT_ATTACK_LOSS, NO_ATTACK, MatrixFile

logger = logging.getLogger(__name__)

MATRICES_DIR = Path(__file__).resolve().parent.parent / "matrices"
SUPPORTED_VERSIONS = (1,)

__all__ = [
    "DEFAULT_ATTACK_LOSS",
    "NO_ATTACK",
    "NO_THREAT",
    "AttackEntry",
    "CertifySpec",
    "Condition",
    "DatasetEntry",
    "Gallery",
    "Matrix",
    "MatrixError",
    "MetricEntry",
    "Smoothing",
    "SrSpace",
    "Threat",
    "Validation",
    "apply_override",
    "available_matrices",
    "format_epsilon",
    "load_matrix",
    "parse_epsilon",
    "parse_matrix",
    "read_matrix_file",
    "resolve_matrix_path",
]


class MatrixError(ConfigFileError):
    """A matrix file that cannot be used; the message names the file and lists every problem found."""

    kind = "matrix"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(source, problems)


class DatasetEntry(Frozen):
    """One dataset of the matrix: registered name, optional HR crop, extra factory arguments (e.g. ``path``)."""

    name: str
    crop: int | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "crop": self.crop, "kwargs": dict(sorted(self.kwargs.items()))}

    def factory_kwargs(self, factory: Any, scale: int) -> dict[str, Any]:
        """Arguments for the registered factory: ``crop``, the extra keys, and ``scale`` when it takes one."""
        kwargs = {"crop": self.crop, **self.kwargs}
        try:
            takes_scale = "scale" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            takes_scale = False
        if takes_scale and "scale" not in kwargs:
            kwargs["scale"] = scale
        return kwargs


class Condition(Frozen):
    """What is done to the LR input: a corruption with its parameters (attacks reserved: ``none`` / 0)."""

    name: str
    corruption: str = "clean"
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Any = 0
    attack: str = NO_ATTACK
    epsilon: float = 0.0
    family: str | None = None  # set by ``severities:``; not part of the key (the parameters are)

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "corruption": self.corruption,
            "params": dict(sorted(self.params.items())),
            "attack": self.attack,
            "epsilon": self.epsilon,
        }


class MetricEntry(Frozen):
    """A metric to compute and its ``crop_border``."""

    name: str
    crop_border: int = 0


class AttackEntry(Frozen):
    """One entry of ``attacks:`` as declared (before the ``epsilons`` expansion), names made canonical."""

    name: str
    attack: str = NO_ATTACK
    params: dict[str, Any] = Field(default_factory=dict)
    epsilons: tuple[float, ...] | None = None
    conditions: tuple[str, ...] | None = None
    eot_samples: int | None = None
    restarts: int = 1
    surrogate: str | None = None
    transfer_from_base: bool = False
    loss: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_ATTACK_LOSS))

    def applies_to(self, condition: str) -> bool:
        return self.conditions is None or condition in self.conditions

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "attack": self.attack,
            "params": dict(sorted(self.params.items())),
            "epsilons": None if self.epsilons is None else list(self.epsilons),
            "conditions": None if self.conditions is None else list(self.conditions),
            "eot_samples": self.eot_samples,
            "restarts": self.restarts,
            "surrogate": self.surrogate,
            "transfer_from_base": self.transfer_from_base,
            "loss": dict(self.loss),
        }


@dataclass(frozen=True)
class Threat:
    """One attack setting of a cell: an attack at one budget, and how it reaches the method.

    Not declared in a file (the runner derives it from :class:`AttackEntry`), so it stays a dataclass:
    ``dataclasses.replace`` makes its variants. ``variant`` is ``"direct"`` (gradients through the method itself:
    white-box, or EOT for a stochastic method), ``"transfer"`` (made on ``surrogate``, the matrix's surrogate for a
    non-differentiable method), ``"transfer-from-base"`` (made on the base card of a wrapper method) or ``"refused"``
    (what it would attack is not differentiable and the attack needs gradients: failure rows, never attempted); see
    :func:`bench.runner.cells.method_threats`.
    :data:`NO_THREAT` is the unattacked cell.
    """

    name: str = NO_ATTACK
    attack: str = NO_ATTACK
    params: dict[str, Any] = field(default_factory=dict)
    epsilon: float = 0.0
    eot_samples: int | None = None
    restarts: int = 1
    surrogate: str | None = None
    variant: str = "direct"
    loss: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ATTACK_LOSS))

    @property
    def attacked(self) -> bool:
        return self.attack != NO_ATTACK

    def identity(self) -> dict[str, Any]:
        """What the key hashes: everything but the display name (a renamed entry keeps its cells)."""
        return {
            "attack": self.attack,
            "params": dict(sorted(self.params.items())),
            "epsilon": self.epsilon,
            "eot_samples": self.eot_samples,
            "restarts": self.restarts,
            "surrogate": self.surrogate,
            "variant": self.variant,
            "loss": dict(sorted(self.loss.items())),
        }

    def attack_kwargs(self, stochastic: bool) -> dict[str, Any]:
        """Keyword arguments of :func:`bench.attacks.build_attack` (without ``surrogate`` and ``loss``): the params
        (``eps`` included) and, for a stochastic method, ``eot_samples``/``restarts`` (EOT's own are its params)."""
        kwargs = dict(self.params)
        if stochastic and self.attack != "eot":
            kwargs.setdefault("eot_samples", self.eot_samples)
            kwargs.setdefault("restarts", self.restarts)
        return kwargs

    def label(self) -> str:
        if not self.attacked:
            return NO_ATTACK
        via = {"direct": "", "transfer": f" via {self.surrogate}", "transfer-from-base": f" via base {self.surrogate}"}
        if self.variant == "refused":
            via["refused"] = " refused" + (f" (no gradient via {self.surrogate} either)" if self.surrogate else "")
        return f"{self.name} eps={format_epsilon(self.epsilon)}{via.get(self.variant, '')}"


NO_THREAT = Threat()


class Validation(Frozen):
    """The sigma-selection split: a dataset (disjoint from the evaluation), its HR crop, its images."""

    dataset: str = "embedded-train"
    crop: int | None = 128
    images: int | tuple[str, ...] = 3
    kwargs: dict[str, Any] = Field(default_factory=dict)  # other dataset factory arguments (e.g. ``path``)

    def entry(self) -> DatasetEntry:
        return DatasetEntry(self.dataset, self.crop, dict(self.kwargs))

    def identity(self) -> dict[str, Any]:
        images = self.images if isinstance(self.images, int) else list(self.images)
        return {**self.entry().identity(), "images": images}


class CertifySpec(Frozen):
    """Certified columns of median smoothing: L2 budgets (LR, [0, 1] units), samples and miscoverage per bound."""

    epsilons: tuple[float, ...]
    n_samples: int | None = None
    alpha: float = 0.001

    def identity(self) -> dict[str, Any]:
        return {"epsilons": list(self.epsilons), "n_samples": self.n_samples, "alpha": self.alpha}


class Smoothing(Frozen):
    """The ``smoothing:`` section: sigma selection for ``sigma: auto`` cards and the certified columns."""

    sigma_grid: tuple[float | None, ...]
    validation: Validation = Field(default_factory=Validation)
    metric: str = "lpips_alex"
    certify: CertifySpec | None = None
    seed: int = 0
    sigmas: tuple[tuple[str, float | str | None], ...] = ()

    def sigma_for(self, dataset: str, condition: str, attack: str | None) -> tuple[bool, float | str | None]:
        """The ``sigmas`` override of a cell: ``(True, value)`` for the first of attack entry, condition, dataset
        that the mapping names (value: a sigma, ``None`` for no smoothing, or ``"auto"``), else ``(False, None)``."""
        table = dict(self.sigmas)
        for key in (attack, condition, dataset):
            if key is not None and key in table:
                return True, table[key]
        return False, None

    def selection_identity(self) -> dict[str, Any]:
        return {
            "sigma_grid": list(self.sigma_grid),
            "validation": self.validation.identity(),
            "metric": self.metric,
            "seed": self.seed,
        }

    def identity(self) -> dict[str, Any]:
        return {**self.selection_identity(), "certify": None if self.certify is None else self.certify.identity()}


class SrSpace(Frozen):
    """The ``sr_space:`` section: samples per image and the :func:`~bench.metrics.diversity.diversity_score` keys
    recorded (``score``, ``lpips_mean``, ``lr_psnr_mean``, ``lr_psnr_worst``, ``global_best``, ``local_best``)."""

    samples: int = 10
    keys: tuple[str, ...] = ("score", "lpips_mean", "lr_psnr_mean", "lr_psnr_worst")

    def identity(self) -> dict[str, Any]:
        """What a stochastic cell's key holds (the keys are metrics, sub-keyed by their spec)."""
        return {"samples": self.samples}

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "keys": list(self.keys)}


class Gallery(Frozen):
    """The image shown as crops in the report: its name, the LR crop size, optionally the dataset it comes from."""

    image: str
    size: int = 48
    dataset: str | None = None


class Matrix(Frozen):
    """A validated matrix. ``source`` is the file it came from; ``overrides`` the ``--set`` expressions applied."""

    name: str
    description: str
    scale: int
    datasets: tuple[DatasetEntry, ...]
    methods: tuple[str, ...]
    conditions: tuple[Condition, ...]
    metrics: tuple[MetricEntry, ...]
    seeds: tuple[int, ...] = (0,)
    gallery: Gallery | None = None
    batch_images: int = 1
    version: int = 1
    source: str = ""
    overrides: tuple[str, ...] = ()
    attacks: tuple[AttackEntry, ...] = ()
    attack_images: int | None = None
    stochastic_seeds: tuple[int, ...] | None = None
    smoothing: Smoothing | None = None
    store_outputs: bool = False
    sr_space: SrSpace | None = None
    precision: str = "auto"
    compile: str = "false"  # "false" | "true" | "auto" (bench.runner.stages.precision.wants_compile)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in ``run.json``)."""
        return {
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "scale": self.scale,
            "datasets": [d.identity() for d in self.datasets],
            "methods": list(self.methods),
            "conditions": [
                {**c.identity(), "severity": c.severity, **({"family": c.family} if c.family else {})}
                for c in self.conditions
            ],
            "metrics": [{"name": m.name, "crop_border": m.crop_border} for m in self.metrics],
            "seeds": list(self.seeds),
            "gallery": None if self.gallery is None else self.gallery.model_dump(),
            "batch_images": self.batch_images,
            "source": self.source,
            "overrides": list(self.overrides),
            "attacks": [a.as_dict() for a in self.attacks],
            "attack_images": self.attack_images,
            "stochastic_seeds": None if self.stochastic_seeds is None else list(self.stochastic_seeds),
            "smoothing": None if self.smoothing is None else self.smoothing.identity(),
            "store_outputs": self.store_outputs,
            "sr_space": None if self.sr_space is None else self.sr_space.as_dict(),
            "precision": self.precision,
            "compile": self.compile,
        }

    @property
    def uses_crops(self) -> bool:
        return any(d.crop is not None for d in self.datasets)

    def seeds_for(self, stochastic: bool) -> tuple[int, ...]:
        """The seeds of a method's cells: ``stochastic_seeds`` for stochastic methods when given, else ``seeds``."""
        return self.stochastic_seeds if stochastic and self.stochastic_seeds is not None else self.seeds

    def threats(self, condition: str) -> list[Threat]:
        """The attack settings of one condition, in matrix order (``[NO_THREAT]`` when the matrix has no attacks)."""
        if not self.attacks:
            return [NO_THREAT]
        out: list[Threat] = []
        for entry in self.attacks:
            if not entry.applies_to(condition):
                continue
            if entry.attack == NO_ATTACK:
                out.append(NO_THREAT)
                continue
            for eps in entry.epsilons if entry.epsilons is not None else (None,):
                params = dict(entry.params) if eps is None else {**entry.params, "eps": eps}
                epsilon = float(params.get("eps", 0.0))
                out.append(
                    Threat(
                        entry.name,
                        entry.attack,
                        params,
                        epsilon,
                        entry.eot_samples,
                        entry.restarts,
                        entry.surrogate,
                        loss=dict(entry.loss),
                    )
                )
        return out

    def attack_entry(self, name: str) -> AttackEntry | None:
        return next((a for a in self.attacks if a.name == name), None)


# ---------------------------------------------------------------------------------------------------------- files


def available_matrices() -> list[str]:
    """Names of the packaged matrices (``bench/matrices/*.yaml``)."""
    return sorted(p.stem for p in MATRICES_DIR.glob("*.yaml"))


def resolve_matrix_path(name_or_path: str | Path) -> Path:
    """A packaged matrix name (``smoke``) or a path to a YAML file -> the file's path."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise MatrixError(str(path), ["file not found"])
        return path.resolve()
    packaged = MATRICES_DIR / f"{name_or_path}.yaml"
    if packaged.is_file():
        return packaged
    known = available_matrices()
    close = difflib.get_close_matches(str(name_or_path), known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise MatrixError(str(name_or_path), [f"no such matrix file or packaged matrix.{hint} Known: {', '.join(known)}"])


def _find_include(name: str, including: Path) -> Path | None:
    """An ``include:`` of a matrix: a file relative to the including one, else a packaged matrix name."""
    relative = including.parent / name
    if relative.is_file():
        return relative
    packaged = MATRICES_DIR / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return packaged if packaged.is_file() else None


def read_matrix_file(path: Path) -> dict[str, Any]:
    """Read a matrix YAML and resolve its ``include:`` chain (relative to the file, or a packaged name)."""
    try:
        return load_yaml(path, kind="matrix", find_include=_find_include)
    except ConfigFileError as exc:
        raise MatrixError(exc.source, exc.problems) from exc


def apply_override(data: dict[str, Any], expression: str) -> None:
    """Apply one ``dotted.path=value`` override to the raw matrix mapping in place (see :mod:`bench.config.loader`).

    Raises:
        ValueError: a malformed expression or a value that is not valid YAML.
        KeyError: a list entry that no name or index matches.
    """
    key, value = parse_set(expression)
    set_dotted(data, key, value)


# ----------------------------------------------------------------------------------------------------- validation


def parse_matrix(data: dict[str, Any], source: str = "<dict>", overrides: Sequence[str] = ()) -> Matrix:
    """Validate a raw (merged) matrix mapping; raise one :class:`MatrixError` listing every problem.

    Structure and types come from :class:`~bench.runner.matrix_spec.MatrixFile`; names, constructor parameters and
    cross-references from :func:`bench.runner.matrix_checks.resolve` (both run, so all problems come at once).
    """
    import copy

    from bench.runner.matrix_checks import resolve

    data = copy.deepcopy(dict(data))
    data.pop("include", None)
    problems = apply_overrides(data, overrides)
    spec, structural = validate_model(MatrixFile, data)
    problems += structural
    matrix, resolved = resolve(data, spec, source=source, overrides=tuple(overrides))  # type: ignore[arg-type]
    problems += resolved
    if problems or matrix is None:
        raise MatrixError(source, problems or ["does not validate"])
    return matrix


def load_matrix(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Matrix:
    """Load, merge includes, apply ``--set`` overrides and validate a matrix (packaged name or path)."""
    path = resolve_matrix_path(name_or_path)
    data = read_matrix_file(path)
    logger.debug("matrix %s read from %s", data.get("name"), path)
    return parse_matrix(data, source=str(path), overrides=overrides)
