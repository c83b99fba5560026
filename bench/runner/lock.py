"""Who may write a run folder: one single run, or the ranks of one sharded run -- never both, never two of either.

Each process holds its own lock for the whole run and its report: ``<run_dir>/run.lock`` for a single run and for
rank 0 of a sharded run, ``run.rank<N>.lock`` for rank N > 0 (so the ranks of one ``torchrun`` share the folder as
designed). The locks are held with :mod:`filelock` (``flock`` on POSIX, ``msvcrt`` on Windows); the operating system
drops one when its process ends, ``kill -9`` included, so a killed run never leaves a stale lock. Who holds a lock is
written beside it in ``<lock>.owner``: pid, host, start time, rank, world size and the sharded job's identity
(``MASTER_ADDR:MASTER_PORT/TORCHELASTIC_RUN_ID``, the same for every rank of one ``torchrun``).

The rule, checked when a process takes its lock: every *other* lock of the folder that a live process holds must
belong to a rank of the same sharded job (same world size, same job identity); otherwise the newcomer refuses with
one line naming the holder (pid, host, rank) and its lock. So a single run refuses while any rank of a sharded run
holds the folder (rank 0 may have finished its shard or died while rank 3 still writes), a rank of a sharded run
refuses while a single run holds it, and two sharded jobs (even of different world sizes) exclude each other. The
check and the taking happen under a short gate lock (``run.gate.lock``, held for milliseconds), so two processes
starting together cannot both pass it; the owner file is complete before the gate opens. A single run may therefore
remove the temporary files of killed runs: no rank of anything else writes into the folder.

``python -m bench report`` takes the same lock as a single run (so it never renders a folder a run or any rank of a
sharded run is writing): it waits a few seconds (:data:`REPORT_WAIT`) for the holder to let go, then refuses with
the holder and :data:`REPORT_FIX` (``{run}``: the run as the user named it).

Example::

    with run_lock(Path("reports/smoke")):
        ...  # compute cells, write the report
    with run_lock(Path("reports/smoke"), rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"])):
        ...  # this rank's shard
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bench.errors import BenchError
from bench.runner.provenance import now
from bench.runner.store import atomic_write_json, output_error

logger = logging.getLogger(__name__)

__all__ = ["GATE_WAIT", "REPORT_WAIT", "RunLocked", "gate_path", "lock_path", "run_lock", "shard_job"]

#: Seconds a process waits for the gate (held by another process only while it checks and takes its own lock).
GATE_WAIT = 60.0
FIX = "wait for that run to finish, or give this run another --run name"
#: Seconds ``bench report`` waits for the run holding the folder to let it go before it refuses.
REPORT_WAIT = 5.0
REPORT_FIX = (
    "wait for that run to finish (it writes its report when it ends, unless it has --no-report), then run `python -m "
    "bench report {run}` again"
)
#: Seconds between two tries while waiting for a held folder.
POLL = 0.2


class RunLocked(BenchError):
    """Another run holds the run folder (the message names the lock file and the process)."""


def lock_path(run_dir: str | Path, rank: int = 0) -> Path:
    """``<run_dir>/run.lock`` for rank 0 (and a single run), ``<run_dir>/run.rank<N>.lock`` for rank N."""
    return Path(run_dir) / ("run.lock" if rank == 0 else f"run.rank{rank}.lock")


def gate_path(run_dir: str | Path) -> Path:
    """``<run_dir>/run.gate.lock``: held while a process checks the folder's locks and takes its own."""
    return Path(run_dir) / "run.gate.lock"


