"""Pairing HR and LR files by a manifest's patterns, so that a wrongly paired image can never be scored.

Patterns are relative paths with ``{id}`` (the image name, in the file name), ``{scale}`` (the scale being read) and
``*`` (any one folder name): ``RealSR(V3)/*/Test/{scale}/{id}_HR.png`` pairs with
``RealSR(V3)/*/Test/{scale}/{id}_LR{scale}.png``. Files whose path has a part starting with ``.`` or ``__MACOSX`` are
ignored.

The rules (each broken rule is a :class:`PairingFailure` for that image; the other images are still read):

* an HR without its LR, or an LR without its HR (when the set has ground truth), fails;
* two files matching the same ``{id}`` fail (the pairing would be ambiguous);
* the HR is modcropped (bottom/right) to a multiple of the scale when the manifest says ``modcrop: true``; otherwise
  an HR that is not a multiple fails;
* the LR must then be exactly HR/scale -- no cropping of a larger LR, ever -- or, for ``lr_at_hr_size: true``, exactly
  the (modcropped) HR size, and is then downscaled by MATLAB bicubic; the failure message names both sizes;
* a set without ground truth gives LR-only samples (``Sample.hr is None``, ``has_ground_truth`` false).

How a failure reaches the runner: the image's name is in ``dataset.names()`` like any other, and
``dataset.load(name)`` raises :class:`PairingError` (an ``ImageError``, so a ``ValueError``) whose message is the
failure's message and whose ``failure`` attribute is the :class:`PairingFailure`; ``dataset.failures()`` lists them all
up front (``dataset.items()`` yields samples and failures in name order).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from bench.data.base import Sample
from bench.images import ImageError, quantize, read_image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairingFailure:
    """An image of a dataset that cannot be scored, with the reason.

    Attributes:
        name: the image name (``{id}``), as it appears in ``dataset.names()``.
        message: one line naming the file(s) and, for size errors, both sizes.
        hr: the HR file, if any.
        lr: the LR file, if any.
    """

    name: str
    message: str
    hr: Path | None = None
    lr: Path | None = None


class PairingError(ImageError):
    """Raised by ``dataset.load(name)`` for an image that failed pairing; ``.failure`` holds the details."""

    def __init__(self, failure: PairingFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class PairEntry:
    """The files of one image: ``hr`` (``None`` without ground truth) and ``lr`` (``None`` = synthesised)."""

    name: str
    hr: Path | None
    lr: Path | None


@dataclass
class ScanResult:
    """What :func:`scan` found: entries that may load, and failures, keyed by image name."""

    entries: dict[str, PairEntry] = field(default_factory=dict)
    failures: dict[str, PairingFailure] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(set(self.entries) | set(self.failures))


def pattern_regex(pattern: str, scale: int) -> re.Pattern[str]:
    """The regular expression of a path pattern at ``scale`` (``{id}`` captured as group ``id``)."""
    out = []
    for token in re.split(r"(\{id\}|\{scale\}|\*)", pattern):
        if token == "{id}":
            out.append(r"(?P<id>[^/]+?)")
        elif token == "{scale}":
            out.append(re.escape(str(scale)))
        elif token == "*":
            out.append(r"[^/]+")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out) + r"\Z")


def _visible_files(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        if p.is_file():
            out.append(rel.as_posix())
    return sorted(out)


def _match(files: list[str], pattern: str | None, scale: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    if pattern is None:
        return {}, {}
    rx = pattern_regex(pattern, scale)
    found: dict[str, list[str]] = {}
    for rel in files:
        m = rx.match(rel)
        if m:
            found.setdefault(m.group("id"), []).append(rel)
    return {k: v[0] for k, v in found.items() if len(v) == 1}, {k: v for k, v in found.items() if len(v) > 1}


def scan(root: str | Path, hr: str | None, lr: str | None, scale: int, files: list[str] | None = None) -> ScanResult:
    """Pair the files under ``root`` by the patterns at ``scale``; partnerless and ambiguous images are failures."""
    root = Path(root)
    files = _visible_files(root) if files is None else files
    hrs, hr_dupes = _match(files, hr, scale)
    lrs, lr_dupes = _match(files, lr, scale)
    result = ScanResult()
    for name, paths in {**hr_dupes, **lr_dupes}.items():
        result.failures[name] = PairingFailure(name, f"{name}: several files match one image: {paths}")
    for name in sorted(set(hrs) | set(lrs)):
        if name in result.failures:
            continue
        h = root / hrs[name] if name in hrs else None
        lo = root / lrs[name] if name in lrs else None
        if hr is not None and h is None:
            result.failures[name] = PairingFailure(
                name, f"{name}: LR {lo} has no HR (expected a file matching {hr!r} at scale {scale})", None, lo
            )
        elif lr is not None and lo is None:
            result.failures[name] = PairingFailure(
                name, f"{name}: HR {h} has no LR (expected a file matching {lr!r} at scale {scale})", h, None
            )
        else:
            result.entries[name] = PairEntry(name, h, lo)
    return result


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc
    return h, w


def _fmt(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def size_failure(
    entry: PairEntry,
    hr_size: tuple[int, int] | None,
    lr_size: tuple[int, int] | None,
    scale: int,
    modcrop: bool,
    lr_at_hr_size: bool,
) -> PairingFailure | None:
    """The failure of an entry whose sizes break the rules (sizes are (height, width)), ``None`` when they pair."""
    if hr_size is None or lr_size is None:
        return None
    h, w = hr_size
    if not modcrop and (h % scale or w % scale):
        return PairingFailure(
            entry.name,
            f"{entry.name}: HR {entry.hr} is {_fmt(hr_size)} (HxW), not a multiple of the scale {scale}, and the "
            "manifest declares modcrop: false",
            entry.hr,
            entry.lr,
        )
    hc, wc = h - h % scale, w - w % scale
    crop_note = f" (modcropped from {_fmt(hr_size)})" if (hc, wc) != hr_size else ""
    if lr_at_hr_size:
        want, rule = hr_size, "the HR's own size (the manifest declares lr_at_hr_size: true)"
    else:
        want, rule = (hc // scale, wc // scale), f"HR / {scale}"
    if lr_size != want:
        return PairingFailure(
            entry.name,
            f"{entry.name}: LR {entry.lr} is {_fmt(lr_size)} (HxW) but must be {rule} = {_fmt(want)}; "
            f"HR {entry.hr} is {_fmt((hc, wc))}{crop_note}",
            entry.hr,
            entry.lr,
        )
    return None


def check_entry(entry: PairEntry, scale: int, modcrop: bool, lr_at_hr_size: bool) -> PairingFailure | None:
    """Read the headers of an entry's files and apply :func:`size_failure`; an unreadable file is a failure too."""
    try:
        hr_size = image_size(entry.hr) if entry.hr is not None else None
        lr_size = image_size(entry.lr) if entry.lr is not None else None
    except (ImageError, FileNotFoundError) as exc:
        return PairingFailure(entry.name, f"{entry.name}: {exc}", entry.hr, entry.lr)
    return size_failure(entry, hr_size, lr_size, scale, modcrop, lr_at_hr_size)


