"""The report's gallery: compressed thumbnails in the page, full-size PNGs as files beside it, and what to compare.

The runner stores, per (dataset, condition[@attack]), crops of the gallery image at HR size under
``<run_dir>/gallery/<dataset>/<folder>/`` (see :meth:`bench.runner.runner.Runner._gallery`): ``HR.png``, ``LR.png``
(the LR crop, nearest-upsampled), ``sr-<method>.png`` and, for attacked folders (largest budget of each attack),
``adv-<method>--<mode>.png`` (the adversarial LR input, nearest-upsampled) and ``sr-<method>--<mode>.png``.

:func:`gallery_context` turns them into groups of items. Each item has a label, a ``kind`` (``hr``, ``lr``, ``sr``,
``sr_clean``, ``adv``, ``perturbation``), a ``thumb`` (a ``data:`` URI: WebP, quality :data:`THUMB_QUALITY`, at
most :data:`THUMB_SIZE` pixels a side -- JPEG where Pillow lacks WebP) and a ``full`` source: a path relative to
``index.html`` by default, or ``None`` with ``inline=True``, where ``thumb`` is then the lossless PNG itself (a
single-file report). Attacked groups add, per entry, the **perturbation** ``x_adv - LR`` amplified to fill the
range (``0.5 + k * delta`` with ``k = 0.5 / max|delta|``, the factor in the label; written under
``<run_dir>/report_files/``) and the method's output on the clean input of the same condition when it is stored.
All items of a group are the same crop of the same image at the same size, so any two can be compared pixel for
pixel (the template's slider/toggle viewer).
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from bench.report.tables import RunData

logger = logging.getLogger(__name__)

THUMB_SIZE = 192  # pixels, the gallery's display size
THUMB_QUALITY = 80
ASSETS = "report_files"


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def thumbnail(path: Path, size: int = THUMB_SIZE, quality: int = THUMB_QUALITY) -> str:
    """A ``data:`` URI of ``path`` shrunk to at most ``size`` pixels a side (nearest, to keep pixels crisp), WebP
    (JPEG where Pillow has no WebP encoder)."""
    from PIL import Image, features

    with Image.open(path) as im:
        im = im.convert("RGB")
        if max(im.size) > size:
            scale = size / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.NEAREST)
        buf = io.BytesIO()
        fmt = "WEBP" if features.check("webp") else "JPEG"
        im.save(buf, format=fmt, quality=quality)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def perturbation(adv: Path, clean: Path) -> tuple[bytes, float]:
    """PNG bytes of ``0.5 + k * (adv - clean)`` (8-bit, ``k = 0.5 / max|adv - clean|``) and ``k``.

    ``ValueError`` when the two images differ in size (they must be crops of the same spot)."""
    from PIL import Image

    with Image.open(adv) as a, Image.open(clean) as c:
        x = np.asarray(a.convert("RGB"), dtype=np.float32) / 255.0
        y = np.asarray(c.convert("RGB"), dtype=np.float32) / 255.0
    if x.shape != y.shape:
        raise ValueError(f"{adv} ({x.shape}) and {clean} ({y.shape}) differ in size; rerun the cell to redraw them")
    delta = x - y
    peak = float(np.abs(delta).max())
    k = 0.5 / peak if peak > 0 else 1.0
    out = np.clip(0.5 + k * delta, 0.0, 1.0)
    buf = io.BytesIO()
    Image.fromarray(np.round(out * 255).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue(), k


def _entry_label(stem: str) -> str:
    return stem.replace("--", " [", 1) + ("]" if "--" in stem else "")


def gallery_context(data: RunData, inline: bool = False) -> list[dict[str, Any]]:
    """The gallery groups of a run (see the module docstring); ``[]`` when the run has no gallery."""
    root = data.run_dir / "gallery"
    if not root.is_dir():
        return []
    methods = data.order("method")
    order = {c: i for i, c in enumerate(data.order("condition"))}
    attack_rank = {a.get("name"): i for i, a in enumerate(data.info.get("matrix", {}).get("attacks") or [])}

    def rank(path: Path) -> tuple:
        condition, _, attack = path.name.partition("@")
        return (order.get(condition, 1e9), attack != "", attack_rank.get(attack, 1e9), attack)

    def item(label: str, kind: str, path: Path) -> dict[str, Any]:
        if inline:
            return {"label": label, "kind": kind, "thumb": _png_uri(path.read_bytes()), "full": None}
        return {
            "label": label,
            "kind": kind,
            "thumb": thumbnail(path),
            "full": path.relative_to(data.run_dir).as_posix(),
        }

    def ordered(stems: list[str]) -> list[str]:
        known = [s for m in methods for s in sorted(stems) if s.split("--", 1)[0] == m]
        return known + sorted(set(stems) - set(known))

    groups = []
    for dataset_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for cond_dir in sorted((p for p in dataset_dir.iterdir() if p.is_dir()), key=rank):
            condition, _, attack = cond_dir.name.partition("@")
            items = []
            if (cond_dir / "HR.png").is_file():
                items.append(item("HR", "hr", cond_dir / "HR.png"))
            lr = cond_dir / "LR.png"
            if lr.is_file():
                items.append(item("LR input (nearest)" if attack else "LR (nearest)", "lr", lr))
            srs = {p.stem[3:]: p for p in cond_dir.glob("sr-*.png")}
            clean_dir = dataset_dir / condition
            for stem in ordered(list(srs)):
                label = _entry_label(stem)
                adv = cond_dir / f"adv-{stem}.png"
                if not adv.is_file():
                    items.append(item(label, "sr", srs[stem]))
                    continue
                method = stem.split("--", 1)[0]
                if attack and (clean_dir / f"sr-{method}.png").is_file():
                    items.append(item(f"SR(LR): {method}", "sr_clean", clean_dir / f"sr-{method}.png"))
                items.append(item(f"x_adv: {label}", "adv", adv))
                if lr.is_file():
                    try:
                        png, k = perturbation(adv, lr)
                    except ValueError as exc:
                        logger.warning("gallery: %s", exc)
                    else:
                        items.append(_perturbation_item(data, cond_dir, stem, label, png, k, inline))
                items.append(item(f"SR(x_adv): {label}", "sr", srs[stem]))
            if items:
                title = condition + (f" + {attack} (largest budget)" if attack else "")
                anchor = "gallery-" + "".join(
                    ch if ch.isalnum() else "_" for ch in f"{dataset_dir.name}-{cond_dir.name}"
                )
                groups.append({"dataset": dataset_dir.name, "condition": title, "anchor": anchor, "tiles": items})
    return groups


def _perturbation_item(
    data: RunData, cond_dir: Path, stem: str, label: str, png: bytes, k: float, inline: bool
) -> dict[str, Any]:
    text = f"perturbation ×{k:.3g}: {label}"
    if inline:
        return {"label": text, "kind": "perturbation", "thumb": _png_uri(png), "full": None}
    path = data.run_dir / ASSETS / cond_dir.relative_to(data.run_dir) / f"pert-{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return {
        "label": text,
        "kind": "perturbation",
        "thumb": thumbnail(path),
        "full": path.relative_to(data.run_dir).as_posix(),
    }
