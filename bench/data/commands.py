"""Command line of the data area: ``bench downscale IN OUT --scale 4``.

``IN`` is an image file or a folder of images; ``OUT`` is the output file or folder. Each image is downscaled with
MATLAB's bicubic ``imresize(img, 1/scale)`` on its uint8 pixels (per-axis rounding, as MATLAB on uint8), so the
result matches LR sets made with MATLAB from uint8 images (``imresize(imread(f), 1/4)``) bit for bit. With
``--double`` the image is resized as MATLAB does ``imwrite(imresize(im2double(imread(f)), 1/4))`` instead (float64,
one rounding at the end), the convention of e.g. BasicSR's ``generate_bicubic_img.m``; the two differ by at most one
grey level in a fraction of the pixels.

Input files are read by :func:`bench.images.read_array`: EXIF orientation applied, the pixel limit enforced, a
16-bit or float ([0, 1]) file converted to the 8-bit grid first (or used as it is with ``--double``); the output is
an 8-bit image (grey stays grey), written atomically.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``downscale`` subcommand to ``subparsers`` (its handler is :func:`downscale_command`)."""
    p = subparsers.add_parser(
        "downscale",
        help="MATLAB-bicubic downscaling of an image or a folder of images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", type=Path, help="image file or folder of images")
    p.add_argument("output", metavar="OUT", type=Path, help="output file (for a file IN) or folder (for a folder IN)")
    p.add_argument("--scale", type=float, default=4.0, help="downscaling factor (default 4): output = ceil(size/scale)")
    p.add_argument(
        "--modcrop", action="store_true", help="crop the bottom/right to a multiple of the scale first (SR practice)"
    )
    p.add_argument("--no-antialias", action="store_true", help="MATLAB 'Antialiasing', false")
    p.add_argument("--double", action="store_true", help="resize in float64 and round once (MATLAB on im2double input)")
    p.set_defaults(func=downscale_command)
    return p


def _downscale_file(
    src: Path, dst: Path, scale: float, modcrop: bool, antialias: bool, double: bool = False
) -> tuple[tuple, tuple]:
    import numpy as np
    import torch

    from bench.data.imresize import imresize, imresize_uint8
    from bench.images import ImageError, read_array, write_array

    arr = read_array(src, keep_grey=True)  # grey stays grey; 16-bit and float files come as float32 in [0, 1]
    if arr.dtype != np.uint8 and not double:
        # 16-bit / float input: to the 8-bit grid (im2uint8, round half up) first, so the uint8 MATLAB path applies
        logger.info("%s: %s input converted to 8 bits before resizing", src, "16-bit or float")
        arr = np.floor(np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if modcrop and float(scale).is_integer():
        s = int(scale)
        arr = arr[: arr.shape[0] - arr.shape[0] % s, : arr.shape[1] - arr.shape[1] % s]
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(
            f"image {src} is smaller than the scale {scale:g}: --modcrop leaves nothing of it "
            "(use an image at least `scale` pixels on each side, or drop --modcrop)"
        )
    if double:
        levels = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
        x = torch.from_numpy(np.ascontiguousarray(np.atleast_3d(levels).transpose(2, 0, 1)))
        y = imresize(x, 1.0 / scale, antialias=antialias).numpy().transpose(1, 2, 0)
        out = np.floor(np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # im2uint8: round half away from zero
        out = out[..., 0] if arr.ndim == 2 else out
    else:
        out = imresize_uint8(arr, 1.0 / scale, antialias=antialias)
    write_array(out, dst)
    return arr.shape[:2], out.shape[:2]


def downscale_command(args: argparse.Namespace) -> int:
    """Handler of ``bench downscale``; returns the exit code (0 ok, 1 unreadable image or failed write, 2 bad
    arguments)."""
    from bench.data.folder import list_images
    from bench.images import ImageError

    if args.scale <= 0:
        print(f"error: --scale must be positive, got {args.scale}", file=sys.stderr)
        return 2
    src: Path = args.input
    if not src.exists():
        print(f"error: {src} does not exist", file=sys.stderr)
        return 2
    jobs = [(p, args.output / p.name) for p in list_images(src)] if src.is_dir() else [(src, args.output)]
    if not jobs:
        print(f"error: no images in {src}", file=sys.stderr)
        return 2
    for s, d in jobs:
        if s.resolve() == d.resolve():
            print(f"error: refusing to overwrite the input {s}", file=sys.stderr)
            return 2
    try:
        for s, d in jobs:
            (h, w), (oh, ow) = _downscale_file(s, d, args.scale, args.modcrop, not args.no_antialias, args.double)
            print(f"{s} ({w}x{h}) -> {d} ({ow}x{oh})")
    except ImageError as exc:
        from bench.cli import error_line

        print(error_line(exc), file=sys.stderr)
        return 1
    return 0
