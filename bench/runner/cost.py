"""The cost of a matrix before any work: cells, model passes, FLOPs and an estimated time on this device.

``python -m bench run --matrix X --dry-run`` prints :func:`plan_matrix`'s table; ``python -m bench reproduce TABLE
--dry-run`` counts with the same rule. Two parts, kept apart: the **counts** of model passes come from
:mod:`bench.runner.passes` (:func:`~bench.runner.passes.count_cells`, the one rule; no model runs); this module
measures what a pass and everything around it costs here, and turns counts into time.

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

Length (over ~500 lines): the probe, the time model (per pass, per image, once per method and per run) and the plan's
table are one estimate and are tested as one against real runs; the training estimate (:func:`plan_training`) reuses
the same timer.

Example::

    plan = plan_matrix(load_matrix("default"), device="cpu")
    print(plan.format())    # per kind of cell: cells, images, forwards, backwards, TFLOP, estimated time
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.runner.passes import CellCount, Passes, count_cells

logger = logging.getLogger(__name__)

DEFAULT_MAX_PROBE = 64


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
                method = precision.guard(method, method_name, matrix.precision, runner.device, matrix.compile)
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
