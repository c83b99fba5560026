"""Stage *record*: values -> tidy rows (:data:`~bench.results.schema.RECORD_COLUMNS`) and the cell payload.

A row is one (image, metric) value, a failure (``value`` None, ``error`` the message) or a skipped metric (``value``
None, status ``skipped``, ``error`` the reason, e.g. "skipped: no ground truth"). Rows of an attacked cell
carry the per-image attack columns (mode, surrogate, losses, counts, seconds, L-inf; for a transfer attack the
surrogate's precision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.results.schema import (
    ATTACK_COLUMNS,
    PRECISION_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    SURROGATE_PRECISION_COLUMNS,
    AttackMode,
    CellLabels,
)
from bench.runner.cells import Cell


def cell_labels(cell: Cell) -> CellLabels:
    if cell.threat.attacked:
        t = cell.threat
        return CellLabels(cell.method, cell.dataset.name, cell.condition.name, t.name, t.epsilon, t.variant)
    return CellLabels(cell.method, cell.dataset.name, cell.condition.name)


class Rows:
    """Builds the rows of one cell; ``per_image[name]`` holds an image's attack columns once it is attacked."""

    def __init__(self, run_name: str, cell: Cell, mode: AttackMode | None = None, sigma: float | None = None) -> None:
        c = cell.condition
        self.base: dict[str, Any] = {
            "run": run_name,
            "method": cell.method,
            "dataset": cell.dataset.name,
            "condition": c.name,
            "corruption": c.corruption,
            "severity": c.severity,
            "attack": cell.attack,
            "epsilon": cell.epsilon,
            "seed": cell.seed,
            "cell": cell.key,
            "sigma": sigma,
            **dict.fromkeys(ATTACK_COLUMNS),
            **dict.fromkeys(PRECISION_COLUMNS),  # set by the runner from the method's precision stamp
            **dict.fromkeys(SURROGATE_PRECISION_COLUMNS),  # set per image by the attack stage (transfer only)
        }
        if cell.threat.attacked:
            self.base.update(attack_mode=mode, attack_surrogate=cell.threat.surrogate)
        self.per_image: dict[str, dict[str, Any]] = {}

    def ok(self, image: str, metric: str, value: float, spec: Mapping[str, Any]) -> dict[str, Any]:
        row = {**self.base, **self.per_image.get(image, {})}
        row.update(image=image, metric=metric, value=value, spec=dict(spec))
        return {**row, "status": STATUS_OK, "error": None}

    def failed(self, image: str | None, metric: str | None, error: str, spec: Mapping[str, Any] | None = None):
        spec = None if spec is None else dict(spec)
        row = {**self.base, **self.per_image.get(image or "", {})}
        row.update(image=image, metric=metric, value=None, spec=spec)
        return {**row, "status": STATUS_FAILED, "error": error}

    def skipped(self, image: str, metric: str, reason: str, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A row with no value by design (``reason``: why, e.g. :data:`~bench.results.schema.NO_GROUND_TRUTH`)."""
        return {**self.failed(image, metric, reason, spec), "status": STATUS_SKIPPED}

    def value(self, image: str, metric: str, value: float, spec: Mapping[str, Any]) -> dict[str, Any]:
        """An ok row for a finite value, a failure row naming the value otherwise."""
        if math.isfinite(value):
            return self.ok(image, metric, value, spec)
        return self.failed(image, metric, f"metric value is {value}", spec)


def rescored_row(template: Mapping[str, Any], metric: str, value: float, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A row of a metric added to a stored cell: the image's stored row (its cell and attack columns) with the new
    metric's value."""
    row = {**template, "metric": metric, "spec": dict(spec), "value": value, "status": STATUS_OK, "error": None}
    if not math.isfinite(value):
        row.update(value=None, status=STATUS_FAILED, error=f"metric value is {value}")
    return row
