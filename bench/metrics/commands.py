"""``bench score``: score one image (pair) with a registered metric, or list the metrics.

Examples::

    python -m bench score psnr_y --sr out.png --ref hr.png --crop-border 4
    python -m bench score lpips --sr out.png --ref hr.png --json
    python -m bench score --list

Exit codes: 0 success, 1 an input or metric error (missing or broken file, size mismatch, unknown metric,
unavailable weights), 2 a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``score`` subcommand to a ``bench`` CLI's subparsers."""
    p = subparsers.add_parser(
        "score",
        help="score an image with a metric (PSNR, SSIM, LPIPS, ...)",
        description="Score SR against a reference with one registered metric, or --list the metrics and their specs.",
    )
    p.add_argument("metric", nargs="?", help="metric name (see --list), e.g. psnr, psnr_y, ssim, lpips")
    p.add_argument("--list", action="store_true", help="list every metric with its spec and exit")
    p.add_argument("--sr", type=Path, help="the image to score (super-resolved output)")
    p.add_argument("--ref", type=Path, help="the ground-truth HR image (full-reference metrics)")
    p.add_argument("--lr", type=Path, help="the LR input (metrics that use it)")
    p.add_argument("--crop-border", type=int, default=0, help="pixels removed on each side before scoring (0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--json", action="store_true", help='print {"metric", "value", "spec"} as JSON')
    p.set_defaults(func=score_command)
    return p


def _error(message: str) -> int:
    print(f"bench score: error: {message}", file=sys.stderr)
    return 1


def _list_metrics() -> int:
    from bench.metrics import METRICS

    for name, factory in METRICS.items():
        try:
            metric = factory(pretrained=False) if getattr(factory, "needs_weights", ()) else factory()
        except (TypeError, ValueError, KeyError, OSError, ImportError) as exc:
            print(f"{name}: (spec unavailable: {exc})")
            continue
        spec = metric.spec
        note = ""
        if factory.needs_weights:  # built with random weights only to read the spec: drop that note
            spec = dataclasses.replace(spec, extra={k: v for k, v in spec.extra.items() if k != "weights"})
            note = f"  [weights: asset {', '.join(factory.needs_weights)}]"
        print(spec.describe() + note)
    return 0


def score_command(args: argparse.Namespace) -> int:
    """Handler of ``bench score``; returns the exit code."""
    if args.list:
        return _list_metrics()
    if not args.metric:
        print("bench score: error: name a metric (or --list)", file=sys.stderr)
        return 2
    if args.sr is None:
        print("bench score: error: --sr is required", file=sys.stderr)
        return 2

    import torch

    from bench.images import ImageError, read_image
    from bench.metrics import METRICS

    try:
        name = METRICS.canonical(args.metric)
    except KeyError as exc:
        return _error(str(exc.args[0]))
    factory = METRICS.get(name)

    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        return _error(f"bad --device {args.device!r}: {exc}")
    if device.type == "cuda" and not torch.cuda.is_available():
        return _error("--device cuda asked for, but no CUDA device is available")

    images: dict[str, torch.Tensor | None] = {}
    for role, path in (("sr", args.sr), ("ref", args.ref), ("lr", args.lr)):
        if path is None:
            images[role] = None
            continue
        if not path.is_file():
            return _error(f"--{role}: no such file: {path}")
        try:
            images[role] = read_image(path).unsqueeze(0).to(device)
        except ImageError as exc:
            return _error(f"--{role}: {exc}")

    try:
        metric = factory(crop_border=args.crop_border)
    except (ValueError, KeyError, OSError, ImportError, RuntimeError) as exc:  # RuntimeError: bench AssetError
        return _error(f"cannot build metric {name}: {exc}")
    metric = metric.to(device)
    if metric.spec.full_reference and images["ref"] is None:
        return _error(f"{name} is a full-reference metric: pass --ref")
    sr, ref = images["sr"], images["ref"]
    if ref is not None and sr.shape != ref.shape:
        return _error(
            f"size mismatch: --sr {args.sr} is {sr.shape[-1]}x{sr.shape[-2]}, "
            f"--ref {args.ref} is {ref.shape[-1]}x{ref.shape[-2]} (width x height)"
        )
    try:
        with torch.no_grad():
            value = float(metric(sr, ref, images["lr"])[0])
    except ValueError as exc:
        return _error(str(exc))

    if args.json:
        print(json.dumps({"metric": name, "value": value, "spec": metric.spec.as_dict()}))
    else:
        print(f"{value:.6g}\t{metric.spec.describe()}")
    return 0
