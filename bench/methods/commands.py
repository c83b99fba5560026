"""Command-line subcommands of the methods area: ``upscale`` (one image through one card) and ``methods`` (list).

``python -m bench upscale realesrgan-x4plus in.png out.png --device auto --tile 128``
``python -m bench methods [--json]``
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``upscale`` and ``methods`` subcommands (each sets ``func`` to its handler)."""
    up = subparsers.add_parser(
        "upscale",
        help="super-resolve one image with a method card",
        description="Read IN (8-bit image), super-resolve it with METHOD (a card name or a card file), write OUT.",
    )
    up.add_argument("method", metavar="METHOD", help="card name (see `methods`) or path to a card YAML")
    up.add_argument("input", metavar="IN", help="input (LR) image file")
    up.add_argument("output", metavar="OUT", help="output image file (format from the suffix)")
    up.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available; default)")
    up.add_argument("--tile", type=int, default=None, help="LR tile size (0: no tiling; default: the card's)")
    up.add_argument("--seed", type=int, default=0, help="seed of the generator of stochastic methods (0)")
    up.add_argument("--fetch", action="store_true", help="download a missing checkpoint asset first")
    up.set_defaults(func=upscale_command)

    ls = subparsers.add_parser("methods", help="list the method cards", description="List the cards in methods/.")
    ls.add_argument("--json", action="store_true", help="print one JSON object per card instead of a table")
    ls.set_defaults(func=methods_command)


def resolve_device(name: str):
    """:func:`bench.devices.resolve_device` (kept under this name for the ``upscale`` command)."""
    from bench.devices import resolve_device as resolve

    return resolve(name)


def upscale_command(args: argparse.Namespace) -> int:
    """Handler of ``upscale``; user errors (unknown card, missing checkpoint or image) raise KeyError/FileNotFoundError/
    ValueError, which ``bench.cli`` turns into one line and exit code 2."""
    import time

    import torch

    from bench.images import read_image, write_image
    from bench.methods.cards import build_method
    from bench.seeding import make_generator

    if args.tile is not None and args.tile < 0:
        raise ValueError(f"--tile must be >= 0 (0: no tiling), got {args.tile}")
    device = resolve_device(args.device)
    method = build_method(args.method, device, tile=args.tile, fetch=args.fetch)
    lr = read_image(args.input).unsqueeze(0).to(device)
    generator = make_generator(args.seed, device) if method.stochastic else None
    start = time.perf_counter()
    sr = method.super_resolve(lr, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    write_image(sr[0].cpu(), args.output)
    logger.info(
        "%s: %dx%d -> %dx%d with %s on %s (tile %s) in %.3f s",
        args.output,
        lr.shape[-1],
        lr.shape[-2],
        sr.shape[-1],
        sr.shape[-2],
        method.card.name,
        device,
        method.tile,
        seconds,
    )
    return 0


def methods_command(args: argparse.Namespace) -> int:
    """Handler of ``methods``: a table (or JSON lines) of the cards; 1 when a card does not parse."""
    import json
    import sys

    from bench.methods.cards import card_paths, cards_dir, parse_card

    rows, fixes, failed = [], [], 0
    for path in card_paths():
        try:
            card = parse_card(path)
        except (ValueError, KeyError) as exc:
            failed += 1
            print(f"error: {path}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            continue
        missing = card.missing_checkpoints()  # its own and its base's (wrapper cards)
        fixes += [f"  {card.name}: {m.fix}" for m in missing]
        rows.append(
            {
                "name": card.name,
                "title": card.title,
                "adapter": card.adapter,
                "differentiable": card.differentiable,
                "stochastic": card.stochastic,
                "checkpoint": card.checkpoint or "-",
                "available": not missing,
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 1 if failed else 0
    if not rows:
        print(f"no method cards in {cards_dir()}")
        return 1 if failed else 0
    header = ["name", "adapter", "differentiable", "stochastic", "checkpoint", "available", "title"]
    table = [[str(row[k]).lower() if isinstance(row[k], bool) else str(row[k]) for k in header] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
    for line in [header, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    if fixes:
        print("\nmissing checkpoints (a wrapper's include its base's), and the command that produces each:")
        print("\n".join(fixes))
    return 1 if failed else 0
