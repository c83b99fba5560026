"""``python -m bench report RUN``: re-render ``results.csv``, ``tables/`` and ``index.html`` from a run's store.

``RUN`` is a run directory, or a run name under ``--out`` (default ``reports/``). Prints the path of ``index.html``.
``--inline`` embeds every image (a single-file report); by default the page holds compressed thumbnails and links the
full-size images beside it. ``--primary METRIC`` ranks the overview by that metric (default: the matrix's first).
Every file is written atomically (:mod:`bench.atomic`); a full disk or an unwritable folder ends with one ``error:``
line naming the file and the fix, exit 1, the previous report files whole and the stored cells untouched. It takes
the run folder's lock (:mod:`bench.runner.lock`), so it never renders a folder a run is writing: while one holds it,
``report`` waits a few seconds, then ends with one ``error:`` line naming that run's process, exit 2.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="re-render a run's tables and HTML leaderboard from its store", description=__doc__
    )
    p.add_argument("run", help="run directory, or run name under --out")
    p.add_argument("--out", type=Path, default=None, help="parent folder of runs (default: reports/)")
    p.add_argument(
        "--inline",
        action="store_true",
        help="embed every image losslessly in index.html (one self-contained file; larger) instead of linking the "
        "full-size files beside it",
    )
    p.add_argument(
        "--primary", default=None, metavar="METRIC", help="metric the overview ranks by (default: the matrix's first)"
    )
    p.set_defaults(func=report_command)


def resolve_run_dir(run: str, out: Path | None = None) -> Path:
    """A run directory from a path or a name (looked up under ``out``, default ``reports/``)."""
    from bench.paths import reports_dir

    path = Path(run).expanduser()
    if (path / "cells").is_dir() or (path / "run.json").is_file():
        return path
    candidate = (out if out is not None else reports_dir()) / run
    if (candidate / "cells").is_dir() or (candidate / "run.json").is_file():
        return candidate
    raise FileNotFoundError(f"no run at {path} nor at {candidate} (a run folder holds run.json and cells/)")


def report_command(args: argparse.Namespace) -> int:
    """Render under the run folder's lock (:func:`bench.runner.lock.run_lock`, as a single run): a run or any rank of
    a sharded run writing the folder is waited for :data:`~bench.runner.lock.REPORT_WAIT` seconds, then refused with
    one ``error:`` line naming its process and lock (:class:`~bench.runner.lock.RunLocked`, exit 2)."""
    from bench.report.html import write_report
    from bench.runner.lock import REPORT_FIX, REPORT_WAIT, run_lock

    run_dir = resolve_run_dir(args.run, args.out)
    with run_lock(run_dir, wait=REPORT_WAIT, fix=REPORT_FIX.format(run=args.run)):
        index = write_report(run_dir, inline=args.inline, primary=args.primary)
    print(index)
    return 0
