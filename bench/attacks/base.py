"""The attack interface: a thin base class that owns the modes (white-box, EOT, transfer), the loss and the records.

A subclass writes :meth:`Attack.perturb` (how to move the input); the base owns everything around it:

- **validation**: (N, 3, h, w) LR in [0, 1], an HR of (N, 3, s*h, s*w) when the loss needs one, a generator when
  anything is random; attacks that need gradients **refuse** methods whose ``differentiable`` is False (JPEG, ncnn,
  ...) with an :class:`AttackError` that says to attack them by transfer (``surrogate=``).
- **modes** (recorded as ``AttackResult.mode``): ``white-box`` -- gradients through the attacked method itself;
  ``eot`` -- the method is stochastic (median smoothing, stochastic SR): every loss and gradient is the average over
  ``eot_samples`` draws of its randomness (Expectation over Transformation, Athalye et al. ICML 2018), and the worst
  (highest loss) of ``restarts`` runs is kept per image; ``transfer`` -- the perturbation is computed on a named
  ``surrogate`` method and then evaluated on the target, which may be non-differentiable; ``gradient-free`` --
  attacks that need no gradient (the random sign baseline).
- **the loss** (:class:`AttackLoss`, per image): default ``l1_perceptual`` (L1 + VGG perceptual against the HR, see
  :mod:`bench.attacks.losses`), built on first use. ``target="hr"`` compares the output with the HR ground truth
  (CertSR §3.1); ``target="clean"`` is the no-reference variant for data without ground truth: the output is pushed
  away from the method's own (detached) output on the clean input.
- **the record** (:class:`AttackResult`): the adversarial LR, the loss before and after, the number of forward and
  backward passes through SR methods, wall-clock seconds (CUDA synchronised), the mode and the full spec.

Threat models (``Attack.threat``): ``linf`` (``||x_adv - x||_inf <= eps``, x_adv in [0, 1]), ``l2`` (CW: a penalty on
``||x_adv - x||_2``, no hard bound), ``degradation`` (the LR is re-made from the HR by a perturbed degradation
network), ``none`` (baselines). Attacks with ``never_below_clean = True`` keep the clean input among their candidates
and return, per image, the candidate with the highest loss, so ``loss_adv >= loss_clean`` (on the attacked method).

**Generators.** ``generator`` is one :class:`torch.Generator` for the batch or a sequence with one per image. With
a sequence, every random draw of the attack (PGD's uniform start, the random signs, the degradation attack's
networks and noise maps, each restart's) takes image i's slice from image i's generator, and every loss is per image
with gradients of the *sum* of the per-image losses, so image i's result is the same (to floating-point summation
order) whether it is attacked alone or in a batch: the runner batches the attacked cells of deterministic methods
this way. A stochastic method (EOT) draws its randomness from one generator per call, so it takes one generator (a
sequence of one), never several (:class:`AttackError`): the runner attacks it one image per batch. The draws live in :mod:`bench.attacks.draws`.

The runner calls an attack per batch::

    result = attack(method, lr, hr, [generator_of(name) for name in images])
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from bench.attacks.draws import Generators
from bench.errors import AttackRefused
from bench.images import check_batch
from bench.methods.base import Method
from bench.results.schema import AttackMode

logger = logging.getLogger(__name__)

TARGETS = ("hr", "clean")
DEFAULT_EOT_SAMPLES = 8


class AttackError(AttackRefused):
    """An attack that cannot run as asked (non-differentiable method, missing HR or generator, bad parameter)."""


class AttackLoss(nn.Module):
    """Base class of the losses an attack maximises: ``loss(sr, target) -> (N,)``, one value per image.

    ``sr`` is the method's **unclamped** output (N, 3, H, W) (so gradients flow everywhere), ``target`` the HR ground
    truth or the clean output, same shape, in [0, 1]. Subclasses implement :meth:`forward` and :meth:`spec`.
    """

    def forward(self, sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """What the loss is (JSON-able): name, weights, backbone, layer, where the weights come from."""
        raise NotImplementedError


@dataclass
class AttackResult:
    """What an attack returns for one batch.

    Attributes:
        x_adv: (N, 3, h, w) adversarial LR in [0, 1], detached, on the input's device.
        loss_clean: (N,) attack loss at the clean input (on the target method; an EOT estimate for stochastic ones).
        loss_adv: (N,) attack loss at ``x_adv``.
        forward_count: forward passes of a batch through SR methods (each EOT draw counts; surrogate included).
        backward_count: backward passes of a batch through SR methods.
        seconds: wall-clock time of the whole call (CUDA synchronised).
        mode: ``white-box``, ``eot``, ``transfer`` or ``gradient-free`` (see the module docstring).
        spec: the attack's hyper-parameters, its loss's spec, target, EOT samples, restarts, surrogate, mode.
        extra: per-image measurements: ``linf`` and ``l2`` distances of ``x_adv`` to the clean input.
    """

    x_adv: torch.Tensor
    loss_clean: torch.Tensor
    loss_adv: torch.Tensor
    forward_count: int
    backward_count: int
    seconds: float
    mode: AttackMode = AttackMode.WHITE_BOX
    spec: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """A JSON-able summary (no tensors): mode, spec, counts, seconds, per-image losses and distances."""
        return {
            "mode": self.mode,
            "spec": self.spec,
            "forward_count": self.forward_count,
            "backward_count": self.backward_count,
            "seconds": self.seconds,
            "loss_clean": [float(v) for v in self.loss_clean],
            "loss_adv": [float(v) for v in self.loss_adv],
            **self.extra,
        }


class Objective:
    """The per-image quantity an attack maximises: ``loss(method(x), target)``, averaged over ``eot_samples`` draws.

    Values are (N,), one per image; the gradient is that of their **sum** (never their mean), so image i's gradient
    is the gradient of its own loss whatever the batch size (no rescaling by N of a step or of CW's objective).
    ``generator`` is what the method draws from (a stochastic method's single generator; ``None`` or ignored for a
    deterministic one).

    Counts forward and backward passes in :attr:`counts` (a dict shared with the objectives made by :meth:`select`).
    Gradients are taken with ``torch.autograd.grad`` w.r.t. the input only (method parameters get no ``.grad``).
    """

    def __init__(
        self,
        method: nn.Module,
        loss: AttackLoss,
        target: torch.Tensor,
        eot_samples: int = 1,
        generator: torch.Generator | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        self.method = method
        self.loss = loss
        self.target = target
        self.eot_samples = int(eot_samples)
        self.generator = generator
        self.counts = counts if counts is not None else {"forward": 0, "backward": 0}

    def select(self, index: int) -> Objective:
        """The objective of image ``index`` alone (target sliced), sharing the counters."""
        return Objective(
            self.method, self.loss, self.target[index : index + 1], self.eot_samples, self.generator, self.counts
        )

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) loss at ``x`` (no gradient)."""
        total = torch.zeros(x.shape[0], device=x.device)
        for _ in range(self.eot_samples):
            total += self.loss(self.method(x, self.generator), self.target).float()
            self.counts["forward"] += 1
        return total / self.eot_samples

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) loss at ``x`` and its gradient w.r.t. ``x`` (same shape), both detached and EOT-averaged."""
        total = torch.zeros(x.shape[0], device=x.device)
        grad = torch.zeros_like(x)
        for _ in range(self.eot_samples):
            xi = x.detach().requires_grad_(True)
            with torch.enable_grad():
                values = self.loss(self.method(xi, self.generator), self.target)
                (g,) = torch.autograd.grad(values.sum(), xi)
            self.counts["forward"] += 1
            self.counts["backward"] += 1
            total += values.detach().float()
            grad += g
        return total / self.eot_samples, grad / self.eot_samples


def keep_better(
    best_x: torch.Tensor, best_loss: torch.Tensor, x: torch.Tensor, loss: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, keep ``(x, loss)`` where ``loss`` is strictly higher than ``best_loss``."""
    better = loss > best_loss
    return torch.where(better.view(-1, 1, 1, 1), x, best_x), torch.where(better, loss, best_loss)


