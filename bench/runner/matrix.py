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
    }
)
_CONDITION_KEYS = frozenset({"name", "corruption", "params", "severity", "attack", "epsilon"})
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

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in ``run.json``)."""
        return {
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "scale": self.scale,
            "datasets": [d.identity() for d in self.datasets],
            "methods": list(self.methods),
            "conditions": [{**c.identity(), "severity": c.severity} for c in self.conditions],
            "metrics": [{"name": m.name, "crop_border": m.crop_border} for m in self.metrics],
            "seeds": list(self.seeds),
            "gallery": None if self.gallery is None else vars(self.gallery).copy(),
            "batch_images": self.batch_images,
            "source": self.source,
            "overrides": list(self.overrides),
        }

    @property
    def uses_crops(self) -> bool:
        return any(d.crop is not None for d in self.datasets)


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
            problems.append(f"{where}: attacks are not available yet (attack must be 'none' and epsilon 0)")
        try:
            corruption = CORRUPTIONS.canonical(corruption)
            build_corruption(corruption, **params)
        except KeyError as exc:
            problems.append(f"{where}: {_key_error_text(exc)}")
            continue
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: corruption {corruption!r} rejects params {dict(params)}: {exc}")
            continue
        severity = item.get("severity", _default_severity(corruption, params))
        out.append(Condition(name, corruption, dict(params), severity, attack, float(epsilon)))
    names = [c.name for c in out]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"conditions: duplicate condition name {dup!r}")
    return out


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

    datasets = _parse_datasets(data.get("datasets"), scale, problems)
    methods = _parse_methods(data.get("methods"), problems)
    conditions = _parse_conditions(data.get("conditions"), problems)
    metrics = _parse_metrics(data.get("metrics"), scale, problems)

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
    )


def load_matrix(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Matrix:
    """Load, merge includes, apply ``--set`` overrides and validate a matrix (packaged name or path)."""
    path = resolve_matrix_path(name_or_path)
    data = read_matrix_file(path)
    logger.debug("matrix %s read from %s", data.get("name"), path)
    return parse_matrix(data, source=str(path), overrides=overrides)
