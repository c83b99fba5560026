"""Image-quality metrics; :data:`METRICS` maps a name to a factory ``(**kwargs) -> Metric``."""

from bench.metrics.base import Metric, MetricSpec
from bench.registry import Registry

METRICS: Registry = Registry(
    "metric",
    base=Metric,
    modules=(
        "bench.metrics.psnr",
        "bench.metrics.ssim",
        "bench.metrics.lpips",
        "bench.metrics.niqe",
        "bench.metrics.lr_psnr",
        "bench.metrics.brisque",
        "bench.metrics.piqe",
        "bench.metrics.nrqm",
        "bench.metrics.pi",
        "bench.metrics.pyiqa_backend",
    ),
)


def build_metric(name: str, **kwargs) -> Metric:
    """Instantiate the metric registered as ``name``.

    A name ``pyiqa:<metric>`` that is not registered wraps that pyiqa metric (:mod:`bench.metrics.pyiqa_backend`).
    """
    if name.strip().lower().startswith("pyiqa:") and name not in METRICS:
        from bench.metrics.pyiqa_backend import pyiqa_metric

        return pyiqa_metric(name.strip(), **kwargs)
    return METRICS.get(name)(**kwargs)


__all__ = ["METRICS", "Metric", "MetricSpec", "build_metric"]
