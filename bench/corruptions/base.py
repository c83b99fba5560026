"""The corruption interface: a seeded transformation of the LR input, and what each corruption declares."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch

#: The severity levels of a corruption with a severity scale: 1 (mild) .. 5 (strong).
LEVELS = (1, 2, 3, 4, 5)

Severities = tuple[Mapping[str, Any], ...]


def severity_scale(*levels: Mapping[str, Any]) -> Severities:
    """The constructor parameters of severities 1..5, frozen; ``ValueError`` unless there are exactly five."""
    if len(levels) != len(LEVELS):
        raise ValueError(f"a severity scale has {len(LEVELS)} levels, got {len(levels)}")
    return tuple(MappingProxyType(dict(p)) for p in levels)


class Corruption:
    """Base class: ``corruption(lr, generator) -> corrupted lr``.

    Inputs and outputs are (N, 3, h, w) float tensors in [0, 1] on any device; outputs are clamped to [0, 1].
    All randomness comes from the ``generator`` (a ``torch.Generator`` on the input's device, or on CPU), so the same
    seed gives the same pixels. Subclasses store their parameters as attributes listed in :attr:`params`.

    Class attributes (read without building the corruption):
        params: the constructor arguments that define it (its :meth:`spec`).
        family: its threat family in the report's overview (``"noise"``, ``"blur"``, ``"jpeg"``, ``"mixed"``,
            ``"clean"``...); every registered corruption declares one.
        severities: the constructor parameters of severities 1..5 (:func:`severity_scale`), or ``()`` for a
            corruption without a severity scale; :mod:`bench.corruptions.severity` explains the scales.
    """

    params: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str] = ""
    severities: ClassVar[Severities] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.severities and len(cls.severities) != len(LEVELS):
            raise TypeError(f"{cls.__name__}.severities: {len(LEVELS)} levels expected, got {len(cls.severities)}")
        for level, row in enumerate(cls.severities, 1):
            unknown = set(row) - set(cls.params)
            if unknown:
                raise TypeError(f"{cls.__name__}.severities[{level}]: {sorted(unknown)} not in params {cls.params}")

    @classmethod
    def severity_params(cls, severity: int) -> dict[str, Any]:
        """The constructor parameters at ``severity`` (1..5); ``KeyError`` without a scale, ``ValueError`` for a
        level outside 1..5."""
        if not cls.severities:
            raise KeyError(f"{cls.__name__} has no severity scale")
        if severity not in LEVELS:
            raise ValueError(f"severity must be one of {LEVELS}, got {severity!r}")
        return dict(cls.severities[severity - 1])

    def __call__(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"corruption": type(self).__name__, **{p: getattr(self, p) for p in self.params}}

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.params)
        return f"{type(self).__name__}({args})"
