"""Degradation-space attack: the AND degradation network, started at the identity, perturbed by PGD on its parameters
so that the LR it makes from the HR hurts the method most.

Paper: Luo, Wu, Guo, "AND: Adversarial Neural Degradation for Learning Blind Image Super-Resolution", NeurIPS 2023
(seed 002 §3.3, §4.3): re-initialise the degradation network to the identity (:mod:`bench.archs.degradation`), then
run 5 iterations of projected gradient ascent with step size 6 in an L2 ball of radius eps = 20 around the identity
parameters, the norm weighting the parameter groups by scale factors 1 (convolutions), 10 (noise injection) and
50 (non-linearities) -- a larger factor suppresses that kind of degradation more.

Exactly (this project's reading of the paper's norm): with ``s_g`` the group scale and ``u = s_g (theta - theta_id)``
the scaled deviation, ``||theta - theta_id||_S = ||u||_2`` over all parameters together. Each iteration takes the
normalised steepest-ascent step in ``u``: ``u <- u + step * g_u / ||g_u||_2`` with ``g_u = grad_theta L / s_g``, then
projects ``u`` on the ball ``||u||_2 <= eps``. The LR fed to the method is ``clamp(F_theta(hr), 0, 1)``.

Choices where the paper is silent: one degradation network **per image** (identity initialisation and noise maps drawn
from the image's own generator when one per image is given -- the runner's way --, else from the one generator in
image order), so with per-image generators an image's result does not depend on its batch; every iteration runs the
method once on the whole batch (the gradient of the sum of per-image losses) and steps each network in its own
scaled ball; the noise maps are
drawn once per image and kept fixed during the iterations; the clean reference is the identity network's output, i.e.
``antialiased_avg_pool(hr)`` (:func:`bench.archs.degradation.antialiased_avg_pool`, not the bicubic LR), and the
attack returns per image the iterate with the highest loss among the identity and the 5 iterates
(``never_below_clean``). The given ``lr`` is only used for its shape.

Args:
    eps: radius of the scaled L2 ball (20).
    steps: PGD iterations (5).
    step_size: step length in the scaled norm (6).
    scales: per-group norm scales ``{"conv": 1, "noise": 10, "nonlinearity": 50}``.
    channels, blocks_before, blocks_after: degradation network size (64, 5, 5).
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack`.

Input: ``lr`` (N, 3, h, w), ``hr`` (N, 3, 4h, 4w) in [0, 1] (required). Output ``x_adv`` (N, 3, h, w) in [0, 1].
Cost per image and EOT sample: 1 forward (clean) + ``steps`` forward/backward + 1 forward of the method, plus the
degradation network at HR resolution (about 16 x 5 x 74 kFLOP per LR pixel per pass for 64 channels).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from bench.archs.degradation import DegradationNet, antialiased_avg_pool
from bench.attacks import ATTACKS
from bench.attacks.base import Attack, AttackError, Objective, keep_better
from bench.attacks.draws import Generators, per_image

logger = logging.getLogger(__name__)

DEFAULT_SCALES = {"conv": 1.0, "noise": 10.0, "nonlinearity": 50.0}


@ATTACKS.register("degradation", aliases=("and", "adversarial_degradation"))
class DegradationAttack(Attack):
    """Adversarial Neural Degradation as an evaluation attack (see the module docstring)."""

    threat: ClassVar[str] = "degradation"
    random_start: ClassVar[bool] = True  # the identity initialisation and the noise maps are random draws
    params: ClassVar[tuple[str, ...]] = (
        "eps",
        "steps",
        "step_size",
        "scales",
        "channels",
        "blocks_before",
        "blocks_after",
    )

    def __init__(
        self,
        eps: float = 20.0,
        steps: int = 5,
        step_size: float = 6.0,
        scales: Mapping[str, float] | None = None,
        channels: int = 64,
        blocks_before: int = 5,
        blocks_after: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not eps >= 0 or not step_size > 0:
            raise AttackError(f"eps must be >= 0 and step_size > 0, got eps={eps}, step_size={step_size}")
        if int(steps) < 1:
            raise AttackError(f"steps must be >= 1, got {steps}")
        merged = {**DEFAULT_SCALES, **(dict(scales) if scales else {})}
        if set(merged) != set(DEFAULT_SCALES) or not all(v > 0 for v in merged.values()):
            raise AttackError(f"scales must give positive values for {sorted(DEFAULT_SCALES)}, got {scales!r}")
        self.eps = float(eps)
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.scales = {k: float(v) for k, v in merged.items()}
        self.channels = int(channels)
        self.blocks_before = int(blocks_before)
        self.blocks_after = int(blocks_after)

    def objective_calls(self) -> tuple[int, int]:
        """``steps`` gradients and one value (the last degradation's loss); the degradation network's own passes
        are not SR passes."""
        return self.steps, 1

    def clean_input(self, lr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        if hr is None:
            raise AttackError("the degradation attack makes the LR from the HR: pass hr")
        factor = hr.shape[-1] // lr.shape[-1]
        return antialiased_avg_pool(hr, factor).clamp(0.0, 1.0)

    def build_network(self, factor: int, device: torch.device, generator: torch.Generator | None) -> DegradationNet:
        net = DegradationNet(self.channels, self.blocks_before, self.blocks_after, factor).to(device)
        return net.reset_identity(generator)

    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: Generators | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One degradation network per image (drawn from that image's generator, or from the shared one in image
        order), every iteration one batched pass of the method; steps and projections per image."""
        if hr is None:
            raise AttackError("the degradation attack makes the LR from the HR: pass hr")
        factor = hr.shape[-1] // x.shape[-1]
        n = x.shape[0]
        gens = per_image(generator, n) if generator is not None else [None] * n
        nets, noises = [], []
        for i in range(n):  # network i, then its noise maps: the draw order of one image attacked alone
            net = self.build_network(factor, hr.device, gens[i])
            nets.append(net)
            noises.append(net.make_noise(hr[i : i + 1], gens[i]))
        params = [[p for g in net.param_groups().values() for p in g] for net in nets]
        scale = [self.scales[name] for name, g in nets[0].param_groups().items() for _ in g]
        identity = [[p.detach().clone() for p in ps] for ps in params]
        u = [[torch.zeros_like(p) for p in ps] for ps in params]  # per image: scaled deviation s_g * (theta - theta_id)
        best_x, best_loss = x, loss_clean

        def degrade() -> torch.Tensor:
            with torch.no_grad():
                for ps, p0s, us in zip(params, identity, u, strict=True):
                    for p, p0, ui, s in zip(ps, p0s, us, scale, strict=True):
                        p.copy_(p0 + ui / s)
            lrs = [net(hr[i : i + 1], noises[i]) for i, net in enumerate(nets)]
            return torch.cat(lrs).clamp(0.0, 1.0)

        for _ in range(self.steps):
            with torch.enable_grad():
                lr_t = degrade()
                loss, grad_x = objective.value_and_grad(lr_t.detach())  # one batched pass; gradient of the sum
                flat = [p for ps in params for p in ps]
                grads = torch.autograd.grad(lr_t, flat, grad_outputs=grad_x)  # image i's only reach network i
            best_x, best_loss = keep_better(best_x, best_loss, lr_t.detach(), loss)
            k = len(scale)
            for i in range(n):
                g_u = [g / s for g, s in zip(grads[i * k : (i + 1) * k], scale, strict=True)]
                g_norm = torch.sqrt(sum(g.square().sum() for g in g_u))
                if g_norm > 0:
                    u[i] = [ui + self.step_size * g / g_norm for ui, g in zip(u[i], g_u, strict=True)]
                u_norm = torch.sqrt(sum(ui.square().sum() for ui in u[i]))
                if u_norm > self.eps:
                    u[i] = [ui * (self.eps / u_norm) for ui in u[i]]
        with torch.no_grad():
            lr_t = degrade()
        return keep_better(best_x, best_loss, lr_t, objective.value(lr_t))
