"""NRQM building blocks against per-block NumPy recomputations of the MATLAB release, hand-made forests, known values
on a zero image, pyramid invariants, batching and error paths (no real model: that is test_nr_calibration.py)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import scipy.fft
import torch

from bench.assets import AssetError
from bench.metrics import build_metric
from bench.metrics.niqe import NIQEY
from bench.metrics.nrqm import (
    FETCH_COMMAND,
    NRQM,
    _centre,
    _rcos,
    block_dct_features,
    block_singular_values,
    dct_matrix,
    forest_predict,
    ggd_shape,
    normalized_subbands,
    nrqm_features,
    point_op,
    scales,
    ssim_cs,
    steerable_pyramid,
)
from bench.metrics.nss import grey_levels

# ---- a literal NumPy transcription of the release's per-block MATLAB functions (1-based indices kept in comments) --

_G = np.arange(30, 10001) / 1000.0  # 0.03:0.001:10
_R = np.array([math.gamma(1 / g) * math.gamma(3 / g) / math.gamma(2 / g) ** 2 for g in _G])


def _gama_gen_gauss(v: np.ndarray) -> float:
    rho = np.var(v, ddof=1) / (np.mean(np.abs(v - np.mean(v))) ** 2 + 1e-7)
    return float(_G[np.argmin(np.abs(_R - rho))])


def _cv(v: np.ndarray, eps: float) -> float:
    return float(np.std(np.abs(v), ddof=1) / (np.mean(np.abs(v)) + eps))


def _oriented(t: np.ndarray) -> float:
    z1 = np.concatenate([t[0, 1:], t[1, 2:], t[2, 4:], t[3, 5:]])  # temp(1,2:end) temp(2,3:end) ...
    z2 = np.concatenate([t[1, 1:2], t[2, 2:4], t[3, 2:5], t[4, 3:], t[5, 4:], t[6, 4:]])
    z3 = np.concatenate([t[1:, 0], t[2:, 1], t[4:, 2], t[5:, 3]])
    return float(np.var([_cv(z, 1e-8) for z in (z1, z2, z3)], ddof=1))


def _blkproc(im: np.ndarray, fun) -> np.ndarray:
    """blkproc(im, [3 3], [2 2], fun): zero border 2, zero padding to a multiple of 3, one value per block."""
    m, n = im.shape
    aa = np.zeros((m + (-m % 3) + 4, n + (-n % 3) + 4))
    aa[2 : 2 + m, 2 : 2 + n] = im
    out = np.zeros(((m + (-m % 3)) // 3, (n + (-n % 3)) // 3))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = fun(scipy.fft.dctn(aa[3 * r : 3 * r + 7, 3 * c : 3 * c + 7], norm="ortho"))
    return out


def _block_dct_numpy(im: np.ndarray) -> list[float]:
    gama = np.sort(_blkproc(im, lambda t: _gama_gen_gauss(t.ravel(order="F")[1:])).ravel(order="F"))
    cv = np.sort(_blkproc(im, lambda t: _cv(t.ravel(order="F")[1:], 1e-7)).ravel(order="F"))
    ori = np.sort(_blkproc(im, _oriented).ravel(order="F"))
    c = gama.size
    return [
        gama[: math.ceil(c * 0.1)].mean(),  # mean(sorted(1:ceil(count*0.1)))
        gama.mean(),
        cv[int(c * 0.9) - 1 :].mean(),  # mean(sorted(fix(count*0.9):end))
        cv.mean(),
        ori[int(c * 0.9) - 1 :].mean(),
        ori.mean(),
    ]


def _image(rng: torch.Generator, n: int = 1, h: int = 112, w: int = 128) -> torch.Tensor:
    ramp = torch.linspace(0, 1, w).expand(n, 3, h, w)
    return (ramp + 0.15 * torch.randn(n, 3, h, w, generator=rng)).clamp(0, 1)


def _forest(values: list[float]) -> dict[str, torch.Tensor]:
    """One single-leaf tree per value (padded to 3 nodes)."""
    t = len(values)
    return {
        "left": torch.full((t, 3), -1),
        "right": torch.full((t, 3), -1),
        "feature": torch.full((t, 3), -1),
        "threshold": torch.zeros(t, 3, dtype=torch.float64),
        "value": torch.tensor([[v, 0.0, 0.0] for v in values], dtype=torch.float64),
        "bias": torch.tensor([0.0, 1.0], dtype=torch.float64),
    }


def _constant_model(a: float, b: float, c: float, linear: tuple[float, ...]) -> dict[str, torch.Tensor]:
    sd = {"linear": torch.tensor(linear, dtype=torch.float64)}
    for k, v in enumerate((a, b, c), start=1):
        sd.update({f"rf{k}.{key}": t for key, t in _forest([v, v]).items()})
    return sd


# ---- statistics ---------------------------------------------------------------------------------------------------


def test_ggd_shape_is_gama_gen_gauss(rng: torch.Generator) -> None:
    x = torch.randn(6, 300, generator=rng, dtype=torch.float64) ** torch.arange(1, 7, dtype=torch.float64)[:, None]
    got = ggd_shape(x)
    want = [_gama_gen_gauss(v) for v in x.numpy()]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert ggd_shape(torch.zeros(1, 10, dtype=torch.float64)).item() == 10.0  # rho = 0: the last grid value
    assert math.isnan(ggd_shape(torch.tensor([[math.nan, 1.0]], dtype=torch.float64)).item())


def test_dct_matrix_is_matlab_dct2() -> None:
    b = torch.rand(7, 7, dtype=torch.float64)
    d = dct_matrix(7)
    assert torch.allclose(d @ d.T, torch.eye(7, dtype=torch.float64), atol=1e-14)
    assert np.allclose((d @ b @ d.T).numpy(), scipy.fft.dctn(b.numpy(), norm="ortho"), atol=1e-13)


@pytest.mark.parametrize("shape", [(20, 23), (21, 21)])
def test_block_dct_features_match_the_matlab_loop(shape: tuple[int, int], rng: torch.Generator) -> None:
    im = torch.rand(1, 1, *shape, generator=rng, dtype=torch.float64) ** 2
    got = block_dct_features(im)[0]
    want = _block_dct_numpy(im[0, 0].numpy())
    assert got.tolist() == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_scales_and_singular_values_match_numpy(rng: torch.Generator) -> None:
    im = torch.rand(1, 1, 31, 26, generator=rng, dtype=torch.float64)
    s = scales(im)
    assert [tuple(x.shape[-2:]) for x in s] == [(31, 26), (15, 13), (7, 6)]  # im_f(2:2:end, 2:2:end)
    h = np.exp(-(np.arange(-1, 2)[:, None] ** 2 + np.arange(-1, 2)[None] ** 2) / 0.5)
    h /= h.sum()  # fspecial('gaussian', 3) = sigma 0.5
    pad = np.pad(im[0, 0].numpy(), 1)
    filt = np.array([[(pad[i : i + 3, j : j + 3] * h).sum() for j in range(26)] for i in range(31)])
    assert np.allclose(s[1][0, 0].numpy(), filt[1::2, 1::2], atol=1e-14)
    big = torch.rand(1, 1, 27, 26, generator=rng, dtype=torch.float64)
    padded = np.pad(big[0, 0].numpy(), ((0, 3), (0, 4)))  # im2col 'distinct' pads to a multiple of 5
    cols = np.stack([padded[r : r + 5, c : c + 5].ravel(order="F") for c in range(0, 30, 5) for r in range(0, 30, 5)])
    want = np.linalg.svd(cols.T, compute_uv=False)
    assert np.allclose(block_singular_values(big)[0].numpy(), want, atol=1e-12)
    with pytest.raises(ValueError, match="25 distinct 5x5 blocks"):
        block_singular_values(torch.rand(1, 1, 20, 20, dtype=torch.float64))


# ---- pyramid and GSM ----------------------------------------------------------------------------------------------


def test_point_op_interpolates_and_clamps_flat_ends() -> None:
    lut = torch.tensor([0.0, 0.0, 1.0, 4.0, 4.0], dtype=torch.float64)
    x = torch.tensor([-3.0, 0.0, 1.5, 2.25, 3.0, 9.0], dtype=torch.float64)
    got = point_op(x, lut, origin=-1.0, increment=1.0)
    assert got.tolist() == pytest.approx([0.0, 0.0, 2.5, 4.0, 4.0, 4.0])
    assert np.allclose(got.numpy(), np.interp(x.numpy() + 1.0, np.arange(5), lut.numpy()))


def test_steerable_pyramid_sizes_and_orientation_selectivity() -> None:
    h, w = 64, 75
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    stripes_x = torch.cos(2 * math.pi * 14 * xx / w)  # varies along x: angle 0 in the spectrum
    stripes_y = torch.cos(2 * math.pi * 12 * yy / h)  # varies along y: angle pi/2 -> band 3 of 6
    bands = steerable_pyramid(torch.stack([stripes_x, stripes_y]))
    assert len(bands) == 14
    assert [tuple(b.shape[-2:]) for b in bands[:2] + bands[7:8] + bands[13:]] == [
        (64, 75),
        (64, 75),
        (32, 38),
        (16, 19),
    ]
    energy = torch.stack([b.square().sum(dim=(1, 2)) for b in bands[1:7]], dim=1)
    assert energy.argmax(dim=1).tolist() == [0, 3]
    assert (energy[0, 0] > 20 * energy[0, 2:5]).all()
    flat = steerable_pyramid(torch.full((1, 32, 32), 7.0, dtype=torch.float64))
    assert all(b.abs().max() < 1e-9 for b in flat[:-1])  # a constant lives in the low-pass only


def _recon_sf_pyramid(bands: list[torch.Tensor], n_orient: int = 6, height: int = 2) -> torch.Tensor:
    """matlabPyrTools ``reconSFpyr`` (all levels and bands), written from its definition for this test."""

    def fft(x):
        return torch.fft.fftshift(torch.fft.fft2(x.to(torch.complex128)), dim=(-2, -1))

    h, w = bands[0].shape[-2:]
    ch, cw = _centre(h), _centre(w)
    xr = (torch.arange(w, dtype=torch.float64) - cw) / (w / 2)
    yr = (torch.arange(h, dtype=torch.float64) - ch) / (h / 2)
    yy, xx = torch.meshgrid(yr, xr, indexing="ij")
    angle = torch.atan2(yy, xx)
    log_rad = torch.sqrt(xx**2 + yy**2)
    log_rad[ch, cw] = log_rad[ch, cw - 1]
    log_rad = torch.log2(log_rad)
    xrcos, yrcos = _rcos()
    yrcos = yrcos.sqrt()
    yircos = torch.sqrt(1 - yrcos**2)
    step = float(xrcos[1] - xrcos[0])
    order = n_orient - 1
    xcosn = math.pi * torch.arange(-2049, 1026, dtype=torch.float64) / 1024
    const = 2 ** (2 * order) * math.factorial(order) ** 2 / (n_orient * math.factorial(2 * order))
    ycosn = math.sqrt(const) * torch.cos(xcosn) ** order

    def levs(level, log_rad, angle, xrcos):
        if level == height:
            return fft(bands[-1])
        xrcos = xrcos - 1.0
        dh, dw = log_rad.shape
        lh, lw = math.ceil((dh - 0.5) / 2), math.ceil((dw - 0.5) / 2)
        sh, sw = _centre(dh) - _centre(lh), _centre(dw) - _centre(lw)
        nlr, nang = log_rad[sh : sh + lh, sw : sw + lw], angle[sh : sh + lh, sw : sw + lw]
        lomask = point_op(nlr, torch.sqrt(1 - yrcos**2).abs(), float(xrcos[0]), step)
        res = torch.zeros(bands[0].shape[0], dh, dw, dtype=torch.complex128)
        res[..., sh : sh + lh, sw : sw + lw] = levs(level + 1, nlr, nang, xrcos) * lomask
        himask = point_op(log_rad, yrcos, float(xrcos[0]), step)
        for b in range(n_orient):
            am = point_op(angle, ycosn, float(xcosn[0]) + math.pi * b / n_orient, float(xcosn[1] - xcosn[0]))
            res = res + (1j) ** order * fft(bands[1 + level * n_orient + b]) * am * himask
        return res

    res = levs(0, log_rad, angle, xrcos) * point_op(log_rad, yircos, float(xrcos[0]), step)
    res = res + fft(bands[0]) * point_op(log_rad, yrcos, float(xrcos[0]), step)
    return torch.fft.ifft2(torch.fft.ifftshift(res, dim=(-2, -1))).real


@pytest.mark.parametrize("shape", [(64, 64), (63, 50)])
def test_steerable_pyramid_reconstructs_the_image(shape: tuple[int, int], rng: torch.Generator) -> None:
    # a self-inverting frame: exact up to the linear interpolation of the 259- and 3075-entry lookup tables (~1e-5)
    im = torch.rand(2, *shape, generator=rng, dtype=torch.float64) * 255
    err = (_recon_sf_pyramid(steerable_pyramid(im)) - im).abs().max().item()
    assert err < 0.01, err


def test_normalized_subbands_shapes_and_zero_mean(rng: torch.Generator) -> None:
    im = torch.rand(2, 64, 80, generator=rng, dtype=torch.float64) * 255
    sub = normalized_subbands(steerable_pyramid(im))
    assert len(sub) == 12
    assert {tuple(s.shape) for s in sub[:6]} == {(2, 64 - 2 - 32, 80 - 2 - 32)}  # 3x3 border, guard band 16
    assert {tuple(s.shape) for s in sub[6:]} == {(2, 32 - 2 - 16, 40 - 2 - 16)}  # guard band 8
    assert all(s.mean(dim=(1, 2)).abs().max() < 1e-12 for s in sub)
    assert all(torch.isfinite(s).all() for s in sub)
    zero = normalized_subbands(steerable_pyramid(torch.zeros(1, 64, 64, dtype=torch.float64)))
    assert all(torch.isnan(s).all() for s in zero)  # the release stops here (reshape of an empty selection)


def _norm_sender_numpy(pyr: list[np.ndarray]) -> list[np.ndarray]:
    """norm_sender_normalized.m (2 scales, 6 orientations, parent, neighbours, 3x3) transcribed loop by loop."""
    from bench.data.imresize import imresize

    n_or, n_band = 6, len(pyr) - 1
    out = []
    for scale in (1, 2):
        for orien in range(1, n_or + 1):
            nband = (scale - 1) * n_or + orien + 1  # 1-based position in pyr
            aux = pyr[nband - 1]
            nsy, nsx = aux.shape
            prnt = nband < n_band - n_or
            nblv, nblh = nsy - 2, nsx - 2
            cols = []
            for ny in (-1, 0, 1):
                for nx in (-1, 0, 1):  # shift(y, [ny nx]) then the interior
                    cols.append(np.roll(aux, (ny, nx), axis=(0, 1))[1 : 1 + nblv, 1 : 1 + nblh].ravel(order="F"))
            if prnt:
                parent = imresize(torch.from_numpy(pyr[nband + n_or - 1])[None, None], 2.0)[0, 0].numpy()
                cols.append(parent[:nsy, :nsx][1 : 1 + nblv, 1 : 1 + nblh].ravel(order="F"))
            for neib in range(1, n_or + 1):
                if neib != orien:
                    other = pyr[(scale - 1) * n_or + neib]
                    cols.append(other[1 : 1 + nblv, 1 : 1 + nblh].ravel(order="F"))
            y = np.stack(cols, axis=1)
            c = y.T @ y / y.shape[0]
            lam, q = np.linalg.eigh(c)
            pos = lam * (lam > 0)
            lam = pos * lam.sum() / (pos.sum() + (pos.sum() == 0))
            c = q @ np.diag(lam) @ q.T
            o_c = aux[1 : 1 + nblv, 1 : 1 + nblh].ravel(order="F")
            o_c = o_c - o_c.mean()
            z = np.sqrt(((y @ np.linalg.pinv(c)) * y).sum(1) / (9 + prnt))
            g = (o_c / z).reshape(nblv, nblh, order="F")
            gb = 16 // 2 ** (scale - 1)
            g = g[gb:-gb, gb:-gb]
            out.append(g - g.mean())
    return out


def test_normalized_subbands_match_the_matlab_loop(rng: torch.Generator) -> None:
    im = torch.rand(1, 60, 70, generator=rng, dtype=torch.float64) * 255
    bands = steerable_pyramid(im)
    got = normalized_subbands(bands)
    want = _norm_sender_numpy([b[0].numpy() for b in bands])
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape[1:] == b.shape and np.allclose(a[0].numpy(), b, rtol=1e-8, atol=1e-10), k


def test_ssim_cs(rng: torch.Generator) -> None:
    a = torch.randn(2, 20, 24, generator=rng, dtype=torch.float64) * 30
    assert ssim_cs(a, a).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert (ssim_cs(a, -a) < 0).all()
    with pytest.raises(ValueError, match="11x11"):
        ssim_cs(a[:, :10], a[:, :10])


# ---- features end to end ----------------------------------------------------------------------------------------


def test_features_shapes_finite_deterministic_and_batched(rng: torch.Generator) -> None:
    x = _image(rng, n=2)
    grey = grey_levels(x)
    f1, f2, f3 = nrqm_features(grey)
    assert f1.shape == (2, 18) and f2.shape == (2, 45) and f3.shape == (2, 75)
    assert all(torch.isfinite(f).all() and f.dtype == torch.float64 for f in (f1, f2, f3))
    again = nrqm_features(grey)
    assert all(torch.equal(a, b) for a, b in zip((f1, f2, f3), again, strict=True))
    alone = nrqm_features(grey[1:])
    assert all(torch.allclose(a[1:], b, rtol=1e-9, atol=1e-12) for a, b in zip((f1, f2, f3), alone, strict=True))
    assert (f3[:, :24] >= f3[:, 1:25]).all()  # singular values are sorted, per scale
    assert (f2[:, 18:] <= 1 + 1e-12).all()  # cs terms are bounded correlations


def test_zero_image_known_features() -> None:
    grey = torch.zeros(1, 1, 96, 96, dtype=torch.float64)
    f1, f2, f3 = nrqm_features(grey)
    assert f1[0].tolist() == [10.0, 10.0, 0.0, 0.0, 0.0, 0.0] * 3  # rho = 0 -> shape 10; cv and orientation 0
    assert (f3 == 0).all()
    assert torch.isnan(f2[0, :18]).all() and (f2[0, 18:30] == 1).all()  # cs of two zero bands is C2 / C2


# ---- regression ---------------------------------------------------------------------------------------------------


def test_forest_predict_hand_made_forest() -> None:
    # tree 0: x1 <= 0.5 ? 1 : (x0 <= -1 ? 2 : 3); tree 1: a single leaf 10
    forest = {
        "left": torch.tensor([[1, -1, 3, -1, -1], [-1, -1, -1, -1, -1]]),
        "right": torch.tensor([[2, -1, 4, -1, -1], [-1, -1, -1, -1, -1]]),
        "feature": torch.tensor([[1, -1, 0, -1, -1], [-1, -1, -1, -1, -1]]),
        "threshold": torch.tensor([[0.5, 0, -1.0, 0, 0], [0.0] * 5], dtype=torch.float64),
        "value": torch.tensor([[9.0, 1.0, 9.0, 2.0, 3.0], [10.0, 0, 0, 0, 0]], dtype=torch.float64),
        "bias": torch.tensor([0.0, 1.0], dtype=torch.float64),
    }
    x = torch.tensor([[0.0, 0.5], [-1.0, 0.6], [0.0, 0.7], [math.nan, 0.0]], dtype=torch.float64)
    got = forest_predict(x, forest)
    assert got[:3].tolist() == [5.5, 6.0, 6.5] and math.isnan(got[3].item())
    forest["bias"] = torch.tensor([1.0, 2.0], dtype=torch.float64)  # regRF bias correction a + b * y
    assert forest_predict(x[:3], forest).tolist() == [12.0, 13.0, 14.0]


def test_score_is_the_linear_combination(rng: torch.Generator) -> None:
    metric = NRQM(weights=_constant_model(1.0, 2.0, 3.0, (0.5, 1.0, 2.0, 3.0)))
    out = metric(_image(rng, n=2, h=96, w=100))
    assert out.tolist() == [14.5, 14.5]  # 0.5 + 1*1 + 2*2 + 3*3
    assert metric.spec.higher_is_better and metric.spec.color_space == "grey"
    assert "2/2/2 trees" in metric.spec.backbone


def test_zero_image_scores_nan_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    metric = NRQM(weights=_constant_model(1.0, 2.0, 3.0, (0.5, 1.0, 2.0, 3.0)))
    with caplog.at_level(logging.WARNING, logger="bench.metrics.nrqm"):
        out = metric(torch.zeros(1, 3, 96, 96))
    assert math.isnan(out.item()) and "NaN for 1 image" in caplog.text


def test_nrqm_y_uses_the_niqe_y_levels(rng: torch.Generator) -> None:
    x = _image(rng, h=100, w=100)
    y = build_metric("nrqm_y", pretrained=False)
    assert torch.equal(y.levels(x), NIQEY(pretrained=False).grey_levels(x))
    assert y.spec.name == "nrqm_y" and y.spec.color_space == "y" and "placeholder" in y.spec.extra["weights"]
    assert torch.equal(build_metric("nrqm", pretrained=False).levels(x), grey_levels(x))


# ---- errors -------------------------------------------------------------------------------------------------------


def test_missing_model_is_one_line_with_the_fetch_command(isolated_home) -> None:
    with pytest.raises(AssetError) as info:
        build_metric("nrqm")
    assert "\n" not in str(info.value) and FETCH_COMMAND in str(info.value) and info.value.fix == FETCH_COMMAND


def test_bad_inputs() -> None:
    metric = NRQM(pretrained=False, crop_border=4)
    with pytest.raises(ValueError, match="96x96 pixels after crop_border 4, got 92x96"):
        metric(torch.rand(1, 3, 100, 104))
    bad = _constant_model(1.0, 2.0, 3.0, (0.5, 1.0, 2.0, 3.0))
    bad["rf2.feature"] = torch.tensor([[45, -1, -1], [0, -1, -1]])
    bad["rf2.left"] = torch.tensor([[1, -1, -1], [1, -1, -1]])
    bad["rf2.right"] = torch.tensor([[2, -1, -1], [2, -1, -1]])
    with pytest.raises(ValueError, match=r"rf2\.feature has an index outside 0\.\.44"):
        NRQM(weights=bad)
    with pytest.raises(ValueError, match="missing"):
        NRQM(weights={"linear": torch.zeros(4, dtype=torch.float64)})
