"""The registry pass of a matrix: names, constructor parameters and cross-references, then the resolved Matrix.

:class:`bench.runner.matrix_spec.MatrixFile` checks the structure; this module checks what needs the registries and
the method cards — dataset/method/corruption/metric/attack/loss names (the registry's ``KeyError`` text, which lists
the closest names), dataset factory and corruption/attack/metric constructor arguments, method cards whose scale
differs from the matrix's, condition names an attack refers to, the sigma-selection split being disjoint from the
evaluation, the gallery's dataset. It works entry by entry on the raw mapping, so it reports its problems even when
another part of the file is malformed (every problem at once); each problem starts with the entry's dotted key
(``conditions.noise.params``). When nothing is wrong it builds the :class:`~bench.runner.matrix.Matrix`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from bench.config.loader import entry_name, suggestion
from bench.config.models import AsName
from bench.runner.matrix import (
    AttackEntry,
    CertifySpec,
    Condition,
    DatasetEntry,
    Gallery,
    Matrix,
    MetricEntry,
    Smoothing,
    SrSpace,
    Validation,
)
from bench.runner.matrix_spec import (
    NO_ATTACK,
    SR_SPACE_COLUMNS,
    AttackSpec,
    ConditionSpec,
    DatasetSpec,
    MatrixFile,
    MetricSpec,
    SmoothingSpec,
    SrSpaceSpec,
    ValidationSpec,
)

_ADAPTERS: dict[Any, TypeAdapter] = {}


def _parse(kind: Any, item: Any) -> Any:
    """``item`` validated as ``kind`` (a bare name accepted), or ``None`` (the structural pass reports why)."""
    adapter = _ADAPTERS.setdefault(kind, TypeAdapter(Annotated[kind, AsName]))
    try:
        return adapter.validate_python(item)
    except ValidationError:
        return None


def _entries(raw: Any, kind: Any) -> list[Any]:
    if not isinstance(raw, list):
        return []
    return [spec for spec in (_parse(kind, item) for item in raw) if spec is not None]


def _msg(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _bind(factory: Any, kwargs: Mapping[str, Any]) -> str | None:
    """Why ``factory(**kwargs)`` would be refused by its signature (with the closest parameter), else ``None``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature available (a C callable): the run reports it
        return None
    try:
        sig.bind(**kwargs)
    except TypeError as exc:
        known = [p for p in sig.parameters if p not in ("self", "args", "kwargs")]
        unknown = [k for k in kwargs if k not in sig.parameters]
        hint = suggestion(unknown[0], known) if unknown else ""
        return f"{exc}{hint}"
    return None


def _repeated(raw: Any, what: str, label: str, problems: list[str]) -> None:
    """A problem per name that several entries of the raw list ``raw`` share."""
    names = [entry_name(e) for e in raw] if isinstance(raw, list) else []
    for dup in sorted({n for n in names if n is not None and names.count(n) > 1}):
        problems.append(f"{what}: duplicate {label} name {dup!r}")


def _datasets(raw: Any, scale: int, problems: list[str]) -> list[DatasetEntry]:
    from bench.data import DATASETS

    out = []
    for spec in _entries(raw, DatasetSpec):
        where = f"datasets.{spec.name}"
        kwargs = dict(spec.model_extra or {})
        try:
            factory = DATASETS.get(spec.name)
        except KeyError as exc:
            problems.append(f"{where}: {_msg(exc)}")
            continue
        entry = DatasetEntry(spec.name, spec.crop, kwargs)
        rejected = _bind(factory, entry.factory_kwargs(factory, scale))
        if rejected:
            problems.append(f"{where}: the dataset factory rejects these arguments: {rejected}")
            continue
        scales = getattr(factory, "scales", None)  # a manifest dataset's scales (datasets/<name>.yaml)
        if scales is not None and "scale" not in kwargs and scale not in scales:
            problems.append(
                f"{where}: the dataset's manifest has scales {list(scales)}, not the matrix's scale {scale}; "
                f"set scale: {scales[-1]} (and methods of that scale) or pick another dataset"
            )
            continue
        out.append(entry)
    return out


