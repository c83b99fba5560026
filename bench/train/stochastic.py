"""The ``stochastic`` trainer: stochastic SR, one generator that samples the space of plausible HR images.

Paper: Goldenberg and Savir's NTIRE 2021 "Learning the Super-Resolution Space" entry (seed 004): an SRGAN-type
generator with a random noise input, trained with::

    alpha * L_SRGAN(SR_i, GT) + beta * L1(SR_i downscaled, LR) - gamma * L_var(phi(SR_i), phi(SR_j))

where ``SR_i``, ``SR_j`` are two samples for the same LR (two noise draws), phi a pretrained classifier's features,
and the LR-consistency term serves the challenge's rule PSNR(SR downscaled, LR) >= 45 dB. The entry gives no weights.

This project's reading (section ``stochastic``):

- the generator is :class:`bench.archs.stochastic.StochasticRRDBNet` (ESRGAN's RRDBNet with ``num_noise_ch`` noise
  maps concatenated to the LR; their input weights start at zero, so training starts at the ``init`` model);
- per iteration two noise draws per image, both samples in one generator batch; ``L_SRGAN`` is ESRGAN's generator
  loss (content + RaGAN with the recipe's weights) on both samples; the downscaling is MATLAB bicubic
  (:func:`bench.data.imresize.bicubic_downsample`, differentiable) and the LR the clean input; ``L_var`` is the mean
  absolute difference of the two samples' perceptual features (the training's backbone: VGG19 conv5_4 or VGG16
  conv5_3, ImageNet weights);
- defaults ``alpha = 1``, ``beta = 1``, ``gamma = 0.01`` (our choice: a diversity reward well below the perceptual
  term, which has weight 1 in ``L_SRGAN``), ``num_noise_ch = 3``.

At inference :meth:`bench.archs.stochastic.StochasticRRDBNet.sample` (and the ``stochastic_rrdbnet`` method adapter)
gives (n, N, 3, 4h, 4w) samples for the diversity score and LR-PSNR.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from torch import nn

from bench.data.imresize import bicubic_downsample
from bench.train import TRAINERS
from bench.train.base import GeneratorOutput, Trainer
from bench.train.losses import FeatureExtractor

logger = logging.getLogger(__name__)


@TRAINERS.register("stochastic", aliases=("stochastic_sr",))
class StochasticTrainer(Trainer):
    """Stochastic SR training (see the module docstring)."""

    defaults: ClassVar[dict[str, Any]] = {
        "generator": {"num_noise_ch": 3},
        "stochastic": {"alpha": 1.0, "beta": 1.0, "gamma": 0.01},
    }

    def needs_backbone(self) -> bool:
        return float(self.config["stochastic"]["gamma"]) != 0.0

    def build_generator(self) -> nn.Module:
        from bench.archs.stochastic import StochasticRRDBNet, infer_noise_channels

        arch = dict(self.config["generator"])
        noise_ch = int(arch.pop("num_noise_ch"))
        weights = self.init_weights()
        if weights is not None and infer_noise_channels(weights) == noise_ch and noise_ch != 0:
            net = StochasticRRDBNet(num_noise_ch=noise_ch, **arch)
            net.load_state_dict(weights, strict=True)  # a stochastic checkpoint (continuing a run of this recipe)
            return net
        return StochasticRRDBNet.from_rrdbnet(weights, num_noise_ch=noise_ch, **arch)

    def setup(self) -> None:
        s = self.config["stochastic"]
        self.alpha = float(s["alpha"])
        self.beta = float(s["beta"])
        self.gamma = float(s["gamma"])
        self.phi = FeatureExtractor(self.backbone).to(self.device) if self.backbone is not None else None

    def lr_consistency(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """``mean |bicubic_downsample(sr) - lr|`` over the batch (scalar)."""
        return (bicubic_downsample(sr, self.scale) - lr).abs().mean()

    def diversity(self, sr_i: torch.Tensor, sr_j: torch.Tensor) -> torch.Tensor:
        """``mean |phi(sr_i) - phi(sr_j)|`` (scalar)."""
        return (self.phi(sr_i) - self.phi(sr_j)).abs().mean()

    def generate(
        self, lr_in: torch.Tensor, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> GeneratorOutput:
        n = lr_in.shape[0]
        sr = self.g_train(torch.cat([lr_in, lr_in]), generator=generator)
        sr_i, sr_j = sr[:n], sr[n:]
        l_lr = self.lr_consistency(sr, torch.cat([lr_in, lr_in]))
        extra = self.beta * l_lr
        logs = {"l_lr_consistency": float(l_lr.detach())}
        if self.gamma != 0.0:
            l_var = self.diversity(sr_i, sr_j)
            extra = extra - self.gamma * l_var
            logs["l_var"] = float(l_var.detach())
        return GeneratorOutput(sr, torch.cat([hr, hr]), extra, logs)
