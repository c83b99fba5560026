"""LR corruptions; :data:`CORRUPTIONS` maps a name to a class ``(**params) -> Corruption``."""

from bench.corruptions.base import Corruption
from bench.registry import Registry

CORRUPTIONS: Registry = Registry(
    "corruption",
    base=Corruption,
    modules=(
        "bench.corruptions.identity",
        "bench.corruptions.noise",
        "bench.corruptions.blur",
        "bench.corruptions.jpeg",
        "bench.corruptions.poisson",
        "bench.corruptions.impulse",
        "bench.corruptions.aniso_blur",
        "bench.corruptions.motion_blur",
        "bench.corruptions.defocus_blur",
        "bench.corruptions.realesrgan_pipeline",
    ),
)


def build_corruption(name: str, **params) -> Corruption:
    return CORRUPTIONS.get(name)(**params)


__all__ = ["CORRUPTIONS", "Corruption", "build_corruption"]
