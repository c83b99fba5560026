"""Stage *plan*: a matrix -> the method cards' provenance, the metric specs and the typed cells with their keys.

See :mod:`bench.runner.cells` for what a key holds (and what it does not: the metric list, ``batch_images``,
``store_outputs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.runner.cells import Cell, expand_cells
from bench.runner.matrix import Matrix
from bench.runner.provenance import method_identity, method_provenances


@dataclass(frozen=True)
class Plan:
    """What a run computes: every cell (method-major), the card provenances and the largest budget per attack."""

    cells: list[Cell]
    provenances: dict[str, dict[str, Any]]
    max_eps: dict[str, float]


def plan(matrix: Matrix) -> Plan:
    provenances = method_provenances(matrix.methods)
    identities = {name: method_identity(p) for name, p in provenances.items()}
    cells = expand_cells(matrix, identities, provenances)
    max_eps: dict[str, float] = {}
    for cell in cells:
        if cell.threat.attacked:
            max_eps[cell.threat.name] = max(max_eps.get(cell.threat.name, 0.0), cell.threat.epsilon)
    return Plan(cells, provenances, max_eps)
