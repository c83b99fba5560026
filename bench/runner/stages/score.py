"""Stage *score*: one value per image for each metric of the cell, and the certified columns of a certificate.

A metric that fails on its input with one of :data:`METRIC_DATA_ERRORS` (an image too small for it, say) fails its
rows for that batch and the other metrics go on; any other exception (a bug, CUDA out of memory) surfaces.

Without ground truth (``hr`` None: NTIRE 2020 track 2 / DPED) only the metrics that need no HR run (the spec's
``full_reference`` false: the no-reference quality metrics ``niqe``, ``brisque``, ``piqe``, ... and the consistency
measure ``lr_psnr_input`` -- SR against the LR input, spec ``kind: consistency``, which the no-reference board does
not rank); each full-reference one (``psnr``, ``ssim``, ``lpips_*``, ``lr_psnr`` -- the NTIRE 2021 variant
downscales the HR --, ``diversity``) is :class:`Skipped` with :data:`~bench.results.schema.NO_GROUND_TRUTH`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.errors import BadOutput, BenchError
from bench.results.schema import NO_GROUND_TRUTH

#: What a metric raises for inputs it cannot score (the metrics validate their inputs with ValueError).
METRIC_DATA_ERRORS: tuple[type[BaseException], ...] = (BenchError, ValueError)
CERT_WIDTH = "cert_width"
CERT_PSNR = "cert_psnr"
#: The registered metric ``cert_psnr`` is a bound of (its crop follows that metric's matrix entry or class default).
CERT_PSNR_METRIC = "psnr"


@dataclass(frozen=True)
class Skipped:
    """A metric not computed by design (a full-reference metric without ground truth); ``reason`` goes in the row."""

    reason: str


def needs_ground_truth(metric: torch.nn.Module) -> bool:
    """Whether the metric needs the HR: its spec says ``full_reference``."""
    return bool(metric.spec.full_reference)


def build_metrics(entries: Sequence[Any], device: torch.device, scale: int | None = None) -> dict[str, torch.nn.Module]:
    """The matrix's metrics (``MetricEntry``: name, crop_border), built once per run, in eval mode on ``device``;
    a metric whose constructor takes ``scale`` (LR-PSNR: it downscales the SR by it) gets the matrix's ``scale``."""
    import inspect

    from bench.metrics import METRICS, build_metric

    out = {}
    for e in entries:
        kwargs: dict[str, Any] = {"crop_border": e.crop_border}
        if scale is not None and e.name in METRICS:
            try:
                if "scale" in inspect.signature(METRICS.get(e.name)).parameters:
                    kwargs["scale"] = scale
            except (TypeError, ValueError):  # no signature to read: the metric's defaults
                pass
        out[e.name] = build_metric(e.name, **kwargs).to(device).eval()
    return out


def score(
    metrics: Mapping[str, torch.nn.Module], sr: torch.Tensor, hr: torch.Tensor | None, x: torch.Tensor
) -> dict[str, list[float] | BaseException | Skipped]:
    """``{metric: one float per image}``, the data error a metric raised on this batch, or :class:`Skipped` for a
    full-reference metric when ``hr`` is None."""
    out: dict[str, list[float] | BaseException | Skipped] = {}
    for name, metric in metrics.items():
        if hr is None and needs_ground_truth(metric):
            out[name] = Skipped(NO_GROUND_TRUTH)
            continue
        try:
            with torch.no_grad():
                values = metric(sr, hr, x).detach().double().cpu().reshape(-1).tolist()
            if len(values) != sr.shape[0]:
                raise BadOutput(f"metric returned {len(values)} values for {sr.shape[0]} images")
        except METRIC_DATA_ERRORS as exc:
            out[name] = exc
            continue
        out[name] = values
    return out


def certified_specs(eps: float, alpha: float, n_samples: int | None, crop_border: int) -> dict[str, dict[str, Any]]:
    """The metric specs of the certified columns at L2 budget ``eps`` (LR, [0, 1] units).

    * ``cert_width@eps``: mean over pixels and channels of the certified interval ``upper - lower`` of the smoothed
      output under any LR perturbation of L2 norm <= eps ([0, 1] units, lower is better);
    * ``cert_psnr@eps``: PSNR (RGB, 8-bit rounded, ``crop_border``) of the worst output inside that interval against
      the HR, a lower bound of the PSNR any such perturbation can leave (higher is better).

    Each bound holds with confidence ``1 - alpha`` per output value (:mod:`bench.certify.bounds`).
    """
    from bench.metrics.base import MetricSpec

    extra = {
        "certified": True,
        "eps_l2_lr": eps,
        "alpha": alpha,
        "n_samples": n_samples if n_samples is not None else "auto",
    }
    ref = "median smoothing bounds, seed 001 Lemma 4.1 / Chiang et al. 2020 (bench.certify.bounds)"
    width = MetricSpec(
        f"{CERT_WIDTH}@{eps:g}", False, False, input_range="[0,1]", reference=ref, extra={**extra, "unit": "[0,1]"}
    )
    psnr = MetricSpec(
        f"{CERT_PSNR}@{eps:g}",
        True,
        True,
        crop_border=crop_border,
        input_range="[0,255] uint8-rounded",
        reference=ref,
        extra={**extra, "unit": "dB lower bound"},
    )
    return {width.name: width.as_dict(), psnr.name: psnr.as_dict()}


def certified_values(certificate: Any, hr: torch.Tensor, settings: Any, crop: int):
    """``[(column, spec, one value per image)]`` of a certificate: ``cert_width@eps`` and ``cert_psnr@eps``."""
    figures = certificate.figures(hr, crop_border=crop)
    out = []
    for eps in certificate.epsilons:
        specs = certified_specs(eps, settings.alpha, settings.n_samples, crop)
        for prefix, figure in ((CERT_WIDTH, "certified_width"), (CERT_PSNR, "certified_psnr")):
            name = f"{prefix}@{eps:g}"
            out.append((name, specs[name], figures[figure][eps].double().cpu().tolist()))
    return out


def certified_rows(
    certificate: Any, hr: torch.Tensor, names: Sequence[str], keep: Sequence[int], rows: Any, matrix: Any
):
    """The ``cert_width@eps`` / ``cert_psnr@eps`` rows of a batch (see :func:`certified_specs`) and the certificate's
    spec (with the batch's image ``names``) for the cell's ``smoothing.certificates``.

    ``cert_psnr`` is a PSNR: it crops as the matrix's ``psnr`` entry does, else as the PSNR class's default crop. A
    non-finite certified value is a failure row naming it. ``rows`` is the cell's :class:`~bench.runner.stages.record.
    Rows`; ``keep`` the indices of ``names`` whose SR output was finite.
    """
    from bench.metrics import METRICS

    psnr = next((m for m in matrix.metrics if m.name == CERT_PSNR_METRIC), None)
    crop = psnr.crop_border if psnr is not None else METRICS.get(CERT_PSNR_METRIC).default_crop_border(matrix.scale)
    spec = certificate.spec()
    spec["images"] = list(names)
    out = []
    for column, column_spec, values in certified_values(certificate, hr, matrix.smoothing.certify, crop):
        for i in keep:
            if values[i] == values[i] and abs(values[i]) != float("inf"):
                out.append(rows.ok(names[i], column, values[i], column_spec))
            else:
                out.append(rows.failed(names[i], column, f"certified value is {values[i]}", column_spec))
    return out, spec
