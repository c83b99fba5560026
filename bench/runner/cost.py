"""The cost of a matrix before any work: cells, model passes, FLOPs and an estimated time on this device.

``python -m bench run --matrix X --dry-run`` prints :func:`plan_matrix`'s table; ``python -m bench reproduce TABLE
--dry-run`` counts with the same rule (:func:`count_cells`). Two parts, kept apart:

**Counts** (:func:`cell_passes`, the one rule; no model runs): forward and backward passes of SR networks per image
of a planned cell, in *base-model passes* -- a median-smoothing copy, an EOT draw, an SR sample, an attack step each
count one pass of the network that does the work:

* inference: 1 pass; median smoothing with a sigma: its ``n`` copies; with the matrix's ``smoothing.certify`` (on
  data with ground truth): the certificate's samples (``n_samples``, or :func:`bench.certify.bounds.certify`'s
  automatic count from the largest budget, sigma and alpha), plus the copies it lacks and the clean copy of
  ``include_clean``;
* SR-space samples (``sr_space:``, stochastic methods): ``samples - 1`` further inferences;
* an attack (the attack's own :meth:`~bench.attacks.base.Attack.objective_calls` per run): per EOT draw (a stochastic
  attacked model: ``eot_samples``, default 8) and per smoothing copy, one forward for the clean loss, one per draw of
  a ``target: clean`` reference, and per restart ``g`` forward+backward and ``v`` forwards; attacked cells keep
  ``attack_images`` images; an attack refused at run time (:func:`refused`) or a cell skipped (no ground truth)
  counts nothing;
* transfer (``surrogate``, ``transfer-from-base``): the attack's passes are the surrogate's
  (:attr:`Passes.surrogate_forwards`), plus the evaluation on the target: two forwards (clean and adversarial loss)
  and the ``target: clean`` reference per draw;
* sigma selection (``sigma: auto``), once per (method, condition, attack setting) -- not per cell -- on the first
  cell that needs it: for every sigma of the grid and every validation image, the inference at that sigma and, for an
  attacked cell, the attack. A cell whose sigma is ``auto`` is counted at the grid's largest count (an upper bound).

Every forward of an SR network the runner makes is one of these (``tests/runner/test_passes.py`` counts the calls of
the networks in real runs and compares); the metrics' own networks (LPIPS, the attack loss's VGG) are not SR passes.

**Time** (:func:`plan_matrix`): a short **probe** per method (and surrogate) measures the seconds of one forward pass
and of one backward pass (with the cell's attack loss, gradient to the input, as an attack step takes it) on one
``side`` x ``side`` LR image, ``side`` the matrix's median LR side capped at ``max_probe`` (CUDA synchronised, after a
warm-up; a smoothing method is timed as it runs, its n copies batched, and divided by n), and FLOPs of one forward
(``torch.utils.flop_counter.FlopCounterMode``; a backward counts two forwards). Once per matrix: the metrics, each
condition's corruption and the SR-space scoring on that image, and one image read per dataset. A cell's time is its
passes times those per-pass seconds, plus its images' metrics, corruption and reads, all scaled by its LR pixels over
the probe's (conv nets and the pixel metrics are linear in pixels); once per method, building it (timed; with the
matrix's ``precision``, so the guard's calibration is in it and a bf16 fast path is what the probe times).

Writing each cell's JSON and its gallery crops is timed once (one write of each) and added per cell; building the
runner (metrics, cards' provenance, cells) and writing the run's info once, on the first line. Not timed:
report rendering, the first load of a checkpoint, the metric of sigma selection, the degradation attack's own
network. Cells already stored are counted.

Example::

    plan = plan_matrix(load_matrix("default"), device="cpu")
    print(plan.format())    # per kind of cell: cells, images, forwards, backwards, TFLOP, estimated time
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

DEFAULT_MAX_PROBE = 64
AUTO = "auto"


# ------------------------------------------------------------------------------------------------------ counting
@dataclass(frozen=True)
class Passes:
    """Passes of SR networks: of the cell's own method (a smoothing copy or an EOT draw counts one) and of a transfer
    surrogate."""

    forwards: int = 0
    backwards: int = 0
    surrogate_forwards: int = 0
    surrogate_backwards: int = 0

    def __add__(self, other: Passes) -> Passes:
        return Passes(
            self.forwards + other.forwards,
            self.backwards + other.backwards,
            self.surrogate_forwards + other.surrogate_forwards,
            self.surrogate_backwards + other.surrogate_backwards,
        )

    def times(self, k: int) -> Passes:
        return Passes(self.forwards * k, self.backwards * k, self.surrogate_forwards * k, self.surrogate_backwards * k)

    @property
    def all_forwards(self) -> int:
        return self.forwards + self.surrogate_forwards

    @property
    def all_backwards(self) -> int:
        return self.backwards + self.surrogate_backwards


@dataclass(frozen=True)
class ModelSpec:
    """What counting needs of a method card: whether it is stochastic, differentiable, median smoothing (``n``
    copies, ``sigma`` -- a number, ``None`` for off or ``"auto"`` --, ``include_clean``)."""

    name: str
    stochastic: bool = False
    differentiable: bool = True
    smoothed: bool = False
    n: int = 1
    sigma: float | str | None = None
    include_clean: bool = False

    @classmethod
    def from_provenance(cls, name: str, provenance: Mapping[str, Any]) -> ModelSpec:
        """From a card's provenance (:meth:`bench.methods.cards.MethodCard.provenance`, or a partial one)."""
        from bench.methods import ADAPTERS

        adapter = str(provenance.get("adapter") or "")
        try:
            adapter_cls = ADAPTERS.get(adapter) if adapter else None
            adapter = ADAPTERS.canonical(adapter) if adapter else adapter
        except KeyError:
            adapter_cls = None
        stochastic = provenance.get("stochastic")
        differentiable = provenance.get("differentiable")
        if stochastic is None:  # a partial provenance: the adapter's class says
            stochastic = bool(getattr(adapter_cls, "stochastic", False))
        if differentiable is None:
            differentiable = bool(getattr(adapter_cls, "differentiable", True))
        spec = cls(name, bool(stochastic), bool(differentiable))
        if adapter != "median_smoothing":
            return spec
        from bench.methods.smoothing import DEFAULT_N

        args = provenance.get("args") or {}
        sigma = args.get("sigma", 0.05)
        if isinstance(sigma, str):
            sigma = AUTO if sigma.strip().lower() == AUTO else float(sigma)
        elif sigma is not None:
            sigma = float(sigma) if sigma > 0 else None
        n = int(args.get("n", DEFAULT_N))
        differentiable = spec.differentiable and _base_differentiable(provenance)  # a gradient flows if the base's does
        return cls(name, True, differentiable, True, n, sigma, bool(args.get("include_clean", False)))

    @classmethod
    def from_card(cls, name: str) -> ModelSpec:
        """From the card ``name`` (a surrogate); a card that does not load counts as a plain method (its cells fail
        when the surrogate is built)."""
        from bench.methods.cards import load_card

        try:
            card = load_card(name)
        except (KeyError, OSError, ValueError) as exc:
            logger.warning("surrogate %s: no card (%s); counted as one plain pass per call", name, exc)
            return cls(name)
        prov = {"adapter": card.adapter, "args": dict(card.args), "stochastic": card.stochastic}
        prov["differentiable"] = card.differentiable
        spec = cls.from_provenance(name, prov)
        # built from its card: sigma auto means smoothing off until a runner sets it, which no surrogate gets
        return spec if spec.sigma != AUTO else cls(**{**vars(spec), "sigma": None})

    def copies(self, sigma: float | str | None) -> int:
        """Base passes of one call at ``sigma``: ``n`` when smoothing is on, else 1."""
        return self.n if self.smoothed and sigma is not None else 1


