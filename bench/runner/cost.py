"""The cost of a matrix before any work: cells, model evaluations, FLOPs and an estimated time on this device.

``python -m bench run --matrix X --dry-run`` prints :func:`plan_matrix`'s table and exits. How it is obtained:

1. the cells are expanded exactly as the runner does (:class:`bench.runner.runner.Runner`), and the images of each
   cell's dataset are listed (the attacked cells keep ``attack_images`` of them) with their LR pixel counts;
2. a **probe** per (method, condition, attack setting): one image at the matrix's median LR size, capped at
   ``max_probe`` pixels a side, is run once as the cell would run it -- corruption, attack (if any), the method's
   ``super_resolve`` (median smoothing draws its copies there) and every metric -- after one warm-up, timed
   (CUDA synchronised) and counted: forwards are calls of the innermost method (a smoothing copy, an EOT draw
   and an attack step each count), backwards come from the attack's own count, FLOPs from
   ``torch.utils.flop_counter.FlopCounterMode`` over ``super_resolve`` and the metrics (it cannot run under
   ``autograd.grad``, so an attack's FLOPs are its forwards plus two forwards' worth per backward);
3. each cell's cost is the probe's, scaled by the cell's LR pixels over the probe's (conv nets and the pixel
   metrics are linear in pixels), summed over its images, plus reading its images (one read timed per dataset)
   and, once per method, building it (timed when the probe builds it; with the matrix's ``precision``, so the guard's
   calibration is in that time and a bf16 fast path is what the probe times).

Not counted: sigma selection of ``sigma: auto`` smoothing (one extra pass over the validation images per sigma),
report rendering, the first load of a checkpoint. Cells already stored are counted unless ``pending_only``.

Example::

    plan = plan_matrix(load_matrix("default"), device="cpu")
    print(plan.format())    # per kind of cell: cells, images, forwards, backwards, TFLOP, estimated time
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

DEFAULT_MAX_PROBE = 64


@dataclass
class ProbeResult:
    """One measured run of one image (see the module docstring); ``error`` set when the probe failed."""

    lr_pixels: int
    seconds: float = 0.0
    forwards: int = 0
    backwards: int = 0
    flops: float = 0.0
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


class _ForwardCounter:
    """Counts calls of every :class:`~bench.methods.base.Method` inside a method; the innermost count is the
    number of network evaluations (a smoothing copy or an EOT draw calls the base method once)."""

    def __init__(self, method: torch.nn.Module) -> None:
        from bench.methods.base import Method

        self.counts: dict[int, int] = {}
        self.handles = []
        for module in method.modules():
            if isinstance(module, Method):
                self.counts[id(module)] = 0
                self.handles.append(module.register_forward_pre_hook(self._hook(id(module))))

    def _hook(self, key: int):
        def hook(module: torch.nn.Module, args: Any) -> None:
            self.counts[key] += 1

        return hook

    def total(self) -> int:
        return max(self.counts.values(), default=0)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _images(runner: Any, cell: Any, sizes: dict[tuple[str, str], int]) -> list[tuple[str, int]]:
    """(name, LR pixels) of the images the cell computes."""
    dataset = runner.dataset(cell)
    names = list(dataset.names())
    if cell.threat.attacked and runner.matrix.attack_images is not None:
        names = names[: runner.matrix.attack_images]
    out = []
    scale = runner.matrix.scale
    for name in names:
        key = (repr(cell.dataset.identity()), name)
        if key not in sizes:
            hr = dataset.load(name).hr
            sizes[key] = (hr.shape[-2] // scale) * (hr.shape[-1] // scale)
        out.append((name, sizes[key]))
    return out


def probe_cell(runner: Any, cell: Any, method: Any, side: int, repeats: int = 1) -> ProbeResult:
    """Run one ``side`` x ``side`` LR image through ``cell``'s pipeline (see the module docstring), after a warm-up."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.images import quantize
    from bench.seeding import make_generator, seed_from

    device = runner.device
    scale = runner.matrix.scale
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, side * scale, side * scale, generator=g)
    hr = torch.nn.functional.avg_pool2d(hr, 5, 1, 2).to(device)  # some spatial correlation, like an image
    from bench.data.imresize import imresize

    def once(count: bool) -> tuple[float, int, int, float]:
        counter = _ForwardCounter(method) if count else None
        _sync(device)
        t0 = time.perf_counter()
        backwards, attack_forwards, flops = 0, 0, 0.0
        try:
            lr = quantize(imresize(hr, 1 / scale))
            lr = runner.corrupt.corruption(cell.condition)(lr, make_generator(seed_from(cell.key, "probe")))
            if cell.threat.attacked:  # FlopCounterMode cannot run under autograd.grad: the attack is counted
                attack = runner.attack.build(cell, method)
                result = attack(method, lr, hr, make_generator(seed_from(cell.key, "probe", "attack"), device))
                lr, backwards = result.x_adv, int(result.backward_count)
                attack_forwards = counter.total() if counter is not None else 0
            mode = FlopCounterMode(display=False) if count else _null()
            with mode:
                sr = method.super_resolve(lr, make_generator(seed_from(cell.key, "probe", "method"), device))
            if count:
                sr_forwards = counter.total() - attack_forwards
                per_forward = mode.get_total_flops() / max(1, sr_forwards)
                # a backward costs about two forwards (gradients to the input and the activations)
                flops = float(mode.get_total_flops()) + per_forward * (attack_forwards + 2 * backwards)
            mode = FlopCounterMode(display=False) if count else _null()
            with mode, torch.no_grad():
                for metric in runner.metrics.values():
                    metric(sr, hr, lr)
            if count:
                flops += float(mode.get_total_flops())
            _sync(device)
        finally:
            if counter is not None:
                counter.close()
        seconds = time.perf_counter() - t0
        forwards = counter.total() if counter is not None else 0
        return seconds, forwards, backwards, flops

    once(count=False)  # warm-up: lazy builds, caches, allocator
    _, forwards, backwards, flops = once(count=True)
    times = [once(count=False)[0] for _ in range(max(1, repeats))]
    return ProbeResult(side * side, statistics.median(times), forwards, backwards, flops)


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


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


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
        repeats: timed probe runs per kind of cell (the median is used).
        methods: restrict to these methods (default: all of the matrix).
    """
    from bench.methods import cards
    from bench.runner.runner import Runner
    from bench.runner.stages import precision

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        runner = Runner(matrix, tmp, device=device, progress=False)
    plan = CostPlan(matrix.name, str(runner.device))
    wanted = set(methods) if methods is not None else None
    sizes: dict[tuple[str, str], int] = {}
    groups: dict[tuple[str, str, str], list[tuple[Any, list[tuple[str, int]]]]] = {}
    for cell in runner.cells:
        if wanted is not None and cell.method not in wanted:
            continue
        key = (cell.method, cell.condition.name, cell.threat.label())
        groups.setdefault(key, []).append((cell, _images(runner, cell, sizes)))
    built: dict[str, Any] = {}
    load_seconds = _load_seconds(runner, [members[0][0] for members in groups.values()])
    for (method_name, condition, attack), members in groups.items():
        line = CostLine(method_name, condition, attack, cells=len(members))
        pixels = sorted(px for _, images in members for _, px in images)
        line.images = len(pixels)
        line.lr_pixels = sum(pixels)
        plan.lines.append(line)
        if not pixels:
            continue
        side = max(8, min(max_probe, round(statistics.median(pixels) ** 0.5)))
        try:
            if method_name not in built:
                t0 = time.perf_counter()
                method = cards.build_method(method_name, device=runner.device)
                # as the runner builds it: behind the precision guard the matrix asks for (calibrated here)
                method = precision.guard(method, method_name, matrix.precision, runner.device)
                precision.stamp(method)
                built = {method_name: method}  # one method at a time
                line.seconds += time.perf_counter() - t0  # the runner builds each method once (method-major order)
            probe = probe_cell(runner, members[0][0], built[method_name], side, repeats)
        except Exception as exc:  # a method that cannot be built or run: the plan says so, the rest goes on
            line.error = f"{type(exc).__name__}: {exc}"
            logger.warning("cost probe of %s | %s | %s failed: %s", method_name, condition, attack, exc)
            continue
        ratio = line.lr_pixels / probe.lr_pixels
        line.forwards = probe.forwards * line.images
        line.backwards = probe.backwards * line.images
        line.flops = probe.flops * ratio
        line.seconds += probe.seconds * ratio
        line.seconds += sum(load_seconds.get(repr(cell.dataset.identity()), 0.0) * len(im) for cell, im in members)
    plan.probe_seconds = time.perf_counter() - started
    return plan


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
