"""Stage *corrupt*: the condition's corruption applied to an item's LR, seeded by (:attr:`Cell.corruption_key`, image
name), so every method of a condition gets the same corrupted LR.

Corruptions are built once per condition name and shared by the cells of a run.
"""

from __future__ import annotations

from typing import Any

from bench.runner.cells import Cell
from bench.runner.matrix import Condition
from bench.runner.stages.prepare import Item
from bench.seeding import make_generator, seed_from


class Corrupter:
    """Builds each condition's corruption once; :meth:`__call__` corrupts an item in place and returns it."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def corruption(self, condition: Condition) -> Any:
        from bench.corruptions import build_corruption

        if condition.name not in self._built:
            self._built[condition.name] = build_corruption(condition.corruption, **condition.params)
        return self._built[condition.name]

    def __call__(self, cell: Cell, item: Item) -> Item:
        generator = make_generator(seed_from(cell.corruption_key, item.name))
        item.lr = self.corruption(cell.condition)(item.lr, generator)
        return item