def _base_differentiable(provenance: Mapping[str, Any]) -> bool:
    """Whether a smoothing card's base is differentiable: its base card's provenance, or its ``{adapter, args}``."""
    from bench.methods import ADAPTERS

    base_card = provenance.get("base")
    if isinstance(base_card, Mapping) and "differentiable" in base_card:
        return bool(base_card["differentiable"])
    base = (provenance.get("args") or {}).get("base")
    if isinstance(base, Mapping) and base.get("adapter"):
        try:
            return bool(ADAPTERS.get(str(base["adapter"])).differentiable)
        except KeyError:
            return True
    return True


def cell_sigma(cell: Any, matrix: Any, model: ModelSpec) -> float | str | None:
    """The sigma a smoothed cell runs at: the matrix's ``smoothing.sigmas`` for its column, else the card's
    (``"auto"``: chosen by the runner); ``None`` for a method that is not median smoothing."""
    if not model.smoothed:
        return None
    if matrix.smoothing is not None:
        found, value = matrix.smoothing.sigma_for(
            cell.dataset.name, cell.condition.name, cell.threat.name if cell.threat.attacked else None
        )
        if found:
            return AUTO if isinstance(value, str) else value
    return model.sigma


def certify_passes(model: ModelSpec, sigma: float, settings: Any) -> int:
    """Base passes of :func:`bench.certify.bounds.certify` on one image (the certified inference)."""
    from bench.certify.bounds import MAX_SAMPLES, required_samples

    n_samples = settings.n_samples
    if n_samples is None:
        need = required_samples(max(settings.epsilons), sigma, settings.alpha)
        n_samples = int(min(max(model.n, need), MAX_SAMPLES))
    n_pred = model.n - 1 if model.include_clean else model.n
    return n_samples + max(0, n_pred - n_samples) + (1 if model.include_clean else 0)


