"""The converter interface: source files in some published format -> a state dict in the stored layout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from bench.assets.manifest import AssetSpec


class Converter:
    """Base class of the converters registered in :data:`bench.assets.CONVERTERS` under a format name.

    Class attributes:
        roles: the file roles the format needs (``("weights",)``, ``("param", "bin")``, ``("backbone", "head")``).
        kinds: the asset kinds it can produce (see :mod:`bench.assets.layouts`).

    :meth:`convert` reads only tensors (never an arbitrary pickle) and returns the stored key layout of the kind;
    it raises :class:`~bench.assets.errors.ConversionError` for a file that is not what the format says.
    """

    roles: ClassVar[tuple[str, ...]] = ("weights",)
    kinds: ClassVar[tuple[str, ...]] = ()

    def convert(self, files: Mapping[str, Path], spec: AssetSpec) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(roles={self.roles}, kinds={self.kinds})"