def shard_job() -> str | None:
    """The identity of this process's ``torchrun`` job from its environment (``MASTER_ADDR:MASTER_PORT`` and
    ``TORCHELASTIC_RUN_ID``: the same for all its ranks, different for another job on the same host); ``None`` when
    none of them is set."""
    addr, port, run_id = (os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"))
    if addr is None and port is None and run_id is None:
        return None
    return f"{addr}:{port}/{run_id}"


def _read_owner(path: Path, wait: float = 0.0) -> dict[str, Any] | None:
    """The owner record of lock ``path``; ``None`` when unreadable. A holder that took its lock without the gate (an
    older version) writes it just after, so a caller may ``wait`` for it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = json.loads(path.with_name(path.name + ".owner").read_text(encoding="utf-8"))
            if isinstance(info, dict) and {"pid", "host", "started"} <= info.keys():
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _describe(info: Mapping[str, Any] | None) -> str:
    if info is None:
        return "another process"
    text = f"pid {info['pid']} on {info['host']}, started {info['started']}"
    world = info.get("world_size", 1)
    return text + (f", rank {info.get('rank', 0)} of {world} of a sharded run" if world > 1 else "")


def _refusal(run_dir: Path, lock: Path, info: Mapping[str, Any] | None, fix: str = FIX) -> RunLocked:
    return RunLocked(f"run folder {run_dir} is in use by another run ({_describe(info)}; lock {lock})", fix=fix)


def _held(path: Path) -> bool:
    """Whether a live process (this one included) holds lock ``path``: a non-blocking attempt fails."""
    probe = FileLock(str(path), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


def _same_job(info: Mapping[str, Any] | None, me: Mapping[str, Any]) -> bool:
    """Two holders may share the folder only as ranks of one sharded job."""
    if info is None or me["world_size"] <= 1:
        return False
    return info.get("world_size") == me["world_size"] and info.get("job") == me["job"]


def _check_others(run_dir: Path, mine: Path, me: Mapping[str, Any], fix: str = FIX) -> None:
    """Refuse when another lock of ``run_dir`` is held by anything but a rank of this process's sharded job."""
    others = {lock_path(run_dir), *run_dir.glob("run.rank*.lock")} - {mine}
    for other in sorted(others):
        if other.is_file() and _held(other):
            info = _read_owner(other, wait=1.0)
            if not _same_job(info, me):
                raise _refusal(run_dir, other, info, fix)


@contextlib.contextmanager
def run_lock(
    run_dir: str | Path,
    rank: int = 0,
    world_size: int = 1,
    job: str | None = None,
    *,
    wait: float = 0.0,
    fix: str = FIX,
) -> Iterator[Path]:
    """Hold the run folder for the block as ``rank`` of ``world_size`` (1: a single run); re-entrant within a process
    (the CLI holds it around the run and its report, the runner around its cells). ``job`` identifies a sharded run
    (default :func:`shard_job`, from the ``torchrun`` environment). ``wait``: seconds to keep trying while another
    run holds the folder (default 0: refuse at once); ``fix``: the way out the refusal names (default :data:`FIX`).

    Raises:
        RunLocked: another run holds the folder (see the module docstring for the rule); the message names its lock
            file and process (pid, host, start, rank), the fix the way out.
        OutputError: the folder or the lock files cannot be written.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid shard rank {rank} of world size {world_size}")
    run_dir = Path(run_dir)
    path = lock_path(run_dir, rank)
    lock = FileLock(str(path), timeout=0, is_singleton=True)
    if lock.is_locked:  # this process holds it already
        with lock:
            yield path
        return
    me = {
        "pid": os.getpid(),
        "host": platform.node(),
        "started": now(),
        "rank": rank,
        "world_size": world_size,
        "job": (job if job is not None else shard_job()) if world_size > 1 else None,
    }
    owner_file = path.with_name(path.name + ".owner")
    deadline = time.monotonic() + wait
    while True:
        try:
            _take(run_dir, lock, path, owner_file, me, fix)
            break
        except RunLocked:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            logger.info("run folder %s is in use; waiting up to %.0f s more", run_dir, left)
            time.sleep(min(POLL, left))
    logger.debug("locked %s (rank %d of %d)", path, rank, world_size)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            owner_file.unlink()
        lock.release()


def _take(run_dir: Path, lock: FileLock, path: Path, owner_file: Path, me: Mapping[str, Any], fix: str) -> None:
    """Under the gate: take ``lock``, check the folder's other locks (:func:`_check_others`), write the owner
    record; :class:`RunLocked` (nothing held) when the folder is in use."""
    gate = gate_path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(gate), timeout=GATE_WAIT):
            try:
                lock.acquire()
            except Timeout:
                raise _refusal(run_dir, path, _read_owner(path, wait=2.0), fix) from None
            try:
                _check_others(run_dir, path, me, fix)
                atomic_write_json(owner_file, me)
            except BaseException:
                lock.release()
                raise
    except Timeout:  # the gate: only a process stuck between checking and taking its lock holds it this long
        raise RunLocked(
            f"cannot check who uses run folder {run_dir}: {gate} has been held for over {GATE_WAIT:.0f} s",
            fix=f"stop the process stuck on this folder (see `lsof {gate}`), or give this run another --run name",
        ) from None
    except OSError as exc:
        raise output_error(path, exc) from exc
