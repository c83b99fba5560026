"""EOT: an adaptive attack on randomised methods -- any registered attack with gradients averaged over k draws of the
method's randomness and the worst of r restarts kept per image.

Paper: Athalye, Carlini, Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018 (Expectation over
Transformation); the adaptive-evaluation guidance of Tramer et al., "On Adaptive Attacks to Adversarial Example
Defenses", NeurIPS 2020. Randomised SR defences -- CertSR's median smoothing (seed 001) and stochastic SR (seed 004) --
must be evaluated this way, not with a single draw.

``EOT(attack="pgd", samples=8, restarts=3, **attack_params)`` builds the inner attack (``attack_params`` go to it: eps,
steps, ...) and runs its :meth:`~bench.attacks.base.Attack.perturb` with every loss value and gradient averaged over
``samples`` draws (each draw consumes the cell's generator, so the whole attack is reproducible), ``restarts`` times,
keeping per image the run with the highest (EOT-estimated) loss. On a deterministic method the samples collapse to 1
(identical draws) while the restarts remain (they differ by the random start). Mode recorded: ``eot`` (or
``transfer`` with a ``surrogate``).

Args:
    attack: name of the inner attack (``"pgd"``).
    samples: EOT draws k per loss / gradient (8).
    restarts: independent runs r, worst kept (3).
    loss, target, surrogate: see :class:`bench.attacks.base.Attack`.
    **attack_params: the inner attack's own hyper-parameters.

Input/output as the inner attack (threat model, bounds and ``never_below_clean`` are the inner attack's). Cost: k x r
times the inner attack's.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch

from bench.attacks import ATTACKS
from bench.attacks.base import Attack, AttackError, Objective
from bench.attacks.draws import Generators

logger = logging.getLogger(__name__)


@ATTACKS.register("eot", aliases=("eot_pgd",))
class EOT(Attack):
    """Expectation over Transformation around an inner attack (see the module docstring)."""

    params: ClassVar[tuple[str, ...]] = ("attack", "samples")

    def __init__(
        self,
        attack: str = "pgd",
        samples: int = 8,
        restarts: int = 3,
        loss: Any = None,
        target: str = "hr",
        surrogate: Any = None,
        **attack_params: Any,
    ) -> None:
        from bench.attacks import ATTACKS as registry

        name = registry.canonical(attack)
        if name == "eot":
            raise AttackError("EOT cannot wrap itself")
        super().__init__(loss=loss, target=target, eot_samples=samples, restarts=restarts, surrogate=surrogate)
        self.attack = name
        self.samples = int(samples)
        self.inner: Attack = registry.get(name)(loss=loss, target=target, **attack_params)
        # the inner attack's threat model and guarantees are this attack's
        self.threat = self.inner.threat  # type: ignore[misc]
        self.needs_gradient = self.inner.needs_gradient  # type: ignore[misc]
        self.never_below_clean = self.inner.never_below_clean  # type: ignore[misc]
        self.random_start = self.inner.random_start  # type: ignore[misc]

    @classmethod
    def gradient_needed(cls, params: dict[str, Any] | None = None) -> bool:
        """The inner attack's (``params["attack"]``, default ``pgd``) need of gradients."""
        from bench.attacks import ATTACKS as registry

        inner = registry.get(str((params or {}).get("attack", "pgd")))
        return bool(inner.needs_gradient) if inner is cls else inner.gradient_needed(params)  # eot(eot) is refused

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), **{f"inner.{k}": v for k, v in self.inner.hyperparameters().items()}}

    def objective_calls(self) -> tuple[int, int]:
        """The inner attack's (every call averaged over ``samples`` draws, repeated ``restarts`` times)."""
        return self.inner.objective_calls()

    def __getattr__(self, name: str) -> Any:
        # eps, steps, ... of the inner attack read through (only called when normal lookup fails)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def clean_input(self, lr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        return self.inner.clean_input(lr, hr)

    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: Generators | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.perturb(objective, x, loss_clean, generator, hr)
