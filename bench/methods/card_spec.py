"""What a method card file may say: the declared pydantic model behind its JSON Schema.

The keys are documented in :mod:`bench.methods.cards`. This model checks structure and types; the adapter's name and
its keyword arguments are checked against the registry by :func:`bench.methods.cards.parse_card` (same error).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from bench.config.models import Frozen, NonNegativeInt, PositiveInt

DEFAULT_TILE = 512
DEFAULT_TILE_OVERLAP = 48


class PaperSpec(Frozen):
    """The paper a method comes from."""

    title: str | None = None
    authors: str | None = None
    venue: str | None = None
    year: int | str | None = None
    url: str | None = None


class CardFile(Frozen):
    """A method card (``methods/<name>.yaml``): one leaderboard entry; the file stem is the method's name."""

    model_config = ConfigDict(title="Method card")

    title: str = Field(min_length=1, description="shown in tables")
    adapter: str = Field(description="a registered method adapter (bench.methods.ADAPTERS)")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the adapter")
    checkpoint: str | None = Field(None, description="an asset name, or a file path relative to the card's folder")
    paper: PaperSpec | None = None
    description: str | None = None
    license: str | None = Field(None, description="the licence of the weights")
    tile: PositiveInt | None = Field(DEFAULT_TILE, description="LR tile size of super_resolve (null: never tile)")
    tile_overlap: NonNegativeInt = Field(DEFAULT_TILE_OVERLAP, description="LR pixels of overlap between tiles")
    recipe: Any = Field(None, description="how a trained checkpoint was produced (free form)")
    provenance: Any = Field(None, description="where a trained checkpoint comes from: run, commit, ... (free form)")
