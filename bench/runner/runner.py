"""Execute a matrix: plan its cells, skip the stored ones, compute the others, store each one atomically.

The runner only loops, skips, builds (datasets, methods, the run's stages) and persists; one cell is computed by
:class:`bench.runner.cell.CellEvaluator`. Per image of a cell, the stages of :mod:`bench.runner.stages`, top to
bottom::

    plan      matrix -> cells and keys (once per run)
    prepare   HR (modcropped), LR = sample.lr or imresize(HR, 1/scale) rounded to 8 bits
    corrupt   LR -> condition(LR, generator by (corruption key, image): one draw for every method)
    attack    -> x_adv (generator by (cell key, image, "attack"))                          [attacked cells]
    infer     -> method.super_resolve(x) or the certified smoothed prediction (generator by (cell key, image, "method"))
    score     -> every metric(SR, HR, x); certified columns of a certificate
    sample    -> SR-space columns over n samples per image (matrix ``sr_space:``; only stochastic methods sampled)
    record    -> tidy rows and the cell payload (:mod:`bench.results.schema`)

Every generator is seeded by its own image, so ``batch_images`` changes no random draw: it batches deterministic
methods, attacked cells included (each image's attack draws from its own generator; values differ by floating-point
summation order, :mod:`bench.runner.stages.attack`), while stochastic methods, and attacks through a stochastic
surrogate, run one image per batch. Median smoothing with ``sigma: auto`` gets sigma chosen per (condition, attack
setting) before its cells (:mod:`bench.runner.stages.sigma`).

Metrics are computed per metric: a stored ``ok`` cell whose ``metric_specs`` lack a metric of the matrix (or hold
another spec for it) computes only that metric -- on the stored SR outputs (``store_outputs: true``) once they match
the shape and SHA-256 their cell records per tensor, else by running the method again, the log saying why; a metric
dropped from the matrix is dropped from the cell. Missing SR-space columns (:mod:`bench.runner.stages.sample`) are
scored likewise on the stored samples (:func:`bench.runner.stages.rescore.stored_samples`), else drawn again from
their seeds. A cell with any failure row is stored ``failed`` and computed again by the next run.

Errors: the project's errors and bad data (:data:`bench.errors.BAD_DATA`) become failure rows and the run goes on; a
method that cannot be built fails its cells with the error and its ``fix``; anything else (a bug, CUDA OOM) surfaces.

Datasets: an image that fails pairing (:class:`bench.data.pairing.PairingError`) is a failure row naming the files
and sizes; a dataset that cannot be built (not fetched, a scale the manifest lacks) fails its cells with the fetch
command as ``fix``. On a set without ground truth the full-reference rows, attacked cells and certificates are
``skipped`` (:data:`bench.results.schema.NO_GROUND_TRUTH`), leaving the cell ``ok``.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.devices import resolve_device
from bench.errors import BAD_DATA, BenchError, MissingAsset, OutputError
from bench.results.schema import STATUS_FAILED, CellPayload
from bench.runner.cell import CellEvaluator
from bench.runner.cells import REFUSED, Cell, shard
from bench.runner.lock import run_lock
from bench.runner.matrix import DatasetEntry, Matrix
from bench.runner.provenance import LR_SYNTHESIS, environment, error_text, now
from bench.runner.stages import precision
from bench.runner.stages.attack import Attacker
from bench.runner.stages.corrupt import Corrupter
from bench.runner.stages.gallery import Gallery
from bench.runner.stages.outputs import OutputStore
from bench.runner.stages.plan import plan
from bench.runner.stages.record import Rows, cell_labels
from bench.runner.stages.rescore import merge, missing_metrics, relabel, rescore, stored_inputs
from bench.runner.stages.sample import SRSpace
from bench.runner.stages.score import (
    build_metrics,
    certified_specs,
)
from bench.runner.stages.sigma import SigmaSelector
from bench.runner.store import Store, stored_records

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
        self.attack = Attacker(self.device, matrix.precision, matrix.compile)
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
        self.evaluator = CellEvaluator(
            self.run_name,
            matrix,
            self.device,
            self.metrics,
            self.sr_space,
            self.corrupt,
            self.attack,
            self.gallery,
            self.outputs,
            self.dataset,
            self._payload,
            progress,
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
        with run_lock(self.store.run_dir, self.rank, self.world_size):
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
            relabelled = relabel(stored, self.metric_specs)  # a spec's label changed (kind), not its numbers
            missing = missing_metrics(stored, self.metric_specs)
            if missing == [] and not self.gallery.intact(stored.gallery):
                missing = None  # a crop of the stored cell was lost or truncated: compute the cell again
            if missing == []:
                if relabelled or set(stored.metric_specs) - set(self.metric_specs):  # relabelled or metrics dropped
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
            rescored = None
            if dataset_error is not None:
                fix = getattr(dataset_error, "fix", None)
                payload = self._failed_cell(cell, dataset_error, prefix=f"dataset {cell.dataset.name}: ", fix=fix)
            elif missing is not None and (rescored := self.rescore(cell, stored, missing)) is not None:
                payload = rescored
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
            method = cards.build_method(name, device=self.device)
        except BUILD_ERRORS as exc:
            logger.error("method %s cannot be built: %s", name, exc)
            return None, exc
        try:  # the matrix's precision (auto: the fast path on CUDA only; on the CPU the method stays as built)
            method = precision.guard(method, name, self.matrix.precision, self.device, self.matrix.compile)
            precision.stamp(method)  # calibrate now: a method the guard cannot run fails its cells here
            return method, None
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
        """Choose sigma first for a ``sigma: auto`` method (a failing selection fails the cell), then compute it. A
        ``refused`` cell chooses none: its attack is never attempted, its rows say why (as ``bench run --dry-run``)."""
        selection = None
        auto = method.capabilities.smoothed and method.sigma_auto
        if method.capabilities.smoothed:  # the matrix's per-column sigma (smoothing.sigmas) overrides the card's
            auto = self._apply_sigma_override(cell, method, auto)
        if auto and cell.threat.variant == REFUSED:
            method.sigma = None  # none chosen (not a previous cell's choice on its failure rows)
        elif auto:
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
        """Every image of the cell through the stages (:meth:`bench.runner.cell.CellEvaluator.compute`); the
        project's errors and bad data become failure rows.

        ``metrics`` (default: the run's) and ``columns`` (SR-space columns, default: the run's) are what to compute.
        """
        source = self._sigma_source(cell, selection) if method.capabilities.smoothed else None
        stamp = precision.stamp(method)  # the precision actually used, on every row
        version = precision.stamp_version(method)
        payload = self.evaluator.compute(cell, method, selection, metrics, columns, source, stamp)
        if precision.stamp_version(method) != version:  # a recompile failed mid-cell: some images ran another path
            stamp = precision.stamp(method)
            logger.warning(
                "%s: the method's path changed while computing (%s); computing the cell again",
                cell.label(),
                stamp["precision_fallback"],
            )
            payload = self.evaluator.compute(cell, method, selection, metrics, columns, source, stamp)
        return payload

    def rescore(self, cell: Cell, stored: CellPayload, missing: list[str]) -> CellPayload | None:
        """Score the metrics ``missing`` of a stored cell (SR-space columns included) on its stored outputs and
        samples, no model runs; ``None`` when those cannot serve (:func:`bench.runner.stages.rescore.stored_inputs`
        says why, and the log) and the method must run again."""
        n = self.matrix.sr_space.samples if self.matrix.sr_space is not None else 1
        stochastic = bool(self.provenances[cell.method].get("stochastic", False))
        columns = [m for m in missing if m in self.sr_space.specs]
        found = stored_inputs(self.outputs, stored, columns, n, stochastic, self.device)
        if isinstance(found, str):
            damaged = stored.outputs and stored.outputs_tensors is not None  # else never stored, or unverified
            log = logger.warning if damaged else logger.info
            log("%s: %s; running the method again for %s", cell.label(), found, ", ".join(missing))
            return None
        args = (self.metrics, self.metric_specs, found.tensors, self.dataset(cell), self.matrix.scale, self.device)
        payload = rescore(stored, missing, *args, sr_space=self.sr_space, samples=found.samples, section=found.section)
        logger.info("%s: scored %s on the stored outputs (no model run)", cell.label(), ", ".join(missing))
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
