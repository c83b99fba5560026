"""Atomic writes of output files: cells, ``run.json``, tables, ``index.html``, paper tables, curves, schemas.

Every file the tool writes into an output folder goes through :func:`atomic_open` (or :func:`atomic_write`, its
one-shot form): the content goes to ``.<name>.<pid>.tmp`` beside the target, is flushed to disk, and is moved over
the target with :func:`os.replace` (atomic on POSIX and Windows). A full disk, a folder without write permission or
a killed process therefore leaves either the previous complete file or the new complete one, never a truncated one;
a failed write removes its temporary file (one left by a killed process is ``.*.tmp`` and is removed by the next
run, :meth:`bench.runner.store.Store.remove_temporaries`).

A failure raises :class:`~bench.errors.OutputError` naming the file and the reason, with the fix as data
(:func:`storage_fix`: free some space, make the folder writable, or choose another ``--out``); the command line
prints it as one ``error:`` line and exits 1.

Example::

    atomic_write(run_dir / "index.html", html)
    with atomic_open(run_dir / "results.csv") as fh:
        frame.to_csv(fh, index=False)
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bench.errors import OutputError

__all__ = [
    "atomic_open",
    "atomic_write",
    "output_error",
    "remove_file",
    "retry_fix",
    "storage_fix",
    "temporary_path",
]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def storage_fix(exc: OSError, retry: str | None = None) -> str:
    """What to do about an ``OSError`` of an output folder; ``retry`` is the command to run once it is fixed (default:
    rerun to resume, or choose another ``--out``)."""
    if retry is not None:
        if exc.errno in _NO_SPACE:
            what = "free some space"
        elif exc.errno in _NO_PERMISSION:
            what = "make the folder writable (chmod u+w)"
        else:
            what = "check the folder (a file where a folder should be?)"
        return f"{what}, then run `{retry}` again"
    if exc.errno in _NO_SPACE:
        return "free some space (finished cells are kept; rerun to resume) or choose another --out"
    if exc.errno in _NO_PERMISSION:
        return "make the folder writable (chmod u+w) or choose another --out"
    return "check the folder (a file where a folder should be?) or choose another --out"


def output_error(path: Path, exc: OSError, doing: str = "cannot write", retry: str | None = None) -> OutputError:
    """One-line :class:`OutputError` naming ``path`` and the reason of ``exc``, with the fix (see :func:`storage_fix`).

    Raise it ``from exc``: :func:`retry_fix` and the command line read the ``OSError`` back from ``__cause__``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"{doing} {path}: {reason}", fix=storage_fix(exc, retry))


def retry_fix(error: OutputError, retry: str) -> OutputError:
    """``error`` with its fix naming ``retry`` as the command to run again (when it came from an ``OSError``)."""
    if isinstance(error.__cause__, OSError):
        error.fix = storage_fix(error.__cause__, retry)
    return error


def temporary_path(path: Path) -> Path:
    """``.<name>.<pid>.tmp`` beside ``path``: hidden, never taken for a cell or a table, unique per process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", **kwargs: Any) -> Iterator[IO]:
    """A file object for writing ``path`` atomically; the target is replaced only when the block ends normally.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``; ``kwargs`` go to :func:`open` (e.g. ``newline=""`` for
    CSV). The parent folder is created. An ``OSError`` anywhere (the folder, the writes, the flush, the rename) raises
    :class:`~bench.errors.OutputError` naming ``path``; an exception of the block propagates as it is. Either way the
    temporary file is removed and a previous ``path`` stays as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = temporary_path(path)
    done = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode, encoding=None if "b" in mode else encoding, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:
        if not done:
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text in ``encoding``, or bytes) to ``path`` atomically (:func:`atomic_open`); return ``path``."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding) as fh:
        fh.write(data)
    return Path(path)


def remove_file(path: Path) -> None:
    """Delete an output file that is no longer wanted (a table of an earlier matrix); a missing file is fine, any other
    ``OSError`` raises :class:`~bench.errors.OutputError` naming it."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise output_error(path, exc, "cannot remove") from exc
