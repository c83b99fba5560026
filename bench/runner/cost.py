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

**Batches** (``batch_images``): a cell is timed as the runner runs it -- in the batches the runner forms, by the same
function (:func:`bench.runner.batches.batches` with :meth:`CellEvaluator.images_per_call
<bench.runner.cell.CellEvaluator.images_per_call>`: the cell's images in order, ``batch_images`` at a time for a
deterministic method, attacked or not, one at a time for a stochastic one or a transfer from a stochastic surrogate,
each chunk split by image size); :attr:`CostPlan.batches` lists them. A batch's passes (the method's and the
surrogate's) take the per-image seconds of a call of that many probe images (:func:`probe_passes`'s ``batch``: the
call's seconds over its images). Probes run per model at batch 1 (always; the FLOPs) and only at the sizes the cells
form; of more than :data:`~bench.runner.probe.MAX_BATCH_PROBES` sizes above 1, the largest and those holding the
most images are probed and the others interpolated (:func:`~bench.runner.probe.between`: a call's time linear in its
images). Batching changes time, not counts: forwards and backwards stay per image (model evaluations,
:mod:`bench.runner.passes`), and so do FLOPs. The metrics, corruption and reads stay timed per image at batch 1 (the
runner scores a batch at once: a small over-estimate where metrics weigh), and a sigma selection's images one at a
time, as the selection runs them.

