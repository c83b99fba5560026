"""Declared evaluation matrices: YAML files parsed into frozen dataclasses and validated before any work.

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
    attacks:                                           # optional; absent = no attack at all
      - {name: none}                                   # the unattacked cells (list it to keep them)
      - {name: pgd, attack: pgd, params: {steps: 3}, epsilons: [2/255, 5/255], conditions: [clean],
         eot_samples: 4, restarts: 1, transfer_from_base: true, surrogate: null, loss: l1_perceptual}
    attack_images: 2                                   # attacked cells use the first N images of each dataset
    stochastic_seeds: [0, 1, 2]                        # seeds of stochastic methods (default: ``seeds``)
    smoothing:                                         # CertSR (median smoothing): sigma selection + certificates
      sigma_grid: [0.01, 0.02, 0.03, 0.05]             # null = no smoothing
      validation: {dataset: embedded-train, crop: 128, images: 3}   # or images: [a, b]; other keys: dataset args
      metric: lpips_alex
      certify: {epsilons: [0.005, 0.01, 0.02], n_samples: 100, alpha: 0.001}

Conditions may declare ``severities: [1, 3, 5]`` instead of ``params``: the entry expands into one condition per
level, named ``<name>-s<level>``, with the parameters of :data:`bench.corruptions.severity.SEVERITIES` and
``family: <name>`` (the report draws metric-vs-severity curves per family).

Attacks (``attacks:``): each entry names a registered attack (:data:`bench.attacks.ATTACKS`) and its ``params``; an
``epsilons`` list (numbers or ``a/b`` strings) expands into one setting per budget, passed as ``eps``. ``conditions``
restricts the entry to some conditions (default: all). ``eot_samples`` and ``restarts`` apply to stochastic methods
(EOT, worst of the restarts); deterministic methods get one draw and one run. ``surrogate`` names a method card used
to attack non-differentiable methods by transfer (without it they are refused: failure rows with the message).
``transfer_from_base: true`` adds, for stochastic wrapper methods (median smoothing), cells attacked by transfer from
their base card, besides the adaptive (EOT) ones. ``loss`` is the attack loss (a name of
:data:`bench.attacks.ATTACK_LOSSES` or ``{name, **params}``; default ``l1_perceptual``, CertSR's). A cell is
(method, dataset, condition, attack setting, seed).

Defaults: ``crop_border`` of the PSNR/SSIM family (names starting ``psnr``/``ssim``) is the scale, 0 for the others;
a condition's ``severity`` is its single parameter's value (0 for ``clean``, ``k=v,...`` for several) unless given;
``attack: none`` and ``epsilon: 0`` are reserved for attacks.

Overrides (``--set``) are dotted paths applied to the merged YAML before validation: ``conditions.noise.params.sigma=
0.05`` (entries of a list are addressed by their ``name`` or by index), ``methods=[bicubic]``, ``datasets.0.crop=128``.
Values are parsed as YAML scalars/flow collections.

Validation collects every problem — unknown keys, unknown dataset/method/corruption/metric names (with the
registry's suggestions), corruption parameters the constructor rejects, dataset arguments the factory does not take,
duplicate names — and raises one :class:`MatrixError` naming the file.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

MATRICES_DIR = Path(__file__).resolve().parent.parent / "matrices"
SUPPORTED_VERSIONS = (1,)

_TOP_KEYS = frozenset(
    {
        "version",
        "name",
        "description",
        "include",
        "scale",
        "datasets",
        "methods",
        "conditions",
        "metrics",
        "seeds",
        "gallery",
        "batch_images",
        "store_outputs",
        "attacks",
        "attack_images",
        "stochastic_seeds",
        "smoothing",
    }
)
_CONDITION_KEYS = frozenset({"name", "corruption", "params", "severity", "severities", "attack", "epsilon"})
_ATTACK_KEYS = frozenset(
    {
        "name",
        "attack",
        "params",
        "epsilons",
        "conditions",
        "eot_samples",
        "restarts",
        "surrogate",
        "transfer_from_base",
        "loss",
    }
)
DEFAULT_ATTACK_LOSS: dict[str, Any] = {"name": "l1_perceptual"}
_SMOOTHING_KEYS = frozenset({"sigma_grid", "validation", "metric", "certify", "seed"})
_VALIDATION_KEYS = frozenset({"dataset", "crop", "images"})
_CERTIFY_KEYS = frozenset({"epsilons", "n_samples", "alpha"})
NO_ATTACK = "none"
_METRIC_KEYS = frozenset({"name", "crop_border"})
_GALLERY_KEYS = frozenset({"image", "size", "dataset"})
_SCALE_CROPPED_PREFIXES = ("psnr", "ssim")


class MatrixError(ValueError):
    """A matrix file that cannot be used; the message lists every problem found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"matrix {source}: {n} problem{'s' if n != 1 else ''}\n{lines}")


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the matrix: registered name, optional HR crop, extra factory arguments (e.g. ``path``)."""

    name: str
    crop: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

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


@dataclass(frozen=True)
class Condition:
    """What is done to the LR input: a corruption with its parameters (attacks reserved: ``none`` / 0)."""

    name: str
    corruption: str = "clean"
    params: dict[str, Any] = field(default_factory=dict)
    severity: Any = 0
    attack: str = "none"
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


@dataclass(frozen=True)
class MetricEntry:
    """A metric to compute and its ``crop_border``."""

    name: str
    crop_border: int = 0


@dataclass(frozen=True)
class AttackEntry:
    """One entry of ``attacks:`` as declared (before the ``epsilons`` expansion)."""

    name: str
    attack: str = NO_ATTACK
    params: dict[str, Any] = field(default_factory=dict)
    epsilons: tuple[float, ...] | None = None
    conditions: tuple[str, ...] | None = None
    eot_samples: int | None = None
    restarts: int = 1
    surrogate: str | None = None
    transfer_from_base: bool = False
    loss: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ATTACK_LOSS))

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

    ``variant`` is ``"direct"`` (gradients through the method itself: white-box, or EOT for a stochastic method),
    ``"transfer"`` (made on ``surrogate``, the matrix's surrogate for a non-differentiable method) or
    ``"transfer-from-base"`` (made on the base card of a wrapper method). :data:`NO_THREAT` is the unattacked cell.
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
        return f"{self.name} eps={format_epsilon(self.epsilon)}{via.get(self.variant, '')}"


NO_THREAT = Threat()


def format_epsilon(eps: float) -> str:
    """``0.0392..`` -> ``"10/255"`` when it is a whole number of 8-bit levels, else ``"0.05"``."""
    levels = eps * 255
    if eps > 0 and abs(levels - round(levels)) < 1e-6:
        return f"{round(levels)}/255"
    return f"{eps:g}"


def parse_epsilon(value: Any) -> float:
    """A number, or a string ``"a/b"`` (``"10/255"``) -> float; ``ValueError`` otherwise or when negative."""
    if isinstance(value, bool):
        raise ValueError(f"not an epsilon: {value!r}")
    if isinstance(value, str):
        num, sep, den = value.partition("/")
        try:
            eps = float(num) / float(den) if sep else float(num)
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"not an epsilon: {value!r} (write 10/255 or 0.039)") from exc
    elif isinstance(value, (int, float)):
        eps = float(value)
    else:
        raise ValueError(f"not an epsilon: {value!r}")
    if not eps >= 0 or eps != eps:
        raise ValueError(f"epsilon must be >= 0, got {value!r}")
    return eps


@dataclass(frozen=True)
class Validation:
    """The sigma-selection split: a dataset (disjoint from the evaluation), its HR crop, its images."""

    dataset: str = "embedded-train"
    crop: int | None = 128
    images: int | tuple[str, ...] = 3
    kwargs: dict[str, Any] = field(default_factory=dict)  # other dataset factory arguments (e.g. ``path``)

    def entry(self) -> DatasetEntry:
        return DatasetEntry(self.dataset, self.crop, dict(self.kwargs))

    def identity(self) -> dict[str, Any]:
        images = self.images if isinstance(self.images, int) else list(self.images)
        return {**self.entry().identity(), "images": images}


@dataclass(frozen=True)
class CertifySpec:
    """Certified columns of median smoothing: L2 budgets (LR, [0, 1] units), samples and miscoverage per bound."""

    epsilons: tuple[float, ...]
    n_samples: int | None = None
    alpha: float = 0.001

    def identity(self) -> dict[str, Any]:
        return {"epsilons": list(self.epsilons), "n_samples": self.n_samples, "alpha": self.alpha}


@dataclass(frozen=True)
class Smoothing:
    """The ``smoothing:`` section: sigma selection for ``sigma: auto`` cards and the certified columns."""

    sigma_grid: tuple[float | None, ...]
    validation: Validation = field(default_factory=Validation)
    metric: str = "lpips_alex"
    certify: CertifySpec | None = None
    seed: int = 0

    def selection_identity(self) -> dict[str, Any]:
        return {
            "sigma_grid": list(self.sigma_grid),
            "validation": self.validation.identity(),
            "metric": self.metric,
            "seed": self.seed,
        }

    def identity(self) -> dict[str, Any]:
        return {**self.selection_identity(), "certify": None if self.certify is None else self.certify.identity()}


@dataclass(frozen=True)
class Gallery:
    """The image shown as crops in the report: its name, the LR crop size, optionally the dataset it comes from."""

    image: str
    size: int = 48
    dataset: str | None = None


@dataclass(frozen=True)
class Matrix:
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
    #: keep every SR output (``<run>/outputs/<key>.safetensors``) so that a metric added later runs no model
    store_outputs: bool = False

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
            "gallery": None if self.gallery is None else vars(self.gallery).copy(),
            "batch_images": self.batch_images,
            "source": self.source,
            "overrides": list(self.overrides),
            "attacks": [a.as_dict() for a in self.attacks],
            "attack_images": self.attack_images,
            "stochastic_seeds": None if self.stochastic_seeds is None else list(self.stochastic_seeds),
            "smoothing": None if self.smoothing is None else self.smoothing.identity(),
            "store_outputs": self.store_outputs,
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


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_matrix_file(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a matrix YAML and resolve its ``include:`` chain (relative to the file, or a packaged name)."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise MatrixError(str(path), [f"include cycle: {chain}"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MatrixError(str(path), [f"invalid YAML: {exc}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MatrixError(str(path), [f"top level must be a mapping, got {type(data).__name__}"])
    include = data.pop("include", None)
    if include is None:
        return data
    includes = include if isinstance(include, list) else [include]
    merged: dict[str, Any] = {}
    for inc in includes:
        inc_path = (path.parent / str(inc)) if (path.parent / str(inc)).is_file() else resolve_matrix_path(str(inc))
        merged = _deep_merge(merged, read_matrix_file(inc_path, (*_seen, path)))
    return _deep_merge(merged, data)


# ------------------------------------------------------------------------------------------------------ overrides


def _entry_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping) and "name" in entry:
        return str(entry["name"])
    return None


def _list_index(node: list, key: str, where: str) -> int:
    names = [_entry_name(e) for e in node]
    if key in names:
        return names.index(key)
    if key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        return int(key)
    known = ", ".join(n for n in names if n is not None)
    raise KeyError(f"{where}: no entry named {key!r} (entries: {known}; an index 0..{len(node) - 1} works too)")


def apply_override(data: dict[str, Any], expression: str) -> None:
    """Apply one ``dotted.path=value`` override to the raw matrix mapping in place."""
    path, sep, raw = expression.partition("=")
    if not sep or not path.strip():
        raise ValueError(f"override {expression!r}: expected key.path=value")
    value = yaml.safe_load(raw) if raw.strip() else ""
    keys = path.strip().split(".")
    node: Any = data
    for depth, key in enumerate(keys):
        where = ".".join(keys[:depth]) or "<top>"
        last = depth == len(keys) - 1
        if isinstance(node, list):
            idx = _list_index(node, key, where)
            if last:
                node[idx] = value
            else:
                if isinstance(node[idx], str):  # a bare name becomes a mapping so a sub-key can be set
                    node[idx] = {"name": node[idx]}
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
        else:
            raise ValueError(f"override {expression!r}: {where} is a {type(node).__name__}, cannot index it")


# ----------------------------------------------------------------------------------------------------- validation


def _check_keys(mapping: Mapping[str, Any], allowed: Iterable[str], where: str, problems: list[str]) -> None:
    allowed = sorted(allowed)
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key_error_text(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def _default_severity(corruption: str, params: Mapping[str, Any]) -> Any:
    if not params:
        return 0
    if len(params) == 1:
        return next(iter(params.values()))
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def _parse_datasets(raw: Any, scale: int, problems: list[str]) -> list[DatasetEntry]:
    from bench.data import DATASETS

    if not isinstance(raw, list) or not raw:
        problems.append("datasets: expected a non-empty list of {name, crop?, ...}")
        return []
    out: list[DatasetEntry] = []
    for i, item in enumerate(raw):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping) or "name" not in entry:
            problems.append(f"datasets[{i}]: expected a name or a mapping with 'name', got {item!r}")
            continue
        entry = dict(entry)
        name = str(entry.pop("name"))
        crop = entry.pop("crop", None)
        where = f"datasets[{i}] ({name})"
        if crop is not None and (not _is_int(crop) or crop <= 0):
            problems.append(f"{where}: crop must be a positive integer or null, got {crop!r}")
            crop = None
        try:
            canonical = DATASETS.canonical(name)
        except KeyError as exc:
            problems.append(f"{where}: {_key_error_text(exc)}")
            continue
        factory = DATASETS.get(canonical)
        dataset = DatasetEntry(name=name, crop=crop, kwargs=entry)
        try:
            inspect.signature(factory).bind(**dataset.factory_kwargs(factory, scale))
        except TypeError as exc:
            problems.append(f"{where}: the dataset factory rejects these arguments: {exc}")
            continue
        except ValueError:  # no signature available (a C callable): accept and let the run report it
            pass
        out.append(dataset)
    names = [d.name for d in out]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"datasets: {dup!r} appears more than once (records are labelled by dataset name)")
    return out


def _parse_methods(raw: Any, problems: list[str]) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        problems.append("methods: expected a non-empty list of method card names")
        return []
    from bench.methods.cards import load_card

    for name in raw:
        try:
            load_card(name)
        except (KeyError, FileNotFoundError, ValueError, TypeError) as exc:
            problems.append(f"methods: {name!r}: {_key_error_text(exc)}")
    for dup in sorted({m for m in raw if raw.count(m) > 1}):
        problems.append(f"methods: {dup!r} appears more than once")
    return list(raw)


def _parse_conditions(raw: Any, problems: list[str]) -> list[Condition]:
    from bench.corruptions import CORRUPTIONS, build_corruption

    if not isinstance(raw, list) or not raw:
        problems.append("conditions: expected a non-empty list of {name, corruption, params}")
        return []
    out: list[Condition] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or "name" not in item:
            problems.append(f"conditions[{i}]: expected a mapping with 'name', got {item!r}")
            continue
        name = str(item["name"])
        where = f"conditions[{i}] ({name})"
        _check_keys(item, _CONDITION_KEYS, where, problems)
        corruption = str(item.get("corruption", "clean"))
        params = item.get("params") or {}
        if not isinstance(params, Mapping):
            problems.append(f"{where}: params must be a mapping, got {params!r}")
            continue
        attack = str(item.get("attack", "none"))
        epsilon = item.get("epsilon", 0)
        if attack != "none" or epsilon not in (0, 0.0):
            problems.append(
                f"{where}: a condition is a corruption; declare attacks in the matrix's 'attacks:' list "
                "(attack must be 'none' and epsilon 0 here)"
            )
        try:
            corruption = CORRUPTIONS.canonical(corruption)
        except KeyError as exc:
            problems.append(f"{where}: {_key_error_text(exc)}")
            continue
        if "severities" in item:
            out.extend(_severity_conditions(item, name, corruption, params, where, problems))
            continue
        try:
            build_corruption(corruption, **params)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: corruption {corruption!r} rejects params {dict(params)}: {exc}")
            continue
        severity = item.get("severity", _default_severity(corruption, params))
        out.append(Condition(name, corruption, dict(params), severity, attack, float(epsilon)))
    names = [c.name for c in out]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"conditions: duplicate condition name {dup!r}")
    return out


def _severity_conditions(
    item: Mapping[str, Any], name: str, corruption: str, params: Mapping[str, Any], where: str, problems: list[str]
) -> list[Condition]:
    """``severities: [1, 3, 5]`` -> conditions ``<name>-s<level>`` with the table's parameters (family ``name``)."""
    from bench.corruptions.severity import SEVERITIES, corruption_at

    levels = item["severities"]
    if params or "severity" in item:
        problems.append(f"{where}: give either severities or params/severity, not both")
        return []
    if corruption not in SEVERITIES:
        problems.append(f"{where}: corruption {corruption!r} has no severity table; known: {', '.join(SEVERITIES)}")
        return []
    if not isinstance(levels, list) or not levels or not all(_is_int(v) for v in levels):
        problems.append(f"{where}: severities must be a non-empty list of integers, got {levels!r}")
        return []
    out = []
    for level in levels:
        try:
            corruption_at(corruption, level)
        except (KeyError, ValueError) as exc:
            problems.append(f"{where}: severity {level}: {_key_error_text(exc)}")
            continue
        level_params = dict(SEVERITIES[corruption][level - 1])
        out.append(Condition(f"{name}-s{level}", corruption, level_params, level, family=name))
    return out


