"""Execute a matrix: plan its cells, skip the stored ones, compute the others, store each one atomically.

Per image of a cell, the stages of :mod:`bench.runner.stages`, top to bottom::

    plan      matrix -> cells and keys (once per run)
    prepare   HR (modcropped), LR = sample.lr or imresize(HR, 1/scale) rounded to 8 bits
    corrupt   LR -> condition(LR, generator by (cell key, image))
    attack    -> x_adv (generator by (cell key, image, "attack"))                          [attacked cells]
    infer     -> method.super_resolve(x) or the certified smoothed prediction (generator by (cell key, image, "method"))
    score     -> every metric(SR, HR, x); certified columns of a certificate
    sample    -> SR-space columns over n samples per image (matrix ``sr_space:``; only stochastic methods sampled)
    record    -> tidy rows and the cell payload (:mod:`bench.results.schema`)

Stochastic methods and attacked cells run one image per batch, so every generator is seeded by its own image and
``batch_images`` changes no value (it batches deterministic methods only). Median smoothing with ``sigma: auto``
gets sigma chosen per (condition, attack setting) before its cells (:mod:`bench.runner.stages.sigma`).

Metrics are computed per metric: a stored ``ok`` cell whose ``metric_specs`` lack a metric of the matrix (or hold
another spec for it) computes only that metric -- from the stored SR outputs when the matrix has
``store_outputs: true`` (no model runs), else by running the method again; a metric dropped from the matrix is
dropped from the cell. SR-space columns (matrix ``sr_space:``, :mod:`bench.runner.stages.sample`) are metrics in this
sense too, but one missing from a stored cell runs the method again (its samples are drawn again from their seeds,
never re-read from the stored outputs). A cell with any failure row is stored ``failed`` and computed again by the
next run.

Errors: the project's own errors and bad data (:data:`bench.errors.BAD_DATA`; an attack that refuses the method, a
NaN output, a metric's ``ValueError`` on its input) become failure rows with the message and the run goes on; a
method that cannot be built (a missing checkpoint: :class:`bench.errors.MissingAsset`, an unknown asset) fails its
cells with the error and its ``fix`` as data. Anything else -- a bug in a method, CUDA out of memory -- surfaces.

Datasets: an image that fails pairing (an LR the size of its HR, a missing partner: the dataset's ``load`` raises
:class:`bench.data.pairing.PairingError`) is a failure row naming the files and sizes, and the other images are
scored. A dataset that cannot be built (not fetched: :class:`bench.data.store.DatasetNotReadyError`; a scale the
manifest lacks) fails each of its cells with the message and, as ``fix``, the exact fetch command; the run goes on.
A set without ground truth (``dataset.has_ground_truth`` false, samples with ``hr`` None) runs the no-reference
metrics only: each full-reference metric's rows are ``skipped`` with "skipped: no ground truth"
(:data:`bench.results.schema.NO_GROUND_TRUTH`), as are all rows of its attacked cells (an attack's loss needs the
HR) and its certified columns are not computed; skipped rows leave the cell ``ok``.

Sharding: ``rank``/``world_size`` (from ``RANK``/``WORLD_SIZE`` under torchrun) take the cells ``i % world_size ==
rank``; every rank writes its own cell files into the same run directory and the report merges them.

Example::

    matrix = load_matrix("smoke")
    summary = run_matrix(matrix, Path("reports/smoke"), device="cpu")
    summary.exit_code  # 0 when every cell is stored with status ok
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.devices import resolve_device
from bench.errors import BAD_DATA, AttackRefused, BadOutput, BenchError, MissingAsset, OutputError
from bench.metrics import METRICS
from bench.results.schema import NO_GROUND_TRUTH, STATUS_FAILED, STATUS_OK, CellPayload, GalleryEntry
from bench.runner.cells import Cell, shard
from bench.runner.lock import run_lock
from bench.runner.matrix import DatasetEntry, Matrix
from bench.runner.provenance import LR_SYNTHESIS, environment, error_text, now
from bench.runner.stages.attack import Attacker, planned_mode
from bench.runner.stages.corrupt import Corrupter
from bench.runner.stages.gallery import Gallery
from bench.runner.stages.infer import certify_settings, finite_mask, infer, method_generator
from bench.runner.stages.outputs import OutputStore
from bench.runner.stages.plan import plan
from bench.runner.stages.prepare import Item, prepare
from bench.runner.stages.record import Rows, cell_labels
from bench.runner.stages.rescore import merge, missing_metrics, rescore
from bench.runner.stages.sample import SRSpace
from bench.runner.stages.score import (
    CERT_PSNR_METRIC,
    METRIC_DATA_ERRORS,
    Skipped,
    build_metrics,
    certified_specs,
    certified_values,
    score,
)
from bench.runner.stages.sigma import SigmaSelector
from bench.runner.store import Store

__all__ = ["RunSummary", "Runner", "certified_specs", "run_matrix", "stored_records"]

logger = logging.getLogger(__name__)

#: Errors that fail a method's cells when it is built (a missing or unknown checkpoint, a bad card argument).
BUILD_ERRORS: tuple[type[BaseException], ...] = (BenchError, FileNotFoundError, KeyError)
#: Errors that fail a dataset's cells when it is built (not fetched, modified, a scale its manifest lacks).
DATASET_ERRORS: tuple[type[BaseException], ...] = (BenchError, OSError, ValueError, KeyError)


@dataclass
class RunSummary:
    """What a run did: cell counts, the failed cells' labels and where the store is."""

    run_dir: Path
    run_name: str
    total: int
    skipped: int = 0
    computed: int = 0
    failed: list[str] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


