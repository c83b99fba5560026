"""``python -m bench reproduce [TABLE] [--device cuda] [--train-missing] [--dry-run] [--sigma published|auto]``.

Without TABLE: one line per paper table saying how many of its rows and cells can be measured now. With TABLE
(``certsr-t1``, ``and-t1`` ...; ``python -m bench reproduce`` lists them): ``--dry-run`` prints the datasets, the
cards of its rows, what is missing with the command that gets it, the number of cells and of model evaluations
(:mod:`bench.runner.reproduce`) and, for the cells that can run now (ready datasets and cards), the cost plan of
``bench run --dry-run`` on ``--device`` (forwards, backwards, FLOPs, estimated time from a short probe); otherwise
it fetches what it can, trains the missing recipes with ``--train-missing``, runs the table's matrix (resumable:
stored cells are kept) into ``--out/--run`` (default ``reports/<matrix>``) and writes the report, whose "Paper
tables" section and ``paper_tables/<table>.{csv,tex}`` hold the table in the paper's layout with published |
measured | delta. Exit code: 0 when every run cell is ok, 1 when a cell failed or something is still missing, 2 for
a bad table name or matrix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``reproduce`` to the CLI."""
    p = subparsers.add_parser(
        "reproduce",
        help="reproduce a paper table: check its inputs, run its matrix, render it in the paper's layout",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("table", nargs="?", default=None, metavar="TABLE", help="a paper table id (none: list them)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--dry-run", action="store_true", help="print what is missing and what the run costs; run nothing")
    p.add_argument("--train-missing", action="store_true", help="train the recipes of missing checkpoints first")
    p.add_argument("--no-fetch", action="store_true", help="do not fetch missing datasets or weights")
    p.add_argument(
        "--sigma",
        choices=("published", "auto"),
        default="published",
        help="CertSR's smoothing sigma per column: as published (default) or chosen per column (the -auto matrix)",
    )
    p.add_argument("--out", type=Path, default=None, help="parent folder of the run (default: reports/)")
    p.add_argument("--run", dest="run_name", default=None, help="run name (default: the matrix name)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted matrix override, as for `bench run` (e.g. methods=[a,b]); repeatable",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=reproduce_command)


def reproduce_command(args: argparse.Namespace) -> int:
    from bench.config.models import check_slug
    from bench.paths import reports_dir
    from bench.report.papers import table_ids
    from bench.runner.matrix import MatrixError
    from bench.runner.reproduce import format_plan, plan_table, reproduce, summary_lines

    if args.table is None:
        print("paper tables (python -m bench reproduce TABLE --dry-run for details):")
        for line in summary_lines():
            print("  " + line)
        return 0
    if args.table not in table_ids():
        print(f"error: no paper table {args.table!r}; known: {', '.join(table_ids())}", file=sys.stderr)
        return 2
    try:
        plan = plan_table(
            args.table, sigma=args.sigma, overrides=args.overrides, estimate=args.dry_run, device=args.device
        )
    except (MatrixError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(format_plan(plan))
        return 0
    run_name = args.run_name or plan.matrix_name
    try:
        check_slug(run_name)
    except ValueError as exc:
        print(f"error: --run: {exc}", file=sys.stderr)
        return 2
    run_dir = (args.out if args.out is not None else reports_dir()) / run_name
    index, summary, left = reproduce(
        args.table,
        run_dir,
        device=args.device,
        sigma=args.sigma,
        overrides=args.overrides,
        train=args.train_missing,
        fetch=not args.no_fetch,
        progress=not args.no_progress,
    )
    if left:
        print(f"still missing ({len(left)}); their rows and cells are marked in the report:")
        for item in left:
            print(f"  {item}")
    if summary.failed:
        print(f"{len(summary.failed)} cell(s) failed (rerun to retry them)")
    print(index)
    return 1 if (summary.failed or left) else 0
