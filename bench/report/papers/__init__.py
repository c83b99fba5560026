"""Every results table of the seed documents, transcribed as data (``tables/<id>.yaml``) and validated on load.

Tables (ids): ``rsr`` (seed 000, the RSR slides' NTIRE_syn / AIM_syn table), ``certsr-t1``, ``certsr-t2``,
``certsr-t3`` (seed 001), ``and-t1``, ``and-t2`` (seed 002), ``ntire20-t1`` (track 1 final results), ``ntire20-t2``
(track 2, no-reference scores) and ``ntire20-t1-val`` (a track-1 validation table) (seed 003). The schema is
:mod:`bench.report.papers.model`. The legacy ``certsr2024.yaml`` beside this file (CertSR Tables 1-2 in the format
the current report reads) is kept equal to ``certsr-t1``/``certsr-t2`` by a test until the report reads these tables.

Example::

    from bench.report.papers import load_table, table_ids
    for tid in table_ids():
        table = load_table(tid)
        print(tid, table.source, len(table.rows), "rows", table.layout)
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import ValidationError

from bench.report.papers.model import Column, Group, Metric, MetricSpec, PaperTable, Row

TABLES_DIR = Path(__file__).resolve().parent / "tables"


class PaperTableError(ValueError):
    """A table file that does not parse or validate; the message names the file."""


def table_ids() -> list[str]:
    """The ids of the packaged tables, sorted."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int) -> PaperTable:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        table = PaperTable.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise PaperTableError(f"{path}: {exc}") from exc
    if table.id != Path(path).stem:
        raise PaperTableError(f"{path}: id {table.id!r} differs from the file name; rename one of them")
    return table


def load_table(table_id: str) -> PaperTable:
    """The table ``table_id`` (e.g. ``certsr-t1``); ``KeyError`` lists the known ids."""
    path = TABLES_DIR / f"{table_id}.yaml"
    if not path.is_file():
        raise KeyError(f"no paper table {table_id!r}; known: {', '.join(table_ids())}")
    return _load(str(path), path.stat().st_mtime_ns)


def load_tables() -> list[PaperTable]:
    """Every packaged table, in id order."""
    return [load_table(t) for t in table_ids()]


__all__ = [
    "TABLES_DIR",
    "Column",
    "Group",
    "Metric",
    "MetricSpec",
    "PaperTable",
    "PaperTableError",
    "Row",
    "load_table",
    "load_tables",
    "table_ids",
]
