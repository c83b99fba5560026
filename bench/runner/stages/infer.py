"""Stage *infer*: the method's output on a batch -- super-resolution, or for a certified smoothed method the
prediction of :func:`bench.certify.certify` (the same noise stream as ``super_resolve``, so the same output) with
its certificate.

The generator is seeded by (cell key, first image of the batch, ``"method"``); the runner gives stochastic methods
one image per batch, so each image's output is seeded by its own name. A method output whose shape is not the HR's
raises :class:`bench.errors.PairingError`; non-finite outputs are found per image by :func:`finite_mask`.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.errors import PairingError
from bench.runner.cells import Cell
from bench.seeding import make_generator, seed_from


def method_generator(cell: Cell, first_image: str, device: torch.device) -> torch.Generator:
    return make_generator(seed_from(cell.seed_key, first_image, "method"), device)


def infer(
    method: Any, x: torch.Tensor, hr_shape: torch.Size, generator: torch.Generator, certify: Any = None
) -> tuple[torch.Tensor, Any]:
    """``(sr, certificate)``: ``sr`` (N, 3, H, W) in [0, 1]; ``certificate`` None unless ``certify`` settings given."""
    certificate = None
    if certify is not None:
        from bench.certify import certify as run_certify

        certificate = run_certify(method, x, certify.epsilons, certify.n_samples, certify.alpha, generator)
        sr = certificate.prediction
    else:
        sr = method.super_resolve(x, generator)
    if sr.shape != hr_shape:
        raise PairingError(f"method output {tuple(sr.shape)} does not match HR {tuple(hr_shape)}")
    return sr, certificate


def certify_settings(method: Any, smoothing: Any) -> Any:
    """The matrix's certification settings when ``method`` is median smoothing with a sigma, else ``None``."""
    if smoothing is None or smoothing.certify is None:
        return None
    if not method.capabilities.smoothed or method.sigma is None:
        return None
    return smoothing.certify


def finite_mask(sr: torch.Tensor) -> list[bool]:
    """Per image of the batch: whether every output value is finite."""
    return torch.isfinite(sr.flatten(1)).all(dim=1).tolist()
