"""Image I/O and the few conversions every component shares.

Convention: a batch is a ``torch.float32`` tensor of shape (N, 3, H, W), RGB, values in [0, 1]; a single image is
(3, H, W). Files are read as 8-bit RGB (grey and RGBA are converted, 16-bit is scaled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bench.errors import BadImage


class ImageError(BadImage):
    """An image file that cannot be read, or an array that is not an image."""


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 tensor in [0, 1]; ``ImageError`` names the file if it is broken."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(img, dtype=np.float32) / 65535.0
                arr = np.repeat(arr[..., None], 3, axis=2)
                return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc
    return uint8_to_tensor(np.asarray(rgb))


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


def write_image(img: torch.Tensor, path: str | Path) -> Path:
    """Write a (3, H, W) or (1, 3, H, W) image in [0, 1] as an 8-bit file (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(img)).save(path)
    return path


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
