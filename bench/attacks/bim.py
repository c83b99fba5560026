"""BIM: T signed-gradient steps of alpha = eps / T from the clean input (L-infinity), best iterate returned.

Paper: Kurakin, Goodfellow, Bengio, "Adversarial Examples in the Physical World", ICLR Workshop 2017; for SR as in
CertSR (seed 001 §3.1): ``x_0 = x``, ``x_t = x_{t-1} + alpha * sign(grad L(f(x_{t-1}), y))`` with ``alpha = eps / T``.
Each iterate is clipped to [0, 1] and (against rounding only; T * alpha = eps) projected on the eps-ball.

Choices where the paper is silent: **T = 10 at test** (the paper gives T = 2 for AD-L-BIM training only); the attack
returns, per image, the iterate with the highest loss among ``x_0 = x, x_1, ..., x_T``, so its loss is never below the
clean loss.

Args:
    eps: L-infinity budget on the [0, 1] scale (10/255).
    steps: T (10).
    loss, target, eot_samples, restarts, surrogate: see :class:`bench.attacks.base.Attack`.

Input (N, 3, h, w) in [0, 1]; ``x_adv`` in [0, 1], ``||x_adv - x||_inf <= eps``. Cost: 1 + T forward/backward + 1
forward per EOT sample (the first is the clean loss).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from bench.attacks import ATTACKS
from bench.attacks.pgd import PGD

logger = logging.getLogger(__name__)


@ATTACKS.register("bim", aliases=("i_fgsm",))
class BIM(PGD):
    """Basic Iterative Method: PGD from the clean input (no random start) with alpha = eps / T."""

    random_start: ClassVar[bool] = False
    params: ClassVar[tuple[str, ...]] = ("eps", "steps", "alpha")

    def __init__(self, eps: float = 10 / 255, steps: int = 10, **kwargs) -> None:
        alpha = float(eps) / int(steps) if int(steps) >= 1 else None  # PGD rejects steps < 1 with a clear error
        super().__init__(eps=eps, steps=steps, alpha=alpha, random_start=False, **kwargs)
