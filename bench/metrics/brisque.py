"""BRISQUE (``brisque``), a native port of the authors' release with its LIVE-trained SVR model.

Paper: A. Mittal, A. K. Moorthy, A. C. Bovik, "No-Reference Image Quality Assessment in the Spatial Domain", IEEE
Transactions on Image Processing 21(12), 2012. Reference implementation: the authors' MATLAB release
(``BRISQUE_release.zip``: ``brisquescore.m``, ``brisque_feature.m``, libsvm's ``svm-scale``/``svm-predict`` with
``allrange``/``allmodel``, trained on the whole LIVE IQA database), the asset ``brisque-live`` (an RBF epsilon-SVR
with 774 support vectors, gamma 0.05, and the ``svm-scale`` ranges; :mod:`bench.assets.libsvm`). This is *not*
MATLAB's built-in ``brisque`` (MathWorks' own model, the ``brisque_matlab`` row of the calibration set).

Computation, per image, in float64:

1. the image is rounded to the 8-bit grid, ``crop_border`` pixels are removed, and it is converted with MATLAB
   ``rgb2gray`` rounded to uint8 (``brisquescore.m`` does ``rgb2gray(uint8(im))``), kept on [0, 255];
2. at each of two scales, MSCN coefficients with the 7x7 Gaussian (sigma 7/6, replicate borders) over the whole
   image (:func:`bench.metrics.nss.mscn`), then 18 features: the GGD fit ``(alpha, sigma^2)`` of the coefficients and,
   for the four neighbour products (horizontal, vertical, main and anti diagonal, circular wrap as ``circshift``), the
   AGGD fit ``(alpha, mean, left_std^2, right_std^2)``; between the scales the grey image (not rounded) is resized by
   1/2 with MATLAB's bicubic ``imresize`` (:mod:`bench.data.imresize`);
3. the release writes the 36 features with ``%f`` (6 decimals), ``svm-scale`` maps each to ``lower + (upper - lower)
   (x - min) / (max - min)`` and prints it with ``%g`` (6 significant digits), and ``svm-predict`` evaluates
   ``sum_i coef_i exp(-gamma |sv_i - x|^2) - rho``. With ``release_text_io=True`` (default) the two text round trips
   are reproduced (they move the score by up to a few hundredths); the final ``%g`` of ``svm-predict``'s output file
   is not (the official values carry it: 6 significant digits).

Input: ``sr`` (N, 3, H, W) float in [0, 1], at least 16x16 after the crop; ``hr``/``lr`` ignored (no-reference).
Output: (N,) float64, lower is better (about 0 = pristine .. 100 = very distorted on LIVE; values outside are
possible). NaN where a fit has no data (e.g. a constant image), with a warning. Not differentiable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

import torch

from bench.images import check_batch
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border
from bench.metrics.nss import aggd_fit, ggd_fit, grey_levels, mscn
from bench.metrics.psnr import check_crop_border

logger = logging.getLogger(__name__)

N_FEATURES = 36
MIN_SIZE = 16
# circshift offsets of brisque_feature.m: [0 1; 1 0; 1 1; -1 1] (rows, columns)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
_MODEL_KEYS = ("support_vectors", "dual_coef", "rho", "gamma", "range_min", "range_max", "range_bounds")


def brisque_features(grey: torch.Tensor) -> torch.Tensor:
    """The 36 BRISQUE features of grey images: (N, 1, H, W) float64 on [0, 255] -> (N, 36) float64."""
    from bench.data.imresize import imresize

    n = grey.shape[0]
    im = grey
    feats = []
    for scale in (1, 2):
        coef = mscn(im, padding="zeros")[:, 0]
        alpha, sigma = ggd_fit(coef.reshape(n, -1))
        feats += [alpha, sigma.square()]
        for shift in _SHIFTS:
            pair = (coef * torch.roll(coef, shifts=shift, dims=(1, 2))).reshape(n, -1)
            alpha, left, right = aggd_fit(pair)
            lg1, lg2, lg3 = (torch.lgamma(k / alpha) for k in (1.0, 2.0, 3.0))
            mean = (right - left) * torch.exp(lg2 - lg1) * torch.exp(0.5 * (lg1 - lg3))
            feats += [alpha, mean, left.square(), right.square()]
        if scale == 1:
            im = imresize(im, 0.5)
    return torch.stack(feats, dim=1)


def _round_decimals(x: torch.Tensor, decimals: int) -> torch.Tensor:
    """C ``printf("%.<decimals>f")`` then read back (round half to even on the binary value)."""
    return torch.round(x, decimals=decimals)


def _round_significant(x: torch.Tensor, digits: int = 6) -> torch.Tensor:
    """C ``printf("%g")`` (``digits`` significant digits) then read back."""
    mag = torch.floor(torch.log10(x.abs().clamp_min(1e-300)))
    scale = torch.pow(10.0, digits - 1 - mag)
    return torch.where(x == 0, x, torch.round(x * scale) / scale)


def svr_score(features: torch.Tensor, model: Mapping[str, torch.Tensor], release_text_io: bool = True) -> torch.Tensor:
    """``svm-scale`` + ``svm-predict`` of the release: (N, 36) features -> (N,) float64 quality scores."""
    x = features.to(torch.float64)
    if release_text_io:
        x = _round_decimals(x, 6)
    lo, hi = model["range_bounds"][0], model["range_bounds"][1]
    fmin, fmax = model["range_min"], model["range_max"]
    scaled = lo + (hi - lo) * (x - fmin) / (fmax - fmin)
    scaled = torch.where(x == fmin, lo.expand_as(scaled), scaled)
    scaled = torch.where(x == fmax, hi.expand_as(scaled), scaled)
    if release_text_io:
        scaled = _round_significant(scaled, 6)
    d2 = torch.cdist(scaled, model["support_vectors"]).square()
    kernel = torch.exp(-model["gamma"] * d2)
    return kernel @ model["dual_coef"] - model["rho"]


@METRICS.register("brisque")
class BRISQUE(Metric):
    """BRISQUE (Mittal et al. 2012), the authors' release and LIVE model, on MATLAB ``rgb2gray`` (uint8).

    Args:
        crop_border: pixels removed on each side before scoring (default 0).
        weights: a state dict in the ``brisque`` asset layout; ``None`` loads the asset ``brisque-live``.
        pretrained: with ``weights=None``, ``False`` uses a placeholder model (one zero support vector, unit ranges)
            for shape and speed tests only; its spec says so.
        release_text_io: reproduce the release's ``%f`` / ``%g`` text round trips between the feature extractor,
            ``svm-scale`` and ``svm-predict`` (default ``True``).
    """

    needs_weights: ClassVar[tuple[str, ...]] = ("brisque-live",)
    min_size: ClassVar[int] = MIN_SIZE

    def __init__(
        self,
        crop_border: int = 0,
        weights: Mapping[str, torch.Tensor] | None = None,
        pretrained: bool = True,
        release_text_io: bool = True,
    ) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        self.release_text_io = bool(release_text_io)
        extra: dict[str, object] = {}
        if weights is None and pretrained:
            from bench.assets import load_state_dict

            weights = load_state_dict("brisque-live")
        elif weights is None:
            weights = {
                "support_vectors": torch.zeros(1, N_FEATURES, dtype=torch.float64),
                "dual_coef": torch.ones(1, dtype=torch.float64),
                "rho": torch.zeros(1, dtype=torch.float64),
                "gamma": torch.full((1,), 0.05, dtype=torch.float64),
                "range_min": torch.zeros(N_FEATURES, dtype=torch.float64),
                "range_max": torch.ones(N_FEATURES, dtype=torch.float64),
                "range_bounds": torch.tensor([-1.0, 1.0], dtype=torch.float64),
            }
            extra["weights"] = "placeholder (not pretrained)"
            logger.debug("BRISQUE built with a placeholder SVR: its values are meaningless")
        missing = [k for k in _MODEL_KEYS if k not in weights]
        if missing:
            raise ValueError(f"BRISQUE model: missing {missing}; expected the 'brisque' asset layout")
        for key in _MODEL_KEYS:
            self.register_buffer(key, torch.as_tensor(weights[key], dtype=torch.float64).clone())
        if self.support_vectors.ndim != 2 or self.support_vectors.shape[1] != N_FEATURES:
            raise ValueError(f"BRISQUE model: support_vectors must be (S, 36), got {tuple(self.support_vectors.shape)}")
        if not release_text_io:
            extra["release_text_io"] = False
        self.spec = MetricSpec(
            name="brisque",
            full_reference=False,
            higher_is_better=False,
            color_space="grey",
            crop_border=self.crop_border,
            input_range="[0,255] uint8-rounded, MATLAB rgb2gray rounded to uint8, float64",
            backbone=f"libsvm RBF epsilon-SVR, {self.support_vectors.shape[0]} support vectors",
            version="authors' BRISQUE release (LIVE allmodel/allrange), 2 scales, MATLAB bicubic imresize",
            reference="Mittal, Moorthy, Bovik, IEEE TIP 2012; authors' MATLAB release brisquescore.m + libsvm",
            extra=extra,
        )

    def model(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in _MODEL_KEYS}

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N,) float64 BRISQUE on the input's device (lower is better)."""
        check_batch(sr, "brisque sr")
        h, w = (s - 2 * self.crop_border for s in sr.shape[-2:])
        if min(h, w) < MIN_SIZE:
            raise ValueError(
                f"brisque needs at least {MIN_SIZE}x{MIN_SIZE} pixels after crop_border {self.crop_border}, got {h}x{w}"
            )
        grey = grey_levels(crop_border(sr, self.crop_border))
        score = svr_score(brisque_features(grey), self.model(), self.release_text_io)
        if torch.isnan(score).any():
            logger.warning("brisque: NaN for %d image(s) (no usable statistics)", int(score.isnan().sum()))
        return score
