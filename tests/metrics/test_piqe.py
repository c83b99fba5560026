"""PIQE block decisions against a per-block NumPy recomputation (the MATLAB loop), padding, masks and error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.metrics import build_metric
from bench.metrics.nss import grey_levels, mscn
from bench.metrics.piqe import PIQE, _pad_symmetric_post, piqe_blocks, piqe_score


def _loop_piqe(coef: np.ndarray) -> float:
    """MATLAB piqe's block loop on the MSCN coefficients of one image (H, W multiples of 16)."""
    total, active = 0.0, 0
    for i in range(0, coef.shape[0], 16):
        for j in range(0, coef.shape[1], 16):
            b = coef[i : i + 16, j : j + 16]
            v = np.var(b, ddof=1)
            if v <= 0.1:
                continue
            active += 1
            edges = [b[0, :], b[:, 15], b[15, :], b[:, 0]]
            distorted = any(np.std(e[s : s + 6], ddof=1) < 0.1 for e in edges for s in range(11))
            centre = np.concatenate([b[:, 7], b[:, 8]])
            rest = np.delete(np.delete(b, 7, axis=1), 8, axis=1)  # MATLAB deletes column 8, then column 9 of the rest
            r = np.std(centre, ddof=1) / np.std(rest, ddof=1)
            r = 0.0 if np.isnan(r) else r
            s = np.sqrt(v)
            noisy = s > 2 * abs(s - r) / max(s, r)
            total += distorted * (1 - v) + noisy * v
    return 100 * (total + 1) / (active + 1)


def _image(rng: torch.Generator) -> torch.Tensor:
    """Smooth areas, hard edges and noise, so that every block decision occurs."""
    x = torch.zeros(1, 3, 64, 80)
    x[..., :32, :] = torch.linspace(0.2, 0.8, 80)
    x[..., 32:, 40:] = 0.9
    x[..., 32:, :40] = 0.4 + 0.2 * torch.rand(1, 3, 32, 40, generator=rng)
    x[..., 8:24, 50:70] += 0.3 * torch.rand(1, 3, 16, 20, generator=rng)
    return x.clamp(0, 1)


def test_blocks_match_the_matlab_loop(rng: torch.Generator) -> None:
    x = _image(rng)
    grey = grey_levels(x)
    im = torch.floor(255 * grey / grey.max() + 0.5)
    coef = mscn(im, padding="replicate")[0, 0].numpy()
    blocks = piqe_blocks(grey)
    assert blocks["active"].any() and blocks["distorted"].any() and (~blocks["active"]).any()
    assert piqe_score(blocks).item() == pytest.approx(_loop_piqe(coef), abs=1e-9)
    assert PIQE()(x).item() == pytest.approx(_loop_piqe(coef), abs=1e-9)


def test_symmetric_post_padding() -> None:
    x = torch.arange(18.0).reshape(1, 1, 3, 6)
    p = _pad_symmetric_post(x, 4)
    assert p.shape == (1, 1, 4, 8)
    assert p[0, 0, 3].tolist()[:6] == x[0, 0, 2].tolist()  # row 4 mirrors row 3
    assert p[0, 0, 0, 6:].tolist() == [5.0, 4.0]  # columns 7, 8 mirror 6, 5


def test_batch_scale_invariance_and_range(rng: torch.Generator) -> None:
    a, b = _image(rng), torch.rand(1, 3, 64, 80, generator=rng)
    m = PIQE()
    both = m(torch.cat([a, b]))
    assert torch.allclose(both, torch.cat([m(a), m(b)]))
    assert ((both >= 0) & (both <= 100)).all()
    assert m(torch.full((1, 3, 32, 32), 0.5)).item() == 100.0  # no active block: (0 + 1) / (0 + 1)
    levels = torch.randint(0, 101, (1, 1, 64, 80), generator=rng).float().expand(1, 3, 64, 80)
    levels = levels.clone()
    levels[..., :32, :] = levels[..., :32, :1]  # flat rows too
    dim, bright = levels / 255, 2 * levels / 255  # grey images; rescaled to their maximum they are identical
    assert m(dim).item() == m(bright).item()


def test_masks_and_crop(rng: torch.Generator) -> None:
    x = torch.nn.functional.pad(_image(rng), (0, 5, 0, 3), mode="replicate")  # 67 x 85: padded to 80 x 96 inside
    masks = PIQE().masks(x)
    assert set(masks) == {"activity", "noticeable_artifacts", "noise"}
    assert all(v.shape == (1, 1, 67, 85) and v.dtype == torch.bool for v in masks.values())
    assert not (masks["noise"] & ~masks["activity"]).any()
    assert PIQE(crop_border=4)(x).item() == pytest.approx(PIQE()(x[..., 4:-4, 4:-4]).item())


def test_spec_and_errors() -> None:
    spec = build_metric("piqe").spec
    assert spec.name == "piqe" and not spec.higher_is_better and not spec.full_reference and spec.color_space == "grey"
    with pytest.raises(ValueError, match="16x16"):
        PIQE()(torch.rand(1, 3, 15, 40))
    with pytest.raises(ValueError, match="all-black"):
        PIQE()(torch.zeros(1, 3, 32, 32))


def test_device_matches_cpu(device: torch.device, rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 64, 64, generator=rng)
    assert torch.allclose(PIQE().to(device)(x.to(device)).cpu(), PIQE()(x), atol=1e-6)