def _methods(raw: Any, scale: int | None, problems: list[str]) -> None:
    from bench.methods.cards import load_card

    for name in raw if isinstance(raw, list) else []:
        if not isinstance(name, str):
            continue
        try:
            card = load_card(name)
        except (KeyError, FileNotFoundError, ValueError, TypeError) as exc:
            problems.append(f"methods.{name}: {_msg(exc)}")
            continue
        if scale is not None and card.scale != scale:
            problems.append(
                f"methods.{name}: the card's method upscales x{card.scale} but the matrix's scale is {scale}; "
                f"use a x{scale} card or set scale: {card.scale}"
            )


def _default_severity(params: Mapping[str, Any]) -> Any:
    if not params:
        return 0
    if len(params) == 1:
        return next(iter(params.values()))
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def _conditions(raw: Any, problems: list[str]) -> list[Condition]:
    from bench.corruptions import CORRUPTIONS, build_corruption
    from bench.corruptions.severity import corruption_at, families

    out: list[Condition] = []
    for spec in _entries(raw, ConditionSpec):
        where = f"conditions.{spec.name}"
        try:
            corruption = CORRUPTIONS.canonical(spec.corruption)
        except KeyError as exc:
            problems.append(f"{where}.corruption: {_msg(exc)}")
            continue
        if spec.severities is not None:
            scale = CORRUPTIONS.get(corruption).severities
            if not scale:
                known = ", ".join(families())
                problems.append(f"{where}.severities: corruption {corruption!r} has no severity table; known: {known}")
                continue
            for level in spec.severities:
                try:
                    corruption_at(corruption, level)
                except (KeyError, ValueError) as exc:
                    problems.append(f"{where}.severities: severity {level}: {_msg(exc)}")
                    continue
                params = dict(scale[level - 1])
                out.append(Condition(f"{spec.name}-s{level}", corruption, params, level, family=spec.name))
            continue
        rejected = _bind(CORRUPTIONS.get(corruption), spec.params)
        if rejected is None:
            try:
                build_corruption(corruption, **spec.params)
            except (TypeError, ValueError) as exc:
                rejected = str(exc)
        if rejected is not None:
            problems.append(f"{where}.params: corruption {corruption!r} rejects {dict(spec.params)}: {rejected}")
            continue
        severity = spec.severity if spec.severity is not None else _default_severity(spec.params)
        out.append(Condition(spec.name, corruption, dict(spec.params), severity))
    names = [c.name for c in out]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"conditions: duplicate condition name {dup!r}")
    return out


def _metrics(raw: Any, scale: int, problems: list[str]) -> list[MetricEntry]:
    from bench.metrics import METRICS

    out = []
    for spec in _entries(raw, MetricSpec):
        where = f"metrics.{spec.name}"
        try:
            name = METRICS.canonical(spec.name)
        except KeyError as exc:
            if spec.name in SR_SPACE_COLUMNS:  # the SR-space columns compare n samples: not a per-output metric
                problems.append(
                    f"{where}: {spec.name!r} is computed over n SR samples per image; declare it as "
                    f"'sr_space: {{samples: 10, columns: [{spec.name}]}}' instead of under metrics"
                )
                continue
            problems.append(f"{where}: {_msg(exc)}")
            continue
        factory = METRICS.get(name)
        crop = spec.crop_border if spec.crop_border is not None else factory.default_crop_border(scale)
        rejected = _bind(factory, {"crop_border": crop})
        if rejected:
            problems.append(f"{where}.crop_border: the metric rejects crop_border={crop}: {rejected}")
            continue
        out.append(MetricEntry(name, crop))
    keys = [(m.name, m.crop_border) for m in out]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"metrics: {dup[0]} with crop_border {dup[1]} appears more than once")
    names = [m.name for m in out]
    for dup in sorted({n for n in names if names.count(n) > 1} - {k[0] for k in keys if keys.count(k) > 1}):
        problems.append(f"metrics: {dup!r} appears with several crop borders; tables are keyed by metric name")
    return out