Writing each cell's JSON and its gallery crops is timed once (one write of each) and added per cell; building the
runner (metrics, cards' provenance, cells) and writing the run's info once, on the first line.

Median smoothing is timed as the run makes it: a cell counted at a sigma (:attr:`CellCount.sigma
<bench.runner.passes.CellCount.sigma>`; a ``sigma: auto`` card at the grid value the count takes) with its n copies
batched, a cell with smoothing off on the base alone. A ``sigma: auto`` cell's selection
(:attr:`~bench.runner.passes.CellCount.selection_steps`) is timed per grid value with the probe at that sigma, on the
validation images' own sizes, with their reads, the condition and the selection metric (:func:`_selection_cost`).

A ``refused`` attack setting (:data:`bench.runner.cells.REFUSED`) is never attempted: its line says so with the
text and fix of its failure rows (:func:`bench.runner.stages.attack.refusal_of`), no pass and only the reads and
the write the run does for it; it is not an error of the plan (:attr:`CostPlan.errors`: the kinds that cannot be
probed). Not timed: report rendering, the first load of a checkpoint, the degradation attack's own network. Cells
already stored are counted.

Length (over ~500 lines): the time model (per pass and batch size, per image, per selection, per method and per
run) and the plan's table are one estimate and are tested as one against real runs; the probes themselves live in
:mod:`bench.runner.probe`, the batching rule in :mod:`bench.runner.batches`.

Example::

    plan = plan_matrix(load_matrix("default"), device="cpu")
    print(plan.format())    # per kind of cell: cells, images, largest batch, forwards, backwards, TFLOP, time
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from bench.runner.batches import batches, size_key
from bench.runner.passes import CellCount, Passes, count_cells
from bench.runner.probe import (
    AS_SET,
    ProbeResult,
    between,
    format_seconds,
    probe_images,
    probe_passes,
    probed_batches,
    timed,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_PROBE = 64


@dataclass
class CostLine:
    """The cost of the cells of one (method, condition, attack) kind."""

    method: str
    condition: str
    attack: str
    cells: int = 0
    images: int = 0
    batch: int = 1  # the most images of one call (:mod:`bench.runner.batches`) in its cells
    lr_pixels: int = 0
    forwards: float = 0.0
    backwards: float = 0.0
    flops: float = 0.0
    seconds: float = 0.0
    error: str = ""
    refused: str = ""  # a ``refused`` attack setting: its failure rows' text (never attempted), with ``fix``
    fix: str = ""


@dataclass
class CostPlan:
    """The plan of a whole matrix on one device: one :class:`CostLine` per kind of cell, and totals."""

    matrix: str
    device: str
    lines: list[CostLine] = field(default_factory=list)
    probe_seconds: float = 0.0
    #: cell key -> the image names of each batch the cell is timed at (:mod:`bench.runner.batches`; not refused
    #: cells, nor kinds that cannot be probed)
    batches: dict[str, list[list[str]]] = field(default_factory=dict)

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

    @property
    def refused_cells(self) -> int:
        """Cells of ``refused`` attack settings: failure rows with the fix, never attempted (not an error of the
        plan)."""
        return sum(line.cells for line in self.lines if line.refused)

    @property
    def errors(self) -> list[CostLine]:
        """The kinds of cell the plan could not probe (a method that cannot be built or run, ...)."""
        return [line for line in self.lines if line.error]

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
            "refused_cells": self.refused_cells,
            "errors": len(self.errors),
            "lines": [vars(line).copy() for line in self.lines],
        }

    def table(self) -> list[str]:
        """The table's header and one row per kind of cell (a ``refused`` kind: its reason and fix; a kind that
        cannot be probed: why)."""
        head = f"{'method':<28} {'condition':<18} {'attack':<22} {'cells':>5} {'images':>6} {'batch':>5}"
        head += f" {'fwd':>8} {'bwd':>8}"
        rows = [head + f" {'TFLOP':>9} {'time':>9}"]
        for line in self.lines:
            tail = f" {line.flops / 1e12:>9.3f} {format_seconds(line.seconds):>9}"
            if line.error:
                tail = f"  cannot probe: {line.error}"
            elif line.refused:
                tail += f"  refused, never attempted: {line.refused}"
            rows.append(
                f"{line.method[:28]:<28} {line.condition[:18]:<18} {line.attack[:22]:<22} {line.cells:>5} "
                f"{line.images:>6} {line.batch:>5} {line.forwards:>8.0f} {line.backwards:>8.0f}{tail}"
            )
        return rows

    def notes(self) -> list[str]:
        """What the total leaves out or counts apart: refused cells, kinds that cannot be probed."""
        out = []
        if self.refused_cells:
            n = self.refused_cells
            out.append(f"{n} cell{'s' * (n != 1)} refused: failure rows with the fix, no model pass")
        if self.errors:
            n = len(self.errors)
            out.append(f"{n} kind{'s' * (n != 1)} of cell cannot be probed: not in the estimate")
        return out

    def format(self) -> str:
        """A plain-text table (:meth:`table`), a total line and :meth:`notes`."""
        total = (
            f"total: {self.cells} cells, {self.forwards:.0f} forwards, {self.backwards:.0f} backwards, "
            f"{self.flops / 1e12:.3f} TFLOP, estimated {format_seconds(self.seconds)} "
            f"(probes took {format_seconds(self.probe_seconds)})"
        )
        return "\n".join([f"cost plan of matrix {self.matrix} on {self.device}", *self.table(), total, *self.notes()])


def _stage_seconds(runner: Any, side: int, repeats: int) -> tuple[float, float, dict[str, float], float]:
    """Per image at the probe size: seconds and FLOPs of all the metrics, seconds of each condition's corruption and
    of the SR-space scoring (0 without ``sr_space``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.seeding import make_generator

    device, scale = runner.device, runner.matrix.scale
    hr, lr, sr = probe_images(side, scale, device)

    def metrics() -> None:
        with torch.no_grad():
            for metric in runner.metrics.values():
                metric(sr, hr, lr)

    metric_seconds = timed(metrics, device, repeats) if runner.metrics else 0.0
    mode = FlopCounterMode(display=False)
    with mode:
        metrics()
    corruption = {}
    for condition in runner.matrix.conditions:
        fn = runner.corrupt.corruption(condition)
        corruption[condition.name] = timed(lambda fn=fn: fn(lr, make_generator(0)), device, repeats)
    sr_space = 0.0
    settings = runner.matrix.sr_space
    if settings is not None:
        from bench.metrics.diversity import diversity_score

        samples = [sr] * settings.samples
        lpips = runner.sr_space.lpips()
        sr_space = timed(lambda: diversity_score(samples, hr, scale=scale, metric=lpips), device, 1)
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
        cell = timed(lambda: atomic_write_json(Path(tmp) / "cell.json", payload), torch.device("cpu"), repeats)
        image = timed(lambda: write_image(crop, Path(tmp) / "crop.png"), torch.device("cpu"), repeats)
    return cell, image


def _gallery_crops(runner: Any, count: CellCount, images: list[_Image]) -> int:
    """Crops the gallery stage writes for the cell: HR, LR and SR, or HR, LR, adversarial LR and SR."""
    g, cell = runner.matrix.gallery, count.cell
    stochastic = bool(runner.provenances.get(cell.method, {}).get("stochastic", False))
    if g is None or not runner.gallery.wants(cell, stochastic):
        return 0
    if g.image not in {image.name for image in images[: count.images or 0]}:
        return 0
    return 4 if cell.threat.attacked else 3


def _batch_key(image: _Image) -> tuple[int, int, bool]:
    return image.key


class _Image(NamedTuple):
    """One image of a cell as the plan sees it: its LR pixels and its batch key (:func:`bench.runner.batches.
    size_key`)."""

    name: str
    pixels: int
    key: tuple[int, int, bool]


def _lr_size(sample: Any, scale: int) -> tuple[int, int]:
    """The LR height and width the runner prepares from a loaded sample: the HR's, modcropped, over the scale; an
    LR-only set's LR's."""
    if sample.hr is not None:
        return int(sample.hr.shape[-2]) // scale, int(sample.hr.shape[-1]) // scale
    return int(sample.lr.shape[-2]), int(sample.lr.shape[-1])


def _images(runner: Any, cell: Any, sizes: dict[tuple[str, str], _Image]) -> list[_Image]:
    """Every image of the cell's dataset, in order: its LR size as the runner prepares it (the HR's, modcropped, over
    the scale; an LR-only set: its LR's)."""
    dataset = runner.dataset(cell)
    out = []
    scale = runner.matrix.scale
    for name in dataset.names():
        key = (repr(cell.dataset.identity()), name)
        if key not in sizes:
            sample = dataset.load(name)
            h, w = _lr_size(sample, scale)
            sizes[key] = _Image(name, h * w, size_key(h, w, sample.hr is not None))
        out.append(sizes[key])
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


@dataclass
class _Rates:
    """What the time model multiplies counts by: seconds (and FLOPs) per image at the probe's ``probe_px`` LR
    pixels, per dataset read, per cell written; and the validation split of a sigma selection."""

    probe_px: int
    load: Mapping[str, float]  # one image read, per dataset identity
    metrics: float
    metric_flops: float
    corruption: Mapping[str, float]  # per condition name
    sr_space: float
    cell_write: float
    crop_write: float
    selection: _Selection | None = None


@dataclass
class _Selection:
    """A sigma selection's fixed part: its validation images (their LR pixels, one read) and its metric."""

    pixels: list[int]
    load: float
    metric: float
    metric_flops: float


def _selection_rates(runner: Any, side: int, repeats: int) -> _Selection:
    """The validation split of ``smoothing:`` as :class:`bench.runner.stages.sigma.SigmaSelector` reads it (its
    images, cropped as declared) and its selection metric (the run's, else built as the selector builds it), timed on
    one image at the probe size. Raises what the selection would raise (a split that cannot be read...)."""
    from torch.utils.flop_counter import FlopCounterMode

    sm, scale, device = runner.matrix.smoothing, runner.matrix.scale, runner.device
    val = sm.validation
    dataset = runner.dataset(val.entry())
    names = list(dataset.names())[: val.images] if isinstance(val.images, int) else list(val.images)
    pixels = [h * w for h, w in (_lr_size(dataset.load(name), scale) for name in names)]
    load = 0.0
    if names:
        t0 = time.perf_counter()
        dataset.load(names[0])
        load = time.perf_counter() - t0
    metric = runner.metrics.get(sm.metric)
    if metric is None:
        from bench.metrics import build_metric

        metric = build_metric(sm.metric).to(device).eval()
    hr, _, sr = probe_images(side, scale, device)

    def score() -> None:
        with torch.no_grad():
            metric(sr, hr)

    seconds = timed(score, device, repeats)
    mode = FlopCounterMode(display=False)
    with mode:
        score()
    return _Selection(pixels, load, seconds, float(mode.get_total_flops()))


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
    from bench.runner.cells import REFUSED
    from bench.runner.provenance import error_text
    from bench.runner.runner import Runner
    from bench.runner.stages import precision
    from bench.runner.stages.attack import refusal_of

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        runner = Runner(matrix, tmp, device=device, progress=False)
    setup = time.perf_counter() - started  # a run builds the same Runner (metrics, cards' provenance, cells)
    plan = CostPlan(matrix.name, str(runner.device))
    wanted = set(methods) if methods is not None else None
    cells = [c for c in runner.cells if wanted is None or c.method in wanted]
    sizes: dict[tuple[str, str], _Image] = {}
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
    images_at: dict[int, int] = {}  # batch size -> images, were every cell to batch (one that does not forms 1s)
    for count in counts:
        for group in batches(listed[count.cell.key][: count.images or 0], matrix.batch_images, _batch_key):
            images_at[len(group)] = images_at.get(len(group), 0) + len(group)
    probe_sizes = probed_batches(images_at)
    all_pixels = sorted(image.pixels for images in listed.values() for image in images)
    side = max(8, min(max_probe, round(statistics.median(all_pixels) ** 0.5))) if all_pixels else 8
    metric_seconds, metric_flops, corruption_seconds, sr_space_seconds = _stage_seconds(runner, side, repeats)
    cell_write_seconds, crop_seconds = _write_seconds(runner, repeats)
    rates = _Rates(
        side * side,
        _load_seconds(runner, [members[0].cell for members in groups.values()]),
        metric_seconds,
        metric_flops,
        corruption_seconds,
        sr_space_seconds,
        cell_write_seconds,
        crop_seconds,
    )
    setup += 2 * cell_write_seconds  # the run's info, written when it starts and when it ends
    selection_error: BaseException | None = None
    if any(c.selection_steps for c in counts):
        try:
            rates.selection = _selection_rates(runner, side, repeats)
        except Exception as exc:  # the runner's selection fails the same way: those cells fail, the plan says so
            selection_error = exc
    probes: dict[tuple[str, str], ProbeResult] = {}
    built: dict[str, Any] = {}

    def probe(
        method: Any,
        name: str,
        members: list[CellCount],
        surrogate: bool,
        sigma: float | str | None = AS_SET,
        batch: int = 1,
    ) -> tuple[ProbeResult, float]:
        """The probe of ``method`` (``name``; median smoothing at ``sigma``), or of its surrogate card ``name``, with
        the attack losses of ``members``, at ``batch`` images per call; and the seconds spent building the surrogate
        now."""
        losses = {
            _loss_key(c.cell.threat.loss): runner.attack.loss(c.cell.threat.loss)
            for c in members
            if c.cell.threat.attacked and (c.cell.threat.surrogate is not None) == surrogate
        }
        build = 0.0
        model = method
        if surrogate:
            if f"surrogate:{name}" not in built:
                t0 = time.perf_counter()
                built[f"surrogate:{name}"] = runner.attack.surrogate(name, method)
                build = time.perf_counter() - t0
            model = built[f"surrogate:{name}"]
        if not model.capabilities.smoothed:
            sigma = AS_SET
        # the time of a pass depends on whether smoothing is on (copies batched), not on the sigma's value
        flag = sigma if sigma == AS_SET else str(sigma is not None)
        key = (f"surrogate:{name}" if surrogate else name, flag, batch)
        result = probes.get(key)
        missing = {k: v for k, v in losses.items() if result is None or k not in result.backward_seconds}
        if result is None or missing:
            fresh = probe_passes(model, side, matrix.scale, runner.device, missing, repeats, sigma, batch)
            if result is None:
                result = fresh
            else:
                result.backward_seconds.update(fresh.backward_seconds)
            probes[key] = result
        return result, build

    def at_sizes(
        method: Any, name: str, members: list[CellCount], surrogate: bool, sigma: Any, needed: set[int]
    ) -> tuple[dict[int, ProbeResult], float]:
        """:func:`probe` at batch 1 and at every size of ``needed``: probed when it is one of ``probe_sizes``,
        else between the probed sizes on either side (:func:`between`); and the seconds building the surrogate."""
        out, build = {}, 0.0
        for b in sorted({1} | needed):
            lo = max(p for p in probe_sizes if p <= b)
            hi = min((p for p in probe_sizes if p >= b), default=lo)
            got = {}
            for size in {lo, hi}:
                got[size], seconds = probe(method, name, members, surrogate, sigma, size)
                build += seconds
            out[b] = got[b] if b in got else got[lo] if lo == hi else between(got[lo], got[hi], b)
        return out, build

    for (method_name, condition, attack), members in groups.items():
        line = CostLine(method_name, condition, attack, cells=len(members))
        plan.lines.append(line)
        for count in members:
            total = count.total
            line.images += count.images or 0
            line.lr_pixels += sum(image.pixels for image in listed[count.cell.key][: count.images or 0])
            line.forwards += total.all_forwards
            line.backwards += total.all_backwards
        try:
            if method_name not in built:  # the runner builds each method once (method-major order), refused or not
                t0 = time.perf_counter()
                method = cards.build_method(method_name, device=runner.device)
                # as the runner builds it: behind the precision guard the matrix asks for (calibrated here)
                method = precision.guard(method, method_name, matrix.precision, runner.device, matrix.compile)
                precision.stamp(method)
                built.clear()  # one method at a time (its surrogates go with it)
                probes.clear()
                built[method_name] = method
                line.seconds += time.perf_counter() - t0
            method = built[method_name]
            if members[0].cell.threat.variant == REFUSED:  # never attempted: what its failure rows say
                refusal = refusal_of(members[0].cell, method)
                line.refused, line.fix = error_text(refusal), refusal.fix or ""
                line.seconds += sum(_refused_seconds(c, listed[c.cell.key], rates) for c in members)
                continue
            for count in members:
                cell = count.cell
                used = listed[cell.key][: count.images or 0]
                groups_of_cell = batches(used, runner.evaluator.images_per_call(cell, method), _batch_key)
                needed = {len(group) for group in groups_of_cell}
                line.batch = max([line.batch, *needed])
                plan.batches[cell.key] = [[image.name for image in group] for group in groups_of_cell]
                own, _ = at_sizes(method, method_name, [count], False, count.sigma, needed)
                other = None
                if cell.threat.attacked and cell.threat.surrogate is not None:
                    other, build = at_sizes(method, cell.threat.surrogate, [count], True, AS_SET, needed)
                    line.seconds += build
                line.seconds += _cell_seconds(count, groups_of_cell, own, other, matrix, rates)
                line.flops += _cell_flops(count, used, own[1], None if other is None else other[1], rates)
                line.seconds += rates.cell_write + rates.crop_write * _gallery_crops(runner, count, listed[cell.key])
                if count.selection_steps:
                    if selection_error is not None:
                        raise selection_error
                    at = {s: probe(method, method_name, [count], False, s)[0] for s, _ in count.selection_steps}
                    seconds, flops = _selection_cost(count, at, None if other is None else other[1], rates)
                    line.seconds += seconds
                    line.flops += flops
        except Exception as exc:  # a method that cannot be built or run: the plan says so, the rest goes on
            prefix = "sigma selection: " if exc is selection_error else ""
            line.error = prefix + f"{type(exc).__name__}: {exc}"
            logger.warning("cost probe of %s | %s | %s failed: %s", method_name, condition, attack, line.error)
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


def _pass_flops(passes: Passes, own: ProbeResult, other: ProbeResult | None) -> float:
    """FLOPs of ``passes`` at the probe size: a forward as probed, a backward two forwards."""
    flops = (passes.forwards + 2 * passes.backwards) * own.forward_flops
    if other is not None:
        flops += (passes.surrogate_forwards + 2 * passes.surrogate_backwards) * other.forward_flops
    return flops


def _cell_seconds(
    count: CellCount,
    groups: list[list[_Image]],
    own: Mapping[int, ProbeResult],
    other: Mapping[int, ProbeResult] | None,
    matrix: Any,
    rates: _Rates,
) -> float:
    """A cell's estimated seconds: the passes of each of its batches (``groups``, :func:`bench.runner.batches.
    batches`) at that batch's size (``own`` and ``other``: the probes per batch size), its metrics, corruption and
    reads, all scaled by pixels (its sigma selection: :func:`_selection_cost`)."""
    cell = count.cell
    used = [image for group in groups for image in group]
    loss = _loss_key(cell.threat.loss) if cell.threat.attacked else None
    passes = 0.0
    for group in groups:
        b = len(group)
        per_image = _pass_seconds(count.per_image, loss, own[b], None if other is None else other[b])
        passes += per_image * sum(image.pixels for image in group)
    per_image = rates.metrics + rates.corruption.get(cell.condition.name, 0.0)
    if matrix.sr_space is not None and cell.description.get("sr_space"):  # only stochastic methods carry it
        per_image += rates.sr_space
    pixels = sum(image.pixels for image in used)
    seconds = (passes + per_image * pixels) / rates.probe_px
    return seconds + rates.load.get(repr(cell.dataset.identity()), 0.0) * len(used)


def _selection_cost(
    count: CellCount, probes: Mapping[float | None, ProbeResult], other: ProbeResult | None, rates: _Rates
) -> tuple[float, float]:
    """Seconds and FLOPs of the sigma selection ``count`` runs first, as
    :func:`bench.certify.sigma.select_sigma` does it: every validation image read once (and corrupted once, unless
    the condition is an attack, remade per sigma); per grid value (``probes``: the method's probe at that sigma) and
    image, the passes of :attr:`~bench.runner.passes.CellCount.selection_steps` and the selection metric."""
    val = rates.selection
    cell = count.cell
    ratio = sum(val.pixels) / rates.probe_px  # the validation images' pixels over the probe's
    loss = _loss_key(cell.threat.loss) if cell.threat.attacked else None
    corruption = rates.corruption.get(cell.condition.name, 0.0)
    seconds = val.load * len(val.pixels) + (0.0 if cell.threat.attacked else corruption * ratio)
    flops = 0.0
    for sigma, one in count.selection_steps:
        per_image = _pass_seconds(one, loss, probes[sigma], other) + val.metric
        per_image += corruption if cell.threat.attacked else 0.0
        seconds += per_image * ratio
        flops += (_pass_flops(one, probes[sigma], other) + val.metric_flops) * ratio
    return seconds, flops


def _refused_seconds(count: CellCount, images: list[_Image], rates: _Rates) -> float:
    """A ``refused`` cell: no model pass and no metric; the runner reads and corrupts its images (the attack then
    raises on each: failure rows) and writes the cell."""
    used = images[: count.images or 0]
    cell = count.cell
    per_image = rates.corruption.get(cell.condition.name, 0.0) * sum(im.pixels for im in used) / rates.probe_px
    return per_image + rates.load.get(repr(cell.dataset.identity()), 0.0) * len(used) + rates.cell_write


def _cell_flops(
    count: CellCount, images: list[_Image], own: ProbeResult, other: ProbeResult | None, rates: _Rates
) -> float:
    """A cell's FLOPs (its passes and metrics; ``own`` and ``other`` probed at batch 1), scaled by pixels."""
    pixels = sum(image.pixels for image in images[: count.images or 0])
    return (_pass_flops(count.per_image, own, other) + rates.metric_flops) * pixels / rates.probe_px
