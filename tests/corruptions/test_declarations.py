"""What every registered corruption declares on its class: a threat family and, where it has one, five severities.

Parametrised over the registry, so a new corruption is checked the day it is registered.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from bench.corruptions import CORRUPTIONS
from bench.corruptions.base import LEVELS, Corruption, Severities, severity_scale
from bench.corruptions.severity import SEVERITIES, families, severity_params
from bench.report.overview import FAMILY_ORDER, threat_family

NAMES = CORRUPTIONS.names()
#: The corruptions that were on the severity table before the scales moved onto the classes.
WITH_SCALE = {
    "gaussian_noise",
    "poisson_noise",
    "impulse_noise",
    "gaussian_blur",
    "aniso_blur",
    "motion_blur",
    "defocus_blur",
    "jpeg",
    "realesrgan",
}


@pytest.mark.parametrize("name", NAMES)
def test_every_corruption_declares_a_family(name: str) -> None:
    cls = CORRUPTIONS.get(name)
    assert isinstance(cls.family, str) and cls.family, f"{name}: empty family"
    assert threat_family(name) == cls.family
    assert cls.family in FAMILY_ORDER  # the shipped families all have a column in the overview's order


@pytest.mark.parametrize("name", NAMES)
def test_severities_are_five_buildable_levels(name: str) -> None:
    cls = CORRUPTIONS.get(name)
    if not cls.severities:
        assert name not in WITH_SCALE
        with pytest.raises(KeyError, match="no severity scale"):
            cls.severity_params(1)
        return
    assert len(cls.severities) == len(LEVELS) == 5
    lr = torch.full((1, 3, 24, 24), 0.5)
    for level in LEVELS:
        params = cls.severity_params(level)
        assert params == severity_params(name, level) == dict(SEVERITIES[name][level - 1])
        assert set(params) <= set(cls.params)
        out = cls(**params)(lr, torch.Generator().manual_seed(0))
        assert out.shape == lr.shape and out.min().item() >= 0.0 and out.max().item() <= 1.0
    with pytest.raises(ValueError, match="severity"):
        cls.severity_params(6)
    with pytest.raises(TypeError):
        cls.severities[0]["x"] = 1  # frozen: a caller cannot change the scale


def test_the_severity_scales_are_the_classes() -> None:
    assert set(families()) == set(SEVERITIES) == WITH_SCALE


def test_a_scale_must_have_five_levels_naming_known_params() -> None:
    with pytest.raises(ValueError, match="5 levels"):
        severity_scale({"a": 1}, {"a": 2})
    with pytest.raises(TypeError, match="not in params"):

        class _Typo(Corruption):
            params: ClassVar[tuple[str, ...]] = ("sigma",)
            severities: ClassVar[Severities] = severity_scale(*({"sgima": s} for s in (1, 2, 3, 4, 5)))

    with pytest.raises(TypeError, match="5 levels expected"):

        class _Short(Corruption):
            params: ClassVar[tuple[str, ...]] = ("sigma",)
            severities: ClassVar[Severities] = ({"sigma": 1},)


def test_an_unknown_corruption_is_its_own_family_and_attacks_win() -> None:
    assert threat_family("fog_from_elsewhere") == "fog_from_elsewhere"
    assert threat_family("noise") == "noise"  # an alias resolves through the registry
    assert threat_family("gaussian_noise", "pgd") == "attacks"
