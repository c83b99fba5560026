"""Matrix expansion, cell execution, the resumable store and sharding.

A cell is (method, dataset, condition, attack setting, seed); matrices may declare an attack axis (``attacks:``) and
CertSR median smoothing (``smoothing:``: sigma selection and certified columns), see :mod:`bench.runner.matrix`.

``load_matrix`` parses and validates a declared matrix (``bench/matrices/*.yaml``), ``expand_cells`` turns it into
cells, :class:`~bench.runner.store.Store` keeps one JSON file per finished cell, and ``run_matrix`` computes the cells
that are not stored yet. Heavy modules (torch models, metrics) are imported lazily by the runner.
"""

from bench.runner.matrix import (
    AttackEntry,
    Condition,
    DatasetEntry,
    Matrix,
    MatrixError,
    MetricEntry,
    Smoothing,
    Threat,
    load_matrix,
)

__all__ = [
    "AttackEntry",
    "Condition",
    "DatasetEntry",
    "Matrix",
    "MatrixError",
    "MetricEntry",
    "Smoothing",
    "Threat",
    "load_matrix",
]
