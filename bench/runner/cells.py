"""Cells: one (method, dataset, condition, seed) of a matrix, and the key that names its stored result.

The key is :func:`bench.seeding.key_hash` of the cell's canonical description: the method card's identity (adapter,
arguments, checkpoint and its hash when known), the dataset (name, crop, arguments), the condition (corruption and
parameters, attack and budget), the seed, the specs of every metric computed and the scale. Anything that changes
the numbers changes the key; the run's name, the matrix's name and the order of its lists do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.runner.matrix import Condition, DatasetEntry, Matrix
from bench.seeding import key_hash

#: Bump when the runner changes what a cell computes (invalidates every stored cell).
CELL_FORMAT = 1


@dataclass(frozen=True)
class Cell:
    """One unit of work and of storage; ``key`` names ``cells/<key>.json``."""

    method: str
    dataset: DatasetEntry
    condition: Condition
    seed: int
    key: str
    description: dict[str, Any]

    @property
    def attack(self) -> str:
        return self.condition.attack

    @property
    def epsilon(self) -> float:
        return self.condition.epsilon

    def label(self) -> str:
        return f"{self.method} | {self.dataset.name} | {self.condition.name} | seed {self.seed}"


def cell_description(
    method_identity: Mapping[str, Any],
    dataset: DatasetEntry,
    condition: Condition,
    seed: int,
    metric_specs: Sequence[Mapping[str, Any]],
    scale: int,
) -> dict[str, Any]:
    """The canonical, JSON-able description a cell's key is the hash of."""
    return {
        "format": CELL_FORMAT,
        "method": dict(method_identity),
        "dataset": dataset.identity(),
        "condition": condition.identity(),
        "seed": seed,
        "metrics": sorted((dict(s) for s in metric_specs), key=lambda s: (str(s.get("name")), str(s))),
        "scale": scale,
    }


def cell_key(description: Mapping[str, Any]) -> str:
    return key_hash(dict(description), length=20)


def expand_cells(
    matrix: Matrix,
    method_identities: Mapping[str, Mapping[str, Any]],
    metric_specs: Sequence[Mapping[str, Any]],
) -> list[Cell]:
    """Every cell of ``matrix`` in method-major order (so one method's cells run together and it is loaded once)."""
    cells = []
    for method in matrix.methods:
        for dataset in matrix.datasets:
            for condition in matrix.conditions:
                for seed in matrix.seeds:
                    identity = method_identities[method]
                    desc = cell_description(identity, dataset, condition, seed, metric_specs, matrix.scale)
                    cells.append(Cell(method, dataset, condition, seed, cell_key(desc), desc))
    return cells


def shard(cells: Sequence[Cell], rank: int, world_size: int) -> list[Cell]:
    """The cells of one rank: index i goes to rank ``i % world_size``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid shard rank {rank} of world size {world_size}")
    return [c for i, c in enumerate(cells) if i % world_size == rank]
