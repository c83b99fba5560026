"""Matrix expansion, cell execution, the resumable store and sharding.

``load_matrix`` parses and validates a declared matrix (``bench/matrices/*.yaml``), ``expand_cells`` turns it into
cells, :class:`~bench.runner.store.Store` keeps one JSON file per finished cell, and ``run_matrix`` computes the cells
that are not stored yet. Heavy modules (torch models, metrics) are imported lazily by the runner.
"""

from bench.runner.matrix import Condition, DatasetEntry, Matrix, MatrixError, MetricEntry, load_matrix

__all__ = ["Condition", "DatasetEntry", "Matrix", "MatrixError", "MetricEntry", "load_matrix"]