def _loss(spec: AttackSpec, where: str, problems: list[str]) -> dict[str, Any]:
    from bench.attacks import ATTACK_LOSSES

    loss = {"name": spec.loss.name, **(spec.loss.model_extra or {})}
    try:
        cls = ATTACK_LOSSES.get(spec.loss.name)
        loss["name"] = ATTACK_LOSSES.canonical(spec.loss.name)
    except KeyError as exc:
        problems.append(f"{where}.loss: {_msg(exc)}")
        return loss
    rejected = _bind(cls, {k: v for k, v in loss.items() if k != "name"})
    if rejected:
        problems.append(f"{where}.loss: {loss['name']!r} rejects {loss}: {rejected}")
    return loss


def _attacks(raw: Any, conditions: Sequence[Condition], problems: list[str]) -> list[AttackEntry]:
    from bench.attacks import ATTACKS, build_attack
    from bench.methods.cards import load_card

    known_conditions = sorted({c.name for c in conditions})
    out = []
    for spec in _entries(raw, AttackSpec):
        where = f"attacks.{spec.name}"
        conds = tuple(spec.conditions) if spec.conditions is not None else None
        unknown = [c for c in conds or () if c not in known_conditions]
        if unknown and known_conditions:
            problems.append(
                f"{where}.conditions: unknown conditions {unknown}{suggestion(unknown[0], known_conditions)}; "
                f"known: {', '.join(known_conditions)}"
            )
        if spec.kind == NO_ATTACK:
            out.append(AttackEntry(spec.name, NO_ATTACK, conditions=conds))
            continue
        try:
            attack = ATTACKS.canonical(spec.kind)
        except KeyError as exc:
            problems.append(f"{where}{'.attack' if spec.attack else ''}: {_msg(exc)}")
            continue
        if spec.surrogate is not None:
            try:
                load_card(spec.surrogate)
            except (KeyError, FileNotFoundError, ValueError, TypeError) as exc:
                problems.append(f"{where}.surrogate: surrogate {spec.surrogate!r}: {_msg(exc)}")
        loss = _loss(spec, where, problems)
        epsilons = tuple(spec.epsilons) if spec.epsilons is not None else None
        for eps in epsilons if epsilons is not None else (None,):
            try:
                build_attack(attack, **spec.params, **({} if eps is None else {"eps": eps}))
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}.params: attack {attack!r} rejects {dict(spec.params)} (eps={eps}): {exc}")
                break
        out.append(
            AttackEntry(
                spec.name,
                attack,
                dict(spec.params),
                epsilons,
                conds,
                spec.eot_samples,
                spec.restarts,
                spec.surrogate,
                spec.transfer_from_base,
                loss,
            )
        )
    return out


def _smoothing(raw: Any, datasets: Sequence[DatasetEntry], scale: int, problems: list[str]) -> Smoothing | None:
    from bench.data import DATASETS
    from bench.metrics import METRICS

    if not isinstance(raw, Mapping):
        return None
    val = _parse(ValidationSpec, raw.get("validation") or {})
    kwargs = dict(val.model_extra or {}) if val is not None else {}
    if val is not None:
        try:
            factory = DATASETS.get(val.dataset)
            rejected = _bind(factory, DatasetEntry(val.dataset, None, kwargs).factory_kwargs(factory, scale))
            if rejected:
                problems.append(f"smoothing.validation: the dataset factory rejects these arguments: {rejected}")
            if getattr(factory, "ground_truth", True) is False:  # a manifest dataset without HR (DPED)
                problems.append(
                    f"smoothing.validation.dataset: {val.dataset!r} has no ground truth; sigma is chosen by a "
                    "full-reference metric on HR images (e.g. div2k-val or embedded-train)"
                )
        except KeyError as exc:
            problems.append(f"smoothing.validation.dataset: {_msg(exc)}")
        if any(d.name == val.dataset and d.kwargs == kwargs for d in datasets):
            problems.append(
                f"smoothing.validation.dataset: {val.dataset!r} is also evaluated; sigma must be chosen on a disjoint "
                "split (e.g. embedded-train for embedded-eval)"
            )
        if val.crop is not None and val.crop % scale:
            problems.append(f"smoothing.validation.crop: must be a multiple of the scale {scale}, got {val.crop}")
    grid = raw.get("sigma_grid")
    if isinstance(grid, list) and len({repr(g) for g in grid}) != len(grid):
        problems.append(f"smoothing.sigma_grid: repeated values in {grid}")
    metric = raw.get("metric", "lpips_alex")
    if isinstance(metric, str):
        try:
            metric = METRICS.canonical(metric)
        except KeyError as exc:
            problems.append(f"smoothing.metric: {_msg(exc)}")
    spec = _parse(SmoothingSpec, raw)
    if spec is None or val is None:
        return None
    images = val.images if isinstance(val.images, int) else tuple(val.images)
    certify = None
    if spec.certify is not None:
        c = spec.certify
        certify = CertifySpec(tuple(c.epsilons), c.n_samples, float(c.alpha))
    validation = Validation(val.dataset, val.crop, images, kwargs)
    sigmas = tuple((spec.sigmas or {}).items())
    return Smoothing(tuple(spec.sigma_grid), validation, metric, certify, spec.seed, sigmas)


