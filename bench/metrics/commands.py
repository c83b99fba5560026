"""``bench score``: score one image (pair) with a registered metric, or list the metrics.

Examples::

    python -m bench score psnr_y --sr out.png --ref hr.png --crop-border 4
    python -m bench score lpips --sr out.png --ref hr.png --json
    python -m bench score niqe --sr out.png
    python -m bench score lr_psnr_input --sr out.png --lr input.png --scale 4
    python -m bench score diversity --samples s0.png s1.png s2.png --ref hr.png --json
    python -m bench score --list

``diversity`` (the NTIRE 2021 diversity score with the samples' LR-PSNR) takes ``--samples`` (at least two: the score
compares samples) instead of ``--sr``; ``--scale`` is the SR factor of the LR-PSNR metrics and of the diversity score.
The output is valid JSON with ``--json`` whatever the inputs: a value that is not finite is an error (exit 1), never
``NaN`` on stdout.

Exit codes: 0 success, 1 an input or metric error (missing or broken file, size mismatch, unknown metric,
unavailable weights), 2 a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import math
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
    p.add_argument(
        "metric", nargs="?", help="metric name (see --list), e.g. psnr, psnr_y, ssim, lpips, niqe, lr_psnr, diversity"
    )
    p.add_argument("--list", action="store_true", help="list every metric with its spec and exit")
    p.add_argument("--sr", type=Path, help="the image to score (super-resolved output)")
    p.add_argument("--ref", type=Path, help="the ground-truth HR image (full-reference metrics)")
    p.add_argument("--lr", type=Path, help="the LR input (metrics that use it)")
    p.add_argument("--samples", type=Path, nargs="+", help="SR samples of one image (the diversity score)")
    p.add_argument("--scale", type=int, default=None, help="SR scale for LR-PSNR and the diversity score (4)")
    p.add_argument("--crop-border", type=int, default=0, help="pixels removed on each side before scoring (0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--json", action="store_true", help='print {"metric", "value", "spec"} as JSON')
    p.set_defaults(func=score_command)
    return p


def _error(message: str) -> int:
    print(f"bench score: error: {message}", file=sys.stderr)
    return 1


def _with_fix(exc: BaseException) -> str:
    """``str(exc)`` and, for the project's errors that carry one, ``; fix: ...``."""
    from bench.errors import BenchError

    fix = exc.fix if isinstance(exc, BenchError) else None
    return f"{exc}; fix: {fix}" if fix else str(exc)


def _list_metrics() -> int:
    from bench.metrics import METRICS
    from bench.metrics.diversity import diversity_specs

    for name, factory in METRICS.items():
        note = ""
        try:
            static = factory.static_spec()
            if static is not None:  # pyiqa metrics: the spec is known without importing pyiqa
                metric_spec = static
                note = "  [needs pyiqa]"
            else:
                metric = factory(pretrained=False) if factory.needs_weights else factory()
                metric_spec = metric.spec
        except (TypeError, ValueError, KeyError, OSError, ImportError) as exc:
            print(f"{name}: (spec unavailable: {exc})")
            continue
        if factory.needs_weights:  # built with random weights only to read the spec: drop that note
            metric_spec = dataclasses.replace(
                metric_spec, extra={k: v for k, v in metric_spec.extra.items() if k != "weights"}
            )
            note = f"  [weights: asset {', '.join(factory.needs_weights)}]"
        print(metric_spec.describe() + note)
    for key, spec in diversity_specs(n_samples=10).items():
        print(spec.describe() + f"  [score diversity --samples ...: {key}; samples = the number given]")
    return 0


DIVERSITY_NAMES = ("diversity", "diversity_score", "diversity_ntire21")


def _device(name: str):
    """``torch.device`` for ``name``, or an error message."""
    from bench.devices import resolve_device
    from bench.errors import ConfigError

    try:
        return resolve_device(name)
    except ConfigError as exc:
        return str(exc)


