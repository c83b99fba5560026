"""Stage *attack*: the cell's attack on a batch of corrupted LR inputs -> ``x_adv`` and its record.

The attack (:mod:`bench.attacks`) maximises its loss through the method: white-box for deterministic methods, EOT
for stochastic ones, by transfer from a surrogate (the matrix's ``surrogate``, or the base card for
``transfer_from_base`` -- taken from the wrapper itself when it wraps that card), in the matrix's precision policy
like the methods (:mod:`bench.runner.stages.precision`; its stamp on the rows as ``surrogate_precision*``). The mode
the attack ran is an :class:`~bench.results.schema.AttackMode`, decided by the attack alone. Each image of a batch
has its own generator, seeded by (cell key, image name, ``"attack"``), and the attacks draw each image's randomness
from its own and compute per-image losses and gradients (:mod:`bench.attacks.base`), so ``batch_images`` changes no
draw: the runner batches the attacked cells of deterministic methods (their values then differ by floating-point
summation order: oneDNN CPU convolutions change it with the batch size, ~1e-8 on outputs and ~1e-10 on gradients of
a tiny RRDB, and so do TF32 or bf16 CUDA ones; a signed-gradient step taken on a near-zero gradient entry, or a
uint8 rounding of the output, may then flip and move that pixel by 2 alpha, or 1/255 -- rare, and the tests compare
with batch-invariant native convolutions, ``batch_invariant_convs`` in ``tests/conftest.py``) and
gives stochastic ones -- a stochastic method, or a transfer from a stochastic surrogate (:meth:`Attacker.one_per_batch`)
-- one image per batch.

The route of a cell (``direct``, ``transfer``, ``transfer-from-base``, ``refused``) is planned from the cards
(:func:`bench.runner.cells.method_threats`); :meth:`Attacker.build` checks it again with the built methods and
raises ``RuntimeError`` when the two disagree (a bug, not bad data), and :meth:`Attacker.__call__` checks that the
mode the attack records is :func:`planned_mode`. A ``refused`` cell, and an attack that refuses the method for another
reason (no HR, ...), raise :class:`bench.errors.AttackRefused` (its images become failure rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bench.errors import AttackRefused, BadOutput
from bench.results.schema import AttackMode
from bench.runner.cells import REFUSED, Cell, attack_route
from bench.runner.stages import precision
from bench.runner.stages.prepare import Item
from bench.seeding import canonical_json, make_generator, seed_from


def planned_mode(cell: Cell, stochastic: bool) -> AttackMode | None:
    """The mode a cell's plan implies (the mode its rows record; ``stochastic``: the method's): ``None`` unattacked
    or ``refused``; otherwise :meth:`AttackMode.decide` as the attack decides it (transfer with a surrogate, gradient
    free for an attack that needs no gradient, EOT for a stochastic method, else white-box)."""
    threat = cell.threat
    if not threat.attacked or threat.variant == REFUSED:
        return None
    from bench.attacks import ATTACKS

    gradient = ATTACKS.get(threat.attack).gradient_needed(threat.params)
    return AttackMode.decide(transfer=threat.surrogate is not None, gradient=gradient, stochastic=stochastic)


def refusal(cell: Cell, from_base: bool = False) -> AttackRefused:
    """The error of a ``refused`` cell: what gives no gradient, and the matrix edit that lets it be attacked
    (``from_base``: its surrogate is the wrapper's own base card, the ``transfer_from_base`` setting)."""
    t = cell.threat
    where = f"attack entry {t.name!r} of the matrix"
    if from_base:
        return AttackRefused(
            f"{t.attack} needs gradients, but method {cell.method!r} is not differentiable, nor is its base card "
            f"{t.surrogate!r} it would be transferred from",
            fix=f"drop transfer_from_base from {where} (and name a differentiable method card as its 'surrogate:')",
        )
    if t.surrogate is None:
        return AttackRefused(
            f"{t.attack} needs gradients, but method {cell.method!r} is not differentiable (a median-smoothing card is "
            "as differentiable as its base) and the attack names no surrogate",
            fix=f"add 'surrogate: CARD' (a differentiable method card) to {where}, or attack it with random_sign",
        )
    return AttackRefused(
        f"{t.attack} needs gradients, but method {cell.method!r} is not differentiable, nor is the card it would be "
        f"transferred from ({t.surrogate!r})",
        fix=f"name a differentiable method card as 'surrogate:' of {where}",
    )


def refusal_of(cell: Cell, method: Any) -> AttackRefused:
    """The error of a ``refused`` cell of the built ``method`` (what its failure rows say, and what ``bench run
    --dry-run`` shows for it): :func:`refusal`, from its base when the surrogate is the wrapper's own base card."""
    surrogate = cell.threat.surrogate
    return refusal(cell, surrogate is not None and method.inner(surrogate) is not None)


class Attacker:
    """Builds attacks with losses and surrogates shared across the run.

    Args:
        device: where losses and surrogates live.
        precision_mode: the matrix's ``precision`` (``auto`` | ``fp32`` | ``bf16``): surrogates run in the same
            policy as the methods (:func:`bench.runner.stages.precision.guard_surrogate`).
        compile_mode: the matrix's ``compile`` (``false`` | ``true`` | ``auto``), for the surrogates too.
    """

    def __init__(self, device: torch.device, precision_mode: str = "auto", compile_mode: str = "false") -> None:
        self.device = device
        self.precision_mode = precision_mode
        self.compile_mode = compile_mode
        self._losses: dict[str, Any] = {}
        self._surrogates: dict[str, Any] = {}

    def loss(self, loss: Mapping[str, Any]) -> Any:
        """The attack loss ``{name, **params}``, built once per run."""
        key = canonical_json(dict(loss))
        if key not in self._losses:
            from bench.attacks import build_loss

            params = {k: v for k, v in loss.items() if k != "name"}
            self._losses[key] = build_loss(str(loss["name"]), **params).to(self.device)
        return self._losses[key]

    def surrogate(self, name: str, method: Any) -> Any:
        """The surrogate method ``name`` in the run's precision policy: the wrapper's own inner method when it is that
        card (as guarded as the wrapper's base already is, else guarded here), else built once and guarded."""
        inner = method.inner(name)
        if inner is not None:
            return precision.guard_surrogate(inner, name, self.precision_mode, self.device, self.compile_mode)
        if name not in self._surrogates:
            from bench.methods import cards

            built = cards.build_method(name, device=self.device)
            mode, compile_mode = self.precision_mode, self.compile_mode
            self._surrogates[name] = precision.guard_surrogate(built, name, mode, self.device, compile_mode)
        return self._surrogates[name]

    def one_per_batch(self, cell: Cell, method: Any) -> bool:
        """Whether the attacked cell must run one image per batch: its method is stochastic, or its surrogate is
        (a stochastic model draws from one generator per call, so per-image generators cannot be honoured). The
        surrogate's capability is the wrapper's own inner method's when it wraps that card, else its card's."""
        if method.capabilities.stochastic:
            return True
        name = cell.threat.surrogate
        if not cell.threat.attacked or name is None or cell.threat.variant == REFUSED:
            return False
        inner = method.inner(name)
        if inner is not None:
            return bool(inner.capabilities.stochastic)
        if name in self._surrogates:
            return bool(self._surrogates[name].capabilities.stochastic)
        from bench.methods.cards import load_card

        try:
            return bool(load_card(name).stochastic)
        except (KeyError, OSError, ValueError):  # building it fails the cell with the card's error anyway
            return True

    def build(self, cell: Cell, method: Any) -> Any:
        """The attack object of an attacked cell; :class:`AttackRefused` for a ``refused`` one, ``RuntimeError`` when
        the built methods contradict the planned route (the cards' capabilities and the methods' disagree)."""
        from bench.attacks import build_attack

        threat = cell.threat
        if threat.variant == REFUSED:
            raise refusal_of(cell, method)
        kwargs = threat.attack_kwargs(method.capabilities.stochastic)
        surrogate = self.surrogate(threat.surrogate, method) if threat.surrogate is not None else None
        attack = build_attack(threat.attack, **kwargs, loss=self.loss(threat.loss), surrogate=surrogate)
        attacked = surrogate if surrogate is not None else method
        route = attack_route(threat.variant, attacked.capabilities.differentiable, attack.needs_gradient)
        if route != threat.variant:
            raise RuntimeError(
                f"{cell.label()}: planned {threat.variant!r}, but the built {attacked.label!r} is not differentiable "
                "while its card says it is (MethodCard.capabilities and Method.capabilities disagree)"
            )
        return attack

    def __call__(self, cell: Cell, method: Any, items: Sequence[Item], lr: torch.Tensor, hr: torch.Tensor):
        """Attack the batch; set each item's ``attack_columns``; return ``(x_adv, record)``."""
        attack = self.build(cell, method)
        generators = [make_generator(seed_from(cell.seed_key, it.name, "attack"), self.device) for it in items]
        result = attack(method, lr, hr, generators)
        planned = planned_mode(cell, method.capabilities.stochastic)
        if AttackMode(result.mode) != planned:
            raise RuntimeError(f"{cell.label()}: the attack ran in mode {result.mode}, its plan says {planned}")
        record = result.record()
        record["images"] = [it.name for it in items]
        surrogate_columns = precision.surrogate_stamp(attack.surrogate if cell.threat.surrogate is not None else None)
        if cell.threat.surrogate is not None:
            record["surrogate_precision"] = surrogate_columns
        n = len(items)
        linf = record.get("linf") or [None] * n
        for i, item in enumerate(items):
            item.attack_columns = {
                "attack_mode": AttackMode(result.mode),
                "attack_surrogate": cell.threat.surrogate,
                "attack_loss_clean": float(result.loss_clean[i]),
                "attack_loss_adv": float(result.loss_adv[i]),
                "attack_forward": result.forward_count,
                "attack_backward": result.backward_count,
                "attack_seconds": result.seconds / n,
                "attack_linf": linf[i],
                **surrogate_columns,
            }
        if not torch.isfinite(result.x_adv).all():
            raise BadOutput("the attack returned a non-finite input")
        return result.x_adv, record
