"""Image I/O and the few conversions every component shares.

Convention: a batch is a ``torch.float32`` tensor of shape (N, 3, H, W), RGB, values in [0, 1]; a single image is
(3, H, W).

Reading (:func:`read_array`, :func:`read_image`) is strict rather than silently wrong:

- 8-bit files (grey, palette, RGB, RGBA, CMYK, ...) are read as 8-bit RGB (alpha dropped);
- 16-bit greyscale (Pillow modes ``I;16*``, and ``I`` with values in [0, 65535]) is scaled by 1/65535; 16-bit RGB
  PNGs are decoded by Pillow to their high byte (within one 8-bit level of the rounded value);
- 32-bit float files (mode ``F``, e.g. float TIFF) are kept as they are when every value is in [0, 1]; any other
  range, NaN or infinity is refused (the scale of such a file is unknown);
- the EXIF orientation tag is applied (a phone photo reads upright, as viewers show it);
- an image with more than :func:`max_pixels` pixels (``$BENCH_MAX_PIXELS``, ``python -m bench --max-pixels N``,
  default 100 megapixels) is refused from its header, before it is decoded; so is a decompression bomb.

Every refusal is an :class:`ImageError` naming the file. Writing (:func:`write_image`, :func:`write_array`) goes
through a temporary file renamed into place, so a full disk or a crash never leaves a truncated image under the
final name; a failed write is an :class:`ImageError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from bench.errors import BadImage

MAX_PIXELS_ENV = "BENCH_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000  # 10000 x 10000; a float32 RGB tensor of that size is 1.2 GB
_EXIF_ORIENTATION = 0x0112
_GREY_MODES = ("1", "L", "LA", "La")
_INT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageError(BadImage):
    """An image file that cannot be read or written, or an array that is not an image (the message names it)."""


def max_pixels() -> int:
    """The largest image (width x height) the readers accept: ``$BENCH_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw)) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ImageError(f"${MAX_PIXELS_ENV}={raw!r} is not a positive number of pixels", fix=f"unset {MAX_PIXELS_ENV}")
    return value


def set_max_pixels(value: int | None) -> None:
    """Set the pixel limit of this process and the processes it starts (``None``: back to the default)."""
    if value is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ImageError(f"the pixel limit must be a positive int, got {value!r}")
    os.environ[MAX_PIXELS_ENV] = str(value)


def _limit_fix() -> str:
    return f"pass a smaller image, or raise the limit: {MAX_PIXELS_ENV}=N or python -m bench --max-pixels N"


def _open(path: Path) -> Image.Image:
    """``Image.open`` with the size limit checked on the header (nothing decoded yet); ``ImageError`` names the file."""
    limit = max_pixels()
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is not None and pillow_limit < limit:
        Image.MAX_IMAGE_PIXELS = limit  # Pillow's own bomb check must not be stricter than the configured limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is the one that counts
            img = Image.open(path)
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refusing image {path}: {exc}", fix=_limit_fix()) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc
    w, h = img.size
    if w * h > limit:
        img.close()
        raise ImageError(
            f"image {path} is {w}x{h} ({w * h} pixels), over the limit of {limit} pixels", fix=_limit_fix()
        )
    if w == 0 or h == 0:
        img.close()
        raise ImageError(f"image {path} is empty ({w}x{h})")
    return img


