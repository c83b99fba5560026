"""Metric-incremental caching: what a stored cell lacks, and how new metric values join its records.

A cell stores its records per metric with each metric's spec (``metric_specs``), which is the metric's sub-key:
a stored ``ok`` cell lacks the matrix's metrics that are absent from it or stored with another spec. Those are
computed alone -- from the stored SR outputs (:mod:`.outputs`, no model runs) by :func:`rescore`, else by running
the cell again for those metrics only and merging with :func:`merge`. Metrics dropped from the matrix are dropped
from the cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bench.results.schema import STATUS_FAILED, STATUS_SKIPPED, CellPayload
from bench.runner.provenance import error_text
from bench.runner.stages.prepare import prepare
from bench.runner.stages.record import rescored_row
from bench.runner.stages.score import Skipped, score


def missing_metrics(stored: CellPayload | None, specs: Mapping[str, Mapping[str, Any]]) -> list[str] | None:
    """``None``: compute the whole cell (absent or failed); else the metrics of ``specs`` the stored cell lacks or
    holds with another spec (``[]``: complete)."""
    if stored is None or not stored.ok:
        return None
    return [name for name, spec in specs.items() if stored.metric_specs.get(name) != spec]


def merge(stored: CellPayload, specs: Mapping[str, Any], recomputed: set[str], new: CellPayload | None) -> CellPayload:
    """``stored`` with the metrics ``recomputed`` replaced by ``new``'s records (all of ``new``'s other rows, e.g.
    certified columns, too) or, without ``new``, removed; metrics not in ``specs`` (the matrix's) dropped."""
    current = set(specs)
    if new is None:
        dropped = set(stored.metric_specs) - current
        stored.records = [r for r in stored.records if r["metric"] not in recomputed | dropped]
        stored.metric_specs = {k: v for k, v in stored.metric_specs.items() if k in current - recomputed}
        return stored
    kept = current - recomputed
    new.records = [r for r in stored.records if r["metric"] in kept] + new.records
    new.metric_specs = {**{k: stored.metric_specs[k] for k in kept}, **new.metric_specs}
    new.gallery = new.gallery or stored.gallery
    new.sr_space = new.sr_space or stored.sr_space
    return new


def rescore(
    stored: CellPayload,
    missing: list[str],
    metrics: Mapping[str, torch.nn.Module],
    specs: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    dataset: Any,
    scale: int,
    device: torch.device,
) -> CellPayload:
    """Score the metrics ``missing`` of a stored cell on its stored outputs (``sr/<image>``, ``x/<image>``) and the
    dataset's HR; each new row copies its image's stored row (cell, sigma and attack columns). Without ground truth
    a full-reference metric's rows are ``skipped`` with the reason."""
    templates: dict[str, dict[str, Any]] = {}
    for rec in stored.records:
        templates.setdefault(rec["image"], rec)
    todo = {m: metrics[m] for m in missing}
    new: list[dict[str, Any]] = []
    for name, template in templates.items():
        hr = prepare(dataset, name, scale, device).hr
        for metric_name, values in score(todo, tensors[f"sr/{name}"], hr, tensors[f"x/{name}"]).items():
            spec = todo[metric_name].spec.as_dict()
            if isinstance(values, Skipped):
                row = rescored_row(template, metric_name, float("nan"), spec)
                row.update(status=STATUS_SKIPPED, error=values.reason)
            elif isinstance(values, BaseException):
                row = rescored_row(template, metric_name, float("nan"), spec)
                row["error"] = error_text(values)
            else:
                row = rescored_row(template, metric_name, values[0], spec)
            new.append(row)
    payload = merge(stored, specs, set(missing), None)
    payload.records += new
    payload.metric_specs.update({m: todo[m].spec.as_dict() for m in missing})
    failures = sum(r["status"] == STATUS_FAILED for r in new)
    if failures:
        payload.status, payload.error = STATUS_FAILED, f"{failures} failure rows"
    return payload
