"""A dataset read from a folder of HR images, optionally with a folder of matching LR images (real-world sets).

Files are taken in name order; images are read as 8-bit RGB (``bench.images.read_image``). LR files are paired with HR
files by stem: ``0801.png`` matches ``0801.png``, ``0801x4.png``, ``0801_x4.png``, ``0801_LR.png`` or ``0801_lr.png``
(any image suffix). The HR is modcropped to the scale; a given LR must be exactly (H/scale, W/scale) after that modcrop
-- an LR of any other size (one stored at HR size, say) is never cropped: loading that image raises
:class:`~bench.data.pairing.PairingError` naming both sizes. An HR without an LR stays in ``names()`` and fails the same
way when loaded, so the runner records a failure row for it and goes on with the others. For real datasets with
their own file names (RealSR's ``*_HR``/``*_LR4``, ...), use their manifests (:mod:`bench.data.catalog`).

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
from bench.data.pairing import PairEntry, PairingError, PairingFailure, check_entry, size_failure
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
        FileNotFoundError: a folder is missing or empty, or no HR image at all has an LR partner.
        bench.data.pairing.PairingError: (on load) an HR without LR, or an LR that is not exactly HR/scale.
        bench.images.ImageError: (on load) a file that cannot be decoded; names the file.
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
            if missing and not self._lr:
                raise FileNotFoundError(f"no HR image of {self.hr_dir} has an LR in {self.lr_dir} (paired by stem)")
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                logger.warning("%d HR images of %s have no LR in %s: %s", len(missing), self.hr_dir, self.lr_dir, shown)
        kind = "HR/LR pairs" if self.lr_dir else "HR images (LR = MATLAB bicubic)"
        where = f", centre-cropped to {crop}x{crop} HR" if crop else ""
        self.description = f"{len(self._hr)} {kind} from {self.hr_dir}, x{scale}{where}"

    def names(self) -> list[str]:
        return list(self._hr)

    def load(self, name: str) -> Sample:
        if name not in self._hr:
            raise KeyError(f"{name!r} is not in {self.hr_dir}")
        if self.lr_dir is not None and name not in self._lr:
            raise PairingError(
                PairingFailure(name, f"{name}: HR {self._hr[name]} has no LR in {self.lr_dir}", self._hr[name], None)
            )
        return _load_pair(self._hr[name], self._lr.get(name), self.scale, self.crop)

    def failures(self) -> list[PairingFailure]:
        """HR images without LR, and pairs whose sizes break the rule (read from the files' headers)."""
        if self.lr_dir is None:
            return []
        out = []
        for name, hr in self._hr.items():
            lr = self._lr.get(name)
            if lr is None:
                out.append(PairingFailure(name, f"{name}: HR {hr} has no LR in {self.lr_dir}", hr, None))
            elif (f := check_entry(PairEntry(name, hr, lr), self.scale, True, False)) is not None:
                out.append(f)
        return out

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
        entry = PairEntry(hr_path.stem, hr_path, lr_path)
        failure = size_failure(entry, tuple(full.shape[-2:]), tuple(lr.shape[-2:]), scale, True, False)
        if failure is not None:
            raise PairingError(failure)
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