def inference_passes(model: ModelSpec, sigma: float | None, matrix: Any, ground_truth: bool = True) -> int:
    """Base passes of the infer stage on one image (certified when the matrix asks and the image has an HR)."""
    sm = matrix.smoothing
    if model.smoothed and sigma is not None and ground_truth and sm is not None and sm.certify is not None:
        return certify_passes(model, sigma, sm.certify)
    return model.copies(sigma)


def build_cell_attack(cell: Any, model: ModelSpec) -> Any:
    """The attack object of an attacked cell as the runner builds it (loss and surrogate left out: they change no
    count)."""
    from bench.attacks import build_attack

    return build_attack(cell.threat.attack, **cell.threat.attack_kwargs(model.stochastic))


def refused(attack: Any, attacked: ModelSpec) -> bool:
    """Whether ``attack`` refuses the model it attacks before any pass (as :meth:`bench.attacks.base.Attack.__call__`
    does): gradients through a non-differentiable model, or a gradient attack from the clean input against the
    clean output of a deterministic model (no gradient there)."""
    if not attack.needs_gradient:
        return False
    no_gradient = attack.target == "clean" and not attack.random_start and not attacked.stochastic
    return not attacked.differentiable or no_gradient


def attack_passes(attack: Any, model: ModelSpec, sigma: float | None, surrogate: ModelSpec | None = None) -> Passes:
    """Passes of ``attack`` on one image of ``model`` at ``sigma`` (through ``surrogate`` when given)."""
    from bench.attacks.base import DEFAULT_EOT_SAMPLES

    def draws(m: ModelSpec) -> int:
        return (attack.eot_samples if attack.eot_samples is not None else DEFAULT_EOT_SAMPLES) if m.stochastic else 1

    attacked = surrogate if surrogate is not None else model
    copies = model.copies(sigma) if surrogate is None else surrogate.copies(surrogate.sigma)
    grads, values = attack.objective_calls()
    reference = 1 if attack.target == "clean" else 0
    k = draws(attacked)
    forwards = copies * k * (reference + 1 + attack.restarts * (grads + values))
    backwards = copies * k * attack.restarts * grads
    if surrogate is None:
        return Passes(forwards, backwards)
    evaluation = model.copies(sigma) * draws(model) * (reference + 2)  # clean and adversarial loss on the target
    return Passes(evaluation, 0, forwards, backwards)


def passes_at(
    cell: Any, matrix: Any, model: ModelSpec, sigma: float | None, surrogate: ModelSpec | None, ground_truth: bool
) -> Passes:
    """Passes per image of ``cell`` with its method at ``sigma`` (:func:`cell_passes` once sigma is known)."""
    from bench.runner.cells import REFUSED

    out = Passes()
    if cell.threat.attacked:
        if cell.threat.variant == REFUSED:
            return out  # planned refused: the images fail before any pass
        if not ground_truth:
            return out  # skipped: the attack's loss needs the HR
        attack = build_cell_attack(cell, model)
        if refused(attack, surrogate if surrogate is not None else model):
            return out  # the images fail before any pass
        out = out + attack_passes(attack, model, sigma, surrogate)
    out = out + Passes(inference_passes(model, sigma, matrix, ground_truth))
    if matrix.sr_space is not None and model.stochastic:
        out = out + Passes((matrix.sr_space.samples - 1) * model.copies(sigma))
    return out


def _grid(matrix: Any) -> list[float | None]:
    return list(matrix.smoothing.sigma_grid) if matrix.smoothing is not None else [None]


def cell_passes(
    cell: Any, matrix: Any, model: ModelSpec, surrogate: ModelSpec | None = None, ground_truth: bool = True
) -> Passes:
    """Passes per image of ``cell`` (see the module docstring): the one counting rule of ``bench run --dry-run`` and
    ``bench reproduce --dry-run``.

    Args:
        cell: a planned :class:`~bench.runner.cells.Cell`.
        matrix: its :class:`~bench.runner.matrix.Matrix`.
        model: the cell's method (:meth:`ModelSpec.from_provenance`).
        surrogate: the cell's transfer surrogate (:meth:`ModelSpec.from_card`), ``None`` when it attacks directly.
        ground_truth: whether the dataset has HR images (without, attacked cells are skipped, nothing certified).
    """
    sigma = cell_sigma(cell, matrix, model)
    if sigma != AUTO:
        return passes_at(cell, matrix, model, sigma, surrogate, ground_truth)
    candidates = [passes_at(cell, matrix, model, s, surrogate, ground_truth) for s in _grid(matrix)]
    return max(candidates, key=lambda p: (p.all_forwards + p.all_backwards, p.all_backwards))


