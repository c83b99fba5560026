"""Provenance of a run and of its cells: versions, git commit, host, time, the method cards' identities.

``method_identity`` is the part of a card's provenance that changes numbers (it enters the cell key); the title,
the card file's hash and the adapter's capabilities do not.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from bench.paths import git_revision

logger = logging.getLogger(__name__)

LR_SYNTHESIS = "imresize(HR, 1/scale), MATLAB bicubic with antialiasing, rounded to 8 bits"
_KEY_EXCLUDED_PROVENANCE = ("title", "card_sha256", "differentiable", "stochastic")


def environment() -> dict[str, Any]:
    """Versions and host of the run (stored with every cell)."""
    import numpy
    import torch

    import bench

    return {
        "bench": bench.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "git": git_revision(),
        "host": platform.node(),
    }


def now() -> str:
    """UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def method_identity(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a method card's provenance that changes numbers (its title or comments do not)."""
    return {k: v for k, v in provenance.items() if k not in _KEY_EXCLUDED_PROVENANCE}


def method_provenances(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Card provenance of each method; a card whose provenance cannot be completed (an asset name the manifest does
    not know) gets a partial one with its ``error`` -- its cells fail when the method is built."""
    from bench.methods import cards

    out = {}
    for name in names:
        card = cards.load_card(name)
        try:
            out[name] = card.provenance()
        except (KeyError, OSError, ValueError) as exc:
            logger.warning("method %s: no full provenance (%s); its cells will fail when it is built", name, exc)
            out[name] = {
                "card": card.name,
                "title": card.title,
                "adapter": card.adapter,
                "checkpoint": card.checkpoint,
                "checkpoint_sha256": None,
                "error": error_text(exc),
            }
    return out


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an error as failure rows show it (a KeyError's message without its quotes)."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return f"{type(exc).__name__}: {msg}"
