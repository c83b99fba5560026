"""The ``esrgan`` trainer: plain ESRGAN fine-tuning (recipe ``esrgan-ft``), the machinery of :mod:`bench.train.base`.

Paper: Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCVW 2018
(https://arxiv.org/abs/1809.00219). CertSR (seed 001 sec. 5) fine-tunes the official ESRGAN on DIV2K "for a fair
comparison": Adam (0.9, 0.99), lr 1e-4, 18k iterations, batch 16, DIV2K cut into 480x480 sub-images. The loss is
ESRGAN's: ``1e-2 * L1 + 1.0 * perceptual (VGG19 conv5_4, pre-activation) + 5e-3 * RaGAN``, the VGG-128
discriminator, HR patches of 128 (the discriminator's input), an EMA (0.999) of the generator.

Everything is in :class:`bench.train.base.Trainer`; this class only registers it under the name ``esrgan``.
"""

from __future__ import annotations

from bench.train import TRAINERS
from bench.train.base import Trainer


@TRAINERS.register("esrgan", aliases=("esrgan_ft",))
class ESRGANTrainer(Trainer):
    """ESRGAN fine-tuning: L1 + perceptual + RaGAN on bicubic LR patches (see :mod:`bench.train.base`)."""