def selection_key(cell: Any) -> tuple[str, str, str | None]:
    """What a sigma selection is shared by (as the runner's cache): method, condition, attack setting."""
    from bench.seeding import canonical_json

    threat = canonical_json(cell.threat.identity()) if cell.threat.attacked else None
    return cell.method, canonical_json(cell.condition.identity()), threat


def selection_passes(
    cell: Any, matrix: Any, model: ModelSpec, surrogate: ModelSpec | None = None
) -> tuple[Passes, int]:
    """``(passes, images)`` of the sigma selection ``cell`` needs (``sigma: auto``; nothing otherwise), over all
    its validation images and grid values."""
    if cell_sigma(cell, matrix, model) != AUTO or matrix.smoothing is None:
        return Passes(), 0
    val = matrix.smoothing.validation
    images = val.images if isinstance(val.images, int) else len(val.images)
    attack = build_cell_attack(cell, model) if cell.threat.attacked else None
    total = Passes()
    for sigma in _grid(matrix):
        one = Passes(model.copies(sigma))  # select_sigma's super_resolve (never certified)
        if attack is not None:
            one = one + attack_passes(attack, model, sigma, surrogate)
        total = total + one
    return total.times(images), images * len(_grid(matrix))


@dataclass
class CellCount:
    """The counted work of one cell: passes per image, its images, and the sigma selection it runs first."""

    cell: Any
    images: int | None  # the images the cell computes (attacked: at most ``attack_images``); None: unknown
    per_image: Passes
    selection: Passes = field(default_factory=Passes)
    selection_images: int = 0  # validation images x grid values of the selection

    @property
    def total(self) -> Passes:
        return self.per_image.times(self.images or 0) + self.selection


def count_cells(
    cells: Sequence[Any],
    matrix: Any,
    provenances: Mapping[str, Mapping[str, Any]],
    images: Callable[[Any], int | None],
    ground_truth: Callable[[Any], bool] = lambda cell: True,
) -> list[CellCount]:
    """:func:`cell_passes` of every cell, with its number of images and its sigma selection (counted on the first
    cell of each :func:`selection_key`).

    Args:
        cells, matrix, provenances: the plan (:func:`bench.runner.stages.plan.plan`).
        images: ``cell -> number of images of its dataset`` (``None``: unknown; counted as 0).
        ground_truth: ``cell -> whether its dataset has HR images``.
    """
    models = {name: ModelSpec.from_provenance(name, prov) for name, prov in provenances.items()}
    surrogates: dict[str, ModelSpec] = {}
    selected: set[tuple[str, str, str | None]] = set()
    out = []
    for cell in cells:
        model = models.get(cell.method) or ModelSpec(cell.method)
        surrogate = None
        if cell.threat.attacked and cell.threat.surrogate is not None:
            name = cell.threat.surrogate
            surrogate = surrogates.setdefault(name, ModelSpec.from_card(name))
        gt = ground_truth(cell)
        n = images(cell)
        if n is not None and cell.threat.attacked:
            n = 0 if not gt else (min(n, matrix.attack_images) if matrix.attack_images is not None else n)
        count = CellCount(cell, n, cell_passes(cell, matrix, model, surrogate, gt))
        key = selection_key(cell)
        if key not in selected and not (cell.threat.attacked and not gt):
            count.selection, count.selection_images = selection_passes(cell, matrix, model, surrogate)
            if count.selection_images:
                selected.add(key)
        out.append(count)
    return out


# ----------------------------------------------------------------------------------------------------- the plan
@dataclass
class ProbeResult:
    """One model's measured passes on one ``lr_pixels`` LR image: seconds of a forward and of a backward (with the
    attack loss, per loss spec), FLOPs of a forward; ``error`` set when the probe failed."""

    lr_pixels: int
    forward_seconds: float = 0.0
    backward_seconds: dict[str, float] = field(default_factory=dict)
    forward_flops: float = 0.0
    error: str = ""


@dataclass
class CostLine:
    """The cost of the cells of one (method, condition, attack) kind."""

    method: str
    condition: str
    attack: str
    cells: int = 0
    images: int = 0
    lr_pixels: int = 0
    forwards: float = 0.0
    backwards: float = 0.0
    flops: float = 0.0
    seconds: float = 0.0
    error: str = ""