def _orient(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (1-8), if any."""
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # an unreadable EXIF block: keep the pixels as stored
        return img
    if orientation in (None, 1):
        return img
    return ImageOps.exif_transpose(img)


def _high_depth(img: Image.Image, path: Path) -> np.ndarray | None:
    """Float32 [0, 1] (H, W) pixels of a 16-bit integer or 32-bit float greyscale image; None for other modes."""
    if img.mode in _INT16_MODES:
        return np.asarray(img).astype(np.float32) / 65535.0
    if img.mode == "I":
        arr = np.asarray(img)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise ImageError(
                f"image {path} is a 32-bit integer image with values in [{lo}, {hi}]; only 8- and 16-bit integer "
                "images are read (save it as an 8- or 16-bit PNG)"
            )
        return arr.astype(np.float32) / 65535.0
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ImageError(f"image {path} is a float image holding NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"image {path} is a float image with values in [{lo:.6g}, {hi:.6g}]; float images must be in [0, 1] "
                "(rescale it, or save it as an 8- or 16-bit PNG)"
            )
        return arr.copy()
    return None


def read_array(path: str | Path, *, keep_grey: bool = False) -> np.ndarray:
    """Read an image file as a numpy array, oriented by its EXIF tag, within the pixel limit.

    Args:
        path: the image file.
        keep_grey: return greyscale images as (H, W) instead of (H, W, 3).

    Returns:
        (H, W, 3) (or (H, W) for grey with ``keep_grey``): ``uint8`` for 8-bit files, ``float32`` in [0, 1] for
        16-bit and float files (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ImageError: a file that is not a readable image, over the limit, or of an unsupported depth or range.
    """
    path = Path(path)
    img = _open(path)
    try:
        with img:
            img.load()
            oriented = _orient(img)
            high = _high_depth(oriented, path)
            if high is not None:
                return high if keep_grey else np.repeat(high[..., None], 3, axis=2)
            mode = "L" if keep_grey and oriented.mode in _GREY_MODES else "RGB"
            return np.asarray(oriented.convert(mode))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refusing image {path}: {exc}", fix=_limit_fix()) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 tensor in [0, 1] (:func:`read_array`'s rules); ``ImageError`` names
    the file if it is broken, too large or of an unsupported kind."""
    arr = read_array(path)
    if arr.dtype == np.uint8:
        return uint8_to_tensor(arr)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


def uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) uint8 -> (3, H, W) float32 in [0, 1]."""
    if arr.dtype != np.uint8:
        raise ImageError(f"expected uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"expected (H, W, 3), got {arr.shape}")
    arr = arr[..., :3]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float() / 255.0


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded half away from zero like MATLAB."""
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ImageError(f"to_uint8 takes one image, got a batch of {img.shape[0]}")
        img = img[0]
    if img.ndim != 3 or img.shape[0] != 3:
        raise ImageError(f"expected (3, H, W), got {tuple(img.shape)}")
    arr = img.detach().float().cpu().clamp(0, 1).mul(255.0).add(0.5).floor().to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid (what saving as PNG and reading back does), keeping the tensor layout."""
    return img.clamp(0, 1).mul(255.0).add(0.5).floor().div(255.0)


def _image_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot write {path}: unknown image suffix {path.suffix!r}", fix="use .png, .jpg, .bmp, .tif")
    return fmt


def write_array(arr: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W) or (H, W, 3) ``uint8`` array as an image file (format from the suffix), atomically.

    The pixels go to a temporary file in the same folder, renamed over ``path`` once complete: a full disk or a crash
    never leaves a truncated image under the final name. Raises :class:`ImageError` naming the file when the folder
    cannot be created or written (permissions, no space left, ...).
    """
    path = Path(path)
    fmt = _image_format(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(tmp, format=fmt)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = exc.strerror or str(exc)
        fix = "check the folder's permissions and free space, or choose another path"
        raise ImageError(f"cannot write {path}: {reason}", fix=fix) from exc
    return path


def write_image(img: torch.Tensor, path: str | Path) -> Path:
    """Write a (3, H, W) or (1, 3, H, W) image in [0, 1] as an 8-bit file (format from the suffix), atomically
    (:func:`write_array`)."""
    return write_array(to_uint8(img), path)


def modcrop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right so that H and W are multiples of ``scale`` (works on (..., H, W))."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def check_batch(x: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate the (N, 3, H, W) float layout; returns ``x`` unchanged."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ImageError(f"{name}: expected a (N, 3, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ImageError(f"{name}: expected a float tensor in [0, 1], got {x.dtype}")
    return x
