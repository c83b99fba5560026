"""Sigma selection of median smoothing (CertSR): for a method built from a card with ``sigma: auto``, sigma is
chosen per (condition, attack setting) by :func:`bench.certify.select_sigma` on the matrix's validation split
(disjoint from the evaluation images), once, before its cells; the choice and the grid's scores are cached in
``<run>/sigma/<key>.json`` and stored in each cell's ``smoothing`` provenance and ``sigma`` column.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from bench.errors import ConfigError
from bench.runner.cells import Cell
from bench.runner.matrix import Matrix
from bench.runner.provenance import method_identity
from bench.runner.store import atomic_write_json
from bench.seeding import key_hash

logger = logging.getLogger(__name__)


class SigmaSelector:
    """Chooses (or reads back) sigma for a cell and sets it on the method.

    Args:
        matrix, run_dir, device: of the run.
        provenances: card provenance per method (the selection key holds the method's identity).
        dataset: ``DatasetEntry -> dataset`` (the runner's cache).
        corruption: ``Condition -> corruption`` (the corrupt stage's cache).
        attack: ``(cell, method) -> attack`` (the attack stage's builder).
        metrics: the run's metrics by name (the selection metric is built when the matrix has not got it).
    """

    def __init__(
        self,
        matrix: Matrix,
        run_dir: Path,
        device: torch.device,
        provenances: Mapping[str, Mapping[str, Any]],
        dataset: Callable[[Any], Any],
        corruption: Callable[[Any], Any],
        attack: Callable[[Cell, Any], Any],
        metrics: Mapping[str, torch.nn.Module],
    ) -> None:
        self.matrix, self.run_dir, self.device = matrix, Path(run_dir), device
        self.provenances, self.dataset, self.corruption, self.attack = provenances, dataset, corruption, attack
        self.metrics = metrics
        self._records: dict[str, dict[str, Any]] = {}

    def key(self, cell: Cell) -> str:
        sm = self.matrix.smoothing
        desc = {
            "method": method_identity(self.provenances[cell.method]),
            "condition": cell.condition.identity(),
            "threat": cell.threat.identity() if cell.threat.attacked else None,
            "selection": sm.selection_identity() if sm is not None else None,
            "scale": self.matrix.scale,
        }
        return key_hash(desc, length=20)

    def __call__(self, cell: Cell, method: Any) -> dict[str, Any]:
        """:func:`bench.certify.selection_record` plus ``key`` and ``seconds``; sets ``method.sigma``."""
        if self.matrix.smoothing is None:
            raise ConfigError(
                f"method {cell.method!r} has sigma: auto, but the matrix has no 'smoothing:' section (sigma_grid, "
                "validation) to choose it",
                fix="add a 'smoothing:' section with sigma_grid and validation to the matrix",
            )
        key = self.key(cell)
        path = self.run_dir / "sigma" / f"{key}.json"
        record = self._records.get(key)
        if record is None and path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
        if record is None:
            record = self._select(cell, method, key)
            atomic_write_json(path, record)
        self._records[key] = record
        method.sigma = record["sigma"]
        return record

    def _select(self, cell: Cell, method: Any, key: str) -> dict[str, Any]:
        from bench.certify import select_sigma, selection_record

        sm = self.matrix.smoothing
        t0 = time.perf_counter()
        val = sm.validation
        dataset = self.dataset(val.entry())
        names = dataset.names()[: val.images] if isinstance(val.images, int) else list(val.images)
        images = {name: dataset.load(name) for name in names}
        corruption = self.corruption(cell.condition)
        if cell.threat.attacked:
            attack = self.attack(cell, method)

            def condition_fn(lr, generator, method=None, hr=None):
                return attack(method, corruption(lr, generator), hr, generator).x_adv

        else:
            condition_fn = corruption
        metric = self.metrics.get(sm.metric)
        if metric is None:
            from bench.metrics import build_metric

            metric = build_metric(sm.metric).to(self.device).eval()

        def factory(sigma):
            method.sigma = sigma
            return method

        logger.info("%s: choosing sigma among %s on %s", cell.label(), list(sm.sigma_grid), names)
        sigma, scores = select_sigma(
            factory,
            images,
            condition_fn,
            sm.sigma_grid,
            metric,
            seed=sm.seed,
            scale=self.matrix.scale,
            device=self.device,
            evaluation_names=self.dataset(cell.dataset).names(),
        )
        condition = cell.threat.attack if cell.threat.attacked else cell.condition.name
        record = selection_record(sigma, scores, metric=metric, condition=condition, images=names, seed=sm.seed)
        record.update(key=key, dataset=val.dataset, crop=val.crop, seconds=round(time.perf_counter() - t0, 3))
        logger.info("%s: sigma %s chosen (%s)", cell.label(), sigma, record["scores"])
        return record
