"""Metric-incremental caching: what a stored cell lacks, and how new metric values join its records.

A cell stores its records per metric with each metric's spec (``metric_specs``), which is the metric's sub-key:
a stored ``ok`` cell lacks the matrix's metrics that are absent from it or stored with another spec -- except a spec
that differs only in a label that changes no number (``kind``), which :func:`relabel` updates in place. Those are
computed alone -- from the stored outputs (:mod:`.outputs`, no model runs) by :func:`rescore`, else by running
the cell again for those metrics only and merging with :func:`merge`. Metrics dropped from the matrix are dropped
from the cell.

Nothing is scored on unverified data: the stored outputs serve only when the cell records the shape and SHA-256 of
each of their tensors (``outputs_tensors``) and the file matches them (:meth:`~.outputs.OutputStore.read`: every
recorded tensor there, none other, each float32 with its shape and checksum; a truncated file does not load). A
cell stored before those
checksums is *unverified*: its outputs are not read and the added metric is computed by running the method again
(which stores the outputs again, with checksums). Outputs that are missing or fail a check likewise: the runner
logs the one-line reason and runs the method.

SR-space columns (:mod:`.sample`) are such metrics too: a column added to a stored cell is scored on the samples the
cell stored (``samples/<image>``; a deterministic method's one sample is ``sr/<image>``) once
:func:`stored_samples` has verified them -- one tensor per image, ``n`` samples of the SR output's shape, sample 0
equal to the stored SR output, as many recorded seeds as samples, and the SHA-256 the cell's ``sr_space`` section
records. Samples that are missing or fail a check are drawn again by running the method (the runner logs why). The
values equal a full recompute's exactly: the score sees the same float32 tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.results.schema import NO_GROUND_TRUTH, STATUS_FAILED, STATUS_SKIPPED, CellPayload
from bench.runner.provenance import error_text
from bench.runner.stages.outputs import OutputStore, tensor_sha256
from bench.runner.stages.prepare import prepare
from bench.runner.stages.record import rescored_row
from bench.runner.stages.score import METRIC_DATA_ERRORS, Skipped, score


def relabel(stored: CellPayload | None, specs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Bring a stored ``ok`` cell's specs up to ``specs`` (its ``metric_specs`` and its records' ``spec``) for the
    metrics whose stored spec differs only in :data:`bench.metrics.base.LABEL_FIELDS` (``kind``, added after cells
    were stored): the values stay, nothing is computed. Returns those metrics (``[]``: nothing changed)."""
    from bench.metrics.base import LABEL_FIELDS

    if stored is None or not stored.ok:
        return []

    def values_part(spec: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in spec.items() if k not in LABEL_FIELDS}

    changed = [
        name
        for name, spec in specs.items()
        if (old := stored.metric_specs.get(name)) is not None and old != spec and values_part(old) == values_part(spec)
    ]
    for name in changed:
        stored.metric_specs[name] = dict(specs[name])
    for rec in stored.records:
        if rec.get("metric") in changed and rec.get("spec") is not None:
            rec["spec"] = dict(specs[rec["metric"]])
    return changed


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


def stored_images(stored: CellPayload) -> list[str]:
    """The images of a stored cell (those its records name), in record order."""
    return list(dict.fromkeys(r["image"] for r in stored.records if r.get("image") is not None))


def check_outputs(tensors: Mapping[str, torch.Tensor], images: Sequence[str]) -> str | None:
    """Why the stored outputs cannot be rescored (an image's ``sr/`` or ``x/`` absent or not one RGB image), or
    ``None``."""
    for image in images:
        for key in (f"sr/{image}", f"x/{image}"):
            t = tensors.get(key)
            if t is None:
                return f"{key} is not in the stored outputs"
            if t.ndim != 4 or tuple(t.shape[:2]) != (1, 3):
                return f"{key} holds {tuple(t.shape)}, expected (1, 3, H, W)"
    return None


def stored_samples(
    tensors: Mapping[str, torch.Tensor],
    section: Mapping[str, Any] | None,
    images: Sequence[str],
    samples: int,
    stochastic: bool,
) -> tuple[dict[str, torch.Tensor], str | None]:
    """Each image's SR samples ((n, 3, H, W); n = ``samples`` for a stochastic method, 1 otherwise) read from the
    stored outputs and verified against the cell's ``sr_space`` ``section``; ``({}, reason)`` at the first check
    that fails (the outputs' ``sr/`` and ``x/`` are checked by :func:`check_outputs` first)."""
    per_image = dict((section or {}).get("images") or {})
    if stochastic:
        if not section or not section.get("sampled"):
            return {}, "the cell records no samples"
        if section.get("samples") != samples:
            return {}, f"the cell records {section.get('samples')} samples per image, the matrix asks for {samples}"
    out: dict[str, torch.Tensor] = {}
    for image in images:
        sr = tensors[f"sr/{image}"]
        info = per_image.get(image) or {}
        if stochastic:
            key = f"samples/{image}"
            found = tensors.get(key)
            if found is None:
                return {}, f"{key} is not in the stored outputs"
            if tuple(found.shape) != (samples, *sr.shape[1:]):
                return {}, f"{key} holds {tuple(found.shape)}, expected {(samples, *sr.shape[1:])}"
            if len(info.get("seeds") or ()) != samples:
                return {}, f"the cell records {len(info.get('seeds') or ())} sample seeds for {image}, not {samples}"
            if not torch.equal(found[:1], sr):
                return {}, f"sample 0 of {image} is not its stored SR output"
        else:
            key, found = f"sr/{image}", sr
        expected = info.get("sha256")
        if expected is not None and tensor_sha256(found) != expected:
            return {}, f"{key} does not match the checksum its cell records"
        out[image] = found
    return out, None


