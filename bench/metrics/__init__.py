"""Image-quality metrics; :data:`METRICS` maps a name to a factory ``(**kwargs) -> Metric``."""

from bench.metrics.base import Metric, MetricSpec
from bench.registry import Registry

METRICS: Registry = Registry(
    "metric",
    base=Metric,
    modules=("bench.metrics.psnr", "bench.metrics.ssim", "bench.metrics.lpips"),
)


def build_metric(name: str, **kwargs) -> Metric:
    """Instantiate the metric registered as ``name``."""
    return METRICS.get(name)(**kwargs)


__all__ = ["METRICS", "Metric", "MetricSpec", "build_metric"]
