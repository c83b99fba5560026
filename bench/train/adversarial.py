"""The ``adversarial`` trainer: AD-L-FGSM, AD-L-BIM, AD-L-CW and AD-L-PGD (adversarial fine-tuning of ESRGAN).

Papers: Castillo et al., "Generalized Real-World Super-Resolution through Adversarial Robustness", ICCVW 2021 (RSR,
seed 000: AD-L-PGD); Chaouai & Tamaazousti, CertSR (seed 001 sec. 5: AD-L-FGSM / BIM / CW fine-tuned for 18k
iterations, batch 16, from ESRGAN).

Each iteration replaces the LR batch by adversarial examples made against the **current** generator (not the EMA)
with the attack issue's implementations (:mod:`bench.attacks`), then takes the ESRGAN step of
:class:`bench.train.base.Trainer` on them against the clean HR (L1 + perceptual + GAN with ESRGAN's weights).

Settings (section ``attack``; the recipes carry the papers' values):

- ``name``: ``fgsm`` (eps 9/255), ``bim`` (eps 9/255, 2 steps, alpha = eps/T), ``cw`` (c 1e-2, 4 Adam steps, lr
  1e-2), ``pgd`` (RSR: eps 14/255, 2 steps, alpha 1/255);
- ``params``: the attack's constructor arguments (free-form, checked by the attack);
- ``loss``: ``{l1_weight, perceptual_weight}`` of the loss the attack maximises, with the training's perceptual
  backbone: CertSR's ``L1 + perceptual`` (1, 1) for FGSM/BIM/CW; RSR's ``1e-2 * L1 + 1.0 * perceptual`` for PGD;
- ``noise_scale``: PGD's random start drawn at (H / noise_scale, W / noise_scale) and nearest-upsampled, as the RSR
  code does (1.5); ``null`` draws per pixel.

What the attacks return: the bench attacks return, per image, the iterate with the highest loss among the clean input
and the iterates (BIM, PGD, CW with ``select: max_loss``), so the adversarial batch's loss is never below the clean
batch's; FGSM returns its single step (may be below, as in the paper). The RSR code keeps the last PGD iterate; with
2 steps of 1/255 from a random start the two rarely differ. The attack runs with the generator in eval mode (RRDBNet
has no normalisation layers, so the mode changes nothing) and takes no parameter gradients.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bench.attacks.draws import uniform_like
from bench.attacks.pgd import PGD
from bench.train import TRAINERS
from bench.train.base import Trainer

logger = logging.getLogger(__name__)


class LowResStartPGD(PGD):
    """PGD whose uniform random start is drawn at a lower resolution and nearest-upsampled (the RSR training code's
    ``noise_scale``): ``u ~ U(-eps, eps)`` of size (round(h / s), round(w / s)), ``x_0 = clip(x + up(u), 0, 1)``."""

    params: ClassVar[tuple[str, ...]] = (*PGD.params, "noise_scale")

    def __init__(self, noise_scale: float = 1.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not noise_scale >= 1.0:
            raise ValueError(f"noise_scale must be >= 1, got {noise_scale}")
        self.noise_scale = float(noise_scale)

    def start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.random_start:
            return x
        h, w = x.shape[-2:]
        small = x.new_empty(
            (x.shape[0], x.shape[1], max(1, round(h / self.noise_scale)), max(1, round(w / self.noise_scale)))
        )
        u = uniform_like(small, -self.eps, self.eps, generator)
        return (x + F.interpolate(u, size=(h, w), mode="nearest")).clamp(0.0, 1.0)


@TRAINERS.register("adversarial", aliases=("ad_l",))
class AdversarialTrainer(Trainer):
    """Adversarial fine-tuning: ESRGAN steps on adversarial LR made on the fly (see the module docstring)."""

    defaults: ClassVar[dict[str, Any]] = {
        "attack": {
            "name": "pgd",
            "params": {},  # the attack's constructor arguments (the recipes give them; {} = the attack's defaults)
            "loss": {"l1_weight": 1e-2, "perceptual_weight": 1.0},
            "noise_scale": 1.5,
        },
        "train": {"iters": 30000},
    }

    def needs_backbone(self) -> bool:
        return float(self.config["attack"]["loss"]["perceptual_weight"]) != 0.0

    def setup(self) -> None:
        from bench.attacks import build_attack
        from bench.attacks.losses import L1PerceptualLoss

        a = self.config["attack"]
        weights = a["loss"]
        self.attack_loss = L1PerceptualLoss(
            l1_weight=float(weights["l1_weight"]),
            perceptual_weight=float(weights["perceptual_weight"]),
            features=self.backbone if float(weights["perceptual_weight"]) != 0.0 else None,
        ).to(self.device)
        if float(weights["perceptual_weight"]) != 0.0:
            self.attack_loss.info = dict(self.perceptual_info)
        params = dict(a["params"] or {})
        name = str(a["name"]).lower()
        if name == "pgd" and a.get("noise_scale") is not None:
            self.attack = LowResStartPGD(noise_scale=float(a["noise_scale"]), loss=self.attack_loss, **params)
        else:
            self.attack = build_attack(name, loss=self.attack_loss, **params)
        logger.info("adversarial training with %r, loss %s", self.attack, self.attack_loss.spec())

    def make_inputs(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        was_training = self.net_g.training
        try:
            result = self.attack(self.as_method(), lr, hr, generator)  # puts the generator in eval mode
        finally:
            self.net_g.train(was_training)
        self.last_attack = result
        logs = {
            "attack_loss_clean": float(result.loss_clean.mean()),
            "attack_loss_adv": float(result.loss_adv.mean()),
            "attack_linf": max(result.extra["linf"]) if result.extra.get("linf") else math.nan,
        }
        return result.x_adv, logs
