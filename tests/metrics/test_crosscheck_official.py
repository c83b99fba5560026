"""Cross-checks against the authors' ``lpips`` package, where it and torchvision import (CUDA machines).

On the CPU-only torch used in CI, torchvision (and so ``lpips``) cannot be imported: these tests skip with the reason.
Both implementations get the same backbone weights (the ``lpips-alex`` asset); the official package contributes its
own v0.1 heads from its wheel, so the heads are cross-checked too.
"""

from __future__ import annotations

import pytest
import torch

from bench.images import read_image


def _official_lpips():
    try:
        import lpips  # optional cross-check dependency
        import torchvision  # noqa: F401
    except Exception as exc:  # torchvision's CUDA build fails to load here with OSError/RuntimeError
        pytest.skip(f"official lpips/torchvision not importable: {type(exc).__name__}: {exc}")
    return lpips


def _our_weights() -> dict[str, torch.Tensor]:
    assets = pytest.importorskip("bench.assets")
    try:
        return assets.load_state_dict("lpips-alex")
    except (assets.AssetError, OSError) as exc:
        pytest.skip(f"lpips-alex asset unavailable: {exc}")


@pytest.mark.network
def test_lpips_alex_matches_the_official_package(calibration_dir, device) -> None:
    lpips = _official_lpips()
    from bench.metrics import build_metric

    weights = _our_weights()
    official = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    # The official backbone slices hold torchvision's ``features`` convs under their original indices.
    where = {1: "slice1.0", 2: "slice2.3", 3: "slice3.6", 4: "slice4.8", 5: "slice5.10"}
    backbone = {f"{where[i]}.{part}": weights[f"conv{i}.{part}"] for i in where for part in ("weight", "bias")}
    missing, unexpected = official.net.load_state_dict(backbone, strict=False)
    assert not unexpected and not [k for k in missing if "weight" in k or "bias" in k]
    official = official.to(device).eval()
    for i in range(5):  # heads: the package's own v0.1 files vs the converted carrier
        torch.testing.assert_close(
            official.lins[i].model[-1].weight.detach().cpu(), weights[f"lin{i}.weight"], rtol=0, atol=1e-7
        )

    ours = build_metric("lpips_alex").to(device)
    for name in ("I03", "I04", "I06", "I08", "I19"):
        ref = read_image(calibration_dir / "ref" / f"{name}.png")[None].to(device)
        dist = read_image(calibration_dir / "dist" / f"{name}.png")[None].to(device)
        with torch.no_grad():
            expected = official(dist, ref, normalize=True).flatten()
            got = ours(dist, ref)
        assert abs(float(got) - float(expected)) < 1e-5, (name, float(got), float(expected))
