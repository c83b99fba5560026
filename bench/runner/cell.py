"""One cell's computation: every image of a cell through the stages, into its :class:`~bench.results.schema.
CellPayload` (the runner decides *which* cells run and stores them; this module computes one).

Per batch of images (:meth:`CellEvaluator.evaluate`; how images form batches: :mod:`bench.runner.batches`, the
rule the cost plan shares), one image size at a time: *attack* (attacked cells), *infer* (the method or the
certified smoothed prediction), the gallery crops and stored outputs, *score* (every metric; the certified columns
of a certificate, :func:`bench.runner.stages.score.certified_rows`) and the SR-space columns
(:meth:`bench.runner.stages.sample.SRSpace.rows`). Errors follow :mod:`bench.runner.runner`: the project's errors and
bad data become failure rows, anything else surfaces.

Every generator is seeded by its own image. Stochastic methods run one image per batch (they draw from one
generator per call), as do attacked cells whose attack draws from a stochastic model (a stochastic method, or a
transfer from a stochastic surrogate); deterministic methods, attacked or not, run ``batch_images`` images of a size
per batch, the attacks drawing each image's randomness from its own generator, so ``batch_images`` changes no random
draw, and the values of a deterministic method only by floating-point summation order (what that can do to a
signed-gradient step on CUDA: :mod:`bench.runner.stages.attack`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.errors import BAD_DATA, AttackRefused, BadOutput
from bench.results.schema import NO_GROUND_TRUTH, STATUS_FAILED, STATUS_OK, CellPayload, GalleryEntry
from bench.runner.batches import by_size, chunks, size_key
from bench.runner.cells import Cell
from bench.runner.matrix import Matrix
from bench.runner.provenance import error_text, now
from bench.runner.stages.attack import Attacker, planned_mode
from bench.runner.stages.corrupt import Corrupter
from bench.runner.stages.gallery import Gallery
from bench.runner.stages.infer import certify_settings, finite_mask, infer, method_generator
from bench.runner.stages.outputs import OutputStore
from bench.runner.stages.prepare import Item, prepare
from bench.runner.stages.record import Rows
from bench.runner.stages.sample import SRSpace
from bench.runner.stages.score import Skipped, certified_rows, score

logger = logging.getLogger(__name__)


def item_size(item: Item) -> tuple[int, int, bool]:
    """The batch key of a prepared image (:func:`bench.runner.batches.size_key`)."""
    return size_key(item.lr.shape[-2], item.lr.shape[-1], item.hr is not None)


#: ``(cell, status, records, started, seconds, n_images) -> CellPayload`` with the run's provenance.
PayloadFactory = Callable[[Cell, str, list, str, float, int], CellPayload]


@dataclass
class CellState:
    """What one cell's batches gather besides its rows."""

    attacks: list[dict[str, Any]] = field(default_factory=list)
    certificates: list[dict[str, Any]] = field(default_factory=list)
    gallery: list[GalleryEntry] = field(default_factory=list)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # SR-space columns to compute (record names)
    sr_space: dict[str, dict[str, Any]] = field(default_factory=dict)  # image -> seeds and forward passes