def _diversity_command(args: argparse.Namespace) -> int:
    """``bench score diversity --samples S1 S2 ... --ref HR``: NTIRE 2021 diversity score and LR-PSNR."""
    if not args.samples:
        print("bench score: error: diversity needs --samples S1.png S2.png ...", file=sys.stderr)
        return 2
    if args.ref is None:
        return _error("diversity is a full-reference score: pass --ref")
    if args.crop_border:
        return _error("diversity takes no --crop-border (the NTIRE 2021 scorer crops GT to a multiple of 8)")
    if len(args.samples) < 2:
        print(
            "bench score: error: diversity compares SR samples of one image: pass at least 2 --samples "
            f"(got {len(args.samples)}; the NTIRE 2021 challenge used 10)",
            file=sys.stderr,
        )
        return 2
    from bench.images import ImageError, read_image
    from bench.metrics.diversity import diversity_score, diversity_specs

    device = _device(args.device)
    if isinstance(device, str):
        return _error(device)
    scale = 4 if args.scale is None else args.scale
    paths = [("ref", args.ref)] + [("samples", p) for p in args.samples]
    images = []
    for role, path in paths:
        if not path.is_file():
            return _error(f"--{role}: no such file: {path}")
        try:
            images.append(read_image(path).unsqueeze(0).to(device))
        except ImageError as exc:
            return _error(f"--{role}: {_with_fix(exc)}")
    hr, samples = images[0], images[1:]
    try:
        result = diversity_score(samples, hr, scale=scale)
    except (ValueError, KeyError, OSError, ImportError, RuntimeError) as exc:  # RuntimeError: bench AssetError
        return _error(f"diversity: {_with_fix(exc)}")
    specs = diversity_specs(n_samples=len(samples), scale=scale)
    values = {k: float(v[0]) for k, v in result.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        return _error(f"diversity: {', '.join(bad)} is not a finite number ({values}); inputs {args.samples}")
    if args.json:
        print(
            json.dumps(
                {
                    "metric": "diversity",
                    "samples": len(samples),
                    "values": values,
                    "specs": {k: s.as_dict() for k, s in specs.items()},
                },
                allow_nan=False,
            )
        )
    else:
        for key, value in values.items():
            print(f"{value:.6g}\t{specs[key].describe()}")
    return 0


def score_command(args: argparse.Namespace) -> int:
    """Handler of ``bench score``; returns the exit code."""
    if args.list:
        return _list_metrics()
    if not args.metric:
        print("bench score: error: name a metric (or --list)", file=sys.stderr)
        return 2
    if args.metric.strip().lower() in DIVERSITY_NAMES:
        return _diversity_command(args)
    if args.samples:
        print("bench score: error: --samples is for the diversity score only", file=sys.stderr)
        return 2
    if args.sr is None:
        print("bench score: error: --sr is required", file=sys.stderr)
        return 2

    import torch

    from bench.images import ImageError, read_image
    from bench.metrics import METRICS

    if args.metric.strip().lower().startswith("pyiqa:") and args.metric not in METRICS:
        name = args.metric.strip()
        factory = None
    else:
        try:
            name = METRICS.canonical(args.metric)
        except KeyError as exc:
            return _error(str(exc.args[0]))
        factory = METRICS.get(name)

    device = _device(args.device)
    if isinstance(device, str):
        return _error(device)

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
            return _error(f"--{role}: {_with_fix(exc)}")

    kwargs = {"crop_border": args.crop_border}
    if args.scale is not None:
        if factory is None or "scale" not in inspect.signature(factory).parameters:
            return _error(f"{name} takes no --scale")
        kwargs["scale"] = args.scale
    try:
        if factory is None:
            from bench.metrics import build_metric

            metric = build_metric(name, **kwargs)
        else:
            metric = factory(**kwargs)
    except (ValueError, KeyError, OSError, ImportError, RuntimeError) as exc:  # RuntimeError: bench AssetError
        return _error(f"cannot build metric {name}: {_with_fix(exc)}")
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
    if not math.isfinite(value):
        return _error(f"{name} of --sr {args.sr} is not a finite number ({value})")

    if args.json:
        print(json.dumps({"metric": name, "value": value, "spec": metric.spec.as_dict()}, allow_nan=False))
    else:
        print(f"{value:.6g}\t{metric.spec.describe()}")
    return 0
