"""One process per run folder (per rank): a second ``run`` on the same folder refuses instead of mixing its outputs.

The lock is ``<run_dir>/run.lock`` (``run.rank<N>.lock`` for rank N > 0 of a sharded run, so the ranks of one
``torchrun`` share the folder as designed), held with :mod:`filelock` (``flock`` on POSIX, ``msvcrt`` on Windows)
for the whole run and its report. The operating system drops it when the process ends, ``kill -9`` included, so a
killed run never leaves a stale lock. Who holds it (pid, host, start time) is written beside it in ``<lock>.owner``
for the refusal message; that file is informative only.

Example::

    with run_lock(Path("reports/smoke")):
        ...  # compute cells, write the report
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from bench.errors import BenchError
from bench.runner.provenance import now
from bench.runner.store import atomic_write_json, output_error

logger = logging.getLogger(__name__)

__all__ = ["RunLocked", "lock_path", "run_lock"]


class RunLocked(BenchError):
    """Another process is running on the same run folder (the message names the lock file and the process)."""


def lock_path(run_dir: str | Path, rank: int = 0) -> Path:
    """``<run_dir>/run.lock`` for rank 0, ``<run_dir>/run.rank<N>.lock`` for rank N."""
    return Path(run_dir) / ("run.lock" if rank == 0 else f"run.rank{rank}.lock")


def _owner(path: Path, wait: float = 2.0) -> str:
    """Who holds ``path``, from its owner file. The holder writes that file just after taking the lock, so a refusal
    that comes in between waits for it (up to ``wait`` seconds) before it says "another process"."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = json.loads(path.with_name(path.name + ".owner").read_text(encoding="utf-8"))
            return f"pid {info['pid']} on {info['host']}, started {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() >= deadline:
                return "another process"
            time.sleep(0.05)


@contextlib.contextmanager
def run_lock(run_dir: str | Path, rank: int = 0) -> Iterator[Path]:
    """Hold the run folder's lock for the block; re-entrant within a process (the CLI holds it around the run and
    its report, the runner around its cells).

    Raises:
        RunLocked: another process holds it; the message names the lock file and that process, the fix the way out.
    """
    path = lock_path(run_dir, rank)
    lock = FileLock(str(path), timeout=0, is_singleton=True)
    owner_file = path.with_name(path.name + ".owner")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise RunLocked(
            f"run folder {path.parent} is in use by another run ({_owner(path)}; lock {path})",
            fix="wait for that run to finish, or give this run another --run name",
        ) from None
    except OSError as exc:
        raise output_error(path, exc) from exc
    outermost = lock.lock_counter == 1
    try:
        if outermost:
            info = {"pid": os.getpid(), "host": platform.node(), "started": now()}
            atomic_write_json(owner_file, info)
            logger.debug("locked %s", path)
        yield path
    finally:
        if outermost:
            with contextlib.suppress(OSError):
                owner_file.unlink()
        lock.release()