@dataclass
class CellEvaluator:
    """Computes cells with what the run built once (see :class:`bench.runner.runner.Runner`, which owns one).

    Attributes:
        run_name: the ``run`` column of the rows.
        matrix, device: the run's matrix and device.
        metrics: the run's metrics (name -> module); ``sr_space``: its SR-space columns.
        corrupt, attack, gallery, outputs: the run's stages.
        dataset: ``cell -> dataset`` (built once per run by the runner).
        payload: builds a payload with the run's provenance.
        progress: a tqdm bar over a cell's images on stderr.
    """

    run_name: str
    matrix: Matrix
    device: torch.device
    metrics: Mapping[str, Any]
    sr_space: SRSpace
    corrupt: Corrupter
    attack: Attacker
    gallery: Gallery
    outputs: OutputStore
    dataset: Callable[[Cell], Any]
    payload: PayloadFactory
    progress: bool = True

    def compute(
        self,
        cell: Cell,
        method: Any,
        selection: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        columns: list[str] | None = None,
        sigma_source: str | None = None,
        stamp: Mapping[str, Any] | None = None,
    ) -> CellPayload:
        """Every image of the cell through the stages; the project's errors and bad data become failure rows.

        ``metrics`` (default: the run's) and ``columns`` (SR-space columns, default: the run's) are what to compute;
        ``sigma_source`` goes in a smoothed cell's ``smoothing`` section; ``stamp`` holds columns set on every row
        (the method's precision).
        """
        metrics = self.metrics if metrics is None else metrics
        started, t0 = now(), time.perf_counter()
        caps = method.capabilities
        sigma = method.sigma if caps.smoothed else None
        rows = Rows(self.run_name, cell, planned_mode(cell, caps.stochastic), sigma)
        rows.base.update(stamp or {})
        state = CellState(columns=list(self.sr_space.specs) if columns is None else list(columns))
        records: list[dict[str, Any]] = []
        dataset = self.dataset(cell)
        names = list(dataset.names())
        if cell.threat.attacked and self.matrix.attack_images is not None:
            names = names[: self.matrix.attack_images]
        if cell.threat.attacked and not getattr(dataset, "has_ground_truth", True):
            logger.info("%s: skipped (no ground truth: the attack's loss needs the HR)", cell.label())
            records = [rows.skipped(n, m, NO_GROUND_TRUTH, metrics[m].spec.as_dict()) for n in names for m in metrics]
            names = []

        def prepared() -> Iterator[Item]:
            bar = tqdm(names, desc="images", unit="img", leave=False, disable=not self.progress, file=sys.stderr)
            for name in bar:
                try:
                    yield self.corrupt(cell, prepare(dataset, name, self.matrix.scale, self.device))
                except BAD_DATA as exc:  # a broken image fails that image only
                    logger.warning("%s: image %s failed: %s", cell.label(), name, exc)
                    records.append(rows.failed(name, None, error_text(exc)))

        for batch in chunks(prepared(), self.images_per_call(cell, method)):  # the rule: bench.runner.batches
            records.extend(self.evaluate(cell, method, batch, rows, state, metrics))
        seconds = time.perf_counter() - t0
        n_failed = sum(r["status"] == STATUS_FAILED for r in records)  # skipped rows leave the cell ok
        status = STATUS_FAILED if n_failed else STATUS_OK
        payload = self.payload(cell, status, records, started, seconds, len(names))
        payload.metric_specs = {name: m.spec.as_dict() for name, m in metrics.items()}
        payload.metric_specs.update({c: self.sr_space.specs[c] for c in state.columns})
        if state.columns:
            n = self.matrix.sr_space.samples if self.matrix.sr_space is not None else None
            payload.sr_space = {"samples": n, "sampled": caps.stochastic, "images": state.sr_space}
        payload.gallery = state.gallery
        if status != STATUS_OK:
            payload.error = f"{n_failed} failure rows"
        elif self.matrix.store_outputs and state.outputs:
            payload.outputs, payload.outputs_tensors = self.outputs.write(cell.key, state.outputs)
        if cell.threat.attacked:
            payload.attack = {"threat": cell.threat.identity(), "label": cell.threat.label(), "batches": state.attacks}
        if caps.smoothed:
            payload.smoothing = {
                "settings": method.settings(),
                "sigma": sigma,
                "sigma_auto": bool(method.sigma_auto),
                "sigma_source": sigma_source,
                "selection": None if selection is None else dict(selection),
                "certificates": state.certificates,
            }
        return payload

    def images_per_call(self, cell: Cell, method: Any) -> int:
        """Images per chunk of the cell (:func:`bench.runner.batches.chunks`): 1 for a stochastic method and for an
        attacked cell whose attack draws from a stochastic model (:meth:`Attacker.one_per_batch
        <bench.runner.stages.attack.Attacker.one_per_batch>`), else the matrix's ``batch_images``."""
        stochastic = method.capabilities.stochastic
        one = stochastic or (cell.threat.attacked and self.attack.one_per_batch(cell, method))
        return 1 if one else self.matrix.batch_images

    def evaluate(self, cell, method, batch: list[Item], rows: Rows, state: CellState, metrics) -> list[dict]:
        """Attack, infer and score the images of one batch, one image size at a time (``hr`` None without ground
        truth: no-reference metrics only, no certificate)."""
        out: list[dict[str, Any]] = []
        for items in by_size(batch, item_size):
            names = [it.name for it in items]
            lr_clean = torch.cat([it.lr for it in items])
            hr = None if items[0].hr is None else torch.cat([it.hr for it in items])
            n, c, h, w = lr_clean.shape
            sr_shape = hr.shape if hr is not None else torch.Size((n, c, h * self.matrix.scale, w * self.matrix.scale))
            x, mode = lr_clean, None
            if cell.threat.attacked:
                try:
                    x, record = self.attack(cell, method, items, lr_clean, hr)
                except (AttackRefused, BadOutput) as exc:  # refused (not differentiable, ...) or non-finite
                    rows.per_image.update({it.name: it.attack_columns for it in items})
                    logger.warning("%s: attack failed on %s: %s", cell.label(), names, exc)
                    out.extend(rows.failed(n, None, error_text(exc)) for n in names)
                    continue
                rows.per_image.update({it.name: it.attack_columns for it in items})
                state.attacks.append(record)
                mode = items[0].attack_columns["attack_mode"]
            settings = certify_settings(method, self.matrix.smoothing) if hr is not None else None
            try:
                generator = method_generator(cell, names[0], self.device)
                sr, certificate = infer(method, x, sr_shape, generator, settings)
            except BAD_DATA as exc:
                logger.warning("%s: method failed on %s: %s", cell.label(), names, exc)
                out.extend(rows.failed(n, None, error_text(exc)) for n in names)
                continue
            finite = finite_mask(sr)
            keep = [i for i, ok in enumerate(finite) if ok]
            for i, ok in enumerate(finite):
                if not ok:
                    logger.warning("%s: image %s: non-finite SR output", cell.label(), names[i])
                    out.append(rows.failed(names[i], None, "method output contains NaN or inf"))
            if not keep:
                continue
            idx = torch.tensor(keep, device=sr.device)
            sr_k, x_k = sr.index_select(0, idx), x.index_select(0, idx)
            hr_k = None if hr is None else hr.index_select(0, idx)
            kept = [names[i] for i in keep]
            stochastic = method.capabilities.stochastic
            x_adv = x_k if cell.threat.attacked else None
            clean_k = lr_clean.index_select(0, idx)
            state.gallery += self.gallery.write(cell, stochastic, kept, hr_k, clean_k, sr_k, x_adv, mode)
            if self.matrix.store_outputs:
                for j, name in enumerate(kept):
                    state.outputs[f"sr/{name}"] = sr_k[j : j + 1]
                    state.outputs[f"x/{name}"] = x_k[j : j + 1]
            if certificate is not None:
                cert_rows, spec = certified_rows(certificate, hr, names, keep, rows, self.matrix)
                state.certificates.append(spec)
                out.extend(cert_rows)
            for metric_name, values in score(metrics, sr_k, hr_k, x_k).items():
                spec = metrics[metric_name].spec.as_dict()
                if isinstance(values, Skipped):  # a full-reference metric on a set without ground truth
                    out.extend(rows.skipped(n, metric_name, values.reason, spec) for n in kept)
                    continue
                if isinstance(values, BaseException):  # one metric failing does not stop the others
                    logger.warning("%s: metric %s failed: %s", cell.label(), metric_name, values)
                    out.extend(rows.failed(n, metric_name, error_text(values), spec) for n in kept)
                    continue
                out.extend(rows.value(n, metric_name, v, spec) for n, v in zip(kept, values, strict=True))
            if state.columns:
                outputs = state.outputs if self.matrix.store_outputs else None
                out.extend(
                    self.sr_space.rows(
                        cell, method, kept, x_k, sr_k, hr_k, rows, state.columns, state.sr_space, outputs
                    )
                )
        return out
