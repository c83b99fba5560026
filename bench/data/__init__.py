"""Datasets, the embedded default images and MATLAB-compatible resizing."""

from bench.data.base import Dataset, Sample
from bench.registry import Registry

DATASETS: Registry = Registry("dataset", modules=("bench.data.embedded", "bench.data.folder"))

__all__ = ["DATASETS", "Dataset", "Sample"]
