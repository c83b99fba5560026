"""Training losses: ESRGAN's content loss (pixel L1 + perceptual) and the relativistic average GAN loss.

Content loss (Wang et al., ESRGAN, ECCVW 2018; BasicSR ``train_ESRGAN_x4.yml``): ``pixel_weight * L1(sr, hr) +
perceptual_weight * L1(phi(sr), phi(hr))`` with phi VGG19 ``conv5_4`` before the ReLU on ImageNet-normalised inputs,
weights 1e-2 and 1.0. It is :class:`bench.attacks.losses.L1PerceptualLoss` (per image) averaged over the batch, with
the attack issue's backbone rule: VGG19 when its asset is stored, else VGG16 ``conv5_3`` (logged and recorded in
:func:`backbone_info` -> every checkpoint's metadata).

Relativistic average GAN (Jolicoeur-Martineau, ICLR 2019; ESRGAN eq. 1-2), with ``C`` the discriminator's logits and
BCE the binary cross-entropy on logits::

    generator:      0.5 * [BCE(C(hr) - mean C(sr), 0) + BCE(C(sr) - mean C(hr), 1)]   (C(hr) detached)
    discriminator:  0.5 * [BCE(C(hr) - mean C(sr), 1) + BCE(C(sr) - mean C(hr), 0)]   (each mean detached)

The generator term is weighted by ``gan_weight`` (5e-3 in ESRGAN); the discriminator loss is not weighted. The
discriminator form is BasicSR's: its two halves are back-propagated with the other half's mean detached.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.attacks.losses import IMAGENET_MEAN, IMAGENET_STD, L1PerceptualLoss, load_perceptual_backbone

logger = logging.getLogger(__name__)


def ragan_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's RaGAN loss (scalar); ``real_logits`` should be detached, ``fake_logits`` carry the graph."""
    real_logits = real_logits.detach()
    loss_real = F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), torch.zeros_like(real_logits))
    loss_fake = F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), torch.ones_like(fake_logits))
    return 0.5 * (loss_real + loss_fake)


def ragan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's RaGAN loss (scalar); ``fake_logits`` come from detached generator outputs."""
    loss_real = F.binary_cross_entropy_with_logits(
        real_logits - fake_logits.detach().mean(), torch.ones_like(real_logits)
    )
    loss_fake = F.binary_cross_entropy_with_logits(
        fake_logits - real_logits.detach().mean(), torch.zeros_like(fake_logits)
    )
    return 0.5 * (loss_real + loss_fake)


class FeatureExtractor(nn.Module):
    """phi(x): a frozen feature module on ImageNet-normalised [0, 1] images (the perceptual backbone).

    Args:
        features: a module returning ``[tap]`` for a normalised image (VGG19 conv5_4, VGG16 conv5_3, a tiny test net).
    """

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (feat,) = self.features((x - self.mean) / self.std)
        return feat

    def train(self, mode: bool = True) -> FeatureExtractor:
        # the backbone stays in eval mode whatever the trainer does
        super().train(mode)
        self.features.eval()
        return self


def load_backbone(backbone: str = "auto", features: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The perceptual backbone and what it is: ``features`` as given (tests), else the attack issue's rule
    (:func:`bench.attacks.losses.load_perceptual_backbone`: VGG19 conv5_4 when stored, else VGG16 conv5_3)."""
    if features is not None:
        info = {"backbone": "given module", "layer": None, "weights": type(features).__name__, "fallback_reason": None}
        return features.requires_grad_(False).eval(), info
    net, info = load_perceptual_backbone(backbone)
    return net, info


def content_loss(
    pixel_weight: float, perceptual_weight: float, features: nn.Module | None, info: dict[str, Any]
) -> L1PerceptualLoss:
    """``pixel_weight * L1 + perceptual_weight * L1(features)`` per image (an :class:`L1PerceptualLoss`), with the
    backbone ``features`` shared (``None`` when the perceptual weight is 0) and its ``info`` recorded in the spec."""
    if perceptual_weight != 0.0 and features is None:
        raise ValueError("a perceptual weight needs a backbone")
    loss = L1PerceptualLoss(
        l1_weight=pixel_weight,
        perceptual_weight=perceptual_weight,
        features=features if perceptual_weight != 0.0 else None,
        backbone="auto",
    )
    if perceptual_weight != 0.0:
        loss.info = dict(info)
    return loss
