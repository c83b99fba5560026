"""The gallery: centred crops of the matrix's gallery image, written once per (dataset, condition[, attack]) and
method, and described by :class:`~bench.results.schema.GalleryEntry` items in the cell payload (the report reads
those, never file names).

Crops: HR, LR (nearest-upscaled), and the method's SR; for attacked cells (largest budget of each attack only) the
adversarial input and its output. Only the first seed of a method writes. Files live under
``gallery/<dataset>/<condition>[@<attack>]/``.

Every file is written atomically (temporary file, then rename) each time its cell is computed -- HR and LR too, so
they always come from the same computation as the SR beside them, never from an earlier parameter setting. A stored
cell whose crops are missing or unreadable (:meth:`Gallery.intact`) is computed again by the next run. A crop that
cannot be written (no space, no permission) raises :class:`~bench.errors.OutputError`: the run stops, the cells
stored so far intact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image

from bench.images import ImageError, write_image
from bench.paths import safe_filename
from bench.results.schema import AttackMode, GalleryEntry
from bench.runner.cells import Cell
from bench.runner.matrix import Matrix
from bench.runner.store import output_error

logger = logging.getLogger(__name__)


def gallery_folder(cell: Cell) -> str:
    """``<condition>`` for unattacked cells, ``<condition>@<attack>`` for attacked ones (largest budget)."""
    if not cell.threat.attacked:
        return safe_filename(cell.condition.name)
    return f"{safe_filename(cell.condition.name)}@{safe_filename(cell.threat.name)}"


class Gallery:
    """Decides which cells write crops and writes them.

    Args:
        matrix: its ``gallery`` section (image, size, dataset), ``scale`` and ``seeds_for``.
        run_dir: the run directory (entries hold paths relative to it).
        max_eps: the largest budget of each attack in the run (only that budget writes crops).
    """

    def __init__(self, matrix: Matrix, run_dir: Path, max_eps: Mapping[str, float]) -> None:
        self.matrix = matrix
        self.run_dir = run_dir
        self.max_eps = dict(max_eps)

    def wants(self, cell: Cell, stochastic: bool) -> bool:
        g = self.matrix.gallery
        if g is None or cell.seed != self.matrix.seeds_for(stochastic)[0]:
            return False
        if g.dataset is not None and g.dataset != cell.dataset.name:
            return False
        return not (cell.threat.attacked and cell.threat.epsilon != self.max_eps.get(cell.threat.name))

    def write(
        self,
        cell: Cell,
        stochastic: bool,
        names: Sequence[str],
        hr: torch.Tensor | None,
        lr: torch.Tensor,
        sr: torch.Tensor,
        x_adv: torch.Tensor | None = None,
        mode: AttackMode | None = None,
    ) -> list[GalleryEntry]:
        """Write the crops when ``names`` holds the gallery image of a wanted cell; return their entries (no HR crop
        when ``hr`` is None: a set without ground truth)."""
        g = self.matrix.gallery
        if not self.wants(cell, stochastic) or g.image not in names:
            return []
        i = list(names).index(g.image)
        s = self.matrix.scale
        h, w = lr.shape[-2:]
        size = min(g.size, h, w)
        top, left = (h - size) // 2, (w - size) // 2

        def lr_crop(t: torch.Tensor) -> torch.Tensor:
            crop = t[i : i + 1, :, top : top + size, left : left + size]
            return torch.nn.functional.interpolate(crop, scale_factor=s, mode="nearest")

        def hr_crop(t: torch.Tensor) -> torch.Tensor:
            return t[i : i + 1, :, top * s : (top + size) * s, left * s : (left + size) * s]

        folder = self.run_dir / "gallery" / safe_filename(cell.dataset.name) / gallery_folder(cell)
        attack = cell.threat.name if cell.threat.attacked else None
        base = {"dataset": cell.dataset.name, "condition": cell.condition.name, "attack": attack}
        entries = []

        def put(kind: str, tensor: torch.Tensor, filename: str, method: str | None) -> None:
            path = folder / filename
            try:
                write_image(tensor, path)
            except ImageError as exc:
                if isinstance(exc.__cause__, OSError):
                    raise output_error(path, exc.__cause__) from exc
                raise
            rel = path.relative_to(self.run_dir).as_posix()
            entries.append(GalleryEntry(**base, kind=kind, path=rel, method=method, mode=mode if method else None))

        if hr is not None:  # a set without ground truth has no HR crop
            put("hr", hr_crop(hr), "HR.png", None)
        put("lr", lr_crop(lr), "LR.png", None)
        if x_adv is None:
            put("sr", hr_crop(sr), f"sr-{safe_filename(cell.method)}.png", cell.method)
        else:
            stem = safe_filename(f"{cell.method}--{mode.value if mode is not None else 'attack'}")
            put("adv", lr_crop(x_adv.clamp(0, 1)), f"adv-{stem}.png", cell.method)
            put("sr_adv", hr_crop(sr), f"sr-{stem}.png", cell.method)
        return entries

    def intact(self, entries: Sequence[GalleryEntry]) -> bool:
        """Whether every crop of a stored cell's ``gallery`` entries is a complete, readable image."""
        for entry in entries:
            path = self.run_dir / entry.path
            try:
                with Image.open(path) as img:
                    img.load()
            except (OSError, ValueError, Image.DecompressionBombError):
                logger.warning("gallery crop %s is missing or unreadable; its cell will be computed again", path)
                return False
        return True
