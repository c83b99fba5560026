"""``python -m bench``: the command line.

Each area of the package contributes its subcommands through an ``add_parser(subparsers)`` function in its
``commands`` module; the handlers import what they need lazily, so ``python -m bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bench.assets.errors import AssetError
from bench.errors import BenchError

# (module, what it adds) in the order of ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "bench.runner.commands",  # run, report
    "bench.assets.commands",  # assets list|fetch|verify
    "bench.methods.commands",  # upscale, methods
    "bench.data.commands",  # downscale
    "bench.metrics.commands",  # score
    "bench.attacks.commands",  # attack
    "bench.train.commands",  # train
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Robust real-world super-resolution benchmark: methods x datasets x corruptions x attacks.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    _setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        logging.getLogger("bench").warning("interrupted; finished cells are stored, rerun to resume")
        return 130
    except (BenchError, KeyError, FileNotFoundError, ValueError, AssetError) as exc:
        # Expected user errors (unknown names, missing files or weights, bad input): one clear line, no traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        if args.verbose:
            raise
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
