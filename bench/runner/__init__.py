"""Matrix expansion, cell execution, the resumable store and sharding.

A cell is (method, dataset, condition, attack setting, seed); matrices may declare an attack axis (``attacks:``) and
CertSR median smoothing (``smoothing:``: sigma selection and certified columns), see :mod:`bench.runner.matrix`.

``load_matrix`` parses and validates a declared matrix (``bench/matrices/*.yaml``), ``expand_cells`` turns it into
cells, :class:`~bench.runner.store.Store` keeps one JSON file per finished cell (the results schema of
:mod:`bench.results.schema`), and ``run_matrix`` computes the cells (and metrics) that are not stored yet.

Layout::

    matrix.py       the matrix schema and loader
    cells.py        cells and their keys
    provenance.py   versions, git commit, host, card identities
    stages/         plan, prepare, corrupt, attack, infer, score, record; sigma, gallery, outputs, rescore
    runner.py       loops over cells: skips, builds methods, calls the stages, persists
    store.py        atomic cell files
    commands.py     ``python -m bench run``

Heavy modules (torch models, metrics) are imported lazily by the stages.
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