@dataclass
class StoredInputs:
    """What a rescore reads: the cell's stored outputs, its verified samples per image (empty when no SR-space
    column is wanted) and the ``sr_space`` section's ``samples``/``sampled`` (``None`` likewise)."""

    tensors: dict[str, torch.Tensor]
    samples: dict[str, torch.Tensor]
    section: dict[str, Any] | None


def stored_inputs(
    outputs: OutputStore,
    stored: CellPayload,
    columns: Sequence[str],
    samples: int,
    stochastic: bool,
    device: torch.device,
) -> StoredInputs | str:
    """The stored outputs of ``stored`` (and, for the SR-space ``columns``, its verified samples: ``samples`` per
    image when ``stochastic``), or why they cannot serve: not stored, no checksums recorded (a cell stored before
    them), the file missing or unreadable, a tensor missing, unrecorded or unlike its record
    (:func:`~.outputs.verify`), a check of :func:`check_outputs` or :func:`stored_samples` failing."""
    if not stored.outputs:
        return "its outputs were not stored (store_outputs: false)"
    if stored.outputs_tensors is None:
        return f"{outputs.relpath(stored.key)} is unverified (its cell, stored before checksums, records none)"
    try:
        tensors = outputs.read(stored.key, device, stored.outputs_tensors)
    except ValueError as exc:
        return str(exc)
    if tensors is None:
        return f"{outputs.relpath(stored.key)} is missing"
    images = stored_images(stored)
    why = check_outputs(tensors, images)
    if why is not None:
        return why
    if not columns:
        return StoredInputs(tensors, {}, None)
    found, why = stored_samples(tensors, stored.sr_space, images, samples, stochastic)
    if why is not None:
        return why
    return StoredInputs(tensors, found, {"samples": samples, "sampled": stochastic})


def rescore(
    stored: CellPayload,
    missing: list[str],
    metrics: Mapping[str, torch.nn.Module],
    specs: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    dataset: Any,
    scale: int,
    device: torch.device,
    sr_space: Any = None,
    samples: Mapping[str, torch.Tensor] | None = None,
    section: Mapping[str, Any] | None = None,
) -> CellPayload:
    """Score the metrics ``missing`` of a stored cell on its stored outputs (``sr/<image>``, ``x/<image>``) and the
    dataset's HR; each new row copies its image's stored row (cell, sigma and attack columns). Without ground truth
    a full-reference metric's rows are ``skipped`` with the reason.

    The SR-space columns among ``missing`` (those of ``sr_space``, the run's :class:`~.sample.SRSpace`) are scored
    on ``samples`` (image -> (n, 3, H, W), :func:`stored_samples`); ``section`` (``samples``, ``sampled``) becomes the
    payload's ``sr_space`` section, each image's entry kept from the stored cell or, for an image it lacks (a
    deterministic cell that had no SR-space column), made as a full compute makes it.
    """
    templates: dict[str, dict[str, Any]] = {}
    for rec in stored.records:
        templates.setdefault(rec["image"], rec)
    todo = {m: metrics[m] for m in missing if m in metrics}
    column_specs = {} if sr_space is None else {c: sr_space.specs[c] for c in missing if c in sr_space.specs}
    new: list[dict[str, Any]] = []
    images = dict((stored.sr_space or {}).get("images") or {})
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
        if column_specs:
            new += _column_rows(template, name, column_specs, sr_space, samples or {}, hr, images)
    payload = merge(stored, specs, set(missing), None)
    payload.records += new
    payload.metric_specs.update({m: todo[m].spec.as_dict() for m in todo})
    payload.metric_specs.update(column_specs)
    if column_specs and section is not None:
        payload.sr_space = {**dict(section), "images": images}
    failures = sum(r["status"] == STATUS_FAILED for r in new)
    if failures:
        payload.status, payload.error = STATUS_FAILED, f"{failures} failure rows"
    return payload


def _column_rows(
    template: Mapping[str, Any],
    image: str,
    column_specs: Mapping[str, Mapping[str, Any]],
    sr_space: Any,
    samples: Mapping[str, torch.Tensor],
    hr: torch.Tensor | None,
    images: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The rows of one image's SR-space columns scored on its stored samples (``images``: the section's entries,
    the image's added when it has none)."""

    def unscored(reason: str, status: str) -> list[dict[str, Any]]:
        out = []
        for column, spec in column_specs.items():
            row = rescored_row(template, column, float("nan"), spec)
            row.update(status=status, error=reason)
            out.append(row)
        return out

    if hr is None:
        return unscored(NO_GROUND_TRUTH, STATUS_SKIPPED)
    found = samples[image]
    try:
        values = sr_space.score(list(found.split(1)), hr, list(column_specs))
    except METRIC_DATA_ERRORS as exc:
        return unscored(error_text(exc), STATUS_FAILED)
    n = found.shape[0]
    images.setdefault(image, {"seeds": [], "forward_passes": n, "sha256": tensor_sha256(found)})
    return [rescored_row(template, c, v, column_specs[c]) for c, v in values.items()]
