"""A dataset read from a folder of HR images, optionally with a folder of matching LR images (real-world sets).

Files are taken in name order; images are read as 8-bit RGB (``bench.images.read_image``). LR files are paired with HR
files by stem: ``0801.png`` matches ``0801.png``, ``0801x4.png``, ``0801_x4.png``, ``0801_LR.png`` or ``0801_lr.png``
(any image suffix). The HR is modcropped to the scale; a given LR must be at least (H/scale, W/scale) and is cropped to
exactly that (its bottom/right, like modcrop).

Example::

    ds = FolderDataset("datasets/ntire20/track1-valid-gt", lr_dir="datasets/ntire20/Corrupted-va-x", scale=4)
    for sample in ds: ...   # Sample(name="0801", hr=(3, H, W), lr=(3, H/4, W/4))
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench.data import DATASETS
from bench.data.base import Dataset, Sample
from bench.data.embedded import center_crop
from bench.images import ImageError, modcrop, read_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _lr_candidates(stem: str, scale: int) -> tuple[str, ...]:
    return (stem, f"{stem}x{scale}", f"{stem}_x{scale}", f"{stem}_LR", f"{stem}_lr")


class FolderDataset(Dataset):
    """HR images from ``hr_dir`` (and their LR from ``lr_dir`` when given).

    Args:
        hr_dir: folder of HR images.
        lr_dir: folder of LR images paired by stem; ``None`` = the runner synthesises LR with MATLAB bicubic.
        scale: the SR factor; HR is modcropped to it.
        crop: optional centre crop of the HR (a multiple of ``scale``); the LR is cropped at the same place.
        name: dataset name for records (default: the folder's name).

    Raises:
        FileNotFoundError: a folder is missing, empty, or an HR image has no LR partner.
        bench.images.ImageError: (on load) a file that cannot be decoded, or an LR of the wrong size; names the file.
    """

    def __init__(
        self,
        hr_dir: str | Path,
        lr_dir: str | Path | None = None,
        scale: int = 4,
        crop: int | None = None,
        name: str | None = None,
    ) -> None:
        if crop is not None and (crop <= 0 or crop % scale):
            raise ValueError(f"crop must be a positive multiple of the scale {scale}, got {crop}")
        self.hr_dir = Path(hr_dir)
        self.lr_dir = Path(lr_dir) if lr_dir is not None else None
        self.scale = scale
        self.crop = crop
        self.name = name or self.hr_dir.name
        hr_files = list_images(self.hr_dir)
        if not hr_files:
            raise FileNotFoundError(f"no image files in {self.hr_dir}")
        stems = [p.stem for p in hr_files]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise ValueError(f"{self.hr_dir}: several files share the stems {dupes}")
        self._hr = {p.stem: p for p in hr_files}
        self._lr: dict[str, Path] = {}
        if self.lr_dir is not None:
            lr_by_stem = {p.stem: p for p in list_images(self.lr_dir)}
            missing = []
            for stem in self._hr:
                match = next((lr_by_stem[c] for c in _lr_candidates(stem, scale) if c in lr_by_stem), None)
                if match is None:
                    missing.append(stem)
                else:
                    self._lr[stem] = match
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise FileNotFoundError(
                    f"{len(missing)} HR images of {self.hr_dir} have no LR in {self.lr_dir}: {shown}"
                )
        kind = "HR/LR pairs" if self.lr_dir else "HR images (LR = MATLAB bicubic)"
        where = f", centre-cropped to {crop}x{crop} HR" if crop else ""
        self.description = f"{len(self._hr)} {kind} from {self.hr_dir}, x{scale}{where}"

    def names(self) -> list[str]:
        return list(self._hr)

    def load(self, name: str) -> Sample:
        if name not in self._hr:
            raise KeyError(f"{name!r} is not in {self.hr_dir}")
        return _load_pair(self._hr[name], self._lr.get(name), self.scale, self.crop)

    def __repr__(self) -> str:
        return f"FolderDataset({str(self.hr_dir)!r}, lr_dir={self.lr_dir}, scale={self.scale}, crop={self.crop})"


def _load_pair(hr_path: Path, lr_path: Path | None, scale: int, crop: int | None) -> Sample:
    full = read_image(hr_path)
    hr = modcrop(full, scale)
    if hr.shape[-2] == 0 or hr.shape[-1] == 0:
        raise ImageError(
            f"HR image {hr_path} is {full.shape[-1]}x{full.shape[-2]} (W x H), smaller than the scale {scale}: "
            f"it has no x{scale} LR pixel; remove it from the folder or use a smaller scale"
        )
    lr = None
    if lr_path is not None:
        lr = read_image(lr_path)
        h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
        if lr.shape[-2] < h or lr.shape[-1] < w:
            raise ImageError(
                f"LR image {lr_path} is {lr.shape[-2]}x{lr.shape[-1]}, smaller than HR {hr_path} / {scale} ({h}x{w})"
            )
        lr = lr[..., :h, :w]
    if crop is not None:
        full_h, full_w = hr.shape[-2:]
        hr = center_crop(hr, crop, scale)
        if lr is not None:
            top = (full_h - hr.shape[-2]) // 2 // scale  # center_crop's offset, in LR pixels
            left = (full_w - hr.shape[-1]) // 2 // scale
            lr = lr[..., top : top + hr.shape[-2] // scale, left : left + hr.shape[-1] // scale]
    return Sample(name=hr_path.stem, hr=hr.contiguous(), lr=None if lr is None else lr.contiguous())


@DATASETS.register("folder")
def folder(
    path: str | Path, lr_path: str | Path | None = None, scale: int = 4, crop: int | None = None
) -> FolderDataset:
    """A :class:`FolderDataset` of the HR images in ``path`` (and LR images in ``lr_path``)."""
    return FolderDataset(path, lr_dir=lr_path, scale=scale, crop=crop)