class Attack:
    """Base class of every attack (see the module docstring).

    Args:
        loss: an :class:`AttackLoss` (default: ``build_loss("l1_perceptual")`` built on first call).
        target: ``"hr"`` (against the ground truth) or ``"clean"`` (no-reference: away from the clean output).
        eot_samples: draws of a stochastic method's randomness averaged per loss/gradient (``None``:
            ``DEFAULT_EOT_SAMPLES`` = 8 for stochastic methods, 1 for deterministic ones; deterministic methods always
            use 1).
        restarts: independent runs; the worst case (highest loss) is kept per image (1).
        surrogate: a :class:`~bench.methods.base.Method` or a method card name: compute the attack on it and evaluate
            on the target method (transfer mode).

    Class attributes:
        threat: ``linf``, ``l2``, ``degradation`` or ``none``.
        needs_gradient: refuses non-differentiable attacked methods when True.
        never_below_clean: the result's loss is never below the clean loss (best iterate, clean included).
        random_start: uses the generator even for deterministic methods.
        params: names of the subclass's hyper-parameters (attributes), recorded in :meth:`spec`.
    """

    threat: ClassVar[str] = "linf"
    needs_gradient: ClassVar[bool] = True
    never_below_clean: ClassVar[bool] = True
    random_start: ClassVar[bool] = False
    params: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        loss: AttackLoss | None = None,
        target: str = "hr",
        eot_samples: int | None = None,
        restarts: int = 1,
        surrogate: Any = None,
    ) -> None:
        if target not in TARGETS:
            raise AttackError(f"target must be one of {TARGETS}, got {target!r}")
        if eot_samples is not None and int(eot_samples) < 1:
            raise AttackError(f"eot_samples must be >= 1, got {eot_samples}")
        if int(restarts) < 1:
            raise AttackError(f"restarts must be >= 1, got {restarts}")
        self.loss = loss
        self.target = target
        self.eot_samples = None if eot_samples is None else int(eot_samples)
        self.restarts = int(restarts)
        self.surrogate = surrogate
        self._surrogates: dict[tuple[str, str], Method] = {}

    @classmethod
    def gradient_needed(cls, params: dict[str, Any] | None = None) -> bool:
        """Whether an attack of this class built with ``params`` needs gradients of what it attacks, known before it
        is built (the run plans its attack settings from it): :attr:`needs_gradient`; a wrapper attack (EOT) asks its
        inner attack."""
        return bool(cls.needs_gradient)

    # --- to be written by subclasses -------------------------------------------------------------------------------
    def perturb(
        self,
        objective: Objective,
        x: torch.Tensor,
        loss_clean: torch.Tensor,
        generator: Generators | None,
        hr: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run: the adversarial input (N, 3, h, w) in [0, 1] and its (N,) loss under ``objective``.

        ``generator``: one generator, or (deterministic methods only) a list of one per image of ``x`` -- a run draws
        image i's randomness from its own (:func:`draw_per_image`, :func:`per_image`). The objective's losses are per
        image and its gradient is that of their sum, so images do not interact."""
        raise NotImplementedError

    def objective_calls(self) -> tuple[int, int]:
        """``(gradient calls, value calls)`` of the objective in one :meth:`perturb` run on one image: each gradient
        call is a forward and a backward per EOT sample, each value call a forward per EOT sample.

        :func:`bench.runner.passes.cell_passes` counts a cell's passes from it (plus the clean loss, the clean target
        of ``target="clean"``, the restarts and a transfer's evaluation, which :meth:`__call__` owns);
        ``tests/runner/test_passes.py`` checks the count against the passes a real run makes.
        """
        raise NotImplementedError(f"{type(self).__name__} does not say how many objective calls a run makes")

    def clean_input(self, lr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        """The clean input the attack starts from and is compared with (the LR; the degradation attack re-makes it)."""
        return lr

    # --- the machinery ---------------------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.params}

    def spec(self) -> dict[str, Any]:
        """The attack's configuration (JSON-able); the result's spec adds the loss, mode and effective EOT samples."""
        return {
            "attack": type(self).__name__,
            "threat": self.threat,
            **self.hyperparameters(),
            "target": self.target,
            "eot_samples": self.eot_samples,
            "restarts": self.restarts,
            "surrogate": self._surrogate_name(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def _surrogate_name(self) -> str | None:
        if self.surrogate is None:
            return None
        if isinstance(self.surrogate, str):
            return self.surrogate
        return self._name(self.surrogate)

    def _resolve_surrogate(self, device: torch.device) -> Method | None:
        if self.surrogate is None or not isinstance(self.surrogate, str):
            return self.surrogate
        key = (self.surrogate, str(device))
        if key not in self._surrogates:
            from bench.methods.cards import build_method

            self._surrogates[key] = build_method(self.surrogate, device)
        return self._surrogates[key]

    def _loss(self, device: torch.device) -> AttackLoss:
        if self.loss is None:
            from bench.attacks import build_loss

            self.loss = build_loss("l1_perceptual")
        return self.loss.to(device)

    def _samples(self, method: Method) -> int:
        if not method.capabilities.stochastic:
            if self.eot_samples not in (None, 1):
                logger.debug(
                    "%s is deterministic: EOT uses 1 sample instead of %s", type(method).__name__, self.eot_samples
                )
            return 1
        return self.eot_samples if self.eot_samples is not None else DEFAULT_EOT_SAMPLES

    @staticmethod
    def _name(method: Method) -> str:
        return method.label

    @torch.no_grad()
    def _clean_target(self, method: Method, x: torch.Tensor, samples: int, generator, counts) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3, *self._out_size(method, x), device=x.device)
        for _ in range(samples):
            out += method(x, generator).float()
            counts["forward"] += 1
        return out / samples  # unclamped, like the outputs the loss compares it with

    @staticmethod
    def _out_size(method: Method, x: torch.Tensor) -> tuple[int, int]:
        s = int(method.scale)
        return x.shape[-2] * s, x.shape[-1] * s

    def _generators(
        self, generator: Generators | None, n: int, stochastic: bool, method: Method
    ) -> torch.Generator | list[torch.Generator] | None:
        """``generator`` checked: ``None``, one generator, or (deterministic methods, N > 1) a list of N; a sequence of
        one is its generator (the same draws)."""
        if generator is None or isinstance(generator, torch.Generator):
            return generator
        gens = list(generator)
        if not gens or not all(isinstance(g, torch.Generator) for g in gens):
            raise AttackError(
                f"generator must be a torch.Generator or a sequence of them (one per image), got {generator!r}"
            )
        if len(gens) != n:
            raise AttackError(f"got {len(gens)} generators for a batch of {n} images: pass one per image, or one")
        if len(gens) == 1:
            return gens[0]
        if stochastic:
            raise AttackError(
                f"{type(self).__name__} on {self._name(method)!r}: a stochastic method (or surrogate) draws its "
                f"randomness from one generator per call, so {n} per-image generators cannot be honoured; attack it "
                "one image per batch with that image's generator"
            )
        return gens

    def _check_inputs(self, method: Method, lr: torch.Tensor, hr: torch.Tensor | None) -> None:
        for role, m in (("method", method), ("surrogate", self.surrogate)):
            if m is not None and not isinstance(m, (Method, str)):
                raise AttackError(
                    f"the attacked {role} is a {type(m).__name__}, not a bench Method (its capabilities are unknown); "
                    "wrap it in a bench.methods.base.Method subclass"
                )
        check_batch(lr, "lr")
        if float(lr.min()) < 0.0 or float(lr.max()) > 1.0:
            raise AttackError("lr must be in [0, 1]")
        if hr is not None:
            check_batch(hr, "hr")
            want = (lr.shape[0], 3, *self._out_size(method, lr))
            if tuple(hr.shape) != want:
                raise AttackError(f"hr has shape {tuple(hr.shape)}, expected {want} for an LR of {tuple(lr.shape)}")
        elif self.target == "hr":
            raise AttackError(
                f"{type(self).__name__} with target='hr' needs the HR ground truth; "
                "use target='clean' (no-reference) for data without ground truth"
            )

    def __call__(
        self,
        method: Method,
        lr: torch.Tensor,
        hr: torch.Tensor | None = None,
        generator: Generators | None = None,
    ) -> AttackResult:
        """Attack ``method`` on the batch ``lr`` (N, 3, h, w) in [0, 1] with ground truth ``hr`` (N, 3, sh, sw).

        ``generator``: one :class:`torch.Generator`, or a sequence of N (one per image: image i's draws come from its
        own, so its result does not depend on its batch; a stochastic method or surrogate takes one generator only).

        Returns an :class:`AttackResult`. Raises :class:`AttackError` for a non-differentiable method without a
        surrogate, a missing HR (target ``hr``) or generator (random start, stochastic method), a number of
        generators that is not N, or several generators for a stochastic method.
        """
        start = time.perf_counter()
        self._check_inputs(method, lr, hr)
        device = lr.device
        surrogate = self._resolve_surrogate(device)
        attacked = surrogate if surrogate is not None else method
        transfer = surrogate is not None
        if self.needs_gradient and not attacked.capabilities.differentiable:
            hint = (
                "choose a differentiable surrogate"
                if transfer
                else "attack it by transfer from a differentiable surrogate (surrogate=CARD)"
            )
            raise AttackError(
                f"{type(self).__name__} needs gradients, but method {self._name(attacked)!r} is not differentiable; "
                f"{hint}"
            )
        stochastic = attacked.capabilities.stochastic or method.capabilities.stochastic
        generator = self._generators(generator, lr.shape[0], stochastic, method)
        if generator is None and (self.random_start or stochastic):
            raise AttackError(
                f"{type(self).__name__} on {self._name(method)!r} needs a torch.Generator (seed per cell)"
            )
        # what the methods draw from: only stochastic ones draw, and they get a single generator
        method_generator = generator if isinstance(generator, torch.Generator) else None
        stochastic_attacked = attacked.capabilities.stochastic
        if self.needs_gradient and self.target == "clean" and not self.random_start and not stochastic_attacked:
            raise AttackError(
                f"{type(self).__name__} starts at the clean input, where the no-reference loss is at its minimum and "
                "its gradient is zero; use an attack with a random start (pgd) for target='clean'"
            )
        mode = AttackMode.decide(transfer=transfer, gradient=self.needs_gradient, stochastic=stochastic_attacked)
        loss = self._loss(device)
        method.eval()
        attacked.eval()
        counts = {"forward": 0, "backward": 0}
        samples = self._samples(attacked)
        x = self.clean_input(lr, hr).detach()
        target = hr if self.target == "hr" else self._clean_target(attacked, x, samples, method_generator, counts)
        objective = Objective(attacked, loss, target, samples, method_generator, counts)
        loss_clean = objective.value(x)
        best_x, best_loss = None, None
        for run in range(self.restarts):
            x_run, loss_run = self.perturb(objective, x, loss_clean, generator, hr)
            if best_x is None:
                best_x, best_loss = x_run, loss_run
            else:
                best_x, best_loss = keep_better(best_x, best_loss, x_run, loss_run)
            logger.debug("%s restart %d: loss %s", type(self).__name__, run, loss_run.tolist())
        extra: dict[str, Any] = {}
        if transfer:
            eval_samples = self._samples(method)
            eval_target = (
                hr if self.target == "hr" else self._clean_target(method, x, eval_samples, method_generator, counts)
            )
            evaluation = Objective(method, loss, eval_target, eval_samples, method_generator, counts)
            extra["surrogate_loss_clean"] = loss_clean.tolist()
            extra["surrogate_loss_adv"] = best_loss.tolist()
            loss_clean, best_loss = evaluation.value(x), evaluation.value(best_x)
        delta = (best_x - x).flatten(1).float()
        extra["linf"] = delta.abs().amax(dim=1).tolist()
        extra["l2"] = torch.linalg.vector_norm(delta, dim=1).tolist()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        spec = {
            **self.spec(),
            "eot_samples": samples,
            "mode": mode,
            "method": self._name(method),
            "loss": loss.spec(),
        }
        return AttackResult(
            x_adv=best_x.detach(),
            loss_clean=loss_clean.detach(),
            loss_adv=best_loss.detach(),
            forward_count=counts["forward"],
            backward_count=counts["backward"],
            seconds=time.perf_counter() - start,
            mode=mode,
            spec=spec,
            extra=extra,
        )
