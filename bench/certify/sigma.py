"""Choosing the noise level sigma of median smoothing, as the CertSR paper does, and the paper's fixed values.

Paper: seed 001 sec. 4.2 and 5: "the standard deviation ... is a hyperparameter that must be selected to best suit
each perturbation ... we rely on the LPIPS metric in this context to ensure that we have chosen the best standard
deviation". The paper's chosen values (:data:`PAPER_SIGMAS`): clean and noisy inputs none (the fine-tuned model alone),
blur 0.05, FGSM and PGD 0.06, BIM 0.07, CW 0.03, NTIRE 2020 0.03, AIM 2019 0.06. How the grid was scanned and on which
images is in the paper's supplementary material, which the project does not have: :func:`select_sigma` scans a grid
(:data:`DEFAULT_GRID`, which holds every paper value and "none") on a validation split that must be disjoint from the
evaluation images, and returns the scores of the whole grid so they can be stored with the results.

Example::

    val, test = split_validation(dataset.names(), n_val=2, seed=0)
    sigma, scores = select_sigma(lambda s: make_mrs(sigma=s), {k: dataset.load(k) for k in val}, blur,
                                 evaluation_names=test)
    record = selection_record(sigma, scores, metric="lpips_alex", condition="blur", images=val)
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import FunctionType
from typing import Any

import torch

from bench.data.base import Sample
from bench.images import modcrop, quantize
from bench.metrics.base import Metric
from bench.seeding import make_generator, seed_from

logger = logging.getLogger(__name__)

# Seed 001, Tables 1-3 and their text. None: no smoothing at inference (the fine-tuned model alone).
PAPER_SIGMAS: Mapping[str, float | None] = {
    "clean": None,
    "noise": None,
    "blur": 0.05,
    "fgsm": 0.06,
    "pgd": 0.06,
    "bim": 0.07,
    "cw": 0.03,
    "ntire2020": 0.03,
    "aim2019": 0.06,
}
_CONDITION_ALIASES = {
    "identity": "clean",
    "none": "clean",
    "noisy": "noise",
    "gaussian_noise": "noise",
    "blurry": "blur",
    "gaussian_blur": "blur",
    "ntire": "ntire2020",
    "ntire2020_track1": "ntire2020",
    "aim": "aim2019",
    "aim2019_track2": "aim2019",
}
# None first: on a tie the unsmoothed method wins, then the smaller sigma.
DEFAULT_GRID: tuple[float | None, ...] = (None, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1)


def paper_sigma(condition: str) -> float | None:
    """The paper's sigma for a condition name (case/dash-insensitive, with aliases such as ``gaussian_blur``).

    Raises:
        KeyError: a condition the paper gives no sigma for; the message lists the known ones.
    """
    key = condition.strip().lower().replace("-", "_")
    key = _CONDITION_ALIASES.get(key, key)
    if key not in PAPER_SIGMAS:
        raise KeyError(f"the paper gives no sigma for condition {condition!r}; known: {', '.join(PAPER_SIGMAS)}")
    return PAPER_SIGMAS[key]


def split_validation(names: Iterable[str], n_val: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """A deterministic split of image names into (validation, evaluation), disjoint, each in the input's order."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError("image names are not unique")
    if not 0 < n_val < len(names):
        raise ValueError(f"n_val must be in 1..{len(names) - 1} for {len(names)} images, got {n_val}")
    chosen = set(random.Random(seed_from("sigma-validation", seed)).sample(sorted(names), n_val))
    return [n for n in names if n in chosen], [n for n in names if n not in chosen]


