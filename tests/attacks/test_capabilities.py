"""Attacks read a method's declared capabilities (``Method.capabilities``), never probe its attributes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from bench.attacks import build_attack
from bench.attacks.base import AttackError
from bench.methods.base import Capabilities
from bench.seeding import make_generator


class _BareUpscaler(nn.Module):
    """A differentiable x4 network that is not a bench Method: it declares no capabilities."""

    scale = 4

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")


def test_a_module_without_declared_capabilities_is_refused_by_name(tiny_loss, batch) -> None:
    lr, hr = batch
    with pytest.raises(AttackError, match="_BareUpscaler, not a bench Method"):
        build_attack("fgsm", loss=tiny_loss)(_BareUpscaler(), lr, hr, make_generator(0))


def test_the_mode_follows_the_instance_capabilities(tiny_loss, batch, tiny_method, monkeypatch) -> None:
    """An instance whose capabilities say stochastic is attacked with EOT although its class attribute says not."""
    lr, hr = batch
    attack = build_attack("pgd", steps=1, loss=tiny_loss)
    assert attack(tiny_method, lr, hr, make_generator(0)).mode == "white-box"
    stochastic = dataclasses.replace(tiny_method.capabilities, stochastic=True)
    monkeypatch.setattr(type(tiny_method), "capabilities", property(lambda self: stochastic))
    assert type(tiny_method).stochastic is False
    assert attack(tiny_method, lr, hr, make_generator(0)).mode == "eot"


def test_non_differentiable_by_capabilities_is_refused(tiny_loss, batch, tiny_method, monkeypatch) -> None:
    lr, hr = batch
    monkeypatch.setattr(type(tiny_method), "capabilities", property(lambda self: Capabilities(differentiable=False)))
    with pytest.raises(AttackError, match="not differentiable"):
        build_attack("pgd", steps=1, loss=tiny_loss)(tiny_method, lr, hr, make_generator(0))


def test_label_is_the_card_name_or_the_class(tiny_method) -> None:
    assert tiny_method.card is None and tiny_method.label == "RRDBMethod"
