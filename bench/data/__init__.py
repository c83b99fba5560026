"""Datasets, the embedded default images and MATLAB-compatible resizing."""

from bench.data.base import Dataset, Sample
from bench.data.registry import DatasetRegistry

#: Datasets registered in code (embedded images, folders) and the current project's manifest datasets, resolved on
#: lookup (:mod:`bench.data.registry`, :mod:`bench.data.catalog`).
DATASETS: DatasetRegistry = DatasetRegistry("dataset", modules=("bench.data.embedded", "bench.data.folder"))

__all__ = ["DATASETS", "Dataset", "Sample", "build_dataset"]


def build_dataset(name_or_path: str, **kwargs) -> Dataset:
    """A registered dataset by name (``"embedded-eval"``, ...) or, for an existing folder, a ``folder`` dataset.

    ``kwargs`` go to the dataset's factory (e.g. ``crop=128``, ``scale=4``, ``lr_path=...`` for folders).
    """
    from pathlib import Path

    if name_or_path in DATASETS:
        return DATASETS.get(name_or_path)(**kwargs)
    if Path(name_or_path).expanduser().is_dir():
        return DATASETS.get("folder")(path=Path(name_or_path).expanduser(), **kwargs)
    return DATASETS.get(name_or_path)(**kwargs)  # raises KeyError with suggestions