@dataclass
class CostPlan:
    """The plan of a whole matrix on one device: one :class:`CostLine` per kind of cell, and totals."""

    matrix: str
    device: str
    lines: list[CostLine] = field(default_factory=list)
    probe_seconds: float = 0.0

    @property
    def cells(self) -> int:
        return sum(line.cells for line in self.lines)

    @property
    def seconds(self) -> float:
        return sum(line.seconds for line in self.lines)

    @property
    def flops(self) -> float:
        return sum(line.flops for line in self.lines)

    @property
    def forwards(self) -> float:
        return sum(line.forwards for line in self.lines)

    @property
    def backwards(self) -> float:
        return sum(line.backwards for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "matrix": self.matrix,
            "device": self.device,
            "cells": self.cells,
            "forwards": self.forwards,
            "backwards": self.backwards,
            "flops": self.flops,
            "seconds": self.seconds,
            "probe_seconds": self.probe_seconds,
            "lines": [vars(line).copy() for line in self.lines],
        }

    def format(self) -> str:
        """A plain-text table (one row per kind of cell) and a total line."""
        head = f"{'method':<28} {'condition':<18} {'attack':<22} {'cells':>5} {'images':>6} {'fwd':>8} {'bwd':>8}"
        head += f" {'TFLOP':>9} {'time':>9}"
        rows = [f"cost plan of matrix {self.matrix} on {self.device}", head]
        for line in self.lines:
            tail = f" {line.flops / 1e12:>9.3f} {format_seconds(line.seconds):>9}"
            if line.error:
                tail = f"  cannot probe: {line.error}"
            rows.append(
                f"{line.method[:28]:<28} {line.condition[:18]:<18} {line.attack[:22]:<22} {line.cells:>5} "
                f"{line.images:>6} {line.forwards:>8.0f} {line.backwards:>8.0f}{tail}"
            )
        rows.append(
            f"total: {self.cells} cells, {self.forwards:.0f} forwards, {self.backwards:.0f} backwards, "
            f"{self.flops / 1e12:.3f} TFLOP, estimated {format_seconds(self.seconds)} "
            f"(probes took {format_seconds(self.probe_seconds)})"
        )
        return "\n".join(rows)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``, ``1.3 d``."""
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up (CUDA synchronised)."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _copies_now(method: Any) -> int:
    """Base passes of one call of ``method`` as it is set now (median smoothing: n when its sigma is set)."""
    if method.capabilities.smoothed and getattr(method, "sigma", None) is not None:
        return int(method.n)
    return 1


def probe_passes(
    method: Any,
    side: int,
    scale: int,
    device: torch.device,
    losses: Mapping[str, Any] | None = None,
    repeats: int = 1,
) -> ProbeResult:
    """Seconds of one forward and, per attack loss of ``losses`` (key -> :class:`~bench.attacks.base.AttackLoss`),
    of one backward (an attack step's forward+backward through the loss, gradient to the input, less the forward)
    of ``method`` on one ``side`` x ``side`` LR image, and FLOPs of a forward; per base pass (a smoothing call is
    divided by its copies)."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.attacks.base import Objective
    from bench.seeding import make_generator

    method.eval()
    copies = _copies_now(method)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, side + 4, side + 4, generator=g), 5, 1).to(device)

    def forward() -> None:
        with torch.no_grad():
            method(x, make_generator(0, device))

    out = ProbeResult(side * side, _timed(forward, device, repeats) / copies)
    mode = FlopCounterMode(display=False)
    with mode:
        forward()
    out.forward_flops = float(mode.get_total_flops()) / copies
    if not method.capabilities.differentiable:
        return out
    target = torch.rand(1, 3, side * scale, side * scale, generator=g).to(device)
    for key, loss in (losses or {}).items():
        objective = Objective(method, loss, target, 1, make_generator(0, device))
        seconds = _timed(lambda objective=objective: objective.value_and_grad(x), device, repeats) / copies
        out.backward_seconds[key] = max(0.0, seconds - out.forward_seconds)
    return out