def load_entry(entry: PairEntry, scale: int, modcrop: bool, lr_at_hr_size: bool) -> Sample:
    """The :class:`Sample` of a paired entry (HR and LR checked again on the decoded pixels).

    Raises:
        PairingError: the sizes break the rules.
        bench.images.ImageError: a file cannot be decoded (names it).
    """
    hr = read_image(entry.hr) if entry.hr is not None else None
    lr = read_image(entry.lr) if entry.lr is not None else None
    failure = size_failure(
        entry,
        None if hr is None else tuple(hr.shape[-2:]),
        None if lr is None else tuple(lr.shape[-2:]),
        scale,
        modcrop,
        lr_at_hr_size,
    )
    if failure is not None:
        raise PairingError(failure)
    if hr is not None:
        h, w = hr.shape[-2:]
        hr = hr[..., : h - h % scale, : w - w % scale]
    if lr is not None and lr_at_hr_size:
        from bench.data.imresize import imresize

        lr = lr[..., : hr.shape[-2], : hr.shape[-1]]  # equal to the HR after the same modcrop (checked above)
        lr = quantize(imresize(lr.unsqueeze(0).double(), 1.0 / scale)).float()[0]
    return Sample(
        name=entry.name,
        hr=None if hr is None else hr.contiguous(),
        lr=None if lr is None else lr.contiguous(),
    )


def center_crop_pair(sample: Sample, crop: int, scale: int) -> Sample:
    """A centre crop of ``crop`` HR pixels (``crop // scale`` LR pixels) that keeps HR and LR aligned."""
    from bench.data.embedded import center_crop

    if sample.hr is None:
        lr = center_crop(sample.lr, crop // scale) if sample.lr is not None else None
        return Sample(sample.name, None, None if lr is None else lr.contiguous())
    full_h, full_w = sample.hr.shape[-2:]
    hr = center_crop(sample.hr, crop, scale)
    lr = sample.lr
    if lr is not None:
        top = (full_h - hr.shape[-2]) // 2 // scale
        left = (full_w - hr.shape[-1]) // 2 // scale
        lr = lr[..., top : top + hr.shape[-2] // scale, left : left + hr.shape[-1] // scale]
    return Sample(sample.name, hr.contiguous(), None if lr is None else lr.contiguous())
