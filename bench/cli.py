"""``python -m bench``: the command line.

Each area of the package contributes its subcommands through an ``add_parser(subparsers)`` function in its
``commands`` module; the handlers import what they need lazily, so ``python -m bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from bench.errors import BenchError, OutputError

# (module, what it adds) in the order of ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "bench.runner.commands",  # run, report
    "bench.runner.reproduce_commands",  # reproduce (paper tables)
    "bench.assets.commands",  # assets list|fetch|verify
    "bench.methods.commands",  # upscale, methods
    "bench.data.commands",  # downscale
    "bench.data.datasets_commands",  # datasets list|fetch|verify|info
    "bench.metrics.commands",  # score
    "bench.attacks.commands",  # attack
    "bench.train.commands",  # train
    "bench.config.commands",  # schema
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Robust real-world super-resolution benchmark: methods x datasets x corruptions x attacks.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        metavar="N",
        help="refuse images larger than N pixels (width x height) before decoding them "
        "(default: $BENCH_MAX_PIXELS, else 100000000)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return value


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_line(exc: BaseException) -> str:
    """The one line ``main`` prints for an expected failure: ``error: what (file) [; fix: what to do]``."""
    if isinstance(exc, KeyError) and exc.args:
        message = str(exc.args[0])
    elif isinstance(exc, OSError) and not isinstance(exc, BenchError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{exc.strerror}{where}"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            message += "; free some space or choose another output folder"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            message += "; check the permissions or choose another output folder"
    elif _is_out_of_memory(exc):
        message = (
            f"out of memory ({_one_line(str(exc))[:200]}); use a smaller image, tiling (--tile), or a lower "
            "pixel limit (--max-pixels)"
        )
    elif isinstance(exc, BenchError):
        message = exc.message or str(exc)
    else:
        message = str(exc)
    fix = exc.fix if isinstance(exc, BenchError) else None
    return "error: " + _one_line(message) + (f"; fix: {_one_line(fix)}" if fix else "")


def _environment_failed(exc: BaseException) -> bool:
    """An output folder could not be written (an :class:`OutputError` from an ``OSError``: no space, no permission):
    exit 1 as for any failure of the environment, not 2 as for a user's mistake."""
    return isinstance(exc, OutputError) and isinstance(exc.__cause__, OSError)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


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
        if args.max_pixels is not None:
            from bench.images import set_max_pixels

            set_max_pixels(args.max_pixels)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        logging.getLogger("bench").warning("interrupted; finished cells are stored, rerun to resume")
        return 130
    except (BenchError, KeyError, FileNotFoundError, ValueError) as exc:
        # Expected user errors (unknown names, missing files or weights, bad input, a tampered asset, an image over
        # the size limit): one clear line with the fix, no traceback.
        print(error_line(exc), file=sys.stderr)
        if args.verbose:
            raise
        return 1 if _environment_failed(exc) else 2
    except (OSError, MemoryError) as exc:
        # The environment failed (no space left, no permission to write, out of memory): one line, exit 1.
        print(error_line(exc), file=sys.stderr)
        if args.verbose:
            raise
        return 1
    except RuntimeError as exc:
        if not _is_out_of_memory(exc):
            raise
        print(error_line(exc), file=sys.stderr)
        if args.verbose:
            raise
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