def _stage_seconds(runner: Any, side: int, repeats: int) -> tuple[float, float, dict[str, float], float]:
    """Per image at the probe size: seconds and FLOPs of all the metrics, seconds of each condition's corruption and
    of the SR-space scoring (0 without ``sr_space``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.images import quantize
    from bench.seeding import make_generator

    device, scale = runner.device, runner.matrix.scale
    g = torch.Generator().manual_seed(1)
    hr = torch.nn.functional.avg_pool2d(torch.rand(1, 3, side * scale, side * scale, generator=g), 5, 1, 2).to(device)
    lr = quantize(torch.nn.functional.avg_pool2d(hr, scale))
    sr = (hr + 0.02 * torch.randn(hr.shape, generator=g).to(device)).clamp(0, 1)

    def metrics() -> None:
        with torch.no_grad():
            for metric in runner.metrics.values():
                metric(sr, hr, lr)

    metric_seconds = _timed(metrics, device, repeats) if runner.metrics else 0.0
    mode = FlopCounterMode(display=False)
    with mode:
        metrics()
    corruption = {}
    for condition in runner.matrix.conditions:
        fn = runner.corrupt.corruption(condition)
        corruption[condition.name] = _timed(lambda fn=fn: fn(lr, make_generator(0)), device, repeats)
    sr_space = 0.0
    settings = runner.matrix.sr_space
    if settings is not None:
        from bench.metrics.diversity import diversity_score

        samples = [sr] * settings.samples
        lpips = runner.sr_space.lpips()
        sr_space = _timed(lambda: diversity_score(samples, hr, scale=scale, metric=lpips), device, 1)
    return metric_seconds, float(mode.get_total_flops()), corruption, sr_space


def _write_seconds(runner: Any, repeats: int) -> tuple[float, float]:
    """Seconds of storing one cell (an atomic JSON write of a payload of 100 rows) and of one gallery crop."""
    from bench.images import write_image
    from bench.runner.store import atomic_write_json

    g = runner.matrix.gallery
    side = (g.size if g is not None else 48) * runner.matrix.scale
    crop = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(2))
    row = {"run": "dry-run", "image": "0000", "metric": "psnr", "value": 0.5, "status": "ok", "spec": {"name": "x"}}
    payload = {"key": "0" * 20, "records": [dict(row, image=f"{i:04d}") for i in range(100)]}
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        cell = _timed(lambda: atomic_write_json(Path(tmp) / "cell.json", payload), torch.device("cpu"), repeats)
        image = _timed(lambda: write_image(crop, Path(tmp) / "crop.png"), torch.device("cpu"), repeats)
    return cell, image


def _gallery_crops(runner: Any, count: CellCount, images: list[tuple[str, int]]) -> int:
    """Crops the gallery stage writes for the cell: HR, LR and SR, or HR, LR, adversarial LR and SR."""
    g, cell = runner.matrix.gallery, count.cell
    stochastic = bool(runner.provenances.get(cell.method, {}).get("stochastic", False))
    if g is None or not runner.gallery.wants(cell, stochastic):
        return 0
    if g.image not in {name for name, _ in images[: count.images or 0]}:
        return 0
    return 4 if cell.threat.attacked else 3


def _images(runner: Any, cell: Any, sizes: dict[tuple[str, str], int]) -> list[tuple[str, int]]:
    """(name, LR pixels) of every image of the cell's dataset (an LR-only set: its LR's pixels)."""
    dataset = runner.dataset(cell)
    out = []
    scale = runner.matrix.scale
    for name in dataset.names():
        key = (repr(cell.dataset.identity()), name)
        if key not in sizes:
            sample = dataset.load(name)
            if sample.hr is not None:
                sizes[key] = (sample.hr.shape[-2] // scale) * (sample.hr.shape[-1] // scale)
            else:
                sizes[key] = int(sample.lr.shape[-2] * sample.lr.shape[-1])
        out.append((name, sizes[key]))
    return out


def _load_seconds(runner: Any, cells: list[Any]) -> dict[str, float]:
    """Seconds to read one image of each dataset (the first one, read twice: the second, warm, read is timed)."""
    out: dict[str, float] = {}
    for cell in cells:
        key = repr(cell.dataset.identity())
        if key in out:
            continue
        dataset = runner.dataset(cell)
        names = list(dataset.names())
        if not names:
            out[key] = 0.0
            continue
        dataset.load(names[0])
        t0 = time.perf_counter()
        dataset.load(names[0])
        out[key] = time.perf_counter() - t0
    return out


def _loss_key(loss: Mapping[str, Any]) -> str:
    from bench.seeding import canonical_json

    return canonical_json(dict(loss))


def plan_matrix(
    matrix: Any,
    device: str | torch.device = "auto",
    *,
    max_probe: int = DEFAULT_MAX_PROBE,
    repeats: int = 1,
    methods: Iterable[str] | None = None,
) -> CostPlan:
    """The :class:`CostPlan` of ``matrix`` on ``device`` (see the module docstring); runs only the probes.

    Args:
        matrix: a loaded :class:`~bench.runner.matrix.Matrix`.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        max_probe: largest probe LR side (default 64): larger images are extrapolated linearly in pixels.
        repeats: timed probe runs per measurement (the median is used).
        methods: restrict to these methods (default: all of the matrix).
    """
    from bench.methods import cards
    from bench.runner.runner import Runner
    from bench.runner.stages import precision

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        runner = Runner(matrix, tmp, device=device, progress=False)
    setup = time.perf_counter() - started  # a run builds the same Runner (metrics, cards' provenance, cells)
    plan = CostPlan(matrix.name, str(runner.device))
    wanted = set(methods) if methods is not None else None
    cells = [c for c in runner.cells if wanted is None or c.method in wanted]
    sizes: dict[tuple[str, str], int] = {}
    listed = {cell.key: _images(runner, cell, sizes) for cell in cells}
    counts = count_cells(
        cells,
        matrix,
        runner.provenances,
        lambda cell: len(listed[cell.key]),
        lambda cell: bool(getattr(runner.dataset(cell), "has_ground_truth", True)),
    )
    groups: dict[tuple[str, str, str], list[CellCount]] = {}
    for count in counts:
        cell = count.cell
        groups.setdefault((cell.method, cell.condition.name, cell.threat.label()), []).append(count)
    all_pixels = sorted(px for images in listed.values() for _, px in images)
    side = max(8, min(max_probe, round(statistics.median(all_pixels) ** 0.5))) if all_pixels else 8
    probe_px = side * side
    load_seconds = _load_seconds(runner, [members[0].cell for members in groups.values()])
    metric_seconds, metric_flops, corruption_seconds, sr_space_seconds = _stage_seconds(runner, side, repeats)
    cell_write_seconds, crop_seconds = _write_seconds(runner, repeats)
    setup += 2 * cell_write_seconds  # the run's info, written when it starts and when it ends
    probes: dict[str, ProbeResult] = {}
    built: dict[str, Any] = {}

    def probe(method: Any, name: str, members: list[CellCount], surrogate: bool) -> tuple[ProbeResult, float]:
        """The probe of ``method`` (``name``), or of its surrogate card ``name``, with the attack losses of
        ``members``; and the seconds spent building the surrogate now."""
        losses = {
            _loss_key(c.cell.threat.loss): runner.attack.loss(c.cell.threat.loss)
            for c in members
            if c.cell.threat.attacked and (c.cell.threat.surrogate is not None) == surrogate
        }
        key = f"surrogate:{name}" if surrogate else name
        build = 0.0
        model = method
        if surrogate:
            if key not in built:
                t0 = time.perf_counter()
                built[key] = runner.attack.surrogate(name, method)
                build = time.perf_counter() - t0
            model = built[key]
        result = probes.get(key)
        missing = {k: v for k, v in losses.items() if result is None or k not in result.backward_seconds}
        if result is None or missing:
            fresh = probe_passes(model, side, matrix.scale, runner.device, missing, repeats)
            if result is None:
                result = fresh
            else:
                result.backward_seconds.update(fresh.backward_seconds)
            probes[key] = result
        return result, build

    for (method_name, condition, attack), members in groups.items():
        line = CostLine(method_name, condition, attack, cells=len(members))
        plan.lines.append(line)
        for count in members:
            total = count.total
            line.images += count.images or 0
            line.lr_pixels += sum(px for _, px in listed[count.cell.key][: count.images or 0])
            line.forwards += total.all_forwards
            line.backwards += total.all_backwards
        try:
            if method_name not in built:
                t0 = time.perf_counter()
                method = cards.build_method(method_name, device=runner.device)
                # as the runner builds it: behind the precision guard the matrix asks for (calibrated here)
                method = precision.guard(method, method_name, matrix.precision, runner.device)
                precision.stamp(method)
                built.clear()  # one method at a time (its surrogates go with it)
                probes.clear()
                built[method_name] = method
                line.seconds += time.perf_counter() - t0  # the runner builds each method once (method-major order)
            method = built[method_name]
            own, _ = probe(method, method_name, members, surrogate=False)
            for count in members:
                cell = count.cell
                other = None
                if cell.threat.attacked and cell.threat.surrogate is not None:
                    other, build = probe(method, cell.threat.surrogate, [count], surrogate=True)
                    line.seconds += build
                line.seconds += _cell_seconds(count, listed[cell.key], own, other, probe_px, matrix, load_seconds,
                                              metric_seconds, corruption_seconds, sr_space_seconds)  # fmt: skip
                line.flops += _cell_flops(count, listed[cell.key], own, other, probe_px, metric_flops)
                line.seconds += cell_write_seconds + crop_seconds * _gallery_crops(runner, count, listed[cell.key])
        except Exception as exc:  # a method that cannot be built or run: the plan says so, the rest goes on
            line.error = f"{type(exc).__name__}: {exc}"
            logger.warning("cost probe of %s | %s | %s failed: %s", method_name, condition, attack, exc)
            continue
    if plan.lines:
        plan.lines[0].seconds += setup
    plan.probe_seconds = time.perf_counter() - started
    return plan


def _pass_seconds(passes: Passes, loss: str | None, own: ProbeResult, other: ProbeResult | None) -> float:
    """Seconds of ``passes`` at the probe size."""
    backward = own.backward_seconds.get(loss, 0.0) if loss is not None else 0.0
    seconds = passes.forwards * own.forward_seconds + passes.backwards * backward
    if other is not None:
        backward = other.backward_seconds.get(loss, 0.0) if loss is not None else 0.0
        seconds += passes.surrogate_forwards * other.forward_seconds + passes.surrogate_backwards * backward
    return seconds


def _cell_seconds(
    count: CellCount,
    images: list[tuple[str, int]],
    own: ProbeResult,
    other: ProbeResult | None,
    probe_px: int,
    matrix: Any,
    load_seconds: Mapping[str, float],
    metric_seconds: float,
    corruption_seconds: Mapping[str, float],
    sr_space_seconds: float,
) -> float:
    """A cell's estimated seconds: its passes, metrics, corruption and reads, scaled by pixels; its sigma
    selection on the validation crops (or, without a crop, images of the cell's median size)."""
    cell = count.cell
    used = images[: count.images or 0]
    pixels = sum(px for _, px in used)
    loss = _loss_key(cell.threat.loss) if cell.threat.attacked else None
    per_image = _pass_seconds(count.per_image, loss, own, other) + metric_seconds
    per_image += corruption_seconds.get(cell.condition.name, 0.0)
    if matrix.sr_space is not None and cell.description.get("sr_space"):  # only stochastic methods carry it
        per_image += sr_space_seconds
    seconds = per_image * pixels / probe_px + load_seconds.get(repr(cell.dataset.identity()), 0.0) * len(used)
    if count.selection_images:
        val = matrix.smoothing.validation
        side = val.crop // matrix.scale if val.crop else None
        val_px = side * side if side else (statistics.median(px for _, px in images) if images else probe_px)
        seconds += _pass_seconds(count.selection, loss, own, other) * val_px / probe_px
    return seconds


def _cell_flops(
    count: CellCount, images: list[tuple[str, int]], own: ProbeResult, other: ProbeResult | None, probe_px: int,
    metric_flops: float,
) -> float:  # fmt: skip
    """A cell's FLOPs: a forward as probed, a backward two forwards, scaled by pixels; plus the metrics."""
    pixels = sum(px for _, px in images[: count.images or 0])
    p = count.per_image
    per_image = (p.forwards + 2 * p.backwards) * own.forward_flops + metric_flops
    if other is not None:
        per_image += (p.surrogate_forwards + 2 * p.surrogate_backwards) * other.forward_flops
    return per_image * pixels / probe_px


@dataclass
class TrainingCost:
    """The cost of a training run from a probe of a few iterations on the current device."""

    recipe: str
    device: str
    iterations: int
    batch: int
    seconds_per_iter: float
    generator_flops_per_iter: float

    @property
    def seconds(self) -> float:
        return self.seconds_per_iter * self.iterations

    def format(self) -> str:
        return (
            f"cost plan of training {self.recipe} on {self.device}: {self.iterations} iterations of batch "
            f"{self.batch}, "
            f"{self.seconds_per_iter:.3g} s/iteration measured ({self.batch / self.seconds_per_iter:.3g} samples/s), "
            f"generator forward+backward {self.generator_flops_per_iter / 1e12:.3g} TFLOP/iteration (attack steps "
            f"and losses not included), estimated {format_seconds(self.seconds)}"
        )


def plan_training(trainer: Any, probe_iters: int = 2) -> TrainingCost:
    """Time ``probe_iters`` iterations of ``trainer`` (after one warm-up) and extrapolate to ``train.iters``.

    The probe trains on batches of iterations 1, 2, ...; the trainer's weights change, so do not save it afterwards.
    The FLOPs are those of one generator forward on one batch, times three (forward and backward).
    """
    from torch.utils.flop_counter import FlopCounterMode

    t = trainer.config["train"]
    device = trainer.device
    batches = [trainer.sampler.sample(trainer.rng("data", i + 1)) for i in range(probe_iters + 1)]
    trainer.train_step(*batches[0], 1)
    _sync(device)
    t0 = time.perf_counter()
    for i, (lr, hr) in enumerate(batches[1:], start=2):
        trainer.train_step(lr, hr, i)
    _sync(device)
    per_iter = (time.perf_counter() - t0) / probe_iters
    mode = FlopCounterMode(display=False)
    with mode, torch.no_grad():
        trainer.net_g(batches[0][0])
    return TrainingCost(
        trainer.recipe.name, str(device), int(t["iters"]), int(t["batch"]), per_iter, 3.0 * mode.get_total_flops()
    )
