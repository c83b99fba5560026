"""The run store: one JSON file per cell under ``<run_dir>/cells/``, written atomically.

Layout of a run directory (``reports/<run>/`` by default)::

    run.json            the matrix, the run's provenance and the keys of its cells (written by rank 0)
    cells/<key>.json    one finished (or failed) cell: a :class:`~bench.results.schema.CellPayload`
    gallery/            PNG crops for the report (described by the cells' ``gallery`` entries)
    outputs/<key>.safetensors   the SR outputs of a cell, when the matrix has ``store_outputs: true``
    sigma/<key>.json    sigma selections of median smoothing
    results.csv, tables/, index.html    written by the report

A cell file is written to a temporary file in the same folder and moved into place with :func:`os.replace`
(:mod:`bench.atomic`, as every output file), so a killed run leaves either the complete file or none. A cell whose
``status`` is ``"ok"`` is finished and skipped by the next run; a ``"failed"`` one is retried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.atomic import atomic_open, output_error, storage_fix
from bench.errors import OutputError
from bench.results.schema import ATTACK_COLUMNS, STATUS_FAILED, STATUS_OK, CellPayload, RunInfo, SchemaError

logger = logging.getLogger(__name__)

__all__ = [
    "ATTACK_COLUMNS",
    "STATUS_FAILED",
    "STATUS_OK",
    "Store",
    "atomic_write_json",
    "output_error",
    "storage_fix",
]


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def atomic_write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (:func:`bench.atomic.atomic_open`: a temporary file and
    ``os.replace``).

    Raises :class:`~bench.errors.OutputError` (file, reason and fix) when the folder cannot be written -- no
    permission, no space left; the temporary file is removed and a previous version of ``path`` stays as it was.
    """
    with atomic_open(path) as fh:
        json.dump(payload, fh, indent=1, sort_keys=True, default=_json_default, allow_nan=True)
    return path


class Store:
    """The cells of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.cells_dir = self.run_dir / "cells"

    @property
    def run_file(self) -> Path:
        return self.run_dir / "run.json"

    @property
    def gallery_dir(self) -> Path:
        return self.run_dir / "gallery"

    def cell_path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored payload of a cell, ``None`` if absent; a corrupt file is logged and treated as absent."""
        path = self.cell_path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            logger.warning("ignoring unreadable cell file %s (%s); the cell will be recomputed", path, exc)
            return None

    def load_payload(self, key: str) -> CellPayload | None:
        """The stored payload of a cell as the results schema, ``None`` if absent or unreadable (recomputed)."""
        data = self.load(key)
        if data is None:
            return None
        try:
            return CellPayload.from_dict(data, source=str(self.cell_path(key)))
        except SchemaError as exc:
            logger.warning("%s; the cell will be recomputed", exc)
            return None

    def iter_payloads(self, keys: list[str] | None = None) -> Iterator[CellPayload]:
        """Stored payloads as the results schema; an unreadable version raises :class:`SchemaError` (the report
        must not show a partial run silently)."""
        for data in self.iter_cells(keys):
            yield CellPayload.from_dict(data, source=f"{self.cells_dir / str(data.get('key'))}.json")

    def status(self, key: str) -> str | None:
        payload = self.load(key)
        return None if payload is None else payload.get("status")

    def is_finished(self, key: str) -> bool:
        """True when the cell is stored with status ``ok`` (failed cells are retried)."""
        return self.status(key) == STATUS_OK

    def write(self, key: str, payload: Mapping[str, Any]) -> Path:
        return atomic_write_json(self.cell_path(key), dict(payload))

    def keys(self) -> list[str]:
        if not self.cells_dir.is_dir():
            return []
        return sorted(p.stem for p in self.cells_dir.glob("*.json") if not p.name.startswith("."))

    def iter_cells(self, keys: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Stored payloads, for ``keys`` (missing ones skipped) or every cell file."""
        for key in self.keys() if keys is None else keys:
            payload = self.load(key)
            if payload is not None:
                yield payload

    def write_run_info(self, info: Mapping[str, Any] | RunInfo) -> Path:
        """Write ``run.json`` through the results schema (:class:`RunInfo`, with its ``version``)."""
        if not isinstance(info, RunInfo):
            info = RunInfo.from_dict(info, source=str(self.run_file))
        return atomic_write_json(self.run_file, info.as_dict())

    def read_run_info(self) -> dict[str, Any] | None:
        """The stored ``run.json`` as a plain mapping (the runner updates it); ``None`` when absent."""
        info = self.read_info()
        return None if info is None else info.as_dict()

    def read_info(self) -> RunInfo | None:
        """The stored ``run.json`` as :class:`RunInfo`; ``None`` when absent. :class:`OutputError` naming the file when
        it is not a JSON object (truncated, edited, not UTF-8); :class:`SchemaError` for an unknown version."""
        if not self.run_file.is_file():
            return None
        try:
            data = json.loads(self.run_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            data = exc
        if not isinstance(data, dict):
            why = f"not valid JSON ({data})" if isinstance(data, ValueError) else "not a JSON object"
            raise OutputError(
                f"{self.run_file} is {why}",
                fix=f"delete {self.run_file}; the next `python -m bench run` on this folder writes it again",
            )
        return RunInfo.from_dict(data, source=str(self.run_file))

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files (``.<name>.<pid>.tmp``) and write probes (``.write-probe.<pid>``) a killed run
        left in the run folder; call it only while holding the folder's lock with no other rank writing. Returns what
        was removed."""
        removed = []
        for tmp in [*self.run_dir.rglob(".*.tmp"), *self.run_dir.rglob(".write-probe.*")]:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
        if removed:
            logger.info("removed %d temporary file(s) of an interrupted run in %s", len(removed), self.run_dir)
        return removed

    def check_writable(self) -> None:
        """Create the run folder and ``cells/`` and write a probe file into each existing output folder, so that a
        folder the run cannot write fails before any cell is computed; :class:`OutputError` naming it."""
        optional = [self.gallery_dir, self.run_dir / "outputs", self.run_dir / "sigma"]  # made when first needed
        for folder in [self.run_dir, self.cells_dir, *(f for f in optional if f.exists())]:
            probe = folder / f".write-probe.{os.getpid()}"  # no .json suffix: never taken for a cell
            atomic_write_json(probe, {})
            try:
                probe.unlink()
            except OSError as exc:
                raise output_error(probe, exc, "cannot remove") from exc


def stored_records(run_dir: str | Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """All records of a run directory's cells (those of ``keys`` only, when given)."""
    out: list[dict[str, Any]] = []
    for payload in Store(run_dir).iter_payloads(None if keys is None else list(keys)):
        out.extend(payload.records)
    return out
