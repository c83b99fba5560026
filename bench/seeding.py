"""Deterministic seeds from keys: a cell (or an image of a cell) is reproducible alone."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj`` (the cache key of a cell)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def seed_from(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts`` (any JSON-able values)."""
    return int(hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:15], 16)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(seed)
    return g
