"""Method adapters (:data:`ADAPTERS`) and the leaderboard entries declared by cards in ``methods/*.yaml``."""

from bench.methods.base import Method
from bench.registry import Registry

ADAPTERS: Registry = Registry(
    "method adapter",
    base=Method,
    modules=("bench.methods.bicubic", "bench.methods.rrdb", "bench.methods.smoothing", "bench.methods.stochastic"),
)

__all__ = ["ADAPTERS", "Method"]
