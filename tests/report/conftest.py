"""A small hand-written run for the overview, gallery and browser tests: three methods, clean / noise / blur / JPEG and
PGD at two budgets (two attack modes for one method), a higher- and a lower-is-better metric, and a gallery.

Per-scenario means (two images at mean +- 1 for psnr, +- 0.01 for dist; the overview tests derive their expected
values from these by hand)::

    psnr            clean  noise  blur  jpeg  pgd 2/255            pgd 8/255
    sharp             30     24    26    25   20 (white-box)       16 (white-box)
    smooth            28     26    25    27   24 wb / 25 transfer  22 wb / 21 transfer
    fragile           31     28    29    30   (not attacked: partial)

    dist (lower is better): sharp 0.10 clean, 0.20 everywhere else; smooth 0.05 clean, 0.30 unattacked threats,
    0.30 white-box / 0.40 transfer; fragile 0.02 clean, 0.50 threats.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.images import write_image
from bench.results.schema import AttackMode, GalleryEntry
from bench.runner.store import Store

SPECS = {
    "psnr": {"name": "psnr", "full_reference": True, "higher_is_better": True, "crop_border": 4},
    "dist": {"name": "dist", "full_reference": True, "higher_is_better": False},
}
E2, E8 = 2 / 255, 8 / 255
# condition -> corruption as the runner records it ("blurry" is an alias of gaussian_blur)
CONDITIONS = {"clean": "clean", "noise": "gaussian_noise", "blur": "blurry", "jpeg": "jpeg"}
PSNR = {
    "sharp": {
        "clean": 30,
        "noise": 24,
        "blur": 26,
        "jpeg": 25,
        ("pgd", E2, "white-box"): 20,
        ("pgd", E8, "white-box"): 16,
    },
    "smooth": {
        "clean": 28,
        "noise": 26,
        "blur": 25,
        "jpeg": 27,
        ("pgd", E2, "white-box"): 24,
        ("pgd", E2, "transfer"): 25,
        ("pgd", E8, "white-box"): 22,
        ("pgd", E8, "transfer"): 21,
    },
    "fragile": {"clean": 31, "noise": 28, "blur": 29, "jpeg": 30},
}
DIST = {
    "sharp": {k: (0.10 if k == "clean" else 0.20) for k in PSNR["sharp"]},
    "smooth": {k: (0.05 if k == "clean" else 0.40 if k[-1:] == ("transfer",) else 0.30) for k in PSNR["smooth"]},
    "fragile": {k: (0.02 if k == "clean" else 0.50) for k in PSNR["fragile"]},
}
METHODS = list(PSNR)


def _records(method: str, key, psnr: float, dist: float) -> list[dict]:
    if isinstance(key, tuple):
        attack, eps, mode = key
        condition = "clean"
    else:
        attack, eps, mode, condition = "none", 0.0, None, key
    out = []
    for image, sign in (("im0", -1), ("im1", 1)):
        for metric, value in (("psnr", psnr + sign), ("dist", dist + 0.01 * sign)):
            out.append(
                {
                    "run": "board",
                    "method": method,
                    "dataset": "ds",
                    "image": image,
                    "condition": condition,
                    "corruption": CONDITIONS[condition],
                    "severity": 0,
                    "attack": attack,
                    "epsilon": eps,
                    "seed": 0,
                    "metric": metric,
                    "value": value,
                    "spec": SPECS[metric],
                    "status": "ok",
                    "error": None,
                    "cell": f"{method}-{key}",
                    "attack_mode": mode,
                    "attack_surrogate": "sharp" if mode == "transfer" else None,
                }
            )
    return out


def _pattern(seed: int, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g)


@pytest.fixture
def board_run(tmp_path: Path) -> Path:
    """The run described in the module docstring, with a gallery (clean, noise, clean@pgd), as a run directory."""
    store = Store(tmp_path / "board")
    keys = []
    for method in METHODS:
        for i, key in enumerate(PSNR[method]):
            cell = f"{method}-{i}"
            keys.append(cell)
            records = _records(method, key, PSNR[method][key], DIST[method][key])
            store.write(cell, {"key": cell, "status": "ok", "records": records, "labels": {}})
    matrix = {
        "name": "board",
        "scale": 4,
        "datasets": [{"name": "ds", "crop": None}],
        "methods": METHODS,
        "conditions": [{"name": c, "corruption": k, "params": {}, "severity": 0} for c, k in CONDITIONS.items()],
        "metrics": [{"name": "psnr"}, {"name": "dist"}],
        "attacks": [{"name": "none"}, {"name": "pgd", "attack": "pgd"}],
        "attack_images": 2,
        "seeds": [0],
    }
    methods = {m: {"title": m.title(), "adapter": "test"} for m in METHODS}
    info = {"run": "board", "matrix": matrix, "cells": keys, "metric_specs": list(SPECS.values()), "methods": methods}
    store.write_run_info(info)
    hr = _pattern(0)
    lr = torch.nn.functional.interpolate(hr[..., ::4, ::4], scale_factor=4, mode="nearest")
    lr[..., 0, 0] = 128 / 255
    entries: list[GalleryEntry] = []

    def crop(image: torch.Tensor, folder: str, file: str, kind: str, **extra) -> None:
        path = store.gallery_dir / "ds" / folder / file
        write_image(image, path)
        condition, _, attack = folder.partition("@")
        rel = path.relative_to(store.run_dir).as_posix()
        entries.append(GalleryEntry("ds", condition, kind, rel, attack=attack or None, **extra))

    for folder in ("clean", "noise"):
        crop(hr, folder, "HR.png", "hr")
        crop(lr, folder, "LR.png", "lr")
        for k, method in enumerate(METHODS):
            crop((hr * 0.8 + 0.1 * k).clamp(0, 1), folder, f"sr-{method}.png", "sr", method=method)
    crop(hr, "clean@pgd", "HR.png", "hr")
    crop(lr, "clean@pgd", "LR.png", "lr")
    adv = lr.clone()
    adv[..., 0, 0] += 8 / 255  # one pixel moved by 8 levels: the amplified perturbation is white there, grey elsewhere
    mode = AttackMode("white-box")
    crop(adv, "clean@pgd", "adv-sharp--white-box.png", "adv", method="sharp", mode=mode)
    crop(hr.flip(-1), "clean@pgd", "sr-sharp--white-box.png", "sr_adv", method="sharp", mode=mode)
    first = store.load(keys[0])
    first["gallery"] = [g.as_dict() for g in entries]
    store.write(keys[0], first)
    return store.run_dir
