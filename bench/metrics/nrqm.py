"""NRQM, Ma's score (``nrqm``: MATLAB ``rgb2gray``; ``nrqm_y``: BT.601 Y), a native port of the authors' release.

Paper: C. Ma, C.-Y. Yang, X. Yang, M.-H. Yang, "Learning a No-Reference Quality Metric for Single-Image
Super-Resolution", Computer Vision and Image Understanding 158, 2017. Reference implementation: the authors' MATLAB
release ``chaoma99/sr-metric`` (``quality_predict.m``, ``feature_all.m``, ``block_dct.m``, ``global_gsm.m``,
``norm_sender_normalized.m``, ``ssim_index_new.m``, matlabPyrTools ``buildSFpyr``, the regression forests of
``randomforest-matlab``) with its ``model.mat``, here the asset ``nrqm-ma`` (:mod:`bench.assets.nrqm`).

Computation, per image, in float64 on the 8-bit grey image ``g`` (``rgb2gray`` or the Y of ``rgb2ycbcr``, rounded):

1. three scales ``im1 = g / 255`` and ``im{k+1}`` = ``im{k}`` filtered with ``fspecial('gaussian', 3)`` (sigma 0.5,
   zero borders, ``imfilter``) and sampled at the even (1-based) rows and columns;
2. local frequency, 6 features per scale (18): ``blkproc(im, [3 3], [2 2], ...)`` -- 7x7 windows on a 3-pixel grid,
   zeros outside -- each with its orthonormal 7x7 DCT (``dct2``) without the DC term: the generalized-Gaussian shape
   (``gama_gen_gauss``: ``var / mean(|x - mean|)^2`` matched on the grid ``0.03:0.001:10``), the coefficient of
   variation ``std(|x|) / (mean(|x|) + 1e-7)``, and the variance over three oriented DCT zones of that ratio; pooled as
   (mean of the lowest 10 %, mean) for the shape and (mean of the highest 10 %, mean) for the other two;
3. global frequency (45): a steerable pyramid (``buildSFpyr(g, 2, 5)``: 2 scales, 6 orientations, on [0, 255]), each
   oriented band divisively normalized by its 3x3 neighbourhood, its parent (bicubic ``imresize`` x2; the release's
   ``nband < Nband - Nor`` test gives none to the sixth orientation of the finer scale) and the other
   orientations of its scale (a Gaussian scale mixture; guard band 16 / 8 pixels removed); features: the shape of the
   12 normalized bands, of the 6 pairs across scales, the SSIM contrast-structure term (11x11 Gaussian, ``valid``)
   between each raw band resized to full size and the high-pass residual (12), and between the 15 pairs of
   normalized orientations of the finer scale;
4. spatial (75): the singular values of the 5x5 distinct blocks of each scale (``svd(im2col(im, [5 5], 'distinct'))``);
5. each group is regressed by its random forest (the mean of the trees' leaf values) and the score is
   ``[1 s1 s2 s3] * linear``.

Input: ``sr`` (N, 3, H, W) float in [0, 1], at least 96x96 after the crop; ``hr``/``lr`` ignored (no-reference).
Output: (N,) float64, higher is better (the human scores it was trained on lie in 0..10). NaN (with a warning) where
a feature is undefined, e.g. a constant image, on which the release stops with an error. Not differentiable.

Length (over ~500 lines): one paper's algorithm -- three feature families, the steerable pyramid they share, the
forest evaluator and the score -- kept in one file so that it reads beside the release it follows, step for step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.images import check_batch
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border
from bench.metrics.color import Y_OFFSET, Y_WEIGHTS
from bench.metrics.nss import grey_levels
from bench.metrics.psnr import check_crop_border, to_levels

logger = logging.getLogger(__name__)

MIN_SIZE = 96  # 25 distinct 5x5 blocks at the third scale (the 25 singular values)
N_FEATURES = (18, 45, 75)
N_ORIENT = 6
N_SCALES = 2
GUARD = 16
_SHAPE_GRID_SIZE = 9971  # MATLAB 0.03:0.001:10


# ---- shared statistics -------------------------------------------------------------------------------------------


def shape_table(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The grid ``0.03:0.001:10`` and ``G(1/g) G(3/g) / G(2/g)^2`` on it (strictly decreasing), float64."""
    g = (30 + torch.arange(_SHAPE_GRID_SIZE, dtype=torch.float64, device=device)) / 1000  # k/1000, exact ends
    r = torch.exp(torch.lgamma(1 / g) + torch.lgamma(3 / g) - 2 * torch.lgamma(2 / g))
    return g, r


