"""The report's gallery: compressed thumbnails in the page, full-size PNGs as files beside it, and what to compare.

The runner stores, per (dataset, condition[, attack]), crops of the gallery image at HR size and describes each one
by a :class:`~bench.results.schema.GalleryEntry` in the cell payload (:mod:`bench.runner.stages.gallery`): HR, LR (the
LR crop, nearest-upsampled), each method's SR and, for attacked cells (largest budget of each attack), the adversarial
LR input (nearest-upsampled) and the output on it, with the attack's mode.

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

from bench.atomic import atomic_write
from bench.report.tables import RunData
from bench.results.schema import GalleryEntry

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


def gallery_context(data: RunData, inline: bool = False) -> list[dict[str, Any]]:
    """The gallery groups of a run (see the module docstring); ``[]`` when the run has no gallery.

    Built from the cells' :class:`~bench.results.schema.GalleryEntry` items (dataset, condition, attack, kind, method,
    mode and path as data): no file or folder name is parsed. Entries whose file is gone are left out."""
    methods = {m: i for i, m in enumerate(data.order("method"))}
    order = {c: i for i, c in enumerate(data.order("condition"))}
    attack_rank = {a: i for i, a in enumerate(data.info.matrix.names("attack"))}
    groups_by_key: dict[tuple[str, str, str], dict[str, GalleryEntry]] = {}
    for payload in data.payloads:
        for g in payload.gallery:
            if (data.run_dir / g.path).is_file():
                groups_by_key.setdefault((g.dataset, g.condition, g.attack or ""), {})[g.path] = g

    def item(label: str, kind: str, path: Path) -> dict[str, Any]:
        if inline:
            return {"label": label, "kind": kind, "thumb": _png_uri(path.read_bytes()), "full": None}
        return {
            "label": label,
            "kind": kind,
            "thumb": thumbnail(path),
            "full": path.relative_to(data.run_dir).as_posix(),
        }

    def by_method(entries: list[GalleryEntry]) -> list[GalleryEntry]:
        return sorted(
            entries, key=lambda g: (methods.get(g.method, 1e9), g.method or "", g.mode.value if g.mode else "")
        )

    def rank(key: tuple[str, str, str]) -> tuple:
        dataset, condition, attack = key
        return (dataset, order.get(condition, 1e9), attack != "", attack_rank.get(attack, 1e9), attack)

    groups = []
    for key in sorted(groups_by_key, key=rank):
        dataset, condition, attack = key
        entries = list(groups_by_key[key].values())
        kinds: dict[str, list[GalleryEntry]] = {}
        for g in entries:
            kinds.setdefault(g.kind, []).append(g)
        items = []
        for g in kinds.get("hr", [])[:1]:
            items.append(item("HR", "hr", data.run_dir / g.path))
        lr = kinds.get("lr", [])[:1]
        for g in lr:
            items.append(item("LR input (nearest)" if attack else "LR (nearest)", "lr", data.run_dir / g.path))
        for g in by_method(kinds.get("sr", [])):
            items.append(item(g.method or "SR", "sr", data.run_dir / g.path))
        clean = {g.method: g for g in groups_by_key.get((dataset, condition, ""), {}).values() if g.kind == "sr"}
        outputs = {(g.method, g.mode): g for g in kinds.get("sr_adv", [])}
        for adv in by_method(kinds.get("adv", [])):
            label = adv.method if adv.mode is None else f"{adv.method} [{adv.mode.value}]"
            if adv.method in clean:
                items.append(item(f"SR(LR): {adv.method}", "sr_clean", data.run_dir / clean[adv.method].path))
            items.append(item(f"x_adv: {label}", "adv", data.run_dir / adv.path))
            if lr:
                try:
                    png, k = perturbation(data.run_dir / adv.path, data.run_dir / lr[0].path)
                except ValueError as exc:
                    logger.warning("gallery: %s", exc)
                else:
                    items.append(_perturbation_item(data, adv, label, png, k, inline))
            out = outputs.get((adv.method, adv.mode))
            if out is not None:
                items.append(item(f"SR(x_adv): {label}", "sr", data.run_dir / out.path))
        if items:
            title = condition + (f" + {attack} (largest budget)" if attack else "")
            folder = f"{dataset}-{condition}" + (f"@{attack}" if attack else "")
            anchor = "gallery-" + "".join(ch if ch.isalnum() else "_" for ch in folder)
            groups.append({"dataset": dataset, "condition": title, "anchor": anchor, "tiles": items})
    return groups


def _perturbation_item(
    data: RunData, adv: GalleryEntry, label: str, png: bytes, k: float, inline: bool
) -> dict[str, Any]:
    text = f"perturbation ×{k:.3g}: {label}"
    if inline:
        return {"label": text, "kind": "perturbation", "thumb": _png_uri(png), "full": None}
    adv_path = Path(adv.path)
    path = atomic_write(data.run_dir / ASSETS / adv_path.parent / f"pert-{adv_path.stem}.png", png)
    return {
        "label": text,
        "kind": "perturbation",
        "thumb": thumbnail(path),
        "full": path.relative_to(data.run_dir).as_posix(),
    }
