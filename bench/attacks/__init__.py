"""Adversarial attacks on SR methods (:data:`ATTACKS`) and the losses they maximise (:data:`ATTACK_LOSSES`).

An attack is called per batch, the way the runner calls it::

    attack = build_attack("pgd", eps=10 / 255, steps=10)
    result = attack(method, lr, hr, generator)      # -> AttackResult
    result.x_adv, result.loss_clean, result.loss_adv, result.forward_count, result.backward_count, result.seconds

See :mod:`bench.attacks.base` for the contract (threat models, modes: white-box, EOT, transfer).
"""

from bench.attacks.base import Attack, AttackError, AttackLoss, AttackResult
from bench.registry import Registry

ATTACKS: Registry = Registry(
    "attack",
    base=Attack,
    modules=(
        "bench.attacks.fgsm",
        "bench.attacks.bim",
        "bench.attacks.pgd",
        "bench.attacks.cw",
        "bench.attacks.eot",
        "bench.attacks.random_sign",
        "bench.attacks.degradation",
    ),
)

ATTACK_LOSSES: Registry = Registry(
    "attack loss", base=AttackLoss, modules=("bench.attacks.losses", "bench.attacks.paper_loss")
)


def build_attack(name: str, **params) -> Attack:
    """Instantiate the attack registered as ``name`` with ``params`` (its constructor's keyword arguments)."""
    return ATTACKS.get(name)(**params)


def build_loss(name: str = "l1_perceptual", **params) -> AttackLoss:
    """Instantiate the attack loss registered as ``name`` (default: L1 + perceptual against the HR)."""
    return ATTACK_LOSSES.get(name)(**params)


__all__ = [
    "ATTACKS",
    "ATTACK_LOSSES",
    "Attack",
    "AttackError",
    "AttackLoss",
    "AttackResult",
    "build_attack",
    "build_loss",
]