@dataclass
class _CellState:
    """What one cell's batches gather besides its rows."""

    attacks: list[dict[str, Any]] = field(default_factory=list)
    certificates: list[dict[str, Any]] = field(default_factory=list)
    gallery: list[GalleryEntry] = field(default_factory=list)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # SR-space columns to compute (record names)
    sr_space: dict[str, dict[str, Any]] = field(default_factory=dict)  # image -> seeds and forward passes


class Runner:
    """Holds what is built once per run (device, datasets, metrics, stages, the current method) and computes cells.

    Args:
        matrix: a validated :class:`Matrix`.
        run_dir: the run's store directory (``reports/<run>``).
        run_name: the ``run`` column of the records (default: the directory's name).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        rank, world_size: shard of the cells this process computes.
        progress: tqdm bars on stderr (over cells and over images).
    """

    def __init__(
        self,
        matrix: Matrix,
        run_dir: str | Path,
        *,
        run_name: str | None = None,
        device: str | torch.device = "auto",
        rank: int = 0,
        world_size: int = 1,
        progress: bool = True,
    ) -> None:
        self.matrix = matrix
        self.store = Store(run_dir)
        self.run_name = run_name or Path(run_dir).name
        self.device = resolve_device(device)
        self.rank, self.world_size, self.progress = rank, world_size, progress
        self.env = environment()
        self._datasets: dict[str, Any] = {}
        self._dataset_errors: dict[str, BaseException | None] = {}
        self.metrics = build_metrics(matrix.metrics, self.device, matrix.scale)
        self.metric_specs = {name: m.spec.as_dict() for name, m in self.metrics.items()}
        self.sr_space = SRSpace(matrix.sr_space, matrix.scale, self.device)  # its columns are metrics too
        self.metric_specs.update(self.sr_space.specs)
        the_plan = plan(matrix)
        self.cells, self.provenances = the_plan.cells, the_plan.provenances
        self.corrupt = Corrupter()
        self.attack = Attacker(self.device)
        self.gallery = Gallery(matrix, self.store.run_dir, the_plan.max_eps)
        self.outputs = OutputStore(self.store.run_dir)
        self._card_sigmas: dict[int, Any] = {}  # id(method) -> the card's sigma (restored after a per-column override)
        self.select_sigma = SigmaSelector(
            matrix,
            self.store.run_dir,
            self.device,
            self.provenances,
            self.dataset,
            self.corrupt.corruption,
            self.attack.build,
            self.metrics,
        )

    def dataset(self, entry: Cell | DatasetEntry):
        """The dataset of a cell or entry, built once per run."""
        from bench.data import DATASETS

        entry = entry.dataset if isinstance(entry, Cell) else entry
        cache_key = f"{entry.name}@{entry.crop}@{sorted(entry.kwargs.items())}"
        if cache_key not in self._datasets:
            factory = DATASETS.get(entry.name)
            self._datasets[cache_key] = factory(**entry.factory_kwargs(factory, self.matrix.scale))
        return self._datasets[cache_key]

    def dataset_error(self, cell: Cell) -> BaseException | None:
        """Why the cell's dataset cannot be built (``None`` when it can); logged once per dataset entry."""
        entry = cell.dataset
        cache_key = f"{entry.name}@{entry.crop}@{sorted(entry.kwargs.items())}"
        if cache_key not in self._dataset_errors:
            try:
                self.dataset(cell)
                self._dataset_errors[cache_key] = None
            except DATASET_ERRORS as exc:
                logger.error("dataset %s cannot be read; its cells fail: %s", entry.name, exc)
                self._dataset_errors[cache_key] = exc
        return self._dataset_errors[cache_key]

    # ----------------------------------------------------------------------------------------------------- run
    def run_info(self) -> dict[str, Any]:
        return {
            "run": self.run_name,
            "matrix": self.matrix.as_dict(),
            "cells": [c.key for c in self.cells],
            "metric_specs": list(self.metric_specs.values()),
            "methods": self.provenances,
            "environment": self.env,
            "device": str(self.device),
            "world_size": self.world_size,
            "lr_synthesis": LR_SYNTHESIS,
            "started": now(),
        }

    def run(self) -> RunSummary:
        """Compute this rank's pending cells and metrics; return counts (failure rows do not raise).

        Holds the run folder's lock (:func:`bench.runner.lock.run_lock`: a second run on the folder raises
        :class:`~bench.runner.lock.RunLocked`) and checks that the folder can be written before computing anything;
        a cell that cannot be stored (no space left) raises :class:`~bench.errors.OutputError` and stops the run,
        the cells stored before it intact.
        """
        with run_lock(self.store.run_dir, self.rank):
            self.store.check_writable()
            if self.world_size == 1:  # no other rank may be writing one right now
                self.store.remove_temporaries()
            return self._run()

    def _previous_run_info(self) -> dict[str, Any]:
        try:
            return self.store.read_run_info() or {}
        except OutputError as exc:  # rewritten below; the cells are what matters
            logger.warning("%s; writing it again", exc.message)
            return {}

    def _run(self) -> RunSummary:
        mine = shard(self.cells, self.rank, self.world_size)
        summary = RunSummary(self.store.run_dir, self.run_name, len(mine), rank=self.rank, world_size=self.world_size)
        if self.rank == 0:
            previous = self._previous_run_info()
            info = self.run_info()
            if previous.get("started"):
                info["first_started"] = previous.get("first_started", previous["started"])
            self.store.write_run_info(info)
        work = []
        for cell in mine:
            stored = self.store.load_payload(cell.key)
            missing = missing_metrics(stored, self.metric_specs)
            if missing == [] and not self.gallery.intact(stored.gallery):
                missing = None  # a crop of the stored cell was lost or truncated: compute the cell again
            if missing == []:
                if set(stored.metric_specs) - set(self.metric_specs):  # metrics dropped from the matrix
                    self.store.write(cell.key, merge(stored, self.metric_specs, set(), None).as_dict())
                continue
            work.append((cell, stored, missing))
        summary.skipped = len(mine) - len(work)
        logger.info(
            "run %s: %d cells%s, %d already stored (skipped), %d to compute on %s",
            self.run_name,
            len(mine),
            f" (rank {self.rank} of {self.world_size})" if self.world_size > 1 else "",
            summary.skipped,
            len(work),
            self.device,
        )
        current: tuple[str | None, Any, BaseException | None] = (None, None, None)
        bar = tqdm(work, desc="cells", unit="cell", disable=not self.progress, file=sys.stderr)
        for cell, stored, missing in bar:
            bar.set_postfix_str(cell.label(), refresh=False)
            dataset_error = self.dataset_error(cell)
            rescorable = missing is not None and not set(missing) & set(self.sr_space.specs)  # samples: not stored
            if dataset_error is not None:
                fix = getattr(dataset_error, "fix", None)
                payload = self._failed_cell(cell, dataset_error, prefix=f"dataset {cell.dataset.name}: ", fix=fix)
            elif rescorable and stored.outputs and self.outputs.path(cell.key).is_file():
                payload = self.rescore(cell, stored, missing)
            else:
                if current[0] != cell.method:
                    current = (None, None, None)  # free the previous method before building the next one
                    current = (cell.method, *self._build_method(cell.method))
                _, method, build_error = current
                if build_error is not None:
                    payload = self._failed_cell(cell, build_error)
                else:
                    metrics = None if missing is None else {m: self.metrics[m] for m in missing if m in self.metrics}
                    columns = None if missing is None else [m for m in missing if m in self.sr_space.specs]
                    payload = self._compute_with_sigma(cell, method, metrics, columns)
                    if missing is not None:  # the stored metrics' rows stay, whatever the new ones did
                        payload = merge(stored, self.metric_specs, set(missing), payload)
            try:
                self.store.write(cell.key, payload.as_dict())
            except OutputError:
                logger.error("%s: computed but cannot be stored; stopping the run", cell.label())
                raise
            summary.computed += 1
            if not payload.ok:
                summary.failed.append(cell.label())
                logger.warning("cell %s failed: %s", cell.label(), payload.error or "see its failure rows")
        bar.close()
        if self.rank == 0:
            info = self._previous_run_info() or self.run_info()
            info["finished"] = now()
            self.store.write_run_info(info)
        return summary

    def _build_method(self, name: str) -> tuple[Any, BaseException | None]:
        from bench.methods import cards

        try:
            return cards.build_method(name, device=self.device), None
        except BUILD_ERRORS as exc:
            logger.error("method %s cannot be built: %s", name, exc)
            return None, exc

    def _fix(self, name: str, exc: BaseException) -> str | None:
        """The command that repairs a method that cannot be built: the error's ``fix``, else (an asset name the
        manifest does not know) the fetch command of the card's checkpoint name."""
        if isinstance(exc, BenchError) and exc.fix is not None:
            return exc.fix
        checkpoint = self.provenances[name].get("checkpoint")
        if isinstance(exc, (KeyError, MissingAsset)) and checkpoint and "/" not in str(checkpoint):
            return f"python -m bench assets fetch {checkpoint}"
        if isinstance(exc, BenchError) and checkpoint:  # an unreadable checkpoint file (not safetensors, a pickle)
            return (
                f"replace the checkpoint {checkpoint} of method card {name!r} with a valid .safetensors file, or "
                "point the card's 'checkpoint:' at one"
            )
        return None

    def _compute_with_sigma(
        self, cell: Cell, method: Any, metrics: Mapping[str, Any] | None = None, columns: list[str] | None = None
    ) -> CellPayload:
        """Choose sigma first for a ``sigma: auto`` method (a failing selection fails the cell), then compute it."""
        selection = None
        auto = method.capabilities.smoothed and method.sigma_auto
        if method.capabilities.smoothed:  # the matrix's per-column sigma (smoothing.sigmas) overrides the card's
            auto = self._apply_sigma_override(cell, method, auto)
        if auto:
            try:
                selection = self.select_sigma(cell, method)
            except OutputError:  # its record cannot be stored: the run stops (not a failure of this cell)
                raise
            except BAD_DATA as exc:
                logger.error("%s: sigma selection failed: %s", cell.label(), exc)
                fix = getattr(exc, "fix", None)  # a validation set not fetched: its fetch command
                return self._failed_cell(cell, exc, prefix="sigma selection: ", fix=fix)
        return self.compute_cell(cell, method, selection, metrics, columns)

    def _apply_sigma_override(self, cell: Cell, method: Any, auto: bool) -> bool:
        """Set ``method.sigma`` from ``smoothing.sigmas`` for this cell (or back to the card's sigma when the mapping
        names none of its columns); return whether sigma must be chosen (``auto``). The value is in the cell key."""
        card_sigma = self._card_sigmas.setdefault(id(method), method.sigma)
        sm = self.matrix.smoothing
        found, value = (
            (False, None)
            if sm is None
            else sm.sigma_for(
                cell.dataset.name, cell.condition.name, (cell.threat.name if cell.threat.attacked else None)
            )
        )
        if not found:
            if not auto:
                method.sigma = card_sigma
            return auto
        if value == "auto":
            return True
        method.sigma = value
        logger.info("%s: sigma %s (matrix smoothing.sigmas)", cell.label(), value)
        return False

    def _sigma_source(self, cell: Cell, selection: Any) -> str:
        """Where a smoothed cell's sigma came from: ``selection``, ``matrix`` (smoothing.sigmas) or ``card``."""
        if selection is not None:
            return "selection"
        sm = self.matrix.smoothing
        threat = cell.threat.name if cell.threat.attacked else None
        found = sm is not None and sm.sigma_for(cell.dataset.name, cell.condition.name, threat)[0]
        return "matrix" if found else "card"

    # ------------------------------------------------------------------------------------------------ payloads
    def _payload(self, cell: Cell, status: str, records: list, started: str, seconds: float, n_images: int):
        return CellPayload(
            key=cell.key,
            status=status,
            cell=cell.description,
            labels=cell_labels(cell),
            records=records,
            metric_specs={},
            provenance={
                "method": self.provenances[cell.method],
                "environment": self.env,
                "device": str(self.device),
                "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                "rank": self.rank,
                "world_size": self.world_size,
                "lr_synthesis": LR_SYNTHESIS,
                "started": started,
                "finished": now(),
                "seconds": round(seconds, 4),
                "images": n_images,
                "seconds_per_image": round(seconds / n_images, 4) if n_images else None,
            },
        )

    def _failed_cell(self, cell: Cell, exc: BaseException, prefix: str = "", fix: str | None = None) -> CellPayload:
        fix = fix if fix is not None else (None if prefix else self._fix(cell.method, exc))
        message = prefix + error_text(exc)
        rows = Rows(self.run_name, cell)
        error = message + (f" -- fix: {fix}" if fix and fix not in message else "")
        payload = self._payload(cell, STATUS_FAILED, [rows.failed(None, None, error)], now(), 0.0, 0)
        payload.error, payload.fix = message, fix
        return payload

    # ------------------------------------------------------------------------------------------------- one cell
    def compute_cell(
        self,
        cell: Cell,
        method: Any,
        selection: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        columns: list[str] | None = None,
    ) -> CellPayload:
        """Every image of the cell through the stages; the project's errors and bad data become failure rows.

        ``metrics`` (default: the run's) and ``columns`` (SR-space columns, default: the run's) are what to compute.
        """
        metrics = self.metrics if metrics is None else metrics
        started, t0 = now(), time.perf_counter()
        caps = method.capabilities
        sigma = method.sigma if caps.smoothed else None
        rows = Rows(self.run_name, cell, planned_mode(cell, caps.stochastic), sigma)
        state = _CellState(columns=list(self.sr_space.specs) if columns is None else list(columns))
        records: list[dict[str, Any]] = []
        dataset = self.dataset(cell)
        names = list(dataset.names())
        if cell.threat.attacked and self.matrix.attack_images is not None:
            names = names[: self.matrix.attack_images]
        if cell.threat.attacked and not getattr(dataset, "has_ground_truth", True):
            logger.info("%s: skipped (no ground truth: the attack's loss needs the HR)", cell.label())
            records = [rows.skipped(n, m, NO_GROUND_TRUTH, metrics[m].spec.as_dict()) for n in names for m in metrics]
            names = []
        per_call = 1 if (caps.stochastic or cell.threat.attacked) else self.matrix.batch_images
        batch: list[Item] = []
        for name in tqdm(names, desc="images", unit="img", leave=False, disable=not self.progress, file=sys.stderr):
            try:
                batch.append(self.corrupt(cell, prepare(dataset, name, self.matrix.scale, self.device)))
            except BAD_DATA as exc:  # a broken image fails that image only
                logger.warning("%s: image %s failed: %s", cell.label(), name, exc)
                records.append(rows.failed(name, None, error_text(exc)))
                continue
            if len(batch) >= per_call:
                records.extend(self._evaluate(cell, method, batch, rows, state, metrics))
                batch = []
        if batch:
            records.extend(self._evaluate(cell, method, batch, rows, state, metrics))
        seconds = time.perf_counter() - t0
        n_failed = sum(r["status"] == STATUS_FAILED for r in records)  # skipped rows leave the cell ok
        status = STATUS_FAILED if n_failed else STATUS_OK
        payload = self._payload(cell, status, records, started, seconds, len(names))
        payload.metric_specs = {name: m.spec.as_dict() for name, m in metrics.items()}
        payload.metric_specs.update({c: self.sr_space.specs[c] for c in state.columns})
        if state.columns:
            n = self.matrix.sr_space.samples if self.matrix.sr_space is not None else None
            payload.sr_space = {"samples": n, "sampled": caps.stochastic, "images": state.sr_space}
        payload.gallery = state.gallery
        if status != STATUS_OK:
            payload.error = f"{n_failed} failure rows"
        elif self.matrix.store_outputs and state.outputs:
            payload.outputs = self.outputs.write(cell.key, state.outputs)
        if cell.threat.attacked:
            payload.attack = {"threat": cell.threat.identity(), "label": cell.threat.label(), "batches": state.attacks}
        if caps.smoothed:
            payload.smoothing = {
                "settings": method.settings(),
                "sigma": sigma,
                "sigma_auto": bool(method.sigma_auto),
                "sigma_source": self._sigma_source(cell, selection),
                "selection": None if selection is None else dict(selection),
                "certificates": state.certificates,
            }
        return payload

    def _evaluate(self, cell, method, batch: list[Item], rows: Rows, state: _CellState, metrics) -> list[dict]:
        """Attack, infer and score the images of one batch, one image size at a time (``hr`` None without ground
        truth: no-reference metrics only, no certificate)."""
        out: list[dict[str, Any]] = []
        groups: dict[tuple, list[Item]] = {}
        for item in batch:
            groups.setdefault((tuple(item.lr.shape), item.hr is None), []).append(item)
        for items in groups.values():
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
                out.extend(self._certified_rows(certificate, hr, names, keep, rows, state))
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
                out.extend(self._sr_space_rows(cell, method, kept, x_k, sr_k, hr_k, rows, state))
        return out

    def _sr_space_rows(self, cell, method, names, x, sr, hr, rows: Rows, state: _CellState) -> list[dict[str, Any]]:
        """The SR-space columns of each image (:mod:`bench.runner.stages.sample`); a failure fails its columns."""
        out: list[dict[str, Any]] = []
        specs = self.sr_space.specs
        for j, name in enumerate(names):
            one = slice(j, j + 1)
            try:
                result = self.sr_space(cell, method, name, x[one], sr[one], hr[one], state.columns)
            except BAD_DATA + METRIC_DATA_ERRORS as exc:
                logger.warning("%s: SR-space columns failed on %s: %s", cell.label(), name, exc)
                out.extend(rows.failed(name, c, error_text(exc), specs[c]) for c in state.columns)
                continue
            state.sr_space[name] = result.section()
            if self.matrix.store_outputs and result.samples is not None:
                state.outputs[f"samples/{name}"] = result.samples
            out.extend(rows.value(name, c, v, specs[c]) for c, v in result.values.items())
        return out

    def _certified_rows(self, certificate, hr, names, keep, rows: Rows, state: _CellState) -> list[dict[str, Any]]:
        """The ``cert_width@eps`` / ``cert_psnr@eps`` rows of a batch (see :func:`certified_specs`)."""
        # cert_psnr is a PSNR: it crops as the matrix's psnr entry does, else as the PSNR class's default crop
        psnr = next((m for m in self.matrix.metrics if m.name == CERT_PSNR_METRIC), None)
        default = METRICS.get(CERT_PSNR_METRIC).default_crop_border(self.matrix.scale)
        crop = psnr.crop_border if psnr is not None else default
        spec = certificate.spec()
        spec["images"] = list(names)
        state.certificates.append(spec)
        out = []
        for column, column_spec, values in certified_values(certificate, hr, self.matrix.smoothing.certify, crop):
            for i in keep:
                if values[i] == values[i] and abs(values[i]) != float("inf"):
                    out.append(rows.ok(names[i], column, values[i], column_spec))
                else:
                    out.append(rows.failed(names[i], column, f"certified value is {values[i]}", column_spec))
        return out

    def rescore(self, cell: Cell, stored: CellPayload, missing: list[str]) -> CellPayload:
        """Score the metrics ``missing`` of a stored cell on its stored SR outputs (no model runs)."""
        tensors = self.outputs.read(cell.key, self.device)
        dataset = self.dataset(cell)
        args = (self.metrics, self.metric_specs, tensors, dataset, self.matrix.scale, self.device)
        payload = rescore(stored, missing, *args)
        logger.info("%s: scored %s on the stored outputs", cell.label(), ", ".join(missing))
        return payload


def run_matrix(
    matrix: Matrix,
    run_dir: str | Path,
    *,
    run_name: str | None = None,
    device: str | torch.device = "auto",
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> RunSummary:
    """Compute every pending cell of ``matrix`` (this rank's shard) into ``run_dir``; see :class:`Runner`."""
    runner = Runner(
        matrix, run_dir, run_name=run_name, device=device, rank=rank, world_size=world_size, progress=progress
    )
    summary = runner.run()
    logger.info(
        "run %s: %d cells, %d skipped, %d computed, %d failed",
        summary.run_name,
        summary.total,
        summary.skipped,
        summary.computed,
        len(summary.failed),
    )
    return summary


def stored_records(run_dir: str | Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """All records of a run directory's cells (those of ``keys`` only, when given)."""
    out: list[dict[str, Any]] = []
    for payload in Store(run_dir).iter_payloads(None if keys is None else list(keys)):
        out.extend(payload.records)
    return out