def _as_pair(item: Any, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) batches of one image from an HR tensor, a ``(hr, lr)`` tuple or a ``Sample`` (``.hr``, ``.lr``)."""
    if isinstance(item, torch.Tensor):
        hr, lr = item, None
    elif isinstance(item, tuple) and len(item) == 2:
        hr, lr = item
    elif isinstance(item, Sample):
        hr, lr = item.hr, item.lr
    else:
        raise TypeError(f"a validation image is an HR tensor, an (hr, lr) pair or a Sample, got {type(item).__name__}")
    hr = modcrop(hr if hr.ndim == 4 else hr.unsqueeze(0), scale).float()
    if lr is None:
        from bench.data.imresize import bicubic_downsample

        lr = quantize(bicubic_downsample(hr, scale))
    else:
        lr = (lr if lr.ndim == 4 else lr.unsqueeze(0)).float()
    return lr, hr


def _condition_takes_method(condition_fn: Callable[..., torch.Tensor]) -> bool:
    try:
        params = inspect.signature(condition_fn).parameters
    except (TypeError, ValueError):
        return False
    return "method" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def select_sigma(
    method_factory: Callable[[float | None], Any],
    images_val: Mapping[str, Any] | Sequence[Any],
    condition_fn: Callable[..., torch.Tensor] | None,
    grid: Sequence[float | None] = DEFAULT_GRID,
    metric: str | Metric | Callable[..., torch.Tensor] = "lpips_alex",
    *,
    seed: int = 0,
    scale: int = 4,
    device: str | torch.device = "cpu",
    evaluation_names: Collection[str] | None = None,
) -> tuple[float | None, dict[float | None, float]]:
    """The sigma of ``grid`` with the best mean ``metric`` on the validation images under one condition.

    Args:
        method_factory: ``sigma -> method`` (``sigma=None``: no smoothing). Called once per grid value; a method with a
            settable ``sigma`` can be reused (``lambda s: setattr(mrs, "sigma", s) or mrs``).
        images_val: the validation images, a mapping name -> image or a sequence (named ``"0"``, ``"1"``, ...). An
            image is an HR tensor (3, H, W) / (1, 3, H, W) in [0, 1] (LR = MATLAB bicubic /scale, 8-bit rounded, as
            the runner does), an ``(hr, lr)`` pair, or a :class:`bench.data.base.Sample`.
        condition_fn: the condition, ``(lr, generator) -> lr'`` (a corruption), or with a ``method`` keyword
            ``(lr, generator, method=..., hr=...) -> lr'`` (an attack made through the method being scored: then it
            is re-made for every sigma); ``None``: clean.
        grid: sigma values to try, in tie-break order (default :data:`DEFAULT_GRID`).
        metric: a registered metric name (default ``"lpips_alex"``, as the paper), a :class:`Metric`, or any
            ``(sr, hr) -> (N,)`` callable. Its ``spec.higher_is_better`` (lower is better without a spec) picks the
            best.
        seed: seeds the condition's generator (per image) and the method's generator (per image), identical for
            every sigma, so the grid is compared on the same corrupted inputs and noise streams.
        scale: the SR factor (HR is modcropped to it).
        device: where images go.
        evaluation_names: the evaluation images; a name also in ``images_val`` raises (the split must be disjoint).

    Returns:
        ``(sigma, scores)``: the best grid value and ``{sigma: mean metric over the validation images}`` in grid order.

    Raises:
        ValueError: an empty grid or image set, a repeated grid value, or validation and evaluation images that overlap.
    """
    items = dict(images_val) if isinstance(images_val, Mapping) else {str(i): v for i, v in enumerate(images_val)}
    if not items:
        raise ValueError("no validation images")
    grid = list(grid)
    if not grid:
        raise ValueError("empty sigma grid")
    if len(set(grid)) != len(grid):
        raise ValueError(f"repeated values in the sigma grid {grid}")
    if evaluation_names is not None:
        overlap = sorted(set(items) & set(evaluation_names))
        if overlap:
            raise ValueError(f"validation and evaluation images overlap: {overlap}")
    device = torch.device(device)
    scorer = _metric(metric, device)
    higher = scorer.spec.higher_is_better if isinstance(scorer, Metric) else False  # a bare callable: lower is better
    adaptive = condition_fn is not None and _condition_takes_method(condition_fn)

    prepared: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, item in items.items():
        lr, hr = _as_pair(item, scale)
        lr, hr = lr.to(device), hr.to(device)
        if condition_fn is not None and not adaptive:
            lr = condition_fn(lr, make_generator(seed_from(seed, name, "condition")))
        prepared[name] = (lr, hr)

    scores: dict[float | None, float] = {}
    for sigma in grid:
        method = method_factory(sigma)
        values = []
        for name, (lr, hr) in prepared.items():
            if adaptive:
                gen = make_generator(seed_from(seed, name, "condition"))
                lr = condition_fn(lr, gen, method=method, hr=hr)
            gen = make_generator(seed_from(seed, name, "method"), device)
            sr = method.super_resolve(lr, gen)
            with torch.no_grad():
                values.append(scorer(sr, hr).double().reshape(-1))
        scores[sigma] = float(torch.cat(values).mean())
        logger.info("sigma %s: mean %s %.5f over %d images", sigma, _metric_name(scorer), scores[sigma], len(values))
    best = (max if higher else min)(grid, key=lambda s: scores[s])  # first of the grid among equals
    return best, scores


def _metric(metric: str | Metric | Callable[..., torch.Tensor], device: torch.device) -> Any:
    if isinstance(metric, str):
        from bench.metrics import build_metric

        return build_metric(metric).to(device).eval()
    if isinstance(metric, torch.nn.Module):
        return metric.to(device).eval()
    if callable(metric):
        return metric
    raise TypeError(f"metric must be a name, a Metric or a callable, got {type(metric).__name__}")


def _metric_name(scorer: Any) -> str:
    if isinstance(scorer, Metric):
        return scorer.spec.name
    return scorer.__name__ if isinstance(scorer, FunctionType) else type(scorer).__name__


def _key(sigma: float | None) -> str:
    return "none" if sigma is None else repr(float(sigma))


def selection_record(
    sigma: float | None,
    scores: Mapping[float | None, float],
    *,
    metric: str | Metric | Any,
    condition: str,
    images: Sequence[str],
    seed: int = 0,
) -> dict[str, Any]:
    """A JSON-able record of one selection, to store with the results of the condition.

    Keys: ``condition``, ``sigma`` (float or None), ``grid`` (list), ``scores`` (``{"none" | "0.05": value}``),
    ``metric`` (name, and the spec when the metric carries one), ``images`` (the validation names), ``seed``,
    ``paper_sigma`` (the paper's value for this condition, or None when it gives none), ``rule``.
    """
    spec = metric.spec if isinstance(metric, Metric) else None
    try:
        paper = paper_sigma(condition)
    except KeyError:
        paper = None
    return {
        "condition": condition,
        "sigma": sigma,
        "grid": [s for s in scores],
        "scores": {_key(s): v for s, v in scores.items()},
        "metric": {"name": metric if isinstance(metric, str) else _metric_name(metric)}
        | ({"spec": spec.as_dict()} if spec is not None else {}),
        "images": list(images),
        "seed": seed,
        "paper_sigma": paper,
        "rule": "best mean metric on the validation split; ties to the first grid value (none, then smaller sigma)",
    }
