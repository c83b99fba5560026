"""``certsr_paper``: registered, recorded, the same terms as ``l1_perceptual`` with the calibrated weights, and on a
tiny model whose perceptual term dominates (as VGG conv5's does) FGSM with it lowers PSNR more than the default."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

from bench.attacks import ATTACK_LOSSES, build_attack, build_loss
from bench.attacks.losses import L1PerceptualLoss, describe
from bench.attacks.paper_loss import PAPER_PERCEPTUAL_WEIGHT, CertSRPaperLoss
from bench.methods.base import Method
from bench.methods.bicubic import Bicubic


class DeepFeatures(nn.Module):
    """A random three-conv, two-pool feature net whose pre-activation output differs between two images by ~1, about
    fifty times their pixel L1 -- the regime of VGG conv5 features (see bench.attacks.paper_loss)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.convs = nn.ModuleList([nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)])
        self.convs.append(nn.Conv2d(32, 32, 3, padding=1))
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (6.0 / fan_in) ** 0.5)
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = nn.functional.avg_pool2d(torch.relu(self.convs[0](x)), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.convs[1](x)), 2)
        return [self.convs[2](x)]


class BicubicPlusRRDB(Method):
    """A tiny SR model whose output follows its input, as a trained one does: bicubic x4 plus 0.1 x a random tiny
    RRDBNet (num_feat 8, one block)."""

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def __init__(self, rrdb: Method) -> None:
        super().__init__(scale=4)
        self.bicubic, self.rrdb = Bicubic(), rrdb

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.bicubic(lr) + 0.1 * self.rrdb(lr)


def _psnr(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return -10 * torch.log10((sr.clamp(0, 1) - hr).square().flatten(1).mean(1))


def test_registered_with_the_calibrated_weights_and_recorded() -> None:
    assert {"l1", "l1_perceptual", "mse", "certsr_paper"} <= set(ATTACK_LOSSES.names())
    loss = build_loss("paper", features=DeepFeatures(), features_desc="deep random convs")
    assert isinstance(loss, CertSRPaperLoss) and loss.l1_weight == 1.0 and loss.perceptual_weight == 1e-2
    spec = loss.spec()
    assert spec["loss"] == "certsr_paper" and spec["pre_activation"] and "calibration" in spec
    assert describe(spec).startswith("certsr_paper: 1.0*L1 + 0.01*deep random convs")


def test_value_is_l1_plus_weighted_perceptual() -> None:
    feats = DeepFeatures()
    g = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    pixel = L1PerceptualLoss(perceptual_weight=0.0)(sr, hr)
    percep = L1PerceptualLoss(l1_weight=0.0, features=feats)(sr, hr)
    torch.testing.assert_close(CertSRPaperLoss(features=feats)(sr, hr), pixel + PAPER_PERCEPTUAL_WEIGHT * percep)


def test_fgsm_with_the_paper_loss_lowers_psnr_more_than_the_default(make_method, batch) -> None:
    lr, hr = batch
    feats = DeepFeatures()
    default = L1PerceptualLoss(features=feats, features_desc="deep random convs")
    paper = CertSRPaperLoss(features=feats, features_desc="deep random convs")
    drops = {"default": [], "paper": []}
    for seed in range(3):
        method = BicubicPlusRRDB(make_method(seed)).eval()
        with torch.no_grad():
            sr0 = method(lr)
            clean = _psnr(sr0, hr)
            pixel, percep = (sr0 - hr).abs().mean(), default(sr0, hr).mean() - (sr0 - hr).abs().mean()
        assert percep > 10 * pixel  # the perceptual term dominates the default loss, as at VGG conv5
        for name, loss in (("default", default), ("paper", paper)):
            x_adv = build_attack("fgsm", eps=10 / 255, loss=loss)(method, lr, hr).x_adv
            with torch.no_grad():
                drops[name].append(float((clean - _psnr(method(x_adv), hr)).mean()))
    mean = {k: sum(v) / len(v) for k, v in drops.items()}
    assert mean["paper"] > mean["default"] + 0.1, drops
    assert all(p > d for p, d in zip(drops["paper"], drops["default"], strict=True)), drops


@pytest.mark.slow
def test_paper_loss_on_realesrgan_crop() -> None:
    """Real weights (slow): on the astronaut crop, FGSM at 10/255 with ``certsr_paper`` costs Real-ESRGAN more than
    1.5 dB more than with the default loss (measured: clean 21.65, default 20.70, certsr_paper 17.19 dB)."""
    from bench import assets
    from bench.data import build_dataset
    from bench.data.imresize import bicubic_downsample
    from bench.images import quantize
    from bench.methods.cards import build_method
    from bench.metrics import build_metric

    if not (assets.is_stored("realesrgan-x4plus") and assets.is_stored("lpips-vgg")):
        pytest.skip("needs realesrgan-x4plus and lpips-vgg (python -m bench assets fetch realesrgan-x4plus lpips-vgg)")
    hr = build_dataset("embedded-eval", crop=128).load("astronaut").hr.unsqueeze(0)
    lr = quantize(bicubic_downsample(hr))
    method = build_method("realesrgan-x4plus", "cpu", tile=0)
    psnr = build_metric("psnr", crop_border=4)
    scores = {}
    for name in ("l1_perceptual", "certsr_paper"):
        x_adv = build_attack("fgsm", eps=10 / 255, loss=build_loss(name))(method, lr, hr).x_adv
        scores[name] = float(psnr(method.super_resolve(quantize(x_adv)), hr)[0])
    assert scores["certsr_paper"] < scores["l1_perceptual"] - 1.5, scores
