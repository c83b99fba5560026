"""Stage *attack*: the cell's attack on a batch of corrupted LR inputs -> ``x_adv`` and its record.

The attack (:mod:`bench.attacks`) maximises its loss through the method: white-box for deterministic methods, EOT
for stochastic ones, by transfer from a surrogate (the matrix's ``surrogate``, or the base card for
``transfer_from_base`` -- taken from the wrapper itself when it wraps that card), in the matrix's precision policy
like the methods (:mod:`bench.runner.stages.precision`; its stamp on the rows as ``surrogate_precision*``). The mode
the attack ran is an :class:`~bench.results.schema.AttackMode`, decided by the attack alone. The generator is seeded
by (cell key, first image of the batch, ``"attack"``); the runner gives attacked cells one image per batch, so each
image's attack is seeded by its own name and ``batch_images`` cannot change it.

An attack that refuses the method raises :class:`bench.errors.AttackRefused` (its images become failure rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bench.errors import BadOutput
from bench.results.schema import AttackMode
from bench.runner.cells import Cell
from bench.runner.stages import precision
from bench.runner.stages.prepare import Item
from bench.seeding import canonical_json, make_generator, seed_from


def planned_mode(cell: Cell, stochastic: bool) -> AttackMode | None:
    """The mode a cell asks for before it runs (the failure rows of a refused attack carry it); ``None`` unattacked."""
    if not cell.threat.attacked:
        return None
    return AttackMode.decide(transfer=cell.threat.surrogate is not None, gradient=True, stochastic=stochastic)


class Attacker:
    """Builds attacks with losses and surrogates shared across the run.

    Args:
        device: where losses and surrogates live.
        precision_mode: the matrix's ``precision`` (``auto`` | ``fp32`` | ``bf16``): surrogates run in the same
            policy as the methods (:func:`bench.runner.stages.precision.guard_surrogate`).
    """

    def __init__(self, device: torch.device, precision_mode: str = "auto") -> None:
        self.device = device
        self.precision_mode = precision_mode
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
            return precision.guard_surrogate(inner, name, self.precision_mode, self.device)
        if name not in self._surrogates:
            from bench.methods import cards

            built = cards.build_method(name, device=self.device)
            self._surrogates[name] = precision.guard_surrogate(built, name, self.precision_mode, self.device)
        return self._surrogates[name]

    def build(self, cell: Cell, method: Any) -> Any:
        """The attack object of an attacked cell."""
        from bench.attacks import build_attack

        threat = cell.threat
        kwargs = threat.attack_kwargs(method.capabilities.stochastic)
        surrogate = self.surrogate(threat.surrogate, method) if threat.surrogate is not None else None
        return build_attack(threat.attack, **kwargs, loss=self.loss(threat.loss), surrogate=surrogate)

    def __call__(self, cell: Cell, method: Any, items: Sequence[Item], lr: torch.Tensor, hr: torch.Tensor):
        """Attack the batch; set each item's ``attack_columns``; return ``(x_adv, record)``."""
        attack = self.build(cell, method)
        generator = make_generator(seed_from(cell.seed_key, items[0].name, "attack"), self.device)
        result = attack(method, lr, hr, generator)
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