def _positive_int_or_none(value: Any, where: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        problems.append(f"{where}: must be a positive integer or null, got {value!r}")
        return None
    return value


def _parse_attacks(raw: Any, conditions: Sequence[Condition], problems: list[str]) -> list[AttackEntry]:
    """Validate ``attacks:``: names, registered attacks, parameters the constructor accepts, budgets, conditions."""
    from bench.attacks import ATTACKS, build_attack

    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        problems.append("attacks: expected a non-empty list of {name, attack, params, epsilons}")
        return []
    condition_names = {c.name for c in conditions}
    out: list[AttackEntry] = []
    for i, item in enumerate(raw):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping) or "name" not in entry:
            problems.append(f"attacks[{i}]: expected a name or a mapping with 'name', got {item!r}")
            continue
        name = str(entry["name"])
        where = f"attacks[{i}] ({name})"
        _check_keys(entry, _ATTACK_KEYS, where, problems)
        attack = str(entry.get("attack", name))
        conds = entry.get("conditions")
        if conds is not None:
            if not isinstance(conds, list) or not all(isinstance(c, str) for c in conds):
                problems.append(f"{where}: conditions must be a list of condition names, got {conds!r}")
                conds = None
            else:
                unknown = [c for c in conds if c not in condition_names]
                if unknown:
                    problems.append(
                        f"{where}: unknown conditions {unknown}; known: {', '.join(sorted(condition_names))}"
                    )
                conds = tuple(conds)
        if attack == NO_ATTACK:
            extra = sorted(set(entry) - {"name", "attack", "conditions"})
            if extra:
                problems.append(f"{where}: 'none' (no attack) takes no {', '.join(extra)}")
            out.append(AttackEntry(name, NO_ATTACK, conditions=conds))
            continue
        params = entry.get("params") or {}
        if not isinstance(params, Mapping):
            problems.append(f"{where}: params must be a mapping, got {params!r}")
            continue
        params = dict(params)
        for reserved in ("loss", "surrogate", "eot_samples", "restarts"):
            if reserved in params and not (attack == "eot" and reserved == "restarts"):
                problems.append(f"{where}: params.{reserved} is set by the runner (use the entry's own key)")
        try:
            attack = ATTACKS.canonical(attack)
        except KeyError as exc:
            problems.append(f"{where}: {_key_error_text(exc)}")
            continue
        epsilons = entry.get("epsilons")
        if epsilons is not None:
            if "eps" in params:
                problems.append(f"{where}: give the budget either as epsilons or as params.eps, not both")
            if not isinstance(epsilons, list) or not epsilons:
                problems.append(f"{where}: epsilons must be a non-empty list, got {epsilons!r}")
                continue
            try:
                epsilons = tuple(parse_epsilon(e) for e in epsilons)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if len(set(epsilons)) != len(epsilons):
                problems.append(f"{where}: repeated epsilons {list(epsilons)}")
        eot = _positive_int_or_none(entry.get("eot_samples"), f"{where}: eot_samples", problems)
        restarts = entry.get("restarts", 1)
        if not _is_int(restarts) or restarts < 1:
            problems.append(f"{where}: restarts must be a positive integer, got {restarts!r}")
            restarts = 1
        surrogate = entry.get("surrogate")
        if surrogate is not None:
            from bench.methods.cards import load_card

            try:
                load_card(str(surrogate))
            except (KeyError, FileNotFoundError, ValueError, TypeError) as exc:
                problems.append(f"{where}: surrogate {surrogate!r}: {_key_error_text(exc)}")
            surrogate = str(surrogate)
        transfer = entry.get("transfer_from_base", False)
        if not isinstance(transfer, bool):
            problems.append(f"{where}: transfer_from_base must be true or false, got {transfer!r}")
            transfer = False
        loss = _parse_attack_loss(entry.get("loss", DEFAULT_ATTACK_LOSS), where, problems)
        for eps in epsilons if epsilons is not None else (None,):
            try:
                build_attack(attack, **params, **({} if eps is None else {"eps": eps}))
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: attack {attack!r} rejects params {params} (eps={eps}): {exc}")
                break
        out.append(AttackEntry(name, attack, params, epsilons, conds, eot, restarts, surrogate, transfer, loss))
    names = [str(e["name"]) if isinstance(e, Mapping) and "name" in e else str(e) for e in raw]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"attacks: duplicate attack name {dup!r}")
    return out


