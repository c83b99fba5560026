"""How a cell's images become batches: the one rule of the runner (:meth:`bench.runner.cell.CellEvaluator.compute`
and :meth:`~bench.runner.cell.CellEvaluator.evaluate`) and of the cost plan (:func:`bench.runner.cost.plan_matrix`).

The cell's images, in order, are taken ``per_call`` at a time (:func:`chunks`: ``batch_images`` for a cell that
batches, 1 for one that does not -- :meth:`~bench.runner.cell.CellEvaluator.images_per_call`); each chunk is split
into one batch per image size (:func:`by_size`, keyed by :func:`size_key`: the LR's height and width and whether
the image has ground truth), in the order each size first occurs in the chunk. So ``batch_images: 3`` over LR sizes
``24, 24, 32, 24`` gives ``[24, 24] [32] [24]``. An image that fails to load or corrupt takes no place in a chunk
(the runner), which the plan cannot foresee: it plans every image.

Example::

    batches(["a", "b", "c", "d"], 3, key={"a": 24, "b": 24, "c": 32, "d": 24}.get)  # [["a", "b"], ["c"], ["d"]]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def size_key(height: int, width: int, ground_truth: bool) -> tuple[int, int, bool]:
    """What images of one batch share: the LR's ``height`` and ``width``, and whether there is an HR."""
    return int(height), int(width), bool(ground_truth)


def chunks(items: Iterable[T], per_call: int) -> Iterator[list[T]]:
    """Consecutive lists of ``per_call`` items (the last one shorter), drawn lazily: a chunk is read only when the
    previous one has been handed on (the runner prepares images as it goes)."""
    if per_call < 1:
        raise ValueError(f"per_call must be >= 1, got {per_call}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= per_call:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def by_size(chunk: Sequence[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """The batches of one chunk: its items grouped by ``key`` (:func:`size_key`), groups in order of first
    occurrence, items in order within each."""
    groups: dict[Hashable, list[T]] = {}
    for item in chunk:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def batches(items: Iterable[T], per_call: int, key: Callable[[T], Hashable]) -> list[list[T]]:
    """Every batch of a cell, in the order the runner runs them: :func:`chunks`, each split :func:`by_size`."""
    return [group for chunk in chunks(items, per_call) for group in by_size(chunk, key)]