def ggd_shape(x: torch.Tensor) -> torch.Tensor:
    """``gama_gen_gauss`` of each row of ``x`` (..., M): the grid value whose ratio is nearest (first on a tie)."""
    g, r = shape_table(x.device)
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1)
    mean_abs = (x - mean).abs().mean(-1).square()
    rho = var / (mean_abs + 1e-7)
    # r decreases: search in the increasing reversed table, then compare the two neighbours (MATLAB min: first index)
    rev = r.flip(0)
    pos = torch.searchsorted(rev, rho.reshape(-1).contiguous())
    hi_rev = pos.clamp(max=r.numel() - 1)
    lo_rev = (pos - 1).clamp(min=0)
    i_lo = r.numel() - 1 - hi_rev  # the neighbour with the smaller g (larger ratio)
    i_hi = r.numel() - 1 - lo_rev
    flat = rho.reshape(-1)
    idx = torch.where((r[i_lo] - flat).abs() <= (r[i_hi] - flat).abs(), i_lo, i_hi)
    out = g[idx].reshape(rho.shape)
    return torch.where(torch.isnan(rho), torch.full_like(out, math.nan), out)


def coeff_var(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``std(|x|) / (mean(|x|) + eps)`` over the last axis (unbiased std, as MATLAB)."""
    a = x.abs()
    return a.std(-1) / (a.mean(-1) + eps)


# ---- local frequency (block DCT) ---------------------------------------------------------------------------------


def dct_matrix(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (n, n): ``dct2(B) = D @ B @ D.T``."""
    k = torch.arange(n, dtype=torch.float64, device=device)[:, None]
    i = torch.arange(n, dtype=torch.float64, device=device)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def _zone(rows_cols: list[tuple[int, list[int]]]) -> list[tuple[int, int]]:
    return [(r, c) for r, cols in rows_cols for c in cols]


# the three oriented zones of a 7x7 DCT (oriented{1,2,3}_dct_rho_config3.m, nn == 7), 0-based (row, column)
ZONE_1 = _zone([(0, list(range(1, 7))), (1, list(range(2, 7))), (2, [4, 5, 6]), (3, [5, 6])])
ZONE_2 = _zone([(1, [1]), (2, [2, 3]), (3, [2, 3, 4]), (4, [3, 4, 5, 6]), (5, [4, 5, 6]), (6, [4, 5, 6])])
ZONE_3 = [(c, r) for r, c in ZONE_1]


def dct_blocks(im: torch.Tensor) -> torch.Tensor:
    """``blkproc(im, [3 3], [2 2], @dct2)``: (N, 1, H, W) -> (N, ceil(H/3) * ceil(W/3), 7, 7) DCT coefficients."""
    n, _, h, w = im.shape
    pad_h, pad_w = -h % 3, -w % 3
    padded = F.pad(im, (2, 2 + pad_w, 2, 2 + pad_h))
    cols = F.unfold(padded, 7, stride=3)  # (N, 49, L), row-major within the window
    blocks = cols.transpose(1, 2).reshape(n, -1, 7, 7)
    d = dct_matrix(7, im.device).to(im.dtype)
    return d @ blocks @ d.T


def _lowest(sorted_vals: torch.Tensor, frac: float) -> torch.Tensor:
    k = math.ceil(sorted_vals.shape[-1] * frac)
    return sorted_vals[..., :k].mean(-1)


def _highest(sorted_vals: torch.Tensor, frac: float) -> torch.Tensor:
    start = int(sorted_vals.shape[-1] * frac) - 1  # MATLAB sorted(fix(count * 0.9):end), 1-based
    return sorted_vals[..., max(start, 0) :].mean(-1)


def block_dct_features(im: torch.Tensor) -> torch.Tensor:
    """``block_dct.m`` of (N, 1, H, W) images on [0, 1] -> (N, 6) float64."""
    dct = dct_blocks(im)
    n, nb = dct.shape[:2]
    flat = dct.reshape(n, nb, 49)[..., 1:]  # without the DC term
    gama = ggd_shape(flat).sort(-1).values
    cv = coeff_var(flat).sort(-1).values
    rows = [torch.tensor([p[0] for p in z], device=im.device) for z in (ZONE_1, ZONE_2, ZONE_3)]
    cols = [torch.tensor([p[1] for p in z], device=im.device) for z in (ZONE_1, ZONE_2, ZONE_3)]
    ori = torch.stack([coeff_var(dct[..., r, c], eps=1e-8) for r, c in zip(rows, cols, strict=True)], -1)
    ori = ori.var(-1).sort(-1).values
    feats = [_lowest(gama, 0.1), gama.mean(-1), _highest(cv, 0.9), cv.mean(-1), _highest(ori, 0.9), ori.mean(-1)]
    return torch.stack(feats, dim=1)


def gaussian_kernel(size: int, sigma: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)``: (size, size) float64 summing to 1."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    k = torch.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    k = torch.where(k < torch.finfo(torch.float64).eps * k.max(), torch.zeros_like(k), k)
    return k / k.sum()


def scales(im: torch.Tensor) -> list[torch.Tensor]:
    """The three scales of ``feature_all.m``: ``im``, then 3x3 Gaussian (zero borders) and even-index sampling (x2)."""
    k = gaussian_kernel(3, 0.5, im.device).to(im.dtype)[None, None]
    out = [im]
    for _ in range(2):
        im = F.conv2d(F.pad(im, (1, 1, 1, 1)), k)[..., 1::2, 1::2]
        out.append(im)
    return out


# ---- spatial discontinuity (SVD) ---------------------------------------------------------------------------------


def block_singular_values(im: torch.Tensor) -> torch.Tensor:
    """``svd(im2col(im, [5 5], 'distinct'))``: (N, 1, H, W) -> (N, 25) descending singular values."""
    h, w = im.shape[-2:]
    padded = F.pad(im, (0, -w % 5, 0, -h % 5))
    cols = F.unfold(padded, 5, stride=5)  # (N, 25, L)
    if cols.shape[-1] < 25:
        raise ValueError(f"NRQM needs 25 distinct 5x5 blocks at every scale, a {h}x{w} scale has {cols.shape[-1]}")
    return torch.linalg.svdvals(cols)


# ---- global frequency (steerable pyramid + GSM) ------------------------------------------------------------------


def point_op(x: torch.Tensor, lut: torch.Tensor, origin: float, increment: float) -> torch.Tensor:
    """matlabPyrTools ``pointOp``: linear interpolation in ``lut`` at ``(x - origin) / increment``.

    The index is the C truncation of the position clipped to the table, and the end segments extend linearly (the
    tables used here are flat at both ends, so that is a clamp).
    """
    pos = (x - origin) / increment
    idx = torch.trunc(pos).clamp(0, lut.numel() - 2).long()
    return lut[idx] + (lut[idx + 1] - lut[idx]) * (pos - idx)


def _rcos(width: float = 1.0, position: float = -0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``rcosFn(width, position, [0 1])``: a raised-cosine step, 259 samples."""
    sz = 256
    x = math.pi * torch.arange(-sz - 1, 2, dtype=torch.float64) / (2 * sz)
    y = torch.cos(x) ** 2
    y[0] = y[1]
    y[sz + 2] = y[sz + 1]
    return position + (2 * width / math.pi) * (x + math.pi / 4), y


def _centre(n: int) -> int:
    """0-based index of MATLAB's ``ceil((n + 0.5) / 2)``, the DC position after ``fftshift``."""
    return math.ceil((n + 0.5) / 2) - 1


def steerable_pyramid(im: torch.Tensor, height: int = N_SCALES, n_orient: int = N_ORIENT) -> list[torch.Tensor]:
    """``buildSFpyr(im, height, n_orient - 1)`` of (N, H, W) float64: ``[hi0, band_1_1 .. band_height_n, lowpass]``.

    Bands are real (N, h, w); scale ``s`` (0-based) has size ``ceil((size - 0.5) / 2)`` applied ``s`` times.
    """
    dev = im.device
    h, w = im.shape[-2:]
    ch, cw = _centre(h), _centre(w)
    xr = (torch.arange(w, dtype=torch.float64, device=dev) - cw) / (w / 2)
    yr = (torch.arange(h, dtype=torch.float64, device=dev) - ch) / (h / 2)
    yy, xx = torch.meshgrid(yr, xr, indexing="ij")
    angle = torch.atan2(yy, xx)
    log_rad = torch.sqrt(xx**2 + yy**2)
    log_rad[ch, cw] = log_rad[ch, cw - 1]
    log_rad = torch.log2(log_rad)
    xrcos, yrcos = _rcos()
    xrcos, yrcos = xrcos.to(dev), yrcos.to(dev).sqrt()
    yircos = torch.sqrt(1 - yrcos**2)
    step = float(xrcos[1] - xrcos[0])
    imdft = torch.fft.fftshift(torch.fft.fft2(im.to(torch.complex128)), dim=(-2, -1))
    hi0 = torch.fft.ifft2(torch.fft.ifftshift(imdft * point_op(log_rad, yrcos, float(xrcos[0]), step), dim=(-2, -1)))
    lodft = imdft * point_op(log_rad, yircos, float(xrcos[0]), step)

    order = n_orient - 1
    lut = 1024
    xcosn = math.pi * torch.arange(-(2 * lut + 1), lut + 2, dtype=torch.float64, device=dev) / lut
    const = 2 ** (2 * order) * math.factorial(order) ** 2 / (n_orient * math.factorial(2 * order))
    ycosn = math.sqrt(const) * torch.cos(xcosn) ** order
    phase = (1, -1j, -1, 1j)[order % 4]  # (-sqrt(-1))^order
    bands = [hi0.real]
    for _ in range(height):
        xrcos = xrcos - 1.0
        himask = point_op(log_rad, yrcos, float(xrcos[0]), step)
        for b in range(n_orient):
            amask = point_op(angle, ycosn, float(xcosn[0]) + math.pi * b / n_orient, float(xcosn[1] - xcosn[0]))
            band = torch.fft.ifft2(torch.fft.ifftshift(phase * lodft * amask * himask, dim=(-2, -1)))
            bands.append(band.real)
        dh, dw = lodft.shape[-2:]
        lh, lw = math.ceil((dh - 0.5) / 2), math.ceil((dw - 0.5) / 2)
        sh, sw = _centre(dh) - _centre(lh), _centre(dw) - _centre(lw)
        log_rad = log_rad[sh : sh + lh, sw : sw + lw]
        angle = angle[sh : sh + lh, sw : sw + lw]
        lodft = lodft[..., sh : sh + lh, sw : sw + lw] * point_op(
            log_rad, torch.sqrt(1 - yrcos**2).abs(), float(xrcos[0]), step
        )
    bands.append(torch.fft.ifft2(torch.fft.ifftshift(lodft, dim=(-2, -1))).real)
    return bands


def _imresize2d(x: torch.Tensor, *, scale: float | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    from bench.data.imresize import imresize

    if size is not None and tuple(x.shape[-2:]) == tuple(size):
        return x
    if scale is not None:
        return imresize(x[:, None], scale)[:, 0]
    return imresize(x[:, None], output_size=size)[:, 0]


def normalized_subbands(bands: list[torch.Tensor]) -> list[torch.Tensor]:
    """``norm_sender_normalized(pyr, pind, 2, 6, 1, 1, 3, 3, 50)``: 12 GSM-normalized bands (N, h, w), zero mean.

    Each coefficient is divided by ``sqrt(y' C^-1 y / N)`` where ``y`` holds its 3x3 neighbourhood, its parent (finer
    scale, orientations 1-5 only, as released) and the co-located coefficients of the other orientations, ``C``
    their covariance over the band (negative eigenvalues zeroed, total variance kept) and ``N`` 9 or 10; then the
    guard band (16 >> scale) is removed.
    A zero divisor (a flat band; the release fails there) gives NaN.
    """
    out = []
    for s in range(N_SCALES):
        for o in range(N_ORIENT):
            aux = bands[1 + s * N_ORIENT + o]
            n, nv, nh = aux.shape
            bv, bh = nv - 2, nh - 2
            cols = [aux[:, dy : dy + bv, dx : dx + bh] for dy in range(3) for dx in range(3)]
            size = 9
            # parent: the same orientation one scale coarser, enlarged x2 (bicubic). The release's test is
            # ``nband < Nband - Nor`` (1-based band number, Nband = number of bands - 1), which leaves the last
            # orientation of the finer scale without its parent; kept as released.
            nband, n_bands = 2 + s * N_ORIENT + o, len(bands) - 1
            if nband < n_bands - N_ORIENT:
                parent = _imresize2d(bands[1 + (s + 1) * N_ORIENT + o], scale=2.0)[:, :nv, :nh]
                cols.append(parent[:, 1 : 1 + bv, 1 : 1 + bh])
                size += 1
            for k in range(N_ORIENT):
                if k != o:
                    cols.append(bands[1 + s * N_ORIENT + k][:, 1 : 1 + bv, 1 : 1 + bh])
            y = torch.stack([c.reshape(n, -1) for c in cols], dim=-1)  # (N, nexp, K)
            cov = y.transpose(1, 2) @ y / y.shape[1]
            cov = (cov + cov.transpose(1, 2)) / 2
            evals, evecs = torch.linalg.eigh(cov)
            pos = evals * (evals > 0)
            pos_sum = pos.sum(-1, keepdim=True)
            evals = pos * evals.sum(-1, keepdim=True) / (pos_sum + (pos_sum == 0).to(pos_sum.dtype))
            cov = evecs @ torch.diag_embed(evals) @ evecs.transpose(1, 2)
            z = torch.sqrt(((y @ torch.linalg.pinv(cov)) * y).sum(-1) / size)
            centre = aux[:, 1 : 1 + bv, 1 : 1 + bh].reshape(n, -1)
            centre = centre - centre.mean(-1, keepdim=True)
            g = torch.where(z != 0, centre / z, torch.full_like(z, math.nan)).reshape(n, bv, bh)
            gb = GUARD >> s
            g = g[:, gb : bv - gb, gb : bh - gb]
            out.append(g - g.mean(dim=(1, 2), keepdim=True))
    return out


def ssim_cs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean contrast-structure term of ``ssim_index_new.m`` (11x11 Gaussian 1.5, ``valid``, C2 = (0.03*255)^2)."""
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"NRQM: a pyramid band of {tuple(a.shape[-2:])} is smaller than the 11x11 SSIM window")
    # the 11x11 window is an outer product (no tap falls under fspecial's eps cut): two 1-D passes
    g = torch.exp(-((torch.arange(11, dtype=a.dtype, device=a.device) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    c2 = (0.03 * 255) ** 2
    a, b = a[:, None], b[:, None]

    def filt(v: torch.Tensor) -> torch.Tensor:  # 'valid' correlation; sliding windows @ taps beat float64 conv2d
        return (v.unfold(-2, 11, 1) @ g).unfold(-1, 11, 1) @ g

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    return ((2 * cov + c2) / (var_a + var_b + c2)).mean(dim=(1, 2, 3))


def global_gsm_features(grey: torch.Tensor) -> torch.Tensor:
    """``global_gsm.m`` of (N, 1, H, W) grey levels on [0, 255] -> (N, 45) float64."""
    bands = steerable_pyramid(grey[:, 0])
    sub = normalized_subbands(bands)
    n = grey.shape[0]
    feats = [ggd_shape(s.reshape(n, -1)) for s in sub]
    feats += [ggd_shape(torch.cat([sub[o].reshape(n, -1), sub[o + N_ORIENT].reshape(n, -1)], 1)) for o in range(6)]
    hp = bands[0]
    feats += [ssim_cs(_imresize2d(bands[1 + i], size=tuple(hp.shape[-2:])), hp) for i in range(2 * N_ORIENT)]
    feats += [ssim_cs(sub[i], sub[j]) for i in range(N_ORIENT) for j in range(i + 1, N_ORIENT)]
    return torch.stack(feats, dim=1)


def nrqm_features(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``feature_all.m``: (N, 1, H, W) float64 grey levels on [0, 255] -> (N, 18), (N, 45), (N, 75)."""
    ims = scales(grey / 255.0)
    f1 = torch.cat([block_dct_features(im) for im in ims], dim=1)
    f2 = global_gsm_features(grey)
    f3 = torch.cat([block_singular_values(im) for im in ims], dim=1)
    return f1, f2, f3


# ---- regression --------------------------------------------------------------------------------------------------


def forest_predict(x: torch.Tensor, forest: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Regression forest (``regRF_predict``): (N, F) features -> (N,) mean of the trees' leaf values (bias applied).

    ``forest`` holds ``left``, ``right``, ``feature`` (T, M) int64 (-1 at leaves), ``threshold``, ``value`` (T, M)
    float64 and ``bias`` (2,); a sample goes left where ``x[feature] <= threshold``. A row with a NaN feature gives NaN.
    """
    left, right, feat = forest["left"], forest["right"], forest["feature"]
    thr, val = forest["threshold"], forest["value"]
    t = left.shape[0]
    n = x.shape[0]
    tree = torch.arange(t, device=x.device)[None, :].expand(n, t)
    node = torch.zeros(n, t, dtype=torch.long, device=x.device)
    rows = torch.arange(n, device=x.device)[:, None]
    for _ in range(left.shape[1]):
        nxt_l = left[tree, node]
        leaf = nxt_l < 0
        if leaf.all():
            break
        f = feat[tree, node].clamp(min=0)
        go_left = x[rows, f] <= thr[tree, node]
        node = torch.where(leaf, node, torch.where(go_left, nxt_l, right[tree, node]))
    pred = val[tree, node].mean(dim=1)
    bias = forest["bias"]
    pred = bias[0] + bias[1] * pred
    return torch.where(torch.isnan(x).any(dim=1), torch.full_like(pred, math.nan), pred)


def _placeholder_forests() -> dict[str, torch.Tensor]:
    """One stump per group (split on feature 0 at 0), leaf values 0 and 1; linear weights (5, 1, 1, 1)."""
    sd = {"linear": torch.tensor([5.0, 1.0, 1.0, 1.0], dtype=torch.float64)}
    for k in (1, 2, 3):
        sd[f"rf{k}.left"] = torch.tensor([[1, -1, -1]])
        sd[f"rf{k}.right"] = torch.tensor([[2, -1, -1]])
        sd[f"rf{k}.feature"] = torch.tensor([[0, -1, -1]])
        sd[f"rf{k}.threshold"] = torch.zeros(1, 3, dtype=torch.float64)
        sd[f"rf{k}.value"] = torch.tensor([[0.5, 0.0, 1.0]], dtype=torch.float64)
        sd[f"rf{k}.bias"] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    return sd


ASSET = "nrqm-ma"
FETCH_COMMAND = f"python -m bench assets fetch {ASSET} --trust-on-first-use"


def load_model() -> dict[str, torch.Tensor]:
    """The stored asset ``nrqm-ma``; a one-line :class:`~bench.assets.AssetError` naming the fetch command if absent.

    It is not fetched here: its only sources are official URLs whose sha256 cannot be recorded in advance (no
    registry carries it), so a fetch needs the user's ``--trust-on-first-use``.
    """
    from bench.assets import AssetError, is_stored, load_state_dict

    if not is_stored(ASSET):
        raise AssetError(
            f"NRQM needs the asset {ASSET!r} (the authors' model.mat), which is not stored; it has official URLs "
            f"only and no known sha256: run `{FETCH_COMMAND}`",
            fix=FETCH_COMMAND,
        )
    return load_state_dict(ASSET)


@METRICS.register("nrqm", aliases=("ma", "nrqm_grey", "nrqm_gray"))
class NRQM(Metric):
    """NRQM / Ma's score (Ma et al. 2017) on MATLAB ``rgb2gray`` (uint8), the authors' release and model.

    Args:
        crop_border: pixels removed on each side before scoring (default 0).
        weights: a state dict in the ``nrqm`` asset layout; ``None`` loads the stored asset ``nrqm-ma``
            (:func:`load_model`: a one-line error with the fetch command when it is not stored).
        pretrained: with ``weights=None``, ``False`` uses placeholder stumps for shape and speed tests only; its spec
            says so.
    """

    color_space: ClassVar[str] = "grey"
    conversion: ClassVar[str] = "MATLAB rgb2gray rounded to uint8"
    needs_weights: ClassVar[tuple[str, ...]] = ("nrqm-ma",)
    min_size: ClassVar[int] = MIN_SIZE

    def __init__(
        self, crop_border: int = 0, weights: Mapping[str, torch.Tensor] | None = None, pretrained: bool = True
    ) -> None:
        super().__init__()
        from bench.assets.errors import ConversionError
        from bench.assets.nrqm import check_forests

        self.crop_border = check_crop_border(crop_border)
        extra: dict[str, object] = {}
        if weights is None and pretrained:
            weights = load_model()
        elif weights is None:
            weights = _placeholder_forests()
            extra["weights"] = "placeholder (not pretrained)"
            logger.debug("NRQM built with placeholder forests: its values are meaningless")
        try:
            info = check_forests(weights)
        except ConversionError as exc:
            raise ValueError(str(exc)) from exc
        for key in sorted(weights):
            self.register_buffer(key.replace(".", "_"), torch.as_tensor(weights[key]).clone())
        trees = [info["forests"][f"rf{k}"][0] for k in (1, 2, 3)]
        name = "nrqm" if self.color_space == "grey" else f"nrqm_{self.color_space}"
        self.spec = MetricSpec(
            name=name,
            full_reference=False,
            higher_is_better=True,
            color_space=self.color_space,
            crop_border=self.crop_border,
            input_range=f"[0,255] uint8-rounded, {self.conversion}, float64",
            backbone=f"3 regression random forests ({'/'.join(map(str, trees))} trees) + linear",
            version="authors' sr-metric release (quality_predict.m, model.mat), matlabPyrTools buildSFpyr",
            reference="Ma, Yang, Yang, Yang, CVIU 2017; authors' MATLAB release chaoma99/sr-metric",
            extra=extra,
        )

    def forest(self, k: int) -> dict[str, torch.Tensor]:
        return {
            key: getattr(self, f"rf{k}_{key}") for key in ("left", "right", "feature", "threshold", "value", "bias")
        }

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 1, H, W) float64 grey levels on [0, 255], integer-valued."""
        return grey_levels(x)

    def score(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor) -> torch.Tensor:
        """``[1 s1 s2 s3] * linear`` from the three feature groups: (N,) float64."""
        preds = [forest_predict(f, self.forest(k)) for k, f in enumerate((f1, f2, f3), start=1)]
        design = torch.stack([torch.ones_like(preds[0]), *preds], dim=1)
        return design @ self.linear

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N,) float64 NRQM on the input's device (higher is better)."""
        check_batch(sr, f"{self.spec.name} sr")
        h, w = (s - 2 * self.crop_border for s in sr.shape[-2:])
        if min(h, w) < MIN_SIZE:
            raise ValueError(
                f"{self.spec.name} needs at least {MIN_SIZE}x{MIN_SIZE} pixels after crop_border {self.crop_border}, "
                f"got {h}x{w}"
            )
        grey = self.levels(crop_border(sr, self.crop_border))
        score = self.score(*nrqm_features(grey))
        if torch.isnan(score).any():
            logger.warning("%s: NaN for %d image(s) (undefined features)", self.spec.name, int(score.isnan().sum()))
        return score


@METRICS.register("nrqm_y", aliases=("ma_y",))
class NRQMY(NRQM):
    """NRQM on the BT.601 Y channel (MATLAB ``rgb2ycbcr``) rounded to uint8, as the PIRM 2018 evaluation feeds it."""

    color_space: ClassVar[str] = "y"
    conversion: ClassVar[str] = "BT.601 Y (MATLAB rgb2ycbcr) rounded"

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
        y = (to_levels(x) / 255.0 * w).sum(dim=1, keepdim=True) + Y_OFFSET
        return y.clamp(0, 255).add(0.5).floor()
