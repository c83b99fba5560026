"""``python -m bench run`` (and, through :mod:`bench.report.commands`, ``python -m bench report``).

``run --matrix smoke|default|full|PATH [--device auto|cpu|cuda] [--out DIR] [--run NAME] [--set key=value ...]
[--precision auto|fp32|bf16] [--compile false|true|auto] [--dry-run]`` computes the matrix's pending cells into
``DIR/NAME`` (default ``reports/<matrix name>``), renders the report and prints the path of its ``index.html``.
Under ``torchrun`` every rank computes its shard of the cells; rank 0 waits for the others (a gloo barrier) and
renders. Exit code: 0 when every cell is stored with status ok, 1 when a cell failed (after finishing the others) or
the run folder cannot be written (checked before any cell is computed; no space left stops the run, the cells stored
so far intact), 2 for a matrix that does not validate or a run folder that another run holds (``<run>/run.lock``,
``run.rank<N>.lock``: a single run and the ranks of a sharded one exclude each other, :mod:`bench.runner.lock`).
``--precision`` overrides the matrix's ``precision:`` (as ``--set precision=...`` would), ``--compile`` its
``compile:``; ``--dry-run`` prints the cost plan only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``report`` to the CLI."""
    p = subparsers.add_parser(
        "run",
        help="run a matrix of methods x datasets x conditions (resumable)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--matrix", default="smoke", help="packaged matrix name (smoke, default, full) or a YAML path")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--out", type=Path, default=None, help="parent folder of the run (default: reports/)")
    p.add_argument("--run", dest="run_name", default=None, help="run name (default: the matrix name)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override applied before validation, e.g. conditions.noise.params.sigma=0.05 (repeatable)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="override the matrix's precision: auto (bf16+channels_last behind the accuracy guard on CUDA, fp32 on "
        "CPU), fp32, or bf16 on any device; the precision used is stamped on every row",
    )
    p.add_argument(
        "--compile",
        choices=("false", "true", "auto"),
        default=None,
        help="override the matrix's compile: run the bf16 fast path through torch.compile (true: wherever it runs, "
        "auto: on CUDA only); stamped as +compile on every row; a compile error falls back to the eager fast path",
    )
    p.add_argument("--no-report", action="store_true", help="only compute cells; render later with `bench report`")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the cost plan (cells, forwards, backwards, FLOPs, estimated time from a short probe) and exit",
    )
    p.set_defaults(func=run_command)

    from bench.report import commands as report_commands

    report_commands.add_parser(subparsers)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _barrier(world: int) -> None:
    """Wait for every rank (gloo process group from the torchrun environment); no-op for one process."""
    if world <= 1:
        return
    import torch.distributed as dist

    if not dist.is_available():
        logger.warning("torch.distributed is not available; rank 0 will not wait for the others")
        return
    from datetime import timedelta

    created = not dist.is_initialized()
    if created:  # ranks may finish hours apart on a full matrix
        dist.init_process_group(backend="gloo", timeout=timedelta(days=2))
    dist.barrier()
    if created:
        dist.destroy_process_group()


def run_command(args: argparse.Namespace) -> int:
    from bench.config.models import check_slug
    from bench.errors import OutputError
    from bench.paths import reports_dir
    from bench.runner.matrix import MatrixError, load_matrix

    try:
        overrides = list(args.overrides)
        if getattr(args, "precision", None) is not None:  # the same path as --set precision=...
            overrides.append(f"precision={args.precision}")
        if getattr(args, "compile", None) is not None:  # the same path as --set compile=...
            overrides.append(f"compile={args.compile}")
        matrix = load_matrix(args.matrix, overrides=overrides)
    except MatrixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "dry_run", False):
        from bench.runner.cost import plan_matrix

        print(plan_matrix(matrix, args.device).format())
        return 0
    run_name = args.run_name or matrix.name
    try:  # the run folder is <out>/<run name>: a name like ../x must not write outside --out
        check_slug(run_name)
    except ValueError as exc:
        print(f"error: --run: {exc}", file=sys.stderr)
        return 2
    run_dir = (args.out if args.out is not None else reports_dir()) / run_name
    rank, world = _distributed()
    try:
        return _run_locked(args, matrix, run_dir, run_name, rank, world)
    except OutputError as exc:  # the environment failed (no space, no permission), as in every command: exit 1
        from bench.cli import error_line

        print(error_line(exc), file=sys.stderr)
        return 1


def _run_locked(args: argparse.Namespace, matrix, run_dir: Path, run_name: str, rank: int, world: int) -> int:
    from bench.runner.lock import run_lock
    from bench.runner.runner import run_matrix

    with run_lock(run_dir, rank, world):  # one run (or the ranks of one) per folder, from its first cell to its report
        summary = run_matrix(
            matrix,
            run_dir,
            run_name=run_name,
            device=args.device,
            rank=rank,
            world_size=world,
            progress=not args.no_progress,
        )
        _barrier(world)
        if summary.failed:
            print(f"{len(summary.failed)} cell(s) failed (rerun to retry them):")
            for label in summary.failed:
                print(f"  {label}")
        if rank == 0 and not args.no_report:
            from bench.report.html import write_report

            index = write_report(run_dir)
            print(index)
    return summary.exit_code