def _sr_space(raw: Any) -> SrSpace | None:
    """The resolved ``sr_space:`` section (the structural pass reports a malformed one): the keys of
    :func:`bench.metrics.diversity.diversity_score` its columns ask for, in that function's order."""
    from bench.metrics.diversity import KEYS

    spec = _parse(SrSpaceSpec, raw) if isinstance(raw, Mapping) else None
    if spec is None:
        return None
    wanted = {key for column in spec.columns for key in SR_SPACE_COLUMNS[column]}
    return SrSpace(spec.samples, tuple(k for k in KEYS if k in wanted))


def resolve(
    data: Mapping[str, Any], spec: MatrixFile | None, source: str = "<dict>", overrides: tuple[str, ...] = ()
) -> tuple[Matrix | None, list[str]]:
    """Check ``data`` (the merged, overridden mapping) against the registries; the Matrix when ``spec`` is valid
    and no problem was found, and the problems (dotted key first)."""
    problems: list[str] = []
    raw_scale = data.get("scale", 4)
    scale = raw_scale if isinstance(raw_scale, int) and not isinstance(raw_scale, bool) and raw_scale > 0 else 4
    datasets = _datasets(data.get("datasets"), scale, problems)
    _repeated(data.get("datasets"), "datasets", "dataset", problems)
    _methods(data.get("methods"), scale if scale == raw_scale else None, problems)
    conditions = _conditions(data.get("conditions"), problems)
    metrics = _metrics(data.get("metrics"), scale, problems)
    attacks = _attacks(data.get("attacks"), conditions, problems)
    _repeated(data.get("attacks"), "attacks", "attack", problems)
    smoothing = _smoothing(data.get("smoothing"), datasets, scale, problems)
    if smoothing is not None:
        columns = {d.name for d in datasets} | {c.name for c in conditions} | {a.name for a in attacks}
        for key, _ in smoothing.sigmas:
            if key not in columns:
                hint = suggestion(key, sorted(columns))
                problems.append(f"smoothing.sigmas.{key}: names no attack, condition or dataset of the matrix{hint}")
    gallery = spec.gallery if spec is not None else None
    if gallery is not None and gallery.dataset is not None and gallery.dataset not in [d.name for d in datasets]:
        names = [d.name for d in datasets]
        hint = suggestion(gallery.dataset, names)
        problems.append(f"gallery.dataset: {gallery.dataset!r} is not one of the matrix's datasets{hint}")
    if spec is None or problems:
        return None, problems
    matrix = Matrix(
        name=spec.name,
        description=spec.description,
        scale=spec.scale,
        datasets=tuple(datasets),
        methods=tuple(spec.methods),
        conditions=tuple(conditions),
        metrics=tuple(metrics),
        seeds=tuple(spec.seeds),
        gallery=None if gallery is None else Gallery(gallery.image, gallery.size, gallery.dataset),
        batch_images=spec.batch_images,
        version=spec.version,
        source=source,
        overrides=overrides,
        attacks=tuple(attacks),
        attack_images=spec.attack_images,
        stochastic_seeds=None if spec.stochastic_seeds is None else tuple(spec.stochastic_seeds),
        smoothing=smoothing,
        store_outputs=spec.store_outputs,
        sr_space=_sr_space(data.get("sr_space")),
        precision=spec.precision,
        compile=str(spec.compile).lower(),
    )
    return matrix, problems