def _parse_attack_loss(raw: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """``loss: l1`` or ``loss: {name: l1_perceptual, l1_weight: 0.01}`` -> ``{"name": ..., **params}`` (checked)."""
    from bench.attacks import ATTACK_LOSSES

    loss = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(loss, Mapping) or "name" not in loss:
        problems.append(f"{where}: loss must be a name or a mapping with 'name', got {raw!r}")
        return dict(DEFAULT_ATTACK_LOSS)
    loss = dict(loss)
    try:
        cls = ATTACK_LOSSES.get(str(loss["name"]))
        loss["name"] = ATTACK_LOSSES.canonical(str(loss["name"]))
        inspect.signature(cls).bind(**{k: v for k, v in loss.items() if k != "name"})
    except KeyError as exc:
        problems.append(f"{where}: loss: {_key_error_text(exc)}")
    except TypeError as exc:
        problems.append(f"{where}: loss {loss['name']!r} rejects {loss}: {exc}")
    return loss


def _parse_smoothing(raw: Any, datasets: Sequence[DatasetEntry], scale: int, problems: list[str]) -> Smoothing | None:
    """Validate ``smoothing:`` (sigma grid, validation split disjoint from the evaluation, certification)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"smoothing: expected a mapping, got {raw!r}")
        return None
    _check_keys(raw, _SMOOTHING_KEYS, "smoothing", problems)
    grid = raw.get("sigma_grid")
    if not isinstance(grid, list) or not grid:
        problems.append(f"smoothing.sigma_grid: expected a non-empty list of sigmas (null = none), got {grid!r}")
        grid = []
    clean_grid: list[float | None] = []
    for value in grid:
        if value is None:
            clean_grid.append(None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            clean_grid.append(float(value))
        else:
            problems.append(f"smoothing.sigma_grid: {value!r} is neither a positive number nor null")
    if len(set(clean_grid)) != len(clean_grid):
        problems.append(f"smoothing.sigma_grid: repeated values in {grid}")
    raw_val = raw.get("validation") or {}
    validation = Validation()
    if not isinstance(raw_val, Mapping):
        problems.append(f"smoothing.validation: expected a mapping, got {raw_val!r}")
    else:
        ds = str(raw_val.get("dataset", validation.dataset))
        crop = raw_val.get("crop", validation.crop)
        images = raw_val.get("images", validation.images)
        kwargs = {k: v for k, v in raw_val.items() if k not in _VALIDATION_KEYS}
        from bench.data import DATASETS

        try:
            factory = DATASETS.get(ds)
            inspect.signature(factory).bind(**DatasetEntry(ds, None, kwargs).factory_kwargs(factory, scale))
        except KeyError as exc:
            problems.append(f"smoothing.validation: {_key_error_text(exc)}")
        except TypeError as exc:
            problems.append(f"smoothing.validation: the dataset factory rejects these arguments: {exc}")
        if any(d.name == ds and d.kwargs == kwargs for d in datasets):
            problems.append(
                f"smoothing.validation: dataset {ds!r} is also evaluated; sigma must be chosen on a disjoint split "
                "(e.g. embedded-train for embedded-eval)"
            )
        if crop is not None and (not _is_int(crop) or crop <= 0 or crop % scale):
            problems.append(f"smoothing.validation: crop must be a positive multiple of {scale} or null, got {crop!r}")
        if isinstance(images, list) and images and all(isinstance(n, str) for n in images):
            images = tuple(images)
        elif not _is_int(images) or images < 1:
            problems.append(f"smoothing.validation: images must be a positive count or a list of names, got {images!r}")
            images = 3
        validation = Validation(ds, crop, images, kwargs)
    metric = str(raw.get("metric", "lpips_alex"))
    from bench.metrics import METRICS

    try:
        metric = METRICS.canonical(metric)
    except KeyError as exc:
        problems.append(f"smoothing.metric: {_key_error_text(exc)}")
    certify = None
    raw_cert = raw.get("certify")
    if raw_cert is not None:
        if not isinstance(raw_cert, Mapping):
            problems.append(f"smoothing.certify: expected a mapping, got {raw_cert!r}")
        else:
            _check_keys(raw_cert, _CERTIFY_KEYS, "smoothing.certify", problems)
            try:
                eps = tuple(parse_epsilon(e) for e in raw_cert.get("epsilons") or [])
            except ValueError as exc:
                problems.append(f"smoothing.certify.epsilons: {exc}")
                eps = ()
            if not eps:
                problems.append("smoothing.certify.epsilons: expected a non-empty list of L2 budgets")
            n = _positive_int_or_none(raw_cert.get("n_samples"), "smoothing.certify.n_samples", problems)
            alpha = raw_cert.get("alpha", 0.001)
            if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha < 0.5:
                problems.append(f"smoothing.certify.alpha: must be in (0, 0.5), got {alpha!r}")
                alpha = 0.001
            certify = CertifySpec(eps, n, float(alpha))
    seed = raw.get("seed", 0)
    if not _is_int(seed):
        problems.append(f"smoothing.seed: must be an integer, got {seed!r}")
        seed = 0
    return Smoothing(tuple(clean_grid), validation, metric, certify, seed)


def _metric_accepts(factory: Any, kwargs: Mapping[str, Any]) -> str | None:
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        return str(exc)
    except ValueError:
        return None
    return None


def _parse_metrics(raw: Any, scale: int, problems: list[str]) -> list[MetricEntry]:
    from bench.metrics import METRICS

    if not isinstance(raw, list) or not raw:
        problems.append("metrics: expected a non-empty list of names or {name, crop_border}")
        return []
    out: list[MetricEntry] = []
    for i, item in enumerate(raw):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping) or "name" not in entry:
            problems.append(f"metrics[{i}]: expected a name or a mapping with 'name', got {item!r}")
            continue
        where = f"metrics[{i}] ({entry['name']})"
        _check_keys(entry, _METRIC_KEYS, where, problems)
        try:
            name = METRICS.canonical(str(entry["name"]))
        except KeyError as exc:
            problems.append(f"{where}: {_key_error_text(exc)}")
            continue
        default = scale if name.startswith(_SCALE_CROPPED_PREFIXES) else 0
        crop = entry.get("crop_border", default)
        if not _is_int(crop) or crop < 0:
            problems.append(f"{where}: crop_border must be a non-negative integer, got {crop!r}")
            continue
        rejected = _metric_accepts(METRICS.get(name), {"crop_border": crop})
        if rejected:
            problems.append(f"{where}: the metric rejects crop_border={crop}: {rejected}")
            continue
        out.append(MetricEntry(name=name, crop_border=crop))
    keys = [(m.name, m.crop_border) for m in out]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"metrics: {dup[0]} with crop_border {dup[1]} appears more than once")
    names = [m.name for m in out]
    for dup in sorted({n for n in names if names.count(n) > 1} - {k[0] for k in keys if keys.count(k) > 1}):
        problems.append(f"metrics: {dup!r} appears with several crop borders; tables are keyed by metric name")
    return out


def parse_matrix(data: Mapping[str, Any], source: str = "<dict>", overrides: Sequence[str] = ()) -> Matrix:
    """Validate a raw (merged) matrix mapping; raise one :class:`MatrixError` listing every problem."""
    problems: list[str] = []
    data = copy.deepcopy(dict(data))
    data.pop("include", None)
    for expr in overrides:
        try:
            apply_override(data, expr)
        except (KeyError, ValueError) as exc:
            problems.append(f"--set {expr}: {_key_error_text(exc)}")
    _check_keys(data, _TOP_KEYS - {"include"}, "top level", problems)

    version = data.get("version", 1)
    if version not in SUPPORTED_VERSIONS:
        problems.append(f"version: {version!r} is not supported (supported: {list(SUPPORTED_VERSIONS)})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        problems.append("name: required (a non-empty string)")
        name = str(name or "unnamed")
    description = str(data.get("description", ""))
    scale = data.get("scale", 4)
    if not _is_int(scale) or scale < 1:
        problems.append(f"scale: must be a positive integer, got {scale!r}")
        scale = 4
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        problems.append(f"seeds: expected a non-empty list of integers, got {seeds!r}")
        seeds = [0]
    elif len(set(seeds)) != len(seeds):
        problems.append(f"seeds: duplicates in {seeds}")
    batch_images = data.get("batch_images", 1)
    if not _is_int(batch_images) or batch_images < 1:
        problems.append(f"batch_images: must be a positive integer, got {batch_images!r}")
        batch_images = 1
    store_outputs = data.get("store_outputs", False)
    if not isinstance(store_outputs, bool):
        problems.append(f"store_outputs: must be true or false, got {store_outputs!r}")
        store_outputs = False

    datasets = _parse_datasets(data.get("datasets"), scale, problems)
    methods = _parse_methods(data.get("methods"), problems)
    conditions = _parse_conditions(data.get("conditions"), problems)
    metrics = _parse_metrics(data.get("metrics"), scale, problems)
    attacks = _parse_attacks(data.get("attacks"), conditions, problems)
    attack_images = _positive_int_or_none(data.get("attack_images"), "attack_images", problems)
    stochastic_seeds = data.get("stochastic_seeds")
    if stochastic_seeds is not None:
        if (
            not isinstance(stochastic_seeds, list)
            or not stochastic_seeds
            or not all(_is_int(x) for x in stochastic_seeds)
        ):
            problems.append(f"stochastic_seeds: expected a non-empty list of integers, got {stochastic_seeds!r}")
            stochastic_seeds = None
        elif len(set(stochastic_seeds)) != len(stochastic_seeds):
            problems.append(f"stochastic_seeds: duplicates in {stochastic_seeds}")
        else:
            stochastic_seeds = tuple(stochastic_seeds)
    smoothing = _parse_smoothing(data.get("smoothing"), datasets, scale, problems)

    gallery = None
    raw_gallery = data.get("gallery")
    if raw_gallery is not None:
        if not isinstance(raw_gallery, Mapping) or "image" not in raw_gallery:
            problems.append(f"gallery: expected {{image: NAME, size: N}}, got {raw_gallery!r}")
        else:
            _check_keys(raw_gallery, _GALLERY_KEYS, "gallery", problems)
            size = raw_gallery.get("size", 48)
            if not _is_int(size) or size < 1:
                problems.append(f"gallery: size must be a positive integer (LR pixels), got {size!r}")
                size = 48
            ds = raw_gallery.get("dataset")
            if ds is not None and ds not in [d.name for d in datasets]:
                problems.append(f"gallery: dataset {ds!r} is not one of the matrix's datasets")
            gallery = Gallery(image=str(raw_gallery["image"]), size=size, dataset=ds)

    if problems:
        raise MatrixError(source, problems)
    return Matrix(
        name=name,
        description=description,
        scale=scale,
        datasets=tuple(datasets),
        methods=tuple(methods),
        conditions=tuple(conditions),
        metrics=tuple(metrics),
        seeds=tuple(seeds),
        gallery=gallery,
        batch_images=batch_images,
        version=version,
        source=source,
        overrides=tuple(overrides),
        attacks=tuple(attacks),
        attack_images=attack_images,
        stochastic_seeds=stochastic_seeds,
        smoothing=smoothing,
        store_outputs=store_outputs,
    )


def load_matrix(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Matrix:
    """Load, merge includes, apply ``--set`` overrides and validate a matrix (packaged name or path)."""
    path = resolve_matrix_path(name_or_path)
    data = read_matrix_file(path)
    logger.debug("matrix %s read from %s", data.get("name"), path)
    return parse_matrix(data, source=str(path), overrides=overrides)
